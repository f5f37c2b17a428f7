/* bp_comm.h: what a data-parallel trainer needs from MPI (issue 17), as a
 * table of functions, so that one trainer source serves both builds:
 *
 *   bpgen run    the trainer is compiled in memory by libtcc, which cannot
 *                link libmpi itself: bpgen (linked with libmpi, gen/comm.c)
 *                fills a BpComm and hands it over (bp_train_set_comm);
 *   --trainer    the standalone program built with `mpicc -DBP_MPI` fills
 *                one with the same functions below, compiled into it.
 *
 * Without MPI (no launcher, or a build without it) the table is one process:
 * rank 0 of 1, every function a no-op, and the trainer runs exactly as it
 * does alone.  Errors: MPI's default handler on MPI_COMM_WORLD
 * (MPI_ERRORS_ARE_FATAL) is kept, so a collective that fails -- a peer that
 * died -- ends the whole job; mpirun then kills the remaining ranks and
 * names the one that died.  This header is pasted into the trainer's text by
 * scripts/embed.sh: plain C99 that gcc and tcc accept, no includes but
 * system ones.
 */
#ifndef BP_COMM_H
#define BP_COMM_H

#include <stddef.h>
#include <stdlib.h>

typedef struct BpComm {
  int rank, size;           /* this process, of size (MPI_COMM_WORLD) */
  /* buf[0..n-1] (doubles when f64, else floats) := their sum over the ranks,
   * in place (MPI_Allreduce, MPI_SUM); 0 on success */
  int (*allreduce_sum)(void *buf, size_t n, int f64);
  /* rank 0's `bytes` bytes at buf to every rank (MPI_Bcast); 0 on success */
  int (*bcast)(void *buf, size_t bytes);
  int (*barrier)(void);
  void (*abort)(int code);  /* end every rank of the job (MPI_Abort) */
  const char *what;         /* "one process" or the MPI library's name */
} BpComm;

#if defined(__GNUC__)
#define BP_COMM_FN static __attribute__((unused))
#else
#define BP_COMM_FN static
#endif

/* The number of ranks a launcher announced in the environment (Open MPI's
 * mpirun, MPICH's hydra, Slurm's PMI), 0 when none did. */
BP_COMM_FN int bp_comm_launched(void) {
  static const char *const vars[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE"};
  for (int i = 0; i < 3; i++) {
    const char *v = getenv(vars[i]);
    if (v && *v)
      return atoi(v) > 0 ? atoi(v) : 1;
  }
  return 0;
}

BP_COMM_FN int bp_comm_self_allreduce(void *buf, size_t n, int f64) {
  (void)buf, (void)n, (void)f64;
  return 0;
}
BP_COMM_FN int bp_comm_self_bcast(void *buf, size_t bytes) {
  (void)buf, (void)bytes;
  return 0;
}
BP_COMM_FN int bp_comm_self_barrier(void) { return 0; }
BP_COMM_FN void bp_comm_self_abort(int code) { (void)code; }

/* One process: rank 0 of 1. */
BP_COMM_FN void bp_comm_self(BpComm *c) {
  c->rank = 0;
  c->size = 1;
  c->allreduce_sum = bp_comm_self_allreduce;
  c->bcast = bp_comm_self_bcast;
  c->barrier = bp_comm_self_barrier;
  c->abort = bp_comm_self_abort;
  c->what = "one process";
}

#ifdef BP_MPI
#include <mpi.h>

enum { BP_COMM_CHUNK = 1 << 28 };   /* elements per call: MPI counts are ints */

BP_COMM_FN int bp_comm_mpi_allreduce(void *buf, size_t n, int f64) {
  size_t es = f64 ? sizeof(double) : sizeof(float);
  for (size_t i = 0; i < n;) {
    int k = n - i > BP_COMM_CHUNK ? BP_COMM_CHUNK : (int)(n - i);
    if (MPI_Allreduce(MPI_IN_PLACE, (char *)buf + i * es, k, f64 ? MPI_DOUBLE : MPI_FLOAT,
                      MPI_SUM, MPI_COMM_WORLD) != MPI_SUCCESS)
      return -1;
    i += (size_t)k;
  }
  return 0;
}

BP_COMM_FN int bp_comm_mpi_bcast(void *buf, size_t bytes) {
  for (size_t i = 0; i < bytes;) {
    int k = bytes - i > BP_COMM_CHUNK ? BP_COMM_CHUNK : (int)(bytes - i);
    if (MPI_Bcast((char *)buf + i, k, MPI_BYTE, 0, MPI_COMM_WORLD) != MPI_SUCCESS)
      return -1;
    i += (size_t)k;
  }
  return 0;
}

BP_COMM_FN int bp_comm_mpi_barrier(void) { return MPI_Barrier(MPI_COMM_WORLD) == MPI_SUCCESS ? 0 : -1; }
BP_COMM_FN void bp_comm_mpi_abort(int code) { MPI_Abort(MPI_COMM_WORLD, code); }

/* MPI_Init (unless done) and the table of MPI_COMM_WORLD; returns 1 when
 * this call initialised MPI (the caller then finalises it), 0 when it was
 * already, -1 on failure. */
BP_COMM_FN int bp_comm_mpi_init(BpComm *c) {
  static char what[MPI_MAX_LIBRARY_VERSION_STRING + 1];
  int inited = 0, started = 0, len = 0;
  MPI_Initialized(&inited);
  if (!inited) {
    if (MPI_Init(NULL, NULL) != MPI_SUCCESS)
      return -1;
    started = 1;
  }
  MPI_Comm_rank(MPI_COMM_WORLD, &c->rank);
  MPI_Comm_size(MPI_COMM_WORLD, &c->size);
  MPI_Get_library_version(what, &len);
  for (int i = 0; i < len; i++)   /* the first line: "Open MPI v4.1.4, package: ..." */
    if (what[i] == '\n' || what[i] == ',') {
      what[i] = '\0';
      break;
    }
  c->allreduce_sum = bp_comm_mpi_allreduce;
  c->bcast = bp_comm_mpi_bcast;
  c->barrier = bp_comm_mpi_barrier;
  c->abort = bp_comm_mpi_abort;
  c->what = what;
  return started;
}
#endif

#endif
