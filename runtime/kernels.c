/* kernels.c: the heavy kernels of runtime/kernels.h, compiled ahead of time by
 * gcc with KFLAGS (-O3 -march=native) and exported, so that models compiled in
 * memory by libtcc (which does not optimise) call them through
 * tcc_add_symbol (see BP_KERNEL_LIST, BPM_KERNEL_LIST). */
#define BP_KERNEL
#include "kernels.h"
/* the in-memory build's own loops (templates/model_kernels.h), with the same
 * flags: exported for jit.c */
#include "../templates/model_kernels.h"
#define BP_S f32
#include "kernels_bpm.h"
#undef BP_S
#define BP_S f64
#include "kernels_bpm.h"
#undef BP_S
