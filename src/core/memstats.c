/* memstats.c: see memstats.h. */
#include "core/memstats.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char *k_names[MEM_KIND_COUNT] = {"weights", "grads", "optimizer", "activations", "workspace", "other"};

const char *mem_kind_name(MemKind k) { return (k >= 0 && k < MEM_KIND_COUNT) ? k_names[k] : "?"; }

const char *format_size(size_t bytes, char *buf, size_t cap) {
    double b = (double)bytes;
    if (b >= 1024.0 * 1024 * 1024)
        snprintf(buf, cap, "%.2f GiB", b / (1024.0 * 1024 * 1024));
    else if (b >= 1024.0 * 1024)
        snprintf(buf, cap, "%.1f MiB", b / (1024.0 * 1024));
    else if (b >= 1024.0)
        snprintf(buf, cap, "%.1f KiB", b / 1024.0);
    else
        snprintf(buf, cap, "%zu B", bytes);
    return buf;
}

void memstats_format(const size_t bytes[MEM_KIND_COUNT], char *buf, size_t cap) {
    size_t off = 0, total = 0;
    char tmp[32];
    for (int k = 0; k < MEM_KIND_COUNT && off < cap; k++) {
        total += bytes[k];
        off += (size_t)snprintf(buf + off, cap - off, "%s%s %s", k ? ", " : "", k_names[k],
                                format_size(bytes[k], tmp, sizeof tmp));
    }
    if (off < cap) snprintf(buf + off, cap - off, "; total %s", format_size(total, tmp, sizeof tmp));
}

int memstats_add(MemStats *ms, MemKind kind, size_t bytes, const char *what, const char *device, OwError *err) {
    if (ms->cap && ms->current_total + bytes > ms->cap) {
        char cur[512], a[32], c[32];
        memstats_format(ms->current, cur, sizeof cur);
        return ow_fail(err,
                       "%s memory cap exceeded: allocating %s for %s (%s) would pass the cap of %s.\n"
                       "  in use now: %s\n"
                       "  hint: raise --gpu-mem if the device has more, or lower --batch-size / --block-size, "
                       "use fewer sampled blocks (--gamma), a lower --rank, or activation recomputation",
                       device, format_size(bytes, a, sizeof a), what, mem_kind_name(kind),
                       format_size(ms->cap, c, sizeof c), cur);
    }
    ms->current[kind] += bytes;
    ms->current_total += bytes;
    if (ms->current[kind] > ms->peak[kind]) ms->peak[kind] = ms->current[kind];
    if (ms->current_total > ms->peak_total) {
        ms->peak_total = ms->current_total;
        memcpy(ms->peak_breakdown, ms->current, sizeof ms->current);
    }
    return 0;
}

void memstats_reset_peak(MemStats *ms) {
    for (int k = 0; k < MEM_KIND_COUNT; k++) ms->peak[k] = ms->peak_breakdown[k] = ms->current[k];
    ms->peak_total = ms->current_total;
}

void memstats_sub(MemStats *ms, MemKind kind, size_t bytes) {
    if (bytes > ms->current[kind]) bytes = ms->current[kind];
    ms->current[kind] -= bytes;
    ms->current_total -= bytes;
}

int parse_size(const char *s, size_t *out) {
    char *end;
    double v = strtod(s, &end);
    if (end == s || v < 0) return -1;
    while (isspace((unsigned char)*end)) end++;
    double mult = 1;
    if (*end) {
        static const struct {
            const char *suffix;
            double mult;
        } k[] = {{"B", 1},
                 {"K", 1024.0},
                 {"KB", 1e3},
                 {"KIB", 1024.0},
                 {"M", 1048576.0},
                 {"MB", 1e6},
                 {"MIB", 1048576.0},
                 {"G", 1073741824.0},
                 {"GB", 1e9},
                 {"GIB", 1073741824.0},
                 {"T", 1099511627776.0},
                 {"TB", 1e12},
                 {"TIB", 1099511627776.0}};
        int found = 0;
        for (size_t i = 0; i < sizeof k / sizeof k[0]; i++) {
            if (strcasecmp(end, k[i].suffix) == 0) {
                mult = k[i].mult;
                found = 1;
                break;
            }
        }
        if (!found) return -1;
    }
    *out = (size_t)(v * mult);
    return 0;
}
