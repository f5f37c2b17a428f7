/* comm.c: the communication table (runtime/bp_comm.h) that `bpgen run` hands
 * the trainer it compiles in memory.  libtcc links nothing but what bpgen
 * gives it, so MPI reaches the trainer through bpgen: built with Open MPI
 * (the Makefile defines BP_HAVE_MPI when pkg-config finds mpi-c), bpgen calls
 * MPI_Init when a launcher started it and fills the table with the MPI
 * functions of bp_comm.h; the trainer only ever calls through the table.
 * MPI is not initialised when no launcher is there: a plain `bpgen run` runs
 * as it always did, without MPI's start-up cost or messages.
 */
#ifdef BP_HAVE_MPI
#define BP_MPI   /* bp_comm.h's MPI functions (before comm.h includes it) */
#endif
#include "bpgen.h"
#include "comm.h"

static BpComm world;
static bool ready, started;

const BpComm *comm_world(void) {
  if (ready)
    return &world;
  ready = true;
  bp_comm_self(&world);
  int n = bp_comm_launched();
  if (n == 0)
    return &world;
#ifdef BP_MPI
  int rc = bp_comm_mpi_init(&world);
  if (rc < 0)
    error_plain("MPI_Init failed");
  started = rc == 1;
#else
  if (n > 1)
    error_plain("started by an MPI launcher as one of %d ranks, but this bpgen was built "
                "without MPI: each rank would train alone (install libopenmpi-dev and rebuild: "
                "make clean && make)", n);
#endif
  return &world;
}

void comm_finish(void) {
#ifdef BP_MPI
  if (started)
    MPI_Finalize();
#endif
  started = false;
}
