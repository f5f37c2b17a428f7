/* Exercise 3 of "Becoming a Backprop Ninja": dhprebn in one go, through the
 * whole batch norm layer.
 *
 *   bpgen ninja specs/makemore_granular.spec --mine exercises/ex3_dhprebn.c
 *
 * The spec writes batch norm step by step, so the forward values you need are
 * readable by name: bnraw[i][k] (x̂, B x H), bnvar_inv[0][k] (1/sqrt(var+eps),
 * 1 x H), bngain[0][k] (1 x H).  GIVEN(dhpreact) fills dhpreact with bpgen's own
 * gradient, so you start from the batch norm's output, as the lecture does.
 */
#include "ninja.h"

GRAD(dhpreact, B, H);
GRAD(dhprebn, B, H);

void backward(void) {
  GIVEN(dhpreact);   /* not judged: bpgen's values */
  /* TODO: for each column k, with n = B:
   *   dhprebn[i][k] = bngain[0][k] * bnvar_inv[0][k] / n
   *                   * (n * dhpreact[i][k] - sum_i dhpreact[i][k]
   *                      - n/(n-1) * bnraw[i][k] * sum_i (dhpreact[i][k] * bnraw[i][k]))
   * n/(n-1) is Bessel's correction: the spec's variance divides by B - 1.
   * Compute the two sums over the batch first (in a `real`, or a double for
   * fewer rounding errors), then the column. */
}
