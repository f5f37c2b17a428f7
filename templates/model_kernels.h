/* model_kernels.h: the loops of the in-memory (libtcc) build, compiled by gcc.
 *
 * tcc does not optimise, so an elementwise loop it compiles runs several times
 * slower than gcc's.  The JIT source therefore calls these kernels for the
 * O(batch x width) loops that kernels.h does not cover -- broadcasting binary
 * ops, broadcast copies, batchnorm forward and backward, gather and its
 * scatter-add -- with exactly the arithmetic the emitted loops of the gcc file
 * perform (same operation order, double accumulators), so both builds agree.
 * gen/jit.c compiles this file into bpgen and hands the functions to tcc with
 * tcc_add_symbol; the JIT source sees only the prototypes
 * (BPM_KERNELS_DECLARE_ONLY).
 *
 * Shapes: dims[0..rank-1] of the output, C order; sa/sb are the element
 * strides of the operands per output dim (0 where an operand is broadcast).
 */
#ifndef BPM_KERNELS_H
#define BPM_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#define BPM_KERNEL_LIST(X)                              \
  X(bpm_bcast_f32) X(bpm_bcast_f64)                     \
  X(bpm_expand_f32) X(bpm_expand_f64)                   \
  X(bpm_bn_fwd_f32) X(bpm_bn_fwd_f64)                   \
  X(bpm_bn_bwd_x_f32) X(bpm_bn_bwd_x_f64)               \
  X(bpm_bn_bwd_gain_f32) X(bpm_bn_bwd_gain_f64)         \
  X(bpm_gather_f32) X(bpm_gather_f64)                   \
  X(bpm_gather_bwd_f32) X(bpm_gather_bwd_f64)           \
  X(bpm_bn_calib_f32) X(bpm_bn_calib_f64)

enum { BPM_ADD = 0, BPM_SUB = 1, BPM_MUL = 2, BPM_DIV = 3 };

#define BPM_PROTOS(T, t)                                                                        \
  /* out = a op b, broadcasting */                                                              \
  void bpm_bcast_##t(int op, int rank, const int *dims, const T *a, const int *sa, const T *b,  \
                     const int *sb, T *out);                                                    \
  /* out = scale * a, broadcasting a up to dims */                                              \
  void bpm_expand_##t(int rank, const int *dims, const T *a, const int *sa, T scale, T *out);   \
  /* batchnorm of x [N,D] per column: training (stats NULL): batch mean and variance with      \
   * divisor div, saved in mean/rstd; inference: mean = stats[0..D), var = stats[D..2D)        \
   * (run_mean, run_var); xhat saved; out = gain * xhat + bias */                               \
  void bpm_bn_fwd_##t(int N, int D, const T *x, const T *gain, const T *bias, double eps,       \
                      double div, const T *run_mean, const T *run_var, T *mean, T *rstd,        \
                      T *xhat, T *out, double *acc1, double *acc2);                             \
  /* dx = gain*rstd/N * (N*dy - sum_b dy - c*xhat*sum_b(dy*xhat)) */                            \
  void bpm_bn_bwd_x_##t(int N, int D, const T *dy, const T *xhat, const T *gain, const T *rstd, \
                        double c, double *acc1, double *acc2, T *out);                          \
  /* out[j] = sum_b dy * xhat */                                                                \
  void bpm_bn_bwd_gain_##t(int N, int D, const T *dy, const T *xhat, double *acc, T *out);      \
  /* out[i,:] = table[idx[i],:] (R wide); out of range: zeros; returns the count of those */    \
  int bpm_gather_##t(int n, int R, int rows, const T *table, const int32_t *idx, T *out);       \
  /* out = zeros [rows,R]; out[idx[i],:] += dy[i,:] (out-of-range indices skipped) */           \
  void bpm_gather_bwd_##t(int n, int R, int rows, const int32_t *idx, const T *dy, T *out);     \
  /* batchnorm calibration: merges the column means and squared deviations of the first m      \
   * rows of x [.,D] into the running n[0], mean[D], m2[D] (Chan et al.) */                      \
  void bpm_bn_calib_##t(int m, int D, const T *x, double *n, double *mean, double *m2);

#ifdef BPM_KERNELS_DECLARE_ONLY
BPM_PROTOS(float, f32)
BPM_PROTOS(double, f64)
#else
#include <string.h>
#include <math.h>

#ifndef BPM_KERNEL
#define BPM_KERNEL static __attribute__((unused))
#endif

#define BPM_DEFS(T, t)                                                                          \
  BPM_KERNEL void bpm_bcast_##t(int op, int rank, const int *dims, const T *a, const int *sa,   \
                                const T *b, const int *sb, T *out) {                            \
    int at[8] = {0};                                                                            \
    long outer = 1, n = rank ? dims[rank - 1] : 1;                                              \
    int la = rank ? sa[rank - 1] : 0, lb = rank ? sb[rank - 1] : 0;                             \
    for (int d = 0; d + 1 < rank; d++)                                                          \
      outer *= dims[d];                                                                         \
    for (long o = 0; o < outer; o++, out += n) {                                                \
      long ia = 0, ib = 0;                                                                      \
      for (int d = 0; d + 1 < rank; d++)                                                        \
        ia += (long)at[d] * sa[d], ib += (long)at[d] * sb[d];                                   \
      const T *pa = a + ia, *pb = b + ib;                                                       \
      switch (op * 4 + (la != 0) * 2 + (lb != 0)) {                                             \
      case 0: for (long i = 0; i < n; i++) out[i] = pa[0] + pb[0]; break;                       \
      case 1: for (long i = 0; i < n; i++) out[i] = pa[0] + pb[i]; break;                       \
      case 2: for (long i = 0; i < n; i++) out[i] = pa[i] + pb[0]; break;                       \
      case 3: for (long i = 0; i < n; i++) out[i] = pa[i] + pb[i]; break;                       \
      case 4: for (long i = 0; i < n; i++) out[i] = pa[0] - pb[0]; break;                       \
      case 5: for (long i = 0; i < n; i++) out[i] = pa[0] - pb[i]; break;                       \
      case 6: for (long i = 0; i < n; i++) out[i] = pa[i] - pb[0]; break;                       \
      case 7: for (long i = 0; i < n; i++) out[i] = pa[i] - pb[i]; break;                       \
      case 8: for (long i = 0; i < n; i++) out[i] = pa[0] * pb[0]; break;                       \
      case 9: for (long i = 0; i < n; i++) out[i] = pa[0] * pb[i]; break;                       \
      case 10: for (long i = 0; i < n; i++) out[i] = pa[i] * pb[0]; break;                      \
      case 11: for (long i = 0; i < n; i++) out[i] = pa[i] * pb[i]; break;                      \
      case 12: for (long i = 0; i < n; i++) out[i] = pa[0] / pb[0]; break;                      \
      case 13: for (long i = 0; i < n; i++) out[i] = pa[0] / pb[i]; break;                      \
      case 14: for (long i = 0; i < n; i++) out[i] = pa[i] / pb[0]; break;                      \
      default: for (long i = 0; i < n; i++) out[i] = pa[i] / pb[i]; break;                      \
      }                                                                                         \
      for (int d = rank - 2; d >= 0 && ++at[d] == dims[d]; d--)                                 \
        at[d] = 0;                                                                              \
    }                                                                                           \
  }                                                                                             \
  BPM_KERNEL void bpm_expand_##t(int rank, const int *dims, const T *a, const int *sa, T scale, \
                                 T *out) {                                                      \
    int at[8] = {0};                                                                            \
    long outer = 1, n = rank ? dims[rank - 1] : 1;                                              \
    int la = rank ? sa[rank - 1] : 0;                                                           \
    for (int d = 0; d + 1 < rank; d++)                                                          \
      outer *= dims[d];                                                                         \
    for (long o = 0; o < outer; o++, out += n) {                                                \
      long ia = 0;                                                                              \
      for (int d = 0; d + 1 < rank; d++)                                                        \
        ia += (long)at[d] * sa[d];                                                              \
      for (long i = 0; i < n; i++)                                                              \
        out[i] = scale == 1 ? a[ia + i * la] : scale * a[ia + i * la];                          \
      for (int d = rank - 2; d >= 0 && ++at[d] == dims[d]; d--)                                 \
        at[d] = 0;                                                                              \
    }                                                                                           \
  }                                                                                             \
  BPM_KERNEL void bpm_bn_fwd_##t(int N, int D, const T *restrict x, const T *restrict gain,      \
                                 const T *restrict bias, double eps, double div,                \
                                 const T *restrict run_mean, const T *restrict run_var,         \
                                 T *restrict mean, T *restrict rstd, T *restrict xhat,          \
                                 T *restrict out, double *restrict acc1, double *restrict acc2) { \
    if (run_mean) {                                                                             \
      for (int j = 0; j < D; j++) {                                                             \
        mean[j] = run_mean[j];                                                                  \
        rstd[j] = (T)(1.0 / sqrt((double)run_var[j] + eps));                                    \
      }                                                                                         \
    } else {                                                                                    \
      memset(acc1, 0, sizeof(double) * (size_t)D);                                              \
      memset(acc2, 0, sizeof(double) * (size_t)D);                                              \
      for (int i = 0; i < N; i++)                                                               \
        for (int j = 0; j < D; j++)                                                             \
          acc1[j] += x[(size_t)i * D + j];                                                      \
      for (int j = 0; j < D; j++)                                                               \
        mean[j] = (T)(acc1[j] / N);                                                             \
      for (int i = 0; i < N; i++)                                                               \
        for (int j = 0; j < D; j++) {                                                           \
          T d = x[(size_t)i * D + j] - mean[j];                                                 \
          acc2[j] += (double)d * d;                                                             \
        }                                                                                       \
      for (int j = 0; j < D; j++)                                                               \
        rstd[j] = (T)(1.0 / sqrt(acc2[j] / div + eps));                                         \
    }                                                                                           \
    for (int i = 0; i < N; i++)                                                                 \
      for (int j = 0; j < D; j++) {                                                             \
        T xh = (x[(size_t)i * D + j] - mean[j]) * rstd[j];                                      \
        xhat[(size_t)i * D + j] = xh;                                                           \
        out[(size_t)i * D + j] = gain[j] * xh + bias[j];                                        \
      }                                                                                         \
  }                                                                                             \
  BPM_KERNEL void bpm_bn_bwd_x_##t(int N, int D, const T *restrict dy, const T *restrict xhat,  \
                                   const T *restrict gain, const T *restrict rstd, double c,    \
                                   double *restrict acc1, double *restrict acc2,                \
                                   T *restrict out) {                                           \
    memset(acc1, 0, sizeof(double) * (size_t)D);                                                \
    memset(acc2, 0, sizeof(double) * (size_t)D);                                                \
    for (int i = 0; i < N; i++)                                                                 \
      for (int j = 0; j < D; j++) {                                                             \
        acc1[j] += dy[(size_t)i * D + j];                                                       \
        acc2[j] += (double)dy[(size_t)i * D + j] * xhat[(size_t)i * D + j];                     \
      }                                                                                         \
    for (int i = 0; i < N; i++)                                                                 \
      for (int j = 0; j < D; j++)                                                               \
        out[(size_t)i * D + j] = (T)((double)gain[j] * rstd[j] / N *                            \
                                     (N * (double)dy[(size_t)i * D + j] - acc1[j] -             \
                                      c * xhat[(size_t)i * D + j] * acc2[j]));                  \
  }                                                                                             \
  BPM_KERNEL void bpm_bn_bwd_gain_##t(int N, int D, const T *restrict dy,                       \
                                      const T *restrict xhat, double *restrict acc,             \
                                      T *restrict out) {                                        \
    memset(acc, 0, sizeof(double) * (size_t)D);                                                 \
    for (int i = 0; i < N; i++)                                                                 \
      for (int j = 0; j < D; j++)                                                               \
        acc[j] += (double)dy[(size_t)i * D + j] * xhat[(size_t)i * D + j];                      \
    for (int j = 0; j < D; j++)                                                                 \
      out[j] = (T)acc[j];                                                                       \
  }                                                                                             \
  /* per column, in row order: bm = mean of the m rows, b2 = sum (x - bm)^2; blocks of 256    \
   * columns, row-major walks (the same sums as a column at a time) */                         \
  BPM_KERNEL void bpm_bn_calib_##t(int m, int D, const T *restrict x, double *restrict n,       \
                                   double *restrict mean, double *restrict m2) {                \
    if (m <= 0)                                                                                 \
      return;                                                                                   \
    double na = n[0], nt = na + m;                                                              \
    for (int j0 = 0; j0 < D; j0 += 256) {                                                       \
      int w = D - j0 < 256 ? D - j0 : 256;                                                      \
      double bm[256], b2[256];                                                                  \
      for (int j = 0; j < w; j++)                                                               \
        bm[j] = 0, b2[j] = 0;                                                                   \
      for (int i = 0; i < m; i++)                                                               \
        for (int j = 0; j < w; j++)                                                             \
          bm[j] += x[(size_t)i * D + j0 + j];                                                   \
      for (int j = 0; j < w; j++)                                                               \
        bm[j] /= m;                                                                             \
      for (int i = 0; i < m; i++)                                                               \
        for (int j = 0; j < w; j++) {                                                           \
          double d = x[(size_t)i * D + j0 + j] - bm[j];                                         \
          b2[j] += d * d;                                                                       \
        }                                                                                       \
      for (int j = 0; j < w; j++) {                                                             \
        double delta = bm[j] - mean[j0 + j];                                                    \
        mean[j0 + j] += delta * m / nt;                                                         \
        m2[j0 + j] += b2[j] + delta * delta * na * m / nt;                                      \
      }                                                                                         \
    }                                                                                           \
    n[0] = nt;                                                                                  \
  }                                                                                             \
  BPM_KERNEL int bpm_gather_##t(int n, int R, int rows, const T *table, const int32_t *idx,     \
                                T *out) {                                                       \
    int bad = 0;                                                                                \
    for (int i = 0; i < n; i++) {                                                               \
      int32_t ix = idx[i];                                                                      \
      if (ix < 0 || ix >= rows) {                                                               \
        bad++;                                                                                  \
        memset(out + (size_t)i * R, 0, sizeof(T) * (size_t)R);                                  \
      } else {                                                                                  \
        memcpy(out + (size_t)i * R, table + (size_t)ix * R, sizeof(T) * (size_t)R);             \
      }                                                                                         \
    }                                                                                           \
    return bad;                                                                                 \
  }                                                                                             \
  BPM_KERNEL void bpm_gather_bwd_##t(int n, int R, int rows, const int32_t *idx, const T *dy,   \
                                     T *out) {                                                  \
    memset(out, 0, sizeof(T) * (size_t)rows * (size_t)R);                                       \
    for (int i = 0; i < n; i++) {                                                               \
      int32_t ix = idx[i];                                                                      \
      if (ix < 0 || ix >= rows)                                                                 \
        continue;                                                                               \
      for (int r = 0; r < R; r++)                                                               \
        out[(size_t)ix * R + r] += dy[(size_t)i * R + r];                                       \
    }                                                                                           \
  }

BPM_DEFS(float, f32)
BPM_DEFS(double, f64)
#endif /* BPM_KERNELS_DECLARE_ONLY */
#endif /* BPM_KERNELS_H */
