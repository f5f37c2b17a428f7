/* model_kernels.h: the loops of the in-memory (libtcc) build, compiled by gcc.
 *
 * tcc does not optimise, so an elementwise loop it compiles runs several times
 * slower than gcc's.  The JIT source therefore calls these kernels for the
 * O(batch x width) loops that kernels.h does not cover -- broadcasting binary
 * ops, broadcast copies, a concat's parts, batchnorm forward and backward, gather and its
 * scatter-add -- with exactly the arithmetic the emitted loops of the gcc file
 * perform (same operation order, double accumulators), so both builds agree.
 * This header is their prototypes, all the JIT source sees; the definitions
 * (runtime/kernels_bpm.h, one text for both float types) are compiled into
 * bpgen by runtime/kernels.c, and gen/jit.c hands them to tcc with
 * tcc_add_symbol.
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
  X(bpm_copy_f32) X(bpm_copy_f64)                       \
  X(bpm_bn_bwd_gain_f32) X(bpm_bn_bwd_gain_f64)         \
  X(bpm_gather_f32) X(bpm_gather_f64)                   \
  X(bpm_gather_bwd_f32) X(bpm_gather_bwd_f64)           \
  X(bpm_bn_calib_f32) X(bpm_bn_calib_f64)

enum { BPM_ADD = 0, BPM_SUB = 1, BPM_MUL = 2, BPM_DIV = 3 };

/* out = a op b, broadcasting */
void bpm_bcast_f32(int op, int rank, const int *dims, const float *a, const int *sa, const float *b,
                   const int *sb, float *out);
void bpm_bcast_f64(int op, int rank, const int *dims, const double *a, const int *sa,
                   const double *b, const int *sb, double *out);
/* out = scale * a, broadcasting a up to dims */
void bpm_expand_f32(int rank, const int *dims, const float *a, const int *sa, float scale,
                    float *out);
void bpm_expand_f64(int rank, const int *dims, const double *a, const int *sa, double scale,
                    double *out);
/* out[at . so] = a[at . sa] over dims: strided copy (a concat's part) */
void bpm_copy_f32(int rank, const int *dims, const float *a, const int *sa, float *out, const int *so);
void bpm_copy_f64(int rank, const int *dims, const double *a, const int *sa, double *out, const int *so);
/* out[j] = sum_b dy * xhat */
void bpm_bn_bwd_gain_f32(int N, int D, const float *dy, const float *xhat, double *acc, float *out);
void bpm_bn_bwd_gain_f64(int N, int D, const double *dy, const double *xhat, double *acc,
                         double *out);
/* out[i,:] = table[idx[i],:] (R wide); out of range: zeros; returns the count of those */
int bpm_gather_f32(int n, int R, int rows, const float *table, const int32_t *idx, float *out);
int bpm_gather_f64(int n, int R, int rows, const double *table, const int32_t *idx, double *out);
/* out = zeros [rows,R]; out[idx[i],:] += dy[i,:] (out-of-range indices skipped) */
void bpm_gather_bwd_f32(int n, int R, int rows, const int32_t *idx, const float *dy, float *out);
void bpm_gather_bwd_f64(int n, int R, int rows, const int32_t *idx, const double *dy, double *out);
/* batchnorm calibration: merges the column means and squared deviations of the first m
 * rows of x [.,D] into the running n[0], mean[D], m2[D] (Chan et al.) */
void bpm_bn_calib_f32(int m, int D, const float *x, double *n, double *mean, double *m2);
void bpm_bn_calib_f64(int m, int D, const double *x, double *n, double *mean, double *m2);
#endif /* BPM_KERNELS_H */
