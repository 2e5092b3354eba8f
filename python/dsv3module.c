/* dsv3module.c — `import dsv3`: the module's whole surface in two tables (the module's functions
 * and dsv3.Model's methods) with their docstrings, the Model type and the module's init.
 *
 * The functions live by concept in python/py_model.c (models, tokens, logits, generation, bias)
 * and python/py_probes.c (routing, interventions, activations, lens, attention, MTP trace);
 * python/pyx.c holds what they share. Names mirror the Lua API (docs/LUA.md); docs/PYTHON.md is
 * the reference, and these docstrings say the same in short. Adding a method edits its file and
 * the table below.
 */
#include "python/pyx.h"

#include "python/py_model.h"
#include "python/py_probes.h"
#include "python/py_train.h"

/* ---------------------------------------------------------------- dsv3.Model ----------- */

#define KW(f) (PyCFunction)(void (*)(void))(f), METH_VARARGS | METH_KEYWORDS

static PyMethodDef model_methods[] = {
    {"info", (PyCFunction)dsv3_py_info, METH_NOARGS,
     "info() -> dict: config sizes, parameter counts (params), MLA cache bytes per token, backend."},
    {"backend", (PyCFunction)dsv3_py_backend, METH_VARARGS,
     "backend([name]) -> name: the kernels forward passes use, \"fast\", \"ref\" or \"devsim\";\n"
     "with a name, switches first."},
    {"tokenize", KW(dsv3_py_tokenize),
     "tokenize(text, bos=False) -> list[int]: token ids as the Hugging Face tokenizer gives them."},
    {"pieces", (PyCFunction)dsv3_py_pieces, METH_O,
     "pieces(text | ids) -> list[str]: each token's string as tokenizer.json writes it."},
    {"detokenize", KW(dsv3_py_detokenize),
     "detokenize(ids, skip_special=False) -> str."},
    {"logits", KW(dsv3_py_logits),
     "logits(text | ids, *, mtp=False, attn=\"absorbed\") -> float32 [T, V] (row t predicts t+1);\n"
     "with mtp=True a pair (logits, mtp_logits [T-1, V]). The bytes of `dsv3 logits --out`."},
    {"generate", KW(dsv3_py_generate),
     "generate(prompt | ids, *, max_tokens=64, temperature=0.7, greedy=None, top_k=0, top_p=1.0,\n"
     "seed=None, mtp=False, stop=None, chat=False, system=None, stream=None) -> dict\n"
     "{text, ids, stats}. stream: a callable given each piece of text as it comes."},
    {"bias", (PyCFunction)dsv3_py_bias, METH_VARARGS,
     "bias(layer) -> float32 [E]: a copy of the router bias of a MoE layer (the MTP block is\n"
     "layer num_hidden_layers)."},
    {"bias_set", (PyCFunction)dsv3_py_bias_set, METH_VARARGS,
     "bias_set(layer, values) or bias_set(layer, expert, value): sets the router bias; every\n"
     "forward from the next on routes with it."},
    {"set_bias", (PyCFunction)dsv3_py_bias_set, METH_VARARGS, "set_bias: bias_set under another name."},
    {"bias_add", (PyCFunction)dsv3_py_bias_add, METH_VARARGS,
     "bias_add(layer, deltas) or bias_add(layer, expert, delta): adds to the router bias."},
    {"bias_reset", (PyCFunction)dsv3_py_bias_reset, METH_VARARGS,
     "bias_reset(layer=None): the checkpoint's bias back (one layer, or every layer)."},
    {"route", KW(dsv3_py_route),
     "route(text | ids) -> dict of arrays over the L main-model MoE layers and T tokens:\n"
     "experts/experts_nobias int32 [L, T, K], weights float32 [L, T, K], scores/biased float32\n"
     "[L, T, E], groups bool [L, T, G], bias_changed bool [L, T], layers int64 [L], tokens int32\n"
     "[T], pieces (token texts)."},
    {"load_stats", (PyCFunction)dsv3_py_load_stats, METH_O,
     "load_stats([text | ids, ...]) -> dict: counts int64 [L, E], tokens [L], maxvio [L],\n"
     "maxvio_per_sequence [L], layers [L]."},
    {"effect", KW(dsv3_py_effect),
     "effect(text | ids, *, disable=None, force=None, zero_bias=False, drop_shared=False) -> dict\n"
     "{kl float64 [T], top1_changed bool [T], mean_kl, max_kl, top1_changed_fraction}.\n"
     "disable: [experts] (every layer) or {layer: [experts]}; force: {\"layer\", \"experts\", \"pos\"}."},
    {"capture", KW(dsv3_py_capture),
     "capture(text | ids, *, points=[\"resid_out\"], layers=None) -> {\"point.layer\": float32\n"
     "[T, dim]}; points: resid_in, attn_out, ffn_out, resid_out, ckv, hidden."},
    {"lens", KW(dsv3_py_lens),
     "lens(text | ids, *, k=5, pos=-1) -> dict {ids int32 [L, k], probs float64 [L, k], layers,\n"
     "pieces, pos}: each block's output residual through the final norm and lm_head."},
    {"attention", KW(dsv3_py_attention),
     "attention(text | ids, layer, head) -> float32 [T, T]: row i = query i's softmax over keys."},
    {"attn", KW(dsv3_py_attention), "attn: attention under its Lua name."},
    {"mtp_trace", KW(dsv3_py_mtp_trace),
     "mtp_trace(prompt | ids, *, max_tokens=64, temperature=0.0, seed=0) -> dict: every MTP\n"
     "draft (steps: pos, draft, main, q, p, accepted arrays), drafted, accepted, rate,\n"
     "pos_drafted/pos_accepted per bucket of `bucket` positions, by_band, histogram."},
    {"train", KW(dsv3_py_train),
     "train(*, steps=20, data=PATH | text=STR, lr, gamma, alpha, lambda (or lambda_), clip,\n"
     "weight_decay, warmup, total_steps, fp8, precision, seq_len, batch, accum, seed, heldout,\n"
     "fim_rate, quiet=False) -> dict of arrays: loss, ce, mtp, balance, lr, grad_norm, maxvio,\n"
     "seconds, tokens_per_s float64 [steps], step, tokens int64 [steps], load int64 [steps, L, E],\n"
     "bias float32 [steps, L, E], layer_maxvio [steps, L], layers [L]. Lua's train{}: the first\n"
     "call creates the trainer, later calls continue it; the weights are synced into the model."},
    {"train_eval", (PyCFunction)dsv3_py_train_eval, METH_NOARGS,
     "train_eval() -> dict: loss, ce, mtp, balance, tokens, seconds on the held-out sequences."},
    {"train_save", (PyCFunction)dsv3_py_train_save, METH_O,
     "train_save(dir) -> dir: the trained model (safetensors, config, tokenizer) and training state."},
    {"train_reset", (PyCFunction)dsv3_py_train_reset, METH_NOARGS,
     "train_reset(): drops the trainer; the model gets the checkpoint's weights back."},
    {"grpo", KW(dsv3_py_grpo),
     "grpo(*, task=\"add\"|\"copy\" | prompts=[str | (prompt, answer) | {prompt, answer}],\n"
     "reward=callable(prompt, completion, answer) -> number, steps=20, group=8, batch=2,\n"
     "max_tokens=16 (or n), temperature (or temp)=1, lr=2e-3, beta, eps, inner, seed, weight_decay,\n"
     "clip, examples, max_prompt, quiet) -> dict: reward, reward_std, reward_max, kl, length, loss,\n"
     "clip_frac, grad_norm, zero_adv, ... float64 [steps], best (list[str]). Lua's grpo{}."},
    {"grpo_save", (PyCFunction)dsv3_py_grpo_save, METH_O,
     "grpo_save(dir) -> dir: the current policy as a model directory."},
    {"grpo_reset", (PyCFunction)dsv3_py_grpo_reset, METH_NOARGS,
     "grpo_reset(): drops the GRPO run; the model gets its weights back."},
    {"close", (PyCFunction)dsv3_py_close, METH_NOARGS,
     "close(): frees the model now; using it afterwards raises ValueError."},
    {"__enter__", (PyCFunction)dsv3_py_enter, METH_NOARGS, NULL},
    {"__exit__", (PyCFunction)dsv3_py_exit, METH_VARARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef model_getset[] = {
    {"closed", (getter)dsv3_py_closed, NULL, "True once close() ran.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject dsv3_py_model_type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "dsv3.Model",
    .tp_basicsize = sizeof(dsv3_py_model),
    .tp_dealloc = (destructor)dsv3_py_model_dealloc,
    .tp_repr = (reprfunc)dsv3_py_model_repr,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "A loaded DeepSeek-V3-architecture model (dsv3.load). Weights are memory-mapped;\n"
              "several models may be open at once, each freed when unreferenced or by close().",
    .tp_weaklistoffset = offsetof(dsv3_py_model, weakrefs),
    .tp_methods = model_methods,
    .tp_getset = model_getset,
};

/* ---------------------------------------------------------------- the module ----------- */

static PyObject *load(PyObject *mod, PyObject *args, PyObject *kw) {
    return dsv3_py_model_open(&dsv3_py_model_type, args, kw);
}

static PyMethodDef module_methods[] = {
    {"load", KW(load),
     "load(dir=None, backend=\"fast\") -> Model: opens a Hugging Face-format model directory;\n"
     "without dir, $DSV3_MODEL or the bundled demo model examples/demo."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    .m_name = "dsv3",
    .m_doc = "dsv3 from Python: DeepSeek-V3-architecture models (MLA, DeepSeekMoE, MTP, FP8) and\n"
             "their probes, with results as numpy arrays. m = dsv3.load(); docs/PYTHON.md.",
    .m_size = -1,
    .m_methods = module_methods,
};

PyMODINIT_FUNC PyInit_dsv3(void) {
    if (dsv3_py_init() < 0 || PyType_Ready(&dsv3_py_model_type) < 0) return NULL;
    PyObject *mod = PyModule_Create(&module_def);
    if (!mod) return NULL;
    Py_INCREF(&dsv3_py_model_type);
    if (PyModule_AddObject(mod, "Model", (PyObject *)&dsv3_py_model_type) < 0 ||
        PyModule_AddObject(mod, "Error", Py_NewRef(dsv3_py_Error)) < 0) {
        Py_DECREF(&dsv3_py_model_type);
        Py_DECREF(mod);
        return NULL;
    }
#ifdef DSV3_DEMO_DIR
    if (PyModule_AddStringConstant(mod, "DEMO_DIR", DSV3_DEMO_DIR) < 0) {
        Py_DECREF(mod);
        return NULL;
    }
#endif
    return mod;
}
