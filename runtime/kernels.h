/* kernels.h: the heavy kernels every emitted model calls (matmul in its three
 * transposed forms, tanh/exp over arrays, row and column sums, softmax and
 * cross-entropy, optimiser updates).
 *
 * One text, three uses.  With BP_KERNELS_DECLARE_ONLY defined it is only the
 * prototypes: what libtcc sees, the definitions coming from bpgen itself
 * (compiled ahead of time by gcc -O3 -march=native in runtime/kernels.c and
 * handed over with tcc_add_symbol; BP_KERNEL_LIST names them all).  Otherwise
 * it is the definitions as BP_KERNEL functions: `static` by default, so an
 * emitted file for gcc pastes them inline and stays self-contained;
 * runtime/kernels.c defines BP_KERNEL empty to export them.
 *
 * All arrays are contiguous, row-major.  Every kernel is deterministic: the
 * same inputs give the same bits, whatever the thread count (threads split
 * output rows or columns; each output element is summed by one thread in the
 * same order as with one thread).  The prototypes are plain C99 that tcc
 * 0.9.27 parses; the definitions are compiled by gcc only.
 */
#ifndef BP_KERNELS_H
#define BP_KERNELS_H

#include <stddef.h>
#include <stdint.h>

/* Every kernel, for jit.c:  #define X(name) tcc_add_symbol(s, #name, name); */
#define BP_KERNEL_LIST(X)                                   \
  X(bp_gemm_f32) X(bp_gemm_f64)                             \
  X(bp_tanh_f32) X(bp_tanh_f64)                             \
  X(bp_tanh_bwd_f32) X(bp_tanh_bwd_f64)                     \
  X(bp_exp_f32) X(bp_exp_f64)                               \
  X(bp_colsum_f32) X(bp_colsum_f64)                         \
  X(bp_rowsum_f32) X(bp_rowsum_f64)                         \
  X(bp_softmax_f32) X(bp_softmax_f64)                       \
  X(bp_xent_fwd_f32) X(bp_xent_fwd_f64)                     \
  X(bp_xent_bwd_f32) X(bp_xent_bwd_f64)                     \
  X(bp_sgd_f32) X(bp_sgd_f64)                               \
  X(bp_adamw_f32) X(bp_adamw_f64)                           \
  X(bp_set_threads) X(bp_get_threads)

#ifndef BP_KERNEL
#ifdef __GNUC__
#define BP_KERNEL static __attribute__((unused))
#else
#define BP_KERNEL static
#endif
#endif

/* ---- the interface ---------------------------------------------------------- */
#ifdef BP_KERNELS_DECLARE_ONLY
/* C[M,N] (+)= op(A) . op(B).  op(A) = transa ? A^T : A is [M,K] (A is stored
 * [M,K], or [K,M] when transa); op(B) = transb ? B^T : B is [K,N] (B stored
 * [K,N], or [N,K] when transb).  accumulate = 0: C = op(A).op(B);
 * 1: C += op(A).op(B).  Backprop of Y = X.W uses all three forms:
 * Y = X.W (0,0), dX += dY.W^T (0,1), dW += X^T.dY (1,0). */
void bp_gemm_f32(int M, int N, int K, const float *A, int transa,
                 const float *B, int transb, float *C, int accumulate);
void bp_gemm_f64(int M, int N, int K, const double *A, int transa,
                 const double *B, int transb, double *C, int accumulate);
/* y[i] = tanh(x[i]), i < n (y may be x) */
void bp_tanh_f32(size_t n, const float *x, float *y);
void bp_tanh_f64(size_t n, const double *x, double *y);
/* dx[i] (+)= (1 - t[i]*t[i]) * dy[i], t = tanh output */
void bp_tanh_bwd_f32(size_t n, const float *t, const float *dy, float *dx, int accumulate);
void bp_tanh_bwd_f64(size_t n, const double *t, const double *dy, double *dx, int accumulate);
/* y[i] = exp(x[i]) (y may be x) */
void bp_exp_f32(size_t n, const float *x, float *y);
void bp_exp_f64(size_t n, const double *x, double *y);
/* X is [N,D].  colsum: y[d] (+)= sum_n X[n,d] (sum over axis 0: bias grads);
 * rowsum: y[n] (+)= sum_d X[n,d] (sum over axis 1).  Summed in index order. */
void bp_colsum_f32(int N, int D, const float *X, float *y, int accumulate);
void bp_colsum_f64(int N, int D, const double *X, double *y, int accumulate);
void bp_rowsum_f32(int N, int D, const float *X, float *y, int accumulate);
void bp_rowsum_f64(int N, int D, const double *X, double *y, int accumulate);
/* x, y are [N,K]: y[n,:] = softmax(x[n,:]) = exp(x - max) / sum exp(x - max) */
void bp_softmax_f32(int N, int K, const float *x, float *y);
void bp_softmax_f64(int N, int K, const double *x, double *y);
/* Cross-entropy of logits [N,K] against targets Y [N] (0 <= Y[n] < K):
 * probs = softmax rows of logits (probs may be NULL: not stored); returns
 * loss = -(1/N) sum_n log probs[n,Y[n]], computed as
 * (1/N) sum_n (log sum_k exp(logits[n,k] - max_n) - (logits[n,Y[n]] - max_n)). */
double bp_xent_fwd_f32(int N, int K, const float *logits, const int32_t *Y, float *probs);
double bp_xent_fwd_f64(int N, int K, const double *logits, const int32_t *Y, double *probs);
/* dlogits[n,k] (+)= (probs[n,k] - (k == Y[n])) * dloss / N */
void bp_xent_bwd_f32(int N, int K, const float *probs, const int32_t *Y, double dloss,
                     float *dlogits, int accumulate);
void bp_xent_bwd_f64(int N, int K, const double *probs, const int32_t *Y, double dloss,
                     double *dlogits, int accumulate);
/* p[i] -= lr * g[i] */
void bp_sgd_f32(size_t n, float *p, const float *g, double lr);
void bp_sgd_f64(size_t n, double *p, const double *g, double lr);
/* AdamW over a flat array, as llm.c's train_gpt2.c, t = step number from 1:
 *   m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2
 *   p -= lr * ((m / (1-b1^t)) / (sqrt(v / (1-b2^t)) + eps) + wd p) */
void bp_adamw_f32(size_t n, float *p, const float *g, float *m, float *v, double lr,
                  double b1, double b2, double eps, double wd, int t);
void bp_adamw_f64(size_t n, double *p, const double *g, double *m, double *v, double lr,
                  double b1, double b2, double eps, double wd, int t);
/* Threads the kernels may use (1 = the caller's only; clamped to [1, 64]);
 * results are bit-identical for every count. */
void bp_set_threads(int n);
int bp_get_threads(void);
#else /* the definitions: gcc only */

#include <math.h>
#include <string.h>

static int bp_nthreads_ = 1;
BP_KERNEL void bp_set_threads(int n) { bp_nthreads_ = n < 1 ? 1 : n > 64 ? 64 : n; }
BP_KERNEL int bp_get_threads(void) { return bp_nthreads_; }

/* Naive first version: C[M,N] (+)= op(A)[M,K] . op(B)[K,N], summed over k in order. */
#define BP_GEMM_NAIVE(T, name)                                                      \
  BP_KERNEL void name(int M, int N, int K, const T *A, int transa, const T *B,       \
                      int transb, T *C, int accumulate) {                            \
    for (int i = 0; i < M; i++)                                                      \
      for (int j = 0; j < N; j++) {                                                  \
        T s = 0;                                                                     \
        for (int k = 0; k < K; k++)                                                  \
          s += (transa ? A[(size_t)k * M + i] : A[(size_t)i * K + k]) *              \
               (transb ? B[(size_t)j * K + k] : B[(size_t)k * N + j]);               \
        C[(size_t)i * N + j] = accumulate ? C[(size_t)i * N + j] + s : s;            \
      }                                                                              \
  }
BP_GEMM_NAIVE(float, bp_gemm_f32)
BP_GEMM_NAIVE(double, bp_gemm_f64)

#define BP_ELEMENTWISE(T, SFX, TANH, EXP, SQRT)                                      \
  BP_KERNEL void bp_tanh_##SFX(size_t n, const T *x, T *y) {                         \
    for (size_t i = 0; i < n; i++) y[i] = TANH(x[i]);                                \
  }                                                                                  \
  BP_KERNEL void bp_tanh_bwd_##SFX(size_t n, const T *t, const T *dy, T *dx,         \
                                   int accumulate) {                                 \
    for (size_t i = 0; i < n; i++) {                                                 \
      T d = (1 - t[i] * t[i]) * dy[i];                                               \
      dx[i] = accumulate ? dx[i] + d : d;                                            \
    }                                                                                \
  }                                                                                  \
  BP_KERNEL void bp_exp_##SFX(size_t n, const T *x, T *y) {                          \
    for (size_t i = 0; i < n; i++) y[i] = EXP(x[i]);                                 \
  }                                                                                  \
  BP_KERNEL void bp_colsum_##SFX(int N, int D, const T *X, T *y, int accumulate) {   \
    if (!accumulate) memset(y, 0, (size_t)D * sizeof(T));                            \
    for (int n = 0; n < N; n++)                                                      \
      for (int d = 0; d < D; d++) y[d] += X[(size_t)n * D + d];                      \
  }                                                                                  \
  BP_KERNEL void bp_rowsum_##SFX(int N, int D, const T *X, T *y, int accumulate) {   \
    for (int n = 0; n < N; n++) {                                                    \
      T s = 0;                                                                       \
      for (int d = 0; d < D; d++) s += X[(size_t)n * D + d];                         \
      y[n] = accumulate ? y[n] + s : s;                                              \
    }                                                                                \
  }                                                                                  \
  BP_KERNEL void bp_softmax_##SFX(int N, int K, const T *x, T *y) {                  \
    for (int n = 0; n < N; n++) {                                                    \
      const T *xr = x + (size_t)n * K;                                               \
      T *yr = y + (size_t)n * K;                                                     \
      T mx = xr[0], s = 0;                                                           \
      for (int k = 1; k < K; k++) mx = xr[k] > mx ? xr[k] : mx;                      \
      for (int k = 0; k < K; k++) { yr[k] = EXP(xr[k] - mx); s += yr[k]; }           \
      T inv = 1 / s;                                                                 \
      for (int k = 0; k < K; k++) yr[k] *= inv;                                      \
    }                                                                                \
  }                                                                                  \
  BP_KERNEL double bp_xent_fwd_##SFX(int N, int K, const T *logits, const int32_t *Y,\
                                     T *probs) {                                     \
    double loss = 0;                                                                 \
    for (int n = 0; n < N; n++) {                                                    \
      const T *xr = logits + (size_t)n * K;                                          \
      T mx = xr[0], s = 0;                                                           \
      for (int k = 1; k < K; k++) mx = xr[k] > mx ? xr[k] : mx;                      \
      for (int k = 0; k < K; k++) {                                                  \
        T e = EXP(xr[k] - mx);                                                       \
        s += e;                                                                      \
        if (probs) probs[(size_t)n * K + k] = e;                                     \
      }                                                                              \
      if (probs) {                                                                   \
        T inv = 1 / s;                                                               \
        for (int k = 0; k < K; k++) probs[(size_t)n * K + k] *= inv;                 \
      }                                                                              \
      loss += log((double)s) - (double)(xr[Y[n]] - mx);                              \
    }                                                                                \
    return loss / N;                                                                 \
  }                                                                                  \
  BP_KERNEL void bp_xent_bwd_##SFX(int N, int K, const T *probs, const int32_t *Y,   \
                                   double dloss, T *dlogits, int accumulate) {       \
    T sc = (T)(dloss / N);                                                           \
    for (int n = 0; n < N; n++)                                                      \
      for (int k = 0; k < K; k++) {                                                  \
        size_t i = (size_t)n * K + k;                                                \
        T d = (probs[i] - (k == Y[n] ? (T)1 : (T)0)) * sc;                           \
        dlogits[i] = accumulate ? dlogits[i] + d : d;                                \
      }                                                                              \
  }                                                                                  \
  BP_KERNEL void bp_sgd_##SFX(size_t n, T *p, const T *g, double lr) {               \
    T l = (T)lr;                                                                     \
    for (size_t i = 0; i < n; i++) p[i] -= l * g[i];                                 \
  }                                                                                  \
  BP_KERNEL void bp_adamw_##SFX(size_t n, T *p, const T *g, T *m, T *v, double lr,   \
                                double b1, double b2, double eps, double wd, int t) {\
    T c1 = (T)(1.0 / (1.0 - pow(b1, t))), c2 = (T)(1.0 / (1.0 - pow(b2, t)));        \
    T l = (T)lr, B1 = (T)b1, B2 = (T)b2, E = (T)eps, W = (T)wd;                      \
    for (size_t i = 0; i < n; i++) {                                                 \
      T mi = B1 * m[i] + (1 - B1) * g[i];                                            \
      T vi = B2 * v[i] + (1 - B2) * g[i] * g[i];                                     \
      m[i] = mi;                                                                     \
      v[i] = vi;                                                                     \
      p[i] -= l * ((mi * c1) / (SQRT(vi * c2) + E) + W * p[i]);                      \
    }                                                                                \
  }
BP_ELEMENTWISE(float, f32, tanhf, expf, sqrtf)
BP_ELEMENTWISE(double, f64, tanh, exp, sqrt)

#endif /* BP_KERNELS_DECLARE_ONLY */
#endif /* BP_KERNELS_H */
