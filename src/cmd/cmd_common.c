/* cmd_common.c: helpers shared by the subcommands. */
#include "cmd/commands.h"

#include "backend/backend.h"

#include <stdio.h>

int cmd_report_error(const char *cmd, const OwError *err) {
    fflush(stdout);
    fprintf(stderr, "owlore %s: error: %s\n", cmd, err->msg[0] ? err->msg : "(no message)");
    return 1;
}

int cmd_version(int argc, char **argv) {
    printf("owlore %s\nbackends: cpu%s\n", OWLORE_VERSION, backend_cuda_available() ? ", cuda" : "");
    return 0;
}
