// mma.h: WMMA (nvcuda::wmma) for the emulator: fragments are full 16x16
// copies per lane; the accumulator x[] is the lane's 8-element slice.
#pragma once
#include "emu.h"
namespace nvcuda { namespace wmma {
struct matrix_a {}; struct matrix_b {}; struct accumulator {};
struct row_major {}; struct col_major {};
enum layout_t { mem_row_major, mem_col_major };
static inline void emu_check_ptr(const void *p, int ldm, int elem) {
    if ((uintptr_t)p % 32 != 0) { fprintf(stderr, "WMMA pointer %p not 32-byte aligned\n", p); abort(); }
    if ((ldm * elem) % 16 != 0) { fprintf(stderr, "WMMA ldm %d not a multiple of 16 bytes\n", ldm); abort(); }
}
template <typename Use, int M, int N, int K, typename T, typename Layout = void> struct fragment;
template <typename Layout> struct fragment<matrix_a, 16, 16, 16, __nv_bfloat16, Layout> { float m[256]; };
template <typename Layout> struct fragment<matrix_b, 16, 16, 16, __nv_bfloat16, Layout> { float m[256]; };
template <> struct fragment<accumulator, 16, 16, 16, float, void> {
    static constexpr int num_elements = 8;
    float m[256];
    float *x;
    fragment() { x = m + (threadIdx.x & 31) * 8; }
    fragment(const fragment &) = delete;
    fragment &operator=(const fragment &) = delete;
};
// element (r, c) of a 16x16 operand
template <typename Use> static inline void load_ab(float *m, const __nv_bfloat16 *p, unsigned ldm, bool rowmaj) {
    emu_check_ptr(p, (int)ldm, 2);
    for (int r = 0; r < 16; r++) for (int c = 0; c < 16; c++) m[r * 16 + c] = __bfloat162float(rowmaj ? p[r * ldm + c] : p[c * ldm + r]);
}
static inline void load_matrix_sync(fragment<matrix_a, 16, 16, 16, __nv_bfloat16, row_major> &f, const __nv_bfloat16 *p, unsigned ldm) { load_ab<matrix_a>(f.m, p, ldm, true); }
static inline void load_matrix_sync(fragment<matrix_b, 16, 16, 16, __nv_bfloat16, row_major> &f, const __nv_bfloat16 *p, unsigned ldm) { load_ab<matrix_b>(f.m, p, ldm, true); }
static inline void load_matrix_sync(fragment<matrix_b, 16, 16, 16, __nv_bfloat16, col_major> &f, const __nv_bfloat16 *p, unsigned ldm) { load_ab<matrix_b>(f.m, p, ldm, false); }
static inline void load_matrix_sync(fragment<accumulator, 16, 16, 16, float, void> &f, const float *p, unsigned ldm, layout_t l) {
    emu_check_ptr(p, (int)ldm, 4);
    for (int r = 0; r < 16; r++) for (int c = 0; c < 16; c++) f.m[r * 16 + c] = l == mem_row_major ? p[r * ldm + c] : p[c * ldm + r];
}
static inline void store_matrix_sync(float *p, const fragment<accumulator, 16, 16, 16, float, void> &f, unsigned ldm, layout_t l) {
    emu_check_ptr(p, (int)ldm, 4);
    int lane = threadIdx.x & 31;
    for (int e = lane * 8; e < lane * 8 + 8; e++) { int r = e / 16, c = e % 16; if (l == mem_row_major) p[r * ldm + c] = f.m[e]; else p[c * ldm + r] = f.m[e]; }
}
static inline void fill_fragment(fragment<accumulator, 16, 16, 16, float, void> &f, float v) { for (int i = 0; i < 256; i++) f.m[i] = v; }
template <typename LA, typename LB>
static inline void mma_sync(fragment<accumulator, 16, 16, 16, float, void> &d, const fragment<matrix_a, 16, 16, 16, __nv_bfloat16, LA> &a,
                            const fragment<matrix_b, 16, 16, 16, __nv_bfloat16, LB> &b, const fragment<accumulator, 16, 16, 16, float, void> &c) {
    float out[256];
    for (int r = 0; r < 16; r++) for (int n = 0; n < 16; n++) { float s = c.m[r * 16 + n]; for (int k = 0; k < 16; k++) s += a.m[r * 16 + k] * b.m[k * 16 + n]; out[r * 16 + n] = s; }
    memcpy(d.m, out, sizeof out);
}
}}
