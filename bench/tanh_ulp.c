/* bench/tanh_ulp.c: the vector tanh of runtime/kernels.h (bp_tanh16_, AVX-512)
 * against libm's tanh in double, over every positive float up to 100: the
 * largest error in ulp, per range of |x|, and the largest relative error
 * (the kernel is odd in x, so the positive half covers the negative).  Not a
 * test: an accuracy figure.
 *   gcc -O2 -march=native -Iruntime bench/tanh_ulp.c -o build/tanh_ulp -lm && build/tanh_ulp */
#include "kernels.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#if defined(__AVX512F__)
static int ulps(float a, float b) {
  int ia, ib;
  memcpy(&ia, &a, 4);
  memcpy(&ib, &b, 4);
  return ia > ib ? ia - ib : ib - ia;   /* both >= 0 here */
}

int main(void) {
  static const float lim[] = {0.5f, 1, 2, 4, 8, 100};
  int worst[6] = {0};
  double rel = 0;
  for (float v = 1e-30f; v <= 100; v = nextafterf(v, 200)) {
    double ref = tanh((double)v);
    float got = _mm512_cvtss_f32(bp_tanh16_(_mm512_set1_ps(v)));
    int u = ulps(got, (float)ref);
    double r = fabs(got - ref) / ref;
    rel = r > rel ? r : rel;
    for (int k = 0; k < 6; k++)
      if (v < lim[k] && u > worst[k])
        worst[k] = u;
  }
  for (int k = 0; k < 6; k++)
    printf("|x| < %g: at most %d ulp\n", lim[k], worst[k]);
  printf("largest relative error: %.3g\n", rel);
  return 0;
}
#else
int main(void) {
  puts("tanh_ulp: needs AVX-512 (-march=native on such a machine)");
  return 0;
}
#endif
