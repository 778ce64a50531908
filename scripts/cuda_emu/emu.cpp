// emu.cpp: the emulator runtime: thread-local thread/block indices, the block
// launcher (one host thread per GPU thread, blocks in sequence, a barrier after
// each block) and the dynamic shared-memory arrays of the kernels.
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
struct Arg { const std::function<void()> *body; unsigned tx; pthread_barrier_t *end; };
static void *run(void *p) {
    Arg *a = (Arg *)p;
    threadIdx = dim3(a->tx, 0, 0);
    for (unsigned by = 0; by < gridDim.y; by++)
        for (unsigned bx = 0; bx < gridDim.x; bx++) {
            blockIdx = dim3(bx, by, 0);
            (*a->body)();
            emu_block_exit_check();
            pthread_barrier_wait(a->end); // the block's shared memory is free
        }
    return NULL;
}
void emu_launch(dim3 grid, dim3 block, const std::function<void()> &body) {
    gridDim = grid; blockDim = block;
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
alignas(128) float smem[1 << 16];
alignas(128) unsigned char smem_tc[1 << 18];
