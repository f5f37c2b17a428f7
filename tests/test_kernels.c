/* test_kernels.c: every kernel of runtime/kernels.h against a naive
 * double-precision reference, on a table of shapes that includes the lecture
 * MLP's skinny ones (N = 27, K = 30, M = 30), odd sizes and sizes that cross
 * the blocking (k block <= 512, column block 768, 8 panels of rows); all
 * transa/transb forms,
 * accumulate 0 and 1.  f32 must agree with the f64 reference within 1e-5
 * relative to sum_k |a b| (scaled by K/100 for long sums), f64 within 1e-12.
 * With 2 and 3 threads the results must be bit-identical to 1 thread. */
#include "tests.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BP_KERNELS_DECLARE_ONLY
#include "kernels.h"
#include "../templates/model_kernels.h"

static unsigned rng = 1;
static double urand(void) { /* in [-1, 1) */
  rng = rng * 1664525u + 1013904223u;
  return (double)(rng >> 8) / 8388608.0 - 1.0;
}

/* 64-byte aligned: the kernels' streaming stores need it (else they store plainly) */
static void *alloc64(size_t n) {
  void *p = NULL;
  ck_assert(posix_memalign(&p, 64, n) == 0);
  return p;
}

typedef struct { int M, N, K; } GemmShape;
static const GemmShape gemm_shapes[] = {
    {1, 1, 1},       {1, 7, 13},      {7, 1, 13},      {13, 7, 1},      {27, 33, 13},
    {32, 64, 30},    {32, 27, 64},    {32, 200, 30},   {32, 27, 200},   {200, 27, 32},
    {30, 200, 32},   {32, 30, 200},   {33, 65, 257},   {13, 1100, 300}, {100, 50, 600},
    {256, 27, 1024}, {1024, 27, 256}, {30, 1024, 256}, {256, 1024, 27}, {256, 30, 1024},
    {1024, 4096, 30}, {5, 17, 3},     {12, 32, 7},     {25, 48, 100},   {13, 16, 64},
    {64, 600, 27},    {3, 2000, 2},
    /* the general path's blocking: K cut into nearly equal blocks of at most 512
     * (1030: 344+343+343, 513: 257+256), B blocks of 768 columns (800, 1537), A
     * blocks of 8 panels of <= 12 rows (97, 203: one panel short, edges of the
     * 16 x 16 packing transposes: 17, 33, 45) */
    {97, 800, 1030},  {203, 33, 513},  {17, 1537, 45},  {31, 97, 1024},
    {385, 65, 129},
    /* the small path's row blocks shared by the threads (from 0.5 MFLOP): 11
     * blocks of 12 and 11 rows, 11 of 11 and 12 */
    {128, 64, 64},    {130, 70, 50},
};

/* op(A)(i,k), op(B)(k,j) of row-major storage */
#define OPA(A, i, k) (ta ? (A)[(size_t)(k) * M + (i)] : (A)[(size_t)(i) * K + (k)])
#define OPB(B, k, j) (tb ? (B)[(size_t)(j) * K + (k)] : (B)[(size_t)(k) * N + (j)])

/* Checks C (from C0 when acc) against the double reference at every element, or
 * at 3000 sampled ones for big products; returns the number of failures. */
#define CHECK_GEMM(T, TOL)                                                              \
  static int check_gemm_##T(int M, int N, int K, int ta, int tb, int acc, const T *A,   \
                            const T *B, const T *C0, const T *C) {                      \
    size_t total = (size_t)M * N;                                                       \
    int sampled = (double)M * N * K > 2e6;                                              \
    size_t count = sampled ? 3000 : total;                                              \
    int bad = 0;                                                                        \
    double maxrel = 0;                                                                  \
    for (size_t e = 0; e < count; e++) {                                                \
      size_t idx = sampled ? (size_t)((urand() + 1) * 0.5 * total) % total : e;         \
      int i = (int)(idx / N), j = (int)(idx % N);                                       \
      double s = 0, mag = 0;                                                            \
      for (int k = 0; k < K; k++) {                                                     \
        double p = (double)OPA(A, i, k) * (double)OPB(B, k, j);                         \
        s += p, mag += fabs(p);                                                         \
      }                                                                                 \
      if (acc) s += C0[idx], mag += fabs(C0[idx]);                                      \
      double err = fabs((double)C[idx] - s), tol = (TOL) * (K > 100 ? K / 100.0 : 1.0) * (mag + 1e-30); \
      if (err / (mag + 1e-30) > maxrel) maxrel = err / (mag + 1e-30);                   \
      if (!(err <= tol)) {                                                              \
        if (bad < 3)                                                                    \
          fprintf(stderr, "gemm " #T " M=%d N=%d K=%d ta=%d tb=%d acc=%d: C[%d,%d] = %.9g, want %.9g\n", \
                  M, N, K, ta, tb, acc, i, j, (double)C[idx], s);                       \
        bad++;                                                                          \
      }                                                                                 \
    }                                                                                   \
    if (bad)                                                                            \
      fprintf(stderr, "  %d of %zu elements differ, max relative error %.3g\n", bad, count, maxrel); \
    return bad;                                                                         \
  }
CHECK_GEMM(float, 1e-5)
CHECK_GEMM(double, 1e-12)

#define RUN_GEMM(T, SFX)                                                                \
  static void run_gemm_##T(int s) {                                                     \
    int M = gemm_shapes[s].M, N = gemm_shapes[s].N, K = gemm_shapes[s].K;               \
    int big = (double)M * N * K > 2e6;                                                  \
    T *A = malloc(sizeof(T) * M * K), *B = malloc(sizeof(T) * K * N);                   \
    T *C0 = malloc(sizeof(T) * M * N), *C = alloc64(sizeof(T) * M * N);                 \
    T *C1 = alloc64(sizeof(T) * M * N);                                                 \
    for (size_t i = 0; i < (size_t)M * K; i++) A[i] = (T)urand();                       \
    for (size_t i = 0; i < (size_t)K * N; i++) B[i] = (T)urand();                       \
    for (size_t i = 0; i < (size_t)M * N; i++) C0[i] = (T)urand();                      \
    for (int f = 0; f < 8; f++) {                                                       \
      int ta = f & 1, tb = (f >> 1) & 1, acc = f >> 2;                                  \
      if (big && f != 0 && f != 6 && f != 5) continue; /* backprop's three forms */     \
      bp_set_threads(1);                                                                \
      memcpy(C, C0, sizeof(T) * M * N);                                                 \
      bp_gemm_##SFX(M, N, K, A, ta, B, tb, C, acc);                                     \
      ck_assert_msg(check_gemm_##T(M, N, K, ta, tb, acc, A, B, C0, C) == 0,             \
                    "bp_gemm_" #SFX " M=%d N=%d K=%d ta=%d tb=%d acc=%d", M, N, K, ta, tb, acc); \
      for (int nt = 2; nt <= (big ? 2 : 3); nt++) {                                     \
        bp_set_threads(nt);                                                             \
        memcpy(C1, C0, sizeof(T) * M * N);                                              \
        bp_gemm_##SFX(M, N, K, A, ta, B, tb, C1, acc);                                  \
        ck_assert_msg(memcmp(C, C1, sizeof(T) * M * N) == 0,                            \
                      "bp_gemm_" #SFX " M=%d N=%d K=%d ta=%d tb=%d acc=%d: %d threads differ from 1", \
                      M, N, K, ta, tb, acc, nt);                                        \
      }                                                                                 \
    }                                                                                   \
    bp_set_threads(1);                                                                  \
    free(A), free(B), free(C0), free(C), free(C1);                                      \
  }
RUN_GEMM(float, f32)
RUN_GEMM(double, f64)

START_TEST(gemm_f32) { run_gemm_float(_i); }
END_TEST
START_TEST(gemm_f64) { run_gemm_double(_i); }
END_TEST

START_TEST(gemm_k0) {
  float C[6] = {1, 2, 3, 4, 5, 6}, A[1] = {0}, B[1] = {0};
  bp_gemm_f32(2, 3, 0, A, 0, B, 0, C, 1);
  ck_assert(C[0] == 1 && C[5] == 6);
  bp_gemm_f32(2, 3, 0, A, 0, B, 0, C, 0);
  for (int i = 0; i < 6; i++) ck_assert(C[i] == 0);
}
END_TEST

/* ---- the elementwise, reduction, softmax/cross-entropy and optimiser kernels --- */
static const int sizes[] = {1, 7, 13, 16, 27, 33, 100, 1000, 4099};

#define MAXERR(T, n, got, want_expr, out)                                   \
  do {                                                                      \
    out = 0;                                                                \
    for (size_t i = 0; i < (size_t)(n); i++) {                              \
      double w = (want_expr), e = fabs((double)(got)[i] - w) / (fabs(w) + 1); \
      if (!(e <= out)) out = e;                                             \
    }                                                                       \
  } while (0)

#define ELEMENTWISE_TEST(T, SFX, TOL)                                                       \
  START_TEST(elementwise_##SFX) {                                                           \
    int n = sizes[_i];                                                                      \
    T *x = malloc(sizeof(T) * n), *y = malloc(sizeof(T) * n), *d = malloc(sizeof(T) * n);   \
    T *g = malloc(sizeof(T) * n);                                                           \
    for (int i = 0; i < n; i++) x[i] = (T)(urand() * (i % 3 == 0 ? 12 : i % 3 == 1 ? 1 : 0.01)); \
    for (int i = 0; i < n; i++) d[i] = (T)urand(), g[i] = (T)urand();                       \
    double err;                                                                             \
    bp_tanh_##SFX(n, x, y);                                                                 \
    MAXERR(T, n, y, tanh((double)x[i]), err);                                               \
    ck_assert_msg(err <= TOL, "bp_tanh_" #SFX " n=%d: max error %g", n, err);               \
    bp_tanh_bwd_##SFX(n, y, d, g, 0);                                                       \
    MAXERR(T, n, g, (1 - (double)y[i] * y[i]) * d[i], err);                                 \
    ck_assert_msg(err <= TOL, "bp_tanh_bwd_" #SFX " n=%d: max error %g", n, err);           \
    memcpy(y, g, sizeof(T) * n);                                                            \
    bp_tanh_bwd_##SFX(n, x, d, g, 1); /* t = x here: any values */                          \
    MAXERR(T, n, g, y[i] + (1 - (double)x[i] * x[i]) * d[i], err);                          \
    ck_assert_msg(err <= TOL * 200, "bp_tanh_bwd_" #SFX " acc n=%d: max error %g", n, err); \
    for (int i = 0; i < n; i++) x[i] = (T)(urand() * 20);                                   \
    bp_exp_##SFX(n, x, y);                                                                  \
    err = 0;                                                                                \
    for (int i = 0; i < n; i++) err = fmax(err, fabs(y[i] - exp((double)x[i])) / exp((double)x[i])); \
    ck_assert_msg(err <= TOL, "bp_exp_" #SFX " n=%d: max relative error %g", n, err);        \
    for (int i = 0; i < n; i++) y[i] = x[i];                                                \
    bp_sgd_##SFX(n, y, d, 0.1);                                                             \
    MAXERR(T, n, y, (double)x[i] - 0.1 * d[i], err);                                        \
    ck_assert_msg(err <= TOL, "bp_sgd_" #SFX " n=%d: max error %g", n, err);                \
    free(x), free(y), free(d), free(g);                                                     \
  }                                                                                         \
  END_TEST
ELEMENTWISE_TEST(float, f32, 1e-6)
ELEMENTWISE_TEST(double, f64, 1e-14)

/* exact special values: saturation, signed zero, no NaN from large inputs */
START_TEST(tanh_exp_special) {
  float xs[] = {0.0f, -0.0f, 1e-30f, -1e-8f, 20.0f, -20.0f, 100.0f, -1e30f, 88.0f, -104.0f, -200.0f};
  int n = (int)(sizeof xs / sizeof xs[0]);
  float y[16];
  double yd[16], xd[16];
  bp_tanh_f32(n, xs, y);
  for (int i = 0; i < n; i++)
    ck_assert_msg(fabs(y[i] - tanh(xs[i])) <= 1e-6 * fabs(tanh(xs[i])) + 1e-37,
                  "bp_tanh_f32(%g) = %g", xs[i], y[i]);
  ck_assert(!signbit(y[0]) && signbit(y[1]));
  for (int i = 0; i < n; i++) xd[i] = xs[i];
  bp_tanh_f64(n, xd, yd);
  for (int i = 0; i < n; i++)
    ck_assert_msg(fabs(yd[i] - tanh(xd[i])) <= 1e-14 * fabs(tanh(xd[i])) + 1e-300,
                  "bp_tanh_f64(%g) = %g", xd[i], yd[i]);
  bp_exp_f32(n, xs, y);
  for (int i = 0; i < n; i++)
    ck_assert_msg(fabs(y[i] - exp(xs[i])) <= 1e-6 * exp(xs[i]) + 1e-37 || (isinf(y[i]) && exp(xs[i]) > 3.4e38),
                  "bp_exp_f32(%g) = %g", xs[i], y[i]);
  bp_exp_f64(n, xd, yd);
  for (int i = 0; i < n; i++)
    ck_assert_msg(fabs(yd[i] - exp(xd[i])) <= 1e-14 * exp(xd[i]), "bp_exp_f64(%g) = %g", xd[i], yd[i]);
}
END_TEST

typedef struct { int N, D; } Shape2;
static const Shape2 shapes2[] = {{1, 1}, {1, 27}, {7, 1}, {32, 27}, {32, 200}, {13, 33}, {256, 1024}, {1024, 30},
                                 {512, 384}, {300, 150},   /* strips of 128 columns and the rest */
                                 /* the 16-lane cross-entropy rows: edges of its masks */
                                 {5, 16}, {6, 17}, {9, 32}, {3, 31}};

#define ROWS_TEST(T, SFX, TOL)                                                                \
  START_TEST(rows_##SFX) {                                                                    \
    int N = shapes2[_i].N, D = shapes2[_i].D;                                                 \
    T *X = malloc(sizeof(T) * N * D), *P = malloc(sizeof(T) * N * D), *G = malloc(sizeof(T) * N * D); \
    T *y = malloc(sizeof(T) * (N > D ? N : D)), *y0 = malloc(sizeof(T) * (N > D ? N : D));      \
    int32_t *Y = malloc(sizeof(int32_t) * N);                                                 \
    for (int i = 0; i < N * D; i++) X[i] = (T)(urand() * 5);                                  \
    for (int i = 0; i < (N > D ? N : D); i++) y0[i] = (T)urand();                             \
    for (int n = 0; n < N; n++) Y[n] = (int32_t)((urand() + 1) * 0.5 * D) % D;                \
    for (int acc = 0; acc <= 1; acc++) {                                                      \
      memcpy(y, y0, sizeof(T) * (N > D ? N : D));                                             \
      bp_colsum_##SFX(N, D, X, y, acc);                                                       \
      double err = 0;                                                                         \
      for (int d = 0; d < D; d++) {                                                           \
        double s = acc ? y0[d] : 0, m = acc ? fabs(y0[d]) : 0;                                \
        for (int n = 0; n < N; n++) s += X[n * D + d], m += fabs(X[n * D + d]);               \
        err = fmax(err, fabs(y[d] - s) / (m + 1));                                            \
      }                                                                                       \
      ck_assert_msg(err <= TOL, "bp_colsum_" #SFX " N=%d D=%d acc=%d: max error %g", N, D, acc, err); \
      for (int d = 0; d < D; d++) { /* and the bits of each column summed down the rows, in T */   \
        T s = acc ? y0[d] : 0;                                                                \
        for (int n = 0; n < N; n++) s += X[n * D + d];                                        \
        ck_assert_msg(memcmp(&s, &y[d], sizeof s) == 0, "bp_colsum_" #SFX " N=%d D=%d acc=%d: column %d " \
                      "not summed in row order", N, D, acc, d);                               \
      }                                                                                       \
      memcpy(y, y0, sizeof(T) * (N > D ? N : D));                                             \
      bp_rowsum_##SFX(N, D, X, y, acc);                                                       \
      err = 0;                                                                                \
      for (int n = 0; n < N; n++) {                                                           \
        double s = acc ? y0[n] : 0, m = acc ? fabs(y0[n]) : 0;                                \
        for (int d = 0; d < D; d++) s += X[n * D + d], m += fabs(X[n * D + d]);               \
        err = fmax(err, fabs(y[n] - s) / (m + 1));                                            \
      }                                                                                       \
      ck_assert_msg(err <= TOL, "bp_rowsum_" #SFX " N=%d D=%d acc=%d: max error %g", N, D, acc, err); \
    }                                                                                         \
    /* softmax and cross-entropy */                                                          \
    bp_softmax_##SFX(N, D, X, P);                                                             \
    double loss = 0, perr = 0;                                                                \
    for (int n = 0; n < N; n++) {                                                             \
      double mx = -INFINITY, s = 0;                                                           \
      for (int d = 0; d < D; d++) mx = fmax(mx, X[n * D + d]);                                \
      for (int d = 0; d < D; d++) s += exp(X[n * D + d] - mx);                                \
      for (int d = 0; d < D; d++) perr = fmax(perr, fabs(P[n * D + d] - exp(X[n * D + d] - mx) / s)); \
      loss += log(s) - (X[n * D + Y[n]] - mx);                                                \
    }                                                                                         \
    loss /= N;                                                                                \
    ck_assert_msg(perr <= TOL * 10, "bp_softmax_" #SFX " N=%d D=%d: max error %g", N, D, perr);  \
    memset(G, 0, sizeof(T) * N * D);                                                          \
    double got = bp_xent_fwd_##SFX(N, D, X, Y, G);                                            \
    ck_assert_msg(fabs(got - loss) <= TOL * 10 * (fabs(loss) + 1), "bp_xent_fwd_" #SFX " N=%d D=%d: %g, want %g", N, D, got, loss); \
    ck_assert_msg(memcmp(G, P, sizeof(T) * N * D) == 0, "bp_xent_fwd_" #SFX ": probs differ from bp_softmax"); \
    ck_assert(bp_xent_fwd_##SFX(N, D, X, Y, NULL) == got);                                    \
    for (int acc = 0; acc <= 1; acc++) {                                                      \
      for (int i = 0; i < N * D; i++) G[i] = (T)(i % 5);                                      \
      bp_xent_bwd_##SFX(N, D, P, Y, 0.5, G, acc);                                             \
      double gerr = 0;                                                                        \
      for (int n = 0; n < N; n++)                                                             \
        for (int d = 0; d < D; d++) {                                                         \
          double w = (acc ? (n * D + d) % 5 : 0) + ((double)P[n * D + d] - (d == Y[n])) * 0.5 / N; \
          gerr = fmax(gerr, fabs(G[n * D + d] - w) / (fabs(w) + 1));                          \
        }                                                                                     \
      ck_assert_msg(gerr <= TOL * 10, "bp_xent_bwd_" #SFX " N=%d D=%d acc=%d: max error %g", N, D, acc, gerr); \
    }                                                                                         \
    free(X), free(P), free(G), free(y), free(y0), free(Y);                                    \
  }                                                                                           \
  END_TEST
ROWS_TEST(float, f32, 1e-5)
ROWS_TEST(double, f64, 1e-12)

/* cross-entropy rows far apart in scale: exp under- and overflow ranges of the
 * 16-lane path (f32), against double */
START_TEST(xent_extreme) {
  static const float X[3][27] = {{100, -100, 0, 88, -88, 30}, {-1000, -1001, -2000},
                                 {50, 50, 50, 50, -60, -110, 89.5f}};
  static const int32_t Y[3] = {4, 1, 6};
  float P[3 * 27];
  double got = bp_xent_fwd_f32(3, 27, &X[0][0], Y, P), want = 0, perr = 0;
  for (int n = 0; n < 3; n++) {
    double mx = -INFINITY, s = 0;
    for (int d = 0; d < 27; d++) mx = fmax(mx, X[n][d]);
    for (int d = 0; d < 27; d++) s += exp(X[n][d] - mx);
    for (int d = 0; d < 27; d++) perr = fmax(perr, fabs(P[n * 27 + d] - exp(X[n][d] - mx) / s));
    want += log(s) - (X[n][Y[n]] - mx);
  }
  want /= 3;
  ck_assert_msg(perr <= 1e-6, "bp_xent_fwd_f32: probs max error %g", perr);
  ck_assert_msg(fabs(got - want) <= 1e-5 * (fabs(want) + 1), "bp_xent_fwd_f32: %.9g, want %.9g", got, want);
}
END_TEST

/* three AdamW steps against the formula of llm.c's train_gpt2.c, in double */
#define ADAMW_TEST(T, SFX, TOL)                                                       \
  START_TEST(adamw_##SFX) {                                                           \
    int n = sizes[_i];                                                                \
    T *p = malloc(sizeof(T) * n), *g = malloc(sizeof(T) * n);                         \
    T *m = calloc(n, sizeof(T)), *v = calloc(n, sizeof(T));                           \
    double *rp = malloc(sizeof(double) * n), *rm = calloc(n, sizeof(double)), *rv = calloc(n, sizeof(double)); \
    for (int i = 0; i < n; i++) rp[i] = p[i] = (T)urand();                            \
    for (int t = 1; t <= 3; t++) {                                                    \
      for (int i = 0; i < n; i++) g[i] = (T)(urand() * 0.1);                          \
      bp_adamw_##SFX(n, p, g, m, v, 1e-3, 0.9, 0.999, 1e-8, 0.01, t);                 \
      for (int i = 0; i < n; i++) {                                                   \
        rm[i] = 0.9 * rm[i] + 0.1 * g[i];                                             \
        rv[i] = 0.999 * rv[i] + 0.001 * (double)g[i] * g[i];                          \
        double mh = rm[i] / (1 - pow(0.9, t)), vh = rv[i] / (1 - pow(0.999, t));      \
        rp[i] -= 1e-3 * (mh / (sqrt(vh) + 1e-8) + 0.01 * rp[i]);                      \
      }                                                                               \
    }                                                                                 \
    double err;                                                                       \
    MAXERR(T, n, p, rp[i], err);                                                      \
    ck_assert_msg(err <= TOL, "bp_adamw_" #SFX " n=%d: max error %g", n, err);        \
    free(p), free(g), free(m), free(v), free(rp), free(rm), free(rv);                 \
  }                                                                                   \
  END_TEST
ADAMW_TEST(float, f32, 1e-6)
ADAMW_TEST(double, f64, 1e-12)
/* the trainer's update (torch.optim.AdamW's order), three steps, against the same
 * formula in double: sizes that leave a tail after the whole vectors */
#define ADAMW_TORCH_TEST(T, SFX, TOL)                                                 \
  START_TEST(adamw_torch_##SFX) {                                                     \
    int n = sizes[_i];                                                                \
    T *p = malloc(sizeof(T) * n), *g = malloc(sizeof(T) * n);                         \
    T *m = calloc(n, sizeof(T)), *v = calloc(n, sizeof(T));                           \
    double *rp = malloc(sizeof(double) * n), *rm = calloc(n, sizeof(double)), *rv = calloc(n, sizeof(double)); \
    for (int i = 0; i < n; i++) rp[i] = p[i] = (T)urand();                            \
    const double lr = 3e-3, b1 = 0.9, b2 = 0.95, eps = 1e-8, wd = 0.1;               \
    for (int t = 1; t <= 3; t++) {                                                    \
      for (int i = 0; i < n; i++) g[i] = (T)(urand() * 0.1);                          \
      double step = lr / (1 - pow(b1, t)), c2 = sqrt(1 - pow(b2, t));                 \
      bp_adamw_torch_##SFX(n, p, g, m, v, (T)b1, (T)b2, (T)eps, (T)(1 - lr * wd), (T)step, (T)c2); \
      for (int i = 0; i < n; i++) {                                                   \
        rp[i] *= 1 - lr * wd;                                                         \
        rm[i] = b1 * rm[i] + (1 - b1) * g[i];                                         \
        rv[i] = b2 * rv[i] + (1 - b2) * (double)g[i] * g[i];                          \
        rp[i] += -step * rm[i] / (sqrt(rv[i]) / c2 + eps);                            \
      }                                                                               \
    }                                                                                 \
    double err;                                                                       \
    MAXERR(T, n, p, rp[i], err);                                                      \
    ck_assert_msg(err <= TOL, "bp_adamw_torch_" #SFX " n=%d: max error %g", n, err);  \
    free(p), free(g), free(m), free(v), free(rp), free(rm), free(rv);                 \
  }                                                                                   \
  END_TEST
ADAMW_TORCH_TEST(float, f32, 1e-6)
ADAMW_TORCH_TEST(double, f64, 1e-12)

/* every position of a non-finite value, both types, several lengths */
START_TEST(allfinite) {
  static const int ns[] = {0, 1, 15, 16, 17, 100, 1001};
  float f[1001];
  double d[1001];
  for (size_t t = 0; t < sizeof ns / sizeof ns[0]; t++) {
    int n = ns[t];
    for (int i = 0; i < n; i++) f[i] = (float)urand() * 1e30f, d[i] = urand() * 1e300;
    ck_assert_int_eq(bp_allfinite_f32((size_t)n, f), 1);
    ck_assert_int_eq(bp_allfinite_f64((size_t)n, d), 1);
    for (int at = 0; at < n; at += n / 5 + 1) {
      const double bad[] = {NAN, INFINITY, -INFINITY};
      for (int b = 0; b < 3; b++) {
        float fs = f[at];
        double ds = d[at];
        f[at] = (float)bad[b], d[at] = bad[b];
        ck_assert_msg(bp_allfinite_f32((size_t)n, f) == 0, "f32 n=%d at=%d %g", n, at, bad[b]);
        ck_assert_msg(bp_allfinite_f64((size_t)n, d) == 0, "f64 n=%d at=%d %g", n, at, bad[b]);
        f[at] = fs, d[at] = ds;
      }
    }
  }
  float big[] = {FLT_MAX, -FLT_MAX, FLT_MIN, 1e-45f, -0.0f};
  ck_assert_int_eq(bp_allfinite_f32(5, big), 1);
}
END_TEST

START_TEST(threads_setting) {
  bp_set_threads(0);
  ck_assert_int_eq(bp_get_threads(), 1);
  bp_set_threads(1000);
  ck_assert_int_eq(bp_get_threads(), 64);
  bp_set_threads(2);
  ck_assert_int_eq(bp_get_threads(), 2);
  bp_set_threads(1);
}
END_TEST

/* bp_gemm_bias: the product plus the bias row, as gemm accumulating onto C0 =
 * the broadcast bias; all four transposed forms; 2 threads give the same bits */
#define GEMM_BIAS_TEST(T, SFX)                                                             \
  START_TEST(gemm_bias_##SFX) {                                                            \
    int M = gemm_shapes[_i].M, N = gemm_shapes[_i].N, K = gemm_shapes[_i].K;               \
    T *A = malloc(sizeof(T) * M * K), *B = malloc(sizeof(T) * K * N), *bias = malloc(sizeof(T) * N); \
    T *C0 = malloc(sizeof(T) * M * N), *C = alloc64(sizeof(T) * M * N), *C2 = alloc64(sizeof(T) * M * N); \
    for (long i = 0; i < (long)M * K; i++) A[i] = (T)urand();                              \
    for (long i = 0; i < (long)K * N; i++) B[i] = (T)urand();                              \
    for (int j = 0; j < N; j++) bias[j] = (T)(urand() * 3);                                \
    for (int i = 0; i < M; i++) memcpy(C0 + (long)i * N, bias, sizeof(T) * N);             \
    for (int ta = 0; ta <= 1; ta++)                                                        \
      for (int tb = 0; tb <= 1; tb++) {                                                    \
        bp_set_threads(1);                                                                 \
        bp_gemm_bias_##SFX(M, N, K, A, ta, B, tb, bias, C);                                \
        ck_assert_int_eq(check_gemm_##T(M, N, K, ta, tb, 1, A, B, C0, C), 0);              \
        bp_set_threads(2);                                                                 \
        bp_gemm_bias_##SFX(M, N, K, A, ta, B, tb, bias, C2);                               \
        bp_set_threads(1);                                                                 \
        ck_assert_msg(memcmp(C, C2, sizeof(T) * M * N) == 0, "gemm_bias M=%d N=%d K=%d: 2 threads differ", M, N, K); \
      }                                                                                    \
    free(A), free(B), free(bias), free(C0), free(C), free(C2);                             \
  }                                                                                        \
  END_TEST
GEMM_BIAS_TEST(float, f32)
GEMM_BIAS_TEST(double, f64)

/* bp_bn_fwd and bp_bn_bwd against the formulas in double (two-pass variance),
 * training and inference, with and without the fused tanh and the optional
 * sums; errors relative to the largest reference magnitude of each output
 * (a batchnorm's Σ_b dx is 0 in exact arithmetic: judged against Σ_b |dx| +
 * Σ_b |gain rstd dy|);
 * 1, 2 and 3 threads give the same bits. */
/* {512, 4096}: 8 MB of f32, x̂ and out by streaming stores (64-byte aligned below) */
/* {128, 128}, {64, 128}, {100, 48}, {129, 40}: wavenet.spec's batchnorms over [B, T, C] (B*T
 * rows) and their neighbours, on both sides of the few-row path's BP_BN_SMALL_N */
static const Shape2 bn_shapes[] = {{2, 1},    {7, 5},     {32, 27}, {32, 200},   {13, 33},
                                   {256, 1024}, {1024, 30}, {3, 70},  {512, 4096},
                                   {128, 128}, {64, 128},  {100, 48}, {129, 40}};


#define BN_TEST(T, SFX, TOL)                                                                    \
  static double maxrel_##SFX(const T *got, const double *want, long n) {                      \
    double m = 0, e = 0;                                                                        \
    for (long i = 0; i < n; i++) m = fmax(m, fabs(want[i]));                                    \
    for (long i = 0; i < n; i++) e = fmax(e, fabs(got[i] - want[i]));                           \
    return e / (m + 1e-30);                                                                     \
  }                                                                                             \
  START_TEST(bn_##SFX) {                                                                        \
    int N = bn_shapes[_i].N, D = bn_shapes[_i].D;                                               \
    long n = (long)N * D;                                                                       \
    T *x = malloc(sizeof(T) * n), *gain = malloc(sizeof(T) * D), *bias = malloc(sizeof(T) * D); \
    T *rm = malloc(sizeof(T) * D), *rv = malloc(sizeof(T) * D);                                 \
    T *mean = malloc(sizeof(T) * D), *rstd = malloc(sizeof(T) * D), *dg = malloc(sizeof(T) * D); \
    T *db = malloc(sizeof(T) * D), *dxs = malloc(sizeof(T) * D);                                \
    T *xh = alloc64(sizeof(T) * n), *out = alloc64(sizeof(T) * n), *act = malloc(sizeof(T) * n); \
    T *dt = malloc(sizeof(T) * n), *dy = malloc(sizeof(T) * n), *dx = malloc(sizeof(T) * n);    \
    T *keep = malloc(sizeof(T) * n * 3 + sizeof(T) * D * 3);                                    \
    double *acc = malloc(sizeof(double) * 6 * D), *r = malloc(sizeof(double) * n * 4);          \
    double *rs = malloc(sizeof(double) * D * 6);                                                \
    memset(dg, 0, sizeof(T) * D), memset(dxs, 0, sizeof(T) * D);                                \
    double *rxh = r, *rout = r + n, *ract = r + 2 * n, *rdx = r + 3 * n;                        \
    for (long i = 0; i < n; i++) x[i] = (T)(urand() * 2 + 0.5 * (i % D % 1024)), dt[i] = (T)urand();\
    for (int j = 0; j < D; j++)                                                                 \
      gain[j] = (T)(1 + urand() * 0.5), bias[j] = (T)urand(), rm[j] = (T)urand(), rv[j] = (T)(1 + urand() * 0.5); \
    for (int eval = 0; eval <= 1; eval++)                                                       \
      for (int fuse = 0; fuse <= 1; fuse++) {                                                   \
        double div = eval ? N : N - 1;                                                          \
        bp_bn_fwd_##SFX(N, D, x, gain, bias, 1e-5, div, eval ? rm : NULL, eval ? rv : NULL, mean, rstd, \
                        xh, out, fuse ? act : NULL, acc);                                       \
        for (int j = 0; j < D; j++) {                                                           \
          double m = 0, v = 0;                                                                  \
          for (int i = 0; i < N; i++) m += x[(long)i * D + j];                                  \
          m /= N;                                                                               \
          for (int i = 0; i < N; i++) v += (x[(long)i * D + j] - m) * (x[(long)i * D + j] - m); \
          v /= div;                                                                             \
          if (eval) m = rm[j], v = rv[j];                                                       \
          rs[j] = m, rs[D + j] = 1 / sqrt(v + 1e-5);                                            \
          for (int i = 0; i < N; i++) {                                                         \
            long k = (long)i * D + j;                                                           \
            rxh[k] = (x[k] - m) * rs[D + j];                                                    \
            rout[k] = gain[j] * rxh[k] + bias[j];                                               \
            ract[k] = tanh(rout[k]);                                                            \
          }                                                                                     \
        }                                                                                       \
        ck_assert_msg(maxrel_##SFX(mean, rs, D) <= TOL, "bn_fwd N=%d D=%d: mean off by %g", N, D, maxrel_##SFX(mean, rs, D)); \
        ck_assert_msg(maxrel_##SFX(rstd, rs + D, D) <= TOL, "bn_fwd N=%d D=%d: rstd off by %g", N, D, maxrel_##SFX(rstd, rs + D, D)); \
        ck_assert_msg(maxrel_##SFX(xh, rxh, n) <= TOL, "bn_fwd N=%d D=%d: xhat off by %g", N, D, maxrel_##SFX(xh, rxh, n)); \
        ck_assert_msg(maxrel_##SFX(out, rout, n) <= TOL, "bn_fwd N=%d D=%d: out off by %g", N, D, maxrel_##SFX(out, rout, n)); \
        for (long k = 0; k < n; k++) ract[k] = tanh((double)out[k]); /* of the output as rounded */ \
        if (fuse)                                                                               \
          ck_assert_msg(maxrel_##SFX(act, ract, n) <= TOL, "bn_fwd N=%d D=%d: tanh off by %g", N, D, maxrel_##SFX(act, ract, n)); \
        /* threads: the same bits */                                                           \
        memcpy(keep, xh, sizeof(T) * n), memcpy(keep + n, out, sizeof(T) * n), memcpy(keep + 2 * n, act, sizeof(T) * n); \
        memcpy(keep + 3 * n, rstd, sizeof(T) * D);                                              \
        for (int th = 2; th <= 3; th++) {                                                       \
          bp_set_threads(th);                                                                   \
          bp_bn_fwd_##SFX(N, D, x, gain, bias, 1e-5, div, eval ? rm : NULL, eval ? rv : NULL, mean, rstd, \
                          xh, out, fuse ? act : NULL, acc);                                     \
          bp_set_threads(1);                                                                    \
          ck_assert_msg(memcmp(keep, xh, sizeof(T) * n) == 0 && memcmp(keep + n, out, sizeof(T) * n) == 0 && \
                        memcmp(keep + 2 * n, act, sizeof(T) * n) == 0 && memcmp(keep + 3 * n, rstd, sizeof(T) * D) == 0, \
                        "bn_fwd N=%d D=%d: %d threads differ", N, D, th);                       \
        }                                                                                       \
      }                                                                                         \
    /* backward, from the training forward's x̂ and rstd; t = the tanh output */               \
    bp_bn_fwd_##SFX(N, D, x, gain, bias, 1e-5, N - 1, NULL, NULL, mean, rstd, xh, out, act, acc); \
    double c = (double)N / (N - 1);                                                             \
    for (int fuse = 0; fuse <= 1; fuse++) {                                                     \
      if (!fuse) memcpy(dy, dt, sizeof(T) * n);                                                 \
      bp_bn_bwd_##SFX(N, D, fuse ? act : NULL, fuse ? dt : NULL, dy, xh, gain, rstd, c, fuse ? dg : NULL, \
                      fuse ? db : NULL, dx, fuse ? dxs : NULL, acc);                            \
      if (fuse) {                                                                               \
        for (long k = 0; k < n; k++) r[k] = (1 - (double)act[k] * act[k]) * dt[k];             \
        ck_assert_msg(maxrel_##SFX(dy, r, n) <= TOL, "bn_bwd N=%d D=%d: dy off by %g", N, D, maxrel_##SFX(dy, r, n)); \
      }                                                                                         \
      for (int j = 0; j < D; j++) {                                                             \
        double s1 = 0, s2 = 0, sx = 0, sa = 0;                                                  \
        for (int i = 0; i < N; i++) s1 += dy[(long)i * D + j], s2 += (double)dy[(long)i * D + j] * xh[(long)i * D + j]; \
        for (int i = 0; i < N; i++) {                                                           \
          long k = (long)i * D + j;                                                             \
          rdx[k] = (double)gain[j] * rstd[j] / N * (N * (double)dy[k] - s1 - c * xh[k] * s2);   \
          sx += rdx[k], sa += fabs(rdx[k]) + fabs((double)gain[j] * rstd[j] * dy[k]);         \
        }                                                                                       \
        rs[j] = s1, rs[D + j] = s2;                                                             \
        if (fuse)                                                                               \
          ck_assert_msg(fabs(dxs[j] - sx) <= TOL * (sa + 1e-30), "bn_bwd N=%d D=%d: sum dx[%d] = %g, want %g", N, D, j, (double)dxs[j], sx); \
      }                                                                                         \
      double dscale = 0, derr = 0; /* dx against the size of its terms (N = 2: dx = 0) */    \
      for (long k = 0; k < n; k++)                                                              \
        dscale = fmax(dscale, fmax(fabs(rdx[k]), fabs((double)gain[k % D] * rstd[k % D] * dy[k]))), \
        derr = fmax(derr, fabs(dx[k] - rdx[k]));                                                \
      ck_assert_msg(derr <= TOL * 10 * dscale, "bn_bwd N=%d D=%d: dx off by %g of %g", N, D, derr, dscale); \
      if (fuse) {                                                                               \
        ck_assert_msg(maxrel_##SFX(db, rs, D) <= TOL, "bn_bwd N=%d D=%d: dbias off by %g", N, D, maxrel_##SFX(db, rs, D)); \
        ck_assert_msg(maxrel_##SFX(dg, rs + D, D) <= TOL, "bn_bwd N=%d D=%d: dgain off by %g", N, D, maxrel_##SFX(dg, rs + D, D)); \
      }                                                                                         \
      memcpy(keep, dx, sizeof(T) * n), memcpy(keep + n, dy, sizeof(T) * n);                     \
      memcpy(keep + 2 * n, dg, sizeof(T) * D), memcpy(keep + 2 * n + D, dxs, sizeof(T) * D);    \
      for (int th = 2; th <= 3; th++) {                                                         \
        bp_set_threads(th);                                                                     \
        bp_bn_bwd_##SFX(N, D, fuse ? act : NULL, fuse ? dt : NULL, dy, xh, gain, rstd, c, fuse ? dg : NULL, \
                        fuse ? db : NULL, dx, fuse ? dxs : NULL, acc);                          \
        bp_set_threads(1);                                                                      \
        ck_assert_msg(memcmp(keep, dx, sizeof(T) * n) == 0 && memcmp(keep + n, dy, sizeof(T) * n) == 0 && \
                      memcmp(keep + 2 * n, dg, sizeof(T) * D) == 0 && memcmp(keep + 2 * n + D, dxs, sizeof(T) * D) == 0, \
                      "bn_bwd N=%d D=%d: %d threads differ", N, D, th);                         \
      }                                                                                         \
    }                                                                                           \
    free(x), free(gain), free(bias), free(rm), free(rv), free(mean), free(rstd), free(dg), free(db); \
    free(dxs), free(xh), free(out), free(act), free(dt), free(dy), free(dx), free(keep), free(acc); \
    free(r), free(rs);                                                                          \
  }                                                                                             \
  END_TEST
BN_TEST(float, f32, 1e-5)
BN_TEST(double, f64, 1e-12)

/* the kernels split by rows (layernorm and its dx, the swap of two axes, AdamW,
 * the in-memory build's broadcast and strided copy, the copy of rows): on 2 and 3 threads, the
 * bits of 1 thread; R odd, so the parts are uneven; the swap also against its
 * definition */
START_TEST(threads_rows) {
  enum { R = 1001, D = 97, N = R * D, NP = 7 * 11 * 14 * 97 };   /* NP: the copy's strided output */
  float *x = malloc(sizeof(float) * N), *dy = malloc(sizeof(float) * N), *ga = malloc(sizeof(float) * D);
  float *be = malloc(sizeof(float) * D), *out[2], *xh[2], *rs[2], *dx[2], *p[2], *m[2], *v[2];
  for (int k = 0; k < 2; k++) {
    out[k] = malloc(sizeof(float) * N), xh[k] = malloc(sizeof(float) * N), rs[k] = malloc(sizeof(float) * R);
    dx[k] = malloc(sizeof(float) * N), p[k] = malloc(sizeof(float) * NP), m[k] = calloc(N, sizeof(float));
    v[k] = calloc(N, sizeof(float));
  }
  for (int i = 0; i < N; i++) x[i] = (float)(urand() * 3 + 0.5), dy[i] = (float)urand();
  for (int j = 0; j < D; j++) ga[j] = (float)(1 + 0.1 * urand()), be[j] = (float)(0.1 * urand());
  int dims[3] = {7, 11, 13 * 97}, sa[3] = {11 * 13 * 97, 13 * 97, 1}, sb[3] = {0, 1, 0}, so[3] = {11 * 14 * 97, 14 * 97, 1};
  for (int th = 2; th <= 3; th++) {
    for (int k = 0; k < 2; k++) {
      bp_set_threads(k ? th : 1);
      bp_layernorm_f32(R, D, x, NULL, NULL, ga, be, 1e-5, rs[k], xh[k], out[k]);
      bp_ln_bwd_x_f32(R, D, xh[k], dy, ga, rs[k], NULL, dx[k]);
      for (int i = 0; i < N; i++) p[k][i] = x[i], m[k][i] = 0.1f * dy[i], v[k][i] = 0.01f * x[i];
      bp_adamw_torch_f32(N, p[k], dy, m[k], v[k], 0.9f, 0.95f, 1e-8f, 0.999f, 1e-3f, 0.3f);
    }
    ck_assert_msg(memcmp(out[0], out[1], sizeof(float) * N) == 0 && memcmp(xh[0], xh[1], sizeof(float) * N) == 0 &&
                  memcmp(rs[0], rs[1], sizeof(float) * R) == 0, "bp_layernorm_f32, %d threads", th);
    ck_assert_msg(memcmp(dx[0], dx[1], sizeof(float) * N) == 0, "bp_ln_bwd_x_f32, %d threads", th);
    ck_assert_msg(memcmp(p[0], p[1], sizeof(float) * N) == 0 && memcmp(m[0], m[1], sizeof(float) * N) == 0 &&
                  memcmp(v[0], v[1], sizeof(float) * N) == 0, "bp_adamw_torch_f32, %d threads", th);
    /* x as [A=13, n1=11, B=7, n2=97, C=1]: y[a, j, b, i] = x[a, i, b, j] */
    for (int k = 0; k < 2; k++) {
      bp_set_threads(k ? th : 1);
      bp_swap_axes_f32(13, 11, 7, 97, 1, x, 97, out[k], 11);
      bp_swap_axes_f32(1, 7, 11, 13, 97, x, 13 * 97, dx[k], 7 * 97);
      bpm_bcast_f32(0, 3, dims, x, sa, ga, sb, xh[k]);
      memset(p[k], 0, sizeof(float) * NP);
      bpm_copy_f32(3, dims, x, sa, p[k], so);
    }
    bp_set_threads(1);
    int bad = 0;
    for (int a = 0; a < 13; a++)
      for (int i = 0; i < 11; i++)
        for (int b = 0; b < 7; b++)
          for (int j = 0; j < 97; j++)
            bad += out[0][((a * 97 + j) * 7 + b) * 11 + i] != x[((a * 11 + i) * 7 + b) * 97 + j];
    ck_assert_msg(bad == 0, "bp_swap_axes_f32: %d elements misplaced", bad);
    ck_assert_msg(memcmp(out[0], out[1], sizeof(float) * N) == 0 && memcmp(dx[0], dx[1], sizeof(float) * N) == 0,
                  "bp_swap_axes_f32, %d threads", th);
    for (int o = 0; o < 7 * 11; o++)
      for (int i = 0; i < 13 * 97; i++)
        bad += xh[0][(long)o * 13 * 97 + i] != x[(long)o * 13 * 97 + i] + ga[o % 11] ||
               p[0][(long)(o / 11) * 11 * 14 * 97 + (o % 11) * 14 * 97 + i] != x[(long)o * 13 * 97 + i];
    ck_assert_msg(bad == 0, "bpm_bcast_f32 / bpm_copy_f32: %d elements wrong", bad);
    ck_assert_msg(memcmp(xh[0], xh[1], sizeof(float) * 7 * 11 * 13 * 97) == 0 &&
                  memcmp(p[0], p[1], sizeof(float) * NP) == 0, "bpm_bcast_f32 / bpm_copy_f32, %d threads", th);
    /* 76 rows of 13·97 from x + 5 (row stride 13·97) to p + 97 (row stride 14·97) */
    for (int k = 0; k < 2; k++) {
      bp_set_threads(k ? th : 1);
      memset(p[k], 0, sizeof(float) * NP);
      bp_copy_rows_f32(76, 13 * 97, x + 5, 13 * 97, p[k] + 97, 14 * 97);
    }
    bp_set_threads(1);
    for (int o = 0; o < 76; o++)
      for (int i = 0; i < 14 * 97; i++)
        bad += p[0][(long)o * 14 * 97 + i] != (i < 97 ? 0 : x[5 + (long)o * 13 * 97 + i - 97]);
    ck_assert_msg(bad == 0, "bp_copy_rows_f32: %d elements wrong", bad);
    ck_assert_msg(memcmp(p[0], p[1], sizeof(float) * NP) == 0, "bp_copy_rows_f32, %d threads", th);
  }
  for (int k = 0; k < 2; k++) free(out[k]), free(xh[k]), free(rs[k]), free(dx[k]), free(p[k]), free(m[k]), free(v[k]);
  free(x), free(dy), free(ga), free(be);
}
END_TEST

/* the threaded elementwise kernels and column sums: the same bits as 1 thread */
START_TEST(threads_elementwise) {
  int N = 300, D = 700;
  long n = (long)N * D;
  float *x = malloc(sizeof(float) * n), *y1 = malloc(sizeof(float) * n), *y2 = malloc(sizeof(float) * n);
  float *c1 = malloc(sizeof(float) * D), *c2 = malloc(sizeof(float) * D);
  for (long i = 0; i < n; i++) x[i] = (float)(urand() * 4), y1[i] = y2[i] = (float)urand();
  for (int th = 2; th <= 3; th++) {
    bp_set_threads(1);
    bp_tanh_f32((size_t)n, x, y1);
    bp_colsum_f32(N, D, x, c1, 0);
    bp_set_threads(th);
    bp_tanh_f32((size_t)n, x, y2);
    bp_colsum_f32(N, D, x, c2, 0);
    ck_assert(memcmp(y1, y2, sizeof(float) * n) == 0 && memcmp(c1, c2, sizeof(float) * D) == 0);
    bp_set_threads(1);
    bp_tanh_bwd_f32((size_t)n, y1, x, y2, 0);
    bp_set_threads(th);
    bp_tanh_bwd_f32((size_t)n, y1, x, y1, 0);   /* dx may be t itself */
    ck_assert(memcmp(y1, y2, sizeof(float) * n) == 0);
    bp_tanh_f32((size_t)n, x, y1);
  }
  bp_set_threads(1);
  free(x), free(y1), free(y2), free(c1), free(c2);
}
END_TEST

/* ---- the sequence models' row kernels (kernels_attn.h) ----------------------------- *
 * gelu against the formula in double; the others against the loop gen/emit.c
 * writes for the op in the gcc file, copied here (this file builds without
 * contraction, as the kernels do): the same bits. */
#define GELU_TEST(T, SFX, TOL)                                                                  \
  START_TEST(gelu_##SFX) {                                                                      \
    int n = sizes[_i];                                                                          \
    T *x = calloc((size_t)n, sizeof(T)), *y = malloc(sizeof(T) * n), *d = calloc((size_t)n, sizeof(T)); \
    T *g = malloc(sizeof(T) * n);                                                               \
    for (int i = 0; i < n; i++) x[i] = (T)(urand() * (i % 3 == 0 ? 12 : i % 3 == 1 ? 2 : 0.01)); \
    for (int i = 0; i < n; i++) d[i] = (T)urand();                                              \
    bp_gelu_##SFX(n, x, y);                                                                     \
    bp_gelu_bwd_##SFX(n, x, d, g);                                                              \
    double e1 = 0, e2 = 0;                                                                      \
    for (int i = 0; i < n; i++) {                                                               \
      double v = x[i], c = sqrt(2 / 3.14159265358979323846), t = tanh(c * (v + 0.044715 * v * v * v)); \
      double w = 0.5 * v * (1 + t), s = 1 + fabs(v);                                           \
      double dw = (0.5 * (1 + t) + 0.5 * v * (1 - t * t) * c * (1 + 3 * 0.044715 * v * v)) * d[i]; \
      e1 = fmax(e1, fabs(y[i] - w) / s);                                                        \
      e2 = fmax(e2, fabs(g[i] - dw) / (s * s * s));                                             \
    }                                                                                           \
    ck_assert_msg(e1 <= TOL, "bp_gelu_" #SFX " n=%d: max error %g", n, e1);                     \
    ck_assert_msg(e2 <= TOL, "bp_gelu_bwd_" #SFX " n=%d: max error %g", n, e2);                 \
    memcpy(g, x, sizeof(T) * n);                                                                \
    bp_gelu_##SFX(n, g, g); /* y may be x */                                                    \
    ck_assert(memcmp(g, y, sizeof(T) * n) == 0);                                                \
    free(x), free(y), free(d), free(g);                                                         \
  }                                                                                             \
  END_TEST
GELU_TEST(float, f32, 1e-6)
GELU_TEST(double, f64, 1e-14)

/* Σ v[0..n) in the row kernels' order (bp_lane_sum16_): lane k sums elements k,
 * k + 16, k + 32, ..., then the lanes are added pairwise (k + 8, k + 4, k + 2,
 * k + 1) */
static double lane_sum(const double *v, int n) {
  double a[16] = {0};
  for (int j = 0; j < n; j++) a[j % 16] += v[j];
  for (int w = 8; w >= 1; w /= 2)
    for (int k = 0; k < w; k++) a[k] += a[k + w];
  return a[0];
}

/* R rows of D (R not a multiple of 8: the kernels' last rows), L positions */
typedef struct { int R, D; } RowShape;
static const RowShape row_shapes[] = {{1, 1}, {7, 5}, {8, 64}, {13, 33}, {512, 64}, {17, 300}, {64, 16}, {45, 3}};

#define LN_TEST(T, SFX)                                                                          \
  START_TEST(layernorm_##SFX) {                                                                  \
    int R = row_shapes[_i].R, D = row_shapes[_i].D;                                              \
    size_t n = (size_t)R * D;                                                                    \
    T *x = malloc(sizeof(T) * n), *dy = malloc(sizeof(T) * n), *ga = malloc(sizeof(T) * D);     \
    T *be = malloc(sizeof(T) * D), *rs = malloc(sizeof(T) * R), *xh = malloc(sizeof(T) * n);     \
    T *out = malloc(sizeof(T) * n), *dx = malloc(sizeof(T) * n), *dg = malloc(sizeof(T) * D);    \
    T *rs0 = malloc(sizeof(T) * R), *xh0 = malloc(sizeof(T) * n), *out0 = malloc(sizeof(T) * n); \
    T *dx0 = malloc(sizeof(T) * n), *dg0 = malloc(sizeof(T) * D), *dxa = malloc(sizeof(T) * n);  \
    for (size_t i = 0; i < n; i++) x[i] = (T)(urand() * 3 + 0.5), dy[i] = (T)urand();            \
    for (int j = 0; j < D; j++) ga[j] = (T)(1 + urand()), be[j] = (T)urand();                    \
    bp_layernorm_##SFX(R, D, x, NULL, NULL, ga, be, 1e-5, rs, xh, out);                          \
    bp_ln_bwd_x_##SFX(R, D, xh, dy, ga, rs, NULL, dx);                                           \
    bp_ln_bwd_x_##SFX(R, D, xh, dy, ga, rs, x, dxa); /* with a residual's gradient added */      \
    bp_ln_bwd_gain_##SFX(R, D, dy, xh, dg);                                                      \
    for (int r = 0; r < R; r++) { /* the forward, its sums in lanes */                          \
      const T *row = &x[(size_t)r * D];                                                          \
      double xs[512], ds[512];                                                                   \
      for (int j = 0; j < D; j++) xs[j] = row[j];                                                \
      T mean = (T)(lane_sum(xs, D) / D);                                                         \
      for (int j = 0; j < D; j++) {                                                              \
        T d = row[j] - mean;                                                                     \
        ds[j] = (double)d * d;                                                                   \
      }                                                                                          \
      double ss = lane_sum(ds, D);                                                               \
      T rstd = (T)(1.0 / sqrt(ss / D + 1e-5));                                                   \
      rs0[r] = rstd;                                                                             \
      for (int j = 0; j < D; j++) {                                                              \
        T v = (row[j] - mean) * rstd;                                                            \
        xh0[(size_t)r * D + j] = v;                                                              \
        out0[(size_t)r * D + j] = ga[j] * v + be[j];                                             \
      }                                                                                          \
    }                                                                                            \
    for (int r = 0; r < R; r++) { /* dx */                                                       \
      const T *h = &xh0[(size_t)r * D], *g = &dy[(size_t)r * D];                                 \
      double d1[512], d2[512];                                                                   \
      for (int j = 0; j < D; j++) {                                                              \
        d1[j] = (double)ga[j] * g[j];                                                            \
        d2[j] = d1[j] * h[j];                                                                    \
      }                                                                                          \
      double m1 = lane_sum(d1, D) / D, m2 = lane_sum(d2, D) / D;                                 \
      for (int j = 0; j < D; j++)                                                                \
        dx0[(size_t)r * D + j] = (T)(rs0[r] * ((double)ga[j] * g[j] - m1 - h[j] * m2));          \
    }                                                                                            \
    for (int j = 0; j < D; j++) { /* dgain: columns in row order */             \
      double acc = 0;                                                                            \
      for (int r = 0; r < R; r++) acc += (double)dy[(size_t)r * D + j] * xh0[(size_t)r * D + j]; \
      dg0[j] = (T)acc;                                                                           \
    }                                                                                            \
    ck_assert_msg(memcmp(rs, rs0, sizeof(T) * R) == 0 && memcmp(xh, xh0, sizeof(T) * n) == 0 &&  \
                  memcmp(out, out0, sizeof(T) * n) == 0, "bp_layernorm_" #SFX " R=%d D=%d", R, D); \
    ck_assert_msg(memcmp(dx, dx0, sizeof(T) * n) == 0, "bp_ln_bwd_x_" #SFX " R=%d D=%d", R, D);   \
    for (size_t i = 0; i < n; i++) { /* x + dx, rounded as its own pass would */                 \
      T want = x[i] + dx0[i];                                                                    \
      ck_assert_msg(memcmp(&dxa[i], &want, sizeof(T)) == 0, "bp_ln_bwd_x_" #SFX " + add R=%d D=%d [%zu]", \
                    R, D, i);                                                                    \
    }                                                                                            \
    ck_assert_msg(memcmp(dg, dg0, sizeof(T) * D) == 0, "bp_ln_bwd_gain_" #SFX " R=%d D=%d", R, D); \
    /* of x + dy in one pass: the sum and the bits of the add, then the layernorm */            \
    for (size_t i = 0; i < n; i++) dxa[i] = x[i] + dy[i];                                        \
    bp_layernorm_##SFX(R, D, dxa, NULL, NULL, ga, be, 1e-5, rs0, xh0, out0);                     \
    bp_layernorm_##SFX(R, D, x, dy, dx, ga, be, 1e-5, rs, xh, out);                              \
    ck_assert_msg(memcmp(dx, dxa, sizeof(T) * n) == 0 && memcmp(rs, rs0, sizeof(T) * R) == 0 &&  \
                  memcmp(xh, xh0, sizeof(T) * n) == 0 && memcmp(out, out0, sizeof(T) * n) == 0,  \
                  "bp_layernorm_" #SFX " of x + x2, R=%d D=%d", R, D);                           \
    free(x), free(dy), free(ga), free(be), free(rs), free(xh), free(out), free(dx), free(dg);     \
    free(rs0), free(xh0), free(out0), free(dx0), free(dg0), free(dxa);                           \
  }                                                                                              \
  END_TEST
LN_TEST(float, f32)
LN_TEST(double, f64)

/* causal softmax, softmax backward: rows of L (R = blocks of L rows) */
#define SOFTMAX_ROWS_TEST(T, SFX)                                                                \
  START_TEST(softmax_bwd_##SFX) {                                                                \
    int P = row_shapes[_i].R % 9 + 1, L = row_shapes[_i].D;                                      \
    size_t n = (size_t)P * L * L;                                                                \
    T *x = malloc(sizeof(T) * n), *y = malloc(sizeof(T) * n), *y0 = malloc(sizeof(T) * n);      \
    T *dy = malloc(sizeof(T) * n), *dx = malloc(sizeof(T) * n), *dx0 = malloc(sizeof(T) * n);   \
    for (size_t i = 0; i < n; i++) x[i] = (T)(urand() * 6), dy[i] = (T)urand(), y[i] = 7;        \
    bp_causal_softmax_##SFX(P * L, L, 1.0, x, y); /* checked by causal_rows_* */                 \
    int rows = P * L;                                                                            \
    bp_softmax_bwd_##SFX(rows, L, y, dy, dx);                                                    \
    for (int r = 0; r < rows; r++) { /* emit_softmax_bwd's, the axis last */                     \
      double dot = 0;                                                                            \
      for (int j = 0; j < L; j++) dot += (double)dy[(size_t)r * L + j] * y[(size_t)r * L + j];   \
      for (int j = 0; j < L; j++)                                                                \
        dx0[(size_t)r * L + j] = y[(size_t)r * L + j] * (dy[(size_t)r * L + j] - (T)dot);         \
    }                                                                                            \
    ck_assert_msg(memcmp(dx, dx0, sizeof(T) * n) == 0, "bp_softmax_bwd_" #SFX " rows=%d L=%d", rows, L); \
    free(x), free(y), free(y0), free(dy), free(dx), free(dx0);                                   \
  }                                                                                              \
  END_TEST
SOFTMAX_ROWS_TEST(float, f32)
SOFTMAX_ROWS_TEST(double, f64)

/* swap_axes against index arithmetic, for every pair of axes of a rank-4 and a rank-5 shape */
#define SWAP_TEST(T, SFX)                                                                        \
  START_TEST(swap_axes_##SFX) {                                                                  \
    static const int shapes[2][5] = {{3, 5, 2, 7, 1}, {2, 3, 4, 5, 3}};                          \
    for (int s = 0; s < 2; s++) {                                                                \
      int rank = s ? 5 : 4;                                                                      \
      const int *dm = shapes[s];                                                                 \
      size_t n = 1;                                                                              \
      for (int d = 0; d < rank; d++) n *= (size_t)dm[d];                                         \
      T *x = malloc(sizeof(T) * n), *y = malloc(sizeof(T) * n);                                  \
      for (size_t i = 0; i < n; i++) x[i] = (T)i;                                                \
      for (int p = 0; p < rank; p++)                                                             \
        for (int q = p + 1; q < rank; q++) {                                                     \
          long A = 1, B = 1, C = 1;                                                              \
          for (int d = 0; d < rank; d++) {                                                       \
            if (d < p) A *= dm[d];                                                               \
            else if (d > p && d < q) B *= dm[d];                                                 \
            else if (d > q) C *= dm[d];                                                          \
          }                                                                                      \
          bp_swap_axes_##SFX(A, dm[p], B, dm[q], C, x, dm[q] * C, y, dm[p] * C);                                       \
          int od[5];                                                                             \
          for (int d = 0; d < rank; d++) od[d] = dm[d == p ? q : d == q ? p : d];                \
          for (size_t o = 0; o < n; o++) { /* y[i] = x[i with axes p, q swapped] */              \
            int at[5];                                                                           \
            size_t rem = o, xi = 0;                                                              \
            for (int d = rank - 1; d >= 0; d--) at[d] = (int)(rem % (size_t)od[d]), rem /= (size_t)od[d]; \
            for (int d = 0; d < rank; d++) xi = xi * (size_t)dm[d] + (size_t)at[d == p ? q : d == q ? p : d]; \
            ck_assert_msg(y[o] == x[xi], "bp_swap_axes_" #SFX " rank %d axes %d %d: y[%zu]", rank, p, q, o); \
          }                                                                                      \
        }                                                                                        \
      free(x), free(y);                                                                          \
    }                                                                                            \
  }                                                                                              \
  END_TEST
SWAP_TEST(float, f32)
SWAP_TEST(double, f64)

/* the swap out of a slice into a part: x's rows (a, i) are columns [3, 3 + n2·C)
 * of rows 17 wide, y's rows (a, j) columns [5, 5 + n1·C) of rows 19 wide (the
 * attention's heads read out of qkv, written into dqkv); nothing else written */
START_TEST(swap_axes_strided) {
  enum { A = 3, N1 = 5, N2 = 4, C = 2, XS = 17, YS = 19 };
  float x[A * N1 * XS], y[A * N2 * YS];
  for (int i = 0; i < A * N1 * XS; i++) x[i] = (float)i;
  for (int i = 0; i < A * N2 * YS; i++) y[i] = -1;
  bp_swap_axes_f32(A, N1, 1, N2, C, x + 3, XS, y + 5, YS);
  for (int a = 0; a < A; a++)
    for (int j = 0; j < N2; j++)
      for (int k = 0; k < YS; k++) {
        int i = (k - 5) / C, c = (k - 5) % C;
        float want = k < 5 || k >= 5 + N1 * C ? -1 : x[(a * N1 + i) * XS + 3 + j * C + c];
        ck_assert_msg(y[(a * N2 + j) * YS + k] == want, "y[%d, %d, %d] = %g, want %g", a, j, k,
                      y[(a * N2 + j) * YS + k], want);
      }
}
END_TEST

/* bp_cat_parts: rows of y from a swapped part ([A, n1, n2, C] -> [A, n2, n1, C]
 * into its columns), a part copied with its own row stride, another swapped
 * one, against the element each column should hold, at 1 to 3 threads (rows
 * enough, 2000 x 36, for the pool to split them) */
START_TEST(cat_parts) {
  enum { A = 40, N1 = 3, N2 = 50, C = 5, R = A * N2, P = 4, PS = 9, W = 2 * N1 * C + P + 1 };
  long geo[] = {1, N1, N2, C, N2 * C, 1 + N1 * C, 1, 1, P, PS, 1 + N1 * C + P, N1, N2, C, N2 * C};
  float *x = malloc(sizeof(float) * A * N1 * N2 * C), *z = malloc(sizeof(float) * R * PS);
  float *x2 = malloc(sizeof(float) * A * N1 * N2 * C), *y = malloc(sizeof(float) * R * W);
  for (int i = 0; i < A * N1 * N2 * C; i++) x[i] = (float)i, x2[i] = (float)-i;
  for (int i = 0; i < R * PS; i++) z[i] = (float)(0.5 + i);
  const float *const src[] = {x, z, x2};
  for (int th = 1; th <= 3; th++) {
    for (int i = 0; i < R * W; i++) y[i] = -7;
    bp_set_threads(th);
    bp_cat_parts_f32(R, W, 3, geo, src, y);
    bp_set_threads(1);
    for (int r = 0; r < R; r++)
      for (int k = 0; k < W; k++) {
        int a = r / N2, j = r % N2, sw = k >= 1 + N1 * C + P, kk = sw ? k - 1 - N1 * C - P : k - 1;
        float want = k == 0 ? -7
                     : k > N1 * C && !sw ? z[r * PS + k - 1 - N1 * C]
                     : (sw ? x2 : x)[((a * N1 + kk / C) * N2 + j) * C + kk % C];
        ck_assert_msg(y[r * W + k] == want, "%d threads: y[%d, %d] = %g, want %g", th, r, k, y[r * W + k], want);
      }
  }
  free(x), free(z), free(x2), free(y);
}
END_TEST

/* the layernorm's gain gradient with the columns shared by 2 and 3 threads
 * (from R·D = 4·BP_PAR_MIN; D odd, so the last part is uneven): each column the
 * bits of its sum in row order in double */
START_TEST(threads_ln_gain) {
  enum { R = 700, D = 401 };
  float *dy = malloc(sizeof(float) * R * D), *xh = malloc(sizeof(float) * R * D), *dg = malloc(sizeof(float) * D);
  for (int i = 0; i < R * D; i++) dy[i] = (float)urand(), xh[i] = (float)(urand() * 2 - 1);
  for (int th = 1; th <= 3; th++) {
    bp_set_threads(th);
    bp_ln_bwd_gain_f32(R, D, dy, xh, dg);
    bp_set_threads(1);
    int bad = 0;
    for (int j = 0; j < D; j++) {
      double a = 0;
      for (int r = 0; r < R; r++) a += (double)dy[(long)r * D + j] * xh[(long)r * D + j];
      float want = (float)a;
      bad += memcmp(&dg[j], &want, sizeof want) != 0;
    }
    ck_assert_msg(bad == 0, "bp_ln_bwd_gain_f32 on %d threads: %d columns differ", th, bad);
  }
  free(dy), free(xh), free(dg);
}
END_TEST

/* gelu with threads: the same bits as 1 thread */
START_TEST(threads_gelu) {
  long n = 300 * 700;
  float *x = malloc(sizeof(float) * n), *d = malloc(sizeof(float) * n);
  float *y1 = malloc(sizeof(float) * n), *y2 = malloc(sizeof(float) * n);
  for (long i = 0; i < n; i++) x[i] = (float)(urand() * 4), d[i] = (float)urand();
  /* big, and small enough that only GELU's cost splits it (BP_PAR_HEAVY) */
  for (int pass = 0; pass < 2; pass++, n = 9001) {
    for (int th = 2; th <= 3; th++) {
      bp_set_threads(1);
      bp_gelu_f32((size_t)n, x, y1);
      bp_set_threads(th);
      bp_gelu_f32((size_t)n, x, y2);
      ck_assert_msg(memcmp(y1, y2, sizeof(float) * n) == 0, "bp_gelu_f32 n=%ld, %d threads", n, th);
      bp_set_threads(1);
      bp_gelu_bwd_f32((size_t)n, x, d, y1);
      bp_set_threads(th);
      bp_gelu_bwd_f32((size_t)n, x, d, y2);
      ck_assert_msg(memcmp(y1, y2, sizeof(float) * n) == 0, "bp_gelu_bwd_f32 n=%ld, %d threads", n, th);
    }
  }
  bp_set_threads(1);
  free(x), free(d), free(y1), free(y2);
}
END_TEST

/* the calling thread's scratch (kernels.h "scratch"), set before the tests fork */
static unsigned char scratch[BP_WS_BYTES(8)];

/* ---- attention's causal kernels ------------------------------------------------- */

/* blocks of L rows: L = 1, odd, one lane group, across the lanes, past the pack */
static const int causal_L[] = {1, 5, 16, 17, 33, 100, 257};
static const double causal_scale[] = {1, 0.125, 0.57735026918962573, -0.5};

/* bp_causal_softmax against a double softmax of scale·x over columns 0..i,
 * exact zeros after; bp_causal_softmax_bwd against scale·y(dy − Σ dy y) in
 * double from the kernel's y, its dy NaN above the diagonal (never read); 2
 * and 3 threads give the same bits */
#define CAUSAL_ROWS_TEST(T, SFX, TOL)                                                             \
  START_TEST(causal_rows_##SFX) {                                                                 \
    int L = causal_L[_i], P = 3;                                                                  \
    size_t n = (size_t)P * L * L;                                                                 \
    T *x = malloc(sizeof(T) * n), *y = malloc(sizeof(T) * n), *dy = malloc(sizeof(T) * n);      \
    T *dx = malloc(sizeof(T) * n), *y2 = malloc(sizeof(T) * n), *dx2 = malloc(sizeof(T) * n);   \
    double *e = malloc(sizeof(double) * (size_t)L);                                               \
    for (size_t k = 0; k < n; k++) {                                                              \
      long i = (long)(k / (size_t)L % (size_t)L), j = (long)(k % (size_t)L);                      \
      x[k] = (T)(urand() * 6), dy[k] = j <= i ? (T)urand() : (T)NAN;                              \
    }                                                                                             \
    for (int sc = 0; sc < 4; sc++) {                                                              \
      double s = causal_scale[sc], worst = 0, worstb = 0;                                         \
      for (size_t k = 0; k < n; k++) y[k] = 7, dx[k] = 7;                                         \
      bp_causal_softmax_##SFX(P * L, L, s, x, y);                                                 \
      bp_causal_softmax_bwd_##SFX(P * L, L, s, y, dy, dx);                                        \
      for (long r = 0; r < (long)P * L; r++) {                                                    \
        long i = r % L;                                                                           \
        const T *xr = x + r * L, *yr = y + r * L, *gr = dy + r * L, *dr = dx + r * L;             \
        double m = s * (double)xr[0], sum = 0, dot = 0;                                           \
        for (long j = 0; j <= i; j++) m = s * (double)xr[j] > m ? s * (double)xr[j] : m;          \
        for (long j = 0; j <= i; j++) sum += e[j] = exp(s * (double)xr[j] - m);                   \
        for (long j = 0; j <= i; j++) dot += (double)gr[j] * yr[j];                               \
        for (long j = 0; j < L; j++) {                                                            \
          if (j > i) {                                                                            \
            ck_assert_msg(yr[j] == 0 && dr[j] == 0, #SFX " L=%d row %ld col %ld: %g, %g after the " \
                          "diagonal", L, r, j, (double)yr[j], (double)dr[j]);                     \
            continue;                                                                             \
          }                                                                                       \
          double p = e[j] / sum, d = fabs(yr[j] - p) / p;                                         \
          double g = s * yr[j] * (gr[j] - dot), mag = fabs(s) * yr[j] * (fabs(gr[j]) + fabs(dot) + 1e-3); \
          double db = fabs(dr[j] - g) / mag;                                                      \
          worst = d > worst || d != d ? d : worst;                                                \
          worstb = db > worstb || db != db ? db : worstb;                                         \
        }                                                                                         \
      }                                                                                           \
      ck_assert_msg(worst <= TOL, "bp_causal_softmax_" #SFX " L=%d scale %g: max rel err %g", L, s, worst); \
      ck_assert_msg(worstb <= TOL, "bp_causal_softmax_bwd_" #SFX " L=%d scale %g: max rel err %g", L, s, \
                    worstb);                                                                      \
      for (int th = 2; th <= 3; th++) {                                                           \
        bp_set_threads(th);                                                                       \
        bp_causal_softmax_##SFX(P * L, L, s, x, y2);                                              \
        bp_causal_softmax_bwd_##SFX(P * L, L, s, y, dy, dx2);                                     \
        bp_set_threads(1);                                                                        \
        ck_assert(memcmp(y, y2, sizeof(T) * n) == 0 && memcmp(dx, dx2, sizeof(T) * n) == 0);      \
      }                                                                                           \
    }                                                                                             \
    free(x), free(y), free(dy), free(dx), free(y2), free(dx2), free(e);                           \
  }                                                                                               \
  END_TEST
CAUSAL_ROWS_TEST(float, f32, 4e-6)
CAUSAL_ROWS_TEST(double, f64, 1e-13)

/* bp_gemm_causal against a double product: tri 1 (C = A·Bᵀ, the lower
 * triangle; full 0 leaves the rest as it was, full 1 writes it too, the lower
 * entries with the same bits), tri 2 (A 0 above its diagonal, as is and
 * transposed; A[0][T-1] is NaN: a block of A that cannot matter is not read) */
#define GEMM_CAUSAL_TEST(T, SFX, TOL)                                                             \
  START_TEST(gemm_causal_##SFX) {                                                                 \
    static const int Ts[] = {1, 7, 31, 32, 33, 100, 600}, Ds[] = {1, 5, 64};                      \
    int M = Ts[_i % 7], D = Ds[_i / 7];                                                           \
    size_t mm = (size_t)M * M, md = (size_t)M * D;                                                \
    T *A = malloc(sizeof(T) * mm), *Q = malloc(sizeof(T) * md), *Kt = malloc(sizeof(T) * md);   \
    T *C = malloc(sizeof(T) * (mm > md ? mm : md)), *C2 = malloc(sizeof(T) * mm);                 \
    for (size_t k = 0; k < md; k++) Q[k] = (T)urand(), Kt[k] = (T)urand();                        \
    for (size_t k = 0; k < mm; k++) C[k] = C2[k] = 7;                                             \
    bp_gemm_causal_##SFX(M, M, D, Q, 0, Kt, 1, C, 1, 0);                                          \
    bp_gemm_causal_##SFX(M, M, D, Q, 0, Kt, 1, C2, 1, 1);                                         \
    for (int i = 0; i < M; i++)                                                                   \
      for (int j = 0; j < M; j++) {                                                               \
        double ref = 0, mag = 0;                                                                  \
        for (int k = 0; k < D; k++) {                                                             \
          double t = (double)Q[(size_t)i * D + k] * Kt[(size_t)j * D + k];                        \
          ref += t, mag += fabs(t);                                                               \
        }                                                                                         \
        T c = C[(size_t)i * M + j], c2 = C2[(size_t)i * M + j];                                   \
        ck_assert_msg(fabs(c2 - ref) <= TOL * (mag + 1e-30), #SFX " tri 1 full M=%d D=%d (%d,%d)", M, D, i, j); \
        if (j <= i || c != 7) /* above: the diagonal blocks' rest, or left as it was */          \
          ck_assert_msg(memcmp(&c, &c2, sizeof c) == 0, #SFX " tri 1 M=%d D=%d (%d,%d): %g vs %g", M, D, \
                        i, j, (double)c, (double)c2);                                             \
        if (i < M / 2 && j == M - 1 && M > 64)                                                    \
          ck_assert_msg(c == 7, #SFX " tri 1 M=%d D=%d wrote (%d,%d), far above the diagonal", M, D, i, j); \
      }                                                                                           \
    for (size_t k = 0; k < mm; k++) A[k] = k % (size_t)M <= k / (size_t)M ? (T)urand() : 0;      \
    if (M > 64) A[M - 1] = (T)NAN;                                                                \
    for (int ta = 0; ta < 2; ta++) {                                                              \
      bp_gemm_causal_##SFX(M, D, M, A, ta, Q, 0, C, 2, 0);                                        \
      for (int i = 0; i < M; i++)                                                                 \
        for (int j = 0; j < D; j++) {                                                             \
          double ref = 0, mag = 0;                                                                \
          for (int k = 0; k < M; k++) {                                                           \
            T a = ta ? A[(size_t)k * M + i] : A[(size_t)i * M + k];                               \
            double t = a != a ? 0 : (double)a * Q[(size_t)k * D + j];                             \
            ref += t, mag += fabs(t);                                                             \
          }                                                                                       \
          T c = C[(size_t)i * D + j];                                                             \
          ck_assert_msg(fabs(c - ref) <= TOL * (mag + 1e-30), #SFX " tri 2 transa %d M=%d D=%d (%d,%d): " \
                        "%g vs %g", ta, M, D, i, j, (double)c, ref);                              \
        }                                                                                         \
    }                                                                                             \
    free(A), free(Q), free(Kt), free(C), free(C2);                                                \
  }                                                                                               \
  END_TEST
GEMM_CAUSAL_TEST(float, f32, 1e-5)
GEMM_CAUSAL_TEST(double, f64, 1e-12)

/* bp_gemm_batch: nb products one after another, each with exactly the bits of
 * its own bp_gemm / bp_gemm_causal call, at 1, 2 and 3 threads (the threads
 * share the products); shapes under and over bp_gemm's own split (big ones
 * shared when there are 4 a thread: nb 9 at 2 threads), odd nb, all
 * transposed forms, tri 0, 1 (full 0 and 1) and 2 */
#define GEMM_BATCH_TEST(T, SFX)                                                                   \
  START_TEST(gemm_batch_##SFX) {                                                                  \
    static const int shapes[][4] = {{1, 17, 17, 9}, {5, 40, 40, 33}, {7, 64, 64, 32},             \
                                    {3, 70, 70, 70}, {2, 200, 200, 64}, {9, 200, 200, 64}};       \
    const int *sh = shapes[_i / 6];                                                               \
    int nb = sh[0], M = sh[1], N = sh[2], K = sh[3], form = _i % 6;                               \
    int tri = form < 3 ? 0 : form == 5 ? 2 : 1, full = form == 4;                                \
    int ta = tri == 1 ? 0 : form == 1 || form == 5 ? (form == 5 ? _i % 2 : 1) : 0;               \
    int tb = tri == 1 ? 1 : tri == 2 ? 0 : form == 2;                                             \
    if (tri == 2) K = M;                                                                          \
    size_t sa = (size_t)M * K, sb = (size_t)K * N, sc = (size_t)M * N;                            \
    T *A = malloc(sizeof(T) * sa * nb), *B = malloc(sizeof(T) * sb * nb);                         \
    T *C1 = malloc(sizeof(T) * sc * nb), *C2 = malloc(sizeof(T) * sc * nb);                       \
    for (size_t i = 0; i < sa * nb; i++) A[i] = (T)urand();                                       \
    if (tri == 2) /* A zero above its diagonal (as stored: transposed, below) */                  \
      for (int b = 0; b < nb; b++)                                                                \
        for (int r = 0; r < M; r++)                                                               \
          for (int c = 0; c < M; c++)                                                             \
            if (ta ? r > c : c > r) A[b * sa + (size_t)r * M + c] = 0;                            \
    for (size_t i = 0; i < sb * nb; i++) B[i] = (T)urand();                                       \
    for (size_t i = 0; i < sc * nb; i++) C1[i] = C2[i] = (T)7;                                    \
    for (int b = 0; b < nb; b++)                                                                  \
      if (tri) bp_gemm_causal_##SFX(M, N, K, A + b * sa, ta, B + b * sb, tb, C1 + b * sc, tri, full); \
      else bp_gemm_##SFX(M, N, K, A + b * sa, ta, B + b * sb, tb, C1 + b * sc, 0);               \
    for (int th = 1; th <= 3; th++) {                                                             \
      for (size_t i = 0; i < sc * nb; i++) C2[i] = (T)7;                                          \
      bp_set_threads(th);                                                                         \
      bp_gemm_batch_##SFX(nb, M, N, K, A, ta, B, tb, C2, tri, full);                              \
      bp_set_threads(1);                                                                          \
      ck_assert_msg(memcmp(C1, C2, sizeof(T) * sc * nb) == 0,                                     \
                    #SFX " nb %d M %d N %d K %d ta %d tb %d tri %d full %d, %d threads: not the " \
                    "bits of one call per product", nb, M, N, K, ta, tb, tri, full, th);          \
    }                                                                                             \
    free(A), free(B), free(C1), free(C2);                                                         \
  }                                                                                               \
  END_TEST
GEMM_BATCH_TEST(float, f32)
GEMM_BATCH_TEST(double, f64)

/* bp_causal_scores(_bwd): each head the bits of bp_gemm_causal (tri 1) then
 * bp_causal_softmax(_bwd) on its own, at 1 to 3 threads; datt given: all of
 * it written (the bits of the full product), NULL: ds the same bits */
#define SCORES_TEST(T, SFX)                                                                       \
  START_TEST(scores_##SFX) {                                                                      \
    static const int shapes[][3] = {{3, 1, 4}, {3, 7, 5}, {5, 33, 64}, {2, 100, 7}, {9, 64, 32}};  \
    int nb = shapes[_i][0], L = shapes[_i][1], D = shapes[_i][2];                                 \
    size_t sd = (size_t)L * D, st = (size_t)L * L;                                                \
    T *q = malloc(sizeof(T) * sd * nb), *k = malloc(sizeof(T) * sd * nb);                         \
    T *s1 = malloc(sizeof(T) * st * nb), *a1 = malloc(sizeof(T) * st * nb);                       \
    T *d1 = malloc(sizeof(T) * st * nb), *a2 = malloc(sizeof(T) * st * nb);                       \
    T *d2 = malloc(sizeof(T) * st * nb), *g2 = malloc(sizeof(T) * st * nb);                       \
    for (size_t i = 0; i < sd * nb; i++) q[i] = (T)(3 * urand()), k[i] = (T)urand();              \
    double sc = 0.37;                                                                             \
    for (int b = 0; b < nb; b++) { /* one head at a time, the kernels on their own */            \
      bp_gemm_causal_##SFX(L, L, D, q + b * sd, 0, k + b * sd, 1, s1 + b * st, 1, 1);              \
      bp_causal_softmax_##SFX(L, L, sc, s1 + b * st, a1 + b * st);                                \
      bp_causal_softmax_bwd_##SFX(L, L, sc, a1 + b * st, s1 + b * st, d1 + b * st);               \
    }                                                                                             \
    for (int th = 1; th <= 3; th++)                                                               \
      for (int keep = 0; keep < 2; keep++) {                                                      \
        bp_set_threads(th);                                                                       \
        for (size_t i = 0; i < st * nb; i++) a2[i] = d2[i] = g2[i] = (T)7;                        \
        bp_causal_scores_##SFX(nb, L, D, q, k, sc, a2);                                           \
        bp_causal_scores_bwd_##SFX(nb, L, D, q, k, a1, sc, keep ? g2 : NULL, d2);                 \
        bp_set_threads(1);                                                                        \
        ck_assert_msg(memcmp(a1, a2, sizeof(T) * st * nb) == 0, #SFX " nb %d L %d D %d, %d threads: att", \
                      nb, L, D, th);                                                              \
        ck_assert_msg(memcmp(d1, d2, sizeof(T) * st * nb) == 0, #SFX " nb %d L %d D %d, %d threads, " \
                      "datt %s: ds", nb, L, D, th, keep ? "kept" : "not kept");                   \
        if (keep)                                                                                 \
          ck_assert_msg(memcmp(s1, g2, sizeof(T) * st * nb) == 0, #SFX " nb %d L %d D %d: datt", nb, L, D); \
        else                                                                                      \
          ck_assert(g2[0] == 7 && g2[st * nb - 1] == 7);                                          \
      }                                                                                           \
    free(q), free(k), free(s1), free(a1), free(d1), free(a2), free(d2), free(g2);                 \
  }                                                                                               \
  END_TEST
SCORES_TEST(float, f32)
SCORES_TEST(double, f64)

static Suite *make_suite(void) {
  bp_scratch_use(scratch);
  Suite *s = suite_create("kernels");
  TCase *tc = tcase_create("gemm");
  tcase_set_tags(tc, "slow");
  tcase_set_timeout(tc, 60);
  int ng = (int)(sizeof gemm_shapes / sizeof gemm_shapes[0]);
  tcase_add_loop_test(tc, gemm_f32, 0, ng);
  tcase_add_loop_test(tc, gemm_f64, 0, ng);
  tcase_add_test(tc, gemm_k0);
  tcase_add_test(tc, allfinite);
  tcase_add_loop_test(tc, gemm_bias_f32, 0, ng);
  tcase_add_loop_test(tc, gemm_bias_f64, 0, ng);
  suite_add_tcase(s, tc);
  TCase *te = tcase_create("elementwise");
  tcase_set_tags(te, "slow");
  int ns = (int)(sizeof sizes / sizeof sizes[0]);
  tcase_add_loop_test(te, elementwise_f32, 0, ns);
  tcase_add_loop_test(te, elementwise_f64, 0, ns);
  tcase_add_test(te, tanh_exp_special);
  tcase_add_loop_test(te, adamw_f32, 0, ns);
  tcase_add_loop_test(te, adamw_f64, 0, ns);
  tcase_add_loop_test(te, adamw_torch_f32, 0, ns);
  tcase_add_loop_test(te, adamw_torch_f64, 0, ns);
  tcase_add_test(te, threads_setting);
  suite_add_tcase(s, te);
  TCase *tr = tcase_create("rows");
  tcase_set_tags(tr, "slow");
  int n2 = (int)(sizeof shapes2 / sizeof shapes2[0]);
  tcase_add_loop_test(tr, rows_f32, 0, n2);
  tcase_add_loop_test(tr, rows_f64, 0, n2);
  tcase_add_test(tr, xent_extreme);
  int nb = (int)(sizeof bn_shapes / sizeof bn_shapes[0]);
  tcase_add_loop_test(tr, bn_f32, 0, nb);
  tcase_add_loop_test(tr, bn_f64, 0, nb);
  tcase_add_test(tr, threads_elementwise);
  tcase_add_test(tr, threads_rows);
  suite_add_tcase(s, tr);
  TCase *ta = tcase_create("attn");
  tcase_set_tags(ta, "slow");
  int nr = (int)(sizeof row_shapes / sizeof row_shapes[0]);
  tcase_add_loop_test(ta, gelu_f32, 0, ns);
  tcase_add_loop_test(ta, gelu_f64, 0, ns);
  tcase_add_loop_test(ta, layernorm_f32, 0, nr);
  tcase_add_loop_test(ta, layernorm_f64, 0, nr);
  tcase_add_loop_test(ta, softmax_bwd_f32, 0, nr);
  tcase_add_loop_test(ta, softmax_bwd_f64, 0, nr);
  tcase_add_test(ta, swap_axes_f32);
  tcase_add_test(ta, swap_axes_f64);
  tcase_add_test(ta, swap_axes_strided);
  tcase_add_test(ta, cat_parts);
  tcase_add_test(ta, threads_gelu);
  tcase_add_test(ta, threads_ln_gain);
  suite_add_tcase(s, ta);
  TCase *tcs = tcase_create("causal");
  tcase_set_tags(tcs, "slow");
  int nl = (int)(sizeof causal_L / sizeof causal_L[0]);
  tcase_add_loop_test(tcs, causal_rows_f32, 0, nl);
  tcase_add_loop_test(tcs, causal_rows_f64, 0, nl);
  tcase_add_loop_test(tcs, gemm_causal_f32, 0, 21);
  tcase_add_loop_test(tcs, gemm_causal_f64, 0, 21);
  tcase_add_loop_test(tcs, scores_f32, 0, 5);
  tcase_add_loop_test(tcs, scores_f64, 0, 5);
  tcase_add_loop_test(tcs, gemm_batch_f32, 0, 36);
  tcase_add_loop_test(tcs, gemm_batch_f64, 0, 36);
  suite_add_tcase(s, tcs);
  return s;
}
TESTS_REGISTER(make_suite)

