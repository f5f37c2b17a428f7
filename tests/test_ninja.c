/* test_ninja.c: `bpgen ninja` judges hand-written backward passes: a correct
 * file passes with every row approximate, a missing keepdim is a shape error,
 * an off-by-one (B for B - 1) is named as the first wrong gradient, a file that
 * does not compile points at its own line, and a crash is reported. */
#include "tests.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *fixture(const char *name) {
  const char *d = getenv("BPGEN_FIXTURES");
  return arena_printf("%s/%s", d ? d : "tests/fixtures", name);
}

static Graph *load_b(const char *spec, long b) {
  DimOverride ovr = {"B", b, false};
  return parse_spec(read_src(arena_printf("%s/%s", specs_dir(), spec)), b ? &ovr : NULL, b ? 1 : 0);
}

static Graph *load(const char *spec) { return load_b(spec, 0); }

/* Runs a learner's file; returns the report, *wrong the number of wrong rows,
 * or the error text (and *wrong = -1) on a user error. */
static jmp_buf jb;
static const char *run_b(const char *spec, long b, const char *path, const char *text, bool use_ref,
                         DType dt, int *wrong) {
  Graph *g = load_b(spec, b);
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

static const char *run(const char *spec, const char *path, const char *text, bool use_ref, DType dt,
                       int *wrong) {
  return run_b(spec, 0, path, text, use_ref, dt, wrong);
}

/* One rule: the rows whose "approximate" (or "shape ok") is False are exactly
 * the wrong ones, and the footer says "all ... right" exactly when none is. */
static void check_one_rule(const char *name, const char *out, int wrong) {
  if (wrong < 0)
    return;
  int falses = 0;
  for (const char *l = out; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
    const char *bar = strstr(l, " | ");
    const char *eol = strchr(l, '\n');
    if (!bar || (eol && bar > eol) || strncmp(l, "tensor ", 7) == 0)
      continue;
    falses += strncmp(bar, " | False", 8) == 0 ||   /* shape */
              (strncmp(bar, " | True     | ", 14) == 0 && strncmp(strchr(bar + 14, '|'), "| False", 7) == 0);
  }
  ck_assert_msg(falses == wrong, "%s: %d rows not approximate, %d wrong:\n%.3000s", name, falses, wrong, out);
  bool table = strstr(out, "| shape ok |") != NULL;
  ck_assert_msg(!!strstr(out, "all filled gradients are right") == (table && wrong == 0),
                "%s: footer disagrees:\n%.3000s", name, out);
}

static const struct {
  const char *spec, *file;
  int wrong;                /* rows wrong; -1: an error (no table) */
  const char *want[4];      /* fragments of the output */
  long b;                   /* -D B=b, 0: the spec's */
} cases[] = {
  {"makemore.spec", "ninja_ex2_ok.c", 0,
   {"dlogits | True     | False | True ", "all filled gradients are right", NULL}, 0},
  {"makemore_granular.spec", "ninja_ex1_ok.c", 0,
   {"dlogprobs       | True     | True  | True ", "dC              | True     | False | True ", NULL}, 0},
  {"makemore_granular.spec", "ninja_ex1_offbyone.c", 7,
   {"dbndiff2        | True     | False | False       |", "<-- first wrong",
    "dbndiff2 is the first wrong gradient in backward order"}, 0},
  /* issue 15: what the mistake looks like, and the learner's line */
  {"makemore_granular.spec", "ninja_ex1_offbyone.c", 7,
   {"  hint: yours is the right dbndiff2 × (B − 1)/B = 31/32: Bessel's correction",
    "ninja_ex1_offbyone.c:105: dbndiff2[i][k] = (real)1 / B * dbnvar[0][k];\nFix it first", NULL}, 0},
  {"makemore.spec", "ninja_ex2_times_b.c", 1,
   {"  hint: yours is the right dlogits × B (= 32): a missing / B?",
    "ninja_ex2_times_b.c:12: for (int j = 0; j < V; j++) dlogits[i][j] = expf(", NULL}, 0},
  {"makemore_granular.spec", "ninja_ex1_keepdim.c", 1,
   {"dbnmeani        | False    |", "you declared dbnmeani [64] but it is [1, 64]: a missing keepdim?",
    NULL}, 0},
  {"makemore.spec", "ninja_ex2_syntax.c", -1,
   {"ninja_ex2_syntax.c does not compile", "ninja_ex2_syntax.c:9: error: 'logit' undeclared", NULL}, 0},
  {"makemore_granular.spec", "ninja_ex3_ok.c", 0,
   {"dhprebn | True     | False | True ", "given by bpgen (GIVEN): dhpreact", NULL}, 0},
  /* issue 10 item 3: one rule for table, verdict and footer */
  {"makemore_granular.spec", "ninja_ex3_ok.c", 0, {"dhprebn | True     | False | True ", NULL}, 1024},
  {"makemore_granular.spec", "ninja_ex3_nobessel.c", 1,
   {"dhprebn | True     | False | False", "dhprebn is the first wrong gradient", NULL}, 1024},
  {"makemore_granular.spec", "ninja_ex1_ok.c", 0, {"all filled gradients are right", NULL}, 1024},
  /* out of bounds and read-before-write blame the array they concern */
  {"makemore_granular.spec", "ninja_ex1_dc_minus1.c", 1,
   {"demb            | True     | False | True ",
    "dC is the first wrong gradient in backward order: backward() wrote before the start of dC: "
    "dC[-1][0] to dC[-1][9], elements -10 to -1", NULL}, 0},
  {"makemore.spec", "ninja_ex2_le.c", -1,
   {"backward() read past the end of logits: logits[32][0] (or logits[31][27]), element 864", NULL}, 0},
  {"makemore_granular.spec", "ninja_ex1_nozero.c", 1,
   {"dC is the first wrong gradient in backward order: `+=` into dC without zeroing it first?",
    NULL}, 0},
};

START_TEST(test_ninja_fixture) {
  int wrong;
  const char *out = run_b(cases[_i].spec, cases[_i].b, fixture(cases[_i].file), NULL, true, DT_F32, &wrong);
  ck_assert_msg(wrong == cases[_i].wrong, "%s: %d wrong, want %d:\n%.2000s", cases[_i].file, wrong,
                cases[_i].wrong, out);
  check_one_rule(cases[_i].file, out, wrong);
  for (int k = 0; k < 4 && cases[_i].want[k]; k++)
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
  /* a write far past the end is blamed on the array */
  {"GRAD(dh, B, H);\nvoid backward(void) { for (long i = 0; ; i += 4096) dh[0][i] = 0; }\n", -1,
   "backward() wrote past the end of dh: dh[64][0] (or dh[63][64]), element 4096 of a [32, 64] array"},
  /* one element past the end */
  {"GRAD(dlogits, B, V);\nvoid backward(void) { for (int i = 0; i < B; i++) for (int j = 0; j <= V; j++)"
   " dlogits[i][j] = 0; }\n", -1, "backward() wrote past the end of dlogits: dlogits[32][0]"},
  /* before the start, beyond the canary slack: a fault */
  {"GRAD(dlogits, B, V);\nvoid backward(void) { ZERO(dlogits); dlogits[0][-5000] = 1; }\n", -1,
   "backward() wrote before the start of dlogits: dlogits[-186][22], element -5000"},
  /* before the start, within the slack: found after the run */
  {"GRAD(dlogits, B, V);\nvoid backward(void) { ZERO(dlogits); dlogits[0][-1] = 1; }\n", 1,
   "backward() wrote before the start of dlogits: dlogits[-1][26], element -1"},
  /* forward values are read-only */
  {"GRAD(dlogits, B, V);\nvoid backward(void) { ((real *)logits)[5] = 0; }\n", -1,
   "backward() wrote to logits, which is read-only (logits[0][5])"},
  /* a read past the end of a forward tensor */
  {"GRAD(dlogits, B, V);\nvoid backward(void) { for (int i = 0; i < B; i++) for (int j = 0; j < V; j++)"
   " dlogits[i][j] = logits[i][j + 1]; }\n", -1, "backward() read past the end of logits"},
  /* a crash elsewhere */
  {"GRAD(dh, B, H);\nvoid backward(void) { *(volatile int *)16 = 0; }\n", -1,
   "backward() crashed (a segmentation fault"},
  /* a gradient read before it is written, without NaN passing through */
  {"GRAD(dlogits, B, V);\nvoid backward(void) { for (int i = 0; i < B; i++) for (int j = 0; j < V; j++)"
   " dlogits[i][j] = dlogits[i][j] > 0 ? 1 : 0; }\n", 1,
   "864 of its elements depend on what the gradients held before backward() ran"},
  /* += into a gradient never zeroed */
  {"GRAD(db2, V);\nvoid backward(void) { for (int j = 0; j < V; j++) db2[j] += 1; }\n", 1,
   "`+=` into db2 without zeroing it first? 27 of its 27 elements depend on what db2 held"},
  /* no entry point */
  {"GRAD(dh, B, H);\n", -1, "has no function 'void backward(void)'"},
  /* issue 15: hints, one pattern each (never the verdict) */
#define DLOGITS(scale, label) \
  "GRAD(dlogits, B, V);\nvoid backward(void) {\n  for (int i = 0; i < B; i++) {\n" \
  "    real m = logits[i][0], sum = 0;\n" \
  "    for (int j = 1; j < V; j++) if (logits[i][j] > m) m = logits[i][j];\n" \
  "    for (int j = 0; j < V; j++) sum += exp(logits[i][j] - m);\n" \
  "    for (int j = 0; j < V; j++) dlogits[i][j] = " scale " * exp(logits[i][j] - m) / sum / B;\n" \
  "    " label "\n  }\n}\n"
  {DLOGITS("-1", "dlogits[i][Y[i]] += (real)1 / B;"), 1,
   "dlogits is the first wrong gradient in backward order: maxdiff 0.0618 is beyond the tolerance 3.76e-07"
   " (1e-05 x the size of dlogits + 10 x its rounding noise 6.75e-09).\n"
   "  hint: yours is the right dlogits × −1: a sign flipped\n  mine.c:7: for (int j = 0;"},
  {DLOGITS("2", "dlogits[i][Y[i]] -= (real)2 / B;"), 1, "hint: yours is the right dlogits × 2: a factor 2"},
  {DLOGITS("1", "/* the - 1/B at the label forgotten */"), 1,
   "hint: each row of the right dlogits sums to 0 (softmax minus one-hot); every row of yours sums to "
   "0.0312: the − 1 at the label missing"},
  {DLOGITS("1", "dlogits[i][Y[i]] -= (real)1 / B; dlogits[i][0] += logits[i][0] * 0.01f;"), 1,
   "hint: each row of the right dlogits sums to 0 (softmax minus one-hot); yours do not (row 0 sums to "},
  {"GRAD(dh, B, H);\nGRAD(dhpreact, B, H);\nvoid backward(void) {\n  GIVEN(dh);\n"
   "  for (int i = 0; i < B; i++)\n    for (int j = 0; j < H; j++)\n"
   "      dhpreact[i][j] = (1 - h[i][j]) * dh[i][j];\n}\n", 1,
   "hint: it is (1 − h) ⊙ dh: tanh's derivative is 1 − h², not 1 − h\n"
   "  mine.c:7: dhpreact[i][j] = (1 - h[i][j]) * dh[i][j];"},
  {"GRAD(dh, B, H);\nGRAD(dhpreact, B, H);\nvoid backward(void) {\n  GIVEN(dh);\n"
   "  for (int i = 0; i < B; i++)\n    for (int j = 0; j < H; j++)\n"
   "      dhpreact[i][j] = (1 - hpreact[i][j] * hpreact[i][j]) * dh[i][j];\n}\n", 1,
   "hint: it is (1 − hpreact²) ⊙ dh: tanh's derivative is 1 − tanh² of its output"},
  {"GRAD(dh, B, H);\nGRAD(dhprebn, B, H);\nvoid backward(void) {\n  GIVEN(dh);\n"
   "  memcpy(dhprebn, dh, sizeof dh);\n}\n", 1,
   "hint: its values are dh's: written into the wrong buffer, or dh's line copied?\n"
   "  mine.c:5: memcpy(dhprebn, dh, sizeof dh);"},
  /* the transpose, declared so (a shape error too) or written in the right shape's memory */
  {"GRAD(dlogits, B, V);\nGRAD(dW2, V, H);\nvoid backward(void) {\n  GIVEN(dlogits);\n"
   "  for (int j = 0; j < V; j++) for (int k = 0; k < H; k++) {\n    real s = 0;\n"
   "    for (int i = 0; i < B; i++) s += dlogits[i][j] * h[i][k];\n    dW2[j][k] = s;\n  }\n}\n", 1,
   "you declared dW2 [27, 64] but it is [64, 27].\n  hint: its values are the transpose of the right dW2 "
   "(a [27, 64] where the [64, 27] goes)"},
  {"GRAD(dlogits, B, V);\nGRAD(dW2, H, V);\nvoid backward(void) {\n  GIVEN(dlogits);\n"
   "  for (int j = 0; j < V; j++) for (int k = 0; k < H; k++) {\n    real s = 0;\n"
   "    for (int i = 0; i < B; i++) s += dlogits[i][j] * h[i][k];\n    ((real *)dW2)[j * H + k] = s;\n"
   "  }\n}\n", 1,
   "hint: its values are the transpose of the right dW2 (a [27, 64] where the [64, 27] goes): the operands "
   "of a matmul swapped, or a ᵀ missing?\n  mine.c:8: ((real *)dW2)[j * H + k] = s;"},
  /* up to a broadcast: every row the right sum over rows */
  {"GRAD(dlogits, B, V);\nGRAD(dh, B, H);\nvoid backward(void) {\n  GIVEN(dlogits);\n"
   "  for (int k = 0; k < H; k++) {\n    real s = 0;\n"
   "    for (int i = 0; i < B; i++) for (int j = 0; j < V; j++) s += dlogits[i][j] * W2[k][j];\n"
   "    for (int i = 0; i < B; i++) dh[i][k] = s;\n  }\n}\n", 1,
   "hint: every row of yours is the right dh summed over its rows (axis 0)"},
  /* no pattern fits: no hint, and a comment or a string naming the gradient is no line of it */
  {"GRAD(dh, B, H);\n/* dh[i][j] = 0 */\nvoid backward(void) {\n  const char *s = \"dh = \";\n"
   "  (void)s;\n  for (int i = 0; i < B; i++) for (int j = 0; j < H; j++)\n"
   "    dh[i][j] = h[i][j] * 0.001f;\n}\n", 1,
   "rounding noise 2.79e-09).\n  mine.c:7: dh[i][j] = h[i][j] * 0.001f;\n\n"},
};

START_TEST(test_ninja_inline) {
  int wrong;
  const char *out = run("makemore.spec", "mine.c", inline_cases[_i].text, true, DT_F32, &wrong);
  ck_assert_msg(wrong == inline_cases[_i].wrong, "case %d: %d wrong, want %d:\n%.2000s", _i, wrong,
                inline_cases[_i].wrong, out);
  ck_assert_msg(strstr(out, inline_cases[_i].want), "case %d: no '%s' in:\n%.2000s", _i,
                inline_cases[_i].want, out);
  check_one_rule("inline", out, wrong);
}
END_TEST

/* The time limit is the parent's: a backward() that ignores SIGALRM, cancels
 * the alarm, forks and loops is killed after 10 s, the process it forked with
 * it (issue 10 item 10). */
static bool running(int pid) {
  FILE *f = fopen(arena_printf("/proc/%d/stat", pid), "r");
  if (!f)
    return false;
  char state = 'X';
  int n = fscanf(f, "%*d (%*[^)]) %c", &state);
  fclose(f);
  return n == 1 && state != 'Z' && state != 'X';
}

START_TEST(test_ninja_time_limit) {
  char pidfile[] = "/tmp/bpgen_ninja_pid_XXXXXX";
  int fd = mkstemp(pidfile);
  ck_assert_int_ge(fd, 0);
  close(fd);
  const char *text = arena_printf(
    "GRAD(dlogits, B, V);\n"
    "void (*signal(int, void (*)(int)))(int);\nunsigned alarm(unsigned);\nint fork(void);\n"
    "int getpid(void);\nvoid *fopen(const char *, const char *);\n"
    "int fprintf(void *, const char *, ...);\nint fclose(void *);\n"
    "void backward(void) {\n"
    "  signal(14, (void (*)(int))1);   /* SIGALRM, SIG_IGN */\n"
    "  alarm(0);\n"
    "  int pid = fork();\n"
    "  if (pid) { void *f = fopen(\"%s\", \"w\"); fprintf(f, \"%%d %%d\\n\", getpid(), pid); fclose(f); }\n"
    "  for (volatile int i = 0;; i++) ;\n"
    "}\n", pidfile);
  int wrong;
  const char *out = run("makemore.spec", "mine.c", text, true, DT_F32, &wrong);
  ck_assert_msg(wrong == -1 && strstr(out, "backward() did not return within 10 seconds"), "%s", out);
  FILE *f = fopen(pidfile, "r");
  int child = 0, grandchild = 0;
  ck_assert_msg(f && fscanf(f, "%d %d", &child, &grandchild) == 2, "no pids written");
  fclose(f);
  unlink(pidfile);
  for (int k = 0; k < 100 && running(grandchild); k++)
    usleep(10000);
  ck_assert_msg(!running(child), "the child %d still runs", child);
  ck_assert_msg(!running(grandchild), "the process %d it forked still runs", grandchild);
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

/* f64: a float-only function is warned about at each call (file:line), not in
 * a comment, and not under f32 (issue 15). */
START_TEST(test_ninja_f64_float_calls) {
  int wrong;
  const char *out = run("makemore.spec", fixture("ninja_ex2_ok.c"), NULL, true, DT_F64, &wrong);
  const char *path = fixture("ninja_ex2_ok.c");
  ck_assert_msg(strstr(out, arena_printf("%s:14: warning: expf() computes in float", path)) &&
                strstr(out, arena_printf("%s:16: warning: expf() computes in float", path)) &&
                strstr(out, "use exp()"), "no warning:\n%.3000s", out);
  out = run("makemore.spec", fixture("ninja_ex2_ok.c"), NULL, true, DT_F32, &wrong);
  ck_assert_msg(!strstr(out, "warning"), "a warning under f32:\n%.3000s", out);
  out = run("makemore.spec", "mine.c",
            "GRAD(dh, B, H);\n/* tanhf(x) */\nvoid backward(void) {\n  ZERO(dh);\n"
            "  dh[0][0] = sqrtf (2.0f) + powf(1, 2) - (real)tanhf(0);\n}\n", true, DT_F64, &wrong);
  ck_assert_msg(strstr(out, "mine.c:5: warning: sqrtf() computes in float") &&
                strstr(out, "mine.c:5: warning: powf()") && strstr(out, "mine.c:5: warning: tanhf()") &&
                !strstr(out, "mine.c:2:"), "%.3000s", out);
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
  tcase_add_test(tc, test_ninja_f64_float_calls);
  tcase_add_test(tc, test_ninja_time_limit);
  tcase_add_loop_test(tc, test_ninja_header, 0, (int)(sizeof header_lines / sizeof header_lines[0]));
  suite_add_tcase(s, tc);
  return s;
}
TESTS_REGISTER(make_suite)
