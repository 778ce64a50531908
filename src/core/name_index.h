/* name_index.h: (name, index) pairs sorted by name, then index: the one
 * comparator the readers use for unique-name checks and name lookups (qsort
 * has no context argument, so the names travel with their indices). */
#ifndef OWLORE_CORE_NAME_INDEX_H
#define OWLORE_CORE_NAME_INDEX_H

typedef struct NameIdx {
    const char *name;
    int idx;
} NameIdx;

/* qsort/bsearch comparator: strcmp of the names, then the indices. */
int name_idx_cmp(const void *a, const void *b);
/* Sorts v and returns a name that appears twice, or NULL. */
const char *name_idx_sort_find_duplicate(NameIdx *v, int n);

#endif
