/* cmd_export.c: `owlore export`: a run's model as a Hugging Face directory. */
#include "cmd/commands.h"
#include "core/args.h"
#include "core/fileio.h"
#include "model/config.h"
#include "train/export.h"
#include "train/train_config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The base model's torch_dtype as an export dtype (bf16 when unknown). */
static DType base_dtype(const char *run_dir) {
    TrainConfig c;
    OwError e;
    ModelConfig mc;
    if (train_config_from_run(&c, run_dir, &e) != 0) return OW_BF16;
    char *p = ow_path_join(c.model, "config.json");
    int rc = ow_path_exists(p) ? model_config_load(p, &mc, &e) : -1;
    free(p);
    if (rc != 0) return OW_BF16;
    if (strcmp(mc.torch_dtype, "float32") == 0) return OW_F32;
    if (strcmp(mc.torch_dtype, "float16") == 0) return OW_F16;
    return OW_BF16;
}

int cmd_export(int argc, char **argv) {
    const char *out = NULL, *dtype = NULL, *checkpoint = NULL;
    size_t shard = 5000000000ull;
    ArgSpec specs[] = {
        {"out", ARG_STR, &out, "DIR", "the Hugging Face directory to write (replaced if it exists)", NULL},
        {"dtype", ARG_STR, &dtype, "DTYPE", "bf16 | fp32 | fp16 (default: the base model's torch_dtype)", NULL},
        {"shard-size", ARG_SIZE, &shard, "SIZE", "largest safetensors shard, e.g. 5GB (default, as transformers)",
         NULL},
        {"checkpoint", ARG_STR, &checkpoint, "step-N", "export this checkpoint instead of the newest", NULL},
    };
    int nspecs = (int)(sizeof specs / sizeof specs[0]);
    ArgsResult res;
    OwError err;
    int parsed =
        cmd_args("export", argc, argv, specs, nspecs,
                 "owlore export RUN_DIR --out DIR [--dtype bf16|fp32|fp16] [--shard-size 5GB] [--checkpoint step-N]",
                 "Writes the fine-tuned model of a training run as a Hugging Face directory: the base model's\n"
                 "tensors with the run's newest (or the named) checkpoint over them, config.json with torch_dtype,\n"
                 "the base model's tokenizer files, and safetensors shards with model.safetensors.index.json when\n"
                 "the model is larger than the shard size. Written under a temporary name, then renamed; one\n"
                 "tensor at a time is in memory.",
                 &res);
    if (parsed >= 0) return parsed;
    if (res.npos != 1 || !out) {
        ow_fail(&err, "usage: owlore export RUN_DIR --out DIR (see --help)");
        cmd_report_error("export", &err);
        return 2;
    }
    const char *run = res.pos[0];
    ExportOptions o = {OW_BF16, shard, checkpoint};
    if (!dtype) {
        o.dtype = base_dtype(run);
    } else if (!strcmp(dtype, "bf16") || !strcmp(dtype, "bfloat16")) {
        o.dtype = OW_BF16;
    } else if (!strcmp(dtype, "fp32") || !strcmp(dtype, "float32")) {
        o.dtype = OW_F32;
    } else if (!strcmp(dtype, "fp16") || !strcmp(dtype, "float16")) {
        o.dtype = OW_F16;
    } else {
        ow_fail(&err, "--dtype %s is not allowed (allowed: bf16, fp32, fp16)", dtype);
        cmd_report_error("export", &err);
        return 2;
    }
    if (shard == 0) {
        ow_fail(&err, "--shard-size must be positive (e.g. 5GB)");
        cmd_report_error("export", &err);
        return 2;
    }
    char used[128];
    if (export_run(run, out, &o, used, sizeof used, &err) != 0) return cmd_report_error("export", &err);
    printf("exported %s (%s) as %s to %s\n", run, used, dtype_name(o.dtype), out);
    return 0;
}
