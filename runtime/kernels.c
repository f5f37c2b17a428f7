/* kernels.c: the heavy kernels of runtime/kernels.h, compiled ahead of time by
 * gcc with KFLAGS (-O3 -march=native) and exported, so that models compiled in
 * memory by libtcc (which does not optimise) call them through
 * tcc_add_symbol (see BP_KERNEL_LIST). */
#define BP_KERNEL
#include "kernels.h"
