/* compare.c: how bpgen compares two float results (bpgen check, bpgen ninja).
 *
 * The lecture's cmp() prints exact (bitwise equal) and approximate
 * (torch.allclose: |a - b| <= atol + rtol*|b| with rtol 1e-5, atol 1e-8); bpgen
 * adds the distance in units in the last place, counted in the run's float
 * type, which says how many representable numbers lie between two results.
 */
#include "bpgen.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

bool allclose_elem(double a, double b) { return fabs(a - b) <= 1e-8 + 1e-5 * fabs(b); }

/* Floats ordered as integers: the bit patterns of negative numbers are
 * reflected so that consecutive floats are consecutive integers. */
double ulp_distance(DType dt, double a, double b) {
  if (a == b)
    return 0;
  if (isnan(a) || isnan(b))
    return INFINITY;
  if (dt == DT_F32) {
    float fa = (float)a, fb = (float)b;
    int32_t ia, ib;
    memcpy(&ia, &fa, 4);
    memcpy(&ib, &fb, 4);
    int64_t la = ia < 0 ? (int64_t)INT32_MIN - ia : ia, lb = ib < 0 ? (int64_t)INT32_MIN - ib : ib;
    return (double)llabs(la - lb);
  }
  int64_t ia, ib;
  memcpy(&ia, &a, 8);
  memcpy(&ib, &b, 8);
  long double la = ia < 0 ? (long double)INT64_MIN - ia : ia, lb = ib < 0 ? (long double)INT64_MIN - ib : ib;
  return (double)fabsl(la - lb);
}
