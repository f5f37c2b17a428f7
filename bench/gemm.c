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
 * The sequence models (--seq, issue 14): gpt2.spec's two configs and makemore's
 * transformer.spec, every product of their step (Linear layers forward x . W^T
 * (0,1) or x . W (0,0), backward dX = dY . W or dY . W^T and dW = X^T . dY (1,0);
 * "+b" the forward's bias variant bp_gemm_bias, against sgemm without bias) and
 * attention's per-head products q.k^T, att.v, and their backward (one head's call,
 * B*NH of them per layer), each with its count per training step; the summary
 * line per config is the step's GEMM time, each product times its count.
 *
 * Built by `make bench` with -DHAVE_OPENBLAS when libopenblas is installed.
 * Usage: bench-gemm [--threads N] [--quick] [--seq | --mlp]: --seq only the
 * sequence models' table, --mlp only the MLP table and the squares; the step
 * totals and the roofline also go to stderr as "#step H B us gflops blas_gflops",
 * "#seq config us blas_us" and "#roofline GF/s".  Each figure is the best of
 * several timed runs of at least ~20 ms each (CPU time of the calling thread with
 * 1 thread, so that other processes on a shared machine do not count).
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

/* 1 thread: the calling thread's CPU time (the machine is shared: time spent
 * descheduled is not the kernel's); more threads: wall time */
static clockid_t clock_id = CLOCK_MONOTONIC;
static double now(void) {
  struct timespec ts;
  clock_gettime(clock_id, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

typedef struct {
  const char *name;
  int M, N, K, ta, tb, acc;
  int count; /* calls per training step (--seq); bias: 1 = bp_gemm_bias */
  int bias;
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

static float *bias;
static void run_bp(const Shape *s) {
  if (s->bias) bp_gemm_bias_f32(s->M, s->N, s->K, A, s->ta, B, s->tb, bias, C);
  else bp_gemm_f32(s->M, s->N, s->K, A, s->ta, B, s->tb, C, s->acc);
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

/* The sequence models' products, per config: {name, M, N, K, ta, tb, acc, calls
 * per step, bias}.  BT = B*T rows; L layers; H = B*NH heads per layer. */
#define LIN(BT, C, L, Vp)                                                             \
  {"qkv +b", BT, 3 * C, C, 0, 1, 0, L, 1}, {"attproj", BT, C, C, 0, 1, 0, L, 0},       \
  {"fc +b", BT, 4 * C, C, 0, 1, 0, L, 1}, {"fcproj", BT, C, 4 * C, 0, 1, 0, L, 0},     \
  {"lm head", BT, Vp, C, 0, 1, 0, 1, 0},                                              \
  {"d qkv in", BT, C, 3 * C, 0, 0, 0, L, 0}, {"d attproj in", BT, C, C, 0, 0, 0, L, 0}, \
  {"d fc in", BT, C, 4 * C, 0, 0, 0, L, 0}, {"d fcproj in", BT, 4 * C, C, 0, 0, 0, L, 0}, \
  {"d lm in", BT, C, Vp, 0, 0, 0, 1, 0},                                              \
  {"dW qkv", 3 * C, C, BT, 1, 0, 0, L, 0}, {"dW attproj", C, C, BT, 1, 0, 0, L, 0},   \
  {"dW fc", 4 * C, C, BT, 1, 0, 0, L, 0}, {"dW fcproj", C, 4 * C, BT, 1, 0, 0, L, 0}, \
  {"dW lm", Vp, C, BT, 1, 0, 0, 1, 0}
#define ATT(T, HS, LH)                                                                \
  {"att q.k^T", T, T, HS, 0, 1, 0, 2 * (LH), 0}, {"att a.v", T, HS, T, 0, 0, 0, 2 * (LH), 0}, \
  {"att a^T.dy", T, HS, T, 1, 0, 0, 2 * (LH), 0}
static const Shape seq_gpt2_small[] = {LIN(512, 128, 4, 96), ATT(64, 32, 4 * 8 * 4)};
static const Shape seq_gpt2_large[] = {LIN(1024, 384, 6, 96), ATT(256, 64, 6 * 4 * 6)};
/* transformer.spec: weights (in, out), so x . W (0,0), dX = dY . W^T (0,1) */
static const Shape seq_mm[] = {
    {"q/k/v +b", 512, 64, 64, 0, 0, 0, 12, 1}, {"proj", 512, 64, 64, 0, 0, 0, 4, 0},
    {"fc +b", 512, 256, 64, 0, 0, 0, 4, 1},    {"mproj", 512, 64, 256, 0, 0, 0, 4, 0},
    {"lm head", 512, 27, 64, 0, 0, 0, 1, 0},   {"d q/k/v/p in", 512, 64, 64, 0, 1, 0, 16, 0},
    {"d fc in", 512, 64, 256, 0, 1, 0, 4, 0},  {"d mproj in", 512, 256, 64, 0, 1, 0, 4, 0},
    {"d lm in", 512, 64, 27, 0, 1, 0, 1, 0},   {"dW q/k/v/p", 64, 64, 512, 1, 0, 0, 16, 0},
    {"dW fc", 64, 256, 512, 1, 0, 0, 4, 0},    {"dW mproj", 256, 64, 512, 1, 0, 0, 4, 0},
    {"dW lm", 64, 27, 512, 1, 0, 0, 1, 0},     ATT(16, 16, 4 * 32 * 4),
};
static const struct {
  const char *name;
  const Shape *s;
  int n;
} seq_cfgs[] = {
    {"gpt2 L4 C128 NH4 B8 T64", seq_gpt2_small, sizeof seq_gpt2_small / sizeof(Shape)},
    {"gpt2 L6 C384 NH6 B4 T256", seq_gpt2_large, sizeof seq_gpt2_large / sizeof(Shape)},
    {"transformer L4 C64 NH4 B32 T16", seq_mm, sizeof seq_mm / sizeof(Shape)},
};

static void seq_table(void) {
  printf("%-22s %5s %5s %5s %3s %8s %8s %6s %6s\n", "shape", "M", "N", "K", "t", "bp GF/s", "blas",
         "bp/blas", "calls");
  for (size_t c = 0; c < sizeof seq_cfgs / sizeof seq_cfgs[0]; c++) {
    printf("-- %s\n", seq_cfgs[c].name);
    double tb = 0, tl = 0, fl = 0;
    for (int i = 0; i < seq_cfgs[c].n; i++) {
      const Shape *s = &seq_cfgs[c].s[i];
      double t1 = time_it(run_bp, s), t2 = 0;
#ifdef HAVE_OPENBLAS
      t2 = time_it(run_blas, s);
#endif
      tb += s->count * t1, tl += s->count * t2, fl += s->count * flops(s);
      printf("%-22s %5d %5d %5d %d%d %8.1f %8.1f %6.2f %6d\n", s->name, s->M, s->N, s->K, s->ta,
             s->tb, flops(s) / t1 * 1e-9, t2 > 0 ? flops(s) / t2 * 1e-9 : 0, t2 > 0 ? t2 / t1 : 0,
             s->count);
    }
    printf("%-22s %23s %8.1f %8.1f %6.2f   (%.2f ms of GEMMs per step, blas %.2f ms, %.2f GFLOP)\n\n",
           "  step total", "", fl / tb * 1e-9, tl > 0 ? fl / tl * 1e-9 : 0, tl > 0 ? tl / tb : 0,
           tb * 1e3, tl * 1e3, fl * 1e-9);
    fprintf(stderr, "#seq %s %.1f %.1f\n", seq_cfgs[c].name, tb * 1e6, tl * 1e6);
  }
}

int main(int argc, char **argv) {
  int threads = 1, only = 0; /* 1: --seq, 2: --mlp */
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--threads") && i + 1 < argc)
      threads = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--quick"))
      min_time = 0.005, best_of = 3;
    else if (!strcmp(argv[i], "--seq"))
      only = 1;
    else if (!strcmp(argv[i], "--mlp"))
      only = 2;
    else {
      fprintf(stderr, "usage: %s [--threads N] [--quick] [--seq | --mlp]\n", argv[0]);
      return 2;
    }
  }
  bp_set_threads(threads);
  static unsigned char scratch[BP_WS_BYTES(4)]; /* this thread's (kernels.h "scratch") */
  bp_scratch_use(scratch);
  if (threads == 1) clock_id = CLOCK_THREAD_CPUTIME_ID;
  size_t maxel = (size_t)4096 * 4096;
  A = aligned_alloc(64, maxel * sizeof(float));
  B = aligned_alloc(64, maxel * sizeof(float));
  C = aligned_alloc(64, maxel * sizeof(float));
  bias = aligned_alloc(64, 4096 * sizeof(float));
  if (!A || !B || !C || !bias) {
    fprintf(stderr, "out of memory\n");
    return 1;
  }
  fill(A, maxel, 1);
  fill(B, maxel, 2);
  fill(C, maxel, 3);
  fill(bias, 4096, 4);
#ifdef HAVE_OPENBLAS
  openblas_set_num_threads(threads);
  printf("OpenBLAS core: %s, %d thread(s); OPENBLAS_CORETYPE=%s OPENBLAS_L2_SIZE=%s\n",
         openblas_get_corename(), threads, getenv("OPENBLAS_CORETYPE") ? getenv("OPENBLAS_CORETYPE") : "(unset)",
         getenv("OPENBLAS_L2_SIZE") ? getenv("OPENBLAS_L2_SIZE") : "(unset)");
#else
  printf("OpenBLAS: not built in (install libopenblas-dev)\n");
#endif
  printf("bp_gemm_f32: %d thread(s); timed by %s\n\n", bp_get_threads(),
         threads == 1 ? "the thread's CPU time" : "wall time");
  if (only == 1) {
    seq_table();
    goto done;
  }
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
  if (only == 0) {
    printf("\n");
    seq_table();
  }
done:
  free(A);
  free(B);
  free(C);
  free(bias);
  return 0;
}
