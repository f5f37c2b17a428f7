/* comm.h: MPI for `bpgen run` (gen/comm.c). */
#ifndef BPGEN_COMM_H
#define BPGEN_COMM_H

#include "bp_comm.h"

/* The ranks this process belongs to: MPI_COMM_WORLD when a launcher (mpirun)
 * started it and bpgen was built with MPI (MPI_Init on the first call), else
 * one process.  Started by mpirun as one of several ranks without MPI built
 * in: an error, rather than N copies training alone. */
const BpComm *comm_world(void);
/* MPI_Finalize when comm_world initialised MPI; nothing otherwise. */
void comm_finish(void);

#endif
