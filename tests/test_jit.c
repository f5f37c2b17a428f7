/* test_jit.c: generated code compiled in memory by libtcc, run inside this
 * (sanitised) test binary, against the reference runtime: every spec in
 * specs/ and a small spec per op, f32 and f64, fused and --expand, odd shapes;
 * the BpModel ABI (tensor table, contiguous params, init equal to the
 * runtime's, calibration, bad indices); the check failing on a broken rule.
 */
#include "tests.h"
#include "bp_runtime.h"
#include "ref.h"
#define BP_KERNELS_DECLARE_ONLY
#include "kernels.h"

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Runs check_graphs on spec text; fails the test with the table when a tensor
 * is out of tolerance.  Returns the number out of tolerance. */
static int check_text(const char *name, const char *text, DType dt, bool expand, DimOverride *ovr, int novr,
                      bool expect_pass) {
  Graph *gf = parse_spec(src_from_string(name, text), ovr, novr);
  Graph *gg = expand ? expand_fused(gf) : gf;
  grad_build(gg);
  char *buf = NULL;
  size_t len = 0;
  FILE *out = open_memstream(&buf, &len);
  int nfail = check_graphs(gf, gg, dt, 2147483647u, 0, out);
  fclose(out);
  if (expect_pass)
    ck_assert_msg(nfail == 0, "%s (%s%s): %d tensors out of tolerance\n%s", name, dt == DT_F64 ? "f64" : "f32",
                  expand ? ", expanded" : "", nfail, buf);
  free(buf);
  return nfail;
}

static const char *slurp(const char *path) { return read_src(path)->text; }

/* ---- every spec in specs/ ---------------------------------------------------- */


/* every spec, f32 and f64, fused and expanded; a big one (more than 50,000
 * params) at small odd sizes: the same code paths, a fraction of the time */
START_TEST(every_spec) {
  const char *paths[64];
  int n = spec_paths(paths, 64);
  for (int i = 0; i < n; i++) {
    DimOverride ovr[8];
    int novr = spec_small_dims(paths[i], ovr);
    for (int dt = 0; dt < 2; dt++)
      for (int ex = 0; ex < 2; ex++)
        check_text(paths[i], slurp(paths[i]), (DType)dt, ex, ovr, novr, true);
  }
}
END_TEST

/* odd shapes so nothing hard-codes the lecture's sizes (T too where the
 * spec's architecture allows another context: wavenet's three levels of pairs
 * need T = 8) */
START_TEST(odd_shapes) {
  const char *paths[64];
  int n = spec_paths(paths, 64);
  for (int i = 0; i < n; i++) {
    const char *text = slurp(paths[i]);
    DimOverride ovr[3] = {{"B", 7, false}, {"H", 13, false}, {"T", 4, false}};
    Graph *dg = parse_spec(src_from_string(paths[i], text), NULL, 0);
    int has = 0;
    for (int d = 0; d < dg->ndims; d++)
      has += !strcmp(dg->dims[d].name, "B") + !strcmp(dg->dims[d].name, "H") + !strcmp(dg->dims[d].name, "T");
    if (has < 3)
      continue;
    int novr = parses_with(paths[i], text, ovr, 3) ? 3 : 2;
    ck_assert_msg(parses_with(paths[i], text, ovr, novr), "%s does not take B = 7, H = 13", paths[i]);
    for (int dt = 0; dt < 2; dt++)
      check_text(paths[i], text, (DType)dt, dt == 1, ovr, novr, true);
  }
}
END_TEST

/* ---- one small spec per op ------------------------------------------------------ */

static const struct {
  const char *name, *text;
} op_specs[] = {
  {"elementwise",
   "dim N = 5\ndim K = 3\ninput x : [N, K]\nparam a : [K] ~ randn\nparam b : [N, 1] ~ randn * 0.5 + 2\n"
   "y1 = x * a - b\ny2 = y1 / (b ^ 2 + 1)\ny3 = exp(-y2) + sigmoid(y1)\n"
   "y4 = log(y3 + 3) * sqrt(b * b + 1)\nloss = mean(tanh(y4) + relu(y1)) + sum(a ^ -1) / N\n"},
  {"transpose",
   "dim B = 3\ndim T = 4\ndim C = 5\ninput x : [B, T, C]\nparam w : [T, T] ~ randn\nxt = transpose(x, 1, 2)\n"
   "y = tanh(xt @ w)\nz = transpose(y, dim0=0, dim1=2)\nloss = mean(z * z) + sum(transpose(w) * w)\n"},
  {"batchnorm_of_an_input",   /* no dx: the gain's gradient alone (bn_bwd_gain without its group) */
   "dim N = 6\ndim D = 4\ninput x : [N, D]\nparam g : [D] ~ randn * 0.1 + 1\nparam b : [D] ~ randn * 0.1\n"
   "param w : [D, 3] ~ randn\ny = batchnorm(x, g, b, eps=1e-5)\nloss = mean(tanh(y @ w))\n"},
  {"causal_mean_uniform",
   "dim B = 3\ndim T = 5\ndim C = 4\ninput x : [B, T, C]\nparam w : [C, C] ~ uniform / sqrt(C)\n"
   "y = causal_mean(tanh(x @ w))\nloss = mean(y * y) + sum(causal_mean(w))\n"},
  {"context",
   "dim B = 2\ndim T = 5\ndim V = 6\ndim E = 3\ninput X : int[B, T]\ninput Y : int[B, T]\n"
   "param wte : [V + 1, E] ~ randn\nparam W : [4*E, V] ~ randn\nctx = context(X, 4, fill=V)\n"
   "emb = reshape(wte[ctx], [B, T, 4*E])\nloss = cross_entropy(emb @ W, Y, ignore=-1)\n"},
  {"causal_softmax",
   "dim B = 2\ndim NH = 3\ndim T = 5\ndim HS = 4\ninput x : [B, NH, T, HS]\nparam wq : [HS, HS] ~ randn\n"
   "q = x @ wq\natt = causal_softmax(q @ transpose(x, 2, 3) / sqrt(HS))\ny = att @ x\nloss = mean(y * y)\n"},
  /* plan_attention: the scaling folded (c·x, x·c, x / c), products by blocks
   * (T = 37: blocks of 32 and a partial one; a [T, T] without batch axes), and
   * where it must not apply: a named scaled tensor, a product read elsewhere too */
  {"causal_attention_blocks",
   "dim B = 2\ndim NH = 2\ndim T = 37\ndim HS = 3\ninput x : [B, NH, T, HS]\nparam wq : [HS, HS] ~ randn\n"
   "param wk : [HS, HS] ~ randn\nparam a : [T, HS] ~ randn\nq = x @ wq\nk = x @ wk\n"
   "att = causal_softmax(0.5 * (q @ transpose(k, 2, 3)))\ns = q @ transpose(x, 2, 3) / 3\np = causal_softmax(s)\n"
   "r = causal_softmax(a @ transpose(a) * 2)\nu = q @ transpose(k, 2, 3)\nw = causal_softmax(u)\n"
   "loss = mean((att @ x) ^ 2) + mean((p @ k) ^ 2) + sum(r @ a) / T + mean(u) + mean((w @ x) ^ 2)\n"},
  {"gelu",
   "dim N = 7\ndim K = 5\ninput x : [N, K]\nparam w : [K, K] ~ randn\nparam b : [K] ~ randn * 0.3\n"
   "h = gelu(x @ w + b)\nloss = mean(h * h) + sum(gelu(h - 1)) / N + gelu(0.5)\n"},
  {"reductions",
   "dim N = 4\ndim K = 7\nparam w : [N, K] ~ randn\ns0 = sum(w, 0)\ns1 = mean(w, axis=1)\n"
   "m0 = max(w, 0)\nm1 = max(w, -1)\nloss = sum(s0 * m0) + mean(s1 * m1) + max(w) + sum(w ^ 3) / 10\n"},
  {"pick_softmax",
   "dim N = 6\ndim K = 5\ninput Y : int[N]\nparam z : [N, K] ~ randn\np = softmax(z)\nq = softmax(z, 0)\n"
   "lp = log(pick(p, Y))\nloss = -mean(lp) + sum(q * z)\n"},
  {"layernorm_batched",
   "dim B = 2\ndim T = 4\ndim C = 6\ndim D = 3\ninput x : [B, T, C]\nparam g : [C] ~ randn * 0.1 + 1\n"
   "param bb : [C] ~ randn * 0.1\nparam W : [C, D] ~ randn\nn = layernorm(x, g, bb)\ny = n @ W\n"
   "loss = mean(y ^ 2)\n"},
  {"matmul_both_batched",
   "dim B = 3\ndim T = 2\ndim C = 5\ndim D = 4\nparam A : [B, T, C] ~ randn\nparam M : [B, C, D] ~ randn\n"
   "y = A @ M\nloss = sum(tanh(y))\n"},
  {"batchnorm_biased",
   "dim N = 7\ndim D = 5\ninput x : [N, D]\nparam g : [D] ~ randn * 0.1 + 1\nparam b : [D] ~ randn * 0.1\n"
   "h = batchnorm(x, g, b, eps=1e-3, unbiased=false)\nloss = sum(sigmoid(h) * x)\n"},
  {"gather_xent",
   "dim N = 9\ndim V = 11\ndim E = 4\ninput X : int[N]\ninput Y : int[N]\nparam C : [V, E] ~ randn\n"
   "param W : [E, V] ~ randn * 0.3\nparam c : [1, V] ~ zeros\nlogits = C[X] @ W + c\nloss = cross_entropy(logits, Y)\n"},
  {"gather_rank3_table",
   "dim N = 3\ndim T = 2\ndim V = 5\ninput X : int[N, T]\nparam C : [V, 2, 3] ~ randn\n"
   "e = C[X]\nloss = sum(tanh(e) * e) / (N - 1)\n"},
  {"broadcast_mixed",
   "dim A = 2\ndim B = 3\ndim C = 4\ninput x : [A, B, C]\nparam p : [B, 1] ~ randn\nparam q : [1, C] ~ randn\n"
   "y = x * p + q\nloss = sum(y * y) + sum(p * q)\n"},
  {"shared_grads",
   "dim N = 4\nparam a : [N] ~ randn\nparam b : [N] ~ randn\ns = a + b\nt = s * s\nloss = sum(t)\n"},
  /* the emitter's fusions (plan_fusion) and where they must not apply: bias
   * first, a named product, stacked batchnorms, a batchnorm output with two
   * consumers, a dy that sums two contributions */
  {"fusion_patterns",
   "dim N = 6\ndim D = 4\ndim H = 5\ninput x : [N, D]\ninput Y : int[N]\nparam W1 : [D, H] ~ randn\n"
   "param b1 : [H] ~ randn\nparam g1 : [1, H] ~ randn * 0.1 + 1\nparam c1 : [1, H] ~ randn * 0.1\n"
   "param W2 : [H, H] ~ randn * 0.5\nparam b2 : [1, H] ~ randn\nparam g2 : [H] ~ randn * 0.1 + 1\n"
   "param c2 : [H] ~ randn * 0.1\nparam W3 : [H, 3] ~ randn\nparam b3 : [3] ~ randn\n"
   "a1 = b1 + x @ W1\nh1 = tanh(batchnorm(a1, g1, c1, eps=1e-5))\nm2 = h1 @ W2\na2 = m2 + b2\n"
   "z2 = batchnorm(a2, g2, c2, eps=1e-5)\nh2 = tanh(z2)\nlogits = h2 @ W3 + b3 + sum(z2 * h1, 1)\n"
   "loss = cross_entropy(logits, Y) + mean(h1 * h2)\n"},
  {"slices",   /* selects, ranges, negative indices, an int slice, slices of one tensor joined back */
   "dim B = 3\ndim T = 5\ndim C = 4\ninput x : [B, T, C]\ninput I : int[B, T]\nparam w : [T, C, C] ~ randn\n"
   "param e : [7, C] ~ randn\na = x[:, 1] @ w[2]\nb = x[1:, -2:, 1:3]\nc = e[I[:, 4]]\n"
   "loss = sum(a * a) + sum(tanh(b)) + sum(c * x[:, 0]) + sum(w[-1, 0] * x[0, 0])\n"},
  {"concat_broadcast",
   "dim B = 3\ndim E = 4\ndim H = 5\ninput x : [B, E]\nparam h : [1, H] ~ randn\nparam W : [E + H, H] ~ randn\n"
   "xh = concat(x, h)\nz = concat(xh, xh, axis=0)\nloss = sum(tanh(xh @ W)) + mean(z * z)\n"},
  {"loop_stack",   /* a shared param, a carried state, a stacked per-step param, stack */
   "dim B = 2\ndim T = 4\ndim H = 3\ninput x : [B, T, H]\nparam W : [H, H] ~ randn * 0.5\n"
   "param U : [T, H, H] ~ randn * 0.5\nparam h0 : [1, H] ~ zeros\nh = h0\nfor t in T\n"
   "  h = tanh(x[:, t] @ W + h @ U[t])\nend\nhs = stack(h, axis=1)\nloss = mean(hs * hs) + sum(h)\n"},
  {"matmul_transposed_weight",   /* y = x·wᵀ (transb), batched x, and a 2-D left over a batched right */
   "dim B = 3\ndim T = 4\ndim C = 5\ndim D = 2\ninput x : [B, T, C]\nparam w : [D, C] ~ randn\n"
   "param A : [T, T] ~ randn\ny = x @ transpose(w)\nz = A @ y\nloss = sum(z * z) + sum(tanh(A @ x))\n"},
  {"unused_param",
   "dim N = 3\ninput x : [N]\nparam a : [N] ~ randn\nparam unused : [2, 2] ~ ones\nloss = sum(x * a)\n"},
};

START_TEST(each_op) {
  for (int dt = 0; dt < 2; dt++)
    for (int ex = 0; ex < 2; ex++)
      check_text(op_specs[_i].name, op_specs[_i].text, (DType)dt, ex, NULL, 0, true);
}
END_TEST

/* ---- the check fails on a broken rule ----------------------------------------------- */

START_TEST(perturbed_rule_fails) {
  static const OpKind ops[] = {OP_tanh, OP_matmul, OP_batchnorm, OP_cross_entropy, OP_gather};
  const char *text = slurp(arena_printf("%s/makemore.spec", specs_dir()));
  for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) {
    grad_perturb = (int)ops[i] + 1;
    int nfail = check_text("makemore.spec", text, DT_F64, false, NULL, 0, false);
    grad_perturb = 0;
    ck_assert_msg(nfail > 0, "check passed with the %s rule broken", optab[ops[i]].name);
  }
}
END_TEST

/* the command: exit 0 when every tensor agrees, 1 with BPGEN_PERTURB set */
static void run_check_cmd(const char *perturb, const char *dtype) {
  if (perturb)
    setenv("BPGEN_PERTURB", perturb, 1);
  if (!freopen("/dev/null", "w", stdout))
    exit(3);
  char *argv[] = {"check", (char *)arena_printf("%s/makemore.spec", specs_dir()), "--dtype", (char *)dtype,
                  "-D", "B=5", NULL};
  exit(cmd_check(6, argv));
}

START_TEST(check_command_passes) { run_check_cmd(NULL, "f32"); }
END_TEST

START_TEST(check_command_fails_on_broken_rule) { run_check_cmd("batchnorm", "f64"); }
END_TEST

/* ---- the ABI ------------------------------------------------------------------------ */

typedef struct Model {
  Graph *g;
  Jit *jit;
  const BpModel *m;
  void *st;
} Model;

static Model load(const char *text, DType dt, const char *prefix) {
  Model md = {0};
  md.g = parse_text(text);
  grad_build(md.g);
  EmitOptions opt = {dt, prefix, true, false, false};
  md.jit = jit_compile(emit_c(md.g, &opt, NULL), "test.spec");
  md.m = jit_symbol(md.jit, arena_printf("%s_model", prefix));
  ck_assert(md.m != NULL);
  ck_assert(jit_symbol(md.jit, "no_such_symbol") == NULL);
  md.st = calloc(1, md.m->state_size);
  return md;
}

static void unload(Model *md) {
  free(md->st);
  jit_free(md->jit);
}

static const BpTensor *tensor(const BpModel *m, const char *name) {
  const BpTensor *t = bp_find_tensor(m, name, -1);
  ck_assert_msg(t != NULL, "no tensor %s", name);
  return t;
}

static double *f64(Model *md, const char *name) { return (double *)((char *)md->st + tensor(md->m, name)->offset); }
static int32_t *i32(Model *md, const char *name) { return (int32_t *)((char *)md->st + tensor(md->m, name)->offset); }

static const char *lecture(void) { return slurp(arena_printf("%s/makemore.spec", specs_dir())); }

START_TEST(table_layout) {
  Model md = load(lecture(), DT_F32, "lec");
  const BpModel *m = md.m;
  ck_assert_str_eq(m->name, "lec");
  ck_assert_int_eq(m->dtype, BP_F32);
  /* params contiguous in spec order, grads likewise, right after */
  static const char *const params[] = {"C", "W1", "b1", "W2", "b2", "bngain", "bnbias"};
  size_t at = m->param_offset, n = 0;
  for (int i = 0; i < 7; i++) {
    const BpTensor *p = tensor(m, params[i]), *d = tensor(m, arena_printf("d%s", params[i]));
    ck_assert_int_eq(p->kind, BP_PARAM);
    ck_assert_int_eq(d->kind, BP_GRAD);
    ck_assert_uint_eq(p->offset, at);
    ck_assert_uint_eq(d->offset - m->grad_offset, p->offset - m->param_offset);
    ck_assert_uint_eq(p->numel, d->numel);
    at += p->numel * sizeof(float);
    n += p->numel;
  }
  ck_assert_uint_eq(n, m->nparam);
  ck_assert_uint_eq(m->nparam, 27 * 10 + 30 * 64 + 64 + 64 * 27 + 27 + 64 + 64);
  ck_assert_str_eq(m->tensors[m->loss_index].name, "loss");
  ck_assert_str_eq(m->tensors[m->logits_index].name, "logits");
  const BpTensor *x = tensor(m, "X"), *w1 = tensor(m, "W1"), *st = tensor(m, "hpreact.var");
  ck_assert_int_eq(x->kind, BP_INPUT);
  ck_assert_int_eq(x->dtype, BP_I32);
  ck_assert_int_eq(x->rank, 2);
  ck_assert_int_eq(x->dims[0], 32);
  ck_assert_int_eq(x->dims[1], 3);
  ck_assert_int_eq(w1->line, 12);
  ck_assert_int_eq(st->kind, BP_STAT);
  ck_assert_int_eq(tensor(m, "dhpreact")->kind, BP_GRAD);
  ck_assert_int_eq(tensor(m, "h")->kind, BP_ACT);
  for (int i = 0; i < m->ntensors; i++)
    ck_assert_uint_le(m->tensors[i].offset + m->tensors[i].numel * 4, m->state_size);
  unload(&md);
}
END_TEST

/* init draws exactly what the reference runtime draws, in both dtypes */
START_TEST(init_matches_runtime) {   /* randn (the lecture's), uniform (bow's Linear layers) */
  for (int dt = 0; dt < 4; dt++) {
    Model md = load(dt < 2 ? lecture() : slurp(arena_printf("%s/bow.spec", specs_dir())), (DType)(dt % 2), "lec");
    md.m->init(md.st, 12345);
    Ref *r = ref_new(md.g, (DType)(dt % 2));
    ref_init_params(r, 12345);
    for (int i = 0; i < md.g->nforward; i++) {
      Node *n = md.g->nodes[i];
      if (n->op != OP_param)
        continue;
      const BpTensor *t = tensor(md.m, n->name);
      const double *want = ref_data(r, n);
      for (long k = 0; k < shape_numel(&n->shape); k++) {
        double got = dt % 2 == DT_F64 ? ((double *)((char *)md.st + t->offset))[k]
                                  : ((float *)((char *)md.st + t->offset))[k];
        ck_assert_msg(got == want[k], "%s[%ld]: %.17g vs %.17g", n->name, k, got, want[k]);
      }
    }
    ref_free(r);
    unload(&md);
  }
}
END_TEST

static void fill_batch(Model *md, int salt) {
  int32_t *X = i32(md, "X"), *Y = i32(md, "Y");
  for (int i = 0; i < 96; i++)
    X[i] = (i * 7 + salt) % 27;
  for (int i = 0; i < 32; i++)
    Y[i] = (i * 5 + salt * 3) % 27;
}

/* calibrating on the batch of nrows rows (all of them), the inference forward
 * gives the training forward's loss */
static void eval_matches_train(Model *md, int nrows) {
  double train = md->m->forward(md->st);
  for (int pass = 0; pass < md->m->calib_passes; pass++) {
    md->m->calib_begin(md->st, pass);
    md->m->calib_accum(md->st, nrows);
    md->m->calib_end(md->st);
  }
  double eval = md->m->forward_eval(md->st);
  ck_assert_msg(fabs(train - eval) < 1e-12, "train %.17g eval %.17g", train, eval);
}

/* calibration over one batch equals the batch statistics; halves merge */
START_TEST(calibration) {
  Model md = load(lecture(), DT_F64, "lec");
  md.m->init(md.st, 1);
  fill_batch(&md, 0);
  eval_matches_train(&md, 32);
  double mean[64], var[64];
  memcpy(mean, f64(&md, "hpreact.mean"), sizeof mean);
  memcpy(var, f64(&md, "hpreact.var"), sizeof var);
  /* the same 32 rows given as 20 + 12 (a second batch whose first 12 rows count) */
  Model m2 = load(lecture(), DT_F64, "lec2");
  m2.m->init(m2.st, 1);
  fill_batch(&m2, 0);
  int32_t *X = i32(&m2, "X"), keep[96];
  memcpy(keep, X, sizeof keep);
  ck_assert_int_eq(m2.m->calib_passes, 1);
  m2.m->calib_begin(m2.st, 0);
  m2.m->calib_accum(m2.st, 20);
  memmove(X, keep + 60, 36 * sizeof(int32_t));
  for (int i = 36; i < 96; i++)
    X[i] = 99;   /* rows beyond nrows are garbage and must not count */
  m2.m->calib_accum(m2.st, 12);
  m2.m->calib_end(m2.st);
  for (int j = 0; j < 64; j++) {
    ck_assert_msg(fabs(mean[j] - f64(&m2, "hpreact.mean")[j]) < 1e-12, "mean[%d]", j);
    ck_assert_msg(fabs(var[j] - f64(&m2, "hpreact.var")[j]) < 1e-12 * (1 + var[j]), "var[%d]", j);
  }
  unload(&m2);
  unload(&md);
}
END_TEST

/* Three batchnorms in a chain (with a fourth beside them, fed by the first):
 * calibrated on the one batch, the inference forward must give the training
 * forward's loss, whatever order the batch's rows arrive in (two calls of 20
 * and 12 rows).  Before the passes, the second and third batchnorms were
 * calibrated from an upstream normalised with stale statistics. */
static const char chain_spec[] =
  "dim B = 32\ndim T = 2\ndim V = 27\ndim E = 5\ndim H = 9\n"
  "input X : int[B, T]\ninput Y : int[B]\n"
  "param C : [V, E] ~ randn\n"
  "param W1 : [T*E, H] ~ randn * 0.5\nparam W2 : [H, H] ~ randn * 0.5\nparam W3 : [H, H] ~ randn * 0.5\n"
  "param Wo : [H, V] ~ randn * 0.3\n"
  "param g1 : [1, H] ~ randn * 0.1 + 1\nparam c1 : [1, H] ~ randn * 0.1\n"
  "param g2 : [1, H] ~ randn * 0.1 + 1\nparam c2 : [1, H] ~ randn * 0.1 + 0.5\n"
  "param g3 : [1, H] ~ randn * 0.1 + 1\nparam c3 : [1, H] ~ randn * 0.1\n"
  "emb = reshape(C[X], [B, T*E])\n"
  "h1 = tanh(batchnorm(emb @ W1, g1, c1, eps=1e-5))\n"
  "h2 = tanh(batchnorm(h1 @ W2 + 0.3, g2, c2, eps=1e-5))\n"
  "h3 = tanh(batchnorm(h2 @ W3, g3, c3, eps=1e-5))\n"
  "side = batchnorm(h1 @ W3, g3, c3, eps=1e-5)\n"
  "loss = cross_entropy(h3 @ Wo + side @ Wo, Y)\n";

START_TEST(calibration_chain) {
  for (int dt = 0; dt < 2; dt++) {
    Model md = load(chain_spec, dt ? DT_F64 : DT_F32, dt ? "ch64" : "ch32");
    ck_assert_int_eq(md.m->calib_passes, 3);
    md.m->init(md.st, 5);
    fill_batch(&md, 3);
    double train = md.m->forward(md.st);
    const BpTensor *X = tensor(md.m, "X");
    int32_t keep[64];
    memcpy(keep, i32(&md, "X"), sizeof keep);
    for (int pass = 0; pass < md.m->calib_passes; pass++) {
      memcpy(i32(&md, "X"), keep, sizeof keep);
      md.m->calib_begin(md.st, pass);
      md.m->calib_accum(md.st, 20);
      memmove(i32(&md, "X"), keep + 40, 24 * sizeof(int32_t));
      for (size_t i = 24; i < X->numel; i++)
        i32(&md, "X")[i] = 99;   /* beyond nrows: must not count */
      md.m->calib_accum(md.st, 12);
      md.m->calib_end(md.st);
    }
    memcpy(i32(&md, "X"), keep, sizeof keep);
    double eval = md.m->forward_eval(md.st);
    ck_assert_msg(fabs(train - eval) < (dt ? 1e-12 : 1e-5), "%s: train %.17g eval %.17g", dt ? "f64" : "f32",
                  train, eval);
    unload(&md);
  }
}
END_TEST

/* A state libtcc cannot lay out (2 GiB or more; it used to wrap the size
 * modulo 2^32 and the trainer wrote past the end) or a tensor past 2^30
 * elements: a located error saying how much is needed, never an emitted file. */
static const char *emit_error(const char *text, long B, long H, bool jit) {
  static jmp_buf jb;
  DimOverride ovr[2] = {{"B", B, false}, {"H", H, false}};
  Graph *g = parse_spec(src_from_string("big.spec", text), ovr, 2);
  grad_build(g);
  EmitOptions opt = {DT_F32, "big", jit, false, false};
  if (setjmp(jb)) {
    error_catch(NULL);
    return arena_strndup(error_text(), strlen(error_text()));
  }
  error_catch(&jb);
  emit_c(g, &opt, NULL);
  error_catch(NULL);
  return "";
}

START_TEST(sizes_refused_with_location) {
  const char *r = emit_error(lecture(), 40000, 4000, true);
  ck_assert_msg(strstr(r, "the model's state needs 5.23 GB") && strstr(r, "up to 2 GiB"), "%s", r);
  ck_assert_str_eq(error_pos(r), "21:18");
  ck_assert_str_eq(emit_error(lecture(), 40000, 4000, false), "");   /* gcc lays it out */
  ck_assert_str_eq(emit_error(lecture(), 4000, 4000, true), "");
  r = emit_error(lecture(), 400000, 4000, false);
  ck_assert_msg(strstr(r, "[400000, 4000] has 1600000000 elements; bpgen handles up to 2^30"), "%s", r);
}
END_TEST

/* Running statistics (part 5's BatchNorm1d, momentum 0.1): after each training
 * forward every batchnorm's run_mean and run_var are (1 − m)·run + m·batch,
 * the batch's mean and unbiased variance computed here from the batchnorm's
 * input; the lecture's 2-D batchnorm and wavenet's over [B, T, C]. */
static void running_stats_case(const char *path, DType dt, int salt) {
  Model md = load(slurp(path), dt, "rs");
  md.m->init(md.st, 4);
  ck_assert(md.m->set_bn_momentum != NULL);
  Graph *g = md.g;
  int nbn = 0;
  Node *bns[8];
  for (int i = 0; i < g->nforward; i++)
    if (g->nodes[i]->op == OP_batchnorm)
      bns[nbn++] = g->nodes[i];
  double want_m[8][256], want_v[8][256];
  for (int k = 0; k < nbn; k++)
    for (int j = 0; j < 256; j++)
      want_m[k][j] = 0, want_v[k][j] = 1;
  for (int k = 0; k < nbn; k++) {   /* part 5 starts the running variance at 1 */
    const BpTensor *t = tensor(md.m, arena_printf("%s.var", bns[k]->name ? bns[k]->name : arena_printf("batchnorm#%d", bns[k]->id)));
    for (size_t j = 0; j < t->numel; j++)
      if (dt == DT_F64) ((double *)((char *)md.st + t->offset))[j] = 1;
      else ((float *)((char *)md.st + t->offset))[j] = 1;
  }
  md.m->set_bn_momentum(md.st, 0.1);
  int32_t *X = i32(&md, "X");
  const BpTensor *xt = tensor(md.m, "X");
  for (int step = 0; step < 2; step++) {
    for (size_t i = 0; i < xt->numel; i++)
      X[i] = (int32_t)((i * 7 + (size_t)step * 5 + (size_t)salt + i / 3) % 27);
    md.m->forward(md.st);
    for (int k = 0; k < nbn; k++) {
      Node *x = bns[k]->in[0];
      const BpTensor *xv = tensor(md.m, x->name);
      long D = x->shape.dim[x->shape.rank - 1], R = (long)xv->numel / D;
      const char *base = bns[k]->name ? bns[k]->name : arena_printf("batchnorm#%d", bns[k]->id);
      const BpTensor *tm = tensor(md.m, arena_printf("%s.mean", base)), *tv = tensor(md.m, arena_printf("%s.var", base));
      for (long j = 0; j < D; j++) {
        double s = 0, ss = 0;
        for (long r = 0; r < R; r++)
          s += dt == DT_F64 ? ((double *)((char *)md.st + xv->offset))[r * D + j] : ((float *)((char *)md.st + xv->offset))[r * D + j];
        double mean = s / R;
        for (long r = 0; r < R; r++) {
          double v = dt == DT_F64 ? ((double *)((char *)md.st + xv->offset))[r * D + j] : ((float *)((char *)md.st + xv->offset))[r * D + j];
          ss += (v - mean) * (v - mean);
        }
        want_m[k][j] = 0.9 * want_m[k][j] + 0.1 * mean;
        want_v[k][j] = 0.9 * want_v[k][j] + 0.1 * ss / (R - 1);
        double gm = dt == DT_F64 ? ((double *)((char *)md.st + tm->offset))[j] : ((float *)((char *)md.st + tm->offset))[j];
        double gv = dt == DT_F64 ? ((double *)((char *)md.st + tv->offset))[j] : ((float *)((char *)md.st + tv->offset))[j];
        double tol = dt == DT_F64 ? 1e-10 : 1e-4;
        ck_assert_msg(fabs(gm - want_m[k][j]) <= tol * (1 + fabs(want_m[k][j])), "%s step %d %s.mean[%ld]: %g, want %g",
                      path, step, base, j, gm, want_m[k][j]);
        ck_assert_msg(fabs(gv - want_v[k][j]) <= tol * (1 + fabs(want_v[k][j])), "%s step %d %s.var[%ld]: %g, want %g",
                      path, step, base, j, gv, want_v[k][j]);
      }
    }
  }
  unload(&md);
}

START_TEST(running_statistics) {
  for (int dt = 0; dt < 2; dt++) {
    running_stats_case(arena_printf("%s/makemore.spec", specs_dir()), (DType)dt, 1);
    running_stats_case(arena_printf("%s/wavenet.spec", specs_dir()), (DType)dt, 2);
  }
}
END_TEST

/* cross_entropy over [B, T, V] with ignored targets (makemore's -1 padding):
 * loss and gradients of the generated code against the reference runtime on
 * targets with ignored positions, f32 and f64; no target left: loss 0 and zero
 * gradients, not NaN.  (check's random targets are never ignored.) */
static const char seq_spec[] =
  "dim B = 3\ndim T = 5\ndim V = 7\ninput X : int[B, T]\ninput Y : int[B, T]\n"
  "param tab : [V, V] ~ randn\nlogits = tab[X]\nloss = cross_entropy(logits, Y, ignore=-1)\n";

START_TEST(cross_entropy_ignored_targets) {
  for (int dt = 0; dt < 2; dt++)
    for (int all = 0; all < 2; all++) {
      Graph *g = parse_text(seq_spec);
      grad_build(g);
      EmitOptions opt = {dt ? DT_F64 : DT_F32, "seq", true, false, false};
      Jit *j = jit_compile(emit_c(g, &opt, NULL), "seq.spec");
      const BpModel *m = jit_symbol(j, "seq_model");
      void *st = calloc(1, m->state_size);
      m->init(st, 9);
      Ref *r = ref_new(g, dt ? DT_F64 : DT_F32);
      ref_init_params(r, 9);
      Node *xn = graph_find(g, "X"), *yn = graph_find(g, "Y"), *tab = graph_find(g, "tab");
      int32_t *X = (int32_t *)((char *)st + tensor(m, "X")->offset), *Y = (int32_t *)((char *)st + tensor(m, "Y")->offset);
      for (int i = 0; i < 15; i++) {
        X[i] = ref_idata(r, xn)[i] = (i * 3 + 1) % 7;
        Y[i] = ref_idata(r, yn)[i] = all || i % 3 == 2 ? -1 : (i * 5 + 2) % 7;
      }
      /* the generated init and the reference's draw the same params */
      double loss = m->forward(st), want = ref_forward(r);
      m->backward(st);
      ref_backward(r);
      ck_assert_msg(loss == loss && fabs(loss - want) <= (dt ? 1e-12 : 1e-5) * (1 + fabs(want)),
                    "%s%s: loss %.17g, reference %.17g", dt ? "f64" : "f32", all ? " (all ignored)" : "", loss, want);
      if (all)
        ck_assert_msg(loss == 0, "all ignored: loss %g", loss);
      const BpTensor *gt = tensor(m, "dtab");
      const double *rg = ref_grad(r, tab);
      for (size_t k = 0; k < gt->numel; k++) {
        double gv = dt ? ((double *)((char *)st + gt->offset))[k] : ((float *)((char *)st + gt->offset))[k];
        ck_assert_msg(fabs(gv - rg[k]) <= (dt ? 1e-12 : 1e-5), "dtab[%zu] %g, reference %g", k, gv, rg[k]);
        if (all)
          ck_assert(gv == 0);
      }
      ref_free(r);
      free(st);
      jit_free(j);
    }
}
END_TEST

/* bad indices: no out-of-bounds access (ASan watches), NaN loss, flag set;
 * the next good batch is fine again */
START_TEST(bad_index) {
  Model md = load(lecture(), DT_F32, "lec");
  md.m->init(md.st, 1);
  fill_batch(&md, 1);
  double good = md.m->forward(md.st);
  ck_assert(isfinite(good));
  i32(&md, "X")[5] = 27;
  ck_assert(isnan(md.m->forward(md.st)));
  md.m->backward(md.st);
  i32(&md, "X")[5] = 0;
  i32(&md, "Y")[3] = -1;
  ck_assert(isnan(md.m->forward(md.st)));
  md.m->backward(md.st);
  i32(&md, "Y")[3] = 1 << 30;
  ck_assert(isnan(md.m->forward(md.st)));
  fill_batch(&md, 1);
  ck_assert(md.m->forward(md.st) == good);
  unload(&md);
}
END_TEST

/* sgd_step moves params by -lr * grad, and the loss falls on a fixed batch;
 * two models (and two prefixes) live side by side */
START_TEST(sgd_and_two_models) {
  Model a = load(lecture(), DT_F64, "one"), b = load(lecture(), DT_F32, "two");
  a.m->init(a.st, 7);
  b.m->init(b.st, 7);
  fill_batch(&a, 2);
  fill_batch(&b, 2);
  double first = a.m->forward(a.st);
  a.m->backward(a.st);
  double w = f64(&a, "W2")[3], g = f64(&a, "dW2")[3];
  a.m->sgd_step(a.st, 0.1);
  ck_assert(f64(&a, "W2")[3] == w - 0.1 * g);
  b.m->forward(b.st);
  b.m->backward(b.st);
  b.m->sgd_step(b.st, 0.1);
  for (int i = 0; i < 20; i++) {
    a.m->forward(a.st);
    a.m->backward(a.st);
    a.m->sgd_step(a.st, 0.1);
    b.m->forward(b.st);
    b.m->backward(b.st);
    b.m->sgd_step(b.st, 0.1);
  }
  double la = a.m->forward(a.st), lb = b.m->forward(b.st);
  ck_assert_msg(la < first - 0.3, "loss %g -> %g", first, la);
  ck_assert_msg(fabs(la - lb) < 1e-5, "f64 %g vs f32 %g", la, lb);
  unload(&a);
  unload(&b);
}
END_TEST

/* ---- a batchnorm layer by column blocks (bp_bnlayer_fwd/bwd) ------------------------- */

/* the lecture's model at B = 256, H = 300: big enough for the layer call, 5
 * blocks of 64 columns (the last 44) in 4 groups; and without the biases */
static const char *wide_spec(bool biases) {
  const char *t = lecture();
  if (biases)
    return t;
  t = arena_printf("%.*s", (int)strlen(t), t);
  char *p = strstr(t, "hprebn  = embcat @ W1 + b1");
  ck_assert(p != NULL);
  memcpy(p, "hprebn  = embcat @ W1     ", 26);
  p = strstr(t, "logits  = h @ W2 + b2");
  ck_assert(p != NULL);
  memcpy(p, "logits  = h @ W2     ", 21);
  return t;
}
static DimOverride wide[2] = {{"B", 256, false}, {"H", 300, false}};

static const char *emitted(const char *text, DType dt) {
  Graph *g = parse_spec(src_from_string("wide.spec", text), wide, 2);
  grad_build(g);
  EmitOptions opt = {dt, "wide", true, false, false};
  return emit_c(g, &opt, NULL);
}

/* every gradient (lean off: all written) against the reference runtime */
START_TEST(layer_matches_reference) {
  for (int b = 0; b < 2; b++)
    for (int dt = 0; dt < 2; dt++) {
      const char *src = emitted(wide_spec(b), (DType)dt);
      ck_assert_msg(strstr(src, "\n  bp_bnlayer_fwd_f") && strstr(src, "\n  bp_bnlayer_bwd_f"), "no layer call");
      ck_assert(strstr(src, b ? "s->b1, s->bngain" : "NULL, s->bngain") != NULL);
      check_text("wide.spec", wide_spec(b), (DType)dt, false, wide, 2, true);
    }
  /* the lecture's own sizes stay node by node (the passes fit in cache) */
  Graph *g = parse_text(lecture());
  grad_build(g);
  EmitOptions opt = {DT_F32, "lec", true, false, false};
  ck_assert(strstr(emit_c(g, &opt, NULL), "\n  bp_bnlayer") == NULL);
}
END_TEST

static Model load_wide(DType dt, const char *prefix) {
  Model md = {0};
  md.g = parse_spec(src_from_string("wide.spec", lecture()), wide, 2);
  grad_build(md.g);
  EmitOptions opt = {dt, prefix, true, false, false};
  md.jit = jit_compile(emit_c(md.g, &opt, NULL), "wide.spec");
  md.m = jit_symbol(md.jit, arena_printf("%s_model", prefix));
  ck_assert(md.m != NULL);
  md.st = calloc(1, md.m->state_size);
  md.m->init(md.st, 3);
  int32_t *X = i32(&md, "X"), *Y = i32(&md, "Y");
  for (int i = 0; i < 256 * 3; i++)
    X[i] = (i * 7 + i / 5) % 27;
  for (int i = 0; i < 256; i++)
    Y[i] = (i * 5 + 1) % 27;
  return md;
}

static const void *at(Model *md, const char *name) { return (char *)md->st + tensor(md->m, name)->offset; }

/* lean: the params' grads, loss and logits with the same bits as a full
 * step; the named intermediates of the layer left alone (zero from init) */
START_TEST(lean_same_bits) {
  Model full = load_wide(DT_F32, "full"), lean = load_wide(DT_F32, "lean");
  lean.m->set_lean(lean.st, 1);
  for (int step = 0; step < 3; step++) {
    double lf = full.m->forward(full.st), ll = lean.m->forward(lean.st);
    ck_assert_msg(lf == ll, "loss %.9g vs %.9g", lf, ll);
    full.m->backward(full.st);
    lean.m->backward(lean.st);
    ck_assert(memcmp(at(&full, "logits"), at(&lean, "logits"), 256 * 27 * 4) == 0);
    ck_assert(memcmp((char *)full.st + full.m->grad_offset, (char *)lean.st + lean.m->grad_offset,
                     full.m->nparam * 4) == 0);
    full.m->sgd_step(full.st, 0.1);
    lean.m->sgd_step(lean.st, 0.1);
  }
  static const char *const inner[] = {"hprebn", "hpreact", "h", "dh", "dhpreact", "dhprebn"};
  for (int k = 0; k < 6; k++) {
    const BpTensor *t = tensor(lean.m, inner[k]);
    const float *v = at(&lean, inner[k]), *w = at(&full, inner[k]);
    float mx = 0, mw = 0;
    for (size_t i = 0; i < t->numel; i++)
      mx = fabsf(v[i]) > mx ? fabsf(v[i]) : mx, mw = fabsf(w[i]) > mw ? fabsf(w[i]) : mw;
    ck_assert_msg(mx == 0 && mw > 0, "%s: lean max |v| %g, full %g", inner[k], mx, mw);
  }
  unload(&full);
  unload(&lean);
}
END_TEST

/* 2 threads give the bits of 1 (groups of blocks fixed by the shape) */
START_TEST(layer_threads_same_bits) {
  Model a = load_wide(DT_F32, "one"), b = load_wide(DT_F32, "two");
  a.m->set_lean(a.st, 1);
  b.m->set_lean(b.st, 1);
  double la = a.m->forward(a.st);
  a.m->backward(a.st);
  bp_set_threads(2);
  double lb = b.m->forward(b.st);
  b.m->backward(b.st);
  bp_set_threads(1);
  ck_assert(la == lb);
  ck_assert(memcmp((char *)a.st + a.m->grad_offset, (char *)b.st + b.m->grad_offset, a.m->nparam * 4) == 0);
  unload(&a);
  unload(&b);
}
END_TEST

/* inference (node by node, stored statistics) after calibrating on the batch
 * gives the training forward's loss (the layer's batch statistics) */
START_TEST(layer_eval_after_calibration) {
  Model md = load_wide(DT_F64, "cal");
  eval_matches_train(&md, 256);
  unload(&md);
}
END_TEST

/* a compile error names the spec line through #line */
START_TEST(compile_error_points_at_spec) {
  static jmp_buf jb;
  if (setjmp(jb)) {
    error_catch(NULL);
    ck_assert_msg(strstr(error_text(), "my.spec:7") != NULL, "%s", error_text());
    return;
  }
  error_catch(&jb);
  jit_compile("int f(void) {\n#line 7 \"my.spec\"\n  return nosuch;\n}\n", "my.spec");
  error_catch(NULL);
  ck_abort_msg("compiled");
}
END_TEST

static Suite *make_suite(void) {
  Suite *s = suite_create("jit");
  TCase *tc = tcase_create("jit");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, every_spec);
  tcase_add_test(tc, odd_shapes);
  tcase_add_loop_test(tc, each_op, 0, (int)(sizeof op_specs / sizeof op_specs[0]));
  tcase_add_test(tc, perturbed_rule_fails);
  tcase_add_exit_test(tc, check_command_passes, 0);
  tcase_add_exit_test(tc, check_command_fails_on_broken_rule, 1);
  tcase_add_test(tc, table_layout);
  tcase_add_test(tc, init_matches_runtime);
  tcase_add_test(tc, calibration);
  tcase_add_test(tc, calibration_chain);
  tcase_add_test(tc, cross_entropy_ignored_targets);
  tcase_add_test(tc, running_statistics);
  tcase_add_test(tc, sizes_refused_with_location);
  tcase_add_test(tc, bad_index);
  tcase_add_test(tc, sgd_and_two_models);
  tcase_add_test(tc, compile_error_points_at_spec);
  tcase_add_test(tc, layer_matches_reference);
  tcase_add_test(tc, lean_same_bits);
  tcase_add_test(tc, layer_threads_same_bits);
  tcase_add_test(tc, layer_eval_after_calibration);
  suite_add_tcase(s, tc);
  return s;
}
TESTS_REGISTER(make_suite)
