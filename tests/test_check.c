/* test_check.c: the verdict of `bpgen check` itself -- its tolerance follows
 * the rounding a long f32 sum owes (a 4,001-way fan-out passes) yet still
 * catches a rule off by 1.001, and a NaN or Inf on either side is never within
 * tolerance.
 */
#include "tests.h"
#include "bp_runtime.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* W fans out over 4,001 elements and its gradient is zero in exact arithmetic
 * (c is centred), so dW is all rounding: 4,001-term f32 sums of terms near 1. */
static const char fanout_spec[] =
  "dim N = 4001\n"
  "input x : [N]\n"
  "param W : [1] ~ randn\n"
  "h = x + W\n"
  "c = h - mean(h)\n"
  "loss = sum(tanh(c))\n";

/* check_graphs on spec text; the table goes to *table. */
static int check_text(const char *text, DType dt, uint64_t seed, const char **table) {
  Graph *g = parse_spec(src_from_string("fanout.spec", text), NULL, 0);
  grad_build(g);
  char *buf = NULL;
  size_t len = 0;
  FILE *out = open_memstream(&buf, &len);
  int nfail = check_graphs(g, g, dt, seed, 0, out);
  fclose(out);
  *table = arena_strndup(buf, len);
  free(buf);
  return nfail;
}

/* honest f32 rounding of the fan-out passes, on several seeds, f32 and f64 */
START_TEST(fanout_rounding_passes) {
  for (uint64_t seed = 1; seed <= 6; seed++)
    for (int dt = 0; dt < 2; dt++) {
      const char *table;
      int nfail = check_text(fanout_spec, (DType)dt, seed, &table);
      ck_assert_msg(nfail == 0, "seed %llu %s:\n%s", (unsigned long long)seed, dt ? "f64" : "f32", table);
      ck_assert_msg(strstr(table, arena_printf("4 * 2^%d * L * max(T, scale)", dt ? -53 : -24)), "%s", table);
    }
}
END_TEST

/* ... and a rule off by 1.001 still fails there */
START_TEST(fanout_perturbed_fails) {
  static const OpKind ops[] = {OP_tanh, OP_sub, OP_mean};
  for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++)
    for (int dt = 0; dt < 2; dt++) {
      grad_perturb = (int)ops[i] + 1;
      const char *table;
      int nfail = check_text(fanout_spec, (DType)dt, 2147483647u, &table);
      grad_perturb = 0;
      ck_assert_msg(nfail > 0, "%s rule broken, %s, passed:\n%s", optab[ops[i]].name, dt ? "f64" : "f32", table);
    }
}
END_TEST

/* makemore in f32 (the default of the command): every rule broken is caught */
START_TEST(makemore_f32_perturbed_fails) {
  static const OpKind ops[] = {OP_tanh,   OP_matmul, OP_batchnorm, OP_cross_entropy,
                               OP_gather, OP_add,    OP_reshape};
  const char *text = read_src(arena_printf("%s/makemore.spec", specs_dir()))->text;
  const char *table;
  ck_assert_msg(check_text(text, DT_F32, 2147483647u, &table) == 0, "%s", table);
  for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) {
    grad_perturb = (int)ops[i] + 1;
    int nfail = check_text(text, DT_F32, 2147483647u, &table);
    grad_perturb = 0;
    ck_assert_msg(nfail > 0, "%s rule broken, f32, passed:\n%s", optab[ops[i]].name, table);
  }
}
END_TEST

/* ---- NaN and Inf --------------------------------------------------------------- */

/* dp = 0.5 / sqrt(0) is +Inf on both sides (the loss is 0); q is ordinary */
static const char inf_spec[] =
  "dim N = 3\n"
  "input x : [N]\n"
  "param p : [N] ~ zeros\n"
  "param q : [N] ~ randn\n"
  "loss = sum(sqrt(p)) + sum(tanh(q * x))\n";

static const BpModel *inner;
static bool tamper_set;       /* write tamper_value over all of dp after backward */
static double tamper_value;
static double tamper_q;       /* dq[0] *= tamper_q */

static void tamper_backward(void *st) {
  inner->backward(st);
  for (int i = 0; i < inner->ntensors; i++) {
    const BpTensor *t = &inner->tensors[i];
    float *v = (float *)((char *)st + t->offset);
    if (strcmp(t->name, "dp") == 0 && tamper_set)
      for (size_t k = 0; k < t->numel; k++)
        v[k] = (float)tamper_value;
    if (strcmp(t->name, "dq") == 0)
      v[0] *= (float)tamper_q;
  }
}

/* check_model on inf_spec's generated f32 code with backward tampered */
static int check_tampered(bool set, double dp0, double q_scale, const char **table) {
  Graph *g = parse_spec(src_from_string("inf.spec", inf_spec), NULL, 0);
  grad_build(g);
  EmitOptions opt = {DT_F32, "check", true, false, false};
  Jit *j = jit_compile(emit_c(g, &opt, NULL), "inf.spec");
  inner = jit_symbol(j, "check_model");
  ck_assert(inner != NULL && inner->dtype == BP_F32);
  BpModel m = *inner;
  m.backward = tamper_backward;
  tamper_set = set;
  tamper_value = dp0;
  tamper_q = q_scale;
  void *st = calloc(1, m.state_size);
  char *buf = NULL;
  size_t len = 0;
  FILE *out = open_memstream(&buf, &len);
  int nfail = check_model(g, &m, st, false, 2147483647u, 0, out);
  fclose(out);
  *table = arena_strndup(buf, len);
  free(buf);
  free(st);
  jit_free(j);
  return nfail;
}

/* the row of name in a table ("" when absent) */
static const char *row(const char *table, const char *name) {
  const char *p = table;
  size_t n = strlen(name);
  while ((p = strstr(p, name))) {
    if ((p == table || p[-1] == '\n') && p[n] == ' ') {
      const char *e = strchr(p, '\n');
      return arena_strndup(p, e ? (size_t)(e - p) : strlen(p));
    }
    p += n;
  }
  return "";
}

START_TEST(nonfinite_never_within_tolerance) {
  const char *table;
  /* as generated: Inf on both sides */
  ck_assert_int_ge(check_tampered(false, 0, 1, &table), 1);
  ck_assert_msg(strstr(row(table, "dp"), "NaN or Inf"), "%s", table);
  ck_assert_msg(strstr(row(table, "dq"), "<-") == NULL, "%s", table);
  /* the reference Inf, the generated code finite */
  ck_assert_int_ge(check_tampered(true, 1.0, 1, &table), 1);
  ck_assert_msg(strstr(row(table, "dp"), "NaN or Inf"), "%s", table);
  /* the generated code NaN */
  ck_assert_int_ge(check_tampered(true, NAN, 1, &table), 1);
  ck_assert_msg(strstr(row(table, "dp"), "NaN or Inf"), "%s", table);
  /* an Inf elsewhere does not widen anybody's tolerance: dq 1% off fails */
  check_tampered(true, 1.0, 1.01, &table);
  ck_assert_msg(strstr(row(table, "dq"), "out of tolerance"), "%s", table);
}
END_TEST

static Suite *make_suite(void) {
  Suite *s = suite_create("check");
  TCase *tc = tcase_create("check");
  tcase_set_timeout(tc, 300);
  tcase_add_test(tc, fanout_rounding_passes);
  tcase_add_test(tc, fanout_perturbed_fails);
  tcase_add_test(tc, makemore_f32_perturbed_fails);
  tcase_add_test(tc, nonfinite_never_within_tolerance);
  suite_add_tcase(s, tc);
  return s;
}
TESTS_REGISTER(make_suite)
