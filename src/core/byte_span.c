/* byte_span.c: see byte_span.h. */
#include "core/byte_span.h"

#include <stdlib.h>

static int cmp_span(const void *a, const void *b) {
    const ByteSpan *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    return (x->end > y->end) - (x->end < y->end);
}

void byte_span_sort(ByteSpan *v, int n) {
    if (n > 1) qsort(v, (size_t)n, sizeof *v, cmp_span);
}
