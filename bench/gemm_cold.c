/* bench/gemm_cold.c: bp_gemm_f32 on operands that are, or are not, in the
 * caches -- what a product costs inside a training step, where each one reads
 * activations another pass wrote a while ago, against `build/bench/gemm`'s
 * figure on one hot set.  Not a test.
 *   gcc -O2 -march=native -D_GNU_SOURCE -Iruntime -o gemm_cold bench/gemm_cold.c runtime/kernels.c -lpthread -lm
 *   ./gemm_cold M N K TRANSA TRANSB SETS [HOT]
 * SETS sets of A, B and C, each product on the next set in turn (SETS 1: all
 * in L2 after the first; 64 of 512x512x128: ~100 MB, past the L3); HOT, any
 * of the letters a, b, c: those operands stay those of the first set (hot)
 * while the others rotate -- what each cold operand costs on its own.  Prints
 * the best of 5 rounds' mean time per product, by this thread's CPU time. */
#include "kernels.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

int main(int argc, char **argv) {
  if (argc != 7 && argc != 8) {
    fprintf(stderr, "usage: %s M N K TRANSA TRANSB SETS [HOT: a, b, c or a combination]\n", argv[0]);
    return 2;
  }
  int M = atoi(argv[1]), N = atoi(argv[2]), K = atoi(argv[3]), ta = atoi(argv[4]), tb = atoi(argv[5]);
  int sets = atoi(argv[6]);
  const char *hot = argc == 8 ? argv[7] : "";
  int hot_a = strchr(hot, 'a') != NULL, hot_b = strchr(hot, 'b') != NULL, hot_c = strchr(hot, 'c') != NULL;
  if (strspn(hot, "abc") != strlen(hot)) {
    fprintf(stderr, "gemm_cold: HOT is made of the letters a, b, c\n");
    return 2;
  }
  if (M < 1 || N < 1 || K < 1 || sets < 1) {
    fprintf(stderr, "gemm_cold: sizes and SETS must be positive\n");
    return 2;
  }
  static unsigned char scratch[BP_WS_BYTES(4)];
  bp_scratch_use(scratch);
  float **A = malloc(sizeof *A * sets), **B = malloc(sizeof *B * sets), **C = malloc(sizeof *C * sets);
  for (int s = 0; s < sets; s++) {
    A[s] = aligned_alloc(64, ((size_t)M * K * 4 + 63) / 64 * 64);
    B[s] = aligned_alloc(64, ((size_t)N * K * 4 + 63) / 64 * 64);
    C[s] = aligned_alloc(64, ((size_t)M * N * 4 + 63) / 64 * 64);
    if (!A[s] || !B[s] || !C[s]) {
      fprintf(stderr, "gemm_cold: out of memory\n");
      return 1;
    }
    for (long i = 0; i < (long)M * K; i++) A[s][i] = (float)(i % 7) * 0.1f;
    for (long i = 0; i < (long)N * K; i++) B[s][i] = (float)(i % 5) * 0.1f;
    for (long i = 0; i < (long)M * N; i++) C[s][i] = 0;
  }
  double best = 1e30;
  for (int r = 0; r < 5; r++) {
    double t = now();
    for (int s = 0; s < sets; s++)
      bp_gemm_f32(M, N, K, A[hot_a ? 0 : s], ta, B[hot_b ? 0 : s], tb, C[hot_c ? 0 : s], 0);
    double dt = (now() - t) / sets;
    best = dt < best ? dt : best;
  }
  printf("M %d N %d K %d transa %d transb %d, %d sets (%.1f MB)%s%s: %.3f ms, %.1f GFLOP/s\n", M, N, K, ta, tb, sets,
         (double)sets * ((double)M * K + (double)N * K + (double)M * N) * 4 / 1e6, *hot ? ", hot " : "", hot,
         best * 1e3, 2.0 * M * N * K / best / 1e9);
  return 0;
}
