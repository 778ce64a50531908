/* cmd_common.c: helpers shared by the subcommands. */
#include "cmd/commands.h"

#include "backend/backend_cuda.h"

#include <stdio.h>

int cmd_report_error(const char *cmd, const OwError *err) {
    fflush(stdout);
    fprintf(stderr, "owlore %s: error: %s\n", cmd, err->msg[0] ? err->msg : "(no message)");
    return 1;
}

int cmd_args(const char *cmd, int argc, char **argv, const ArgSpec *specs, int nspecs, const char *usage,
             const char *description, ArgsResult *res) {
    OwError err;
    if (args_parse(argc, argv, specs, nspecs, res, &err) != 0) {
        cmd_report_error(cmd, &err);
        return 2;
    }
    if (res->help) {
        args_print_help(stdout, usage, description, specs, nspecs);
        return 0;
    }
    return -1;
}

int cmd_version(int argc, char **argv) {
    ArgsResult res;
    int parsed =
        cmd_args("version", argc, argv, NULL, 0, "owlore version",
                 "Prints the version and the backends this build has (cpu, and cuda when built with it).", &res);
    if (parsed >= 0) return parsed;
    if (res.npos > 0) {
        OwError err;
        ow_fail(&err, "unexpected argument \"%s\" (owlore version takes no arguments)", res.pos[0]);
        cmd_report_error("version", &err);
        return 2;
    }
    printf("owlore %s\nbackends: cpu%s\n", OWLORE_VERSION, backend_cuda_available() ? ", cuda" : "");
    return 0;
}
