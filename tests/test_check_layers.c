/* test_check_layers.c: scripts/check-layers.sh on small trees written here:
 * a tree that keeps to the layer rules passes (exit 0), and each kind of
 * violation is reported as file:line with its rule (exit 1). */
#include "test_support.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Writes ROOT/rel (creating its directory) with the given text. */
static void put(const char *root, const char *rel, const char *text) {
    char path[4200], cmd[4300];
    snprintf(path, sizeof path, "%s/%s", root, rel);
    snprintf(cmd, sizeof cmd, "mkdir -p \"$(dirname '%s')\"", path);
    cr_assert_eq(ts_run(cmd, NULL), 0);
    ts_write_file(path, text, strlen(text));
}

/* A tree that keeps to the rules: every layer, a same-directory include, cuda/ on core and backend. */
static char *clean_tree(void) {
    char *root = ts_tmpdir();
    put(root, "src/core/a.h", "#include \"core/b.h\"\n");
    put(root, "src/core/b.h", "#include <stdio.h>\n");
    put(root, "src/model/m.c", "#include \"core/a.h\"\n#include \"data/d.h\"\n#include \"m_internal.h\"\n");
    put(root, "src/model/m_internal.h", "");
    put(root, "src/data/d.h", "#include \"core/a.h\"\n");
    put(root, "src/backend/cpu/k.c", "#include \"backend/be.h\"\n");
    put(root, "src/backend/be.h", "#include \"core/a.h\"\n");
    put(root, "src/train/t.c", "#include \"model/m_internal.h\"\n#include \"backend/be.h\"\n");
    put(root, "src/cmd/c.c", "#include \"train/t.h\"\n");
    put(root, "src/train/t.h", "");
    put(root, "src/main.c", "#include \"cmd/c.h\"\n");
    put(root, "src/cmd/c.h", "");
    put(root, "src/offload/o.c", "#include \"backend/be.h\"\n#include \"core/a.h\"\n");
    put(root, "offload/y.h", "#include \"core/a.h\"\n");
    put(root, "src/train/u.c", "#include \"offload/y.h\"\n");
    put(root, "cuda/k.cu", "#include \"cuda/k.h\"\n#include \"backend/be.h\"\n#include \"core/a.h\"\n");
    put(root, "cuda/k.h", "");
    return root;
}

static int check(const char *root, char **out) {
    char *script = ts_source_path("scripts/check-layers.sh");
    char cmd[8500];
    snprintf(cmd, sizeof cmd, "'%s' '%s'", script, root);
    free(script);
    return ts_run(cmd, out);
}

Test(check_layers, clean_tree_passes) {
    char *root = clean_tree(), *out;
    cr_assert_eq(check(root, &out), 0, "%s", out);
    free(out);
    ts_rmtree(root);
    free(root);
}

/* One file added to the clean tree; the report names it, its line and the rule. */
static void violation(const char *rel, const char *text, const char *want) {
    char *root = clean_tree(), *out;
    put(root, rel, text);
    int rc = check(root, &out);
    cr_expect_eq(rc, 1, "%s: exit %d:\n%s", rel, rc, out);
    cr_expect(strstr(out, want) != NULL, "want \"%s\" in:\n%s", want, out);
    free(out);
    ts_rmtree(root);
    free(root);
}

Test(check_layers, core_includes_only_core) {
    violation("src/core/x.c", "#include \"core/a.h\"\n#include \"model/m_internal.h\"\n",
              "src/core/x.c:2: #include \"model/m_internal.h\": src/core includes only core");
}
Test(check_layers, model_never_includes_train) {
    violation("src/model/x.c", "#include \"train/t.h\"\n",
              "src/model/x.c:1: #include \"train/t.h\": src/model is below train");
}
Test(check_layers, backend_never_includes_cmd) {
    violation("src/backend/cpu/x.c", "  #  include \"cmd/c.h\"\n",
              "src/backend/cpu/x.c:1: #include \"cmd/c.h\": src/backend");
}
Test(check_layers, train_never_includes_cmd) {
    violation("src/train/x.c", "\n#include \"cmd/c.h\"\n", "src/train/x.c:2: #include \"cmd/c.h\": src/train never");
}
Test(check_layers, src_never_includes_cuda) {
    violation("src/cmd/x.c", "#include \"cuda/k.h\"\n", "src/cmd/x.c:1: #include \"cuda/k.h\": nothing outside cuda/");
}
Test(check_layers, cuda_only_core_and_backend) {
    violation("cuda/x.cu", "#include \"model/m_internal.h\"\n",
              "cuda/x.cu:1: #include \"model/m_internal.h\": cuda/ includes");
}
Test(check_layers, offload_only_core_and_backend) {
    violation("src/offload/x.c", "#include \"model/m_internal.h\"\n",
              "src/offload/x.c:1: #include \"model/m_internal.h\": offload includes only core and backend");
}
Test(check_layers, top_level_offload_only_core_and_backend) {
    violation("offload/y.c", "#include \"offload/y.h\"\n#include \"train/t.h\"\n",
              "offload/y.c:2: #include \"train/t.h\": offload includes only core and backend");
}
Test(check_layers, unresolved_include) {
    violation("src/data/x.c", "#include \"nowhere.h\"\n",
              "src/data/x.c:1: #include \"nowhere.h\": the include resolves");
}
