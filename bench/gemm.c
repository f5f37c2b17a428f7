/* bench/gemm.c: GFLOP/s of bp_gemm_f32 (runtime/kernels.c) on the matmul shapes
 * of the lecture MLP's training step for the four benchmark configs, and on
 * square sizes, next to OpenBLAS's cblas_sgemm on one thread as the roofline.
 *
 * The MLP (V=27, T=3, E=10, so K0 = T*E = 30): emb[B,30] . W1[30,H] -> h;
 * h[B,H] . W2[H,27] -> logits.  Its step runs six matmuls, one per
 * transposition form of backprop:
 *   fwd1  h      = emb . W1          M=B  N=H  K=30   (0,0)
 *   fwd2  logits = h . W2            M=B  N=27 K=H    (0,0)
 *   dh    dh     = dlogits . W2^T    M=B  N=H  K=27   (0,1)
 *   dW2   dW2   += h^T . dlogits     M=H  N=27 K=B    (1,0)
 *   dW1   dW1   += emb^T . dh        M=30 N=H  K=B    (1,0)
 *   demb  demb   = dh . W1^T         M=B  N=30 K=H    (0,1)
 *
 * Built by `make bench` with -DHAVE_OPENBLAS when libopenblas is installed.
 * Usage: bench-gemm [--threads N] [--quick]; the step totals and the roofline
 * also go to stderr as "#step H B us gflops blas_gflops" and "#roofline GF/s".
 * Each figure is the best of several timed runs of at least ~20 ms each.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BP_KERNELS_DECLARE_ONLY
#include "kernels.h"

#ifdef HAVE_OPENBLAS
#include <cblas.h>
char *openblas_get_corename(void);
void openblas_set_num_threads(int);
#endif

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

typedef struct {
  const char *name;
  int M, N, K, ta, tb, acc;
} Shape;

static float *A, *B, *C;
static double min_time = 0.02;
static int best_of = 5;

static void fill(float *p, size_t n, unsigned seed) {
  for (size_t i = 0; i < n; i++) {
    seed = seed * 1664525u + 1013904223u;
    p[i] = (float)((seed >> 8) & 0xffff) / 65536.0f - 0.5f;
  }
}

static void run_bp(const Shape *s) {
  bp_gemm_f32(s->M, s->N, s->K, A, s->ta, B, s->tb, C, s->acc);
}
#ifdef HAVE_OPENBLAS
static void run_blas(const Shape *s) {
  cblas_sgemm(CblasRowMajor, s->ta ? CblasTrans : CblasNoTrans, s->tb ? CblasTrans : CblasNoTrans,
              s->M, s->N, s->K, 1.0f, A, s->ta ? s->M : s->K, B, s->tb ? s->K : s->N,
              s->acc ? 1.0f : 0.0f, C, s->N);
}
#endif

/* seconds per call: best of best_of runs of enough calls to last min_time */
static double time_it(void (*f)(const Shape *), const Shape *s) {
  f(s);
  int reps = 1;
  for (;;) {
    double t0 = now();
    for (int r = 0; r < reps; r++) f(s);
    double t = now() - t0;
    if (t >= min_time) break;
    reps = t <= 0 ? reps * 10 : (int)(reps * (min_time * 1.2 / t)) + 1;
  }
  double best = 1e30;
  for (int b = 0; b < best_of; b++) {
    double t0 = now();
    for (int r = 0; r < reps; r++) f(s);
    double t = (now() - t0) / reps;
    if (t < best) best = t;
  }
  return best;
}

static double flops(const Shape *s) { return 2.0 * s->M * s->N * s->K; }

int main(int argc, char **argv) {
  int threads = 1;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--threads") && i + 1 < argc)
      threads = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--quick"))
      min_time = 0.005, best_of = 3;
    else {
      fprintf(stderr, "usage: %s [--threads N] [--quick]\n", argv[0]);
      return 2;
    }
  }
  bp_set_threads(threads);
  static unsigned char scratch[BP_WS_BYTES(4)]; /* this thread's (kernels.h "scratch") */
  bp_scratch_use(scratch);
  size_t maxel = (size_t)4096 * 4096;
  A = aligned_alloc(64, maxel * sizeof(float));
  B = aligned_alloc(64, maxel * sizeof(float));
  C = aligned_alloc(64, maxel * sizeof(float));
  if (!A || !B || !C) {
    fprintf(stderr, "out of memory\n");
    return 1;
  }
  fill(A, maxel, 1);
  fill(B, maxel, 2);
  fill(C, maxel, 3);
#ifdef HAVE_OPENBLAS
  openblas_set_num_threads(threads);
  printf("OpenBLAS core: %s, %d thread(s); OPENBLAS_CORETYPE=%s OPENBLAS_L2_SIZE=%s\n",
         openblas_get_corename(), threads, getenv("OPENBLAS_CORETYPE") ? getenv("OPENBLAS_CORETYPE") : "(unset)",
         getenv("OPENBLAS_L2_SIZE") ? getenv("OPENBLAS_L2_SIZE") : "(unset)");
#else
  printf("OpenBLAS: not built in (install libopenblas-dev)\n");
#endif
  printf("bp_gemm_f32: %d thread(s)\n\n", bp_get_threads());
  printf("%-22s %5s %5s %5s %3s %8s %8s %6s\n", "shape", "M", "N", "K", "t", "bp GF/s", "blas", "bp/blas");

  static const int cfg[4][2] = {{64, 32}, {200, 32}, {1024, 256}, {4096, 1024}};
  double sq_best = 0;
  for (int c = 0; c < 4; c++) {
    int H = cfg[c][0], Bt = cfg[c][1];
    Shape sh[6] = {
        {"fwd1", Bt, H, 30, 0, 0, 0},  {"fwd2", Bt, 27, H, 0, 0, 0},
        {"dh", Bt, H, 27, 0, 1, 0},    {"dW2", H, 27, Bt, 1, 0, 1},
        {"dW1", 30, H, Bt, 1, 0, 1},   {"demb", Bt, 30, H, 0, 1, 0},
    };
    double tb = 0, tl = 0, fl = 0;
    for (int i = 0; i < 6; i++) {
      const Shape *s = &sh[i];
      double t1 = time_it(run_bp, s), t2 = 0;
#ifdef HAVE_OPENBLAS
      t2 = time_it(run_blas, s);
#endif
      tb += t1, tl += t2, fl += flops(s);
      char nm[64];
      snprintf(nm, sizeof nm, "H=%d,B=%d %s", H, Bt, s->name);
      printf("%-22s %5d %5d %5d %d%d %8.1f %8.1f %6.2f\n", nm, s->M, s->N, s->K, s->ta, s->tb,
             flops(s) / t1 * 1e-9, t2 > 0 ? flops(s) / t2 * 1e-9 : 0, t2 > 0 ? t2 / t1 : 0);
    }
    printf("%-22s %23s %8.1f %8.1f %6.2f   (%.1f us/step of matmuls, %.2f MFLOP)\n\n", "  step total", "",
           fl / tb * 1e-9, tl > 0 ? fl / tl * 1e-9 : 0, tl > 0 ? tl / tb : 0, tb * 1e6, fl * 1e-6);
    fprintf(stderr, "#step %d %d %.1f %.1f %.1f\n", H, Bt, tb * 1e6, fl / tb * 1e-9, tl > 0 ? fl / tl * 1e-9 : 0);
  }
  for (int n = 256; n <= 2048; n *= 2)
    for (int f = 0; f < 3; f++) {
      Shape s = {"square", n, n, n, f == 2, f == 1, 0};
      double t1 = time_it(run_bp, &s), t2 = 0;
#ifdef HAVE_OPENBLAS
      t2 = time_it(run_blas, &s);
      if (flops(&s) / t2 > sq_best) sq_best = flops(&s) / t2;
#endif
      printf("%-22s %5d %5d %5d %d%d %8.1f %8.1f %6.2f\n", "square", n, n, n, s.ta, s.tb,
             flops(&s) / t1 * 1e-9, t2 > 0 ? flops(&s) / t2 * 1e-9 : 0, t2 > 0 ? t2 / t1 : 0);
    }
  if (sq_best > 0)
  {
    printf("\nroofline (best OpenBLAS square sgemm): %.1f GFLOP/s\n", sq_best * 1e-9);
    fprintf(stderr, "#roofline %.1f\n", sq_best * 1e-9);
  }
  free(A);
  free(B);
  free(C);
  return 0;
}
