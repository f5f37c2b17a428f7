/* test_shape.c: every forward op's shape rule, good and bad shapes.
 *
 * Each case declares inputs a, b, c (a type and shape such as "int[4]"),
 * computes z from them, and wants z's shape, or an error containing the
 * fragment after "!". */
#include "tests.h"

#include <stdio.h>
#include <string.h>

static const struct { const char *a, *b, *c, *expr, *want; } cases[] = {
    /* gather */
    {"[27, 10]", "int[32, 3]", NULL, "C[b]", "[32, 3, 10]"},
    {"[27, 10]", "int[32]", NULL, "a[b]", "[32, 10]"},
    {"[27]", "int[5]", NULL, "a[b]", "[5]"},
    {"[27, 2, 3]", "int[]", NULL, "a[b]", "[2, 3]"},
    {"[27, 10]", "[32]", NULL, "a[b]", "!the index must be an int tensor, got a float [32]"},
    {"int[27, 10]", "int[32]", NULL, "a[b]", "!the table is an int tensor [27, 10] where a float is needed"},
    {"[2, 2, 2, 2, 2]", "int[2, 2, 2]", NULL, "a[b]", "!rank 7, more than 6"},
    {"[4]", "int[2]", NULL, "a[b][a]", "!the index must be an int tensor, got a float [4]"},
    /* reshape */
    {"[4, 6]", NULL, NULL, "reshape(a, [2, 12])", "[2, 12]"},
    {"[4, 6]", NULL, NULL, "reshape(a, [2, 3, 4])", "[2, 3, 4]"},
    {"[4, 6]", NULL, NULL, "reshape(a, [])", "![4, 6] has 24 elements, [] has 1"},
    {"[4, 6]", NULL, NULL, "reshape(a, [5, 5])", "![4, 6] has 24 elements, [5, 5] has 25"},
    {"[4, 6]", NULL, NULL, "reshape(a, [5, -1])", "!cannot infer -1"},
    {"int[4]", NULL, NULL, "C[reshape(a, [2, 2])]", "[2, 2, 10]"},   /* an int index reshaped */
    /* slices and concat */
    {"[4, 6]", NULL, NULL, "a[1:3, 2]", "[2]"},
    {"[4, 6]", NULL, NULL, "a[-1]", "[6]"},
    {"[4, 6, 5]", NULL, NULL, "a[:, 2:, :-1]", "[4, 4, 4]"},
    {"int[4, 6]", NULL, NULL, "C[a[:, 0]]", "[4, 10]"},
    {"[4, 6]", NULL, NULL, "a[4]", "!index 4 is out of range for an axis of 4"},
    {"[4, 6]", NULL, NULL, "a[:, 3:3]", "!empty range 3:3"},
    {"[4, 6]", "[1, 2]", NULL, "concat(a, b)", "[4, 8]"},
    {"[4, 6]", "[3, 6]", NULL, "concat(a, b, 0)", "[7, 6]"},
    {"[4, 6]", "[3, 2]", NULL, "concat(a, b)", "!differ at axis 0"},
    {"[4, 6]", "int[4, 2]", NULL, "concat(a, b)", "!the second tensor is an int tensor"},
    /* matmul */
    {"[4, 5]", "[5, 3]", NULL, "a @ b", "[4, 3]"},
    {"[2, 4, 5]", "[5, 3]", NULL, "a @ b", "[2, 4, 3]"},
    {"[2, 4, 5]", "[2, 5, 3]", NULL, "a @ b", "[2, 4, 3]"},
    {"[7, 2, 4, 5]", "[7, 2, 5, 1]", NULL, "a @ b", "[7, 2, 4, 1]"},
    {"[32, 30]", "[64, 27]", NULL, "a @ b", "!matmul: inner dims differ (30 vs 64): [32, 30] @ [64, 27]"},
    {"[4, 5]", "[5]", NULL, "a @ b", "!both operands need at least 2 axes, got [4, 5] @ [5]"},
    {"[4, 5]", "[2, 5, 3]", NULL, "a @ b", "[2, 4, 3]"},   /* a 2-D left over a batched right */
    {"[3, 4, 5]", "[2, 3, 5, 3]", NULL, "a @ b", "!batch axes differ: [3, 4, 5] @ [2, 3, 5, 3]"},
    {"[3, 4, 5]", "[2, 5, 3]", NULL, "a @ b", "!batch axes differ: [3, 4, 5] @ [2, 5, 3]"},
    {"[4, 5]", "int[5, 3]", NULL, "a @ b", "!the right operand is an int tensor [5, 3]"},
    /* + - * / */
    {"[4, 5]", "[5]", NULL, "a + b", "[4, 5]"},
    {"[4, 1]", "[1, 5]", NULL, "a - b", "[4, 5]"},
    {"[3, 1, 5]", "[4, 1]", NULL, "a * b", "[3, 4, 5]"},
    {"[]", "[2, 3]", NULL, "a / b", "[2, 3]"},
    {"[4, 5]", NULL, NULL, "2 / a", "[4, 5]"},
    {"[32, 64]", "[27]", NULL, "a + b", "!add: shapes [32, 64] and [27] do not broadcast"},
    {"[4, 5]", "[4]", NULL, "a * b", "!mul: shapes [4, 5] and [4] do not broadcast"},
    {"[4, 5]", "[4, 1]", NULL, "a - b", "[4, 5]"},
    {"[2, 3]", "[3, 3]", NULL, "a / b", "!div: shapes [2, 3] and [3, 3] do not broadcast"},
    {"int[4]", NULL, NULL, "a + 1", "!add: the left operand is an int tensor [4] where a float is needed"},
    /* elementwise, one input */
    {"[4, 5]", NULL, NULL, "a ^ 3", "[4, 5]"},
    {"[4, 5]", NULL, NULL, "-a", "[4, 5]"},
    {"[4, 5]", NULL, NULL, "exp(a)", "[4, 5]"},
    {"[]", NULL, NULL, "log(a)", "[]"},
    {"[4, 5, 6]", NULL, NULL, "tanh(a)", "[4, 5, 6]"},
    {"[4]", NULL, NULL, "relu(a)", "[4]"},
    {"[4]", NULL, NULL, "sigmoid(a)", "[4]"},
    {"[4]", NULL, NULL, "sqrt(a)", "[4]"},
    {"int[4]", NULL, NULL, "-a", "!neg: the input is an int tensor"},
    {"int[4]", NULL, NULL, "a ^ 2", "!pow: the input is an int tensor"},
    {"int[4]", NULL, NULL, "sqrt(a)", "!sqrt: the input is an int tensor"},
    /* reductions */
    {"[4, 5]", NULL, NULL, "sum(a)", "[]"},
    {"[4, 5]", NULL, NULL, "sum(a, 1)", "[4, 1]"},
    {"[4, 5, 6]", NULL, NULL, "mean(a, 1)", "[4, 1, 6]"},
    {"[4, 5, 6]", NULL, NULL, "max(a, axis=-1)", "[4, 5, 1]"},
    {"[]", NULL, NULL, "max(a)", "[]"},
    {"[4, 5]", NULL, NULL, "sum(a, 2)", "!axis 2 out of range for [4, 5] (rank 2)"},
    {"[4, 5]", NULL, NULL, "mean(a, -3)", "!axis -3 out of range for [4, 5]"},
    {"[4, 5]", NULL, NULL, "max(a, 0.5)", "!axis 0.5 out of range"},
    {"[]", NULL, NULL, "sum(a, 0)", "!axis 0 out of range for [] (rank 0)"},
    {"int[4]", NULL, NULL, "sum(a)", "!sum: the input is an int tensor"},
    /* pick */
    {"[4, 5]", "int[4]", NULL, "pick(a, b)", "[4]"},
    {"[4, 5]", "int[5]", NULL, "pick(a, b)", "!pick: needs x [N, K] and an index [N], got [4, 5] and [5]"},
    {"[4, 5, 1]", "int[4]", NULL, "pick(a, b)", "!got [4, 5, 1] and [4]"},
    {"[4, 5]", "[4]", NULL, "pick(a, b)", "!pick: the index must be an int tensor, got a float [4]"},
    {"int[4, 5]", "int[4]", NULL, "pick(a, b)", "!pick: x is an int tensor"},
    /* softmax */
    {"[4, 5]", NULL, NULL, "softmax(a)", "[4, 5]"},
    {"[4, 5]", NULL, NULL, "softmax(a, 0)", "[4, 5]"},
    {"[]", NULL, NULL, "softmax(a)", "!softmax: the input needs at least one axis, got []"},
    {"[4, 5]", NULL, NULL, "softmax(a, 2)", "!axis 2 out of range for [4, 5]"},
    /* cross_entropy */
    {"[32, 27]", "int[32]", NULL, "cross_entropy(a, b)", "[]"},
    {"[32, 27]", "int[27]", NULL, "cross_entropy(a, b)", "!needs logits [N, K] and targets [N] (or [..., K] and [...]), got [32, 27] and [27]"},
    {"[4, 16, 27]", "int[4, 16]", NULL, "cross_entropy(a, b)", "[]"},   /* a sequence: every position */
    {"[4, 16, 27]", "int[4, 16]", NULL, "cross_entropy(a, b, ignore=-1)", "[]"},
    {"[4, 16, 27]", "int[4, 15]", NULL, "cross_entropy(a, b)", "!got [4, 16, 27] and [4, 15]"},
    {"[4, 16, 27]", "int[4, 16]", NULL, "cross_entropy(a, b, ignore=0.5)", "!ignore must be a whole number, got 0.5"},
    {"[32]", "int[32]", NULL, "cross_entropy(a, b)", "!got [32] and [32]"},
    {"[32, 27]", "[32]", NULL, "cross_entropy(a, b)", "!the target must be an int tensor, got a float [32]"},
    /* batchnorm */
    {"[32, 64]", "[1, 64]", "[1, 64]", "batchnorm(a, b, c)", "[32, 64]"},
    {"[32, 64]", "[64]", "[64]", "batchnorm(a, b, c)", "[32, 64]"},
    {"[32, 64]", "[1, 63]", "[1, 64]", "batchnorm(a, b, c)", "!batchnorm: gain must be [64] or [1, 64], got [1, 63] (input [32, 64])"},
    {"[32, 64]", "[64]", "[2, 64]", "batchnorm(a, b, c)", "!batchnorm: bias must be [64] or [1, 64], got [2, 64]"},
    {"[32, 4, 64]", "[64]", "[64]", "batchnorm(a, b, c)", "[32, 4, 64]"},   /* over B and the 4 positions */
    {"[32, 4, 64]", "[1, 64]", "[64]", "batchnorm(a, b, c)", "[32, 4, 64]"},
    {"[32, 4, 64]", "[4, 64]", "[64]", "batchnorm(a, b, c)", "!batchnorm: gain must be [64] or [1, 64], got [4, 64]"},
    {"[64]", "[64]", "[64]", "batchnorm(a, b, c)", "!batchnorm: the input must be [N, D] or [N, ..., D], got [64]"},
    {"[1, 1, 64]", "[64]", "[64]", "batchnorm(a, b, c)", "!unbiased variance needs a batch of at least 2"},
    {"[1, 64]", "[64]", "[64]", "batchnorm(a, b, c)", "!unbiased variance needs a batch of at least 2"},
    {"[1, 64]", "[64]", "[64]", "batchnorm(a, b, c, unbiased=false)", "[1, 64]"},
    {"[32, 64]", "int[64]", "[64]", "batchnorm(a, b, c)", "!gain is an int tensor"},
    /* layernorm */
    {"[4, 8]", "[8]", "[8]", "layernorm(a, b, c)", "[4, 8]"},
    {"[2, 4, 8]", "[8]", "[8]", "layernorm(a, b, c)", "[2, 4, 8]"},
    {"[8]", "[8]", "[8]", "layernorm(a, b, c)", "[8]"},
    {"[4, 8]", "[1, 8]", "[8]", "layernorm(a, b, c)", "!layernorm: gain must be [8], got [1, 8] (input [4, 8])"},
    {"[4, 8]", "[8]", "[4]", "layernorm(a, b, c)", "!layernorm: bias must be [8], got [4]"},
    {"[]", "[8]", "[8]", "layernorm(a, b, c)", "!layernorm: the input needs at least one axis"},
    /* sizes */
    {"[65536, 65536]", NULL, NULL, "exp(a)", "!shape [65536, 65536] has more than 2147483647 elements"},
    {"[46341, 1]", "[1, 46341]", NULL, "a + b", "!add: result [46341, 46341] has more than 2147483647 elements"},
};

static const char *decl(const char *name, const char *type) {
  if (!type)
    return "";
  return arena_printf("input %s : %s\n", name, type);
}

START_TEST(test_rule) {
  const char *text = arena_printf("%s%s%sinput C : [27, 10]\nz = %s\nloss = sum(z)\n",
                                  decl("a", cases[_i].a), decl("b", cases[_i].b),
                                  decl("c", cases[_i].c), cases[_i].expr);
  const char *want = cases[_i].want;
  if (want[0] == '!') {
    const char *rep = parse_error(text);
    ck_assert_msg(strstr(rep, want + 1), "z = %s: want '%s' in:\n%s", cases[_i].expr, want + 1,
                  rep);
    /* errors point at line 'z = ...' (or at a declaration for oversized shapes) */
    ck_assert_msg(strstr(rep, "z = ") || strstr(rep, "input"), "%s", rep);
  } else {
    Graph *g = parse_text(text);
    Node *z = graph_find(g, "z");
    ck_assert_msg(strcmp(shape_str(&z->shape), want) == 0, "z = %s: %s, want %s", cases[_i].expr,
                  shape_str(&z->shape), want);
    ck_assert_int_eq(z->type, TY_FLOAT);
  }
}
END_TEST

START_TEST(test_broadcast) {
  static const struct { Shape a, b; bool ok; const char *want; } bc[] = {
      {{2, {4, 5}}, {1, {5}}, true, "[4, 5]"},
      {{1, {5}}, {2, {4, 5}}, true, "[4, 5]"},
      {{0, {0}}, {0, {0}}, true, "[]"},
      {{3, {1, 4, 1}}, {2, {4, 3}}, true, "[1, 4, 3]"},
      {{3, {2, 1, 6}}, {3, {1, 7, 1}}, true, "[2, 7, 6]"},
      {{1, {3}}, {1, {4}}, false, NULL},
      {{2, {2, 3}}, {3, {2, 2, 3}}, true, "[2, 2, 3]"},
      {{2, {2, 3}}, {3, {2, 3, 3}}, false, NULL},
  };
  for (size_t k = 0; k < sizeof bc / sizeof bc[0]; k++) {
    Shape out = {0};
    ck_assert_int_eq(shape_broadcast(&bc[k].a, &bc[k].b, &out), bc[k].ok);
    if (bc[k].ok)
      ck_assert_str_eq(shape_str(&out), bc[k].want);
  }
}
END_TEST

/* matmul's transa/transb (set by the gradient rules, never by the parser) */
START_TEST(test_matmul_trans) {
  Graph *g = parse_text("input a : [4, 5]\ninput b : [3, 5]\nloss = sum(a)\n");
  Node *a = graph_find(g, "a"), *b = graph_find(g, "b");
  static const struct { bool ta, tb; const char *want; } mt[] = {
      {false, true, "[4, 3]"},    /* a @ b^T */
      {true, false, NULL},        /* a^T [5,4] @ b [3,5]: 4 vs 3 */
  };
  static jmp_buf jb;
  for (size_t k = 0; k < sizeof mt / sizeof mt[0]; k++) {
    Node n = {.op = OP_matmul, .in = {a, b}, .transa = mt[k].ta, .transb = mt[k].tb, .tok = a->tok};
    if (setjmp(jb) == 0) {
      error_catch(&jb);
      shape_matmul(&n);
      error_catch(NULL);
      ck_assert_msg(mt[k].want, "case %zu: no error", k);
      ck_assert_str_eq(shape_str(&n.shape), mt[k].want);
    } else {
      error_catch(NULL);
      ck_assert_msg(!mt[k].want, "case %zu: %s", k, error_text());
      ck_assert_msg(strstr(error_text(), "inner dims differ (4 vs 3): [4, 5]^T @ [3, 5]"), "%s",
                    error_text());
    }
  }
}
END_TEST

static Suite *make_suite(void) {
  Suite *s = suite_create("shape");
  TCase *tc = tcase_create("shape");
  tcase_add_loop_test(tc, test_rule, 0, (int)(sizeof cases / sizeof cases[0]));
  tcase_add_test(tc, test_broadcast);
  tcase_add_test(tc, test_matmul_trans);
  suite_add_tcase(s, tc);
  return s;
}
TESTS_REGISTER(make_suite)
