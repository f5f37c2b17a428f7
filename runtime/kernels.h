/* kernels.h: the heavy kernels every emitted model calls (matmul in its three
 * transposed forms, tanh/exp over arrays, row and column sums, softmax and
 * cross-entropy, optimiser updates).
 *
 * One text, three uses.  With BP_KERNELS_DECLARE_ONLY defined it is only the
 * prototypes: what libtcc sees, the definitions coming from bpgen itself
 * (compiled ahead of time by gcc -O3 in runtime/kernels.c, per CPU level, and
 * handed over with tcc_add_symbol; BP_KERNEL_LIST names them all).  Otherwise
 * it is the definitions as BP_KERNEL functions: `static` by default, so an
 * emitted file pastes them inline and stays self-contained;
 * runtime/kernels.c defines BP_KERNEL empty to export them.  The bodies of
 * the kernels are kernels_*.h, each included once per float type (below), so
 * that compiler messages and debuggers point at their lines; for the emitted
 * file scripts/embed.sh pastes them in where they are included.
 *
 * All arrays are contiguous, row-major.  Every kernel is deterministic: the
 * same inputs give the same bits, whatever the thread count (threads split
 * output rows or columns; each output element is summed by one thread in the
 * same order as with one thread).  The prototypes are plain C99 that tcc
 * 0.9.27 parses; the definitions build with gcc and clang (-std=c99 -Wall
 * -Wextra -Werror) and with tcc (one thread, no vector paths).
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
  X(bp_adamw_torch_f32) X(bp_adamw_torch_f64)               \
  X(bp_allfinite_f32) X(bp_allfinite_f64)                   \
  X(bp_gemm_bias_f32) X(bp_gemm_bias_f64)                   \
  X(bp_bn_fwd_f32) X(bp_bn_fwd_f64)                         \
  X(bp_bn_bwd_f32) X(bp_bn_bwd_f64)                         \
  X(bp_bnlayer_fwd_f32) X(bp_bnlayer_fwd_f64)               \
  X(bp_bnlayer_bwd_f32) X(bp_bnlayer_bwd_f64)               \
  X(bp_gelu_f32) X(bp_gelu_f64)                             \
  X(bp_gelu_bwd_f32) X(bp_gelu_bwd_f64)                     \
  X(bp_layernorm_f32) X(bp_layernorm_f64)                   \
  X(bp_ln_bwd_x_f32) X(bp_ln_bwd_x_f64)                     \
  X(bp_ln_bwd_gain_f32) X(bp_ln_bwd_gain_f64)               \
  X(bp_causal_softmax_f32) X(bp_causal_softmax_f64)         \
  X(bp_causal_softmax_bwd_f32) X(bp_causal_softmax_bwd_f64) \
  X(bp_gemm_causal_f32) X(bp_gemm_causal_f64)               \
  X(bp_gemm_batch_f32) X(bp_gemm_batch_f64)                 \
  X(bp_causal_scores_f32) X(bp_causal_scores_f64)           \
  X(bp_causal_scores_bwd_f32) X(bp_causal_scores_bwd_f64)   \
  X(bp_softmax_bwd_f32) X(bp_softmax_bwd_f64)               \
  X(bp_swap_axes_f32) X(bp_swap_axes_f64)                   \
  X(bp_copy_rows_f32) X(bp_copy_rows_f64)                   \
  X(bp_cat_parts_f32) X(bp_cat_parts_f64)                   \
  X(bp_set_threads) X(bp_get_threads) X(bp_scratch_use)

#ifndef BP_KERNEL
#ifdef __GNUC__
#define BP_KERNEL static __attribute__((unused, noinline)) /* inlined into the model, they ran ~20% slower */
#else
#define BP_KERNEL static
#endif
#endif

/* ---- the interface ---------------------------------------------------------- */
/* Scratch: the kernels' own memory is one block per thread, never a static or
 * thread-local array (a program embedding a model pays nothing per thread of
 * its own, and a thread with a small stack runs a model).  The calling thread's
 * block is the model state's member BP_scratch: the model's functions point the
 * kernels at it with bp_scratch_use and restore the previous block on return.
 * Each worker t of the pool (section "threads") owns one, allocated when the
 * pool starts the worker.  The layout, in bytes from the block's start aligned
 * up to 64, for the float type of es bytes (4 or 8):
 *   BP_WS_PACKA  gemm: a block of op(A) panels, BP_MCP x BP_MR x BP_KC
 *   BP_WS_PACKB  gemm: a block of op(B) panels, BP_KC x BP_NC
 *   BP_WS_BT     small f32 products: B^T, BP_SMALL_BT floats
 *   BP_WS_CAUSAL bp_gemm_causal (kernels_attn.h): a block's packed operand or
 *                product, BP_CPACK elements
 * BP_WS_BYTES(es): a block, with the 64 bytes its alignment may skip.  The
 * sizes do not depend on the target (BP_MR_MAX, not BP_MR), so a model's state
 * has one layout whatever flags compile the files that include its header. */
#define BP_KC 512          /* gemm: k block at most: K is cut into nearly equal blocks
                            * (1536: 3 x 512, 384: 1 x 384), so C is read and written
                            * once per block; a B panel (kc x NR, 64 KiB) streams from
                            * L2 at a rate the FMAs hide (measured: 256 was ~5% slower) */
#define BP_MCP 8           /* gemm: A panels per block (BP_MCP x BP_MR x BP_KC in L2) */
#define BP_NC 768          /* gemm: columns per B block */
#define BP_MR_MAX 12       /* gemm: the most rows of a tile on any target (BP_MR) */
#define BP_SMALL_BT 16384  /* small f32 products: elements of the B^T buffer */
#define BP_WS_PACKA(es) ((size_t)0)
#define BP_WS_PACKB(es) (BP_WS_PACKA(es) + (size_t)BP_MCP * BP_MR_MAX * BP_KC * (es))
#define BP_WS_BT(es) (BP_WS_PACKB(es) + (size_t)BP_KC * BP_NC * (es))
#define BP_CB 32           /* bp_gemm_causal: rows of C per block */
#define BP_CPACK 16384     /* bp_gemm_causal: elements of the packed operand (512 columns
                            * of a block) */
#define BP_WS_CAUSAL(es) (BP_WS_BT(es) + (size_t)BP_SMALL_BT * 4)
#define BP_WS_BYTES(es) (BP_WS_CAUSAL(es) + (size_t)BP_CPACK * (es) + 64)
/* workspace of bp_bnlayer_fwd/bwd (below), in elements of the float type */
#define BP_BNLAYER_GROUP(N, K, V, dc) \
  (4 * (size_t)(N) * (dc) + 2 * (size_t)(K) * (dc) + (size_t)(N) * ((V) + (K)) + 12 * (size_t)(dc) + 128)
#define BP_BNLAYER_WS(N, K, D, V, dc, groups) \
  ((size_t)(N) * (D) + 64 + (size_t)(groups) * (BP_BNLAYER_GROUP(N, K, V, dc) + 16))
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
/* AdamW in torch.optim.AdamW's order of operations (the trainer's), every
 * scalar in the float type: decay = 1 - lr*wd, step = lr / (1 - b1^t), c2 =
 * sqrt(1 - b2^t):  p *= decay;  m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2;
 * p += (-step m) / (sqrt(v) / c2 + eps) */
void bp_adamw_torch_f32(size_t n, float *p, const float *g, float *m, float *v, float b1,
                        float b2, float eps, float decay, float step, float c2);
void bp_adamw_torch_f64(size_t n, double *p, const double *g, double *m, double *v, double b1,
                        double b2, double eps, double decay, double step, double c2);
/* 1 when every x[i] (i < n) is finite, else 0 (a trainer's per-step check) */
int bp_allfinite_f32(size_t n, const float *x);
int bp_allfinite_f64(size_t n, const double *x);
/* C[M,N] = op(A) . op(B) + bias, bias [N] added to every row (Y = X.W + b):
 * every tile's sums start at the bias (its first k block), so the add costs
 * no pass over C. */
void bp_gemm_bias_f32(int M, int N, int K, const float *A, int transa, const float *B,
                      int transb, const float *bias, float *C);
void bp_gemm_bias_f64(int M, int N, int K, const double *A, int transa, const double *B,
                      int transb, const double *bias, double *C);
/* Batchnorm forward of x [N,D], per column j (gain, bias [D]):
 *   training (run_mean NULL): mean_j and var_j = sum_i (x - mean_j)^2 / div from
 *   one pass (sums of x - x[0,j], in double; with AVX-512 and N <= 64: float
 *   sums of x - x[0,j] then of (x - mean_j)^2, in registers, mean and rstd
 *   finished in double); inference: mean = run_mean,
 *   var = run_var.  mean[j], rstd[j] = 1/sqrt(var_j + eps) saved;
 *   xhat = (x - mean) rstd saved; out = gain xhat + bias; act (may be NULL):
 *   tanh(out), the usual next op, in the same pass.  acc: scratch, 2*D. */
void bp_bn_fwd_f32(int N, int D, const float *x, const float *gain, const float *bias,
                   double eps, double div, const float *run_mean, const float *run_var,
                   float *mean, float *rstd, float *xhat, float *out, float *act, double *acc);
void bp_bn_fwd_f64(int N, int D, const double *x, const double *gain, const double *bias,
                   double eps, double div, const double *run_mean, const double *run_var,
                   double *mean, double *rstd, double *xhat, double *out, double *act,
                   double *acc);
/* Batchnorm backward, every gradient in two passes over [N,D]:
 *   t (may be NULL): the tanh output the batchnorm fed; then first
 *     dy = (1 - t^2) dt (written to dy), else dy is read;
 *   s1 = sum_i dy, s2 = sum_i dy xhat per column (double): dbias = s1 and
 *     dgain = s2 when not NULL;
 *   dx = gain rstd/N (N dy - s1 - c xhat s2), c = N/(N-1) (Bessel) or 1;
 *   dxsum (may be NULL) = sum_i dx per column (the bias grad of the matmul
 *     that fed the batchnorm).  acc: scratch, 6*D.
 * The elementwise math runs in T, the column sums in double (over partial sums
 * of 2 rows in T; with AVX-512 and N <= 64: in float registers, 4 partial sums
 * of rows i mod 4). */
void bp_bn_bwd_f32(int N, int D, const float *t, const float *dt, float *dy, const float *xhat,
                   const float *gain, const float *rstd, double c, float *dgain, float *dbias,
                   float *dx, float *dxsum, double *acc);
void bp_bn_bwd_f64(int N, int D, const double *t, const double *dt, double *dy,
                   const double *xhat, const double *gain, const double *rstd, double c,
                   double *dgain, double *dbias, double *dx, double *dxsum, double *acc);
/* A batchnorm layer between two linear maps, one column block at a time:
 *   z = A.W1 + b1;  y = batchnorm(z, gain, bias);  h = tanh(y);  out = h.W2 + b2
 * with A [N,K], W1 [K,D], W2 [D,V].  Batchnorm's statistics are per column, so
 * a block of dc columns of z needs nothing outside it: z, y, h of a block are
 * made and used in cache, and only x̂ goes to memory, into ws (blocked: the
 * block at column j0, width w, is [N,w] at ws + j0*N), for the backward, which
 * makes h = tanh(gain x̂ + bias) again (the same operations, so the same bits)
 * rather than read it.  The products over the blocks (out here, dA in the
 * backward) are summed per group of blocks (groups: fixed by the caller, not by
 * the thread count), then the groups' sums in order: the same bits for any
 * number of threads.  b1, b2 may be NULL; z, y, h (the [N,D] tensors in rows)
 * are written only when not NULL.  mean, rstd [D] as bp_bn_fwd's (training
 * mode, div the variance divisor).  ws: BP_BNLAYER_WS(N,K,D,V,dc,groups) T. */
void bp_bnlayer_fwd_f32(int N, int K, int D, int V, int dc, int groups, const float *A,
                        const float *W1, const float *b1, const float *gain, const float *bias,
                        double eps, double div, const float *W2, const float *b2, float *mean,
                        float *rstd, float *out, float *z, float *y, float *h, float *ws);
void bp_bnlayer_fwd_f64(int N, int K, int D, int V, int dc, int groups, const double *A,
                        const double *W1, const double *b1, const double *gain,
                        const double *bias, double eps, double div, const double *W2,
                        const double *b2, double *mean, double *rstd, double *out, double *z,
                        double *y, double *h, double *ws);
/* Its backward from dout [N,V] (after bp_bnlayer_fwd with the same ws), per
 * block: dh = dout.W2ᵀ; h = tanh(gain x̂ + bias) again from x̂ and with it
 * dy = (1 - h²) dh; dz by bp_bn_bwd's formula (c: Bessel factor, rstd the
 * forward's); dW2 = hᵀ.dout, dW1 = Aᵀ.dz, and dA += dz.W1ᵀ (per group, as
 * above).  dA, db1, dgain, dbias may be NULL (not wanted); dh, dy, dz [N,D]
 * written only when not NULL.  db2 is not here (a column sum of dout). */
void bp_bnlayer_bwd_f32(int N, int K, int D, int V, int dc, int groups, const float *A,
                        const float *W1, const float *gain, const float *bias,
                        const float *rstd, double c,
                        const float *W2, const float *dout, float *dA, float *dW1, float *db1,
                        float *dgain, float *dbias, float *dW2, float *dh, float *dy, float *dz,
                        float *ws);
void bp_bnlayer_bwd_f64(int N, int K, int D, int V, int dc, int groups, const double *A,
                        const double *W1, const double *gain, const double *bias,
                        const double *rstd, double c,
                        const double *W2, const double *dout, double *dA, double *dW1,
                        double *db1, double *dgain, double *dbias, double *dW2, double *dh,
                        double *dy, double *dz, double *ws);
/* The sequence models' row kernels (kernels_attn.h); all arrays row-major.
 * gelu: y = ½x(1 + tanh(√(2/π)(x + 0.044715x³))) (y may be x); gelu_bwd: dx =
 * gelu'(x) dy.  layernorm: x, out, xhat [R,D] over the last axis, gain, bias
 * [D], rstd [R] saved; x2 not NULL: of x + x2, written to sum [R,D] too.
 * ln_bwd_x: dx [R,D] from dy (add not NULL: add + dx); ln_bwd_gain: dgain[D] =
 * sum_r dy xhat.  causal_softmax: x, y [n,L], row r is position r mod L of its
 * block, softmax of scale*x over columns 0..r mod L, 0 after; causal_softmax_bwd:
 * its dx = scale y (dy - sum_j dy y), reading only those columns, 0 after.
 * softmax_bwd: dx = y (dy - sum_j dy y) per row of L.  gemm_causal: bp_gemm's
 * C = op(A).op(B) with M == N and only C's lower triangle wanted (tri 1; full:
 * the rest too), or A [M,M] zero above its diagonal (tri 2): the blocks that
 * cannot matter skipped.  swap_axes: x [A,n1,B,n2,C] -> y [A,n2,B,n1,C], x's
 * rows (a,i,b) xs elements apart (n2*C when x is whole), y's rows (a,j,b) ys
 * apart (n1*C). */
void bp_gelu_f32(size_t n, const float *x, float *y);
void bp_gelu_f64(size_t n, const double *x, double *y);
void bp_gelu_bwd_f32(size_t n, const float *x, const float *dy, float *dx);
void bp_gelu_bwd_f64(size_t n, const double *x, const double *dy, double *dx);
void bp_layernorm_f32(int R, int D, const float *x, const float *x2, float *sum, const float *gain,
                      const float *bias, double eps, float *rstd, float *xhat, float *out);
void bp_layernorm_f64(int R, int D, const double *x, const double *x2, double *sum, const double *gain,
                      const double *bias, double eps, double *rstd, double *xhat, double *out);
void bp_ln_bwd_x_f32(int R, int D, const float *xhat, const float *dy, const float *gain,
                     const float *rstd, const float *add, float *dx);
void bp_ln_bwd_x_f64(int R, int D, const double *xhat, const double *dy, const double *gain,
                     const double *rstd, const double *add, double *dx);
void bp_ln_bwd_gain_f32(int R, int D, const float *dy, const float *xhat, float *dgain);
void bp_ln_bwd_gain_f64(int R, int D, const double *dy, const double *xhat, double *dgain);
void bp_causal_softmax_f32(int n, int L, double scale, const float *x, float *y);
void bp_causal_softmax_f64(int n, int L, double scale, const double *x, double *y);
void bp_causal_softmax_bwd_f32(int n, int L, double scale, const float *y, const float *dy, float *dx);
void bp_causal_softmax_bwd_f64(int n, int L, double scale, const double *y, const double *dy,
                               double *dx);
void bp_gemm_causal_f32(int M, int N, int K, const float *A, int transa, const float *B, int transb,
                        float *C, int tri, int full);
void bp_gemm_causal_f64(int M, int N, int K, const double *A, int transa, const double *B, int transb,
                        double *C, int tri, int full);
/* nb products of one shape, the operands and results contiguous one after
 * another; tri 0: bp_gemm, else bp_gemm_causal; threads share the products */
void bp_gemm_batch_f32(int nb, int M, int N, int K, const float *A, int transa, const float *B,
                       int transb, float *C, int tri, int full);
void bp_gemm_batch_f64(int nb, int M, int N, int K, const double *A, int transa, const double *B,
                       int transb, double *C, int tri, int full);
/* attention's scores per head, the product made in the softmax's memory:
 * att = causal_softmax(scale · q·kᵀ) (q, k [nb, T, D], att [nb, T, T]); and
 * their backward, datt = dy·vᵀ, ds = scale · att ⊙ (datt − Σ_l datt ⊙ att),
 * datt written only when not NULL (else its lower triangle made in ds) */
void bp_causal_scores_f32(int nb, int T, int D, const float *q, const float *k, double scale, float *att);
void bp_causal_scores_f64(int nb, int T, int D, const double *q, const double *k, double scale, double *att);
void bp_causal_scores_bwd_f32(int nb, int T, int D, const float *dy, const float *v, const float *att,
                              double scale, float *datt, float *ds);
void bp_causal_scores_bwd_f64(int nb, int T, int D, const double *dy, const double *v, const double *att,
                              double scale, double *datt, double *ds);
void bp_softmax_bwd_f32(int n, int L, const float *y, const float *dy, float *dx);
void bp_softmax_bwd_f64(int n, int L, const double *y, const double *dy, double *dx);
void bp_swap_axes_f32(long A, long n1, long B, long n2, long C, const float *x, long xs, float *y, long ys);
void bp_swap_axes_f64(long A, long n1, long B, long n2, long C, const double *x, long xs, double *y, long ys);
/* rows of run elements: dst[o * dstride + i] = src[o * sstride + i] (a slice,
 * a pad's block, a concat's part) */
void bp_copy_rows_f32(long rows, long run, const float *src, long sstride, float *dst, long dstride);
void bp_copy_rows_f64(long rows, long run, const double *src, long sstride, double *dst, long dstride);
/* y [rows, W] written row by row from n parts: part p fills columns [col,
 * col + n1·C) of row r = a·n2 + j with n1 runs of C from src[p], run i at
 * src[p] + (a·n1 + i)·xs + j·C; geo holds {col, n1, n2, C, xs} per part.  A
 * part [rows, w] copied as it is: {col, 1, 1, w, its row stride}; the swap of
 * [A, n1, n2, C] to [A, n2, n1, C]: xs = n2·C (attention's heads' gradients
 * into dqkv's columns: each row written whole, once) */
void bp_cat_parts_f32(long rows, long W, int n, const long *geo, const float *const *src, float *y);
void bp_cat_parts_f64(long rows, long W, int n, const long *geo, const double *const *src, double *y);
/* Threads the kernels may use (1 = the caller's only; clamped to [1, 64]);
 * results are bit-identical for every count. */
void bp_set_threads(int n);
int bp_get_threads(void);
/* The calling thread's scratch from now on: block (BP_WS_BYTES(8) bytes, or
 * BP_WS_BYTES(4) when only f32 kernels run; NULL: none); returns the previous
 * one, for restoring it. */
void *bp_scratch_use(void *block);
#else /* the definitions */

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* `#pragma GCC unroll n` before a loop (tcc has no _Pragma; it ignores them);
 * BP_PREFETCHW(p): fetch p's line for writing (tcc: nothing) */
#if defined(__TINYC__)
#define BP_UNROLL(n)
#define BP_PREFETCHW(p) ((void)0)
#else
#define BP_PRAGMA_(x) _Pragma(#x)
#define BP_UNROLL(n) BP_PRAGMA_(GCC unroll n)
#define BP_PREFETCHW(p) __builtin_prefetch((p), 1, 3)
#endif

/* The kernels of both float types are one text each, included twice:
 * kernels_gemm.h, kernels_ew.h, kernels_bn.h and kernels_layer.h, with BP_S
 * defined as f32, then as f64.  There BP_(name) is name_f32 or name_f64,
 * BP_P_(name) the private name_f32_ or name_f64_, T is BP_(BP_REAL), and the
 * type's vector operations and scalar functions are BP_(BP_LOAD), BP_(BP_TANH),
 * ... from the tables below and in the gemm section. */
#define BP_PASTE_(a, b) a##b
#define BP_PASTE(a, b) BP_PASTE_(a, b)
#define BP_(name) BP_PASTE(name##_, BP_S)
#define BP_P_(name) BP_PASTE(BP_(name), _)
#define BP_REAL_f32 float
#define BP_REAL_f64 double
#define BP_TANH_f32 bp_tanhf_ /* below: no libm call, vectorises */
#define BP_TANH_f64 tanh
#define BP_EXP_f32 bp_expf_
#define BP_EXP_f64 exp
#define BP_SQRT_f32 sqrtf
#define BP_SQRT_f64 sqrt

/* ---- threads ------------------------------------------------------------------ *
 * A persistent pool of bp_nthreads_ - 1 pthreads, started on first use.
 * bp_parallel(job, arg, nt) runs job(arg, t, nt) for t = 0..nt-1, t = 0 on the
 * caller, and returns when all are done.  Jobs split their output statically
 * by t, so results never depend on timing.
 *
 * tcc has neither __thread nor the __atomic builtins: built by tcc, the kernels
 * run on the caller's thread only (bp_set_threads is ignored, bp_get_threads
 * says 1), which gives the same bits as any thread count. */
static int bp_nthreads_ = 1;
#if defined(__TINYC__)
#define BP_TLS /* one thread: the per-thread variables are plain statics */
#else
#define BP_TLS __thread
#endif
static BP_TLS int bp_serial_;            /* inside a job: the kernels called run on this thread only */
static BP_TLS unsigned char *bp_ws_;     /* this thread's scratch block (64-byte aligned), or NULL */
BP_KERNEL void *bp_scratch_use(void *block) {
  void *prev = bp_ws_;
  bp_ws_ = block ? (unsigned char *)(((uintptr_t)block + 63) & ~(uintptr_t)63) : NULL;
  return prev;
}
/* a kernel called on a thread without bp_scratch_use: the caller's bug (a
 * model's functions always set it), stopped here rather than at address 0 */
static void bp_no_scratch_(void) { abort(); }
/* part `part` (PACKA, PACKB, BT) of this thread's scratch, as an array of type */
#define BP_SCRATCH(part, type) \
  ((type *)((bp_ws_ ? bp_ws_ : (bp_no_scratch_(), bp_ws_)) + BP_WS_##part(sizeof(type))))
#if defined(__TINYC__)
static void bp_parallel(void (*job)(void *, int, int), void *arg, int nt) {
  (void)nt;
  job(arg, 0, 1);
}
BP_KERNEL void bp_set_threads(int n) { (void)n; }
#else
#include <pthread.h>
#include <sys/types.h>
#include <unistd.h>
static struct {
  pthread_mutex_t mu;
  pthread_cond_t go, done;
  int started;                       /* workers running */
  unsigned long gen;                 /* bumped for each job */
  int pending;                       /* workers still inside the current job */
  void (*job)(void *, int, int);
  void *arg;
  int nt;
  void *ws[64];                      /* ws[t]: worker t's scratch, BP_WS_BYTES(8) bytes */
  pthread_t th[64];                  /* th[t]: worker t, joined by bp_pool_stop_ */
  int quit;                          /* set by bp_pool_stop_: the workers return */
  pid_t pid;                         /* the process whose threads these are (not a fork's child) */
} bp_pool_ = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, PTHREAD_COND_INITIALIZER,
              0, 0, 0, 0, 0, 0, {0}, {0}, 0, 0};

/* Waking a sleeping thread costs tens of microseconds on a VM, about a
 * batchnorm pass at width 1024: both sides first spin a while (BP_SPIN polls)
 * on the generation / pending count, then sleep on the condition variables. */
#define BP_SPIN 20000
static inline void bp_pause_(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}
static void *bp_worker_(void *p) {
  int t = (int)(intptr_t)p;
  unsigned long seen = 0;
  bp_scratch_use(bp_pool_.ws[t]); /* written before pthread_create */
  for (;;) {
    for (int s = 0; s < BP_SPIN && __atomic_load_n(&bp_pool_.gen, __ATOMIC_ACQUIRE) == seen &&
                    !__atomic_load_n(&bp_pool_.quit, __ATOMIC_RELAXED); s++)
      bp_pause_();
    pthread_mutex_lock(&bp_pool_.mu);
    while (__atomic_load_n(&bp_pool_.gen, __ATOMIC_ACQUIRE) == seen && !bp_pool_.quit)
      pthread_cond_wait(&bp_pool_.go, &bp_pool_.mu);
    if (__atomic_load_n(&bp_pool_.gen, __ATOMIC_ACQUIRE) == seen) { /* stopped, no job posted */
      pthread_mutex_unlock(&bp_pool_.mu);
      return NULL;
    }
    seen = bp_pool_.gen;
    void (*job)(void *, int, int) = bp_pool_.job;
    void *arg = bp_pool_.arg;
    int nt = bp_pool_.nt;
    pthread_mutex_unlock(&bp_pool_.mu);
    if (t < nt) {
      job(arg, t, nt);
      pthread_mutex_lock(&bp_pool_.mu);
      if (__atomic_sub_fetch(&bp_pool_.pending, 1, __ATOMIC_ACQ_REL) == 0)
        pthread_cond_signal(&bp_pool_.done);
      pthread_mutex_unlock(&bp_pool_.mu);
    }
  }
  return NULL;
}

static void bp_parallel(void (*job)(void *, int, int), void *arg, int nt) {
  pthread_mutex_lock(&bp_pool_.mu);
  if (bp_pool_.quit) /* called after bp_pool_stop_ (by another destructor): no workers */
    nt = 1;
  while (bp_pool_.started < nt - 1) { /* workers 1..nt-1, each with its scratch */
    pthread_t th;
    int t = bp_pool_.started + 1;
    if (!bp_pool_.ws[t] && !(bp_pool_.ws[t] = malloc(BP_WS_BYTES(8))))
      break;
    if (pthread_create(&th, NULL, bp_worker_, (void *)(intptr_t)t) != 0)
      break;
    bp_pool_.th[t] = th;
    bp_pool_.pid = getpid();
    bp_pool_.started++;
  }
  if (nt > bp_pool_.started + 1) nt = bp_pool_.started + 1;
  if (nt > 1) {
    bp_pool_.job = job, bp_pool_.arg = arg, bp_pool_.nt = nt;
    __atomic_store_n(&bp_pool_.pending, nt - 1, __ATOMIC_RELEASE);
    __atomic_add_fetch(&bp_pool_.gen, 1, __ATOMIC_ACQ_REL);
    pthread_cond_broadcast(&bp_pool_.go);
  }
  pthread_mutex_unlock(&bp_pool_.mu);
  job(arg, 0, nt);
  if (nt > 1) {
    for (int s = 0; s < BP_SPIN && __atomic_load_n(&bp_pool_.pending, __ATOMIC_ACQUIRE) > 0; s++)
      bp_pause_();
    pthread_mutex_lock(&bp_pool_.mu);
    while (__atomic_load_n(&bp_pool_.pending, __ATOMIC_ACQUIRE) > 0)
      pthread_cond_wait(&bp_pool_.done, &bp_pool_.mu);
    pthread_mutex_unlock(&bp_pool_.mu);
  }
}
/* The workers run this file's code: when it is unloaded (dlclose of a model
 * built as a shared object) or the process exits, they are stopped and joined
 * first, rather than left asleep in code that is no longer mapped.  A fork's
 * child has none of its parent's workers, so it joins none. */
__attribute__((destructor)) static void bp_pool_stop_(void) {
  pthread_mutex_lock(&bp_pool_.mu);
  int n = bp_pool_.pid == getpid() ? bp_pool_.started : 0;
  __atomic_store_n(&bp_pool_.quit, 1, __ATOMIC_RELAXED);
  pthread_cond_broadcast(&bp_pool_.go);
  pthread_mutex_unlock(&bp_pool_.mu);
  for (int t = 1; t <= n; t++)
    pthread_join(bp_pool_.th[t], NULL);
  for (int t = 1; t <= n; t++)
    free(bp_pool_.ws[t]), bp_pool_.ws[t] = NULL;
  bp_pool_.started = 0;
}
BP_KERNEL void bp_set_threads(int n) { bp_nthreads_ = n < 1 ? 1 : n > 64 ? 64 : n; }
#endif /* __TINYC__ */
BP_KERNEL int bp_get_threads(void) { return bp_nthreads_; }

/* ---- gemm ------------------------------------------------------------------- *
 * Packing plus a register-blocked micro-kernel (the BLIS scheme).  op(B) is cut
 * into blocks of BP_KC x BP_NC, packed as panels of NR columns (k-major, zero
 * padded); op(A) into blocks of a few panels of mr <= BP_MR rows (k-major).  The
 * micro-kernel keeps an mr x NR tile of C in registers over one BP_KC block and
 * adds it to C.  Rows are cut into panels of nearly equal size (27 rows: 9+9+9),
 * each run by a kernel specialised for its mr, so skinny shapes waste nothing;
 * columns are padded to NR.  When M pads better than N (N = 27, M = 256), the
 * product is computed transposed, C^T = op(B)^T op(A)^T, the tile stored
 * transposed.  Each element of C is summed over k in the same order whatever
 * the tiling or the threads, so results are bit-identical across thread counts.
 * K is cut into nearly equal blocks of at most BP_KC (a function of K only, so
 * the summation order is too).  An operand whose k runs along memory rows (A, or
 * B^T of x.W^T) is packed through 16 x 16 register transposes; A^T (dW = X^T dY)
 * one memory row at a time across the block's panels.
 * Where the time goes (gpt2 L6 C384's products, AVX-512 f32, one core of this
 * Zen 4 EPYC: 1 zmm FMA per cycle, 117 GFLOP/s measured peak): the micro-kernel's
 * loop (2 B loads, 12 broadcasts, 24 FMAs per k, no spills) runs at ~95% of that
 * peak; packing A and B, memory-bound (operands of 1.5-6 MB from L3/DRAM), takes
 * ~5-8% of the time; the rest, the C tile updates and calls: 104-108 GFLOP/s on
 * the big shapes, OpenBLAS 0.3.21's sgemm (Cooperlake kernel) 98-103. */
#if defined(__AVX512F__)
#include <immintrin.h>
#define BP_V_f32 __m512
#define BP_VN_f32 16
#define BP_LOAD_f32(p) _mm512_loadu_ps(p)
#define BP_STORE_f32(p, v) _mm512_storeu_ps(p, v)
#define BP_FMA_f32(a, b, c) _mm512_fmadd_ps(a, b, c)
#define BP_SET1_f32(x) _mm512_set1_ps(x)
#define BP_ZERO_f32() _mm512_setzero_ps()
#define BP_ADD_f32(a, b) _mm512_add_ps(a, b)
#define BP_MUL_f32(a, b) _mm512_mul_ps(a, b)
#define BP_DIV_f32(a, b) _mm512_div_ps(a, b)
#define BP_VSQRT_f32(a) _mm512_sqrt_ps(a)
#define BP_V_f64 __m512d
#define BP_VN_f64 8
#define BP_LOAD_f64(p) _mm512_loadu_pd(p)
#define BP_STORE_f64(p, v) _mm512_storeu_pd(p, v)
#define BP_FMA_f64(a, b, c) _mm512_fmadd_pd(a, b, c)
#define BP_SET1_f64(x) _mm512_set1_pd(x)
#define BP_ZERO_f64() _mm512_setzero_pd()
#define BP_ADD_f64(a, b) _mm512_add_pd(a, b)
#define BP_MUL_f64(a, b) _mm512_mul_pd(a, b)
#define BP_DIV_f64(a, b) _mm512_div_pd(a, b)
#define BP_VSQRT_f64(a) _mm512_sqrt_pd(a)
#define BP_STREAM_f32(p, v) _mm512_stream_ps(p, v)
#define BP_STREAM_f64(p, v) _mm512_stream_pd(p, v)
#define BP_HAVE_STREAM_f32 1
#define BP_HAVE_STREAM_f64 1
#define BP_SFENCE() _mm_sfence()
#define BP_MR 12      /* rows of a tile: 12 x 2 vectors = 24 of the 32 registers */
#define BP_NRV 2      /* vectors across a tile */
#elif defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define BP_V_f32 __m256
#define BP_VN_f32 8
#define BP_LOAD_f32(p) _mm256_loadu_ps(p)
#define BP_STORE_f32(p, v) _mm256_storeu_ps(p, v)
#define BP_FMA_f32(a, b, c) _mm256_fmadd_ps(a, b, c)
#define BP_SET1_f32(x) _mm256_set1_ps(x)
#define BP_ZERO_f32() _mm256_setzero_ps()
#define BP_ADD_f32(a, b) _mm256_add_ps(a, b)
#define BP_MUL_f32(a, b) _mm256_mul_ps(a, b)
#define BP_DIV_f32(a, b) _mm256_div_ps(a, b)
#define BP_VSQRT_f32(a) _mm256_sqrt_ps(a)
#define BP_V_f64 __m256d
#define BP_VN_f64 4
#define BP_LOAD_f64(p) _mm256_loadu_pd(p)
#define BP_STORE_f64(p, v) _mm256_storeu_pd(p, v)
#define BP_FMA_f64(a, b, c) _mm256_fmadd_pd(a, b, c)
#define BP_SET1_f64(x) _mm256_set1_pd(x)
#define BP_ZERO_f64() _mm256_setzero_pd()
#define BP_ADD_f64(a, b) _mm256_add_pd(a, b)
#define BP_MUL_f64(a, b) _mm256_mul_pd(a, b)
#define BP_DIV_f64(a, b) _mm256_div_pd(a, b)
#define BP_VSQRT_f64(a) _mm256_sqrt_pd(a)
#define BP_STREAM_f32(p, v) _mm256_stream_ps(p, v)
#define BP_STREAM_f64(p, v) _mm256_stream_pd(p, v)
#define BP_HAVE_STREAM_f32 1
#define BP_HAVE_STREAM_f64 1
#define BP_SFENCE() _mm_sfence()
#define BP_MR 6       /* 6 x 2 vectors = 12 of the 16 registers */
#define BP_NRV 2
#else /* portable: scalar "vectors" */
#define BP_V_f32 float
#define BP_VN_f32 1
#define BP_LOAD_f32(p) (*(p))
#define BP_STORE_f32(p, v) (*(p) = (v))
#define BP_FMA_f32(a, b, c) ((a) * (b) + (c))
#define BP_SET1_f32(x) (x)
#define BP_ZERO_f32() 0.0f
#define BP_ADD_f32(a, b) ((a) + (b))
#define BP_MUL_f32(a, b) ((a) * (b))
#define BP_DIV_f32(a, b) ((a) / (b))
#define BP_VSQRT_f32(a) sqrtf(a)
#define BP_V_f64 double
#define BP_VN_f64 1
#define BP_LOAD_f64(p) (*(p))
#define BP_STORE_f64(p, v) (*(p) = (v))
#define BP_FMA_f64(a, b, c) ((a) * (b) + (c))
#define BP_SET1_f64(x) (x)
#define BP_ZERO_f64() 0.0
#define BP_ADD_f64(a, b) ((a) + (b))
#define BP_MUL_f64(a, b) ((a) * (b))
#define BP_DIV_f64(a, b) ((a) / (b))
#define BP_VSQRT_f64(a) sqrt(a)
#define BP_STREAM_f32(p, v) (*(p) = (v))
#define BP_STREAM_f64(p, v) (*(p) = (v))
#define BP_HAVE_STREAM_f32 0
#define BP_HAVE_STREAM_f64 0
#define BP_SFENCE() ((void)0)
#define BP_MR 4
#define BP_NRV 4
#endif
#if BP_MR == 12
#define BP_MR_LIST(F, S) F(S, 1) F(S, 2) F(S, 3) F(S, 4) F(S, 5) F(S, 6) F(S, 7) F(S, 8) \
  F(S, 9) F(S, 10) F(S, 11) F(S, 12)
#elif BP_MR == 6
#define BP_MR_LIST(F, S) F(S, 1) F(S, 2) F(S, 3) F(S, 4) F(S, 5) F(S, 6)
#else
#define BP_MR_LIST(F, S) F(S, 1) F(S, 2) F(S, 3) F(S, 4)
#endif
#define BP_UKR_CASE(S, n) \
  case n: as ? bp_ukr_##S(n, kc, pa, as, ak, pb, ldb, c, ldc, add, bias, bt, nt)   \
             : bp_ukr_##S(n, kc, pa, 0, n, pb, ldb, c, ldc, add, bias, bt, nt); break;
/* BP_KC, BP_MCP, BP_NC: the blocking, in the interface section (the scratch's size) */
typedef char bp_mr_fits_scratch_[BP_MR <= BP_MR_MAX ? 1 : -1];

/* ---- small products, no packing ---------------------------------------------- *
 * The lecture's matmuls are tiny ([32,30].[30,64] and the like): packing and
 * the tile copies of the general path cost as much as the arithmetic.  With
 * AVX-512 the small path reads op(A) in place (one broadcast per element, any
 * strides) and rows of B in place, the last column panel under a lane mask
 * (masked loads never fault, masked stores write only C), so nothing is copied
 * -- except B^T (dX = dY.W^T), transposed once into a per-thread buffer.  Rows
 * are cut into nearly equal blocks of at most 12, columns into panels of 32.
 * Each element is summed over k from 0 in order, then added to C when
 * accumulating: exactly the general path's arithmetic for K <= BP_KC. */
#if defined(__AVX512F__)
#define BP_SMALL_MR 12
#define BP_SMALL_MNK (1L << 20)   /* M*N*K at most this: the small path */
static inline __attribute__((always_inline)) void bp_small_tile_f32(
    const int mr, const int nv, int K, const float *a, long ars, long acs, const float *b,
    long ldb, __mmask16 m0, __mmask16 m1, float *c, long ldc, int add, const float *bias) {
  __m512 acc[BP_SMALL_MR][2];
  /* the sums start at zero, or at the bias row (bp_gemm_bias: C = bias + A.B) */
  __m512 z0 = bias ? _mm512_maskz_loadu_ps(m0, bias) : _mm512_setzero_ps();
  __m512 z1 = bias && nv > 1 ? _mm512_maskz_loadu_ps(m1, bias + 16) : _mm512_setzero_ps();
  BP_UNROLL(12) for (int i = 0; i < mr; i++)
    acc[i][0] = z0, acc[i][1] = z1;
  for (int k = 0; k < K; k++) {
    __m512 b0 = _mm512_maskz_loadu_ps(m0, b + (long)k * ldb);
    __m512 b1 = nv > 1 ? _mm512_maskz_loadu_ps(m1, b + (long)k * ldb + 16) : _mm512_setzero_ps();
    const float *ak = a + (long)k * acs;
    BP_UNROLL(12) for (int i = 0; i < mr; i++) {
      __m512 x = _mm512_set1_ps(ak[(long)i * ars]);
      acc[i][0] = _mm512_fmadd_ps(x, b0, acc[i][0]);
      if (nv > 1) acc[i][1] = _mm512_fmadd_ps(x, b1, acc[i][1]);
    }
  }
  BP_UNROLL(12) for (int i = 0; i < mr; i++) {
    float *p = c + (long)i * ldc;
    __m512 r0 = acc[i][0], r1 = acc[i][1];
    if (add) r0 = _mm512_add_ps(_mm512_maskz_loadu_ps(m0, p), r0);
    _mm512_mask_storeu_ps(p, m0, r0);
    if (nv > 1) {
      if (add) r1 = _mm512_add_ps(_mm512_maskz_loadu_ps(m1, p + 16), r1);
      _mm512_mask_storeu_ps(p + 16, m1, r1);
    }
  }
}
/* ars = 1 (A^T stored) its own copy: the rows' broadcasts at constant offsets, not
 * one index register per row (12 of them: with the other pointers, more than fit) */
#define BP_SMALL_CASE(n)                                                                  \
  case n:                                                                                \
    if (nv == 1 && ars == 1) bp_small_tile_f32(n, 1, K, a, 1, acs, b, ldb, m0, m1, c, ldc, add, bias); \
    else if (nv == 1) bp_small_tile_f32(n, 1, K, a, ars, acs, b, ldb, m0, m1, c, ldc, add, bias); \
    else if (ars == 1) bp_small_tile_f32(n, 2, K, a, 1, acs, b, ldb, m0, m1, c, ldc, add, bias); \
    else bp_small_tile_f32(n, 2, K, a, ars, acs, b, ldb, m0, m1, c, ldc, add, bias);     \
    break;
static void bp_small_any_f32(int mr, int nv, int K, const float *a, long ars, long acs,
                             const float *b, long ldb, __mmask16 m0, __mmask16 m1, float *c,
                             long ldc, int add, const float *bias) {
  switch (mr) {
    BP_SMALL_CASE(1) BP_SMALL_CASE(2) BP_SMALL_CASE(3) BP_SMALL_CASE(4) BP_SMALL_CASE(5)
    BP_SMALL_CASE(6) BP_SMALL_CASE(7) BP_SMALL_CASE(8) BP_SMALL_CASE(9) BP_SMALL_CASE(10)
    BP_SMALL_CASE(11) BP_SMALL_CASE(12)
    default: break;
  }
}
/* a tile of mr rows and nr <= 32 columns: the lanes past nr masked off */
static void bp_small_panel_f32(int mr, int nr, int K, const float *a, long ars, long acs, const float *b,
                               long ldb, float *c, long ldc, int add, const float *bias) {
  __mmask16 m0 = (__mmask16)(nr >= 16 ? 0xFFFF : (1u << nr) - 1);
  __mmask16 m1 = (__mmask16)(nr >= 32 ? 0xFFFF : nr > 16 ? (1u << (nr - 16)) - 1 : 0);
  bp_small_any_f32(mr, nr > 16 ? 2 : 1, K, a, ars, acs, b, ldb, m0, m1, c, ldc, add, bias);
}
/* M rows in nb nearly equal blocks of at most BP_SMALL_MR: the first extra
 * blocks have base + 1 rows, the others base */
static int bp_small_blocks_(int M, int *base, int *extra) {
  int nb = (M + BP_SMALL_MR - 1) / BP_SMALL_MR;
  *base = M / nb, *extra = M % nb;
  return nb;
}
/* 16 x 16 floats in registers transposed: r[i][j] becomes r[j][i] (pairs of
 * rows interleaved, then 2 x 2 blocks, then 128-bit lanes twice) */
static inline void bp_tr16_(__m512 r[16]) {
  __m512 t[16], u[16], v[16];
  for (int i = 0; i < 8; i++)
    t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]),
    t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  for (int g = 0; g < 4; g++) {
    const __m512 *a = t + 4 * g;
    __m512 *b = u + 4 * g;
    b[0] = _mm512_shuffle_ps(a[0], a[2], 0x44), b[1] = _mm512_shuffle_ps(a[0], a[2], 0xEE);
    b[2] = _mm512_shuffle_ps(a[1], a[3], 0x44), b[3] = _mm512_shuffle_ps(a[1], a[3], 0xEE);
  }
  for (int h = 0; h < 2; h++)
    for (int i = 0; i < 4; i++) {
      v[8 * h + i] = _mm512_shuffle_f32x4(u[8 * h + i], u[8 * h + 4 + i], 0x88);
      v[8 * h + 4 + i] = _mm512_shuffle_f32x4(u[8 * h + i], u[8 * h + 4 + i], 0xDD);
    }
  for (int i = 0; i < 8; i++) {
    r[i] = _mm512_shuffle_f32x4(v[i], v[8 + i], 0x88);
    r[8 + i] = _mm512_shuffle_f32x4(v[i], v[8 + i], 0xDD);
  }
}
/* bt[K,N] = B^T, B stored [N,K]: 16 x 16 blocks through registers, the edges
 * under lane masks */
static void bp_transpose_f32_(int N, int K, const float *B, float *bt) {
  for (int j0 = 0; j0 < N; j0 += 16) {
    int nj = N - j0 < 16 ? N - j0 : 16;
    __mmask16 mj = (__mmask16)(nj == 16 ? 0xFFFF : (1u << nj) - 1);
    for (int k0 = 0; k0 < K; k0 += 16) {
      int nk = K - k0 < 16 ? K - k0 : 16;
      __mmask16 mk = (__mmask16)(nk == 16 ? 0xFFFF : (1u << nk) - 1);
      __m512 r[16];
      for (int i = 0; i < 16; i++)
        r[i] = i < nj ? _mm512_maskz_loadu_ps(mk, B + (long)(j0 + i) * K + k0) : _mm512_setzero_ps();
      bp_tr16_(r);
      for (int i = 0; i < nk; i++) _mm512_mask_storeu_ps(bt + (long)(k0 + i) * N + j0, mj, r[i]);
    }
  }
}
/* The general path's packing of a transposed operand: dst[k*dld + i] = src[i*ld + k]
 * for i < n, 0 for n <= i < w <= 16, k < kc; 16 x 16 blocks through registers (a
 * scalar copy walks one row at a time, a load in flight per element) */
static void bp_pack_tr16_f32_(int n, int w, int kc, const float *src, long ld, float *dst,
                              long dld) {
  __mmask16 mw = (__mmask16)(w >= 16 ? 0xFFFF : (1u << w) - 1);
  for (int k0 = 0; k0 < kc; k0 += 16) {
    int nk = kc - k0 < 16 ? kc - k0 : 16;
    __mmask16 mk = (__mmask16)(nk == 16 ? 0xFFFF : (1u << nk) - 1);
    __m512 r[16];
    for (int i = 0; i < 16; i++)
      r[i] = i < n ? _mm512_maskz_loadu_ps(mk, src + (long)i * ld + k0) : _mm512_setzero_ps();
    bp_tr16_(r);
    for (int k = 0; k < nk; k++) _mm512_mask_storeu_ps(dst + (long)(k0 + k) * dld, mw, r[k]);
  }
}
/* bp_gemm_small_f32's product, op(A)(i,k) = a[i*ars + k*acs], B [K,N] */
typedef struct {
  int M, N, K;
  const float *a; long ars, acs;
  const float *b;
  float *c;
  int acc;
  const float *bias;
} BpSmall_;
/* row blocks [b0, b1) of the product, every column: each element the same
 * sum however the blocks are shared */
static void bp_small_rows_(const BpSmall_ *sm, int b0, int b1) {
  int base, extra, N = sm->N;
  bp_small_blocks_(sm->M, &base, &extra);
  int i0 = b0 * base + (b0 < extra ? b0 : extra);
  for (int blk = b0; blk < b1; blk++) {
    int mr = base + (blk < extra);
    for (int j = 0; j < N; j += 32)
      bp_small_panel_f32(mr, N - j < 32 ? N - j : 32, sm->K, sm->a + (long)i0 * sm->ars, sm->ars, sm->acs,
                         sm->b + j, N, sm->c + (long)i0 * N + j, N, sm->acc, sm->bias ? sm->bias + j : NULL);
    i0 += mr;
  }
}
static void bp_small_job_(void *p, int t, int nt) {
  const BpSmall_ *sm = (const BpSmall_ *)p;
  int base, extra, nb = bp_small_blocks_(sm->M, &base, &extra);
  bp_small_rows_(sm, (int)((long)nb * t / nt), (int)((long)nb * (t + 1) / nt));
}
/* 1 when done here; 0: the shape is not small, use the general path */
static int bp_gemm_small_f32(int M, int N, int K, const float *A, int transa, const float *B,
                             int transb, float *C, int accumulate, const float *bias) {
  float *bt = BP_SCRATCH(BT, float); /* BP_SMALL_BT floats */
  if ((long)M * N * K > BP_SMALL_MNK || (transb && (long)N * K > BP_SMALL_BT)) return 0;
  /* C = A^T B with a narrow C (N < 32, not whole vectors) and many rows, unaccumulated:
   * C^T = B^T A as an [N,M] product (wide rows: whole vectors, fewer tiles) into bt,
   * then transposed into C; each element the same sum in the same k order */
  if (transa && !transb && !accumulate && !bias && N < 32 && N % 16 && M >= 64 &&
      (long)M * N <= BP_SMALL_BT) {
    bp_gemm_small_f32(N, M, K, B, 1, A, 0, bt, 0, NULL);
    bp_transpose_f32_(N, M, bt, C);
    return 1;
  }
  if (transb) { /* B stored [N,K]: bt = B^T, [K,N]; 16 rows of B at a time, so each
                  * k writes 16 contiguous floats from 16 sequential streams */
    bp_transpose_f32_(N, K, B, bt);
    B = bt;
  }
  BpSmall_ sm = {M, N, K, A, transa ? 1 : K, transa ? M : 1, B, C, accumulate, bias};
  int base, extra, nb = bp_small_blocks_(M, &base, &extra);
  int nt = bp_serial_ ? 1 : bp_nthreads_;
  /* from ~0.5 MFLOP the threads share the row blocks: [128,64] x [64,64] took
   * ~10 us on one core (handing half to the other thread costs under 0.5 us) */
  if (nt > 1 && nb > 1 && 2.0 * M * N * K >= 5e5) bp_parallel(bp_small_job_, &sm, nt < nb ? nt : nb);
  else bp_small_rows_(&sm, 0, nb);
  return 1;
}
/* bp_gemm_causal's f32 path (kernels_attn.h tells the cases): the small path's
 * tiles, rows in nearly equal blocks of at most 12, columns in panels of 32,
 * each tile cut where the triangle ends.  tri 1: B^T once into the BT buffer,
 * a tile only the columns up to its last row (all of them when full); tri 2:
 * op(A) read in place, each tile only the k that can meet a nonzero of its
 * rows ([0, i1) for A, [i0, K) for A^T).  Each element is summed over k in
 * order in one chain from 0, as on the other paths; 0 when the shape is not
 * one of these or B^T does not fit the buffer. */
static int bp_causal_small_f32(int M, int N, int K, const float *A, int transa, const float *B,
                               int transb, float *C, int tri, int full) {
  if (tri == 1 && M == N && !transa && transb && (long)N * K <= BP_SMALL_BT) {
    float *bt = BP_SCRATCH(BT, float);
    bp_transpose_f32_(N, K, B, bt);
    int base, extra, nb = bp_small_blocks_(M, &base, &extra);
    for (int blk = 0, i0 = 0; blk < nb; blk++) {
      int mr = base + (blk < extra), ce = full ? N : i0 + mr;
      for (int j = 0; j < ce; j += 32)
        bp_small_panel_f32(mr, ce - j < 32 ? ce - j : 32, K, A + (long)i0 * K, K, 1, bt + j, N,
                           C + (long)i0 * N + j, N, 0, NULL);
      i0 += mr;
    }
    return 1;
  }
  if (tri == 2 && M == K && !transb) {
    int base, extra, nb = bp_small_blocks_(M, &base, &extra);
    long ars = transa ? 1 : K, acs = transa ? M : 1;
    for (int blk = 0, i0 = 0; blk < nb; blk++) {
      int mr = base + (blk < extra);
      /* A(i, k) = a[i*ars + k*acs] from the block's first k that can meet a nonzero */
      const float *a = transa ? A + (long)i0 * M + i0 : A + (long)i0 * K;
      const float *b = B + (long)(transa ? i0 : 0) * N;
      for (int j = 0; j < N; j += 32)
        bp_small_panel_f32(mr, N - j < 32 ? N - j : 32, transa ? K - i0 : i0 + mr, a, ars, acs, b + j, N,
                           C + (long)i0 * N + j, N, 0, NULL);
      i0 += mr;
    }
    return 1;
  }
  return 0;
}
#else
static inline int bp_gemm_small_f32(int M, int N, int K, const float *A, int transa,
                                    const float *B, int transb, float *C, int accumulate,
                                    const float *bias) {
  (void)M, (void)N, (void)K, (void)A, (void)transa, (void)B, (void)transb, (void)C, (void)accumulate;
  (void)bias;
  return 0;
}
static inline int bp_causal_small_f32(int M, int N, int K, const float *A, int transa, const float *B,
                                      int transb, float *C, int tri, int full) {
  (void)M, (void)N, (void)K, (void)A, (void)transa, (void)B, (void)transb, (void)C, (void)tri, (void)full;
  return 0;
}
#endif
static inline int bp_causal_small_f64(int M, int N, int K, const double *A, int transa, const double *B,
                                      int transb, double *C, int tri, int full) {
  (void)M, (void)N, (void)K, (void)A, (void)transa, (void)B, (void)transb, (void)C, (void)tri, (void)full;
  return 0;
}
static inline int bp_gemm_small_f64(int M, int N, int K, const double *A, int transa,
                                    const double *B, int transb, double *C, int accumulate,
                                    const double *bias) {
  (void)M, (void)N, (void)K, (void)A, (void)transa, (void)B, (void)transb, (void)C, (void)accumulate;
  (void)bias;
  return 0;
}

#define BP_S f32
#include "kernels_gemm.h"
#undef BP_S
#define BP_S f64
#include "kernels_gemm.h"
#undef BP_S

/* ---- threads for the memory-bound kernels -------------------------------------- *
 * Big arrays only (below BP_PAR_MIN elements a pass is too short to pay for the
 * hand-off); elementwise kernels split the index range, column reductions split
 * the columns, so every output element is still computed by one thread, in the
 * same order as with one. */
#define BP_PAR_MIN 65536
/* an element of GELU (either way) or layernorm (and its dx) costs about as
 * much as 8 of a copy (0.4-0.8 ns on one core, hot): they split from 8192
 * elements */
#define BP_PAR_HEAVY 8
typedef struct {
  int op;                  /* 0 tanh, 1 tanh_bwd, 2 colsum */
  size_t n;                /* elements (op 0, 1) */
  int N, D;                /* rows, columns (op 2) */
  const void *a, *b;
  void *y;
  int acc;
} BpEw_;
/* part t of nt of [0, n), cut at multiples of align */
static void bp_split_(long n, long align, int t, int nt, long *lo, long *hi) {
  long units = (n + align - 1) / align;
  *lo = units * t / nt * align, *hi = units * (t + 1) / nt * align;
  if (*lo > n) *lo = n;
  if (*hi > n) *hi = n;
}
/* fn(arg, lo, hi) over [0, n) in parts cut at multiples of align, one per
 * thread when the pass is big (work elements, BP_PAR_MIN), else in one call:
 * for kernels whose parts (rows, blocks, elements) are each computed whole by
 * one thread, in the same order as with one, so the bits do not depend on
 * the thread count */
typedef struct {
  void (*fn)(void *, long, long);
  void *arg;
  long n, align;
} BpRange_;
static void bp_range_job_(void *p, int t, int nt) {
  const BpRange_ *r = (const BpRange_ *)p;
  long lo, hi;
  bp_split_(r->n, r->align, t, nt, &lo, &hi);
  if (lo < hi) r->fn(r->arg, lo, hi);
}
static void bp_par_range_(void (*fn)(void *, long, long), void *arg, long n, long align, double work) {
  if (bp_nthreads_ > 1 && work >= BP_PAR_MIN && n > align && !bp_serial_) {
    BpRange_ r = {fn, arg, n, align};
    bp_parallel(bp_range_job_, &r, bp_nthreads_);
  } else if (n > 0) {
    fn(arg, 0, n);
  }
}
/* rng(arg, h0, h1) over heads [0, nb) (attention's per-head work, flops a
 * head): the threads share the heads, each head made whole by one thread
 * (bp_serial_ set: its products do not split again), when they are small or
 * at least 4 a thread; else rng(arg, 0, nb) here, a big product then split by
 * bp_gemm itself (gpt2 L6 C384's heads one after another on the calling
 * thread took ~11% of the 2-thread step).  The bits do not depend on the
 * thread count either way. */
typedef struct {
  void (*rng)(const void *, int, int);
  const void *arg;
  int nb;
} BpHeads_;
static void bp_heads_job_(void *p, int t, int nt) {
  const BpHeads_ *h = (const BpHeads_ *)p;
  int was = bp_serial_;
  bp_serial_ = 1;
  h->rng(h->arg, (int)((long)h->nb * t / nt), (int)((long)h->nb * (t + 1) / nt));
  bp_serial_ = was;
}
static void bp_heads_(void (*rng)(const void *, int, int), const void *arg, int nb, double flops) {
  int nt = bp_serial_ ? 1 : bp_nthreads_;
  if (nt > 1 && nb > 1 && (flops < 4e6 || nb >= 4 * nt)) {
    BpHeads_ h = {rng, arg, nb};
    bp_parallel(bp_heads_job_, &h, nt < nb ? nt : nb);
  } else {
    rng(arg, 0, nb);
  }
}

/* exponent bits all ones: inf or NaN; an OR over integers, so it vectorises */
BP_KERNEL int bp_allfinite_f32(size_t n, const float *x) {
  uint32_t bad = 0;
  for (size_t i = 0; i < n; i++) {
    uint32_t u;
    memcpy(&u, x + i, sizeof u);
    bad |= (u & 0x7f800000u) == 0x7f800000u;
  }
  return !bad;
}
BP_KERNEL int bp_allfinite_f64(size_t n, const double *x) {
  uint64_t bad = 0;
  for (size_t i = 0; i < n; i++) {
    uint64_t u;
    memcpy(&u, x + i, sizeof u);
    bad |= (u & 0x7ff0000000000000ull) == 0x7ff0000000000000ull;
  }
  return !bad;
}
/* exp and tanh for f32 without a libm call per element, all in float, so gcc
 * vectorises the loops that use them (16 lanes with AVX-512).
 * exp: x = n ln2 + r, |r| <= ln2/2 (ln2 in two parts, Cody-Waite), e^r by its
 * Taylor polynomial to r^7 (truncation < 5e-9 relative), times 2^n built in
 * two halves so that n up to 128 and down to -150 stay representable; x is
 * clamped to [-104, 89] (beyond: 0 and inf after rounding); NaN stays NaN.
 * Within 2 ulp of exp.
 * tanh: sign(x) m / (m + 2), m = e^(2|x|) - 1 computed as 2^n q + (2^n - 1),
 * q = e^r - 1 by its Taylor polynomial (no cancellation for small x); |x|
 * clamped at 9 (tanh rounds to +-1 there).  Within 3 ulp of tanh; keeps -0,
 * tiny x exact. */
/* fused multiply-add where the target has it (one rounding, half the
 * instructions of the polynomials below: the kernels build with
 * -ffp-contract=off); a*b+c otherwise, so no libm call */
#if defined(__FMA__) || defined(__AVX512F__)
#define BP_FMAF(a, b, c) __builtin_fmaf(a, b, c)
#else
#define BP_FMAF(a, b, c) ((a) * (b) + (c))
#endif
static inline float bp_expf_(float x) {
  float xc = x < -104.0f ? -104.0f : x > 89.0f ? 89.0f : x;
  float nf = xc * 1.44269504088896341f + 12582912.0f - 12582912.0f;
  float r = BP_FMAF(-nf, -2.12194440e-4f, BP_FMAF(-nf, 0.693359375f, xc));
  float p = BP_FMAF(r, 1.0f / 5040, 1.0f / 720);
  p = BP_FMAF(r, p, 1.0f / 120);
  p = BP_FMAF(r, p, 1.0f / 24);
  p = BP_FMAF(r, p, 1.0f / 6);
  p = BP_FMAF(r, p, 0.5f);
  p = BP_FMAF(r, p, 1.0f);
  p = BP_FMAF(r, p, 1.0f);
  int32_t n = (int32_t)nf, n1 = n / 2, n2 = n - n1;
  uint32_t b1 = (uint32_t)(n1 + 127) << 23, b2 = (uint32_t)(n2 + 127) << 23;
  float s1, s2;
  memcpy(&s1, &b1, sizeof s1);
  memcpy(&s2, &b2, sizeof s2);
  return p * s1 * s2;
}
static inline __attribute__((unused)) float bp_tanhf_(float x) { /* unused with AVX-512 */
  float ax = x < 0 ? -x : x;
  float t = 2 * (ax > 9 ? 9 : ax);
  float nf = t * 1.44269504088896341f + 12582912.0f - 12582912.0f;
  float r = BP_FMAF(-nf, -2.12194440e-4f, BP_FMAF(-nf, 0.693359375f, t));
  float q = BP_FMAF(r, 1.0f / 40320, 1.0f / 5040);
  q = BP_FMAF(r, q, 1.0f / 720);
  q = BP_FMAF(r, q, 1.0f / 120);
  q = BP_FMAF(r, q, 1.0f / 24);
  q = BP_FMAF(r, q, 1.0f / 6);
  q = BP_FMAF(r, q, 0.5f);
  q = BP_FMAF(r, q, 1.0f);
  q = r * q;
  uint32_t bits = (uint32_t)((int32_t)nf + 127) << 23;
  float s;
  memcpy(&s, &bits, sizeof s);
  float em = BP_FMAF(s, q, s - 1);          /* e^t - 1 = 2^n (1 + q) - 1, exact for n = 0 */
  return copysignf(em / (em + 2), x);
}
/* tanh over [lo, hi): f64 and plain f32 one element at a time; f32 with
 * AVX-512 16 lanes at a time (bp_tanh16_: bp_tanhf_'s scheme with a
 * half-size reduction step and a quintic in place of the Taylor octic; within
 * 3.4 ulp of tanh on a dense sweep of [-9.5, 9.5]), the last lanes under a mask */
#define BP_TANH_RNG_f64(lo, hi, x, y, TANH) \
  for (size_t i = lo; i < hi; i++) y[i] = TANH(x[i])
#if defined(__AVX512F__)
static inline __m512 bp_tanh16_(__m512 x) {
  /* tanh(x) = x P(x²) / Q(x²) on |x| <= 7.9988 (clamped: the quotient is 1 to
   * float precision there), P of degree 6 and Q of degree 3: the odd/even
   * rational approximation whose coefficients Eigen uses for float tanh.  14
   * vector operations (the exp-based form took 21; on Zen 4 a 512-bit
   * operation issues about once a cycle, so the count is the cost).  Against
   * libm's tanh in double, every float in (0, 100]: at most 5 ulp (relative
   * error 2.9e-7; the exp-based form: 3 ulp).  NaN stays NaN (min/max return
   * their second operand); ±inf give ±1, ±0 stay ±0. */
  const __m512 c = _mm512_set1_ps(7.99881172180175781f);
  x = _mm512_max_ps(_mm512_sub_ps(_mm512_setzero_ps(), c), _mm512_min_ps(c, x));
  __m512 x2 = _mm512_mul_ps(x, x);
  __m512 p = _mm512_fmadd_ps(x2, _mm512_set1_ps(-2.76076847742355e-16f), _mm512_set1_ps(2.00018790482477e-13f));
  p = _mm512_fmadd_ps(x2, p, _mm512_set1_ps(-8.60467152213735e-11f));
  p = _mm512_fmadd_ps(x2, p, _mm512_set1_ps(5.12229709037114e-08f));
  p = _mm512_fmadd_ps(x2, p, _mm512_set1_ps(1.48572235717979e-05f));
  p = _mm512_fmadd_ps(x2, p, _mm512_set1_ps(6.37261928875436e-04f));
  p = _mm512_fmadd_ps(x2, p, _mm512_set1_ps(4.89352455891786e-03f));
  __m512 q = _mm512_fmadd_ps(x2, _mm512_set1_ps(1.19825839466702e-06f), _mm512_set1_ps(1.18534705686654e-04f));
  q = _mm512_fmadd_ps(x2, q, _mm512_set1_ps(2.26843463243900e-03f));
  q = _mm512_fmadd_ps(x2, q, _mm512_set1_ps(4.89352518554385e-03f));
  return _mm512_div_ps(_mm512_mul_ps(x, p), q);
}
static inline void bp_tanh_vec_f32_(size_t lo, size_t hi, const float *x, float *y) {
  size_t i = lo;
  for (; i + 16 <= hi; i += 16) _mm512_storeu_ps(y + i, bp_tanh16_(_mm512_loadu_ps(x + i)));
  if (i < hi) {
    __mmask16 m = (__mmask16)((1u << (hi - i)) - 1);
    _mm512_mask_storeu_ps(y + i, m, bp_tanh16_(_mm512_maskz_loadu_ps(m, x + i)));
  }
}
#define BP_TANH_RNG_f32(lo, hi, x, y, TANH) bp_tanh_vec_f32_(lo, hi, x, y)
#else
#define BP_TANH_RNG_f32(lo, hi, x, y, TANH) \
  for (size_t i = lo; i < hi; i++) y[i] = TANH(x[i])
#endif
/* cross-entropy rows of at most 32 logits, 16 lanes at a time (AVX-512): the
 * row max, e = exp(x - max) by bp_expf_'s polynomial (the 2^n by scalef), their
 * sum (a lane tree, not index order) and probs = e / sum; 0: not done here.
 * Y NULL: softmax only (bp_softmax: the same probs as bp_xent_fwd) */
#if defined(__AVX512F__)
static inline __m512 bp_exp16_(__m512 x) {
  const __m512 c = _mm512_set1_ps(12582912.0f);
  __m512 xc = _mm512_min_ps(_mm512_set1_ps(89.0f), _mm512_max_ps(_mm512_set1_ps(-104.0f), x));
  __m512 nf = _mm512_sub_ps(_mm512_add_ps(_mm512_mul_ps(xc, _mm512_set1_ps(1.44269504088896341f)), c), c);
  __m512 r = _mm512_fnmadd_ps(nf, _mm512_set1_ps(-2.12194440e-4f),
                              _mm512_fnmadd_ps(nf, _mm512_set1_ps(0.693359375f), xc));
  __m512 p = _mm512_fmadd_ps(r, _mm512_set1_ps(1.0f / 5040), _mm512_set1_ps(1.0f / 720));
  p = _mm512_fmadd_ps(r, p, _mm512_set1_ps(1.0f / 120));
  p = _mm512_fmadd_ps(r, p, _mm512_set1_ps(1.0f / 24));
  p = _mm512_fmadd_ps(r, p, _mm512_set1_ps(1.0f / 6));
  p = _mm512_fmadd_ps(r, p, _mm512_set1_ps(0.5f));
  p = _mm512_fmadd_ps(r, p, _mm512_set1_ps(1.0f));
  p = _mm512_fmadd_ps(r, p, _mm512_set1_ps(1.0f));
  return _mm512_scalef_ps(p, nf);
}
static inline int bp_xent_vec_f32_(int N, int K, const float *logits, const int32_t *Y,
                                   float *probs, double *loss) {
  if (K > 32 || K < 1) return 0;
  __mmask16 m0 = (__mmask16)(K >= 16 ? 0xFFFF : (1u << K) - 1);
  __mmask16 m1 = (__mmask16)(K >= 32 ? 0xFFFF : K > 16 ? (1u << (K - 16)) - 1 : 0);
  const __m512 ninf = _mm512_set1_ps(-INFINITY);
  /* sum_n log s_n as the log of products of 64 rows (1 <= s_n <= 32: < 2^320),
   * not a libm log per row */
  double l = 0, prod = 1;
  for (int n = 0; n < N; n++) {
    const float *xr = logits + (size_t)n * K;
    __m512 v0 = _mm512_mask_loadu_ps(ninf, m0, xr), v1 = _mm512_mask_loadu_ps(ninf, m1, xr + 16);
    float mx = _mm512_reduce_max_ps(_mm512_max_ps(v0, v1));
    __m512 vm = _mm512_set1_ps(mx);
    __m512 e0 = _mm512_maskz_mov_ps(m0, bp_exp16_(_mm512_sub_ps(v0, vm)));
    __m512 e1 = _mm512_maskz_mov_ps(m1, bp_exp16_(_mm512_sub_ps(v1, vm)));
    float s = _mm512_reduce_add_ps(_mm512_add_ps(e0, e1));
    if (probs) {
      __m512 inv = _mm512_set1_ps(1 / s);
      _mm512_mask_storeu_ps(probs + (size_t)n * K, m0, _mm512_mul_ps(e0, inv));
      _mm512_mask_storeu_ps(probs + (size_t)n * K + 16, m1, _mm512_mul_ps(e1, inv));
    }
    if (Y) {
      l -= (double)(xr[Y[n]] - mx);
      prod *= (double)s;
      if (n % 64 == 63) l += log(prod), prod = 1;
    }
  }
  *loss = Y ? l + log(prod) : l;
  return 1;
}
#else
static inline int bp_xent_vec_f32_(int N, int K, const float *logits, const int32_t *Y,
                                   float *probs, double *loss) {
  (void)N, (void)K, (void)logits, (void)Y, (void)probs, (void)loss;
  return 0;
}
#endif
static inline int bp_xent_vec_f64_(int N, int K, const double *logits, const int32_t *Y,
                                   double *probs, double *loss) {
  (void)N, (void)K, (void)logits, (void)Y, (void)probs, (void)loss;
  return 0;
}
/* column sums of columns [d0, d1), 128 columns at a time, then 16, with the
 * sums in registers (AVX-512, f32): each column summed over the rows in order,
 * as the scalar loop does (a row's 128 columns are 8 lines read together: a
 * strip of 16 alone walked the rows a line at a time); 0: not done here */
#if defined(__AVX512F__)
static inline int bp_colsum_vec_f32_(int N, int D, int d0, int d1, const float *X, float *y,
                                     int accumulate) {
  for (; d1 - d0 >= 128; d0 += 128) {
    __m512 a[8];
    for (int v = 0; v < 8; v++) a[v] = accumulate ? _mm512_loadu_ps(y + d0 + 16 * v) : _mm512_setzero_ps();
    for (int n = 0; n < N; n++) {
      const float *x = X + (size_t)n * D + d0;
      for (int v = 0; v < 8; v++) a[v] = _mm512_add_ps(a[v], _mm512_loadu_ps(x + 16 * v));
    }
    for (int v = 0; v < 8; v++) _mm512_storeu_ps(y + d0 + 16 * v, a[v]);
  }
  for (int j = d0; j < d1; j += 16) {
    __mmask16 m = (__mmask16)(d1 - j >= 16 ? 0xFFFF : (1u << (d1 - j)) - 1);
    __m512 a = accumulate ? _mm512_maskz_loadu_ps(m, y + j) : _mm512_setzero_ps();
    for (int n = 0; n < N; n++) a = _mm512_add_ps(a, _mm512_maskz_loadu_ps(m, X + (size_t)n * D + j));
    _mm512_mask_storeu_ps(y + j, m, a);
  }
  return 1;
}
#else
static inline int bp_colsum_vec_f32_(int N, int D, int d0, int d1, const float *X, float *y,
                                     int accumulate) {
  (void)N, (void)D, (void)d0, (void)d1, (void)X, (void)y, (void)accumulate;
  return 0;
}
#endif
static inline int bp_colsum_vec_f64_(int N, int D, int d0, int d1, const double *X, double *y,
                                     int accumulate) {
  (void)N, (void)D, (void)d0, (void)d1, (void)X, (void)y, (void)accumulate;
  return 0;
}
#define BP_S f32
#include "kernels_ew.h"
#undef BP_S
#define BP_S f64
#include "kernels_ew.h"
#undef BP_S

/* GELU (dy NULL: out = gelu(x)) or its backward (out = gelu'(x) dy) over [lo,
 * hi), 16 lanes at a time (AVX-512, f32; bp_tanh16_ for the tanh), the last
 * lanes under a mask; 0: not done here */
#if defined(__AVX512F__)
static inline int bp_gelu_vec_f32_(size_t lo, size_t hi, const float *x, const float *dy, float *out) {
  const __m512 c = _mm512_set1_ps(0.79788456080286535588f), a = _mm512_set1_ps(0.044715f);
  const __m512 a3 = _mm512_set1_ps((float)(3 * 0.044715)), half = _mm512_set1_ps(0.5f), one = _mm512_set1_ps(1);
  for (size_t i = lo; i < hi; i += 16) {
    __mmask16 m = (__mmask16)(hi - i >= 16 ? 0xFFFF : (1u << (hi - i)) - 1);
    __m512 v = _mm512_maskz_loadu_ps(m, x + i);
    __m512 v3 = _mm512_mul_ps(_mm512_mul_ps(_mm512_mul_ps(a, v), v), v);
    __m512 t = bp_tanh16_(_mm512_mul_ps(c, _mm512_add_ps(v, v3)));
    __m512 r;
    if (!dy) {
      r = _mm512_mul_ps(_mm512_mul_ps(half, v), _mm512_add_ps(one, t));
    } else {
      __m512 p = _mm512_mul_ps(half, _mm512_add_ps(one, t));
      __m512 q = _mm512_mul_ps(_mm512_mul_ps(half, v), _mm512_sub_ps(one, _mm512_mul_ps(t, t)));
      q = _mm512_mul_ps(_mm512_mul_ps(q, c), _mm512_add_ps(one, _mm512_mul_ps(_mm512_mul_ps(a3, v), v)));
      r = _mm512_mul_ps(_mm512_add_ps(p, q), _mm512_maskz_loadu_ps(m, dy + i));
    }
    _mm512_mask_storeu_ps(out + i, m, r);
  }
  return 1;
}
#else
static inline int bp_gelu_vec_f32_(size_t lo, size_t hi, const float *x, const float *dy, float *out) {
  (void)lo, (void)hi, (void)x, (void)dy, (void)out;
  return 0;
}
#endif
static inline int bp_gelu_vec_f64_(size_t lo, size_t hi, const double *x, const double *dy, double *out) {
  (void)lo, (void)hi, (void)x, (void)dy, (void)out;
  return 0;
}
/* The row sums of layernorm, its dx and the causal softmax: 16 partial sums in
 * double, lane k taking the row's elements k, k + 16, k + 32, ..., then
 * combined as a tree (lane k with k + 8, then k + 4, k + 2, k + 1).  The order
 * is written in the code (no reassociation without -ffast-math), so a level's
 * vector width does not change it; 16 chains where a row at a time waited on
 * one add's latency per element. */
#define BP_ROW_LANES 16
static inline double bp_lane_sum16_(double a[BP_ROW_LANES]) {
  for (int k = 0; k < 8; k++) a[k] += a[k + 8];
  for (int k = 0; k < 4; k++) a[k] += a[k + 4];
  for (int k = 0; k < 2; k++) a[k] += a[k + 2];
  return a[0] + a[1];
}
/* The same rows 16 floats at a time (AVX-512, f32), the lanes as two vectors of
 * 8 doubles, the row's last lanes under a mask (the loads give 0 there, which
 * adds nothing); the arithmetic is the generic loops' operation for operation
 * (no fused multiply-add: these files build with -ffp-contract=off).  0: not
 * done here. */
#if defined(__AVX512F__)
static inline double bp_tree16_(__m512d lo, __m512d hi) {
  __m512d s = _mm512_add_pd(lo, hi);
  __m256d q = _mm256_add_pd(_mm512_castpd512_pd256(s), _mm512_extractf64x4_pd(s, 1));
  __m128d p = _mm_add_pd(_mm256_castpd256_pd128(q), _mm256_extractf128_pd(q, 1));
  return _mm_cvtsd_f64(p) + _mm_cvtsd_f64(_mm_unpackhi_pd(p, p));
}
static inline __mmask16 bp_mask16_(int n) {   /* the first n of 16 lanes (none for n <= 0) */
  return (__mmask16)(n >= 16 ? 0xFFFF : n <= 0 ? 0 : (1u << n) - 1);
}
/* the 16 floats of v as two halves of 8 doubles */
static inline __m512d bp_lo_pd_(__m512 v) { return _mm512_cvtps_pd(_mm512_castps512_ps256(v)); }
static inline __m512d bp_hi_pd_(__m512 v) {
  return _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
}
static inline __m512 bp_ps_pd_(__m512d lo, __m512d hi) {
  return _mm512_insertf32x8(_mm512_castps256_ps512(_mm512_cvtpd_ps(lo)), _mm512_cvtpd_ps(hi), 1);
}
static inline int bp_ln_fwd_vec_f32_(long lo, long hi, int D, const float *x, const float *x2, float *sum,
                                     const float *gain, const float *bias, double eps, float *rstd, float *xhat,
                                     float *out) {
  for (long r = lo; r < hi; r++) {
    const float *xr = x + (size_t)r * D;
    __m512d a0 = _mm512_setzero_pd(), a1 = a0;
    for (int j = 0; j < D; j += 16) {
      __mmask16 m = bp_mask16_(D - j);
      __m512 v = _mm512_maskz_loadu_ps(m, xr + j);
      if (x2) {   /* x + x2, kept in sum */
        v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, x2 + (size_t)r * D + j));
        _mm512_mask_storeu_ps(sum + (size_t)r * D + j, m, v);
      }
      a0 = _mm512_add_pd(a0, bp_lo_pd_(v)), a1 = _mm512_add_pd(a1, bp_hi_pd_(v));
    }
    if (x2)
      xr = sum + (size_t)r * D;
    float mean = (float)(bp_tree16_(a0, a1) / D);
    __m512 vm = _mm512_set1_ps(mean);
    a0 = _mm512_setzero_pd(), a1 = a0;
    for (int j = 0; j < D; j += 16) {
      __mmask16 m = bp_mask16_(D - j);
      __m512 d = _mm512_maskz_sub_ps(m, _mm512_maskz_loadu_ps(m, xr + j), vm);
      __m512d dl = bp_lo_pd_(d), dh = bp_hi_pd_(d);
      a0 = _mm512_add_pd(a0, _mm512_mul_pd(dl, dl)), a1 = _mm512_add_pd(a1, _mm512_mul_pd(dh, dh));
    }
    float rs = (float)(1.0 / sqrt(bp_tree16_(a0, a1) / D + eps));
    __m512 vr = _mm512_set1_ps(rs);
    rstd[r] = rs;
    float *xh = xhat + (size_t)r * D, *o = out + (size_t)r * D;
    for (int j = 0; j < D; j += 16) {
      __mmask16 m = bp_mask16_(D - j);
      __m512 v = _mm512_mul_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, xr + j), vm), vr);
      _mm512_mask_storeu_ps(xh + j, m, v);
      _mm512_mask_storeu_ps(o + j, m, _mm512_add_ps(_mm512_mul_ps(_mm512_maskz_loadu_ps(m, gain + j), v),
                                                    _mm512_maskz_loadu_ps(m, bias + j)));
    }
  }
  return 1;
}
static inline int bp_ln_bwd_vec_f32_(long lo, long hi, int D, const float *xhat, const float *dy,
                                     const float *gain, const float *rstd, const float *add, float *dx) {
  for (long r = lo; r < hi; r++) {
    const float *xh = xhat + (size_t)r * D, *g = dy + (size_t)r * D;
    __m512d p0 = _mm512_setzero_pd(), p1 = p0, q0 = p0, q1 = p0;
    for (int j = 0; j < D; j += 16) {
      __mmask16 m = bp_mask16_(D - j);
      __m512 G = _mm512_maskz_loadu_ps(m, gain + j), Y = _mm512_maskz_loadu_ps(m, g + j);
      __m512 X = _mm512_maskz_loadu_ps(m, xh + j);
      __m512d dl = _mm512_mul_pd(bp_lo_pd_(G), bp_lo_pd_(Y)), dh = _mm512_mul_pd(bp_hi_pd_(G), bp_hi_pd_(Y));
      p0 = _mm512_add_pd(p0, dl), p1 = _mm512_add_pd(p1, dh);
      q0 = _mm512_add_pd(q0, _mm512_mul_pd(dl, bp_lo_pd_(X))), q1 = _mm512_add_pd(q1, _mm512_mul_pd(dh, bp_hi_pd_(X)));
    }
    __m512d A = _mm512_set1_pd(bp_tree16_(p0, p1) / D), B = _mm512_set1_pd(bp_tree16_(q0, q1) / D);
    __m512d R = _mm512_set1_pd((double)rstd[r]);
    float *o = dx + (size_t)r * D;
    for (int j = 0; j < D; j += 16) {
      __mmask16 m = bp_mask16_(D - j);
      __m512 G = _mm512_maskz_loadu_ps(m, gain + j), Y = _mm512_maskz_loadu_ps(m, g + j);
      __m512 X = _mm512_maskz_loadu_ps(m, xh + j);
      __m512d tl = _mm512_sub_pd(_mm512_sub_pd(_mm512_mul_pd(bp_lo_pd_(G), bp_lo_pd_(Y)), A), _mm512_mul_pd(bp_lo_pd_(X), B));
      __m512d th = _mm512_sub_pd(_mm512_sub_pd(_mm512_mul_pd(bp_hi_pd_(G), bp_hi_pd_(Y)), A), _mm512_mul_pd(bp_hi_pd_(X), B));
      __m512 v = bp_ps_pd_(_mm512_mul_pd(R, tl), _mm512_mul_pd(R, th));
      if (add)
        v = _mm512_add_ps(_mm512_maskz_loadu_ps(m, add + (size_t)r * D + j), v);
      _mm512_mask_storeu_ps(o + j, m, v);
    }
  }
  return 1;
}
/* causal softmax rows (see bp_causal_softmax_rows); exp by bp_exp16_ */
static inline int bp_csm_vec_f32_(long r0, long r1, int L, float s, const float *x, float *y) {
  const __m512 S = _mm512_set1_ps(s), ninf = _mm512_set1_ps(-INFINITY);
  for (long r = r0; r < r1; r++) {
    long len = r % L + 1;
    const float *xr = x + (size_t)r * L;
    float *yr = y + (size_t)r * L;
    __m512 mx = ninf;
    for (long j = 0; j < len; j += 16) {
      __mmask16 m = bp_mask16_(len - j);
      mx = _mm512_max_ps(mx, _mm512_mask_mul_ps(ninf, m, _mm512_maskz_loadu_ps(m, xr + j), S));
    }
    __m512 M = _mm512_set1_ps(_mm512_reduce_max_ps(mx));
    __m512d a0 = _mm512_setzero_pd(), a1 = a0;
    for (long j = 0; j < len; j += 16) {
      __mmask16 m = bp_mask16_(len - j);
      __m512 v = _mm512_sub_ps(_mm512_mul_ps(_mm512_maskz_loadu_ps(m, xr + j), S), M);
      __m512 e = _mm512_maskz_mov_ps(m, bp_exp16_(v));
      _mm512_mask_storeu_ps(yr + j, m, e);
      a0 = _mm512_add_pd(a0, bp_lo_pd_(e)), a1 = _mm512_add_pd(a1, bp_hi_pd_(e));
    }
    __m512d inv = _mm512_set1_pd(1 / bp_tree16_(a0, a1));
    for (long j = 0; j < L; j += 16) {
      __mmask16 m = bp_mask16_(L - j), in = bp_mask16_(len - j);
      __m512 e = _mm512_maskz_loadu_ps(in, yr + j);
      __m512 p = bp_ps_pd_(_mm512_mul_pd(bp_lo_pd_(e), inv), _mm512_mul_pd(bp_hi_pd_(e), inv));
      _mm512_mask_storeu_ps(yr + j, m, _mm512_maskz_mov_ps(in, p));   /* exact 0 after the row */
    }
  }
  return 1;
}
static inline int bp_csm_bwd_vec_f32_(long r0, long r1, int L, float s, const float *y, const float *dy,
                                      float *dx) {
  const __m512 S = _mm512_set1_ps(s);
  for (long r = r0; r < r1; r++) {
    long len = r % L + 1;
    const float *yr = y + (size_t)r * L, *gr = dy + (size_t)r * L;
    float *o = dx + (size_t)r * L;
    __m512d a0 = _mm512_setzero_pd(), a1 = a0;
    for (long j = 0; j < len; j += 16) {
      __mmask16 m = bp_mask16_(len - j);
      __m512 Y = _mm512_maskz_loadu_ps(m, yr + j), G = _mm512_maskz_loadu_ps(m, gr + j);
      a0 = _mm512_add_pd(a0, _mm512_mul_pd(bp_lo_pd_(G), bp_lo_pd_(Y)));
      a1 = _mm512_add_pd(a1, _mm512_mul_pd(bp_hi_pd_(G), bp_hi_pd_(Y)));
    }
    __m512 d = _mm512_set1_ps((float)bp_tree16_(a0, a1));
    for (long j = 0; j < L; j += 16) {
      __mmask16 m = bp_mask16_(L - j), in = bp_mask16_(len - j);
      __m512 Y = _mm512_maskz_loadu_ps(in, yr + j), G = _mm512_maskz_loadu_ps(in, gr + j);
      _mm512_mask_storeu_ps(o + j, m, _mm512_maskz_mul_ps(in, _mm512_mul_ps(Y, _mm512_sub_ps(G, d)), S));
    }
  }
  return 1;
}
#endif
/* the same, not done here: f64, and f32 without AVX-512 */
#define BP_ROW_VEC_NONE(T, S)                                                                                  \
  static inline int bp_ln_fwd_vec_##S##_(long lo, long hi, int D, const T *x, const T *x2, T *sum, const T *gain, \
                                         const T *bias, double eps, T *rstd, T *xhat, T *out) {                  \
    (void)lo, (void)hi, (void)D, (void)x, (void)x2, (void)sum, (void)gain, (void)bias, (void)eps, (void)rstd;   \
    (void)xhat, (void)out;                                                                                     \
    return 0;                                                                                                  \
  }                                                                                                            \
  static inline int bp_ln_bwd_vec_##S##_(long lo, long hi, int D, const T *xhat, const T *dy, const T *gain,   \
                                         const T *rstd, const T *add, T *dx) {                                 \
    (void)lo, (void)hi, (void)D, (void)xhat, (void)dy, (void)gain, (void)rstd, (void)add, (void)dx;           \
    return 0;                                                                                                  \
  }                                                                                                            \
  static inline int bp_csm_vec_##S##_(long r0, long r1, int L, T s, const T *x, T *y) {                       \
    (void)r0, (void)r1, (void)L, (void)s, (void)x, (void)y;                                                   \
    return 0;                                                                                                  \
  }                                                                                                            \
  static inline int bp_csm_bwd_vec_##S##_(long r0, long r1, int L, T s, const T *y, const T *dy, T *dx) {     \
    (void)r0, (void)r1, (void)L, (void)s, (void)y, (void)dy, (void)dx;                                        \
    return 0;                                                                                                  \
  }
#if !defined(__AVX512F__)
BP_ROW_VEC_NONE(float, f32)
#endif
BP_ROW_VEC_NONE(double, f64)
#define BP_S f32
#include "kernels_attn.h"
#undef BP_S
#define BP_S f64
#include "kernels_attn.h"
#undef BP_S

/* Batchnorm forward's output rows (columns [0, w) of rows D apart), 16 lanes at a
 * time (AVX-512, f32): xhat = (x - mu) rs, y = ga xhat + be and act = tanh(y)
 * from the same registers (no second pass over y: bp_tanh16_, the lanes that
 * bp_tanh_f32 computes); nt: xhat and y by streaming stores where a row is
 * 64-byte aligned.  0: not done here. */
#if defined(__AVX512F__)
static inline int bp_bn_rows_vec_f32_(int N, long D, int w, const float *x, const float *mu,
                                      const float *rs, const float *ga, const float *be,
                                      float *xh, float *y, float *act, int nt) {
  int i = 0;
  if (!nt && act) /* 2 rows per visit of the column coefficients: two tanh chains in flight */
    for (; i + 2 <= N; i += 2) {
      const float *r = x + (size_t)i * D;
      float *xr = xh + (size_t)i * D, *yr = y + (size_t)i * D, *ar = act + (size_t)i * D;
      for (int j = 0; j < w; j += 16) {
        __mmask16 m = (__mmask16)(w - j >= 16 ? 0xFFFF : (1u << (w - j)) - 1);
        __m512 mu_ = _mm512_maskz_loadu_ps(m, mu + j), rs_ = _mm512_maskz_loadu_ps(m, rs + j);
        __m512 ga_ = _mm512_maskz_loadu_ps(m, ga + j), be_ = _mm512_maskz_loadu_ps(m, be + j);
        __m512 v0 = _mm512_mul_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, r + j), mu_), rs_);
        __m512 v1 = _mm512_mul_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, r + D + j), mu_), rs_);
        __m512 o0 = _mm512_add_ps(_mm512_mul_ps(ga_, v0), be_);
        __m512 o1 = _mm512_add_ps(_mm512_mul_ps(ga_, v1), be_);
        _mm512_mask_storeu_ps(xr + j, m, v0);
        _mm512_mask_storeu_ps(xr + D + j, m, v1);
        _mm512_mask_storeu_ps(yr + j, m, o0);
        _mm512_mask_storeu_ps(yr + D + j, m, o1);
        __m512 t0 = bp_tanh16_(o0), t1 = bp_tanh16_(o1);
        _mm512_mask_storeu_ps(ar + j, m, t0);
        _mm512_mask_storeu_ps(ar + D + j, m, t1);
      }
    }
  for (; i < N; i++) {
    const float *r = x + (size_t)i * D;
    float *xr = xh + (size_t)i * D, *yr = y + (size_t)i * D, *ar = act ? act + (size_t)i * D : NULL;
    int st = nt && ((uintptr_t)xr % 64 == 0) && ((uintptr_t)yr % 64 == 0);
    for (int j = 0; j < w; j += 16) {
      __mmask16 m = (__mmask16)(w - j >= 16 ? 0xFFFF : (1u << (w - j)) - 1);
      __m512 v = _mm512_mul_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, r + j), _mm512_maskz_loadu_ps(m, mu + j)),
                               _mm512_maskz_loadu_ps(m, rs + j));
      __m512 o = _mm512_add_ps(_mm512_mul_ps(_mm512_maskz_loadu_ps(m, ga + j), v),
                               _mm512_maskz_loadu_ps(m, be + j));
      if (st && m == 0xFFFF) {
        _mm512_stream_ps(xr + j, v);
        _mm512_stream_ps(yr + j, o);
      } else {
        _mm512_mask_storeu_ps(xr + j, m, v);
        _mm512_mask_storeu_ps(yr + j, m, o);
      }
      if (ar) _mm512_mask_storeu_ps(ar + j, m, bp_tanh16_(o));
    }
  }
  if (nt) _mm_sfence();
  return 1;
}
#else
static inline int bp_bn_rows_vec_f32_(int N, long D, int w, const float *x, const float *mu,
                                      const float *rs, const float *ga, const float *be,
                                      float *xh, float *y, float *act, int nt) {
  (void)N, (void)D, (void)w, (void)x, (void)mu, (void)rs, (void)ga, (void)be, (void)xh, (void)y;
  (void)act, (void)nt;
  return 0;
}
#endif
/* batchnorm forward's mean and rstd from the shifted sums, 8 columns at a time
 * (AVX-512, the same double operations as the scalar loop, which gcc does not
 * vectorise where sqrt may set errno); returns the columns done */
#if defined(__AVX512F__)
static inline int bp_bn_fin_f32_(int w, int N, double div, double eps, const double *s1,
                                 const double *s2, const float *sh, float *mean, float *rstd) {
  const __m512d vn = _mm512_set1_pd((double)N), vd = _mm512_set1_pd(div), ve = _mm512_set1_pd(eps);
  int j = 0;
  for (; j + 8 <= w; j += 8) {
    __m512d a = _mm512_loadu_pd(s1 + j), b = _mm512_loadu_pd(s2 + j);
    __m512d m = _mm512_div_pd(a, vn);
    __m512d v = _mm512_div_pd(_mm512_sub_pd(b, _mm512_mul_pd(a, m)), vd);
    v = _mm512_max_pd(v, _mm512_setzero_pd()); /* NaN -> 0, as v > 0 ? v : 0 */
    __m512d r = _mm512_div_pd(_mm512_set1_pd(1.0), _mm512_sqrt_pd(_mm512_add_pd(v, ve)));
    __m512d mu = _mm512_add_pd(_mm512_cvtps_pd(_mm256_loadu_ps(sh + j)), m);
    _mm256_storeu_ps(mean + j, _mm512_cvtpd_ps(mu));
    _mm256_storeu_ps(rstd + j, _mm512_cvtpd_ps(r));
  }
  return j;
}
#else
static inline int bp_bn_fin_f32_(int w, int N, double div, double eps, const double *s1,
                                 const double *s2, const float *sh, float *mean, float *rstd) {
  (void)w, (void)N, (void)div, (void)eps, (void)s1, (void)s2, (void)sh, (void)mean, (void)rstd;
  return 0;
}
#endif
static inline int bp_bn_fin_f64_(int w, int N, double div, double eps, const double *s1,
                                 const double *s2, const double *sh, double *mean, double *rstd) {
  (void)w, (void)N, (void)div, (void)eps, (void)s1, (void)s2, (void)sh, (void)mean, (void)rstd;
  return 0;
}
static inline int bp_bn_rows_vec_f64_(int N, long D, int w, const double *x, const double *mu,
                                      const double *rs, const double *ga, const double *be,
                                      double *xh, double *y, double *act, int nt) {
  (void)N, (void)D, (void)w, (void)x, (void)mu, (void)rs, (void)ga, (void)be, (void)xh, (void)y;
  (void)act, (void)nt;
  return 0;
}
/* Batchnorm over few rows (N <= BP_BN_SMALL_N, AVX-512, f32): 16 columns at a
 * time down all the rows (N x 16 floats stay in L1), each column's sums in
 * registers as 4 float partial sums (rows i mod 4), so no per-row round trip
 * through double sums in memory.  Forward, training: S1 = sum (x - x[0]) gives
 * mean = x[0] + S1/N (in double), then var = sum (x - mean)^2 / div over the
 * same rows again (two passes, both in L1); then xhat, out = gain xhat + bias
 * and act = tanh(out) from the same registers.  Backward: dy and its sums
 * s1, s2, then dx and its sum.  Every column's arithmetic is the same in any
 * lane, so any split of the columns at multiples of 16 gives the same bits.
 * Many rows keep the row-wise passes below (walking 16-column blocks down 1024
 * rows defeats the streaming the large case needs).  0: not done here. */
#define BP_BN_SMALL_N 64
#if defined(__AVX512F__)
static inline int bp_bn_fwd_small_f32_(int N, long D, int w, const float *x, const float *ga,
                                       const float *be, const float *run_mean,
                                       const float *run_var, double eps, double div,
                                       float *mean, float *rstd, float *xh, float *out,
                                       float *act) {
  if (N > BP_BN_SMALL_N || (double)N * D * sizeof(float) >= 8e6) return 0;
  const __m512d ve = _mm512_set1_pd(eps), one = _mm512_set1_pd(1.0);
  for (int j = 0; j < w; j += 16) {
    __mmask16 m = bp_mask16_(w - j);
    const float *xc = x + j;
    __m512 mu, rs;
    if (run_mean) {
      mu = _mm512_maskz_loadu_ps(m, run_mean + j);
      __m512 rv = _mm512_maskz_loadu_ps(m, run_var + j);
      rs = bp_ps_pd_(_mm512_div_pd(one, _mm512_sqrt_pd(_mm512_add_pd(bp_lo_pd_(rv), ve))),
                     _mm512_div_pd(one, _mm512_sqrt_pd(_mm512_add_pd(bp_hi_pd_(rv), ve))));
    } else {
      __m512 k = _mm512_maskz_loadu_ps(m, xc);
      __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
      int i = 0;
      for (; i + 4 <= N; i += 4) {
        const float *r = xc + (size_t)i * D;
        a0 = _mm512_add_ps(a0, _mm512_sub_ps(_mm512_maskz_loadu_ps(m, r), k));
        a1 = _mm512_add_ps(a1, _mm512_sub_ps(_mm512_maskz_loadu_ps(m, r + D), k));
        a2 = _mm512_add_ps(a2, _mm512_sub_ps(_mm512_maskz_loadu_ps(m, r + 2 * D), k));
        a3 = _mm512_add_ps(a3, _mm512_sub_ps(_mm512_maskz_loadu_ps(m, r + 3 * D), k));
      }
      for (; i < N; i++) a0 = _mm512_add_ps(a0, _mm512_sub_ps(_mm512_maskz_loadu_ps(m, xc + (size_t)i * D), k));
      __m512 s1 = _mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3));
      __m512d vn = _mm512_set1_pd((double)N);
      mu = bp_ps_pd_(_mm512_add_pd(bp_lo_pd_(k), _mm512_div_pd(bp_lo_pd_(s1), vn)),
                     _mm512_add_pd(bp_hi_pd_(k), _mm512_div_pd(bp_hi_pd_(s1), vn)));
      a0 = a1 = a2 = a3 = _mm512_setzero_ps();
      for (i = 0; i + 4 <= N; i += 4) {
        const float *r = xc + (size_t)i * D;
        __m512 e0 = _mm512_sub_ps(_mm512_maskz_loadu_ps(m, r), mu);
        __m512 e1 = _mm512_sub_ps(_mm512_maskz_loadu_ps(m, r + D), mu);
        __m512 e2 = _mm512_sub_ps(_mm512_maskz_loadu_ps(m, r + 2 * D), mu);
        __m512 e3 = _mm512_sub_ps(_mm512_maskz_loadu_ps(m, r + 3 * D), mu);
        a0 = _mm512_fmadd_ps(e0, e0, a0), a1 = _mm512_fmadd_ps(e1, e1, a1);
        a2 = _mm512_fmadd_ps(e2, e2, a2), a3 = _mm512_fmadd_ps(e3, e3, a3);
      }
      for (; i < N; i++) {
        __m512 e = _mm512_sub_ps(_mm512_maskz_loadu_ps(m, xc + (size_t)i * D), mu);
        a0 = _mm512_fmadd_ps(e, e, a0);
      }
      __m512 s2 = _mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3));
      __m512d vd = _mm512_set1_pd(div);
      rs = bp_ps_pd_(_mm512_div_pd(one, _mm512_sqrt_pd(_mm512_add_pd(_mm512_div_pd(bp_lo_pd_(s2), vd), ve))),
                     _mm512_div_pd(one, _mm512_sqrt_pd(_mm512_add_pd(_mm512_div_pd(bp_hi_pd_(s2), vd), ve))));
    }
    _mm512_mask_storeu_ps(mean + j, m, mu);
    _mm512_mask_storeu_ps(rstd + j, m, rs);
  }
  /* then the rows (the statistics' chains of sums, divisions and square roots of
   * one block overlap the next block's in the loop above) */
  for (int j = 0; j < w; j += 16) {
    __mmask16 m = bp_mask16_(w - j);
    __m512 mu = _mm512_maskz_loadu_ps(m, mean + j), rs = _mm512_maskz_loadu_ps(m, rstd + j);
    __m512 g = _mm512_maskz_loadu_ps(m, ga + j), b = _mm512_maskz_loadu_ps(m, be + j);
    int i = 0;
    if (act) /* 2 rows at a time: two tanh chains in flight */
      for (; i + 2 <= N; i += 2) {
        size_t o = (size_t)i * D + j;
        __m512 v0 = _mm512_mul_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, x + o), mu), rs);
        __m512 v1 = _mm512_mul_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, x + o + D), mu), rs);
        __m512 y0 = _mm512_fmadd_ps(g, v0, b), y1 = _mm512_fmadd_ps(g, v1, b);
        _mm512_mask_storeu_ps(xh + o, m, v0);
        _mm512_mask_storeu_ps(xh + o + D, m, v1);
        _mm512_mask_storeu_ps(out + o, m, y0);
        _mm512_mask_storeu_ps(out + o + D, m, y1);
        __m512 t0 = bp_tanh16_(y0), t1 = bp_tanh16_(y1);
        _mm512_mask_storeu_ps(act + o, m, t0);
        _mm512_mask_storeu_ps(act + o + D, m, t1);
      }
    for (; i < N; i++) {
      size_t o = (size_t)i * D + j;
      __m512 v = _mm512_mul_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, x + o), mu), rs);
      __m512 y = _mm512_fmadd_ps(g, v, b);
      _mm512_mask_storeu_ps(xh + o, m, v);
      _mm512_mask_storeu_ps(out + o, m, y);
      if (act) _mm512_mask_storeu_ps(act + o, m, bp_tanh16_(y));
    }
  }
  return 1;
}
static inline int bp_bn_bwd_small_f32_(int N, long D, int w, const float *t, const float *dt,
                                       float *dy, const float *xh, const float *ga,
                                       const float *rst, double c, float *dgain, float *dbias,
                                       float *dx, float *dxsum) {
  if (N > BP_BN_SMALL_N) return 0;
  const __m512 one = _mm512_set1_ps(1);
  const __m512d vn = _mm512_set1_pd((double)N), vc = _mm512_set1_pd(c);
  for (int j = 0; j < w; j += 16) {
    __mmask16 m = bp_mask16_(w - j);
    __m512 a[4], b[4];
    for (int q = 0; q < 4; q++) a[q] = b[q] = _mm512_setzero_ps();
    int i = 0;
    /* dy = (1 - t^2) dt, s1 = sum dy, s2 = sum dy xhat */
#define BP_BN_DY_ROW(q, r)                                                                 \
    do {                                                                                   \
      size_t o_ = (size_t)(r) * D + j;                                                     \
      __m512 d_;                                                                           \
      if (t) {                                                                             \
        __m512 t_ = _mm512_maskz_loadu_ps(m, t + o_);                                      \
        d_ = _mm512_mul_ps(_mm512_fnmadd_ps(t_, t_, one), _mm512_maskz_loadu_ps(m, dt + o_)); \
        _mm512_mask_storeu_ps(dy + o_, m, d_);                                             \
      } else d_ = _mm512_maskz_loadu_ps(m, dy + o_);                                       \
      a[q] = _mm512_add_ps(a[q], d_);                                                      \
      b[q] = _mm512_fmadd_ps(d_, _mm512_maskz_loadu_ps(m, xh + o_), b[q]);                 \
    } while (0)
    for (; i + 4 <= N; i += 4) {
      BP_BN_DY_ROW(0, i); BP_BN_DY_ROW(1, i + 1); BP_BN_DY_ROW(2, i + 2); BP_BN_DY_ROW(3, i + 3);
    }
    for (; i < N; i++) BP_BN_DY_ROW(0, i);
#undef BP_BN_DY_ROW
    __m512 s1 = _mm512_add_ps(_mm512_add_ps(a[0], a[1]), _mm512_add_ps(a[2], a[3]));
    __m512 s2 = _mm512_add_ps(_mm512_add_ps(b[0], b[1]), _mm512_add_ps(b[2], b[3]));
    if (dbias) _mm512_mask_storeu_ps(dbias + j, m, s1);
    if (dgain) _mm512_mask_storeu_ps(dgain + j, m, s2);
    /* dx = k (N dy - s1 - c xhat s2), k = gain rstd / N: ka dy - kb - kc xhat */
    __m512 g = _mm512_maskz_loadu_ps(m, ga + j), rv = _mm512_maskz_loadu_ps(m, rst + j);
    __m512d kl = _mm512_div_pd(_mm512_mul_pd(bp_lo_pd_(g), bp_lo_pd_(rv)), vn);
    __m512d kh = _mm512_div_pd(_mm512_mul_pd(bp_hi_pd_(g), bp_hi_pd_(rv)), vn);
    __m512 ka = bp_ps_pd_(_mm512_mul_pd(kl, vn), _mm512_mul_pd(kh, vn));
    __m512 kb = bp_ps_pd_(_mm512_mul_pd(bp_lo_pd_(s1), kl), _mm512_mul_pd(bp_hi_pd_(s1), kh));
    __m512 kc = bp_ps_pd_(_mm512_mul_pd(_mm512_mul_pd(bp_lo_pd_(s2), kl), vc),
                          _mm512_mul_pd(_mm512_mul_pd(bp_hi_pd_(s2), kh), vc));
    for (int q = 0; q < 4; q++) a[q] = _mm512_setzero_ps();
#define BP_BN_DX_ROW(q, r)                                                                 \
    do {                                                                                   \
      size_t o_ = (size_t)(r) * D + j;                                                     \
      __m512 v_ = _mm512_fmsub_ps(ka, _mm512_maskz_loadu_ps(m, dy + o_), kb);              \
      v_ = _mm512_fnmadd_ps(kc, _mm512_maskz_loadu_ps(m, xh + o_), v_);                     \
      _mm512_mask_storeu_ps(dx + o_, m, v_);                                               \
      a[q] = _mm512_add_ps(a[q], v_);                                                      \
    } while (0)
    for (i = 0; i + 4 <= N; i += 4) {
      BP_BN_DX_ROW(0, i); BP_BN_DX_ROW(1, i + 1); BP_BN_DX_ROW(2, i + 2); BP_BN_DX_ROW(3, i + 3);
    }
    for (; i < N; i++) BP_BN_DX_ROW(0, i);
#undef BP_BN_DX_ROW
    if (dxsum)
      _mm512_mask_storeu_ps(dxsum + j, m, _mm512_add_ps(_mm512_add_ps(a[0], a[1]), _mm512_add_ps(a[2], a[3])));
  }
  return 1;
}
#else
static inline int bp_bn_fwd_small_f32_(int N, long D, int w, const float *x, const float *ga,
                                       const float *be, const float *run_mean,
                                       const float *run_var, double eps, double div,
                                       float *mean, float *rstd, float *xh, float *out,
                                       float *act) {
  (void)N, (void)D, (void)w, (void)x, (void)ga, (void)be, (void)run_mean, (void)run_var;
  (void)eps, (void)div, (void)mean, (void)rstd, (void)xh, (void)out, (void)act;
  return 0;
}
static inline int bp_bn_bwd_small_f32_(int N, long D, int w, const float *t, const float *dt,
                                       float *dy, const float *xh, const float *ga,
                                       const float *rst, double c, float *dgain, float *dbias,
                                       float *dx, float *dxsum) {
  (void)N, (void)D, (void)w, (void)t, (void)dt, (void)dy, (void)xh, (void)ga, (void)rst, (void)c;
  (void)dgain, (void)dbias, (void)dx, (void)dxsum;
  return 0;
}
#endif
static inline int bp_bn_fwd_small_f64_(int N, long D, int w, const double *x, const double *ga,
                                       const double *be, const double *run_mean,
                                       const double *run_var, double eps, double div,
                                       double *mean, double *rstd, double *xh, double *out,
                                       double *act) {
  (void)N, (void)D, (void)w, (void)x, (void)ga, (void)be, (void)run_mean, (void)run_var;
  (void)eps, (void)div, (void)mean, (void)rstd, (void)xh, (void)out, (void)act;
  return 0;
}
static inline int bp_bn_bwd_small_f64_(int N, long D, int w, const double *t, const double *dt,
                                       double *dy, const double *xh, const double *ga,
                                       const double *rst, double c, double *dgain, double *dbias,
                                       double *dx, double *dxsum) {
  (void)N, (void)D, (void)w, (void)t, (void)dt, (void)dy, (void)xh, (void)ga, (void)rst, (void)c;
  (void)dgain, (void)dbias, (void)dx, (void)dxsum;
  return 0;
}
/* ---- fused passes: bias add into the product, batchnorm forward and backward ---- */
#define BP_S f32
#include "kernels_bn.h"
#undef BP_S
#define BP_S f64
#include "kernels_bn.h"
#undef BP_S

/* Batchnorm of one column block [N, w] (w <= 64 columns, rows ld apart) with its
 * column sums in registers (AVX-512, f32): forward -- mean and rstd (sums of
 * z - z[0] over 8-row partials in float, then double), x̂, y (may be NULL) and
 * h = tanh(y) in one more pass; backward -- with dy = (1 - h²) dh made in both
 * passes (written only when dy is not NULL): dbias = Σ dy, dgain = Σ dy x̂,
 * dz = ka dy - kb - kc x̂ (bp_bn_bwd's coefficients) and db1 = Σ dz.  0: not
 * done here. */
#if defined(__AVX512F__)
#define BP_BLK_MASK(w, v) \
  ((__mmask16)((w) - 16 * (v) >= 16 ? 0xFFFF : (w) - 16 * (v) <= 0 ? 0 : (1u << ((w) - 16 * (v))) - 1))
static inline void bp_blk_sums8_(__m512 *f, __m512d *lo, __m512d *hi) {
  *lo = _mm512_add_pd(*lo, _mm512_cvtps_pd(_mm512_castps512_ps256(*f)));
  *hi = _mm512_add_pd(*hi, _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(*f), 1))));
  *f = _mm512_setzero_ps();
}
static int bp_blk_bn_fwd_f32_(int N, int w, long ld, const float *z, const float *gain, const float *bias,
                              double eps, double div, float *mean, float *rstd, float *xh, float *y,
                              float *h, float *hc) {
  if (w > 64 || N < 1) return 0;
  __m512 sh[4], f1[4], f2[4];
  __m512d a1[8], a2[8];
  __mmask16 m[4];
  for (int v = 0; v < 4; v++) {
    m[v] = BP_BLK_MASK(w, v);
    sh[v] = _mm512_maskz_loadu_ps(m[v], z + 16 * v);
    f1[v] = f2[v] = _mm512_setzero_ps();
    a1[2 * v] = a1[2 * v + 1] = a2[2 * v] = a2[2 * v + 1] = _mm512_setzero_pd();
  }
  for (int i = 0; i < N; i++) {
    const float *r = z + (size_t)i * ld;
    for (int v = 0; v < 4; v++)
      if (m[v]) {
        __m512 d = _mm512_sub_ps(_mm512_maskz_loadu_ps(m[v], r + 16 * v), sh[v]);
        f1[v] = _mm512_add_ps(f1[v], d);
        f2[v] = _mm512_fmadd_ps(d, d, f2[v]);
      }
    if ((i & 7) == 7 || i == N - 1)
      for (int v = 0; v < 4; v++)
        if (m[v]) {
          bp_blk_sums8_(&f1[v], &a1[2 * v], &a1[2 * v + 1]);
          bp_blk_sums8_(&f2[v], &a2[2 * v], &a2[2 * v + 1]);
        }
  }
  __m512 mu[4], rs[4], ga[4], be[4];
  const __m512d vn = _mm512_set1_pd((double)N), vd = _mm512_set1_pd(div), ve = _mm512_set1_pd(eps);
  for (int v = 0; v < 4; v++) {
    if (!m[v]) continue;
    __m256 mh[2], rh[2];
    for (int k = 0; k < 2; k++) {
      __m512d s1 = a1[2 * v + k], s2 = a2[2 * v + k];
      __m512d mm = _mm512_div_pd(s1, vn);
      __m512d var = _mm512_max_pd(_mm512_div_pd(_mm512_sub_pd(s2, _mm512_mul_pd(s1, mm)), vd), _mm512_setzero_pd());
      rh[k] = _mm512_cvtpd_ps(_mm512_div_pd(_mm512_set1_pd(1.0), _mm512_sqrt_pd(_mm512_add_pd(var, ve))));
      __m256 shk = k ? _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(sh[v]), 1))
                     : _mm512_castps512_ps256(sh[v]);
      mh[k] = _mm512_cvtpd_ps(_mm512_add_pd(_mm512_cvtps_pd(shk), mm));
    }
    mu[v] = _mm512_insertf32x8(_mm512_castps256_ps512(mh[0]), mh[1], 1);
    rs[v] = _mm512_insertf32x8(_mm512_castps256_ps512(rh[0]), rh[1], 1);
    _mm512_mask_storeu_ps(mean + 16 * v, m[v], mu[v]);
    _mm512_mask_storeu_ps(rstd + 16 * v, m[v], rs[v]);
    ga[v] = _mm512_maskz_loadu_ps(m[v], gain + 16 * v);
    be[v] = _mm512_maskz_loadu_ps(m[v], bias + 16 * v);
  }
  /* x̂ and h (may be NULL) are read again only in the backward, long after:
   * streaming stores (no read for ownership) where rows are whole aligned
   * vectors; hc (may be NULL): h in cache, for what reads it next */
  int st = w % 16 == 0 && ld % 16 == 0 && (uintptr_t)xh % 64 == 0 && (uintptr_t)h % 64 == 0;
  for (int i = 0; i < N; i++) {
    size_t o = (size_t)i * ld;
    for (int v = 0; v < 4; v++)
      if (m[v]) {
        __m512 x = _mm512_mul_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(m[v], z + o + 16 * v), mu[v]), rs[v]);
        __m512 t = _mm512_fmadd_ps(ga[v], x, be[v]);
        if (y) _mm512_mask_storeu_ps(y + o + 16 * v, m[v], t);
        __m512 th = bp_tanh16_(t);
        if (st) {
          _mm512_stream_ps(xh + o + 16 * v, x);
          if (h) _mm512_stream_ps(h + o + 16 * v, th);
        } else {
          _mm512_mask_storeu_ps(xh + o + 16 * v, m[v], x);
          if (h) _mm512_mask_storeu_ps(h + o + 16 * v, m[v], th);
        }
        if (hc) _mm512_mask_storeu_ps(hc + o + 16 * v, m[v], th);
      }
  }
  if (st) _mm_sfence();
  return 1;
}
static int bp_blk_bn_bwd_f32_(int N, int w, long ld, float *h, const float *dh, const float *xh,
                              const float *gain, const float *beta, const float *rstd, double c,
                              float *dgain, float *dbias, float *dy, float *dz, float *db1) {
  if (w > 64 || N < 1) return 0;
  __m512 ga[4], be[4];
  __m512 f1[4], f2[4];
  __m512d a1[8], a2[8];
  __mmask16 m[4];
  const __m512 one = _mm512_set1_ps(1);
  for (int v = 0; v < 4; v++) {
    m[v] = BP_BLK_MASK(w, v);
    f1[v] = f2[v] = _mm512_setzero_ps();
    a1[2 * v] = a1[2 * v + 1] = a2[2 * v] = a2[2 * v + 1] = _mm512_setzero_pd();
    ga[v] = _mm512_maskz_loadu_ps(m[v], gain + 16 * v);
    be[v] = _mm512_maskz_loadu_ps(m[v], beta + 16 * v);
  }
#define BP_BLK_DY(o, v)                                                                   \
  _mm512_mul_ps(_mm512_fnmadd_ps(_mm512_maskz_loadu_ps(m[v], h + (o) + 16 * (v)),         \
                                 _mm512_maskz_loadu_ps(m[v], h + (o) + 16 * (v)), one),   \
                _mm512_maskz_loadu_ps(m[v], dh + (o) + 16 * (v)))
  for (int i = 0; i < N; i++) {
    size_t o = (size_t)i * ld;
    for (int v = 0; v < 4; v++)
      if (m[v]) { /* h again from x̂, as the forward made it (the same operations) */
        __m512 x = _mm512_maskz_loadu_ps(m[v], xh + o + 16 * v);
        __m512 t = bp_tanh16_(_mm512_fmadd_ps(ga[v], x, be[v]));
        _mm512_mask_storeu_ps(h + o + 16 * v, m[v], t);
        __m512 d = _mm512_mul_ps(_mm512_fnmadd_ps(t, t, one), _mm512_maskz_loadu_ps(m[v], dh + o + 16 * v));
        if (dy) _mm512_mask_storeu_ps(dy + o + 16 * v, m[v], d);
        f1[v] = _mm512_add_ps(f1[v], d);
        f2[v] = _mm512_fmadd_ps(d, x, f2[v]);
      }
    if ((i & 7) == 7 || i == N - 1)
      for (int v = 0; v < 4; v++)
        if (m[v]) {
          bp_blk_sums8_(&f1[v], &a1[2 * v], &a1[2 * v + 1]);
          bp_blk_sums8_(&f2[v], &a2[2 * v], &a2[2 * v + 1]);
        }
  }
  /* dz = k (N dy - s1 - c x̂ s2), k = gain rstd / N: ka dy - kb - kc x̂ */
  __m512 ka[4], kb[4], kc[4];
  const __m512d vn = _mm512_set1_pd((double)N), vc = _mm512_set1_pd(c);
  for (int v = 0; v < 4; v++) {
    if (!m[v]) continue;
    __m256 A[2], B[2], C[2], S1[2], S2[2];
    __m512 g = _mm512_maskz_loadu_ps(m[v], gain + 16 * v), r = _mm512_maskz_loadu_ps(m[v], rstd + 16 * v);
    for (int k = 0; k < 2; k++) {
      __m256 gk = k ? _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(g), 1)) : _mm512_castps512_ps256(g);
      __m256 rk = k ? _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(r), 1)) : _mm512_castps512_ps256(r);
      __m512d kk = _mm512_div_pd(_mm512_mul_pd(_mm512_cvtps_pd(gk), _mm512_cvtps_pd(rk)), vn);
      A[k] = _mm512_cvtpd_ps(_mm512_mul_pd(kk, vn));
      B[k] = _mm512_cvtpd_ps(_mm512_mul_pd(a1[2 * v + k], kk));
      C[k] = _mm512_cvtpd_ps(_mm512_mul_pd(_mm512_mul_pd(a2[2 * v + k], kk), vc));
      S1[k] = _mm512_cvtpd_ps(a1[2 * v + k]);
      S2[k] = _mm512_cvtpd_ps(a2[2 * v + k]);
    }
#define BP_BLK_JOIN(x) _mm512_insertf32x8(_mm512_castps256_ps512(x[0]), x[1], 1)
    ka[v] = BP_BLK_JOIN(A), kb[v] = BP_BLK_JOIN(B), kc[v] = BP_BLK_JOIN(C);
    if (dbias) _mm512_mask_storeu_ps(dbias + 16 * v, m[v], BP_BLK_JOIN(S1));
    if (dgain) _mm512_mask_storeu_ps(dgain + 16 * v, m[v], BP_BLK_JOIN(S2));
    a1[2 * v] = a1[2 * v + 1] = _mm512_setzero_pd();
  }
  for (int i = 0; i < N; i++) {
    size_t o = (size_t)i * ld;
    for (int v = 0; v < 4; v++)
      if (m[v]) {
        __m512 d = BP_BLK_DY(o, v);
        __m512 x = _mm512_maskz_loadu_ps(m[v], xh + o + 16 * v);
        __m512 r = _mm512_fnmadd_ps(kc[v], x, _mm512_fmsub_ps(ka[v], d, kb[v]));
        _mm512_mask_storeu_ps(dz + o + 16 * v, m[v], r);
        f1[v] = _mm512_add_ps(f1[v], r);
      }
    if ((i & 7) == 7 || i == N - 1)
      for (int v = 0; v < 4; v++)
        if (m[v]) bp_blk_sums8_(&f1[v], &a1[2 * v], &a1[2 * v + 1]);
  }
  if (db1)
    for (int v = 0; v < 4; v++)
      if (m[v]) {
        __m256 S[2] = {_mm512_cvtpd_ps(a1[2 * v]), _mm512_cvtpd_ps(a1[2 * v + 1])};
        _mm512_mask_storeu_ps(db1 + 16 * v, m[v], BP_BLK_JOIN(S));
      }
#undef BP_BLK_DY
#undef BP_BLK_JOIN
  return 1;
}
#else
static int bp_blk_bn_fwd_f32_(int N, int w, long ld, const float *z, const float *gain, const float *bias,
                              double eps, double div, float *mean, float *rstd, float *xh, float *y,
                              float *h, float *hc) {
  (void)N, (void)w, (void)ld, (void)z, (void)gain, (void)bias, (void)eps, (void)div, (void)mean, (void)rstd;
  (void)xh, (void)y, (void)h, (void)hc;
  return 0;
}
static int bp_blk_bn_bwd_f32_(int N, int w, long ld, float *h, const float *dh, const float *xh,
                              const float *gain, const float *beta, const float *rstd, double c,
                              float *dgain, float *dbias, float *dy, float *dz, float *db1) {
  (void)N, (void)w, (void)ld, (void)h, (void)dh, (void)xh, (void)gain, (void)beta, (void)rstd, (void)c, (void)dgain;
  (void)dbias, (void)dy, (void)dz, (void)db1;
  return 0;
}
#endif
static int bp_blk_bn_fwd_f64_(int N, int w, long ld, const double *z, const double *gain, const double *bias,
                              double eps, double div, double *mean, double *rstd, double *xh,
                              double *y, double *h, double *hc) {
  (void)N, (void)w, (void)ld, (void)z, (void)gain, (void)bias, (void)eps, (void)div, (void)mean, (void)rstd;
  (void)xh, (void)y, (void)h, (void)hc;
  return 0;
}
static int bp_blk_bn_bwd_f64_(int N, int w, long ld, double *h, const double *dh, const double *xh,
                              const double *gain, const double *beta, const double *rstd, double c,
                              double *dgain, double *dbias, double *dy, double *dz, double *db1) {
  (void)N, (void)w, (void)ld, (void)h, (void)dh, (void)xh, (void)gain, (void)beta, (void)rstd, (void)c, (void)dgain;
  (void)dbias, (void)dy, (void)dz, (void)db1;
  return 0;
}
/* ---- a batchnorm layer between two linear maps, by column blocks ---------------- *
 * (bp_bnlayer_fwd/bwd above.)  Per group: scratch carved from ws after the
 * blocked x̂, each piece 64-byte aligned. */
#define BP_S f32
#include "kernels_layer.h"
#undef BP_S
#define BP_S f64
#include "kernels_layer.h"
#undef BP_S

#endif /* BP_KERNELS_DECLARE_ONLY */
#endif /* BP_KERNELS_H */
