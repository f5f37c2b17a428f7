/* bench/kernel_times.c: the driver of bench/kernel_times.sh.  Runs REPS training
 * steps (forward, backward, SGD; lean, as the trainer runs) of the model the
 * script emitted and instrumented, then prints the time per step of each
 * kernel call the script wrapped, and of the whole step.  MODEL is the
 * BpModel's name (<prefix>_model), given with -D. */
#include "bp_runtime.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

extern const BpModel MODEL;
extern const char *kt_names[];
extern double kt_times[];
extern int kt_count;

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

int main(int argc, char **argv) {
  const BpModel *m = &MODEL;
  long reps = argc > 1 ? atol(argv[1]) : 1000;
  void *s = aligned_alloc(64, (m->state_size + 63) / 64 * 64);
  if (!s || reps < 1)
    return 1;
  m->init(s, 1);
  if (m->set_lean)
    m->set_lean(s, 1);
  for (int i = 0; i < m->ntensors; i++) {   /* integer inputs: indices below 27 */
    const BpTensor *t = &m->tensors[i];
    if (t->kind == BP_INPUT && t->dtype == BP_I32)
      for (size_t j = 0; j < t->numel; j++)
        ((int32_t *)((char *)s + t->offset))[j] = (int32_t)((j * 7) % 27);
  }
  for (int r = 0; r < 3; r++)
    m->forward(s), m->backward(s), m->sgd_step(s, 0.01);
  for (int i = 0; i < kt_count; i++)
    kt_times[i] = 0;
  double t0 = now();
  for (long r = 0; r < reps; r++)
    m->forward(s), m->backward(s), m->sgd_step(s, 0.01);
  double total = now() - t0, sum = 0;
  for (int i = 0; i < kt_count; i++) {
    printf("%-40s %10.2f us\n", kt_names[i], kt_times[i] / reps * 1e6);
    sum += kt_times[i];
  }
  printf("%-40s %10.2f us\n%-40s %10.2f us  (with the timers' own cost)\n", "kernel calls", sum / reps * 1e6,
         "whole step", total / reps * 1e6);
  free(s);
  return 0;
}
