/* args.c: see args.h. */
#include "core/args.h"

#include "core/memstats.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

int args_name_eq(const char *a, const char *b) {
    for (;; a++, b++) {
        char ca = *a == '_' ? '-' : *a, cb = *b == '_' ? '-' : *b;
        if (ca != cb) return 0;
        if (!ca) return 1;
    }
}

static int set_value(const ArgSpec *s, const char *v, OwError *err) {
    char *end;
    switch (s->type) {
    case ARG_STR: *(const char **)s->dest = v; return 0;
    case ARG_INT: {
        errno = 0;
        long long x = strtoll(v, &end, 10);
        if (errno || end == v || *end) return ow_fail(err, "--%s: expected an integer, got \"%s\"", s->name, v);
        *(int64_t *)s->dest = x;
        return 0;
    }
    case ARG_FLOAT: {
        errno = 0;
        double x = strtod(v, &end);
        if (errno || end == v || *end || !isfinite(x))
            return ow_fail(err, "--%s: expected a number, got \"%s\"", s->name, v);
        *(double *)s->dest = x;
        return 0;
    }
    case ARG_BOOL:
        if (strcasecmp(v, "true") == 0 || strcmp(v, "1") == 0 || strcasecmp(v, "yes") == 0) {
            *(int *)s->dest = 1;
        } else if (strcasecmp(v, "false") == 0 || strcmp(v, "0") == 0 || strcasecmp(v, "no") == 0) {
            *(int *)s->dest = 0;
        } else {
            return ow_fail(err, "--%s: expected true or false, got \"%s\"", s->name, v);
        }
        return 0;
    case ARG_SIZE:
        if (parse_size(v, (size_t *)s->dest) != 0)
            return ow_fail(err, "--%s: expected a size such as 24GiB, 512MiB or 1073741824, got \"%s\"", s->name, v);
        return 0;
    }
    return ow_fail(err, "--%s: unknown flag type", s->name);
}

int args_parse(int argc, char **argv, const ArgSpec *specs, int nspecs, ArgsResult *res, OwError *err) {
    memset(res, 0, sizeof *res);
    int only_pos = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (only_pos || a[0] != '-' || a[1] == '\0') {
            if (res->npos >= (int)(sizeof res->pos / sizeof res->pos[0]))
                return ow_fail(err, "too many positional arguments (at \"%s\")", a);
            res->pos[res->npos++] = a;
            continue;
        }
        if (strcmp(a, "--") == 0) {
            only_pos = 1;
            continue;
        }
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            res->help = 1;
            continue;
        }
        if (a[1] != '-') return ow_fail(err, "unknown option \"%s\" (hint: flags are spelled --name; see --help)", a);
        const char *name = a + 2;
        const char *eq = strchr(name, '=');
        char buf[128];
        size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
        if (nlen >= sizeof buf) return ow_fail(err, "unknown flag \"%s\" (see --help)", a);
        memcpy(buf, name, nlen);
        buf[nlen] = '\0';
        const ArgSpec *s = NULL;
        for (int k = 0; k < nspecs; k++)
            if (args_name_eq(specs[k].name, buf)) s = &specs[k];
        if (!s) return ow_fail(err, "unknown flag --%s (hint: run with --help for the flags this command takes)", buf);
        const char *val = eq ? eq + 1 : NULL;
        if (!val) {
            if (s->type == ARG_BOOL) {
                val = "true";
            } else {
                if (i + 1 >= argc)
                    return ow_fail(err, "--%s needs a value (%s)", s->name, s->metavar ? s->metavar : "VALUE");
                val = argv[++i];
            }
        }
        if (set_value(s, val, err) != 0) return -1;
        if (s->seen) *s->seen = 1;
    }
    return 0;
}

void args_print_help(FILE *out, const char *usage, const char *description, const ArgSpec *specs, int nspecs) {
    fprintf(out, "usage: %s\n\n%s\n", usage, description);
    fputs("\nflags:\n", out); /* --help at least */
    for (int k = 0; k < nspecs; k++) {
        char left[64];
        if (specs[k].type == ARG_BOOL)
            snprintf(left, sizeof left, "--%s", specs[k].name);
        else
            snprintf(left, sizeof left, "--%s %s", specs[k].name, specs[k].metavar ? specs[k].metavar : "VALUE");
        fprintf(out, "  %-26s %s\n", left, specs[k].help ? specs[k].help : "");
    }
    fputs("  --help                     show this help\n", out);
}
