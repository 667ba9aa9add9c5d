/*
 * The first pass of the cosine scan, compiled (service/knowledge/vector_scan.py).
 *
 * Why C: a query's semantic retrieval is a matrix-vector product over every chunk's
 * vector. In float32 that reads 1.5 KB per chunk (154 MB at 100k chunks), which is memory
 * bandwidth, not arithmetic: ~16 ms per query on the machine measured. The int8 copy of
 * the matrix is a quarter of that, but numpy has no int8 matrix-vector product (it would
 * widen the whole matrix first). This loop is auto-vectorised by the compiler (-O3), with
 * an AVX2 clone picked at load time where the CPU has it, and runs without the GIL (the
 * query's BM25 search runs meanwhile on another thread).
 *
 * The arithmetic is exact (int8 x int8 summed in int32: |sum| <= 1024 * 127 * 127 < 2^24,
 * so the float conversion is exact too); tests/knowledge/test_vector_scan.py compares it
 * with the same integer arithmetic in numpy, bit for bit. The float32 rescoring of the
 * shortlist and the error bound that makes its result exact are in vector_scan.py.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h>

/* An AVX2 copy of the loop next to the baseline one, chosen once by the dynamic loader
 * (an ifunc: x86-64 and glibc only; elsewhere the baseline build runs). */
#if defined(__x86_64__) && defined(__GLIBC__) && defined(__has_attribute)
#if __has_attribute(target_clones)
#define CLONES __attribute__((target_clones("avx2", "default")))
#endif
#endif
#ifndef CLONES
#define CLONES
#endif

/* out[r] = scales[r] * query_scale * dot(codes[r], query) for each of the n rows. */
CLONES static void scan_rows(const int8_t *codes, const int8_t *query, const float *scales,
                             float query_scale, float *out, Py_ssize_t rows,
                             Py_ssize_t dims) {
    for (Py_ssize_t r = 0; r < rows; r++) {
        const int8_t *row = codes + r * dims;
        int32_t acc = 0;
        for (Py_ssize_t i = 0; i < dims; i++) {
            acc += (int32_t)row[i] * (int32_t)query[i];
        }
        out[r] = scales[r] * query_scale * (float)acc;
    }
}

static PyObject *scan(PyObject *self, PyObject *args) {
    (void)self;
    Py_buffer codes, query, scales, out;
    float query_scale;
    if (!PyArg_ParseTuple(args, "y*y*y*fw*", &codes, &query, &scales, &query_scale, &out)) {
        return NULL;
    }
    PyObject *result = NULL;
    Py_ssize_t dims = query.len;
    Py_ssize_t rows = scales.len / (Py_ssize_t)sizeof(float);
    if (dims <= 0 || dims > 1024) {
        PyErr_SetString(PyExc_ValueError, "query must hold 1 to 1024 int8 values");
    } else if (scales.len % (Py_ssize_t)sizeof(float) != 0 || out.len != scales.len) {
        PyErr_SetString(PyExc_ValueError, "scales and out must be float32 arrays of one length");
    } else if (codes.len != rows * dims) {
        PyErr_SetString(PyExc_ValueError, "codes must hold len(scales) rows of len(query) int8");
    } else {
        Py_BEGIN_ALLOW_THREADS
        scan_rows((const int8_t *)codes.buf, (const int8_t *)query.buf, (const float *)scales.buf,
                  query_scale, (float *)out.buf, rows, dims);
        Py_END_ALLOW_THREADS
        result = Py_NewRef(Py_None);
    }
    PyBuffer_Release(&codes);
    PyBuffer_Release(&query);
    PyBuffer_Release(&scales);
    PyBuffer_Release(&out);
    return result;
}

static PyMethodDef methods[] = {
    {"scan", scan, METH_VARARGS,
     "scan(codes, query, scales, query_scale, out): out[r] = scales[r] * query_scale * "
     "dot(codes[r], query) with codes an int8 (rows, len(query)) matrix, query int8, "
     "scales and out float32 (rows,); contiguous buffers."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "_vectorscan", "The int8 first pass of the cosine scan, compiled.",
    -1, methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__vectorscan(void) { return PyModule_Create(&module_def); }
