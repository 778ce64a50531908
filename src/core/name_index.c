/* name_index.c: see name_index.h. */
#include "core/name_index.h"

#include <stdlib.h>
#include <string.h>

int name_idx_cmp(const void *a, const void *b) {
    const NameIdx *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    if (c) return c;
    return (x->idx > y->idx) - (x->idx < y->idx);
}

const char *name_idx_sort_find_duplicate(NameIdx *v, int n) {
    if (n > 1) qsort(v, (size_t)n, sizeof *v, name_idx_cmp);
    for (int i = 1; i < n; i++)
        if (strcmp(v[i - 1].name, v[i].name) == 0) return v[i].name;
    return NULL;
}
