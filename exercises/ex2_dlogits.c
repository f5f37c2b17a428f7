/* Exercise 2 of "Becoming a Backprop Ninja": dlogits in one go.
 *
 *   bpgen ninja specs/makemore.spec --header > exercises/ninja.h   # for your editor
 *   bpgen ninja specs/makemore.spec --mine exercises/ex2_dlogits.c
 *
 * The forward pass ends with  loss = cross_entropy(logits, Y)  (the mean over
 * the batch of -log softmax(logits)[i][Y[i]]).  Fill dlogits = d loss / d logits
 * without going through probs, counts, ... one step at a time.
 * Readable: logits[i][j] (B x V), Y[i], and every other forward tensor; the
 * dims are the constants B, V, ... of ninja.h.  `real` is float (double with
 * --dtype f64).
 */
#include "ninja.h"

GRAD(dlogits, B, V);   /* the shape you state is checked before any value */

void backward(void) {
  /* TODO: dlogits = (softmax(logits) - onehot(Y)) / B, row by row:
   *   1. the row's max m (subtract it before expf, as the forward pass does:
   *      softmax does not change, exp does not overflow)
   *   2. sum = sum_j expf(logits[i][j] - m)
   *   3. dlogits[i][j] = expf(logits[i][j] - m) / sum / B
   *   4. then subtract 1/B at the correct class: dlogits[i][Y[i]] -= 1.0f / B
   * The lecture: "dlogits = F.softmax(logits, 1); dlogits[range(n), Yb] -= 1; dlogits /= n".
   * Each row of dlogits sums to 0: the push down on wrong classes equals the pull up. */
}
