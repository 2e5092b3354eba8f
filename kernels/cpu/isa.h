/* isa.h — the instruction sets the CPU kernels are compiled for, and the run-time checks that
 * choose them: the one place in dsv3 that names an x86 target or asks the CPU what it supports.
 *
 * Owns: the function attributes that compile one function for a wider instruction set than the
 * build's baseline x86-64, and the matching checks. Does not own which kernel runs (each kernel
 * file picks its path with these checks) or the vector intrinsics (the kernel files include
 * <immintrin.h> themselves). Code outside kernels/ neither includes this header nor tests the CPU:
 * it calls the dsv3_* kernels, which choose.
 *
 * The three levels are kept apart on purpose: under GCC's default -ffp-contract=fast a function
 * compiled with FMA may fuse a multiply and an add, which changes the rounding, so a kernel whose
 * results are promised bit-identical to a scalar loop (kernels/cpu/adamw.c) is compiled for AVX2
 * without FMA. Each level includes the ones before it; its check tests all of them.
 * Thread rules: the checks read the CPU model that libgcc fills before main; any thread.
 */
#ifndef DSV3_ISA_H
#define DSV3_ISA_H

#include <xmmintrin.h>

/* AVX2 (256-bit integer and float vectors), no fused multiply-add. */
#define DSV3_ISA_AVX2 __attribute__((target("avx2")))
/* AVX2 and FMA. */
#define DSV3_ISA_FMA __attribute__((target("avx2,fma")))
/* AVX2, FMA and F16C (IEEE half <-> float conversions). */
#define DSV3_ISA_F16C __attribute__((target("avx2,fma,f16c")))

static inline int dsv3_isa_avx2(void) {
    return __builtin_cpu_supports("avx2");
}

static inline int dsv3_isa_fma(void) {
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}

static inline int dsv3_isa_f16c(void) {
    return dsv3_isa_fma() && __builtin_cpu_supports("f16c");
}

/* Fills the CPU model the checks read; needed only by code that may run before main
 * (constructors). Cheap to repeat. */
static inline void dsv3_isa_init(void) {
    __builtin_cpu_init();
}

/* An AMD CPU. */
static inline int dsv3_isa_amd(void) {
    return __builtin_cpu_is("amd");
}

/* Whether this thread's MXCSR has denormals-are-zero set (bit 6; e.g. by -ffast-math start-up
 * code): then FP32 denormal operands read as zero. Each thread has its own MXCSR. */
static inline int dsv3_isa_daz(void) {
    return (_mm_getcsr() & 0x0040) != 0;
}

#endif
