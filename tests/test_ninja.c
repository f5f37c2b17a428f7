/* test_ninja.c: `bpgen ninja` judges hand-written backward passes: a correct
 * file passes with every row approximate, a missing keepdim is a shape error,
 * an off-by-one (B for B - 1) is named as the first wrong gradient, a file that
 * does not compile points at its own line, and a crash is reported. */
#include "tests.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *fixture(const char *name) {
  const char *d = getenv("BPGEN_FIXTURES");
  return arena_printf("%s/%s", d ? d : "tests/fixtures", name);
}

static Graph *load(const char *spec) {
  return parse_spec(read_src(arena_printf("%s/%s", specs_dir(), spec)), NULL, 0);
}

/* Runs a learner's file; returns the report, *wrong the number of wrong rows,
 * or the error text (and *wrong = -1) on a user error. */
static jmp_buf jb;
static const char *run(const char *spec, const char *path, const char *text, bool use_ref, DType dt,
                       int *wrong) {
  Graph *g = load(spec);
  NinjaOpts o = {dt, 2147483647u, use_ref, 0};
  char *buf = NULL;
  size_t len = 0;
  FILE *out = open_memstream(&buf, &len);
  if (setjmp(jb)) {
    error_catch(NULL);
    fclose(out);
    free(buf);
    *wrong = -1;
    return arena_strndup(error_text(), strlen(error_text()));
  }
  error_catch(&jb);
  *wrong = ninja_run(g, &o, path, text ? text : read_src(path)->text, out);
  error_catch(NULL);
  fclose(out);
  char *s = arena_strndup(buf, len);
  free(buf);
  return s;
}

static const struct {
  const char *spec, *file;
  int wrong;                /* rows wrong; -1: an error (no table) */
  const char *want[3];      /* fragments of the output */
} cases[] = {
  {"makemore.spec", "ninja_ex2_ok.c", 0,
   {"dlogits | True     | False | True ", "all filled gradients are right", NULL}},
  {"makemore_granular.spec", "ninja_ex1_ok.c", 0,
   {"dlogprobs       | True     | True  | True ", "dC              | True     | False | True ", NULL}},
  {"makemore_granular.spec", "ninja_ex1_offbyone.c", 7,
   {"dbndiff2        | True     | False | False       |", "<-- first wrong",
    "dbndiff2 is the first wrong gradient in backward order"}},
  {"makemore_granular.spec", "ninja_ex1_keepdim.c", 1,
   {"dbnmeani        | False    |", "you declared dbnmeani [64] but it is [1, 64]: a missing keepdim?",
    NULL}},
  {"makemore.spec", "ninja_ex2_syntax.c", -1,
   {"ninja_ex2_syntax.c does not compile", "ninja_ex2_syntax.c:9: error: 'logit' undeclared", NULL}},
  {"makemore_granular.spec", "ninja_ex3_ok.c", 0,
   {"dhprebn | True     | False | True ", "given by bpgen (GIVEN): dhpreact", NULL}},
};

START_TEST(test_ninja_fixture) {
  int wrong;
  const char *out = run(cases[_i].spec, fixture(cases[_i].file), NULL, true, DT_F32, &wrong);
  ck_assert_msg(wrong == cases[_i].wrong, "%s: %d wrong, want %d:\n%.2000s", cases[_i].file, wrong,
                cases[_i].wrong, out);
  for (int k = 0; k < 3 && cases[_i].want[k]; k++)
    ck_assert_msg(strstr(out, cases[_i].want[k]), "%s: no '%s' in:\n%.2000s", cases[_i].file,
                  cases[_i].want[k], out);
}
END_TEST

/* small files written inline: one property each */
static const struct {
  const char *text;
  int wrong;
  const char *want;
} inline_cases[] = {
  /* a typo in a gradient's name fails to compile, at the learner's line */
  {"#include \"ninja.h\"\n\nGRAD(dlogit, B, V);\nvoid backward(void) {}\n", -1,
   "mine.c:3: error: 'BP_OK_dlogit' undeclared"},
  /* nothing filled: no table, no failure */
  {"GRAD(dlogits, B, V);\nvoid backward(void) {}\n", 0, "not filled yet: dlogits"},
  /* half the rows written */
  {"GRAD(dlogits, B, V);\nvoid backward(void) { for (int i = 0; i < B / 2; i++)"
   " for (int j = 0; j < V; j++) dlogits[i][j] = 0; }\n", 1,
   "432 of its 864 elements were never written"},
  /* gradient not summed over the broadcast axis */
  {"GRAD(dbngain, B, H);\nvoid backward(void) { ZERO(dbngain); }\n", 1,
   "the forward pass broadcast it, so its gradient is summed over the broadcast axes"},
  /* reading a gradient it never filled */
  {"GRAD(dh, B, H);\nGRAD(dhpreact, B, H);\nvoid backward(void) { for (int i = 0; i < B; i++)"
   " for (int j = 0; j < H; j++) dhpreact[i][j] = (1 - h[i][j] * h[i][j]) * dh[i][j]; }\n", 1,
   "NaN: computed from a gradient you did not fill?"},
  /* a crash */
  {"GRAD(dh, B, H);\nvoid backward(void) { for (long i = 0; ; i += 4096) dh[0][i] = 0; }\n", -1,
   "backward() crashed (a segmentation fault"},
  /* no entry point */
  {"GRAD(dh, B, H);\n", -1, "has no function 'void backward(void)'"},
};

START_TEST(test_ninja_inline) {
  int wrong;
  const char *out = run("makemore.spec", "mine.c", inline_cases[_i].text, true, DT_F32, &wrong);
  ck_assert_msg(wrong == inline_cases[_i].wrong, "case %d: %d wrong, want %d:\n%.2000s", _i, wrong,
                inline_cases[_i].wrong, out);
  ck_assert_msg(strstr(out, inline_cases[_i].want), "case %d: no '%s' in:\n%.2000s", _i,
                inline_cases[_i].want, out);
}
END_TEST

/* f64: the same correct file is right in double too (real is double there) */
START_TEST(test_ninja_f64) {
  int wrong;
  const char *out = run("makemore_granular.spec", fixture("ninja_ex1_ok.c"), NULL, true, DT_F64, &wrong);
  ck_assert_msg(wrong == 0, "%d wrong in f64:\n%.3000s", wrong, out);
  ck_assert_msg(strstr(out, "float64"), "not f64:\n%.300s", out);
}
END_TEST

/* The header: dims, tensors with their shapes, the gradient list. */
static const char *const header_lines[] = {
  "enum { B = 32, T = 3, V = 27, E = 10, H = 64 };",
  "const int (*X)[T];",
  "const real (*logits)[V];",
  "const real (*bnmeani)[H];",
  "real loss;",
  "BP_OK_dbnmeani = 1,",
  "/* GRAD(dbnmeani, 1, H); */",
  "typedef float real;",
  "void backward(void);",
};

START_TEST(test_ninja_header) {
  char *h = ninja_header(load("makemore_granular.spec"), DT_F32);
  ck_assert_msg(strstr(h, header_lines[_i]), "no '%s' in the header", header_lines[_i]);
  ck_assert_msg(strstr(ninja_header(load("makemore.spec"), DT_F64), "typedef double real;"), "f64");
}
END_TEST

static Suite *make_suite(void) {
  Suite *s = suite_create("ninja");
  TCase *tc = tcase_create("ninja");
  tcase_set_timeout(tc, 60);
  tcase_add_loop_test(tc, test_ninja_fixture, 0, (int)(sizeof cases / sizeof cases[0]));
  tcase_add_loop_test(tc, test_ninja_inline, 0, (int)(sizeof inline_cases / sizeof inline_cases[0]));
  tcase_add_test(tc, test_ninja_f64);
  tcase_add_loop_test(tc, test_ninja_header, 0, (int)(sizeof header_lines / sizeof header_lines[0]));
  suite_add_tcase(s, tc);
  return s;
}
TESTS_REGISTER(make_suite)
