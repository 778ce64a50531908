/* tensor.h: a tensor is a typed, shaped, row-major, contiguous view of
 * memory that some owner allocated (a backend, a mapped file, a host buffer).
 * The struct never owns its data; whoever allocated it frees it. Which device
 * the data lives on is known from the backend that handed it out. */
#ifndef OWLORE_CORE_TENSOR_H
#define OWLORE_CORE_TENSOR_H

#include "core/dtype.h"

#include <stdint.h>

#define OW_MAX_DIMS 4

typedef struct Tensor {
    void *data;
    DType dtype;
    int ndim;
    int64_t shape[OW_MAX_DIMS];
} Tensor;

/* A tensor description without data (data NULL). */
Tensor tensor_desc(DType dtype, int ndim, const int64_t *shape);
Tensor tensor_1d(DType dtype, int64_t n0);
Tensor tensor_2d(DType dtype, int64_t n0, int64_t n1);
Tensor tensor_3d(DType dtype, int64_t n0, int64_t n1, int64_t n2);
Tensor tensor_4d(DType dtype, int64_t n0, int64_t n1, int64_t n2, int64_t n3);

int64_t tensor_numel(const Tensor *t);
size_t tensor_nbytes(const Tensor *t);
/* The tensor seen as a matrix: rows = numel / last dim, cols = last dim. */
int64_t tensor_rows(const Tensor *t);
int64_t tensor_cols(const Tensor *t);
int tensor_same_shape(const Tensor *a, const Tensor *b);
/* A 2-D view of rows [row0, row0 + nrows) of t seen as a matrix. */
Tensor tensor_row_slice(const Tensor *t, int64_t row0, int64_t nrows);
/* A 1-D view of elements [off, off + n) of t (flattened). */
Tensor tensor_slice(const Tensor *t, int64_t off, int64_t n);
/* A view of t with another shape of the same element count. */
Tensor tensor_reshape(const Tensor *t, int ndim, const int64_t *shape);
/* "[4096, 11008] BF16" into buf. */
const char *tensor_shape_str(const Tensor *t, char *buf, int cap);

#endif
