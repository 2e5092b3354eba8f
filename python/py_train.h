/* py_train.h — training from Python (python/py_train.c): m.train(...), m.train_eval(),
 * m.train_save(dir), m.train_reset(), m.grpo(...), m.grpo_save(dir), m.grpo_reset(), over the C
 * trainer (model/train/trainer.h) and GRPO run (model/train/grpo.h) with the option names of
 * Lua's train{} and grpo{} (docs/PYTHON.md, "Training"). Every function needs the GIL.
 */
#ifndef DSV3_PY_TRAIN_H
#define DSV3_PY_TRAIN_H

#include "python/pyx.h"

/* Frees the model's trainer and GRPO run, if any (which puts the model's own weights back).
 * Called with the model's lock held, or with no call running (close, dealloc). */
void dsv3_py_train_free(dsv3_py_model *self);

/* m.train(**options) -> dict of arrays; m.train_eval() -> dict; m.train_save(dir) -> dir;
 * m.train_reset(). */
PyObject *dsv3_py_train(dsv3_py_model *self, PyObject *args, PyObject *kw);
PyObject *dsv3_py_train_eval(dsv3_py_model *self, PyObject *unused);
PyObject *dsv3_py_train_save(dsv3_py_model *self, PyObject *dir);
PyObject *dsv3_py_train_reset(dsv3_py_model *self, PyObject *unused);

/* m.grpo(**options) -> dict of arrays; m.grpo_save(dir) -> dir; m.grpo_reset(). */
PyObject *dsv3_py_grpo(dsv3_py_model *self, PyObject *args, PyObject *kw);
PyObject *dsv3_py_grpo_save(dsv3_py_model *self, PyObject *dir);
PyObject *dsv3_py_grpo_reset(dsv3_py_model *self, PyObject *unused);

#endif
