/* tensor.c: see tensor.h. */
#include "core/tensor.h"

#include "core/error.h"

#include <stdio.h>
#include <string.h>

Tensor tensor_desc(DType dtype, int ndim, const int64_t *shape) {
    OW_CHECK(ndim >= 1 && ndim <= OW_MAX_DIMS);
    Tensor t;
    memset(&t, 0, sizeof t);
    t.dtype = dtype;
    t.ndim = ndim;
    for (int i = 0; i < ndim; i++) {
        OW_CHECK(shape[i] >= 0);
        t.shape[i] = shape[i];
    }
    return t;
}

Tensor tensor_1d(DType dtype, int64_t n0) { return tensor_desc(dtype, 1, (int64_t[]){n0}); }
Tensor tensor_2d(DType dtype, int64_t n0, int64_t n1) { return tensor_desc(dtype, 2, (int64_t[]){n0, n1}); }
Tensor tensor_3d(DType dtype, int64_t n0, int64_t n1, int64_t n2) {
    return tensor_desc(dtype, 3, (int64_t[]){n0, n1, n2});
}
Tensor tensor_4d(DType dtype, int64_t n0, int64_t n1, int64_t n2, int64_t n3) {
    return tensor_desc(dtype, 4, (int64_t[]){n0, n1, n2, n3});
}

int64_t tensor_numel(const Tensor *t) {
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= t->shape[i];
    return n;
}

size_t tensor_nbytes(const Tensor *t) { return (size_t)tensor_numel(t) * dtype_size(t->dtype); }

int64_t tensor_cols(const Tensor *t) { return t->shape[t->ndim - 1]; }

int64_t tensor_rows(const Tensor *t) {
    int64_t c = tensor_cols(t);
    return c ? tensor_numel(t) / c : 0;
}

int tensor_same_shape(const Tensor *a, const Tensor *b) {
    if (a->ndim != b->ndim) return 0;
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i]) return 0;
    return 1;
}

Tensor tensor_row_slice(const Tensor *t, int64_t row0, int64_t nrows) {
    int64_t rows = tensor_rows(t), cols = tensor_cols(t);
    OW_CHECKF(row0 >= 0 && nrows >= 0 && row0 + nrows <= rows, "rows %lld+%lld of %lld", (long long)row0,
              (long long)nrows, (long long)rows);
    Tensor v = tensor_2d(t->dtype, nrows, cols);
    v.data = (char *)t->data + (size_t)(row0 * cols) * dtype_size(t->dtype);
    return v;
}

Tensor tensor_slice(const Tensor *t, int64_t off, int64_t n) {
    OW_CHECKF(off >= 0 && n >= 0 && off + n <= tensor_numel(t), "slice %lld+%lld of %lld", (long long)off, (long long)n,
              (long long)tensor_numel(t));
    Tensor v = tensor_1d(t->dtype, n);
    v.data = (char *)t->data + (size_t)off * dtype_size(t->dtype);
    return v;
}

Tensor tensor_reshape(const Tensor *t, int ndim, const int64_t *shape) {
    Tensor v = tensor_desc(t->dtype, ndim, shape);
    OW_CHECKF(tensor_numel(&v) == tensor_numel(t), "reshape changes the element count");
    v.data = t->data;
    return v;
}

const char *tensor_shape_str(const Tensor *t, char *buf, int cap) {
    int off = snprintf(buf, (size_t)cap, "[");
    for (int i = 0; i < t->ndim && off < cap; i++)
        off += snprintf(buf + off, (size_t)(cap - off), "%s%lld", i ? ", " : "", (long long)t->shape[i]);
    if (off < cap) snprintf(buf + off, (size_t)(cap - off), "] %s", dtype_name(t->dtype));
    return buf;
}
