/* kernels_cpu.c: the build of runtime/kernels.c that bpgen's own kernels run
 * (the kernels it hands to libtcc, gen/jit.c, and that its tests and benches
 * call).
 *
 * On x86-64 the Makefile compiles runtime/kernels.c once per level below, each
 * with its -march, and keeps one global symbol per object: the table
 * bp_kernels_<level> of its kernels' addresses (BP_KERNEL_LIST then
 * BPM_KERNEL_LIST order); the kernels themselves, their thread pool and
 * scratch pointer stay local to the object.  Before main (a constructor, so
 * before any kernel runs) the best level this CPU runs is chosen, or the one
 * the environment variable BPGEN_CPU names -- a level the CPU lacks, or no
 * level at all, is refused.  Each kernel's name is then a one-jump trampoline
 * through the chosen address, so C code calls the kernels by name; jit.c hands
 * tcc the addresses themselves.  So a bpgen built on one x86-64 runs on any
 * other, at the best speed the CPU allows.  Elsewhere (no BP_KERNEL_LEVELS)
 * runtime/kernels.c is built once, plainly, and defines the names itself.
 *
 * An emitted model file is not concerned: it pastes the kernels' text in and
 * is built with whatever flags its user chooses (-march=native).
 */
#include "kernels_cpu.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BP_KERNELS_DECLARE_ONLY
#include "kernels.h"
#define BPM_KERNELS_DECLARE_ONLY
#include "../templates/model_kernels.h"

#define BP_ALL_KERNELS(X) BP_KERNEL_LIST(X) BPM_KERNEL_LIST(X)
#define BP_ONE_(name) +1
enum { BP_NKERNELS = 0 BP_ALL_KERNELS(BP_ONE_) };

#ifdef BP_KERNEL_LEVELS
extern const void *const bp_kernels_baseline[BP_NKERNELS], *const bp_kernels_avx2[BP_NKERNELS],
    *const bp_kernels_avx512[BP_NKERNELS];
static const struct {
  const char *name, *what;
  const void *const *kernels;
} levels[] = {
  {"baseline", "x86-64: SSE2", bp_kernels_baseline},
  {"avx2", "x86-64-v3: AVX2, FMA", bp_kernels_avx2},
  {"avx512", "x86-64-v4: AVX-512 F, BW, CD, DQ, VL", bp_kernels_avx512},
};
enum { NLEVELS = sizeof levels / sizeof levels[0] };
static int runs(int i) { /* the CPU (and the OS: saved vector registers) runs level i */
  __builtin_cpu_init();
  return i == 0 ? 1 : i == 1 ? __builtin_cpu_supports("x86-64-v3") : __builtin_cpu_supports("x86-64-v4");
}

/* the chosen level's address of each kernel: the trampolines jump through them */
#define BP_SLOT_(name) __attribute__((visibility("hidden"))) const void *bp_kp_##name;
BP_ALL_KERNELS(BP_SLOT_)
#if defined(__CET__) && (__CET__ & 1)
#define BP_ENDBR "endbr64\n"
#else
#define BP_ENDBR ""
#endif
#define BP_TRAMPOLINE_(name)                                                              \
  __asm__(".text\n.p2align 4\n.globl " #name "\n.type " #name ", @function\n" #name ":\n" \
          BP_ENDBR "jmp *bp_kp_" #name "(%rip)\n.size " #name ", .-" #name "\n");
BP_ALL_KERNELS(BP_TRAMPOLINE_)
static const void **const slots[BP_NKERNELS] = {
#define BP_SLOTADDR_(name) &bp_kp_##name,
  BP_ALL_KERNELS(BP_SLOTADDR_)
};
#else /* one plain build */
static const void *const plain[BP_NKERNELS] = {
#define BP_ADDR_(name) (const void *)&name,
  BP_ALL_KERNELS(BP_ADDR_)
};
static const struct {
  const char *name, *what;
  const void *const *kernels;
} levels[] = {{"generic", "this machine's plain build", plain}};
enum { NLEVELS = 1 };
static int runs(int i) { return i == 0; }
#endif

static int level = -1;

int bp_cpu_pick(const char *want, int best, char *err, size_t errlen) {
  if (!want || !*want)
    return best;
  for (int i = 0; i < NLEVELS; i++) {
    if (strcmp(want, levels[i].name) != 0)
      continue;
    if (i <= best)
      return i;
    snprintf(err, errlen, "BPGEN_CPU=%s: this CPU lacks %s (it runs: %s)", want, levels[i].what,
             bp_cpu_levels());
    return -1;
  }
  snprintf(err, errlen, "BPGEN_CPU=%s: not a level of this build (its levels: %s)", want,
           NLEVELS == 3 ? "baseline, avx2, avx512" : levels[0].name);
  return -1;
}

__attribute__((constructor)) static void choose(void) {
  int best = 0;
  while (best + 1 < NLEVELS && runs(best + 1))
    best++;
  char err[256];
  level = bp_cpu_pick(getenv("BPGEN_CPU"), best, err, sizeof err);
  if (level < 0) {
    fprintf(stderr, "bpgen: error: %s\n", err);
    exit(1);
  }
#ifdef BP_KERNEL_LEVELS
  for (int k = 0; k < BP_NKERNELS; k++)
    *slots[k] = levels[level].kernels[k];
#endif
}

const char *bp_cpu_level(void) { return levels[level].name; }
const char *bp_cpu_level_what(void) { return levels[level].what; }
const void *const *bp_cpu_kernels(void) { return levels[level].kernels; }

const char *bp_cpu_levels(void) {
  static char buf[64];
  buf[0] = '\0';
  for (int i = 0; i < NLEVELS && runs(i); i++)
    snprintf(buf + strlen(buf), sizeof buf - strlen(buf), "%s%s", i ? " " : "", levels[i].name);
  return buf;
}
