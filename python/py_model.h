/* py_model.h — the model API of the Python module (python/py_model.c): load, close, info,
 * backend, tokenize, pieces, detokenize, logits, generate, bias, bias_set, bias_add,
 * bias_reset. python/dsv3module.c registers them with their docstrings; docs/PYTHON.md
 * describes each. Every function needs the GIL and returns a new reference, or NULL with an
 * exception set.
 */
#ifndef DSV3_PY_MODEL_H
#define DSV3_PY_MODEL_H

#include "python/pyx.h"

/* dsv3.load(dir=None, backend="fast") -> a new object of type (dsv3.Model, whose table
 * python/dsv3module.c holds). */
PyObject *dsv3_py_model_open(PyTypeObject *type, PyObject *args, PyObject *kw);

PyObject *dsv3_py_close(dsv3_py_model *self, PyObject *unused);
PyObject *dsv3_py_enter(dsv3_py_model *self, PyObject *unused);
PyObject *dsv3_py_exit(dsv3_py_model *self, PyObject *args);
void dsv3_py_model_dealloc(dsv3_py_model *self);
PyObject *dsv3_py_model_repr(dsv3_py_model *self);
PyObject *dsv3_py_closed(dsv3_py_model *self, void *unused);

PyObject *dsv3_py_info(dsv3_py_model *self, PyObject *unused);
PyObject *dsv3_py_backend(dsv3_py_model *self, PyObject *args);
PyObject *dsv3_py_tokenize(dsv3_py_model *self, PyObject *args, PyObject *kw);
PyObject *dsv3_py_pieces(dsv3_py_model *self, PyObject *arg);
PyObject *dsv3_py_detokenize(dsv3_py_model *self, PyObject *args, PyObject *kw);
PyObject *dsv3_py_logits(dsv3_py_model *self, PyObject *args, PyObject *kw);
PyObject *dsv3_py_generate(dsv3_py_model *self, PyObject *args, PyObject *kw);
PyObject *dsv3_py_bias(dsv3_py_model *self, PyObject *args);
PyObject *dsv3_py_bias_set(dsv3_py_model *self, PyObject *args);
PyObject *dsv3_py_bias_add(dsv3_py_model *self, PyObject *args);
PyObject *dsv3_py_bias_reset(dsv3_py_model *self, PyObject *args);

#endif
