/* kernels.c: the heavy kernels of runtime/kernels.h, compiled ahead of time by
 * gcc with KFLAGS (-O3) and exported, so that models compiled in memory by
 * libtcc (which does not optimise) call them through tcc_add_symbol (see
 * BP_KERNEL_LIST, BPM_KERNEL_LIST).
 *
 * On x86-64 the Makefile builds this file once per CPU level with -DBP_LEVEL=
 * baseline, avx2, avx512 (and that level's -march); each object then defines
 * the table bp_kernels_<level> of its kernels' addresses, the only symbol the
 * Makefile leaves global, and runtime/kernels_cpu.c picks one table at start. */
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

#ifdef BP_LEVEL
#define BP_ADDR_(name) (const void *)&name,
extern const void *const BP_PASTE(bp_kernels_, BP_LEVEL)[];
const void *const BP_PASTE(bp_kernels_, BP_LEVEL)[] = {BP_KERNEL_LIST(BP_ADDR_) BPM_KERNEL_LIST(BP_ADDR_)};
#endif
