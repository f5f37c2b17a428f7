/* kernels_cpu.h: which build of bpgen's own kernels (runtime/kernels.c) runs
 * (runtime/kernels_cpu.c).  Not part of an emitted file. */
#ifndef BP_KERNELS_CPU_H
#define BP_KERNELS_CPU_H

#include <stddef.h>

/* The level in use: "baseline", "avx2" or "avx512" on x86-64, "generic" elsewhere. */
const char *bp_cpu_level(void);
/* What the level requires, e.g. "x86-64-v3: AVX2, FMA". */
const char *bp_cpu_level_what(void);
/* The levels this CPU runs, lowest first, space-separated: "baseline avx2". */
const char *bp_cpu_levels(void);
/* The kernels of the level in use, in the order of BP_KERNEL_LIST then
 * BPM_KERNEL_LIST (what jit.c hands to tcc). */
const void *const *bp_cpu_kernels(void);
/* The level to use for want (NULL or "": the best, best being the index of
 * the best level the CPU runs); -1 with a message in err when want is not a
 * level or one the CPU lacks.  The choice BPGEN_CPU is given to at start. */
int bp_cpu_pick(const char *want, int best, char *err, size_t errlen);

#endif /* BP_KERNELS_CPU_H */
