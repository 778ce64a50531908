/* comm.h: the processes of a data-parallel run. A run started by mpirun (or
 * any launcher that sets OpenMPI's or PMIx's rank variables) is one rank of
 * a world of OMPI_COMM_WORLD_SIZE processes, joined through MPI (OpenMPI,
 * when the build found it: OWLORE_HAVE_MPI); any other run is a world of one,
 * with no MPI call made. The collectives below are blocking, in place, and
 * called by every rank in the same order (the training loop's order). A rank
 * that fails ends the whole job
 * (comm_abort): the others would wait for it forever. */
#ifndef OWLORE_DIST_COMM_H
#define OWLORE_DIST_COMM_H

#include "core/error.h"

#include <stddef.h>
#include <stdint.h>

typedef struct Comm {
    int rank, size;             /* 0 and 1 outside mpirun */
    int local_rank, local_size; /* on this machine (the GPU a rank would use) */
    int mpi;                    /* MPI_Init was called */
} Comm;

/* The world of this process (a world of one until comm_init joins a launched job). */
Comm *comm_world(void);
/* 1 when a launcher started this process as a rank of several (OMPI/PMIx variables set). */
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
/* The largest of every rank's v. */
int comm_max_i64(Comm *c, int64_t *v, OwError *err);
/* Every rank's v into all[size] (rank order). */
int comm_gather_u64(Comm *c, uint64_t v, uint64_t *all, OwError *err);
/* Waits for every rank. */
int comm_barrier(Comm *c, OwError *err);

#endif
