/* test_plan.c: the schedule as data (plan.c), before any C is printed.
 *
 * The lecture's step fuses three patterns (gemm+bias, batchnorm+tanh, the
 * batchnorm backward group); a wide layer becomes one call each way; a spec
 * whose intermediates are named or read twice keeps them node by node.
 */
#include "tests.h"

#include <stdlib.h>
#include <string.h>

static const char *plan_of(const char *path, long B, long H) {
  DimOverride ovr[2] = {{"B", B, false}, {"H", H, false}};
  Graph *g = parse_spec(read_src(path), ovr, B ? 2 : 0);
  grad_build(g);
  return plan_text(g);
}

static const char *lecture(void) { return arena_printf("%s/makemore.spec", specs_dir()); }

START_TEST(lecture_schedule) {
  ck_assert_str_eq(plan_of(lecture(), 0, 0),
                   "train: X Y C W1 b1 W2 b2 bngain bnbias emb embcat {GEMM_BIAS hprebn t11} {BN_TANH hpreact h} "
                   "{GEMM_BIAS logits t15} loss\n"
                   "eval: X Y C W1 b1 W2 b2 bngain bnbias emb embcat {GEMM_BIAS hprebn t11} {BN_TANH hpreact h} "
                   "{GEMM_BIAS logits t15} loss\n"
                   "backward: dloss dlogits db2 dh dW2 {BN_BWD dhpreact dhprebn dbngain dbnbias db1} dembcat dW1 "
                   "demb dC\n");
}
END_TEST

/* batch x width of 65,536 or more: the layer call in training, node by node in
 * inference (the eval forward has no batch statistics to fuse) */
START_TEST(wide_layer_schedule) {
  ck_assert_str_eq(plan_of(lecture(), 256, 1024),
                   "train: X Y C W1 b1 W2 b2 bngain bnbias emb embcat {LAYER_FWD logits hprebn..logits} loss\n"
                   "eval: X Y C W1 b1 W2 b2 bngain bnbias emb embcat {GEMM_BIAS hprebn t11} {BN_TANH hpreact h} "
                   "{GEMM_BIAS logits t15} loss\n"
                   "backward: dloss dlogits db2 {LAYER_BWD dh hprebn..logits} demb dC\n");
  /* just below the threshold (256 x 255 < 65,536): no layer */
  ck_assert_ptr_null(strstr(plan_of(lecture(), 256, 255), "LAYER"));
}
END_TEST

/* the granular spec names every step: nothing fuses but what is unnamed */
START_TEST(granular_schedule) {
  const char *p = plan_of(arena_printf("%s/makemore_granular.spec", specs_dir()), 0, 0);
  ck_assert_msg(strstr(p, "{GEMM_BIAS hprebn t11}") != NULL, "%s", p);
  ck_assert_msg(strstr(p, "BN_TANH") == NULL && strstr(p, "BN_BWD") == NULL && strstr(p, "LAYER") == NULL, "%s", p);
}
END_TEST

/* a linear map of a batch of sequences, [B,T,C]·[C,N] + b: the rows fold into one
 * gemm_bias (q, k, v, the attention's projection and both maps of the MLP: 24 in
 * the transformer's forward, whose residual adds are x + (y @ W + b), as PyTorch's
 * x + proj(y)) */
START_TEST(sequence_gemm_bias) {
  const char *p = plan_of(arena_printf("%s/transformer.spec", specs_dir()), 0, 0);
  int n = 0;
  const char *train_end = strstr(p, "\neval:");
  for (const char *q = strstr(p, "{GEMM_BIAS "); q && q < train_end; q = strstr(q + 1, "{GEMM_BIAS "))
    n++;
  ck_assert_msg(n == 24, "%d GEMM_BIAS steps", n);
}
END_TEST

/* attention's heads (plan_heads): the unnamed slices a swap reads through are
 * not made (the swap reads its columns of p in place), and the backward's
 * joins of dp are one step writing each part into its columns, the heads'
 * gradients by their swaps, the other parts copied, in column order
 * (tests/fixtures/heads.spec: a at columns 0:6, e 6:8, b 8:14, c 14:20) */
START_TEST(heads_in_place) {
  const char *d = getenv("BPGEN_FIXTURES");
  const char *p = plan_of(arena_printf("%s/heads.spec", d ? d : "tests/fixtures"), 0, 0);
  ck_assert_msg(strstr(p, "{SWAP_SLICE a t") && strstr(p, "{SWAP_SLICE b t"), "%s", p);
  ck_assert_msg(strstr(p, "{CAT_PARTS dp da^T de db^T dc}"), "%s", p);
  /* e and c are named: their slices are made */
  ck_assert_msg(strstr(p, " e ") && strstr(p, " c "), "%s", p);
}
END_TEST

/* attention's scores made in the softmax's memory (plan_attention): an
 * unscaled product read by its causal softmax only, and the backward's datt
 * whether the product is named or not; a named product stays a tensor of its
 * own, its softmax the plain scaled kernel (tests/fixtures/scores.spec) */
START_TEST(scores_in_softmax) {
  const char *d = getenv("BPGEN_FIXTURES");
  const char *p = plan_of(arena_printf("%s/scores.spec", d ? d : "tests/fixtures"), 0, 0);
  ck_assert_msg(strstr(p, "{SCORES s1 t"), "%s", p);   /* no scaling between: no aux */
  ck_assert_msg(strstr(p, " sc ") && strstr(p, "{CAUSAL_SOFTMAX s2 "), "%s", p);   /* sc named: made */
  ck_assert_msg(strstr(p, "{SCORES_BWD dsc t") && strstr(p, " ds2}") && strstr(p, " ds1}"), "%s", p);
}
END_TEST

static Suite *make_suite(void) {
  Suite *s = suite_create("plan");
  TCase *tc = tcase_create("plan");
  tcase_add_test(tc, lecture_schedule);
  tcase_add_test(tc, wide_layer_schedule);
  tcase_add_test(tc, granular_schedule);
  tcase_add_test(tc, sequence_gemm_bias);
  tcase_add_test(tc, heads_in_place);
  tcase_add_test(tc, scores_in_softmax);
  suite_add_tcase(s, tc);
  return s;
}

TESTS_REGISTER(make_suite)
