/* test_expand.c: expand_fused lowers cross_entropy, softmax, batchnorm and
 * layernorm into primitives, keeping the named tensors.  The expanded graph
 * must compute the same loss and (on the reference runtime) the same gradients
 * as the fused one, and its backward graph must hold no fused backward op. */
#include "tests.h"

#include <string.h>
#include "ref.h"

#include <math.h>
#include <stdlib.h>

static bool fused(OpKind op) {
  return op == OP_cross_entropy || op == OP_softmax || op == OP_batchnorm || op == OP_layernorm ||
         op == OP_xent_bwd || op == OP_softmax_bwd || op == OP_bn_bwd_x || op == OP_bn_bwd_gain ||
         op == OP_ln_bwd_x || op == OP_ln_bwd_gain;
}

static const char *const specs[] = {
  /* the lecture's fused spec */
  NULL,
  "dim B = 5\ndim D = 3\ndim K = 4\ninput Y : int[B]\ninput x : [B, D]\n"
  "param W : [D, K] ~ randn\nparam g : [K] ~ randn\nparam c : [K] ~ randn\n"
  "h = layernorm(x @ W, g, c, eps=1e-5)\np = softmax(h, axis=0)\n"
  "n = batchnorm(p, g, c, eps=1e-3, unbiased=false)\nloss = cross_entropy(n, Y)\n",
};

static Graph *load(int i) {
  if (specs[i])
    return parse_text(specs[i]);
  const char *path = arena_printf("%s/makemore.spec", specs_dir());
  DimOverride ovr[] = {{"B", 7, false}, {"H", 13, false}};
  return parse_spec(read_src(path), ovr, 2);
}

START_TEST(test_expand_structure) {
  Graph *g = load(_i);
  Graph *e = expand_fused(g);
  ck_assert_int_eq(e->nforward, e->nnodes);
  ck_assert_ptr_nonnull(e->loss);
  ck_assert_str_eq(e->loss->name, "loss");
  for (int i = 0; i < e->nnodes; i++)
    ck_assert_msg(!fused(e->nodes[i]->op), "%s left in the expanded graph", optab[e->nodes[i]->op].name);
  /* the same named tensors, same shapes and types */
  int named_g = 0, named_e = 0;
  for (int i = 0; i < g->nnodes; i++) {
    Node *n = g->nodes[i];
    if (!n->name)
      continue;
    named_g++;
    Node *m = graph_find(e, n->name);
    ck_assert_msg(m != NULL, "%s lost", n->name);
    ck_assert(shape_eq(&m->shape, &n->shape));
    ck_assert_int_eq(m->type, n->type);
    ck_assert_int_eq(m->op == OP_param, n->op == OP_param);
  }
  /* every other name is a piece the lecture names, and names are unique */
  for (int i = 0; i < e->nnodes; i++) {
    Node *m = e->nodes[i];
    if (!m->name)
      continue;
    named_e++;
    ck_assert_msg(graph_find(g, m->name) != NULL || m->op != OP_param, "%s: a new param", m->name);
    for (int j = 0; j < i; j++)
      ck_assert_msg(!e->nodes[j]->name || strcmp(e->nodes[j]->name, m->name) != 0, "%s twice", m->name);
  }
  ck_assert_int_ge(named_e, named_g);
  grad_build(e);
  for (int i = e->nforward; i < e->nnodes; i++)
    ck_assert_msg(!fused(e->nodes[i]->op), "%s in the expanded backward graph",
                  optab[e->nodes[i]->op].name);
}
END_TEST

/* fused and expanded: same loss and gradients on the reference runtime */
START_TEST(test_expand_same_function) {
  Graph *g = load(_i);
  Graph *e = expand_fused(g);
  Ref *rg = ref_new(g, DT_F64), *re = ref_new(e, DT_F64);
  ref_init_params(rg, 5);
  ref_init_params(re, 5);
  srand(3);
  for (int i = 0; i < g->nforward; i++) {
    Node *n = g->nodes[i], *m = e->nodes[i];   /* leaves keep their order */
    if (n->op != OP_input)
      continue;
    ck_assert_str_eq(n->name, m->name);
    long N = shape_numel(&n->shape);
    for (long k = 0; k < N; k++) {
      if (n->type == TY_INT)
        ref_idata(rg, n)[k] = ref_idata(re, m)[k] = rand() % 4;
      else
        ref_data(rg, n)[k] = ref_data(re, m)[k] = (double)rand() / RAND_MAX - 0.5;
    }
  }
  double lg = ref_forward(rg), le = ref_forward(re);
  ck_assert_msg(fabs(lg - le) <= 1e-12 * fabs(lg), "loss %.17g vs %.17g", lg, le);
  ref_backward(rg);
  ref_backward(re);
  for (int i = 0; i < g->nforward; i++) {
    Node *n = g->nodes[i];
    if (!n->name || n->type != TY_FLOAT)
      continue;
    Node *m = graph_find(e, n->name);
    double *a = ref_grad(rg, n), *b = ref_grad(re, m), md = 0, sc = 1e-6;
    for (long k = 0; k < shape_numel(&n->shape); k++) {
      md = fmax(md, fabs(a[k] - b[k]));
      sc = fmax(sc, fabs(a[k]));
    }
    ck_assert_msg(md <= 1e-9 * sc, "d%s: maxdiff %.3g", n->name, md);
  }
  ref_free(rg);
  ref_free(re);
}
END_TEST

/* --expand names the pieces as the lecture does; a name the spec took gets _2 */
static const struct {
  const char *spec, *names;
} lecture_names[] = {
  {"dim B = 8\ndim H = 4\ninput x : [B, H]\ninput Y : int[B]\nparam g : [1, H] ~ ones\n"
   "param b : [1, H] ~ zeros\nhpreact = batchnorm(x, g, b)\nloss = cross_entropy(hpreact, Y)\n",
   "bnmeani bndiff bndiff2 bnvar bnvar_inv bnraw hpreact logit_maxes norm_logits counts counts_sum "
   "counts_sum_inv probs logprobs loss"},
  {"dim B = 8\ndim H = 4\ninput x : [B, H]\ninput Y : int[B]\nparam g : [1, H] ~ ones\n"
   "param b : [1, H] ~ zeros\nparam lg : [H] ~ ones\nparam lb : [H] ~ zeros\nbndiff = x * 2\ny = layernorm(bndiff, lg, lb)\nloss = cross_entropy(y, Y)\n",
   "bndiff lnmeani lndiff lndiff2 lnvar lnvar_inv lnraw y logit_maxes norm_logits counts counts_sum "
   "counts_sum_inv probs logprobs loss"},
  {"dim B = 8\ndim H = 4\ninput x : [B, H]\ninput Y : int[B]\nparam g : [1, H] ~ ones\n"
   "param b : [1, H] ~ zeros\ncounts = batchnorm(x, g, b)\nloss = cross_entropy(counts, Y)\n",
   "bnmeani bndiff bndiff2 bnvar bnvar_inv bnraw counts logit_maxes norm_logits counts_2 counts_sum "
   "counts_sum_inv probs logprobs loss"},
};

START_TEST(test_expand_lecture_names) {
  Graph *e = expand_fused(parse_text(lecture_names[_i].spec));
  const char *got = "";
  for (int i = 0; i < e->nnodes; i++)
    if (e->nodes[i]->name && e->nodes[i]->op != OP_input && e->nodes[i]->op != OP_param)
      got = arena_printf("%s%s%s", got, *got ? " " : "", e->nodes[i]->name);
  ck_assert_str_eq(got, lecture_names[_i].names);
}
END_TEST

static Suite *make_suite(void) {
  Suite *s = suite_create("expand");
  TCase *tc = tcase_create("expand");
  int n = (int)(sizeof specs / sizeof specs[0]);
  tcase_add_loop_test(tc, test_expand_structure, 0, n);
  tcase_add_loop_test(tc, test_expand_same_function, 0, n);
  tcase_add_loop_test(tc, test_expand_lecture_names, 0,
                      (int)(sizeof lecture_names / sizeof lecture_names[0]));
  suite_add_tcase(s, tc);
  return s;
}

TESTS_REGISTER(make_suite)
