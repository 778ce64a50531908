/* rope.c: rotary position tables, computed the way transformers does
 * (inverse frequencies and angles in float32, llama3 frequency scaling). */
#include "model/model.h"
#include "model/model_internal.h"

#include <math.h>

static void inv_freqs(const ModelConfig *cfg, float *inv) {
    int64_t half = cfg->head_dim / 2;
    for (int64_t i = 0; i < half; i++) {
        float expo = (float)(2 * i) / (float)cfg->head_dim;
        inv[i] = (float)(1.0 / pow(cfg->rope_theta, (double)expo));
    }
    if (cfg->rope_scaling != ROPE_SCALING_LLAMA3) return;
    /* float32 throughout, as transformers' _compute_llama3_parameters */
    float factor = (float)cfg->rope_factor, lo = (float)cfg->rope_low_freq_factor;
    float hi = (float)cfg->rope_high_freq_factor, old_ctx = (float)cfg->rope_original_max_pos;
    float low_wavelen = old_ctx / lo, high_wavelen = old_ctx / hi;
    for (int64_t i = 0; i < half; i++) {
        float f = inv[i];
        float wavelen = (float)(2.0 * 3.14159265358979323846) / f;
        float scaled = wavelen > low_wavelen ? f / factor : f;
        if (!(wavelen < high_wavelen) && !(wavelen > low_wavelen)) {
            float smooth = (old_ctx / wavelen - lo) / (hi - lo);
            scaled = (1.0f - smooth) * scaled / factor + smooth * scaled;
        }
        inv[i] = scaled;
    }
}

void rope_tables(const ModelConfig *cfg, int64_t T, float *cos_out, float *sin_out) {
    int64_t half = cfg->head_dim / 2;
    float inv[512];
    OW_CHECK(half <= 512);
    inv_freqs(cfg, inv);
    for (int64_t t = 0; t < T; t++) {
        for (int64_t i = 0; i < half; i++) {
            float angle = (float)t * inv[i];
            cos_out[t * half + i] = (float)cos((double)angle);
            sin_out[t * half + i] = (float)sin((double)angle);
        }
    }
}
