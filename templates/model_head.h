/* {{prefix}}.h: the API of the model bpgen generated from {{spec}} ({{dtype}}).
 * Generated file: do not edit; regenerate with `bpgen {{spec}} -o FILE.c`.
 *
 * The whole state -- inputs, params, grads, activations, scratch -- is one
 * struct the caller owns (zero it, or call init, before use); there are no
 * globals, so several models (or several states of one model) coexist, and
 * nothing is allocated per step.  Fields are flat arrays in C order; the
 * comment beside each gives its shape.  Params come first and are contiguous,
 * then the grads of the params in the same order.
 *
 * Threads: each thread runs its own states.  The kernels keep no thread-local
 * or static arrays: their scratch for the calling thread is the state's last
 * member, BPGEN_{{PREFIX}}_SCRATCH_BYTES bytes, so any thread of the program
 * runs a state, one with a small stack too (256 KiB is plenty).  With
 * {{prefix}}_set_threads(n), n > 1, the n - 1 worker threads of the kernels'
 * pool each allocate BPGEN_{{PREFIX}}_POOL_SCRATCH_BYTES once, when started;
 * they are stopped, joined and their scratch freed when the program exits or
 * the model, built as a shared object, is unloaded (dlclose).
 *
 * Alignment: allocate the state with the alignment of its type,
 * _Alignof({{prefix}}_state): 64 when a field below is aligned(64) (activations,
 * grads and scratch of 8 MB or more), else at most 8.  glibc's malloc and
 * calloc give 16; aligned_alloc(64, (sizeof(*s) + 63) / 64 * 64) is right in every case
 * and also fast: the kernels use streaming stores only where they find a row
 * 64-byte aligned at run time.
 *
 * A step:  fill the inputs; loss = {{prefix}}_forward(s); {{prefix}}_backward(s);
 *          {{prefix}}_sgd_step(s, lr) or {{prefix}}_adamw_step(s, m, v, t, lr, ...).
 * Bad data: an index out of range (gather, pick, cross_entropy) is never used
 * to read or write; forward then sets bad_index and returns NaN as the loss.
 * The same functions are reachable through {{prefix}}_model (runtime ABI:
 * BpModel in bp_runtime.h below), with a table naming every tensor.
 */
#ifndef {{guard}}
#define {{guard}}

{{runtime}}
#define BPGEN_{{PREFIX}}_SCRATCH_BYTES {{scratch}}       /* the kernels' scratch, in the state */
#define BPGEN_{{PREFIX}}_POOL_SCRATCH_BYTES {{wscratch}} /* the same, per worker of the pool */

#ifdef __cplusplus
extern "C" { /* the model is C: a C++ file includes this header as it is */
#endif

typedef struct {{prefix}}_state {
{{fields}}} {{prefix}}_state;

/* params from the spec's initialisers (RNG of bp_runtime.h); zeroes the rest
 * except the inputs (batchnorm statistics too: calibrate before forward_eval) */
void {{prefix}}_init({{prefix}}_state *s, uint64_t seed);
/* training-mode forward (batch statistics); returns the loss */
double {{prefix}}_forward({{prefix}}_state *s);
/* after forward: every d<param> and d<named tensor> */
void {{prefix}}_backward({{prefix}}_state *s);
/* params -= lr * grads */
void {{prefix}}_sgd_step({{prefix}}_state *s, double lr);
/* AdamW as torch.optim.AdamW (decoupled weight decay, PyTorch's order of
 * operations), after backward, on every param element p with grad g:
 *   p *= 1 - lr*weight_decay;  m = beta1*m + (1-beta1)*g;  v = beta2*v + (1-beta2)*g*g;
 *   p -= lr/(1 - beta1^t) * m / (sqrt(v)/sqrt(1 - beta2^t) + eps)
 * The moments are the caller's: m and v hold {{nparam}} elements each
 * ({{prefix}}_model.nparam; {{mbytes}} bytes for the two), zeroed before the
 * first step; m[i] and v[i] go with the i-th param element in the state's
 * order (the params' fields above, one after another).  t is this update's
 * number, 1 for the first (torch's step count after its increment).  The
 * trainer's --optimizer adamw is the same update. */
void {{prefix}}_adamw_step({{prefix}}_state *s, {{real}} *m, {{real}} *v, long t, double lr,
                   double beta1, double beta2, double eps, double weight_decay);
/* threads of the heavy kernels (1 to 64; 1 until set): the same bits for any
 * count.  One pool per model file, shared by all its states; a tcc build
 * runs on the caller's thread only. */
void {{prefix}}_set_threads(int n);
/* inference forward: batchnorm from the stored statistics; returns the loss */
double {{prefix}}_forward_eval({{prefix}}_state *s);
/* batchnorm calibration, in {{prefix}}_model.calib_passes passes: for each pass
 * p in order, begin(p); accum per batch (its first nrows rows count); end,
 * which stores the mean and unbiased variance of the batchnorms with p
 * batchnorms upstream (accum runs the inference forward through the upstream
 * ones, calibrated by the earlier passes). */
void {{prefix}}_calib_begin({{prefix}}_state *s, int pass);
void {{prefix}}_calib_accum({{prefix}}_state *s, int nrows);
void {{prefix}}_calib_end({{prefix}}_state *s);

extern const BpModel {{prefix}}_model;

#ifdef __cplusplus
}
#endif
#endif
