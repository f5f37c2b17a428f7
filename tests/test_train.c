/* test_train.c: the trainer (templates/trainer.c) driven against a tiny
 * hand-written model (fixtures/bigram.c): data loading and its errors, exact
 * split losses, calibration, checkpoints (round trip, corruption, atomicity),
 * bit-for-bit resume, NaN detection; tensor data (.npy files: learning,
 * malformed files, shapes, out-of-range indices, resume); and `bpgen run` end
 * to end once the emitter exists. */
#include "tests.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ftw.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libtcc.h>

#include "bp_runtime.h"
#include "fixtures/bigram.c"
#include "fixtures/causal.c"
#include "../templates/trainer.c"

/* One scratch directory for the suite's files, bpgen-train-XXXXXX in $TMPDIR
 * (/tmp by default).  It is made and removed in the runner's own process (an
 * unchecked fixture) around each test case: made inside each forked test, as
 * it once was, it was never removed. */
static char tmpdir[4096];

static void tmpdir_make(void) {
  const char *t = getenv("TMPDIR");
  snprintf(tmpdir, sizeof tmpdir, "%s/bpgen-train-XXXXXX", t && t[0] ? t : "/tmp");
  if (!mkdtemp(tmpdir)) {
    perror(tmpdir);
    exit(2);
  }
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
  (void)st, (void)flag, (void)ftw;
  return remove(path);
}

static void tmpdir_remove(void) {
  if (tmpdir[0] && nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS) != 0)
    perror(tmpdir);
  tmpdir[0] = '\0';
}

static const char *tmp_path(const char *name) {
  ck_assert_msg(tmpdir[0], "no scratch directory (tmpdir_make)");
  return arena_printf("%s/%s", tmpdir, name);
}

static const char *write_file(const char *name, const char *text, size_t len) {
  const char *p = tmp_path(name);
  FILE *f = fopen(p, "wb");
  ck_assert_ptr_nonnull(f);
  fwrite(text, 1, len, f);
  fclose(f);
  return p;
}
#define WRITE(name, lit) write_file(name, lit, sizeof lit - 1)

static const char *fixture_words(void) {
  const char *d = getenv("BPGEN_TESTS");
  return arena_printf("%s/fixtures/words10.txt", d ? d : "tests");
}

static char *slurp(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f)
    return NULL;
  char *buf = calloc(1, 1 << 20);
  size_t n = fread(buf, 1, (1 << 20) - 1, f);
  fclose(f);
  if (len)
    *len = n;
  return buf;
}

/* argv = {"train", the NULL-ended arguments of ap..., NULL}; returns argc */
static int train_argv(char **argv, int max, va_list ap) {
  int argc = 0;
  argv[argc++] = "train";
  const char *a;
  while ((a = va_arg(ap, const char *))) {
    ck_assert_int_lt(argc, max - 1);
    argv[argc++] = (char *)a;
  }
  argv[argc] = NULL;
  return argc;
}

/* Runs bp_train_main on the bigram with the given arguments (NULL-ended);
 * results go to a file whose text is returned in *out (arena). */
static int run(const char **out, ...) {
  char *argv[64];
  va_list ap;
  va_start(ap, out);
  int argc = train_argv(argv, 64, ap);
  va_end(ap);
  const char *op = tmp_path("out.txt");
  tr_out = fopen(op, "w");
  ck_assert_ptr_nonnull(tr_out);
  fix_nforward = fix_nbackward = 0;
  int rc = bp_train_main(&bigram_model, argc, argv);
  fclose(tr_out);
  tr_out = NULL;
  fix_poison_forward = fix_poison_grad = -1;
  char *text = slurp(op, NULL);
  if (out)
    *out = arena_strndup(text, strlen(text));
  free(text);
  return rc;
}

/* Loads data into a Tr for the bigram (no training); returns 0 or 1 on error. */
static int load(Tr *tr, const char *path) {
  memset(tr, 0, sizeof *tr);
  tr_errbuf[0] = '\0';
  tr->m = &bigram_model;
  tr->o.data = path;
  tr->o.seed = 2147483647u;
  if (setjmp(tr->jb)) {
    tr_free(tr);
    return 1;
  }
  tr_find_tensors(tr);
  tr_load_data(tr);
  return 0;
}

START_TEST(t_vocab_contexts) {
  Tr tr;
  ck_assert_int_eq(load(&tr, fixture_words()), 0);
  ck_assert_int_eq(tr.nvocab, 6);
  ck_assert_mem_eq(tr.itos, ".abcde", 6);
  ck_assert_int_eq(tr.stoi['a'], 1);
  ck_assert_int_eq(tr.stoi['e'], 5);
  ck_assert_int_eq((int)tr.nwords, 10);
  ck_assert_int_eq((int)tr.split[0].nwords, 8);
  ck_assert_int_eq((int)tr.split[1].nwords, 1);
  ck_assert_int_eq((int)tr.split[2].nwords, 1);
  ck_assert_int_eq((int)(tr.split[0].n + tr.split[1].n + tr.split[2].n), 43);
  /* the dev split is one word w: contexts .. -> w0, .w0 -> w1, ..., ending '.' */
  const TrWord *w = &tr.words[8];
  const TrSplit *s = &tr.split[1];
  ck_assert_int_eq((int)s->n, (int)w->len + 1);
  int32_t prev2 = 0, prev1 = 0;
  for (size_t k = 0; k <= w->len; k++) {
    int32_t want = k < w->len ? tr.stoi[(unsigned char)w->s[k]] : 0;
    ck_assert_int_eq(s->x[k * 2], prev2);
    ck_assert_int_eq(s->x[k * 2 + 1], prev1);
    ck_assert_int_eq(s->y[k], want);
    prev2 = prev1;
    prev1 = want;
  }
  /* the shuffle is a permutation of the file's words */
  size_t total = 0;
  for (int i = 0; i < 10; i++) {
    total += tr.words[i].len;
    for (int j = 0; j < i; j++)
      ck_assert_ptr_ne(tr.words[i].s, tr.words[j].s);
  }
  ck_assert_int_eq((int)total, 33);
  tr_free(&tr);
}
END_TEST

START_TEST(t_line_rules) {
  static const struct {
    const char *name, *text;
    int nwords, nvocab;
    const char *err;            /* substring of the error, or NULL */
  } cases[] = {
    {"crlf.txt", "abc\r\nbca\r\ncab\r\naa\r\nbb\r\n", 5, 4, NULL},
    {"nofinal.txt", "ab\nba\nbb\naa\naab", 5, 3, NULL},
    {"blank.txt", "ab\n\n\nba\n\r\nbb\naa\nab\n", 5, 3, NULL},
    {"empty.txt", "", 0, 0, "empty.txt: no words"},
    {"onlyblank.txt", "\n\r\n\n", 0, 0, "onlyblank.txt: no words"},
    {"space.txt", "ab\nc d\n", 0, 0, "space.txt:2: byte 0x20 (a space)"},
    {"dot.txt", "a.b\n", 0, 0, "dot.txt:1: character '.'"},
    {"utf8.txt", "ab\nab\nz\xc3\xa9\n", 0, 0, "utf8.txt:3: byte 0xc3 in a word"},
    {"midcr.txt", "a\rb\n", 0, 0, "midcr.txt:1: byte 0x0d"},
    {"one.txt", "ab\n", 0, 0, "1 word: too few"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    const char *p = write_file(cases[i].name, cases[i].text, strlen(cases[i].text));
    Tr tr;
    int rc = load(&tr, p);
    if (cases[i].err) {
      ck_assert_msg(rc == 1, "%s: expected an error", cases[i].name);
      ck_assert_msg(strstr(tr_errbuf, cases[i].err), "%s: error '%s' lacks '%s'", cases[i].name,
                    tr_errbuf, cases[i].err);
      continue;
    }
    /* the bigram wants V = 6: only the vocabulary check may fail */
    if (rc == 1) {
      ck_assert_msg(strstr(tr_errbuf, "use -D V="), "%s: %s", cases[i].name, tr_errbuf);
      ck_assert_int_eq((int)tr.nwords, cases[i].nwords);
      ck_assert_int_eq(tr.nvocab, cases[i].nvocab);
    }
  }
}
END_TEST

START_TEST(t_vocab_mismatch) {
  const char *p = WRITE("seven.txt", "abcdef\nfedcba\nabc\n");
  Tr tr;
  ck_assert_int_eq(load(&tr, p), 1);
  ck_assert_msg(strstr(tr_errbuf, "vocabulary of 7") && strstr(tr_errbuf, "V = 6") &&
                strstr(tr_errbuf, "-D V=7"), "%s", tr_errbuf);
}
END_TEST

/* The exact split loss equals the mean of per-row losses, each found from a
 * batch of B copies of the row; the splits are not multiples of B = 4. */
START_TEST(t_split_loss_exact) {
  Tr tr;
  ck_assert_int_eq(load(&tr, fixture_words()), 0);
  tr.state = calloc(1, bigram_model.state_size);
  tr.idx = calloc((size_t)tr.B, sizeof(size_t));
  bigram_model.init(tr.state, 7);
  ck_assert_int_ne((int)(tr.split[0].n % 4), 0);
  for (int s = 0; s < 3; s++) {
    const TrSplit *sp = &tr.split[s];
    double brute = 0;
    for (size_t r = 0; r < sp->n; r++) {
      tr_set_range(&tr, sp, r, 0, r);
      brute += bigram_model.forward_eval(tr.state);
    }
    brute /= (double)sp->n;
    double got = tr_split_loss(&tr, sp);
    ck_assert_msg(fabs(got - brute) < 1e-6, "split %d: %.9g vs %.9g (diff %g)", s, got, brute,
                  fabs(got - brute));
  }
  /* calibration sees every training row once: cal.mean = mean of train Y */
  tr_calibrate(&tr);
  double my = 0;
  for (size_t r = 0; r < tr.split[0].n; r++)
    my += tr.split[0].y[r];
  my /= (double)tr.split[0].n;
  float got = *FIX_P(tr.state, FIX_OSTAT, float);
  ck_assert_msg(fabs(got - my) < 1e-6, "cal.mean %g vs %g", got, my);
  tr_free(&tr);
}
END_TEST

START_TEST(t_train_learns) {
  const char *out;
  ck_assert_int_eq(run(&out, "--data", fixture_words(), "--steps", "300", "--lr", "1",
                       "--samples", "5", "--print-every", "100", NULL), 0);
  ck_assert_msg(strstr(out, "data: ") && strstr(out, "10 words, vocabulary of 6"), "%s", out);
  ck_assert_msg(strstr(out, "      0/    300: "), "%s", out);
  const char *tl = strstr(out, "train loss ");
  ck_assert_ptr_nonnull(tl);
  double l = atof(tl + 11);
  ck_assert_msg(l < 1.6 && l > 0.5, "train loss %g (log 6 = 1.79)", l);
  /* five samples, each ending in '.' */
  const char *dl = strstr(out, "dev loss");
  const char *p = strchr(dl, '\n') + 1;
  int n = 0;
  while (*p) {
    const char *e = strchr(p, '\n');
    ck_assert_int_eq(e[-1], '.');
    n++;
    p = e + 1;
  }
  ck_assert_int_eq(n, 5);
}
END_TEST

START_TEST(t_adamw_learns) {
  const char *out;
  ck_assert_int_eq(run(&out, "--data", fixture_words(), "--steps", "300", "--optimizer", "adamw",
                       "--lr", "0.05", "--weight-decay", "0.01", "--samples", "0", "--quiet", NULL), 0);
  const char *tl = strstr(out, "train loss ");
  ck_assert_ptr_nonnull(tl);
  ck_assert_msg(atof(tl + 11) < 1.6, "%s", out);
  ck_assert_ptr_null(strstr(out, "      0/"));   /* --quiet */
}
END_TEST

START_TEST(t_options) {
  static const struct { const char *a, *b, *err; } cases[] = {
    {"--steps", "-3", "--steps: '-3' is not a whole number"},
    {"--lr", "abc", "--lr: 'abc' is not a finite number"},
    {"--optimizer", "rmsprop", "neither sgd nor adamw"},
    {"--bogus", "1", "unknown option '--bogus'"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    ck_assert_int_eq(run(NULL, "--data", fixture_words(), cases[i].a, cases[i].b, NULL), 2);
    ck_assert_msg(strstr(tr_errbuf, cases[i].err), "%s", tr_errbuf);
  }
  /* --opt=value is --opt value; a flag given a value is a usage error (2) */
  const char *data_eq = arena_printf("--data=%s", fixture_words());
  ck_assert_int_eq(run(NULL, data_eq, "--steps=3", "--samples=0", "--quiet", NULL), 0);
  ck_assert_int_eq(run(NULL, data_eq, "--steps=x", NULL), 2);
  ck_assert_msg(strstr(tr_errbuf, "--steps: 'x' is not a whole number"), "%s", tr_errbuf);
  ck_assert_int_eq(run(NULL, data_eq, "--quiet=1", NULL), 2);
  ck_assert_msg(strstr(tr_errbuf, "--quiet takes no value"), "%s", tr_errbuf);
  ck_assert_int_eq(run(NULL, "--steps", "3", NULL), 2);
  ck_assert_msg(strstr(tr_errbuf, "no data"), "%s", tr_errbuf);
  ck_assert_int_eq(run(NULL, "--data", tmp_path("nonexistent.txt"), NULL), 1);
  ck_assert_msg(strstr(tr_errbuf, "nonexistent.txt: cannot open"), "%s", tr_errbuf);
  ck_assert_int_eq(run(NULL, "--data", fixture_words(), "--resume", NULL), 2);
  ck_assert_msg(strstr(tr_errbuf, "--resume needs --save"), "%s", tr_errbuf);
}
END_TEST

/* The optimiser on hand-made f64 values, against a plain re-implementation of
 * torch.optim.AdamW as its documentation writes the algorithm (decay the old
 * param, moments, bias-corrected m/(sqrt(v)+eps)), of clip_grad_norm_ and of
 * llm.c's cosine schedule; tools/torch_adamw.py (tests/driver.sh) checks the
 * same against PyTorch itself when it is installed. */
static const BpModel opt_model = {
  .name = "opt", .dtype = BP_F64, .state_size = 8 * sizeof(double), .param_offset = 0,
  .grad_offset = 4 * sizeof(double), .nparam = 4, .loss_index = -1, .logits_index = -1,
};

START_TEST(t_adamw_formula) {
  static const double p0[4] = {0.5, -1.25, 2.0, 0.0}, g0[4] = {0.3, -2.0, 1e-3, 0.7};
  double state[8], m[4] = {0}, v[4] = {0};
  double rp[4], rm[4] = {0}, rv[4] = {0};
  int nclipped = 0;
  Tr tr;
  memset(&tr, 0, sizeof tr);
  tr.m = &opt_model;
  tr.state = state;
  tr.mom_m = m;
  tr.mom_v = v;
  tr.o.beta1 = 0.9, tr.o.beta2 = 0.99, tr.o.eps = 1e-8, tr.o.wd = 0.01;   /* makemore's */
  tr.o.lr = 5e-4, tr.o.steps = 20, tr.o.warmup = 3, tr.o.lr_min = 5e-5;
  tr.o.schedule = TR_SCHED_COSINE;
  memcpy(state, p0, sizeof p0);
  memcpy(rp, p0, sizeof p0);
  for (int t = 1; t <= 6; t++) {
    double g[4], lr = tr_lr_at(&tr.o, t - 1), clip = 4.5;
    for (int i = 0; i < 4; i++)
      g[i] = g0[i] * (1 + 0.3 * t) * (i == 1 && t > 3 ? -1 : 1);
    memcpy(state + 4, g, sizeof g);
    double norm = tr_clip_grads(&tr, clip);
    double ss = 0;
    for (int i = 0; i < 4; i++)
      ss += g[i] * g[i];
    ck_assert_double_eq_tol(norm, sqrt(ss), 1e-15);
    double c = clip / (sqrt(ss) + 1e-6);
    nclipped += c < 1;
    for (int i = 0; i < 4; i++) {
      if (c < 1)
        g[i] *= c;
      ck_assert_double_eq_tol(state[4 + i], g[i], 1e-15);
    }
    tr_adamw(&tr, lr);
    ck_assert_int_eq((int)tr.adamw_t, t);
    for (int i = 0; i < 4; i++) {
      double p1 = rp[i] - lr * 0.01 * rp[i];
      rm[i] = 0.9 * rm[i] + 0.1 * g[i];
      rv[i] = 0.99 * rv[i] + 0.01 * g[i] * g[i];
      double mh = rm[i] / (1 - pow(0.9, t)), vh = rv[i] / (1 - pow(0.99, t));
      double want = p1 - lr * mh / (sqrt(vh) + 1e-8);
      if (t == 1)   /* m^ = g, v^ = g^2: the first step moves lr*g/(|g|+eps) */
        ck_assert_double_eq_tol(want, rp[i] * (1 - lr * 0.01) - lr * g[i] / (fabs(g[i]) + 1e-8),
                                1e-15);
      rp[i] = want;
      ck_assert_msg(fabs(state[i] - want) <= 1e-13 * fabs(want) + 1e-300,
                    "step %d param %d: %.17g vs %.17g", t, i, state[i], want);
      ck_assert_double_eq_tol(m[i], rm[i], 1e-15);
    }
  }
  ck_assert_int_eq(nclipped, 3);   /* norms 2.8 .. 6.0: steps 4, 5, 6 clipped to 4.5 */
}
END_TEST

START_TEST(t_lr_schedule) {
  TrOpts o;
  memset(&o, 0, sizeof o);
  o.lr = 1, o.steps = 110, o.warmup = 10, o.lr_min = 0.1, o.decay_at = 50;
  static const struct { int sched; long i; double want; } cases[] = {
    {TR_SCHED_COSINE, 0, 0.1},          /* warmup: lr*(i+1)/W */
    {TR_SCHED_COSINE, 4, 0.5},
    {TR_SCHED_COSINE, 9, 1.0},
    {TR_SCHED_COSINE, 10, 1.0},         /* cosine from lr ... */
    {TR_SCHED_COSINE, 60, 0.55},        /* ... half way: (lr + lr_min) / 2 ... */
    {TR_SCHED_COSINE, 35, 0.1 + 0.9 * (1 + cos(M_PI / 4)) / 2},
    {TR_SCHED_COSINE, 109, 0.1 + 0.9 * (1 + cos(M_PI * 0.99)) / 2},
    {TR_SCHED_COSINE, 110, 0.1},        /* ... to lr_min after the last step */
    {TR_SCHED_STEP, 5, 0.6},            /* warmup applies to every schedule */
    {TR_SCHED_STEP, 49, 1.0},
    {TR_SCHED_STEP, 50, 0.1},
    {TR_SCHED_CONSTANT, 100, 1.0},
  };
  for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
    o.schedule = cases[k].sched;
    double got = tr_lr_at(&o, cases[k].i);
    ck_assert_msg(fabs(got - cases[k].want) < 1e-15, "schedule %d step %ld: %.17g, want %.17g",
                  cases[k].sched, cases[k].i, got, cases[k].want);
  }
}
END_TEST

/* --clip, --lr-schedule and --warmup reach the training loop. */
START_TEST(t_schedule_options) {
  const char *base, *clip, *cos;
  ck_assert_int_eq(run(&base, "--data", fixture_words(), "--steps", "50", "--lr", "1",
                       "--samples", "0", "--quiet", NULL), 0);
  ck_assert_int_eq(run(&clip, "--data", fixture_words(), "--steps", "50", "--lr", "1",
                       "--clip", "0.01", "--samples", "0", "--quiet", NULL), 0);
  ck_assert_int_eq(run(&cos, "--data", fixture_words(), "--steps", "50", "--lr", "1",
                       "--lr-schedule", "cosine", "--warmup", "5", "--samples", "0", "--quiet",
                       NULL), 0);
  double lb = atof(strstr(base, "train loss ") + 11), lc = atof(strstr(clip, "train loss ") + 11);
  double lz = atof(strstr(cos, "train loss ") + 11);
  /* clipped to norm 0.01, 50 steps of lr 1 move the params by 0.5 at most */
  ck_assert_msg(lc > lb + 0.05, "clip: %g vs %g", lc, lb);
  ck_assert_msg(lz != lb, "cosine: %g vs %g", lz, lb);
  static const struct { const char *a, *b, *err; } bad[] = {
    {"--lr-schedule", "linear", "--lr-schedule: 'linear' is not step, cosine or constant"},
    {"--clip", "0", "--clip: 0 would zero every gradient"},
    {"--clip", "-1", "--clip: '-1' is not a finite number >= 0"},
    {"--warmup", "x", "--warmup: 'x' is not a whole number"},
    {"--temperature", "0", "--temperature: 0 divides"},
    {"--top-k", "-2", "--top-k: '-2' is not a whole number"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    ck_assert_int_eq(run(NULL, "--data", fixture_words(), bad[i].a, bad[i].b, NULL), 2);
    ck_assert_msg(strstr(tr_errbuf, bad[i].err), "%s", tr_errbuf);
  }
  ck_assert_int_eq(run(NULL, "--data", fixture_words(), "--lr-schedule", "cosine", "--lr", "0.1",
                       "--lr-min", "0.2", NULL), 2);
  ck_assert_msg(strstr(tr_errbuf, "--lr-min 0.2 is above --lr 0.1"), "%s", tr_errbuf);
}
END_TEST

/* ---- sequences, streams, causal sampling (the causal fixture) ---- */

/* run() for fixtures/causal.c */
static int run_causal(const char **out, ...) {
  char *argv[64];
  va_list ap;
  va_start(ap, out);
  int argc = train_argv(argv, 64, ap);
  va_end(ap);
  const char *op = tmp_path("out.txt");
  tr_out = fopen(op, "w");
  ck_assert_ptr_nonnull(tr_out);
  int rc = bp_train_main(&causal_model, argc, argv);
  fclose(tr_out);
  tr_out = NULL;
  fxc_mean_all = fxc_no_ignore = 0;
  char *text = slurp(op, NULL);
  if (out)
    *out = arena_strndup(text, strlen(text));
  free(text);
  return rc;
}

/* A Tr loaded for the causal model (no training): words (`data`), --text or
 * --data-tokens; state allocated and initialised.  Returns 1 on error. */
static int load_causal(Tr *tr, const char *data, const char *text, const char *tokens) {
  memset(tr, 0, sizeof *tr);
  tr_errbuf[0] = '\0';
  tr->m = &causal_model;
  tr->o.data = data, tr->o.text = text, tr->o.tokens[0] = tokens;
  tr->o.seed = 5, tr->o.temperature = 1, tr->o.samples = 20, tr->o.sample_len = 30;
  tr->o.quiet = 1;
  if (setjmp(tr->jb)) {
    tr_free(tr);
    return 1;
  }
  tr_find_tensors(tr);
  if (tr->mode == TR_SEQ)
    tr_load_seq(tr);
  else
    tr_load_stream(tr);
  tr->state = tr_alloc(tr, causal_model.state_size);
  tr->idx = tr_alloc(tr, (size_t)tr->B * sizeof(size_t));
  causal_model.init(tr->state, 5);
  return 0;
}

/* The MT19937 that torch.manual_seed and llm.c's manual_seed seed: llm.c's
 * rand.h documents manual_seed(137) then randint32() as 4053805790,
 * 2173880614, 380293709, 1237255315, 2986595568 (PyTorch's too); and
 * torch.randperm(10) after torch.manual_seed(3407) is, with torch 1.13,
 * [9, 1, 5, 7, 3, 2, 8, 6, 4, 0].  With torch installed, randperm of larger n
 * is compared with torch itself. */
START_TEST(t_torch_randperm) {
  TrMt mt;
  tr_mt_init(&mt, 137);
  static const uint32_t want[] = {4053805790u, 2173880614u, 380293709u, 1237255315u, 2986595568u};
  for (int i = 0; i < 5; i++)
    ck_assert_uint_eq(tr_mt_next(&mt), want[i]);
  size_t r[32033];
  tr_torch_randperm(r, 10, 3407);
  static const size_t p10[] = {9, 1, 5, 7, 3, 2, 8, 6, 4, 0};
  for (int i = 0; i < 10; i++)
    ck_assert_uint_eq(r[i], p10[i]);
  FILE *py = popen("/usr/bin/python3 -c 'import torch\n"
                   "for n in (777, 32033):\n"
                   "  torch.manual_seed(3407); print(n, *torch.randperm(n).tolist())' "
                   "2>/dev/null", "r");
  int checked = 0;
  size_t n;
  while (py && fscanf(py, "%zu", &n) == 1) {
    tr_torch_randperm(r, n, 3407);
    for (size_t i = 0; i < n; i++) {
      size_t v;
      ck_assert_int_eq(fscanf(py, "%zu", &v), 1);
      ck_assert_msg(v == r[i], "randperm(%zu)[%zu]: torch %zu, bpgen %zu", n, i, v, r[i]);
    }
    checked++;
  }
  if (py)
    pclose(py);
  if (checked == 0)
    fprintf(stderr, "note: t_torch_randperm: no torch for /usr/bin/python3; compared with the "
            "recorded randperm(10) only\n");
}
END_TEST

/* makemore's rows and split on words10.txt (10 words: 1 test word). */
START_TEST(t_seq_rows) {
  Tr tr;
  ck_assert_int_eq(load_causal(&tr, fixture_words(), NULL, NULL), 0);
  ck_assert_int_eq(tr.mode, TR_SEQ);
  ck_assert_int_eq((int)tr.split[0].n, 9);
  ck_assert_int_eq((int)tr.split[1].n, 1);
  size_t rp[10];
  tr_torch_randperm(rp, 10, 3407);
  for (int k = 0; k < 10; k++) {
    const TrWord *w = &tr.words[rp[k]];
    const TrSplit *s = &tr.split[k < 9 ? 0 : 1];
    size_t row = k < 9 ? (size_t)k : 0;
    const int8_t *x = s->sx + row * 6, *y = s->sy + row * 6;
    int len = (int)w->len;
    for (int t = 0; t < 6; t++) {
      int xt = t == 0 || t > len ? 0 : tr.stoi[(unsigned char)w->s[t - 1]];
      int yt = t < len ? tr.stoi[(unsigned char)w->s[t]] : t == len ? 0 : -1;
      ck_assert_msg(x[t] == xt && y[t] == yt, "word %.*s t %d: x %d y %d, want %d %d", len, w->s,
                    t, x[t], y[t], xt, yt);
    }
  }
  tr_free(&tr);
}
END_TEST

/* The split loss is the mean over every valid position: each word's loss
 * (a batch of it and padding) weighted by its valid count.  Batches of
 * 4, 4 and 1 words hold different counts: an unweighted mean of the batch
 * losses differs. */
START_TEST(t_seq_split_loss) {
  Tr tr;
  ck_assert_int_eq(load_causal(&tr, fixture_words(), NULL, NULL), 0);
  const TrSplit *s = &tr.split[0];
  double sum = 0, cnt = 0, batches = 0;
  int nb = 0;
  for (size_t i = 0; i < s->n; i++) {
    tr_set_range(&tr, s, i, 1, 0);
    double l = causal_model.forward_eval(tr.state);
    double c = (double)tr_valid_count(&tr);
    int len = 0;
    while (len < 6 && s->sy[i * 6 + len] != -1)
      len++;
    ck_assert_int_eq((int)c, len);   /* the word and its end token */
    sum += c * l, cnt += c;
  }
  for (size_t i = 0; i < s->n; i += 4, nb++) {
    tr_set_range(&tr, s, i, s->n - i < 4 ? (int)(s->n - i) : 4, 0);
    batches += causal_model.forward_eval(tr.state);
  }
  double got = tr_split_loss(&tr, s);
  ck_assert_msg(fabs(got - sum / cnt) < 1e-12, "split loss %.17g, per position %.17g", got,
                sum / cnt);
  ck_assert_msg(fabs(got - batches / nb) > 1e-6, "the weighting is not exercised");
  tr_free(&tr);
}
END_TEST

START_TEST(t_seq_train) {
  const char *out;
  ck_assert_int_eq(run_causal(&out, "--data", fixture_words(), "--steps", "300", "--lr", "1",
                              "--samples", "6", "--quiet", NULL), 0);
  ck_assert_msg(strstr(out, "sequences of 6 tokens, train 9, test 1 (torch.randperm, seed 3407)"),
                "%s", out);
  const char *tl = strstr(out, "train loss ");
  ck_assert_ptr_nonnull(tl);
  ck_assert_msg(atof(tl + 11) < 1.5, "%s", out);   /* log 6 = 1.79 */
  ck_assert_msg(strstr(out, "test loss "), "%s", out);
  const char *p = strchr(strstr(out, "test loss "), '\n') + 1;
  int n = 0;
  for (; *p; n++) {
    const char *e = strchr(p, '\n');
    ck_assert_msg((e - p <= 6 && e[-1] == '.') || (e - p == 8 && strncmp(e - 4, ".....", 4) != 0 &&
                                                    strncmp(e - 3, "...", 3) == 0),
                  "sample '%.*s': at most T-1 = 5 letters, then '.' or '...'", (int)(e - p), p);
    p = e + 1;
  }
  ck_assert_int_eq(n, 6);
  /* errors: T too small, a model that does not ignore -1, one averaging over all */
  const char *lw = WRITE("long.txt", "abc\nabcdefgh\nbca\n");
  ck_assert_int_eq(run_causal(NULL, "--data", lw, NULL), 1);
  ck_assert_msg(strstr(tr_errbuf, "long.txt: the longest word (abcdefgh, 8 characters) needs "
                               "sequences of 9 tokens") && strstr(tr_errbuf, "use -D T=9"),
                "%s", tr_errbuf);
  fxc_no_ignore = 1;
  ck_assert_int_eq(run_causal(NULL, "--data", fixture_words(), "--steps", "1", NULL), 1);
  ck_assert_msg(strstr(tr_errbuf, "sequences need a cross-entropy that ignores -1"), "%s",
                tr_errbuf);
  fxc_mean_all = 1;
  ck_assert_int_eq(run_causal(NULL, "--data", fixture_words(), "--steps", "1", NULL), 1);
  ck_assert_msg(strstr(tr_errbuf, "mean over the valid positions"), "%s", tr_errbuf);
}
END_TEST

/* Sampling reads the logits at each row's last position: W chains
 * start -> a -> b -> end, so every word is "ab" (a sampler reading position 0
 * or T-1 would write "aaaaa" or noise); --top-k 1 is the argmax; a higher
 * --temperature flattens the distribution. */
START_TEST(t_sample_causal) {
  Tr tr;
  ck_assert_int_eq(load_causal(&tr, fixture_words(), NULL, NULL), 0);
  double *W = FXC_P(tr.state, FXC_OW, double), *c = FXC_P(tr.state, FXC_OC, double);
  for (int i = 0; i < FXC_V * FXC_V; i++)
    W[i] = 0;
  for (int i = 0; i < FXC_V; i++)
    c[i] = 0;
  W[0 * FXC_V + 1] = 40, W[1 * FXC_V + 2] = 40, W[2 * FXC_V + 0] = 40;
  tr_out = fopen(tmp_path("s.txt"), "w");
  tr.o.samples = 7;
  tr_sample_seq(&tr);
  fclose(tr_out);
  tr_out = NULL;
  char *t = slurp(tmp_path("s.txt"), NULL);
  ck_assert_str_eq(t, "ab.\nab.\nab.\nab.\nab.\nab.\nab.\n");
  free(t);
  /* first letters: start -> a or b with logits ln 3 and 0 (3:1); T 1 vs T 100 */
  W[0 * FXC_V + 1] = log(3.0), W[0 * FXC_V + 2] = 0;
  for (int i = 0; i < FXC_V; i++)
    if (i != 1 && i != 2)
      W[0 * FXC_V + i] = -1000;
  double frac[3];
  const double temps[3] = {1, 100, 1};
  for (int k = 0; k < 3; k++) {
    tr.o.temperature = temps[k];
    tr.o.top_k = k == 2 ? 1 : 0;
    tr.o.samples = 400;
    tr_out = fopen(tmp_path("s.txt"), "w");
    tr_sample_seq(&tr);
    fclose(tr_out);
    tr_out = NULL;
    t = slurp(tmp_path("s.txt"), NULL);
    int na = 0, n = 0;
    for (char *p = t; *p; p = strchr(p, '\n') + 1, n++)
      na += *p == 'a';
    ck_assert_int_eq(n, 400);
    frac[k] = (double)na / n;
    free(t);
    free(tr.probs);
    tr.probs = NULL;
  }
  ck_assert_msg(frac[0] > 0.68 && frac[0] < 0.82, "T=1: %g of a, want 0.75", frac[0]);
  ck_assert_msg(frac[1] > 0.42 && frac[1] < 0.58, "T=100: %g of a, want ~0.5", frac[1]);
  ck_assert_msg(frac[2] == 1.0, "top-k 1: %g of a", frac[2]);
  tr_free(&tr);
}
END_TEST

/* llm.c's token file: B*T+1 windows advancing by B*T; malformed files. */
static const char *write_tokens(const char *name, int32_t magic, int32_t version, int32_t count,
                                int ntok, int mod) {
  size_t len = 1024 + 2 * (size_t)(ntok > 0 ? ntok : 0);
  unsigned char *b = calloc(1, len);
  tr_put32(b, (uint32_t)magic);
  tr_put32(b + 4, (uint32_t)version);
  tr_put32(b + 8, (uint32_t)count);
  for (int i = 0; i < ntok; i++)
    tr_put16(b + 1024 + 2 * i, (unsigned)(i % mod));
  const char *p = write_file(name, (const char *)b, len);
  free(b);
  return p;
}

START_TEST(t_stream_tokens) {
  Tr tr;
  /* B*T = 24: 100 tokens hold 4 windows */
  const char *ok = write_tokens("ok.bin", 20240520, 1, 100, 100, 6);
  ck_assert_int_eq(load_causal(&tr, NULL, NULL, ok), 0);
  ck_assert_int_eq(tr.mode, TR_STREAM);
  ck_assert_int_eq((int)tr.split[0].n, 4);
  tr_set_window(&tr, &tr.split[0], 2);
  const int32_t *X = FXC_P(tr.state, FXC_OX, int32_t), *Y = FXC_P(tr.state, FXC_OY, int32_t);
  for (int i = 0; i < 24; i++) {
    ck_assert_int_eq(X[i], (48 + i) % 6);
    ck_assert_int_eq(Y[i], (49 + i) % 6);
  }
  /* llm.c's order: epochs of random_permutation from MT19937 seed 42 */
  TrMt mt;
  tr_mt_init(&mt, 42);
  uint32_t first[4];
  for (int e = 0; e < 3; e++) {
    uint32_t perm[4] = {0, 1, 2, 3};
    for (int i = 3; i > 0; i--) {
      uint32_t j = tr_mt_next(&mt) % (uint32_t)(i + 1), t = perm[i];
      perm[i] = perm[j], perm[j] = t;
    }
    for (int k = 0; k < 4; k++)
      ck_assert_uint_eq(tr_stream_window(&tr, e * 4 + k), perm[k]);
    if (e == 0)
      memcpy(first, perm, sizeof perm);
  }
  for (int k = 0; k < 4; k++)   /* going back (a resumed run) replays from the seed */
    ck_assert_uint_eq(tr_stream_window(&tr, k), first[k]);
  tr_free(&tr);
  static const struct { const char *name; int32_t magic, version, count; int ntok, mod;
                        const char *err; } bad[] = {
    {"magic.bin", 20240326, 1, 100, 100, 6, "magic.bin: bad magic 20240326: not an llm.c token "
     "file (its header starts with 20240520); this is a model checkpoint"},
    {"version.bin", 20240520, 2, 100, 100, 6, "version.bin: token file version 2"},
    {"count.bin", 20240520, 1, 120, 100, 6, "count.bin: the header says 120 tokens (240 bytes) "
     "but the file has 200 bytes"},
    {"vocab.bin", 20240520, 1, 100, 100, 7, "vocab.bin: token 6 is 6, beyond the model's "
     "vocabulary (logits has V = 6)"},
    {"short.bin", 20240520, 1, 24, 24, 6, "short.bin: 24 tokens, fewer than one batch needs: "
     "B*T+1 = 25 (B = 4 rows of T+1 = 7 tokens)"},
    {"tiny.bin", 20240520, 1, 3, 3, 6, "not even one row of T+1"},
    {"zero.bin", 20240520, 1, 0, 0, 6, "zero.bin: the header says 0 tokens"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    const char *p = write_tokens(bad[i].name, bad[i].magic, bad[i].version, bad[i].count,
                                 bad[i].ntok, bad[i].mod);
    ck_assert_int_eq(load_causal(&tr, NULL, NULL, p), 1);
    ck_assert_msg(strstr(tr_errbuf, bad[i].err), "%s: '%s' lacks '%s'", bad[i].name, tr_errbuf,
                  bad[i].err);
  }
  ck_assert_int_eq(load_causal(&tr, NULL, NULL, WRITE("hdr.bin", "abc")), 1);
  ck_assert_msg(strstr(tr_errbuf, "hdr.bin: 3 bytes: too short for llm.c's token file header"),
                "%s", tr_errbuf);
  /* a context model cannot take a stream */
  const char *out;
  ck_assert_int_eq(run(&out, "--data-tokens", ok, NULL), 1);
  ck_assert_msg(strstr(tr_errbuf, "a token stream (--data-tokens) needs inputs X, Y : int[B,T]"),
                "%s", tr_errbuf);
  /* train and sample end to end: token ids */
  const char *val = write_tokens("val.bin", 20240520, 1, 50, 50, 6);
  ck_assert_int_eq(run_causal(&out, "--data-tokens", ok, "--val-tokens", val, "--steps", "40",
                              "--lr", "1", "--sample-len", "12", "--quiet", NULL), 0);
  ck_assert_msg(strstr(out, "100 tokens train, 50 dev") && strstr(out, "4 batches train, 2 dev"),
                "%s", out);
  const char *dl = strstr(out, "dev loss ");
  ck_assert_msg(dl && atof(dl + 9) < 0.5, "%s", out);   /* i+1 mod 6 is learnable */
  const char *sm = strstr(out, "sample:\n");
  ck_assert_ptr_nonnull(sm);
  int ids = 0;
  for (const char *q = sm + 8; *q && *q != '\n'; q++)
    ids += *q >= '0' && *q <= '5' && (q[1] == ' ' || q[1] == '\n');
  ck_assert_int_eq(ids, 12);
}
END_TEST

/* A stream run resumed from a checkpoint draws the same windows (the epoch
 * order replayed from the step) and logs the same losses, bit for bit. */
START_TEST(t_stream_resume) {
  const char *tok = write_tokens("r.bin", 20240520, 1, 100, 100, 6);
  const char *a = tmp_path("sa.csv"), *b = tmp_path("sb.csv"), *ck = tmp_path("sr.npz");
  ck_assert_int_eq(run_causal(NULL, "--data-tokens", tok, "--steps", "23", "--lr-schedule",
                              "constant", "--log", a, "--sample-len", "0", "--quiet", NULL), 0);
  ck_assert_int_eq(run_causal(NULL, "--data-tokens", tok, "--steps", "10", "--lr-schedule",
                              "constant", "--log", b, "--save", ck, "--sample-len", "0", "--quiet",
                              NULL), 0);
  ck_assert_int_eq(run_causal(NULL, "--data-tokens", tok, "--steps", "23", "--lr-schedule",
                              "constant", "--log", b, "--save", ck, "--resume", "--sample-len",
                              "0", "--quiet", NULL), 0);
  size_t la, lb;
  char *ta = slurp(a, &la), *tb = slurp(b, &lb);
  ck_assert_msg(ta && tb && la == lb && memcmp(ta, tb, la) == 0, "logs differ:\n%s\n---\n%s",
                ta, tb);
  free(ta);
  free(tb);
}
END_TEST

/* --text: vocabulary = distinct bytes in order, 90/10 split, sampling text. */
START_TEST(t_stream_text) {
  char txt[400];
  for (int i = 0; i < 399; i++)
    txt[i] = "\nabcde"[i % 6];
  const char *p = write_file("t.txt", txt, 399);
  Tr tr;
  ck_assert_int_eq(load_causal(&tr, NULL, p, NULL), 0);
  ck_assert_int_eq(tr.nvocab, 6);
  ck_assert_int_eq(tr.itos[0], '\n');
  ck_assert_int_eq(tr.itos[5], 'e');
  ck_assert_int_eq((int)tr.split[0].ntok, 360);
  ck_assert_int_eq((int)tr.split[1].ntok, 39);
  ck_assert_int_eq((int)tr.split[0].n, 14);   /* (360-1)/24 */
  ck_assert_int_eq((int)tr.split[1].n, 1);
  ck_assert_int_eq(tr.split[1].tok[0], 0);    /* byte 360 is '\n' */
  tr_free(&tr);
  const char *out;
  ck_assert_int_eq(run_causal(&out, "--text", p, "--steps", "60", "--lr", "2", "--sample-len",
                              "20", "--top-k", "1", "--quiet", NULL), 0);
  const char *sm = strstr(out, "sample:\n");
  ck_assert_msg(sm && strncmp(sm + 8, "abcde\nabcde\nabcde\nab\n", 21) == 0, "%s", out);
  const char *w = WRITE("w7.txt", "abcdefg");
  ck_assert_int_eq(run_causal(NULL, "--text", w, NULL), 1);
  ck_assert_msg(strstr(tr_errbuf, "w7.txt has 7 distinct bytes but the model's logits have V = "
                               "6: use -D V=7"), "%s", tr_errbuf);
}
END_TEST

/* Resuming from a checkpoint gives the same per-step losses, bit for bit,
 * as one uninterrupted run (sgd and adamw). */
START_TEST(t_resume_bitexact) {
  static const char *opt[] = {"sgd", "adamw"};
  for (int k = 0; k < 2; k++) {
    const char *a = tmp_path("a.csv"), *b = tmp_path("b.csv"), *ck = tmp_path("r.npz");
    remove(ck);
    ck_assert_int_eq(run(NULL, "--data", fixture_words(), "--steps", "40", "--optimizer", opt[k],
                         "--eval-every", "7", "--log", a, "--samples", "0", "--quiet", NULL), 0);
    ck_assert_int_eq(run(NULL, "--data", fixture_words(), "--steps", "17", "--decay-at", "20",
                         "--optimizer", opt[k], "--eval-every", "7", "--log", b, "--save", ck,
                         "--samples", "0", "--quiet", NULL), 0);
    ck_assert_int_eq(run(NULL, "--data", fixture_words(), "--steps", "40", "--optimizer", opt[k],
                         "--eval-every", "7", "--log", b, "--save", ck, "--resume", "--samples",
                         "0", "--quiet", NULL), 0);
    size_t la, lb;
    char *ta = slurp(a, &la), *tb = slurp(b, &lb);
    ck_assert_ptr_nonnull(ta);
    ck_assert_ptr_nonnull(tb);
    ck_assert_msg(la == lb && memcmp(ta, tb, la) == 0, "%s: logs differ:\n%s\n---\n%s", opt[k], ta, tb);
    ck_assert_int_eq((int)(strlen(ta) > 200), 1);
    free(ta);
    free(tb);
  }
}
END_TEST

/* Loading a checkpoint and saving it again without training gives the same
 * bytes; numpy reads it when python3 has numpy. */
START_TEST(t_checkpoint_roundtrip) {
  const char *c1 = tmp_path("c1.npz"), *c2 = tmp_path("c2.npz");
  ck_assert_int_eq(run(NULL, "--data", fixture_words(), "--steps", "6", "--optimizer", "adamw",
                       "--save", c1, "--samples", "0", "--quiet", NULL), 0);
  ck_assert_int_eq(run(NULL, "--data", fixture_words(), "--steps", "6", "--optimizer", "adamw",
                       "--load", c1, "--save", c2, "--samples", "0", "--quiet", NULL), 0);
  size_t l1, l2;
  char *t1 = slurp(c1, &l1), *t2 = slurp(c2, &l2);
  ck_assert_msg(l1 == l2 && memcmp(t1, t2, l1) == 0, "re-saved checkpoint differs");
  ck_assert_int_eq(access(arena_printf("%s.tmp%ld", c1, (long)getpid()), F_OK), -1);
  if (system("/usr/bin/python3 -c 'import numpy' 2>/dev/null") == 0) {
    const char *cmd = arena_printf(
      "/usr/bin/python3 -c \"import numpy as np; z = np.load('%s'); "
      "assert int(z['step']) == 6 and z['W'].shape == (6, 6) and z['W'].dtype == np.float32; "
      "assert bytes(z['vocab']) == b'.abcde' and z['adamw.m.c'].shape == (6,) and int(z['adamw_t']) == 6; "
      "assert sorted(z.files) == sorted(['step','rng','seed','vocab','adamw_t','W','c','cal.mean',"
      "'adamw.m.W','adamw.m.c','adamw.v.W','adamw.v.c'])\"", c1);
    ck_assert_int_eq(system(cmd), 0);
  }
  free(t1);
  free(t2);
}
END_TEST

START_TEST(t_checkpoint_corrupt) {
  const char *c = tmp_path("good.npz");
  ck_assert_int_eq(run(NULL, "--data", fixture_words(), "--steps", "3", "--save", c, "--samples",
                       "0", "--quiet", NULL), 0);
  size_t len;
  char *t = slurp(c, &len);
  const char *trunc = write_file("trunc.npz", t, len - 40);
  ck_assert_int_eq(run(NULL, "--data", fixture_words(), "--load", trunc, NULL), 1);
  ck_assert_msg(strstr(tr_errbuf, "trunc.npz: not a checkpoint"), "%s", tr_errbuf);
  t[200] ^= 0x40;   /* inside the first entries' data */
  const char *flip = write_file("flip.npz", t, len);
  ck_assert_int_eq(run(NULL, "--data", fixture_words(), "--load", flip, NULL), 1);
  ck_assert_msg(strstr(tr_errbuf, "flip.npz: corrupt checkpoint"), "%s", tr_errbuf);
  const char *junk = WRITE("junk.npz", "hello");
  ck_assert_int_eq(run(NULL, "--data", fixture_words(), "--load", junk, NULL), 1);
  ck_assert_msg(strstr(tr_errbuf, "junk.npz: not a checkpoint"), "%s", tr_errbuf);
  free(t);
}
END_TEST

/* A NaN in the loss (or Inf in a gradient) stops training, names the step and
 * the first non-finite tensor, and leaves the last checkpoint intact. */
START_TEST(t_nonfinite) {
  const char *c = tmp_path("nan.npz");
  remove(c);
  fix_poison_forward = 12;
  ck_assert_int_eq(run(NULL, "--data", fixture_words(), "--steps", "30", "--save", c,
                       "--save-every", "5", "--quiet", NULL), 1);
  ck_assert_msg(strstr(tr_errbuf, "step 12: the loss is nan; first non-finite tensor: logits "
                       "(spec line 10)"), "%s", tr_errbuf);
  ck_assert_msg(strstr(tr_errbuf, "last checkpoint is kept"), "%s", tr_errbuf);
  const char *out;
  ck_assert_int_eq(run(&out, "--data", fixture_words(), "--steps", "10", "--load", c, "--samples",
                       "0", "--quiet", NULL), 0);
  ck_assert_msg(strstr(out, "at step 10\n"), "%s", out);
  fix_poison_grad = 3;
  ck_assert_int_eq(run(NULL, "--data", fixture_words(), "--steps", "30", "--quiet", NULL), 1);
  ck_assert_msg(strstr(tr_errbuf, "step 3: non-finite gradient; first non-finite tensor: dc "
                       "(spec line 9)"), "%s", tr_errbuf);
}
END_TEST

/* The trainer compiled by libtcc (with the fixture model) prints the same
 * per-step losses as the gcc-compiled one in this binary. */
START_TEST(t_tcc_matches_gcc) {
  const char *d = getenv("BPGEN_TESTS");
  char *fix = slurp(arena_printf("%s/fixtures/bigram.c", d ? d : "tests"), NULL);
  ck_assert_ptr_nonnull(fix);
  const char *src = arena_printf("#include <string.h>\n#include <math.h>\n%s\n%s\n%s",
                                 embedded_text("runtime/bp_runtime.h"), fix,
                                 template_fill(embedded_text("templates/trainer.c"), NULL, NULL, 0));
  free(fix);
  TCCState *s = tcc_new();
  ck_assert_ptr_nonnull(s);
  tcc_set_output_type(s, TCC_OUTPUT_MEMORY);
  tcc_set_options(s, "-std=c99");
  ck_assert_int_eq(tcc_compile_string(s, src), 0);
  tcc_add_library(s, "m");
  ck_assert_int_ge(tcc_relocate(s, TCC_RELOCATE_AUTO), 0);
  int (*fn)(const BpModel *, int, char **) = (int (*)(const BpModel *, int, char **))tcc_get_symbol(s, "bp_train_main");
  const BpModel *m = tcc_get_symbol(s, "bigram_model");
  ck_assert_ptr_nonnull(fn);
  ck_assert_ptr_nonnull(m);
  const char *a = tmp_path("gcc.csv"), *b = tmp_path("tcc.csv");
  ck_assert_int_eq(run(NULL, "--data", fixture_words(), "--steps", "50", "--optimizer", "adamw",
                       "--eval-every", "10", "--log", a, "--samples", "0", "--quiet", NULL), 0);
  char *argv[] = {"train", "--data", (char *)fixture_words(), "--steps", "50", "--optimizer", "adamw",
                  "--eval-every", "10", "--log", (char *)b, "--samples", "0", "--quiet", NULL};
  FILE *save = stdout;
  stdout = fopen("/dev/null", "w");
  int rc = fn(m, 14, argv);
  fclose(stdout);
  stdout = save;
  ck_assert_int_eq(rc, 0);
  tcc_delete(s);
  size_t la, lb;
  char *ta = slurp(a, &la), *tb = slurp(b, &lb);
  ck_assert_msg(la == lb && memcmp(ta, tb, la) == 0, "logs differ:\n%s\n---\n%s", ta, tb);
  free(ta);
  free(tb);
}
END_TEST

/* Per-step losses of two --log files agree to f32 rounding; returns the max
 * relative difference (or 1e9 when the files do not line up). */
static double log_diff(const char *a, const char *b, int *rows) {
  FILE *fa = fopen(a, "r"), *fb = fopen(b, "r");
  double worst = 0;
  char la[256], lb[256];
  *rows = 0;
  if (!fa || !fb)
    worst = 1e9;
  while (worst < 1e9 && fgets(la, sizeof la, fa)) {
    if (!fgets(lb, sizeof lb, fb)) {
      worst = 1e9;
      break;
    }
    if (strncmp(la, "step", 4) == 0)
      continue;
    long sa, sb;
    double xa, xb;
    if (sscanf(la, "%ld,%lf", &sa, &xa) != 2 || sscanf(lb, "%ld,%lf", &sb, &xb) != 2 || sa != sb) {
      worst = 1e9;
      break;
    }
    double d = fabs(xa - xb) / fabs(xa);
    worst = d > worst ? d : worst;
    ++*rows;
  }
  if (fa && fb && fgets(lb, sizeof lb, fb))
    worst = 1e9;
  if (fa) fclose(fa);
  if (fb) fclose(fb);
  return worst;
}

/* The lecture's spec, shrunk: `bpgen SPEC --trainer` built by gcc and the
 * in-memory trainer print the same losses (to f32 rounding). */
START_TEST(t_spec_gcc_vs_jit) {
  if (access("gen/emit.c", F_OK) != 0)
    return;   /* TEMPORARY: the emitter is not merged into this tree yet */
  DimOverride ovr[] = {{"V", 6, false}, {"H", 16, false}, {"B", 8, false}};
  Graph *g = parse_spec(read_src(arena_printf("%s/makemore.spec", specs_dir())), ovr, 3);
  grad_build(g);
  EmitOptions gopt = {DT_F32, "makemore", false, true, false};
  const char *csrc = tmp_path("train.c"), *bin = tmp_path("train");
  const char *text = trainer_source(g, &gopt);
  write_file("train.c", text, strlen(text));
  ck_assert_int_eq(system(arena_printf("gcc -O2 -o %s %s -lm -lpthread", bin, csrc)), 0);
  const char *a = tmp_path("spec_gcc.csv"), *b = tmp_path("spec_jit.csv");
  const char *args = arena_printf("--data %s --steps 60 --eval-every 20 --samples 3 --quiet",
                                  fixture_words());
  ck_assert_int_eq(system(arena_printf("%s %s --log %s > %s", bin, args, a, tmp_path("gcc.out"))), 0);

  EmitOptions jopt = {DT_F32, "makemore", true, false, false};
  Jit *j = jit_compile(trainer_source(g, &jopt), "makemore.spec");
  int (*fn)(const BpModel *, int, char **) =
    (int (*)(const BpModel *, int, char **))jit_symbol(j, "bp_train_main");
  const BpModel *m = jit_symbol(j, "makemore_model");
  ck_assert_ptr_nonnull(fn);
  ck_assert_ptr_nonnull(m);
  char *argv[] = {"train", "--data", (char *)fixture_words(), "--steps", "60", "--eval-every", "20",
                  "--samples", "3", "--quiet", "--log", (char *)b, NULL};
  FILE *save = stdout;
  stdout = fopen(tmp_path("jit.out"), "w");
  int rc = fn(m, 12, argv);
  fclose(stdout);
  stdout = save;
  jit_free(j);
  ck_assert_int_eq(rc, 0);
  int rows;
  double d = log_diff(a, b, &rows);
  ck_assert_msg(d < 1e-5, "gcc and in-memory losses differ: max relative diff %g", d);
  ck_assert_int_eq(rows, 60);
  /* and the results (final losses, samples) match */
  size_t l1, l2;
  char *o1 = slurp(tmp_path("gcc.out"), &l1), *o2 = slurp(tmp_path("jit.out"), &l2);
  ck_assert_msg(strstr(o1, "train loss") && l1 == l2 && memcmp(o1, o2, l1) == 0, "outputs differ:\n%s\n---\n%s", o1, o2);
  free(o1);
  free(o2);
}
END_TEST

/* ---- tensor data (--data-x/--data-y .npy files) ------------------------------ */

/* A version 1.0 .npy file with header dict `dict` (padded as numpy pads it)
 * and `n` bytes of data; `version` other than 1 writes that version byte with
 * a 4-byte header length. */
static const char *npy_file(const char *name, int version, const char *dict, const void *data,
                            size_t n) {
  size_t hl = version == 1 ? 10 : 12, dl = strlen(dict);
  size_t total = (hl + dl + 1 + 63) / 64 * 64, hlen = total - hl;
  unsigned char *b = calloc(1, total + n + 1);
  memcpy(b, "\x93NUMPY", 6);
  b[6] = (unsigned char)version;
  b[8] = (unsigned char)(hlen & 0xFF);
  b[9] = (unsigned char)(hlen >> 8);
  memcpy(b + hl, dict, dl);
  memset(b + hl + dl, ' ', hlen - dl - 1);
  b[total - 1] = '\n';
  if (n)
    memcpy(b + total, data, n);
  const char *p = write_file(name, (const char *)b, total + n);
  free(b);
  return p;
}

/* An int32 (N, 2) X and (N,) Y for the bigram: Y = (X[:,1] + 1) mod 6, an
 * easy rule the bigram learns exactly; `bad_row` >= 0 puts y = 6 there. */
static void bigram_tensors(const char *xname, const char *yname, int n, int bad_row,
                           const char **xp, const char **yp) {
  int32_t x[2 * 64], y[64];
  ck_assert_int_le(n, 64);
  for (int i = 0; i < n; i++) {
    x[2 * i] = (i * 5) % 6;
    x[2 * i + 1] = (i * 7 + 3) % 6;
    y[i] = (x[2 * i + 1] + 1) % 6;
  }
  if (bad_row >= 0)
    y[bad_row] = 6;
  *xp = npy_file(xname, 1, arena_printf("{'descr': '<i4', 'fortran_order': False, 'shape': (%d, 2), }", n),
                 x, (size_t)n * 8);
  *yp = npy_file(yname, 1, arena_printf("{'descr': '<i4', 'fortran_order': False, 'shape': (%d,), }", n),
                 y, (size_t)n * 4);
}

START_TEST(t_tensor_learns) {
  const char *x, *y, *dx, *dy, *tx, *ty, *out;
  bigram_tensors("tx.npy", "ty.npy", 40, -1, &x, &y);
  bigram_tensors("tdx.npy", "tdy.npy", 13, -1, &dx, &dy);
  bigram_tensors("ttx.npy", "tty.npy", 7, -1, &tx, &ty);
  const char *log = tmp_path("tensor.csv");
  ck_assert_int_eq(run(&out, "--data-x", x, "--data-y", y, "--dev-x", dx, "--dev-y", dy, "--test-x",
                       tx, "--test-y", ty, "--steps", "300", "--lr", "2", "--log", log,
                       "--print-every", "100", NULL), 0);
  ck_assert_msg(strstr(out, "data: tensors; examples train 40, dev 13, test 7\n"), "%s", out);
  ck_assert_msg(strstr(out, "inputs X int[4, 2] <- ") && strstr(out, "Y int[4] <- "), "%s", out);
  const char *tl = strstr(out, "train loss "), *dl = strstr(out, "dev loss "), *el = strstr(out, "test loss ");
  ck_assert_msg(tl && dl && el, "%s", out);
  ck_assert_msg(atof(tl + 11) < 0.3 && atof(dl + 9) < 0.3 && atof(el + 10) < 0.3,
                "losses should fall far below log 6 = 1.79:\n%s", out);
  ck_assert_msg(strchr(el, '\n')[1] == '\0', "no samples after the losses:\n%s", out);
  /* the log's first loss is near log 6, its last far below */
  size_t len;
  char *text = slurp(log, &len);
  ck_assert_ptr_nonnull(text);
  double first = atof(strchr(strstr(text, "\n0,"), ',') + 1);
  const char *last = text + len - 2;
  while (last > text && *last != '\n')
    last--;
  double fin = atof(strchr(last + 1, ',') + 1);
  ck_assert_msg(first > 1.5 && fin < 0.3, "loss %g -> %g", first, fin);
  free(text);
  /* one uninterrupted run and a resumed one log the same losses, bit for bit */
  const char *a = tmp_path("ta.csv"), *b = tmp_path("tb.csv"), *ck = tmp_path("t.npz");
  remove(ck);
  ck_assert_int_eq(run(NULL, "--data-x", x, "--data-y", y, "--dev-x", dx, "--dev-y", dy, "--steps",
                       "30", "--eval-every", "7", "--log", a, "--quiet", NULL), 0);
  ck_assert_int_eq(run(NULL, "--data-x", x, "--data-y", y, "--dev-x", dx, "--dev-y", dy, "--steps",
                       "12", "--decay-at", "15", "--eval-every", "7", "--log", b, "--save", ck,
                       "--quiet", NULL), 0);
  ck_assert_int_eq(run(NULL, "--data-x", x, "--data-y", y, "--dev-x", dx, "--dev-y", dy, "--steps",
                       "30", "--eval-every", "7", "--log", b, "--save", ck, "--resume", "--quiet",
                       NULL), 0);
  size_t la, lb;
  char *ta = slurp(a, &la), *tb = slurp(b, &lb);
  ck_assert_msg(la == lb && memcmp(ta, tb, la) == 0, "logs differ:\n%s\n---\n%s", ta, tb);
  free(ta);
  free(tb);
}
END_TEST

/* Malformed files and data that does not fit the model: each stops with the
 * file (and row) named. */
START_TEST(t_tensor_errors) {
  const char *x, *y, *bx, *by;
  bigram_tensors("ex.npy", "ey.npy", 5, -1, &x, &y);
  bigram_tensors("bx.npy", "by.npy", 5, 2, &bx, &by);
  int32_t d[16] = {0, 1, 2, 3, 4, 5, 0, 1, 2, -1}, good[16] = {0, 1, 2, 3, 4, 5, 0, 1, 2, 3};
  static const char *const F = "'fortran_order': False";
  static const struct { const char *name, *dict; int version; size_t n; const char *err; } files[] = {
    {"big.npy", "{'descr': '>i4', %s, 'shape': (5, 2), }", 1, 40, "big.npy: big-endian data ('>i4')"},
    {"f2.npy", "{'descr': '<f2', %s, 'shape': (5, 2), }", 1, 20, "f2.npy: dtype '<f2' is not supported"},
    {"float.npy", "{'descr': '<f4', %s, 'shape': (5, 2), }", 1, 40,
     "float.npy: holds floats ('<f4') but input X is int"},
    {"trunc.npy", "{'descr': '<i4', %s, 'shape': (5, 2), }", 1, 36,
     "trunc.npy: truncated data: <i4 (5, 2) needs 40 bytes, the file has 36"},
    {"extra.npy", "{'descr': '<i4', %s, 'shape': (5, 2), }", 1, 44, "extra.npy: 44 bytes of data"},
    {"shape.npy", "{'descr': '<i4', %s, 'shape': (5, 1), }", 1, 20,
     "shape.npy: shape (5, 1) does not match input X (4, 2): expected (N, 2)"},
    {"rank.npy", "{'descr': '<i4', %s, 'shape': (10,), }", 1, 40, "rank.npy: shape (10,) does not match"},
    {"count.npy", "{'descr': '<i4', %s, 'shape': (4, 2), }", 1, 32,
     "ey.npy has 5 examples but /tmp"},   /* x with 4 rows, y with 5: reported at y */
    {"neg.npy", "{'descr': '<i4', %s, 'shape': (5, 2), }", 1, 40,
     "neg.npy: row 4: index -1 is negative"},
    {"syntax.npy", "{'descr': '<i4', %s, 'shape': (5 2), }", 1, 40, "syntax.npy: bad .npy header"},
    {"nokey.npy", "{'descr': '<i4', 'shape': (5, 2), }", 1, 40,
     "nokey.npy: bad .npy header (needs descr, fortran_order and shape)"},
    {"unq.npy", "{descr: '<i4', %s, 'shape': (5, 2), }", 1, 40, "unq.npy: bad .npy header"},
    {"v9.npy", "{'descr': '<i4', %s, 'shape': (5, 2), }", 9, 40, "v9.npy: unknown .npy version 9"},
    {"v2.npy", "{'descr': '<i4', %s, 'shape': (5, 2), }", 2, 40, NULL},   /* fine */
  };
  for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
    const char *p = npy_file(files[i].name, files[i].version, arena_printf(files[i].dict, F),
                             files[i].err ? d : good, files[i].n);
    int rc = run(NULL, "--data-x", p, "--data-y", y, "--steps", "2", "--quiet", NULL);
    if (!files[i].err) {
      ck_assert_msg(rc == 0, "%s: %s", files[i].name, tr_errbuf);
      continue;
    }
    ck_assert_msg(rc == 1, "%s: expected an error", files[i].name);
    ck_assert_msg(strstr(tr_errbuf, files[i].err), "%s: error '%s' lacks '%s'", files[i].name,
                  tr_errbuf, files[i].err);
  }
  /* Fortran order is read as C order: the -1 stored 5th, (4, 0), is row 4 (row 2 in C order) */
  int32_t f[10] = {0, 1, 2, 3, -1, 5, 0, 1, 2, 3};
  const char *fp = npy_file("fort.npy", 1, "{'descr': '<i4', 'fortran_order': True, 'shape': (5, 2), }",
                            f, sizeof f);
  ck_assert_int_eq(run(NULL, "--data-x", fp, "--data-y", y, "--steps", "1", NULL), 1);
  ck_assert_msg(strstr(tr_errbuf, "fort.npy: row 4: index -1 is negative"), "%s", tr_errbuf);
  static const struct { const char *bytes; size_t n; const char *err; } raw[] = {
    {"hello", 5, "not a .npy file (bad magic)"},
    {"\x93NUMPY\x01\x00\xff\x00{'descr'", 17, "truncated .npy header (255 bytes announced"},
    {"", 0, "not a .npy file"},
  };
  for (size_t i = 0; i < sizeof raw / sizeof raw[0]; i++) {
    const char *p = write_file("raw.npy", raw[i].bytes, raw[i].n);
    ck_assert_int_eq(run(NULL, "--data-x", x, "--data-y", p, "--steps", "1", NULL), 1);
    ck_assert_msg(strstr(tr_errbuf, "raw.npy: ") && strstr(tr_errbuf, raw[i].err), "%s", tr_errbuf);
  }
  /* a class beyond the logits, in the dev split */
  ck_assert_int_eq(run(NULL, "--data-x", x, "--data-y", y, "--dev-x", bx, "--dev-y", by, NULL), 1);
  ck_assert_msg(strstr(tr_errbuf, "by.npy: row 2: class 6 is out of range 0..5 (logits has 6 classes)"),
                "%s", tr_errbuf);
  ck_assert_int_eq(run(NULL, "--data-x", tmp_path("none.npy"), "--data-y", y, NULL), 1);
  ck_assert_msg(strstr(tr_errbuf, "none.npy: cannot open"), "%s", tr_errbuf);
  static const struct { const char *a, *b, *c, *d, *err; int status; } opts[] = {
    {"--data-y", "Y", NULL, NULL, "--data-y needs --data-x too", 2},   /* the command line */
    {"--data-x", "X", "--data", "W", "not both", 2},
    {"--dev-x", "X", NULL, NULL, "--dev-x needs --data-x", 2},
    {"--data-x", "X", NULL, NULL, "has two inputs (X, Y): give --data-y too", 1},   /* the model */
  };
  for (size_t i = 0; i < sizeof opts / sizeof opts[0]; i++) {
    const char *a = opts[i].b[0] == 'X' ? x : opts[i].b[0] == 'Y' ? y : fixture_words();
    const char *c = opts[i].c ? fixture_words() : NULL;
    ck_assert_int_eq(run(NULL, opts[i].a, a, opts[i].c, c, NULL), opts[i].status);
    ck_assert_msg(strstr(tr_errbuf, opts[i].err), "%s: '%s' lacks '%s'", opts[i].a, tr_errbuf,
                  opts[i].err);
  }
  ck_assert_int_eq(run(NULL, "--data-x", x, "--data-y", y, "--dev-x", x, NULL), 1);
  ck_assert_msg(strstr(tr_errbuf, "give --dev-y too"), "%s", tr_errbuf);
}
END_TEST

/* specs/classify.spec compiled in memory: a float [B,F] input and int labels
 * of three separable clusters; the loss falls from ~log 3 to near 0.  Then an
 * index the trainer cannot check itself (makemore's C[X]) is found by the
 * forward pass over the data and reported with file and row. */
static int jit_train(Graph *g, const char *prefix, const char *errfile, const char *outfile, ...) {
  EmitOptions jopt = {DT_F32, prefix, true, false, false};
  Jit *j = jit_compile(trainer_source(g, &jopt), prefix);
  int (*fn)(const BpModel *, int, char **) =
    (int (*)(const BpModel *, int, char **))jit_symbol(j, "bp_train_main");
  const BpModel *m = jit_symbol(j, arena_printf("%s_model", prefix));
  ck_assert_ptr_nonnull(fn);
  ck_assert_ptr_nonnull(m);
  char *argv[32];
  va_list ap;
  va_start(ap, outfile);
  int argc = train_argv(argv, 32, ap);
  va_end(ap);
  fflush(stdout);
  fflush(stderr);
  FILE *so = stdout, *se = stderr;
  stdout = fopen(outfile, "w");
  stderr = fopen(errfile, "w");
  int rc = fn(m, argc, argv);
  fclose(stdout);
  fclose(stderr);
  stdout = so;
  stderr = se;
  jit_free(j);
  return rc;
}

START_TEST(t_tensor_spec) {
  enum { N = 96 };
  float x[N * 2];
  int64_t y[N];
  for (int i = 0; i < N; i++) {
    static const float c[3][2] = {{0, 2}, {2, -1}, {-2, -1}};
    y[i] = i % 3;
    x[2 * i] = c[y[i]][0] + 0.3f * (float)((i * 37) % 11 - 5) / 5;
    x[2 * i + 1] = c[y[i]][1] + 0.3f * (float)((i * 53) % 13 - 6) / 6;
  }
  const char *xp = npy_file("cx.npy", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (96, 2), }",
                            x, sizeof x);
  const char *yp = npy_file("cy.npy", 1, "{'descr': '<i8', 'fortran_order': False, 'shape': (96,), }",
                            y, sizeof y);
  Graph *g = parse_spec(read_src(arena_printf("%s/classify.spec", specs_dir())), NULL, 0);
  grad_build(g);
  const char *err = tmp_path("c.err"), *out = tmp_path("c.out"), *log = tmp_path("c.csv");
  ck_assert_int_eq(jit_train(g, "classify", err, out, "--data-x", xp, "--data-y", yp, "--dev-x", xp,
                             "--dev-y", yp, "--steps", "200", "--log", log, "--samples", "3", NULL), 0);
  char *o = slurp(out, NULL), *e = slurp(err, NULL), *l = slurp(log, NULL);
  ck_assert_msg(strstr(e, "note: --samples ignored"), "%s", e);
  double first = atof(strchr(strstr(l, "\n0,"), ',') + 1);
  const char *tl = strstr(o, "train loss "), *dl = strstr(o, "dev loss ");
  ck_assert_msg(tl && dl, "%s", o);
  ck_assert_msg(first > 0.5 && atof(tl + 11) < 0.05 && fabs(atof(tl + 11) - atof(dl + 9)) < 1e-4,
                "loss %g -> train %g, dev %g", first, atof(tl + 11), atof(dl + 9));
  free(o);
  free(e);
  free(l);

  /* makemore (V = 6) on int tensors: row 3 of the dev X indexes C out of range */
  int32_t xi[8 * 3], yi[8];
  for (int i = 0; i < 8; i++) {
    xi[3 * i] = 0, xi[3 * i + 1] = i % 6, xi[3 * i + 2] = (i + 1) % 6;
    yi[i] = (i + 2) % 6;
  }
  const char *xa = npy_file("mx.npy", 1, "{'descr': '<i4', 'fortran_order': False, 'shape': (8, 3), }",
                            xi, sizeof xi);
  const char *ya = npy_file("my.npy", 1, "{'descr': '<i4', 'fortran_order': False, 'shape': (8,), }",
                            yi, sizeof yi);
  xi[3 * 3 + 1] = 6;
  const char *xb = npy_file("mbad.npy", 1, "{'descr': '<i4', 'fortran_order': False, 'shape': (8, 3), }",
                            xi, sizeof xi);
  DimOverride ovr[] = {{"V", 6, false}, {"H", 8, false}, {"B", 4, false}};
  Graph *mg = parse_spec(read_src(arena_printf("%s/makemore.spec", specs_dir())), ovr, 3);
  grad_build(mg);
  ck_assert_int_eq(jit_train(mg, "makemore", err, out, "--data-x", xa, "--data-y", ya, "--dev-x", xb,
                             "--dev-y", ya, "--steps", "5", NULL), 1);
  e = slurp(err, NULL);
  ck_assert_msg(strstr(e, "mbad.npy: row 3: the model's loss is NaN for this example: an index out "
                       "of the model's range (X holds indices): 6 at position 1 of the row"), "%s", e);
  free(e);
}
END_TEST

/* A NaN loss at initialisation that comes from a value, with labels in range,
 * names the first non-finite tensor, not the labels (issue 10, item 4). */
START_TEST(t_tensor_nan_blame) {
  float x[4 * 2] = {1, -2, 2, 1, 1, 1, 3, 0};   /* row 0: X @ W = -1 with W = ones */
  int64_t y[4] = {0, 1, 2, 0};
  const char *xp = npy_file("nx.npy", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (4, 2), }",
                            x, sizeof x);
  const char *yp = npy_file("ny.npy", 1, "{'descr': '<i8', 'fortran_order': False, 'shape': (4,), }",
                            y, sizeof y);
  Graph *g = parse_text("dim B = 4\ndim F = 2\ndim K = 3\ninput X : [B, F]\ninput Y : int[B]\n"
                        "param W : [F, K] ~ ones\nloss = cross_entropy(log(X @ W), Y)\n");
  grad_build(g);
  const char *err = tmp_path("n.err"), *out = tmp_path("n.out");
  ck_assert_int_eq(jit_train(g, "neg", err, out, "--data-x", xp, "--data-y", yp, "--steps", "3",
                             NULL), 1);
  char *e = slurp(err, NULL);
  ck_assert_msg(strstr(e, "nx.npy, ") && strstr(e, "ny.npy: row 0: the model's loss is ") &&
                strstr(e, "for this example at initialisation; first non-finite tensor: logits "
                       "(spec line 7)"), "%s", e);
  ck_assert_msg(!strstr(e, "holds indices") && !strstr(e, "out of"), "%s", e);
  free(e);
}
END_TEST

/* AdamW's second moment overflows (a gradient of 4e20: its square is above
 * FLT_MAX) while the params stay finite: that is not saved either. */
START_TEST(t_moments_checkpoint) {
  float x[4 * 2] = {1, 1, 1, 1, 1, 1, 1, 1};
  const char *xp = npy_file("bx.npy", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (4, 2), }",
                            x, sizeof x);
  Graph *g = parse_text("dim B = 4\ndim F = 2\ninput X : [B, F]\nparam W : [F] ~ ones\n"
                        "loss = sum(X * W) * 1e20\n");
  grad_build(g);
  const char *err = tmp_path("m.err"), *out = tmp_path("m.out"), *c = tmp_path("m.npz");
  remove(c);
  ck_assert_int_eq(jit_train(g, "big", err, out, "--data-x", xp, "--steps", "5", "--optimizer",
                             "adamw", "--save", c, "--save-every", "1", NULL), 1);
  char *e = slurp(err, NULL);
  ck_assert_msg(strstr(e, "step 3: the AdamW moments of W hold a non-finite value (spec line 4; ") &&
                strstr(e, "m.npz keeps the last one"), "%s", e);
  free(e);
}
END_TEST

/* A checkpoint never holds a NaN or Inf: with --lr 1e39 the first update
 * overflows the params, and the checkpoint is not written (or stays as it
 * was) (issue 10, item 5). */
START_TEST(t_nonfinite_checkpoint) {
  const char *c = tmp_path("inf.npz");
  remove(c);
  ck_assert_int_eq(run(NULL, "--data", fixture_words(), "--steps", "10", "--lr", "1e39", "--save", c,
                       "--save-every", "1", "--quiet", NULL), 1);
  ck_assert_msg(strstr(tr_errbuf, "step 1: W holds a non-finite value (spec line 8; the learning "
                       "rate too high?): no checkpoint written; ") &&
                strstr(tr_errbuf, "inf.npz does not exist yet"), "%s", tr_errbuf);
  ck_assert_int_eq(access(c, F_OK), -1);
  ck_assert_int_eq(run(NULL, "--data", fixture_words(), "--steps", "1", "--decay-at", "1", "--lr",
                       "1e39", "--save", c, "--quiet", NULL), 1);   /* the save at the end */
  ck_assert_msg(strstr(tr_errbuf, "step 1: W holds a non-finite value"), "%s", tr_errbuf);
  ck_assert_int_eq(access(c, F_OK), -1);
  static const char *opt[] = {"sgd", "adamw"};
  for (int k = 0; k < 2; k++) {
    ck_assert_int_eq(run(NULL, "--data", fixture_words(), "--steps", "5", "--optimizer", opt[k],
                         "--save", c, "--samples", "0", "--quiet", NULL), 0);
    size_t l1, l2;
    char *t1 = slurp(c, &l1);
    ck_assert_int_eq(run(NULL, "--data", fixture_words(), "--steps", "10", "--optimizer", opt[k],
                         "--lr", "1e39", "--decay-at", "10", "--save", c, "--save-every", "1",
                         "--resume", "--quiet", NULL), 1);
    ck_assert_msg(strstr(tr_errbuf, "step 6: W holds a non-finite value") &&
                  strstr(tr_errbuf, "inf.npz keeps the last one"), "%s: %s", opt[k], tr_errbuf);
    char *t2 = slurp(c, &l2);
    ck_assert_msg(l1 == l2 && memcmp(t1, t2, l1) == 0, "%s: the step-5 checkpoint changed", opt[k]);
    free(t1);
    free(t2);
  }
}
END_TEST

/* --save FILE is locked for the run: a second writer is refused before it
 * trains; the lock goes when the run ends (issue 10, item 12). */
START_TEST(t_save_lock) {
  const char *c = tmp_path("lock.npz"), *lk = tmp_path("lock.npz.lock");
  int fd = open(lk, O_RDWR | O_CREAT, 0644);
  ck_assert_int_ge(fd, 0);
  ck_assert_int_eq(flock(fd, LOCK_EX | LOCK_NB), 0);   /* "another run" */
  ck_assert_int_eq(write(fd, "4242\n", 5), 5);
  ck_assert_int_eq(run(NULL, "--data", fixture_words(), "--steps", "3", "--save", c, "--quiet", NULL), 1);
  ck_assert_msg(strstr(tr_errbuf, "--save ") && strstr(tr_errbuf, "lock.npz: another run is writing "
                       "this checkpoint (process 4242 holds "), "%s", tr_errbuf);
  ck_assert_int_eq((int)fix_nforward, 0);   /* refused before training */
  ck_assert_int_eq(access(c, F_OK), -1);
  close(fd);
  ck_assert_int_eq(run(NULL, "--data", fixture_words(), "--steps", "3", "--save", c, "--quiet", NULL), 0);
  ck_assert_int_eq(access(c, F_OK), 0);
  ck_assert_int_eq(access(lk, F_OK), -1);   /* removed at the end */
  ck_assert_int_eq(run(NULL, "--data", fixture_words(), "--steps", "5", "--save", c, "--resume",
                       "--quiet", NULL), 0);
}
END_TEST

/* --save and --load are checked before training: a directory to load, a
 * directory that does not exist, a FIFO or a directory to save over; stale
 * temporary files of killed runs are removed (issue 10, item 14). */
START_TEST(t_save_checked_first) {
  ck_assert_int_eq(run(NULL, "--data", fixture_words(), "--load", tmpdir, "--quiet", NULL), 1);
  ck_assert_msg(strstr(tr_errbuf, ": is a directory, not a checkpoint file (.npz)"), "%s", tr_errbuf);
  ck_assert_int_eq(run(NULL, "--data", fixture_words(), "--steps", "1000", "--save",
                       tmp_path("no/such/c.npz"), "--quiet", NULL), 1);
  ck_assert_msg(strstr(tr_errbuf, "no/such/c.npz: cannot create files in ") &&
                strstr(tr_errbuf, "no/such: No such file or directory"), "%s", tr_errbuf);
  ck_assert_int_eq((int)fix_nforward, 0);
  const char *fifo = tmp_path("fifo");
  ck_assert_int_eq(mkfifo(fifo, 0644), 0);
  ck_assert_int_eq(run(NULL, "--data", fixture_words(), "--steps", "3", "--save", fifo, "--quiet",
                       NULL), 1);
  ck_assert_msg(strstr(tr_errbuf, "fifo: is a FIFO: a checkpoint is written beside it and renamed "
                       "over it"), "%s", tr_errbuf);
  struct stat st;
  ck_assert_int_eq(stat(fifo, &st), 0);
  ck_assert_msg(S_ISFIFO(st.st_mode), "the FIFO was replaced");
  ck_assert_int_eq(run(NULL, "--data", fixture_words(), "--steps", "3", "--save", tmpdir, "--quiet",
                       NULL), 1);
  ck_assert_msg(strstr(tr_errbuf, ": is a directory: a checkpoint"), "%s", tr_errbuf);
  ck_assert_int_eq((int)fix_nforward, 0);
  /* FILE.tmpPID of a dead process, or of this one, is stale; a live one's is not */
  const char *c = tmp_path("st.npz");
  const char *dead = arena_printf("%s.tmp99999999", c), *mine = arena_printf("%s.tmp%ld", c, (long)getpid());
  const char *live = arena_printf("%s.tmp%ld", c, (long)getppid()), *other = arena_printf("%s.tmpx", c);
  write_file("st.npz.tmp99999999", "x", 1);
  write_file(arena_printf("st.npz.tmp%ld", (long)getpid()), "x", 1);
  write_file(arena_printf("st.npz.tmp%ld", (long)getppid()), "x", 1);
  write_file("st.npz.tmpx", "x", 1);
  ck_assert_int_eq(run(NULL, "--data", fixture_words(), "--steps", "3", "--save", c, "--quiet", NULL), 0);
  ck_assert_int_eq(access(dead, F_OK), -1);
  ck_assert_int_eq(access(mine, F_OK), -1);
  ck_assert_int_eq(access(live, F_OK), 0);
  ck_assert_int_eq(access(other, F_OK), 0);
}
END_TEST

/* The log after a kill: rows past the checkpoint and a torn last line are cut
 * on resume, so the log equals one uninterrupted run's; a resumed run that
 * starts a new log writes its header (issue 10, item 13). */
START_TEST(t_log_resume) {
  const char *a = tmp_path("la.csv"), *b = tmp_path("lb.csv"), *ck = tmp_path("l.npz");
  remove(ck);
  ck_assert_int_eq(run(NULL, "--data", fixture_words(), "--steps", "30", "--eval-every", "7", "--log",
                       a, "--samples", "0", "--quiet", NULL), 0);
  ck_assert_int_eq(run(NULL, "--data", fixture_words(), "--steps", "20", "--decay-at", "15",
                       "--eval-every", "7", "--log", b, "--save", ck, "--samples", "0", "--quiet",
                       NULL), 0);
  FILE *f = fopen(b, "a");   /* what a run killed after step 22 leaves */
  ck_assert_ptr_nonnull(f);
  fputs("20,1.5,\n21,1.25,1.75\n22,1.", f);
  fclose(f);
  ck_assert_int_eq(run(NULL, "--data", fixture_words(), "--steps", "30", "--eval-every", "7", "--log",
                       b, "--save", ck, "--resume", "--samples", "0", "--quiet", NULL), 0);
  size_t la, lb;
  char *ta = slurp(a, &la), *tb = slurp(b, &lb);
  ck_assert_msg(la == lb && memcmp(ta, tb, la) == 0, "logs differ:\n%s\n---\n%s", ta, tb);
  free(ta);
  free(tb);
  const char *n = tmp_path("lnew.csv");
  remove(n);
  ck_assert_int_eq(run(NULL, "--data", fixture_words(), "--steps", "33", "--log", n, "--save", ck,
                       "--resume", "--samples", "0", "--quiet", NULL), 0);
  char *tn = slurp(n, NULL);
  ck_assert_msg(strncmp(tn, "step,loss,dev_loss\n30,", 22) == 0, "%s", tn);
  free(tn);
  const char *junk = WRITE("ljunk.csv", "not,a,log\n1,2,3\n");
  ck_assert_int_eq(run(NULL, "--data", fixture_words(), "--steps", "35", "--log", junk, "--save", ck,
                       "--resume", "--quiet", NULL), 1);
  ck_assert_msg(strstr(tr_errbuf, "ljunk.csv: not a training log"), "%s", tr_errbuf);
  char *tj = slurp(junk, NULL);
  ck_assert_str_eq(tj, "not,a,log\n1,2,3\n");
  free(tj);
}
END_TEST

/* Run alone by tests/driver.sh with TMPDIR set: the scratch directory is made
 * there, and nothing is left behind after the runner ends (issue 10, item 14). */
START_TEST(t_tmpdir) {
  const char *t = getenv("TMPDIR");
  if (t && t[0])
    ck_assert_msg(strncmp(tmp_path("x"), t, strlen(t)) == 0, "%s is not in %s", tmp_path("x"), t);
  const char *c = tmp_path("td.npz");
  ck_assert_int_eq(run(NULL, "--data", fixture_words(), "--steps", "3", "--save", c, "--log",
                       tmp_path("td.csv"), "--quiet", NULL), 0);
  ck_assert_int_eq(access(c, F_OK), 0);
}
END_TEST

static Suite *make_suite(void) {
  Suite *s = suite_create("train");
  TCase *tc = tcase_create("core");
  tcase_add_test(tc, t_vocab_contexts);
  tcase_add_test(tc, t_line_rules);
  tcase_add_test(tc, t_vocab_mismatch);
  tcase_add_test(tc, t_split_loss_exact);
  tcase_add_test(tc, t_train_learns);
  tcase_add_test(tc, t_adamw_learns);
  tcase_add_test(tc, t_options);
  tcase_add_test(tc, t_adamw_formula);
  tcase_add_test(tc, t_lr_schedule);
  tcase_add_test(tc, t_schedule_options);
  tcase_add_test(tc, t_torch_randperm);
  tcase_add_test(tc, t_seq_rows);
  tcase_add_test(tc, t_seq_split_loss);
  tcase_add_test(tc, t_seq_train);
  tcase_add_test(tc, t_sample_causal);
  tcase_add_test(tc, t_stream_tokens);
  tcase_add_test(tc, t_stream_text);
  tcase_add_test(tc, t_stream_resume);
  tcase_add_test(tc, t_resume_bitexact);
  tcase_add_test(tc, t_checkpoint_roundtrip);
  tcase_add_test(tc, t_checkpoint_corrupt);
  tcase_add_test(tc, t_nonfinite);
  tcase_add_test(tc, t_tcc_matches_gcc);
  tcase_add_test(tc, t_spec_gcc_vs_jit);
  tcase_add_test(tc, t_tensor_learns);
  tcase_add_test(tc, t_tensor_errors);
  tcase_add_test(tc, t_tensor_spec);
  tcase_add_test(tc, t_nonfinite_checkpoint);
  tcase_add_test(tc, t_moments_checkpoint);
  tcase_add_test(tc, t_save_lock);
  tcase_add_test(tc, t_save_checked_first);
  tcase_add_test(tc, t_log_resume);
  tcase_add_test(tc, t_tensor_nan_blame);
  tcase_add_unchecked_fixture(tc, tmpdir_make, tmpdir_remove);
  tcase_set_timeout(tc, 60);
  suite_add_tcase(s, tc);
  /* tests/driver.sh runs this case alone with TMPDIR set and finds nothing left */
  TCase *td = tcase_create("tmpdir");
  tcase_add_test(td, t_tmpdir);
  tcase_add_unchecked_fixture(td, tmpdir_make, tmpdir_remove);
  suite_add_tcase(s, td);
  return s;
}
TESTS_REGISTER(make_suite)
