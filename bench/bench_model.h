/* bench/bench_model.h: what the bench harnesses (bench/step.c, bench/seq_step.c,
 * bench/jit_times.c) each need of an emitted model: a batch of inputs drawn in
 * range, and the gcc build of the emitted file as a shared object.  Included once into a harness program, after bpgen.h, bp_runtime.h
 * and ref.h.  Bench only. */
#ifndef BENCH_MODEL_H
#define BENCH_MODEL_H
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

/* every input of state st drawn in range by the reference runtime's rule, from
 * one generator seeded with seed (the same batch for every build) */
static inline void bench_fill_inputs(const BpModel *m, void *st, Graph *g, uint64_t seed) {
  BpRng rng;
  bp_rng_seed(&rng, seed);
  for (int i = 0; i < g->nforward; i++) {
    Node *n = g->nodes[i];
    if (n->op != OP_input)
      continue;
    const BpTensor *t = bp_find_tensor(m, n->name, -1);
    if (!t)
      die("no tensor %s", n->name);
    char *at = (char *)st + t->offset;
    if (t->dtype == BP_I32) {
      ref_draw_input(g, n, &rng, at);
      continue;
    }
    double *tmp = xcalloc(t->numel, sizeof *tmp);
    ref_draw_input(g, n, &rng, tmp);
    for (size_t k = 0; k < t->numel; k++) {
      if (t->dtype == BP_F32)
        ((float *)at)[k] = (float)tmp[k];
      else
        ((double *)at)[k] = tmp[k];
    }
    free(tmp);
  }
}

/* text written to cpath, built with gcc -O3
 * -march=native into the shared object sopath and loaded.  reuse: leave an
 * existing sopath whose cpath holds exactly this text as it is.  *secs (if not
 * NULL): the wall time of the gcc run, 0 when reused. */
static inline void *bench_gcc_so(const char *text, const char *cpath, const char *sopath, int reuse, double *secs) {
  int same = 0;
  struct stat so_st;
  FILE *f = reuse ? fopen(cpath, "rb") : NULL;
  if (f && stat(sopath, &so_st) == 0) {
    size_t n = strlen(text);
    char *old = xcalloc(n + 2, 1);
    same = fread(old, 1, n + 1, f) == n && memcmp(old, text, n) == 0;
    free(old);
  }
  if (f)
    fclose(f);
  if (secs)
    *secs = 0;
  if (!same) {
    f = fopen(cpath, "wb");
    if (!f || fputs(text, f) < 0 || fclose(f) != 0)
      error_plain("cannot write %s", cpath);
    char *cmd = arena_printf("gcc -O3 -march=native -shared -fPIC -o %s %s -lm -lpthread", sopath, cpath);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (system(cmd) != 0)
      error_plain("failed: %s", cmd);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (secs)
      *secs = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
  }
  char *abspath = realpath(sopath, NULL);
  void *so = abspath ? dlopen(abspath, RTLD_NOW | RTLD_LOCAL) : NULL;
  free(abspath);
  if (!so)
    error_plain("dlopen %s: %s", sopath, dlerror());
  return so;
}
#endif
