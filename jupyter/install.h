/* install.h — `dsv3 kernel ...`: installing the Jupyter kernelspec of dsv3-kernel.
 *
 * Owns the kernelspec directory (docs/ARCHITECTURE.md, "Jupyter kernel protocol"): kernel.json with
 * the absolute path of dsv3-kernel (found next to the running dsv3 binary), display name, language
 * "lua" and interrupt mode, plus logo-32x32.png and logo-64x64.png drawn here. Links into the dsv3
 * binary only; it needs no ZeroMQ. Thread rules: none (a command-line entry point).
 */
#ifndef DSV3_JUPYTER_INSTALL_H
#define DSV3_JUPYTER_INSTALL_H

#include <stddef.h>
#include <stdint.h>

/* The `kernel` subcommand of dsv3 (argv after "kernel"):
 *   install [--user | --prefix DIR] [--name NAME] [--display-name TEXT]
 *           [--interrupt-mode signal|message] [--kernel PATH]
 * Without --user/--prefix the spec goes to /usr/local/share/jupyter/kernels/NAME; --user puts
 * it under $JUPYTER_DATA_DIR, $XDG_DATA_HOME/jupyter or ~/.local/share/jupyter; --prefix under
 * DIR/share/jupyter (point JUPYTER_PATH at DIR/share/jupyter to use it). Prints the directory.
 * Returns 0, 1 on failure (message on stderr), 2 on bad usage. */
int dsv3_kernel_cmd(int argc, char **argv);

/* A size x size RGBA logo as a PNG file image: *png is malloc'd (caller frees), *len its bytes.
 * Returns 0, or -1 when out of memory or size is not in 8..256. Same bytes for the same size. */
int dsv3_kernel_logo_png(uint8_t **png, size_t *len, int size);

#endif
