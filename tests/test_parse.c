/* test_parse.c: what the parser builds: op sequences, attributes, constant
 * folding, dims and -D overrides, initialisers, and the two lecture specs. */
#include "tests.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const char header[] =
    "dim N = 4\n"
    "dim K = 5\n"
    "dim D = 3\n"
    "input x : [N, K]\n"
    "input y : int[N]\n"
    "input i : int[N, 2]\n"
    "param w : [K, K] ~ randn\n"
    "param C : [K, D] ~ randn * 0.1\n"
    "param g : [K] ~ ones\n"
    "param b : [1, K] ~ zeros\n";

/* Parses header + body + "loss = sum(z)" */
static Graph *parse_body(const char *body) {
  return parse_text(arena_printf("%s%s\nloss = sum(z)\n", header, body));
}

/* The ops of body's nodes in order, leaves (input, param) left out, as
 * "matmul relu"; the trailing loss = sum(z) is left out too. */
static const char *ops_of(Graph *g) {
  char *s = "";
  for (int k = 0; k < g->nnodes - 1; k++) {
    Node *n = g->nodes[k];
    if (n->op == OP_input || n->op == OP_param)
      continue;
    s = arena_printf("%s%s%s", s, *s ? " " : "", optab[n->op].name);
  }
  return s;
}

static const struct { const char *body, *ops; } op_cases[] = {
    {"z = relu(x @ w)", "matmul relu"},
    {"z = relu(matmul(x, w))", "matmul relu"},
    {"z = x @ w + g", "matmul add"},
    {"z = x - g * b", "mul sub"},
    {"z = (x - g) * b", "sub mul"},
    {"z = x / g / b", "div div"},
    {"z = -x ^ 2", "pow neg"},
    {"z = -(x) - -x", "neg neg sub"},
    {"z = x + 1 * 2", "const add"},
    {"z = x * (1/(N-1))", "const mul"},
    {"z = x * exp(0) + 2 ^ 3", "const mul const add"},
    {"z = x * -N", "const mul"},
    {"z = C[y]", "gather"},
    {"z = C[i]", "gather"},
    {"z = exp(x) + log(x) + tanh(x)", "exp log add tanh add"},
    {"z = relu(x) * sigmoid(x) * sqrt(x)", "relu sigmoid mul sqrt mul"},
    {"z = sum(x) + mean(x, 0) + max(x, axis=1)", "sum mean add max add"},
    {"z = pick(softmax(x), y)", "softmax pick"},
    {"z = cross_entropy(x, y)", "cross_entropy"},
    {"z = batchnorm(x, g, b)", "batchnorm"},
    {"z = layernorm(x, g, g, eps=1e-3)", "layernorm"},
    {"z = reshape(x, [K, N])", "reshape"},
    {"z = (\n  x +\n  g\n)", "add"},
    {"z = sum(x,\n 0)", "sum"},
    {"z = x + 1\n# a comment line\n\n", "const add"},
};

START_TEST(test_ops) {
  Graph *g = parse_body(op_cases[_i].body);
  ck_assert_msg(strcmp(ops_of(g), op_cases[_i].ops) == 0, "%s: got '%s', want '%s'",
                op_cases[_i].body, ops_of(g), op_cases[_i].ops);
  ck_assert_int_eq(g->nforward, g->nnodes);
  ck_assert_ptr_eq(g->loss, g->nodes[g->nnodes - 1]);
  ck_assert_str_eq(graph_find(g, "z")->name, "z");
}
END_TEST

/* attributes and shapes of z */
static const struct {
  const char *body, *shape;
  double num;   /* NAN: not checked */
  int axis;     /* -2: not checked */
  int unbiased; /* -1: not checked */
} attr_cases[] = {
    {"z = x ^ -0.5", "[4, 5]", -0.5, -2, -1},
    {"z = x ^ 2 ^ 3", "[4, 5]", 8, -2, -1},
    {"z = x ^ (1/2)", "[4, 5]", 0.5, -2, -1},
    {"z = x ^ -N", "[4, 5]", -4, -2, -1},
    {"z = sum(x)", "[]", NAN, -1, -1},
    {"z = sum(x, 0)", "[1, 5]", NAN, 0, -1},
    {"z = mean(x, axis=1)", "[4, 1]", NAN, 1, -1},
    {"z = max(x, -1)", "[4, 1]", NAN, 1, -1},
    {"z = max(x, -2)", "[1, 5]", NAN, 0, -1},
    {"z = softmax(x)", "[4, 5]", NAN, 1, -1},
    {"z = softmax(x, 0)", "[4, 5]", NAN, 0, -1},
    {"z = softmax(x, axis=-2)", "[4, 5]", NAN, 0, -1},
    {"z = batchnorm(x, g, b)", "[4, 5]", 1e-5, -2, 1},
    {"z = batchnorm(x, g, b, eps=0.1, unbiased=false)", "[4, 5]", 0.1, -2, 0},
    {"z = batchnorm(x, g, b, unbiased=true, eps=2e-5)", "[4, 5]", 2e-5, -2, 1},
    {"z = layernorm(x, g, g)", "[4, 5]", 1e-5, -2, 0},
    {"z = layernorm(x, g, g, eps=1/N)", "[4, 5]", 0.25, -2, 0},
    {"z = reshape(x, [K*N])", "[20]", NAN, -2, -1},
    {"z = reshape(x, [2, -1])", "[2, 10]", NAN, -2, -1},
    {"z = reshape(x, [-1, 2, 1])", "[10, 2, 1]", NAN, -2, -1},
    {"z = C[i]", "[4, 2, 3]", NAN, -2, -1},
    {"z = C[i] @ reshape(C[y], [D, N]) ^ 1", "[4, 2, 4]", NAN, -2, -1},
};

START_TEST(test_attrs) {
  Graph *g = parse_body(attr_cases[_i].body);
  Node *z = graph_find(g, "z");
  ck_assert_msg(z, "%s: no z", attr_cases[_i].body);
  ck_assert_str_eq(shape_str(&z->shape), attr_cases[_i].shape);
  if (!isnan(attr_cases[_i].num))
    ck_assert_msg(fabs(z->num - attr_cases[_i].num) < 1e-15, "%s: num %g, want %g",
                  attr_cases[_i].body, z->num, attr_cases[_i].num);
  if (attr_cases[_i].axis != -2)
    ck_assert_int_eq(z->axis, attr_cases[_i].axis);
  if (attr_cases[_i].unbiased >= 0)
    ck_assert_int_eq(z->unbiased, attr_cases[_i].unbiased);
  ck_assert_int_eq(z->type, TY_FLOAT);
}
END_TEST

/* constants fold: one OP_const node with the folded value */
static const struct { const char *body; double value; } fold_cases[] = {
    {"z = x * (1/(N-1))", 1.0 / 3},
    {"z = x * (2 + 3 * 4)", 14},
    {"z = x * -(2 - 5)", 3},
    {"z = x + (K - N) ^ -1", 1},
    {"z = x + 2 ^ 0.5", 1.4142135623730951},
    {"z = x + (sqrt(4) * exp(0) - relu(-3) + sigmoid(0))", 2.5},
    {"z = x + (tanh(0) + log(1))", 0},
    {"z = x * 1e-5", 1e-5},
};

START_TEST(test_fold) {
  Graph *g = parse_body(fold_cases[_i].body);
  int nconst = 0;
  double v = 0;
  for (int k = 0; k < g->nnodes; k++)
    if (g->nodes[k]->op == OP_const) {
      nconst++;
      v = g->nodes[k]->num;
      ck_assert_int_eq(g->nodes[k]->shape.rank, 0);
    }
  ck_assert_int_eq(nconst, 1);
  ck_assert_msg(fabs(v - fold_cases[_i].value) < 1e-15, "%s: %.17g, want %.17g",
                fold_cases[_i].body, v, fold_cases[_i].value);
}
END_TEST

START_TEST(test_decls) {
  Graph *g = parse_text("dim A = 6\ndim B2 = A / 2 * (A - 1) + 1\ninput p : [A]\ninput q : int[B2, 1]\n"
                        "param s : [] ~ 2\nloss = sum(p * s)\n");
  ck_assert_int_eq(g->ndims, 2);
  ck_assert_str_eq(g->dims[1].name, "B2");
  ck_assert_int_eq(g->dims[1].value, 16);
  ck_assert_int_eq(g->dims[1].tok->line, 2);
  Node *p = graph_find(g, "p"), *q = graph_find(g, "q"), *s = graph_find(g, "s");
  ck_assert_int_eq(p->op, OP_input);
  ck_assert_int_eq(p->type, TY_FLOAT);
  ck_assert_int_eq(q->type, TY_INT);
  ck_assert_str_eq(shape_str(&q->shape), "[16, 1]");
  ck_assert_int_eq(s->op, OP_param);
  ck_assert_int_eq(s->shape.rank, 0);
  ck_assert_int_eq(s->init->kind, INIT_NUM);
  ck_assert(s->init->num == 2);
  ck_assert_int_eq(p->tok->line, 3);
  ck_assert_int_eq(p->tok->col, 7);
}
END_TEST

static Graph *parse_spec_file(const char *name, DimOverride *ovr, int novr) {
  static jmp_buf jb;
  if (setjmp(jb)) {
    error_catch(NULL);
    ck_abort_msg("%s: %s", name, error_text());
  }
  error_catch(&jb);
  Graph *g = parse_spec(read_src(arena_printf("%s/%s", specs_dir(), name)), ovr, novr);
  error_catch(NULL);
  return g;
}

static void check_shapes(Graph *g, const char *const *pairs) {
  for (; *pairs; pairs += 2) {
    Node *n = graph_find(g, pairs[0]);
    ck_assert_msg(n, "no node %s", pairs[0]);
    ck_assert_msg(strcmp(shape_str(&n->shape), pairs[1]) == 0, "%s: %s, want %s", pairs[0],
                  shape_str(&n->shape), pairs[1]);
  }
}

START_TEST(test_makemore) {
  Graph *g = parse_spec_file("makemore.spec", NULL, 0);
  static const char *const shapes[] = {
      "X", "[32, 3]", "Y", "[32]", "C", "[27, 10]", "W1", "[30, 64]", "b1", "[64]",
      "bngain", "[1, 64]", "emb", "[32, 3, 10]", "embcat", "[32, 30]", "hprebn", "[32, 64]",
      "hpreact", "[32, 64]", "h", "[32, 64]", "logits", "[32, 27]", "loss", "[]", NULL};
  check_shapes(g, shapes);
  ck_assert_str_eq(ops_of(g), "gather reshape matmul add batchnorm tanh matmul add");
  ck_assert_str_eq(g->loss->name, "loss");
  ck_assert_int_eq(g->loss->op, OP_cross_entropy);
  ck_assert_int_eq(g->ndims, 5);
  Node *bn = graph_find(g, "hpreact");
  ck_assert(bn->num == 1e-5 && bn->unbiased);
  /* W1 ~ randn * (5/3) / sqrt(T*E) */
  InitExpr *e = graph_find(g, "W1")->init;
  ck_assert_int_eq(e->kind, INIT_DIV);
  ck_assert_int_eq(e->a->kind, INIT_MUL);
  ck_assert_int_eq(e->a->a->kind, INIT_RANDN);
  ck_assert(fabs(e->a->b->num - 5.0 / 3) < 1e-15 && fabs(e->b->num - sqrt(30.0)) < 1e-15);
  e = graph_find(g, "bngain")->init;
  ck_assert(e->kind == INIT_ADD && e->a->kind == INIT_MUL && e->b->num == 1);
  ck_assert_int_eq(graph_find(g, "C")->init->kind, INIT_RANDN);
  ck_assert_int_eq(graph_find(g, "hprebn")->tok->line, 21);
  ck_assert(tok_is(graph_find(g, "hprebn")->tok, "+"));
  ck_assert(tok_is(graph_find(g, "h")->tok, "tanh"));
  /* PyTorch's Linear: uniform in ±1/sqrt(fan_in) */
  g = parse_text("dim N = 4\nparam w : [N] ~ uniform / sqrt(N)\nloss = sum(w)\n");
  e = graph_find(g, "w")->init;
  ck_assert(e->kind == INIT_DIV && e->a->kind == INIT_UNIFORM && e->b->num == 2);
}
END_TEST

START_TEST(test_makemore_override) {
  DimOverride ovr[] = {{"B", 7, false}, {"H", 13, false}};
  Graph *g = parse_spec_file("makemore.spec", ovr, 2);
  ck_assert(ovr[0].used && ovr[1].used);
  static const char *const shapes[] = {"X", "[7, 3]", "W1", "[30, 13]", "bngain", "[1, 13]",
                                       "embcat", "[7, 30]", "hprebn", "[7, 13]",
                                       "logits", "[7, 27]", NULL};
  check_shapes(g, shapes);
  ck_assert_int_eq(g->dims[0].value, 7);
}
END_TEST

START_TEST(test_granular) {
  Graph *g = parse_spec_file("makemore_granular.spec", NULL, 0);
  static const char *const shapes[] = {
      "emb", "[32, 3, 10]", "embcat", "[32, 30]", "hprebn", "[32, 64]", "bnmeani", "[1, 64]",
      "bndiff", "[32, 64]", "bndiff2", "[32, 64]", "bnvar", "[1, 64]", "bnvar_inv", "[1, 64]",
      "bnraw", "[32, 64]", "hpreact", "[32, 64]", "h", "[32, 64]", "logits", "[32, 27]",
      "logit_maxes", "[32, 1]", "norm_logits", "[32, 27]", "counts", "[32, 27]",
      "counts_sum", "[32, 1]", "counts_sum_inv", "[32, 1]", "probs", "[32, 27]",
      "logprobs", "[32, 27]", "loss", "[]", NULL};
  check_shapes(g, shapes);
  ck_assert_int_eq(g->loss->op, OP_neg);
  ck_assert_int_eq(g->loss->in[0]->op, OP_mean);
  ck_assert_int_eq(g->loss->in[0]->in[0]->op, OP_pick);
  ck_assert(graph_find(g, "bndiff2")->num == 2);
  ck_assert(graph_find(g, "bnvar_inv")->num == -0.5);
  ck_assert(graph_find(g, "counts_sum_inv")->num == -1);
  ck_assert_int_eq(graph_find(g, "logit_maxes")->axis, 1);
  ck_assert_int_eq(graph_find(g, "bnmeani")->in[0]->axis, 0);
  /* bnvar = sum(bndiff2, 0) / (B - 1): a single constant 31 */
  Node *bnvar = graph_find(g, "bnvar");
  ck_assert(bnvar->op == OP_div && bnvar->in[1]->op == OP_const && bnvar->in[1]->num == 31);
  /* bnvar_inv = (bnvar + 1e-5) ^ -0.5 */
  Node *inv = graph_find(g, "bnvar_inv");
  ck_assert(inv->in[0]->op == OP_add && inv->in[0]->in[1]->num == 1e-5);

  DimOverride ovr[] = {{"B", 7, false}, {"H", 13, false}};
  g = parse_spec_file("makemore_granular.spec", ovr, 2);
  static const char *const small[] = {"bnmeani", "[1, 13]", "logit_maxes", "[7, 1]",
                                      "probs", "[7, 27]", NULL};
  check_shapes(g, small);
  ck_assert(graph_find(g, "bnvar")->in[1]->num == 6);
}
END_TEST

/* every spec in specs/ parses */
START_TEST(test_all_specs) {
  static const char *const names[] = {"makemore.spec", "makemore_granular.spec", "mlp_relu.spec", NULL};
  for (int k = 0; names[k]; k++) {
    Graph *g = parse_spec_file(names[k], NULL, 0);
    ck_assert_int_eq(g->loss->shape.rank, 0);
  }
}
END_TEST

/* -D re-infers later dims; an unused override is an error */
START_TEST(test_overrides) {
  static const char text[] = "dim A = 2\ndim B = A * 3\ninput x : [B]\nloss = sum(x)\n";
  DimOverride ovr[] = {{"A", 5, false}};
  Graph *g = parse_spec(src_from_string("t.spec", text), ovr, 1);
  ck_assert_int_eq(g->dims[1].value, 15);
  ck_assert_str_eq(shape_str(&graph_find(g, "x")->shape), "[15]");

  static jmp_buf jb;
  DimOverride bad[] = {{"A", 5, false}, {"Z", 3, false}};
  if (setjmp(jb) == 0) {
    error_catch(&jb);
    parse_spec(src_from_string("t.spec", text), bad, 2);
    error_catch(NULL);
    ck_abort_msg("no error for -D Z");
  }
  error_catch(NULL);
  ck_assert_str_eq(error_text(), "bpgen: error: -D Z: no dim named Z\n");
  DimOverride zero[] = {{"A", 0, false}};
  if (setjmp(jb) == 0) {
    error_catch(&jb);
    parse_spec(src_from_string("t.spec", text), zero, 1);
    error_catch(NULL);
    ck_abort_msg("no error for -D A=0");
  }
  error_catch(NULL);
  ck_assert_msg(strstr(error_text(), "positive integer"), "%s", error_text());
}
END_TEST

static Suite *make_suite(void) {
  Suite *s = suite_create("parse");
  TCase *tc = tcase_create("parse");
  tcase_add_loop_test(tc, test_ops, 0, (int)(sizeof op_cases / sizeof op_cases[0]));
  tcase_add_loop_test(tc, test_attrs, 0, (int)(sizeof attr_cases / sizeof attr_cases[0]));
  tcase_add_loop_test(tc, test_fold, 0, (int)(sizeof fold_cases / sizeof fold_cases[0]));
  tcase_add_test(tc, test_decls);
  tcase_add_test(tc, test_makemore);
  tcase_add_test(tc, test_makemore_override);
  tcase_add_test(tc, test_granular);
  tcase_add_test(tc, test_all_specs);
  tcase_add_test(tc, test_overrides);
  suite_add_tcase(s, tc);
  return s;
}
TESTS_REGISTER(make_suite)
