/* file.h — opening input files that must be regular files, without ever blocking.
 *
 * Owns one rule of every loader (config.json, safetensors files and shards, the shard index,
 * tokenizer.json, tokenizer_config.json, training states): a FIFO, socket, device or directory in
 * place of a file is refused with a message saying what it is, and no open() can wait on it (a
 * FIFO without a writer would block an open forever). Reading and parsing stay with the loaders.
 * Thread rules: no shared state (errno as usual).
 */
#ifndef DSV3_FILE_H
#define DSV3_FILE_H

#include <stdio.h>

/* Opens path read-only (close-on-exec) if it is a regular file: stat() first, so a special file
 * is never opened, then open() with O_NONBLOCK (a FIFO swapped in meanwhile cannot block it),
 * fstat() of what was opened, and O_NONBLOCK cleared. Returns the descriptor, or -1 with *what
 * set to a phrase for an error message saying what path is instead ("a FIFO, not a regular
 * file"; likewise "a socket", "a character device", "a block device", "a directory"; or "not a
 * regular file") — or *what = NULL when stat/open failed (errno says why). */
int dsv3_file_open_regular(const char *path, const char **what);

/* The same as a stdio stream ("rb"); NULL as above. */
FILE *dsv3_file_fopen_regular(const char *path, const char **what);

#endif
