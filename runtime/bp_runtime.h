/* bp_runtime.h: the ABI between emitted models and whoever drives them.
 *
 * Every emitted model (a file for gcc, or source compiled in memory by libtcc)
 * defines one `const BpModel <prefix>_model`.  The model's whole state --
 * inputs, params, grads, activations, scratch -- lives in one block of
 * `state_size` bytes that the caller allocates (zeroed, 64-byte aligned is
 * best); tensors are found through the table by name.  Params are one
 * contiguous run of elements, grads another in the same order, so optimisers
 * can treat each as one flat array (llm.c's malloc_and_point_parameters).
 *
 * Also here: the random number generator that param initialisation uses, so
 * that the reference runtime and generated code draw the same values for the
 * same seed.  This header is copied verbatim into emitted files, so it must
 * stay plain C99 that both gcc and tcc accept.
 */
#ifndef BP_RUNTIME_H
#define BP_RUNTIME_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <math.h>

#define BP_MAXRANK 6

typedef enum { BP_F32 = 0, BP_F64 = 1, BP_I32 = 2 } BpDType;
typedef enum {
  BP_INPUT = 0,   /* filled by the caller before forward */
  BP_PARAM = 1,   /* trained */
  BP_GRAD = 2,    /* d(loss)/d(param or named intermediate); name is "d" + name */
  BP_ACT = 3,     /* named intermediate value (forward) */
  BP_STAT = 4     /* batchnorm statistics for inference (name "<bn>.mean", "<bn>.var") */
} BpKind;

typedef struct BpTensor {
  const char *name;
  int kind;                 /* BpKind */
  int dtype;                /* BpDType */
  int rank;
  int dims[BP_MAXRANK];
  size_t numel;
  size_t offset;            /* bytes from the start of the state */
  int line;                 /* spec line that defines it */
} BpTensor;

/* The ranks of a data-parallel run (issue 17) as a model sees them
 * (BpModel.set_ranks): the model calls sum from forward, backward or
 * calib_end, every rank at the same point. */
typedef struct BpRanks {
  int rank, size;
  void *ctx;
  /* buf[0..n-1] := the sum over the ranks of their buf, the same bits on every
   * rank.  grads != 0 (a backward's sums): each rank's buf weighed by its share
   * of the global loss, the sum divided by this rank's share (the trainer then
   * weighs this rank's gradients by it).  Never returns on failure. */
  void (*sum)(void *ctx, double *buf, size_t n, int grads);
} BpRanks;

typedef struct BpModel {
  const char *name;         /* model name (the spec's file stem) */
  int dtype;                /* BP_F32 or BP_F64: every float tensor */
  size_t state_size;        /* bytes */
  int ntensors;
  const BpTensor *tensors;
  size_t param_offset;      /* first param element (bytes) */
  size_t grad_offset;       /* first grad-of-param element (bytes), same order */
  size_t nparam;            /* elements in all params together */
  int loss_index;           /* tensor index of "loss" */
  int logits_index;         /* tensor fed to cross_entropy (or named logits), or -1 */

  /* params from the spec's initialisers; zeroes grads and statistics */
  void (*init)(void *state, uint64_t seed);
  /* training-mode forward (batch statistics); returns the loss */
  double (*forward)(void *state);
  /* gradients of the loss after forward(): zeroes every grad once, then
   * fills d<param> and d<intermediate> for every param and named tensor */
  void (*backward)(void *state);
  /* params -= lr * grads */
  void (*sgd_step)(void *state, double lr);
  /* inference forward: batchnorm uses the stored statistics; returns the loss */
  double (*forward_eval)(void *state);
  /* batchnorm calibration over a data set (the lecture's "calibrate the batch
   * norm at the end of training"), in calib_passes passes (0: no batchnorm):
   * for pass = 0 .. calib_passes-1, begin(pass), then accum for each batch with
   * the number of valid rows (the first nrows of the batch), then end, which
   * stores the mean and unbiased variance into the BP_STAT tensors of the
   * batchnorms with `pass` batchnorms upstream (their inputs need the upstream
   * ones calibrated first) */
  int calib_passes;
  void (*calib_begin)(void *state, int pass);
  void (*calib_accum)(void *state, int nrows);
  void (*calib_end)(void *state);
  /* lean on (after init, which turns it off): forward and backward in training
   * mode may leave the named intermediates and their grads unwritten (stale);
   * the loss, logits, params' grads and batchnorm statistics are written as
   * ever, with the same bits.  For trainers and benchmarks: fewer passes over
   * big arrays.  NULL in a model with nothing to skip. */
  void (*set_lean)(void *state, int on);
  /* running batchnorm statistics (makemore part 5's BatchNorm1d): with momentum
   * m > 0, each training forward moves every BP_STAT tensor toward the batch's,
   * run = (1 − m)·run + m·batch (the variance unbiased, as the batch's); 0 (after
   * init): off, the statistics come from calibration.  NULL: no batchnorm. */
  void (*set_bn_momentum)(void *state, double m);
  /* data parallel (issue 17): the ranks (NULL, after init: one process).  Set,
   * calib_end merges the ranks' calibration sums (each rank having gathered its
   * share of the rows) in rank order, and in a model generated with sync_bn the
   * training forward takes each batchnorm's mean and variance over all the
   * ranks' rows and the backward sums its column sums over them.  NULL: no
   * batchnorm. */
  void (*set_ranks)(void *state, const BpRanks *r);
  int sync_bn;              /* generated with --sync-bn (SyncBatchNorm's statistics) */
} BpModel;

#if defined(__GNUC__)
#define BP_RT_FN static inline __attribute__((unused))   /* a file may call none of them (a model may draw no randn) */
#else
#define BP_RT_FN static inline
#endif

/* The tensor of m's table named name, of that kind (BP_INPUT, BP_PARAM, ...;
 * any kind when kind < 0), or NULL. */
BP_RT_FN const BpTensor *bp_find_tensor(const BpModel *m, const char *name, int kind) {
  for (int i = 0; i < m->ntensors; i++)
    if ((kind < 0 || m->tensors[i].kind == kind) && strcmp(m->tensors[i].name, name) == 0)
      return &m->tensors[i];
  return NULL;
}

/* ---- random numbers -------------------------------------------------------- *
 * splitmix64: one 64-bit state; bp_uniform in [0,1) with 53 bits; bp_randn by
 * Box-Muller from two uniforms, one normal per call.  Params are initialised in
 * declaration order, elements in C order, each element evaluating its
 * initialiser left to right (each randn is one bp_randn call), from one
 * generator seeded with the run's seed. */
typedef struct BpRng { uint64_t s; } BpRng;


BP_RT_FN void bp_rng_seed(BpRng *r, uint64_t seed) { r->s = seed; }

BP_RT_FN uint64_t bp_rng_next(BpRng *r) {
  uint64_t z = (r->s += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

BP_RT_FN double bp_uniform(BpRng *r) {
  return (double)(bp_rng_next(r) >> 11) * (1.0 / 9007199254740992.0);
}

BP_RT_FN double bp_randn(BpRng *r) {
  double u1 = 1.0 - bp_uniform(r);            /* (0, 1]: log is finite */
  double u2 = bp_uniform(r);
  return sqrt(-2.0 * log(u1)) * cos(6.283185307179586476925 * u2);
}

#endif
