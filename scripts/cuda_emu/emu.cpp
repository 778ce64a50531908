// emu.cpp: the emulator runtime: thread-local thread/block indices, the block
// launcher (one host thread per GPU thread, blocks in sequence, a barrier after
// each block), the dynamic shared-memory arrays of the kernels with their
// poisoning and guard check, and the per-thread cp.async state (emu_ptx.h).
#include "emu.h"
#include "emu_ptx.h"
thread_local dim3 threadIdx, blockIdx;
thread_local EmuCpState emu_cp_state;
thread_local unsigned emu_xchg_parity;
void emu_block_exit_check(void) {
    if (!emu_cp_state.open.empty() || !emu_cp_state.groups.empty()) {
        fprintf(stderr, "thread %u of block (%u, %u) ends with cp.async copies pending\n", threadIdx.x, blockIdx.x, blockIdx.y);
        abort();
    }
}
dim3 blockDim, gridDim;
EmuBlock *g_emu_block;
alignas(128) float smem[1 << 16];
alignas(128) unsigned char smem_tc[1 << 18];
static size_t g_smem_bytes;
#define EMU_SMEM_GUARD 16384
static size_t emu_smem_span(size_t cap) { return g_smem_bytes + EMU_SMEM_GUARD < cap ? g_smem_bytes + EMU_SMEM_GUARD : cap; }
static void emu_smem_poison(void) {
    if (!g_smem_bytes) return;
    memset(smem, 0xff, emu_smem_span(sizeof smem));
    memset(smem_tc, 0xff, emu_smem_span(sizeof smem_tc));
}
static void emu_smem_check(void) {
    if (!g_smem_bytes) return;
    const unsigned char *arrs[2] = {(const unsigned char *)smem, smem_tc};
    size_t caps[2] = {sizeof smem, sizeof smem_tc};
    for (int a = 0; a < 2; a++)
        for (size_t i = g_smem_bytes; i < emu_smem_span(caps[a]); i++)
            if (arrs[a][i] != 0xff) {
                fprintf(stderr, "block (%u, %u) wrote shared memory byte %zu beyond its %zu dynamic bytes\n", blockIdx.x,
                        blockIdx.y, i, g_smem_bytes);
                abort();
            }
}
struct Arg { const std::function<void()> *body; unsigned tx; pthread_barrier_t *end; };
static void *run(void *p) {
    Arg *a = (Arg *)p;
    threadIdx = dim3(a->tx, 0, 0);
    for (unsigned by = 0; by < gridDim.y; by++)
        for (unsigned bx = 0; bx < gridDim.x; bx++) {
            blockIdx = dim3(bx, by, 0);
            (*a->body)();
            emu_block_exit_check();
            if (pthread_barrier_wait(a->end) == PTHREAD_BARRIER_SERIAL_THREAD) { // the block's shared memory is free
                emu_smem_check();
                emu_smem_poison();
            }
            pthread_barrier_wait(a->end);
        }
    return NULL;
}
void emu_launch(dim3 grid, dim3 block, size_t smem_bytes, const std::function<void()> &body) {
    gridDim = grid; blockDim = block;
    if (smem_bytes > sizeof smem_tc || smem_bytes > sizeof smem) { fprintf(stderr, "launch with %zu bytes of shared memory\n", smem_bytes); abort(); }
    g_smem_bytes = smem_bytes;
    emu_smem_poison();
    unsigned nt = block.x;
    if (nt % 32) { fprintf(stderr, "block of %u threads\n", nt); abort(); }
    EmuBlock *eb = new EmuBlock;
    g_emu_block = eb;
    pthread_barrier_t end;
    pthread_barrier_init(&end, NULL, nt);
    pthread_barrier_init(&eb->block_bar, NULL, nt);
    for (unsigned w = 0; w < nt / 32; w++) pthread_barrier_init(&eb->warp_bar[w], NULL, 32);
    std::vector<pthread_t> th(nt); std::vector<Arg> args(nt);
    for (unsigned t = 0; t < nt; t++) {
        args[t] = Arg{&body, t, &end};
        pthread_attr_t at; pthread_attr_init(&at); pthread_attr_setstacksize(&at, 1 << 20);
        if (pthread_create(&th[t], &at, run, &args[t]) != 0) { perror("pthread_create"); abort(); }
    }
    for (unsigned t = 0; t < nt; t++) pthread_join(th[t], NULL);
    pthread_barrier_destroy(&end); pthread_barrier_destroy(&eb->block_bar);
    for (unsigned w = 0; w < nt / 32; w++) pthread_barrier_destroy(&eb->warp_bar[w]);
    delete eb;
}
