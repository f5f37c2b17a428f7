/* Exercise 1 of "Becoming a Backprop Ninja": backprop through every
 * intermediate of the makemore MLP, one line of the forward pass at a time.
 *
 *   bpgen ninja specs/makemore_granular.spec --header > exercises/ninja.h   # for your editor
 *   bpgen ninja specs/makemore_granular.spec --mine exercises/ex1_backward.c
 *
 * Fill the gradients in this order (the order of the backward pass).  bpgen
 * judges each one you filled, as the lecture's cmp() does, and marks the first
 * wrong one: fix that first, the later ones depend on it.  A gradient you have
 * not written yet is listed as "not filled".  Each GRAD(...) states the shape;
 * a wrong shape (a sum that lost its keepdim) is reported as such.
 * Gradients start as NaN: write every element, or ZERO(dname) first when you
 * accumulate with +=.  GIVEN(dname) fills one with bpgen's values (not judged)
 * if you want to skip ahead.
 */
#include "ninja.h"

GRAD(dlogprobs, B, V);
GRAD(dprobs, B, V);
GRAD(dcounts_sum_inv, B, 1);
GRAD(dcounts_sum, B, 1);
GRAD(dcounts, B, V);
GRAD(dnorm_logits, B, V);
GRAD(dlogit_maxes, B, 1);
GRAD(dlogits, B, V);
GRAD(dh, B, H);
GRAD(dW2, H, V);
GRAD(db2, V);
GRAD(dhpreact, B, H);
GRAD(dbngain, 1, H);
GRAD(dbnraw, B, H);
GRAD(dbnbias, 1, H);
GRAD(dbndiff, B, H);
GRAD(dbnvar_inv, 1, H);
GRAD(dbnvar, 1, H);
GRAD(dbndiff2, B, H);
GRAD(dhprebn, B, H);
GRAD(dbnmeani, 1, H);
GRAD(dembcat, B, T * E);
GRAD(dW1, T * E, H);
GRAD(db1, H);
GRAD(demb, B, T, E);
GRAD(dC, V, E);

void backward(void) {
  /* TODO dlogprobs: loss = -mean(logprobs[i][Y[i]]): only the picked entries matter, each -1/B; the rest 0 (ZERO first) */

  /* TODO dprobs: logprobs = log(probs): d/dx log x = 1/x, so dprobs = dlogprobs / probs */

  /* TODO dcounts_sum_inv: probs = counts * counts_sum_inv (broadcast over j): sum over j of counts * dprobs; shape [B, 1] */

  /* TODO dcounts_sum: counts_sum_inv = counts_sum^-1: -counts_sum^-2 * dcounts_sum_inv */

  /* TODO dcounts: counts is used twice (probs and counts_sum): counts_sum_inv * dprobs, PLUS dcounts_sum broadcast over j */

  /* TODO dnorm_logits: counts = exp(norm_logits): d exp = exp, and exp(norm_logits) is counts */

  /* TODO dlogit_maxes: norm_logits = logits - logit_maxes: minus the sum over j of dnorm_logits (it is ~0: the max does not change the loss) */

  /* TODO dlogits: two paths: dnorm_logits, plus dlogit_maxes at the first arg-max of each row */

  /* TODO dh: logits = h @ W2 + b2: dh = dlogits @ W2^T */

  /* TODO dW2: dW2 = h^T @ dlogits */

  /* TODO db2: db2 = sum over the batch of dlogits */

  /* TODO dhpreact: h = tanh(hpreact): (1 - h*h) * dh */

  /* TODO dbngain: hpreact = bngain * bnraw + bnbias: sum over the batch of bnraw * dhpreact; shape [1, H] */

  /* TODO dbnraw: bngain * dhpreact */

  /* TODO dbnbias: sum over the batch of dhpreact; shape [1, H] */

  /* TODO dbndiff: bndiff is used twice: bnvar_inv * dbnraw now, and 2 * bndiff * dbndiff2 from the variance */

  /* TODO dbnvar_inv: bnraw = bndiff * bnvar_inv: sum over the batch of bndiff * dbnraw; shape [1, H] (keepdim!) */

  /* TODO dbnvar: bnvar_inv = (bnvar + 1e-5)^-0.5: -0.5 * (bnvar + 1e-5)^-1.5 * dbnvar_inv */

  /* TODO dbndiff2: bnvar = sum(bndiff2, 0) / (B - 1): 1/(B-1) * dbnvar broadcast over the batch (Bessel: B - 1, not B) */

  /* TODO dhprebn: hprebn is used twice: dbndiff, plus dbnmeani / B broadcast over the batch */

  /* TODO dbnmeani: bndiff = hprebn - bnmeani: minus the sum over the batch of dbndiff; shape [1, H], a sum that KEEPS its axis */

  /* TODO dembcat: hprebn = embcat @ W1 + b1: dhprebn @ W1^T */

  /* TODO dW1: embcat^T @ dhprebn */

  /* TODO db1: sum over the batch of dhprebn (it comes out ~0: batch norm removes the mean) */

  /* TODO demb: embcat = emb viewed as [B, T*E]: the same numbers, demb[i][t][e] = dembcat[i][t*E + e] */

  /* TODO dC: emb = C[X]: ZERO(dC), then for every (i, t): dC[X[i][t]][e] += demb[i][t][e] (rows picked twice add up) */
}
