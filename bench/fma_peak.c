/* bench/fma_peak.c: one core's float FMA peak, from twelve independent chains
 * of 512-bit (or 256-bit) fused multiply-adds kept in registers: the ceiling
 * no matmul can pass, beside OpenBLAS's measured roofline.  Not a test.
 *   gcc -O2 -march=native bench/fma_peak.c -o build/fma_peak && build/fma_peak */
#include <immintrin.h>
#include <stdio.h>
#include <time.h>

#if defined(__AVX512F__)
#define V __m512
#define SET1 _mm512_set1_ps
#define FMA _mm512_fmadd_ps
#define LANES 16
static float sum(V v) { return _mm512_reduce_add_ps(v); }
#else
#define V __m256
#define SET1 _mm256_set1_ps
#define FMA _mm256_fmadd_ps
#define LANES 8
static float sum(V v) {
  float f[8], s = 0;
  _mm256_storeu_ps(f, v);
  for (int i = 0; i < 8; i++)
    s += f[i];
  return s;
}
#endif

int main(void) {
  V a0 = SET1(0.0f), a1 = SET1(0.1f), a2 = SET1(0.2f), a3 = SET1(0.3f), a4 = SET1(0.4f), a5 = SET1(0.5f);
  V a6 = SET1(0.6f), a7 = SET1(0.7f), a8 = SET1(0.8f), a9 = SET1(0.9f), a10 = SET1(1.0f), a11 = SET1(1.1f);
  V b = SET1(0.9999f), c = SET1(1e-5f);
  const long n = 200000000;
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  for (long k = 0; k < n; k++) {
    a0 = FMA(a0, b, c), a1 = FMA(a1, b, c), a2 = FMA(a2, b, c), a3 = FMA(a3, b, c);
    a4 = FMA(a4, b, c), a5 = FMA(a5, b, c), a6 = FMA(a6, b, c), a7 = FMA(a7, b, c);
    a8 = FMA(a8, b, c), a9 = FMA(a9, b, c), a10 = FMA(a10, b, c), a11 = FMA(a11, b, c);
  }
  clock_gettime(CLOCK_MONOTONIC, &t1);
  double s = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
  float r = sum(a0) + sum(a1) + sum(a2) + sum(a3) + sum(a4) + sum(a5) + sum(a6) + sum(a7) + sum(a8) + sum(a9) +
            sum(a10) + sum(a11);
  printf("float FMA peak, one core, %d lanes: %.1f GFLOP/s  (checksum %g)\n", LANES,
         (double)n * 12 * LANES * 2 / s / 1e9, r);
  return 0;
}
