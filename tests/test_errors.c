/* test_errors.c: the bad-spec table.  Each case wants a message fragment and
 * the line:col the report points at (its caret).  Specs starting with "+"
 * get the 4-line header H in front, so their own lines start at 5. */
#include "tests.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define H "dim B = 4\ninput x : [B, 3]\ninput y : int[B]\nparam w : [3, 3] ~ randn\n"

static const struct { const char *spec, *msg, *pos; } cases[] = {
    /* lexical */
    {"+z = x $ 2\n", "unexpected character '$'", "5:7"},
    {"+z = x \x7f 2\n", "unexpected character '\\x7F'", "5:7"},
    {"dim B = 1e\n", "bad number '1e'", "1:9"},
    {"+z = x * 1.2.3\n", "bad number '1.2.3'", "5:9"},
    {"dim B = 12abc\n", "bad number '12abc'", "1:9"},
    {"dim B = 99999999999999999999\n", "dim value 99999999999999999999 is too large", "1:9"},
    {"+z = x * 1e400\n", "number too large", "5:9"},
    /* brackets and lines */
    {"+z = exp((x + 1)\nloss = sum(z)\n", "expected ')' to close '(' at 5:8, got 'loss'", "6:1"},
    {"+z = (x + 1\n", "expected ')' to close '(' at 5:5, got end of file", "6:1"},
    {"+z = x[y\n", "expected ']' to close '[' at 5:6, got end of file", "6:1"},
    {"dim B = 2\ninput x : [B, B\nloss = 1\n", "expected ']' to close '[' at 2:11, got 'loss'", "3:1"},
    {"+z = reshape(x, [B, 3)\n", "expected ']' to close '[' at 5:16, got ')'", "5:21"},
    {"+z = x +\n  1\n", "expected an expression, got end of line (a statement continues on the next line only inside", "5:8"},
    {"+z = exp(x) y\n", "expected end of line, got 'y'", "5:12"},
    {"+z = )\n", "expected an expression, got ')'", "5:5"},
    {"+z x\n", "expected '=' after 'z'", "5:3"},
    {"+= x\n", "expected a declaration or a statement, got '='", "5:1"},
    /* names */
    {"+z = q + 1\n", "unknown name 'q'", "5:5"},
    {"+z = frob(x)\n", "unknown function 'frob'", "5:5"},
    {"+z = frob(q)\n", "unknown function 'frob'", "5:5"},
    {"+z = randn(x)\n", "unknown function 'randn'", "5:5"},
    {"+z = x(x)\n", "unknown function 'x'", "5:5"},
    {"+z = exp\n", "'exp' cannot be used as a value here", "5:5"},
    {"+z = z + 1\n", "'z' is used in its own definition", "5:5"},
    {"+x = exp(w)\n", "'x' redefined (first defined at line 2)", "5:1"},
    {"+dim w = 3\n", "'w' redefined (first defined at line 4)", "5:5"},
    {"+z = exp(w)\nz = exp(x)\n", "'z' redefined (first defined at line 5)", "6:1"},
    {"+param y : [2] ~ zeros\n", "'y' redefined (first defined at line 3)", "5:7"},
    {"+exp = exp(x)\n", "'exp' redefined: it is a built-in name", "5:1"},
    {"dim int = 3\n", "'int' redefined: it is a built-in name", "1:5"},
    /* slices, loops, stack */
    {"+for i in 2\n  z = x\nend\nq = stack(z, axis=3)\n", "stack: axis 3 out of range", "8:19"},
    {"+z = x[0:5]\n", "index 5 is out of range for an axis of 4", "5:9"},
    {"+z = x[-5]\n", "index -5 is out of range for an axis of 4", "5:7"},
    {"+z = x[2:1]\n", "empty range 2:1", "5:7"},
    {"+z = x[1, 2, 0]\n", "too many indices: [4, 3] has 2 axes", "5:13"},
    {"+z = x[:, y]\n", "a slice's bounds must be constants", "5:10"},
    {"+z = x[1.5]\n", "an index must be a whole number", "5:7"},
    {"+for i in q\nend\n", "unknown dim 'q'", "5:10"},
    {"+for i in w\nend\n", "'w' is not a dim", "5:10"},
    {"+for i in B - 4\nend\n", "a loop runs a positive number of times, got 0", "5:10"},
    {"+for i in 2\n  z = x\n", "'for' without a matching 'end'", "5:1"},
    {"+end\n", "'end' without a 'for'", "5:1"},
    {"+for i in 2\n  param p : [2] ~ zeros\nend\n", "declarations go before the loop", "6:3"},
    {"+for i in 2\n  x = exp(x)\nend\n", "'x' is an input (line 2)", "6:3"},
    {"+z_1 = exp(x)\nfor i in 2\n  z = exp(x)\nend\n", "'z' in this iteration is called 'z_1', which is already defined at line 5", "7:3"},
    {"+for i in 2\n  z = exp(x)\nend\nq = i + x\n", "'i' is the variable of the loop at line 5, which has ended", "8:5"},
    {"+for i in 2\n  z = exp(x)\n  z = exp(z)\nend\n", "'z' is assigned twice in one iteration (line 6 and here)", "7:3"},
    {"+q = stack(x)\n", "stack: 'x' is not assigned in a for loop", "5:11"},
    {"+for i in 2\n  z = exp(x)\n  q = stack(z)\nend\n", "stack: the loop at line 5 that assigns 'z' has not ended", "7:13"},
    {"+for i in 2\n  z = x @ w[i]\nend\n", "matmul: both operands need at least 2 axes, got [4, 3] @ [3]", "6:9"},
    {"+z = concat(x, w, axis=1)\n", "concat: [4, 3] and [3, 3] differ at axis 0", "5:5"},
    {"+z = concat(x, w[0])\n", "concat: the tensors need the same number of axes", "5:5"},
    {"+z = B * 2\n", "'z' is a constant (8)", "5:1"},
    {"dim B = Q\n", "unknown dim 'Q'", "1:9"},
    {"+dim C = x\n", "'x' is not a dim", "5:9"},
    /* calls */
    {"+z = exp(x, x)\n", "exp takes 1 argument, got 2", "5:12"},
    {"+z = exp()\n", "exp takes 1 argument, got 0", "5:9"},
    {"+z = pick(x)\n", "pick takes 2 arguments, got 1", "5:11"},
    {"+z = sum(x, 0, 1)\n", "sum takes 1 argument, got 3", "5:15"},
    {"+z = batchnorm(x, w, w, 1e-5)\n", "batchnorm takes 3 arguments, got 4", "5:24"},
    {"+z = sum(x, dim=0)\n", "sum has no argument 'dim'", "5:12"},
    {"+z = layernorm(x, w, w, unbiased=true)\n", "layernorm has no argument 'unbiased'", "5:24"},
    {"+z = sum(x, axis=0, axis=1)\n", "argument 'axis' given twice", "5:20"},
    {"+z = sum(axis=0, x)\n", "positional argument after a keyword argument", "5:17"},
    {"+z = exp(true)\n", "true/false is only for 'unbiased'", "5:9"},
    {"+z = batchnorm(x, w, w, unbiased=1)\n", "unbiased must be true or false", "5:33"},
    {"+param g : [3] ~ ones\nz = batchnorm(x, g, g, eps=x)\n", "eps must be a constant", "6:28"},
    {"+param g : [3] ~ ones\nz = batchnorm(x, g, g, eps=-1)\n", "eps must not be negative", "6:28"},
    {"+z = sum(x, 1, x, x, x, x, x, x, x)\n", "too many arguments", "5:33"},
    {"+z = reshape(x)\n", "expected ',' after reshape's first argument, got ')'", "5:14"},
    {"+z = reshape(x, B)\n", "reshape needs a shape in brackets, got 'B'", "5:16"},
    {"+z = reshape(x, [-1, -1])\n", "a dim must be a positive integer, got -1", "5:21"},
    /* shapes and types */
    {"+z = x @ reshape(w, [9, 1])\n", "matmul: inner dims differ (3 vs 9): [4, 3] @ [9, 1]", "5:7"},
    {"+z = x + y\n", "add: the right operand is an int tensor [4] where a float is needed", "5:7"},
    {"+z = exp(y)\n", "exp: the input is an int tensor [4] where a float is needed", "5:5"},
    {"+z = w[x]\n", "gather: the index must be an int tensor, got a float [4, 3]", "5:6"},
    {"+z = x + reshape(w, [9])\n", "add: shapes [4, 3] and [9] do not broadcast", "5:7"},
    {"+z = sum(x, 2)\n", "axis 2 out of range for [4, 3] (rank 2)", "5:12"},
    {"+z = softmax(x, axis=-3)\n", "axis -3 out of range for [4, 3]", "5:21"},
    {"+z = sum(x, axis=x)\n", "the axis must be a constant", "5:17"},
    {"+z = x ^ x\n", "the exponent of ^ must be a constant", "5:9"},
    /* dims */
    {"dim B = 0\n", "a dim must be a positive integer, got 0", "1:9"},
    {"dim B = 2 - 5\n", "a dim must be a positive integer, got -3", "1:9"},
    {"dim B = 7 / 2\n", "dim expression 7 / 2 is not a whole number", "1:11"},
    {"dim B = 7 / (2 - 2)\n", "dim expression divides by zero", "1:11"},
    {"dim B = 2.5\n", "dims are whole numbers, got 2.5", "1:9"},
    {"dim B = 2147483647 * 2147483647 * 4\n", "dim expression overflows", "1:33"},
    {"dim B = 2147483647 + 1\n", "a dim must be a positive integer, got 2147483648", "1:9"},
    {"input x : [0]\n", "a dim must be a positive integer, got 0", "1:12"},
    {"input x : [1, 2, 3, 4, 5, 6, 7]\n", "more than 6 axes", "1:30"},
    {"input x : [65536, 65536]\n", "shape [65536, 65536] has more than 2147483647 elements", "1:11"},
    {"+z = x * (1 / (B - 4))\n", "division by zero: the divisor is a constant that is 0 here", "5:12"},
    {"+z = x * log(B - 4)\n", "constant expression is not a finite number", "5:9"},
    {"+z = transpose(x, 1, 1)\n", "transpose: dim0 and dim1 are both axis 1: name two different axes", "5:5"},
    {"+z = transpose(x, 0, 2)\n", "axis 2 out of range", "5:21"},
    {"+z = causal_softmax(x)\n", "causal_softmax: the last two axes must be square ([..., T, T]), got [4, 3]", "5:5"},
    {"+z = context(x, 3)\n", "context: the tokens must be an int tensor, got a float [4, 3]", "5:5"},
    {"+z = context(y, 0)\n", "context: size must be a whole number of at least 1, got 0", "5:5"},
    /* declarations */
    {"input x : float[2]\n", "expected '[' here, got 'float'", "1:11"},
    {"param p : int[2] ~ randn\n", "params are float tensors", "1:11"},
    {"param p : [2]\n", "expected '~' and an initialiser", "1:14"},
    {"param p : [2] ~ x\n", "unknown name 'x' in an initialiser", "1:17"},
    {"+param p : [2] ~ x\n", "cannot use 'x' in an initialiser", "5:17"},
    {"param p : [2] ~ sqrt(0 - 1)\n", "initialiser constant is not a finite number", "1:17"},
    {"param p : [2] ~ randn * \n", "expected an initialiser, got end of line", "1:25"},
    {"dim\n", "expected a dim name after 'dim', got end of line", "1:4"},
    /* the loss */
    {"", "empty spec", "1:1"},
    {"# nothing but a comment\n\n", "empty spec", "1:1"},
    {"+z = exp(x)\n", "no `loss` statement", "6:1"},
    {"+loss = exp(x)\n", "the loss must be a scalar, got [4, 3]", "5:1"},
    {"input loss : []\n", "'loss' must be computed by a statement", "1:7"},
};

START_TEST(test_bad_spec) {
  const char *spec = cases[_i].spec;
  if (spec[0] == '+')
    spec = arena_printf("%s%s", H, spec + 1);
  const char *rep = parse_error(spec);
  ck_assert_msg(strstr(rep, cases[_i].msg), "want '%s' in:\n%s", cases[_i].msg, rep);
  if (cases[_i].pos[0])
    ck_assert_msg(strcmp(error_pos(rep), cases[_i].pos) == 0, "caret at %s, want %s:\n%s",
                  error_pos(rep), cases[_i].pos, rep);
  /* the report: "test.spec:L:C: error: msg\n  line\n  ^\n", caret under column C */
  ck_assert_msg(strncmp(rep, "test.spec:", 10) == 0, "%s", rep);
  int col = atoi(strchr(error_pos(rep), ':') + 1);
  const char *caret = strrchr(rep, '^');
  ck_assert_msg(caret && caret[1] == '\n', "%s", rep);
  const char *bol = caret;
  while (bol > rep && bol[-1] != '\n')
    bol--;
  ck_assert_int_eq((int)(caret - bol), 2 + col - 1);
}
END_TEST

/* nesting: deep but legal parses; deeper is an error, not a stack overflow */
START_TEST(test_depth) {
  char *ok = arena_printf("%sz = -%*sx%*s\nloss = sum(z)\n", H, 150, "", 150, "");
  for (int i = 0; i < 150; i++) {
    ok[strlen(H) + 5 + i] = '(';
    ok[strlen(H) + 5 + 151 + i] = ')';
  }
  ck_assert_str_eq(parse_error(ok), "");
  static const char *const deep[] = {"(", "-", "exp(", "x ^ ", "x[", "sum(x, axis="};
  for (size_t k = 0; k < sizeof deep / sizeof deep[0]; k++) {
    char *s = arena_printf("%sz = ", H);
    for (int i = 0; i < 5000; i++)
      s = arena_printf("%s%s", s, deep[k]);
    const char *rep = parse_error(s);
    ck_assert_msg(strstr(rep, "expression nested too deeply"), "%s: %s", deep[k], rep);
  }
  char *d = "dim B = ";
  for (int i = 0; i < 5000; i++)
    d = arena_printf("%s(", d);
  ck_assert_msg(strstr(parse_error(d), "nested too deeply"), "dim");
  d = "param p : [] ~ ";
  for (int i = 0; i < 5000; i++)
    d = arena_printf("%ssqrt(", d);
  ck_assert_msg(strstr(parse_error(d), "nested too deeply"), "init");
}
END_TEST

/* without a catcher, a user error exits 1 */
START_TEST(test_exit) {
  parse_spec(src_from_string("bad.spec", "dim B = 0\n"), NULL, 0);
}
END_TEST

static Suite *make_suite(void) {
  Suite *s = suite_create("errors");
  TCase *tc = tcase_create("errors");
  tcase_add_loop_test(tc, test_bad_spec, 0, (int)(sizeof cases / sizeof cases[0]));
  tcase_add_test(tc, test_depth);
  tcase_add_exit_test(tc, test_exit, 1);
  suite_add_tcase(s, tc);
  return s;
}
TESTS_REGISTER(make_suite)
