/* py_probes.h — the probe API of the Python module (python/py_probes.c): route, load_stats,
 * effect, capture, lens, attention, mtp_trace. python/dsv3module.c registers them with their
 * docstrings; docs/PYTHON.md gives every result's arrays, shapes and dtypes. Every function
 * needs the GIL and returns a new reference, or NULL with an exception set.
 */
#ifndef DSV3_PY_PROBES_H
#define DSV3_PY_PROBES_H

#include "python/pyx.h"

PyObject *dsv3_py_route(dsv3_py_model *self, PyObject *args, PyObject *kw);
PyObject *dsv3_py_load_stats(dsv3_py_model *self, PyObject *seqs);
PyObject *dsv3_py_effect(dsv3_py_model *self, PyObject *args, PyObject *kw);
PyObject *dsv3_py_capture(dsv3_py_model *self, PyObject *args, PyObject *kw);
PyObject *dsv3_py_lens(dsv3_py_model *self, PyObject *args, PyObject *kw);
PyObject *dsv3_py_attention(dsv3_py_model *self, PyObject *args, PyObject *kw);
PyObject *dsv3_py_mtp_trace(dsv3_py_model *self, PyObject *args, PyObject *kw);

#endif
