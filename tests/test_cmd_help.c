/* test_cmd_help.c: every command that `owlore --help` lists answers
 * `owlore COMMAND --help` and `owlore COMMAND -h` with its own usage: exit
 * code 0, the help on stdout (nothing on stderr), and a first line
 * "usage: owlore COMMAND ...". The command list is read from `owlore --help`,
 * so a new command is covered without touching this file. */
#include "test_support.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_COMMANDS 64

/* The names `owlore --help` lists under "commands:" (one "  NAME  summary" line each). */
static int listed_commands(char names[][32]) {
    char cmd[4200], *out;
    snprintf(cmd, sizeof cmd, "'%s' --help 2>/dev/null", ts_owlore_binary());
    cr_assert_eq(ts_run(cmd, &out), 0, "%s", out);
    const char *p = strstr(out, "\ncommands:\n");
    cr_assert_not_null(p, "no commands section in:\n%s", out);
    p += strlen("\ncommands:\n");
    int n = 0;
    while (*p == ' ') {
        cr_assert_lt(n, MAX_COMMANDS);
        while (*p == ' ') p++;
        size_t len = strcspn(p, " \n");
        cr_assert(len > 0 && len < sizeof names[0], "bad command line in:\n%s", out);
        memcpy(names[n], p, len);
        names[n][len] = '\0';
        n++;
        p = strchr(p, '\n');
        if (!p) break;
        p++;
    }
    free(out);
    return n;
}

static void check_help(const char *name, const char *flag) {
    char cmd[4200], *out, *err;
    snprintf(cmd, sizeof cmd, "'%s' %s %s 2>/dev/null", ts_owlore_binary(), name, flag);
    int rc = ts_run(cmd, &out);
    snprintf(cmd, sizeof cmd, "'%s' %s %s >/dev/null", ts_owlore_binary(), name, flag);
    ts_run(cmd, &err);
    cr_expect_eq(rc, 0, "owlore %s %s exited %d:\n%s", name, flag, rc, out);
    cr_expect_str_empty(err, "owlore %s %s wrote to stderr:\n%s", name, flag, err);
    /* the first line is "usage: owlore NAME" alone or followed by a space and its arguments */
    char want[64];
    int len = snprintf(want, sizeof want, "usage: owlore %s", name);
    int ok = strncmp(out, want, (size_t)len) == 0 && (out[len] == ' ' || out[len] == '\n');
    cr_expect(ok, "owlore %s %s: the first line does not start with \"%s\":\n%s", name, flag, want, out);
    free(out);
    free(err);
}

Test(cmd_help, every_command_prints_its_own_usage) {
    char names[MAX_COMMANDS][32];
    int n = listed_commands(names);
    cr_assert_geq(n, 12, "owlore --help lists only %d commands", n);
    for (int i = 0; i < n; i++) {
        check_help(names[i], "--help");
        check_help(names[i], "-h");
    }
}
