/* byte_span.h: a tensor's bytes in a file ([begin, end), with the tensor's
 * index), and their sort by position: how the file readers (safetensors,
 * GGUF) check that tensors lie inside the data section without overlapping. */
#ifndef OWLORE_CORE_BYTE_SPAN_H
#define OWLORE_CORE_BYTE_SPAN_H

#include <stdint.h>

typedef struct ByteSpan {
    uint64_t begin, end;
    int tensor;
} ByteSpan;

/* Sorts v by begin, then end. */
void byte_span_sort(ByteSpan *v, int n);

#endif
