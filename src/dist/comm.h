/* comm.h: the processes of a data-parallel run. A run started by mpirun (or
 * any launcher that sets OpenMPI's or PMIx's rank variables) is one rank of
 * a world of OMPI_COMM_WORLD_SIZE processes, joined through MPI (OpenMPI,
 * when the build found it: OWLORE_HAVE_MPI). A run started by `owlore train
 * --ranks N` on a machine without mpirun (or with --launcher local) is one
 * of N ranks of this machine joined through a shared memory segment (the
 * local transport: a barrier of atomics, sums in rank order, no MPI). Any
 * other run is a world of one, with no call made. The collectives below
 * are in place, blocking (but comm_sum_f32_start under MPI) and called by
 * every rank in the same order (the training loop's order). A rank that
 * fails ends the whole job (comm_abort): the others would wait for it
 * forever (local ranks' waits fail, and their launcher ends them). */
#ifndef OWLORE_DIST_COMM_H
#define OWLORE_DIST_COMM_H

#include "core/error.h"

#include <stddef.h>
#include <stdint.h>

typedef struct Comm {
    int rank, size;             /* 0 and 1 outside mpirun */
    int local_rank, local_size; /* on this machine (the GPU a rank uses) */
    int mpi;                    /* MPI_Init was called */
    void *pending;              /* the started sums' requests (MPI_Request[n_pending]) */
    int n_pending, cap_pending;
    void *shm; /* the local transport's segment (ranks started by `owlore train --ranks N`), or NULL */
} Comm;

/* The local transport: `owlore train --ranks N` without mpirun starts N copies of itself with these set
 * (the rank, N, and the descriptor of the shared memory that comm_local_create made, which they inherit). */
#define COMM_LOCAL_RANK_ENV "OWLORE_LOCAL_RANK"
#define COMM_LOCAL_SIZE_ENV "OWLORE_LOCAL_SIZE"
#define COMM_LOCAL_FD_ENV "OWLORE_LOCAL_FD"
/* The segment for `size` local ranks: an anonymous memory file (memfd), inherited by the ranks, so nothing is
 * left behind however the launcher and the ranks end. Returns its descriptor (the caller closes it once the
 * ranks are started), or -1. */
int comm_local_create(int size, OwError *err);

/* The world of this process (a world of one until comm_init joins a launched job). */
Comm *comm_world(void);
/* 1 when a launcher started this process as a rank of several (OMPI/PMIx variables, or the local launcher's). */
int comm_launched(void);
/* Joins the job when launched (MPI_Init); a world of one otherwise. Fails when the build has no
 * MPI but the launcher asks for several ranks. */
int comm_init(Comm *c, OwError *err);
/* Leaves the job (MPI_Finalize after a barrier); a no-op for a world of one. */
void comm_finalize(Comm *c);
/* Ends every rank of the job at once with `code` (MPI_Abort); exits this process alone otherwise. */
void comm_abort(Comm *c, int code);

/* Element-wise sums over the ranks, in place, identical on every rank afterwards. */
int comm_sum_f32(Comm *c, float *buf, int64_t n, OwError *err);
int comm_sum_f64(Comm *c, double *buf, int64_t n, OwError *err);
/* Starts the in-place sum of buf[n] over the ranks and returns (MPI_Iallreduce): buf is neither read
 * nor written until comm_wait, which completes every sum started. */
int comm_sum_f32_start(Comm *c, float *buf, int64_t n, OwError *err);
int comm_wait(Comm *c, OwError *err);
/* Rank root's len bytes into buf on every rank. */
int comm_bcast(Comm *c, void *buf, size_t len, int root, OwError *err);
/* The largest of every rank's v. */
int comm_max_i64(Comm *c, int64_t *v, OwError *err);
/* Every rank's v into all[size] (rank order). */
int comm_gather_u64(Comm *c, uint64_t v, uint64_t *all, OwError *err);
/* Waits for every rank. */
int comm_barrier(Comm *c, OwError *err);

#endif
