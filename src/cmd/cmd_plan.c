/* cmd_plan.c: `owlore plan`: the device memory a training run will need,
 * by kind, and the largest batch that fits a --gpu-mem cap. Takes the same
 * keys as `owlore train` (recipe files included); --model may be a preset. */
#include "cmd/commands.h"
#include "backend/backend.h"
#include "core/memstats.h"
#include "model/preset.h"
#include "train/memplan.h"
#include "train/train_config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cmd_plan(int argc, char **argv) {
    TrainConfig c;
    OwError err;
    int rc = train_config_from_args(&c, argc, argv, &err);
    if (rc == 1) {
        train_config_help(stdout, "owlore plan --model DIR|PRESET [--gpu-mem 24GiB] [--KEY VALUE ...]",
                          "Prints the device memory a training run needs by kind (weights, gradients, optimizer "
                          "state,\nactivations, workspaces) and, with --gpu-mem, the largest --batch-size that fits. "
                          "Takes the keys\nof `owlore train` (recipe files included); --model may be a preset such "
                          "as llama2-7b.");
        return 0;
    }
    if (rc != 0) {
        cmd_report_error("plan", &err);
        return 2;
    }
    if (!c.model[0]) {
        ow_fail(&err, "--model is required (a model directory or a preset such as llama2-7b)");
        cmd_report_error("plan", &err);
        return 2;
    }
    if (train_config_check_values(&c, &err) != 0) {
        cmd_report_error("plan", &err);
        return 2;
    }
    ModelConfig mc;
    char *src;
    int is_dir;
    if (model_preset_resolve(c.model, &mc, &src, &is_dir, &err) != 0) return cmd_report_error("plan", &err);
    BackendDevice dev;
    if (backend_parse_device(c.device, &dev, &err) != 0) return cmd_report_error("plan", &err);
    int gpu = dev.kind != BACKEND_DEVICE_CPU; /* auto plans for the GPU it would use where there is one */
    DType dt = gpu && c.precision != PRECISION_FP32 ? OW_BF16 : OW_F32;
    MemPlan p;
    train_memory_plan(&c, &mc, dt, dt, gpu, &p);
    char line[512], tot[32], capb[32];
    printf("model      %s (%lld blocks, hidden %lld, vocab %lld)\n", src, (long long)mc.num_layers,
           (long long)mc.hidden_size, (long long)mc.vocab_size);
    printf("run        %s, %s, batch %lld x %lld, gamma %lld, rank %lld, recompute %s, device %s\n", c.method,
           optim_kind_name(c.optimizer), (long long)c.batch_size, (long long)c.block_size, (long long)c.gamma,
           (long long)c.rank, c.recompute ? "on" : "off",
           gpu ? (dt == OW_BF16 ? "cuda (bf16)" : "cuda (fp32)") : "cpu (f32)");
    for (int k = 0; k < MEM_KIND_COUNT; k++) {
        char b[32];
        printf("  %-12s %12s\n", mem_kind_name((MemKind)k), format_size(p.bytes[k], b, sizeof b));
    }
    printf("  %-12s %12s\n", "total", format_size(p.total, tot, sizeof tot));
    if (p.host_activations)
        printf("host       %s of offloaded block inputs (page-locked; --offload-activations off keeps them on the "
               "device)\n",
               format_size(p.host_activations, capb, sizeof capb));
    if (p.host_optimizer)
        printf("host       %s of AdamW moments of the embedding and lm_head (page-locked; --offload-optimizer off "
               "keeps them on the device)\n",
               format_size(p.host_optimizer, capb, sizeof capb));
    if (p.host_gradients)
        printf("host       %s of lm_head's gradient (page-locked; computed in the activation memory on the device "
               "and copied out after the head's backward)\n",
               format_size(p.host_gradients, capb, sizeof capb));
    (void)line;
    if (c.gpu_mem) {
        int64_t best = train_memory_largest_batch(&c, &mc, dt, dt, gpu, c.gpu_mem, 4096);
        printf("cap        %s: %s; largest batch size that fits: %lld\n", format_size(c.gpu_mem, capb, sizeof capb),
               p.total <= c.gpu_mem ? "fits" : "does NOT fit", (long long)best);
    }
    free(src);
    return 0;
}
