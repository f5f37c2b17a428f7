/* test_ref.c: the reference runtime.
 *
 * Every op's gradient against central finite differences (f64, a 4-point
 * stencil so truncation error stays far below the 1e-6 bound), each driven by
 * a small spec that mixes the op's output into a scalar loss through a random
 * weight; the fused and granular lecture specs against each other; param
 * initialisation; the first arg-max rule of max; index errors; f32 rounding.
 */
#include "tests.h"
#include "ref.h"
#include "bp_runtime.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* Params from the spec, inputs random (valid indices, randn floats). */
static void fill(Ref *r, uint64_t seed) {
  ref_init_params(r, seed);
  ref_random_inputs(r, seed);
}

/* ---- finite differences per op ------------------------------------------------------ */

static const struct {
  const char *what;
  const char *spec;
} fd_specs[] = {
  {"gather", "dim V = 5\ndim E = 3\ninput X : int[4, 2]\nparam C : [V, E] ~ randn\n"
             "param W : [4, 2, E] ~ randn\nloss = sum(C[X] * W)\n"},
  {"gather 1-d table", "input X : int[6]\nparam C : [4] ~ randn\nparam W : [6] ~ randn\n"
                       "loss = sum(C[X] * W)\n"},
  {"reshape", "param A : [2, 6] ~ randn\nparam W : [3, 4] ~ randn\n"
              "loss = sum(reshape(A, [3, 4]) * W)\n"},
  {"matmul", "param A : [3, 4] ~ randn\nparam B : [4, 5] ~ randn\nparam W : [3, 5] ~ randn\n"
             "loss = sum((A @ B) * W)\n"},
  {"matmul batched", "param A : [2, 3, 4] ~ randn\nparam B : [4, 5] ~ randn\n"
                     "param W : [2, 3, 5] ~ randn\nloss = sum((A @ B) * W)\n"},
  {"matmul batch both", "param A : [2, 3, 4] ~ randn\nparam B : [2, 4, 2] ~ randn\n"
                        "param W : [2, 3, 2] ~ randn\nloss = sum(matmul(A, B) * W)\n"},
  {"add bcast", "param A : [3, 1] ~ randn\nparam B : [1, 4] ~ randn\nparam W : [3, 4] ~ randn\n"
                "loss = sum((A + B) * W)\n"},
  {"add const", "param A : [3] ~ randn\nparam W : [3] ~ randn\nloss = sum((A + 2) * W)\n"},
  {"sub bcast", "param A : [4] ~ randn\nparam B : [3, 4] ~ randn\nparam W : [3, 4] ~ randn\n"
                "loss = sum((A - B) * W)\n"},
  {"mul bcast", "param A : [2, 3, 1] ~ randn\nparam B : [3, 4] ~ randn\n"
                "param W : [2, 3, 4] ~ randn\nloss = sum(A * B * W)\n"},
  {"mul same", "param A : [3, 2] ~ randn\nparam W : [3, 2] ~ randn\nloss = sum(A * A * W)\n"},
  {"div bcast", "param A : [3, 4] ~ randn\nparam B : [1, 4] ~ randn * 0.1 + 2\n"
                "param W : [3, 4] ~ randn\nloss = sum(A / B * W)\n"},
  {"div rank0", "param A : [3] ~ randn\nparam S : [] ~ randn * 0.1 + 2\nparam W : [3] ~ randn\n"
                "loss = sum(A / S * W) + S\n"},
  {"pow", "param A : [2, 3] ~ randn * 0.1 + 2\nparam W : [2, 3] ~ randn\n"
          "loss = sum((A ^ 3 + A ^ -0.5) * W)\n"},
  {"neg", "param A : [4] ~ randn\nparam W : [4] ~ randn\nloss = sum(-A * W)\n"},
  {"exp", "param A : [2, 2] ~ randn\nparam W : [2, 2] ~ randn\nloss = sum(exp(A) * W)\n"},
  {"log", "param A : [5] ~ randn * 0.1 + 1\nparam W : [5] ~ randn\nloss = sum(log(A) * W)\n"},
  {"tanh", "param A : [3, 3] ~ randn\nparam W : [3, 3] ~ randn\nloss = sum(tanh(A) * W)\n"},
  {"relu", "param A : [3, 3] ~ randn\nparam W : [3, 3] ~ randn\nloss = sum(relu(A) * W)\n"},
  {"sigmoid", "param A : [3, 3] ~ randn\nparam W : [3, 3] ~ randn\nloss = sum(sigmoid(A) * W)\n"},
  {"sqrt", "param A : [4] ~ randn * 0.1 + 1\nparam W : [4] ~ randn\nloss = sum(sqrt(A) * W)\n"},
  {"sum axes", "param A : [2, 3, 4] ~ randn\nparam W0 : [1, 3, 4] ~ randn\n"
               "param W1 : [2, 1, 4] ~ randn\nparam W2 : [2, 3, 1] ~ randn\n"
               "loss = sum(sum(A, 0) * W0) + sum(sum(A, 1) * W1) + sum(sum(A, 2) * W2) + "
               "sum(A) * sum(A)\n"},
  {"mean axes", "param A : [3, 4] ~ randn\nparam W : [3, 1] ~ randn\n"
                "loss = sum(mean(A, 1) * W) + mean(A) ^ 2\n"},
  {"max axes", "param A : [3, 4] ~ randn\nparam W0 : [1, 4] ~ randn\nparam W1 : [3, 1] ~ randn\n"
               "loss = sum(max(A, 0) * W0) + sum(max(A, 1) * W1) + max(A) * 3\n"},
  {"pick", "input Y : int[4]\nparam A : [4, 5] ~ randn\nparam W : [4] ~ randn\n"
           "loss = sum(pick(A, Y) * W)\n"},
  {"softmax", "param A : [3, 4] ~ randn\nparam W : [3, 4] ~ randn\n"
              "loss = sum(softmax(A, 1) * W) + sum(softmax(A, 0) * W * W)\n"},
  {"softmax rank3", "param A : [2, 3, 4] ~ randn\nparam W : [2, 3, 4] ~ randn\n"
                    "loss = sum(softmax(A, 1) * W)\n"},
  {"cross_entropy", "input Y : int[6]\nparam L : [6, 5] ~ randn\nloss = cross_entropy(L, Y)\n"},
  {"cross_entropy mlp", "input Y : int[4]\ninput Z : [4, 3]\nparam M : [3, 5] ~ randn\n"
                        "loss = cross_entropy(Z @ M, Y)\n"},
  {"batchnorm", "param A : [5, 4] ~ randn\nparam G : [1, 4] ~ randn * 0.1 + 1\n"
                "param Bi : [1, 4] ~ randn\nparam W : [5, 4] ~ randn\n"
                "loss = sum(batchnorm(A, G, Bi, eps=1e-5) * W)\n"},
  {"batchnorm biased", "param A : [5, 4] ~ randn\nparam G : [4] ~ randn * 0.1 + 1\n"
                       "param Bi : [4] ~ randn\nparam W : [5, 4] ~ randn\n"
                       "loss = sum(batchnorm(A, G, Bi, eps=1e-3, unbiased=false) * W)\n"},
  {"layernorm", "param A : [2, 3, 4] ~ randn\nparam G : [4] ~ randn * 0.1 + 1\n"
                "param Bi : [4] ~ randn\nparam W : [2, 3, 4] ~ randn\n"
                "loss = sum(layernorm(A, G, Bi, eps=1e-5) * W)\n"},
  {"float input", "input Z : [3, 2]\nparam W : [2] ~ randn\nloss = sum(tanh(Z * W))\n"},
  {"named chain", "param A : [3, 4] ~ randn\nparam W : [4, 2] ~ randn\nh = tanh(A @ W)\n"
                  "p = softmax(h, 1)\nloss = -mean(log(p))\n"},
};

/* The 4-point central difference of the loss along element k of leaf n. */
static double fd(Ref *r, Node *n, long k, double h) {
  double *x = ref_data(r, n), x0 = x[k], f[4];
  const double steps[4] = {2 * h, h, -h, -2 * h};
  for (int i = 0; i < 4; i++) {
    x[k] = x0 + steps[i];
    f[i] = ref_forward(r);
  }
  x[k] = x0;
  return (-f[0] + 8 * f[1] - 8 * f[2] + f[3]) / (12 * h);
}

/* Checks every float leaf's gradient (up to 48 elements each); returns the
 * max relative error, printing the worst element. */
static double check_fd(Graph *g, uint64_t seed, const char *what) {
  Ref *r = ref_new(g, DT_F64);
  fill(r, seed);
  ref_forward(r);
  ref_backward(r);
  long nleaf = 0;
  double *grads[64];
  Node *leaves[64];
  for (int i = 0; i < g->nforward && nleaf < 64; i++) {
    Node *n = g->nodes[i];
    if ((n->op == OP_param || n->op == OP_input) && n->type == TY_FLOAT) {
      long numel = shape_numel(&n->shape);
      grads[nleaf] = arena_alloc(sizeof(double) * (size_t)numel);
      memcpy(grads[nleaf], ref_grad(r, n), sizeof(double) * (size_t)numel);
      leaves[nleaf++] = n;
    }
  }
  double worst = 0;
  for (long j = 0; j < nleaf; j++) {
    Node *n = leaves[j];
    long numel = shape_numel(&n->shape), step = numel > 48 ? numel / 48 : 1;
    for (long k = 0; k < numel; k += step) {
      double want = fd(r, n, k, 1e-4), got = grads[j][k];
      double rel = fabs(got - want) / fmax(fmax(fabs(got), fabs(want)), 1e-3);
      if (rel > worst) {
        worst = rel;
        if (rel > 1e-6)
          fprintf(stderr, "%s: d%s[%ld] = %.12g, finite difference %.12g (rel %.3g)\n", what,
                  n->name, k, got, want, rel);
      }
    }
  }
  ref_free(r);
  return worst;
}

START_TEST(op_gradients) {
  Graph *g = parse_text(fd_specs[_i].spec);
  for (uint64_t seed = 1; seed <= 3; seed++) {
    double worst = check_fd(g, seed * 7919, fd_specs[_i].what);
    ck_assert_msg(worst <= 1e-6, "%s (seed %d): max relative error %.3g", fd_specs[_i].what,
                  (int)seed, worst);
  }
}
END_TEST

/* ---- the lecture's specs ------------------------------------------------------------ */

static Graph *load_spec(const char *file, DimOverride *ovr, int novr) {
  static jmp_buf jb;
  if (setjmp(jb)) {
    error_catch(NULL);
    ck_abort_msg("cannot load %s", file);
  }
  error_catch(&jb);
  Graph *g = parse_spec(read_src(arena_printf("%s/%s", specs_dir(), file)), ovr, novr);
  error_catch(NULL);
  return g;
}

static double max_rel_diff(const double *a, const double *b, long n) {
  double diff = 0, scale = 0;
  for (long i = 0; i < n; i++) {
    diff = fmax(diff, fabs(a[i] - b[i]));
    scale = fmax(scale, fmax(fabs(a[i]), fabs(b[i])));
  }
  return diff / fmax(scale, 1e-300);
}

static const char *const lecture_params[] = {"C", "W1", "b1", "W2", "b2", "bngain", "bnbias"};
static const char *const shared_names[] = {"emb", "embcat", "hprebn", "hpreact", "h", "logits",
                                           "loss"};

START_TEST(fused_equals_granular) {
  DimOverride ovr[2] = {{"B", 7 + 25 * _i, false}, {"H", 13 + 51 * _i, false}};
  Graph *gf = load_spec("makemore.spec", ovr, 2);
  ovr[0].used = ovr[1].used = false;
  Graph *gg = load_spec("makemore_granular.spec", ovr, 2);
  Ref *rf = ref_new(gf, DT_F64), *rg = ref_new(gg, DT_F64);
  fill(rf, 42);
  fill(rg, 42);
  double lf = ref_forward(rf), lg = ref_forward(rg);
  ck_assert_msg(fabs(lf - lg) <= 1e-12 * fabs(lf), "loss %.17g vs %.17g", lf, lg);
  ref_backward(rf);
  ref_backward(rg);
  for (size_t i = 0; i < sizeof shared_names / sizeof shared_names[0]; i++) {
    Node *a = graph_find(gf, shared_names[i]), *b = graph_find(gg, shared_names[i]);
    ck_assert_msg(a && b, "%s missing", shared_names[i]);
    long n = shape_numel(&a->shape);
    double dv = max_rel_diff(ref_data(rf, a), ref_data(rg, b), n);
    double dg = max_rel_diff(ref_grad(rf, a), ref_grad(rg, b), n);
    ck_assert_msg(dv <= 1e-12 && dg <= 1e-10, "%s: value %.3g, grad %.3g", shared_names[i], dv, dg);
  }
  for (size_t i = 0; i < sizeof lecture_params / sizeof lecture_params[0]; i++) {
    Node *a = graph_find(gf, lecture_params[i]), *b = graph_find(gg, lecture_params[i]);
    ck_assert_msg(a && b, "%s missing", lecture_params[i]);
    long n = shape_numel(&a->shape);
    double d = max_rel_diff(ref_grad(rf, a), ref_grad(rg, b), n);
    if (strcmp(lecture_params[i], "b1") == 0) {
      /* b1 feeds batchnorm: its true gradient is zero, so compare absolutely */
      double mx = 0;
      for (long k = 0; k < n; k++)
        mx = fmax(mx, fabs(ref_grad(rf, a)[k]) + fabs(ref_grad(rg, b)[k]));
      ck_assert_msg(mx < 1e-12, "db1 should vanish, max %.3g", mx);
    } else {
      ck_assert_msg(d <= 1e-10, "d%s: fused vs granular max relative diff %.3g",
                    lecture_params[i], d);
    }
  }
  ref_free(rf);
  ref_free(rg);
}
END_TEST

/* the fused lecture spec at odd shapes, against finite differences */
START_TEST(lecture_fd) {
  DimOverride ovr[3] = {{"B", 5, false}, {"H", 6, false}, {"V", 7, false}};
  const char *file = _i ? "makemore_granular.spec" : "makemore.spec";
  Graph *g = load_spec(file, ovr, 3);
  double worst = check_fd(g, 99, file);
  ck_assert_msg(worst <= 1e-6, "%s: max relative error %.3g", file, worst);
}
END_TEST

/* ---- initialisation ------------------------------------------------------------------ */

START_TEST(init_params) {
  Graph *g = load_spec("makemore.spec", NULL, 0);
  Node *C = graph_find(g, "C"), *W1 = graph_find(g, "W1"), *gain = graph_find(g, "bngain");
  Ref *a = ref_new(g, DT_F64), *b = ref_new(g, DT_F64), *c = ref_new(g, DT_F64);
  ref_init_params(a, 2147483647);
  ref_init_params(b, 2147483647);
  ref_init_params(c, 2147483648u);
  long nC = shape_numel(&C->shape), nW = shape_numel(&W1->shape);
  ck_assert_int_eq(memcmp(ref_data(a, W1), ref_data(b, W1), sizeof(double) * (size_t)nW), 0);
  ck_assert_int_ne(memcmp(ref_data(a, W1), ref_data(c, W1), sizeof(double) * (size_t)nW), 0);
  /* the documented order: C's elements first, each one randn; then W1's */
  BpRng rng;
  bp_rng_seed(&rng, 2147483647);
  for (long k = 0; k < nC; k++)
    ck_assert_double_eq(ref_data(a, C)[k], bp_randn(&rng));
  double w = bp_randn(&rng) * (5.0 / 3.0) / sqrt(30.0);
  ck_assert_double_eq_tol(ref_data(a, W1)[0], w, 1e-15);
  for (long k = 0; k < shape_numel(&gain->shape); k++)
    ck_assert(fabs(ref_data(a, gain)[k] - 1) < 0.6);
  /* f32 rounds the result */
  Ref *f = ref_new(g, DT_F32);
  ref_init_params(f, 2147483647);
  ck_assert_double_eq(ref_data(f, W1)[3], (double)(float)ref_data(a, W1)[3]);
  ref_free(a);
  ref_free(b);
  ref_free(c);
  ref_free(f);
}
END_TEST

START_TEST(random_inputs) {
  Graph *g = parse_text("dim V = 6\ninput X : int[40, 2]\ninput Y : int[40]\ninput U : int[3]\n"
                        "input Z : [40, 5]\nparam C : [V, 4] ~ randn\n"
                        "loss = cross_entropy(Z, Y) + sum(C[X]) + sum(C[Y])\n");
  Node *X = graph_find(g, "X"), *Y = graph_find(g, "Y"), *U = graph_find(g, "U");
  ck_assert_int_eq(ref_index_limit(g, X), 6);
  ck_assert_int_eq(ref_index_limit(g, Y), 5);   /* both a row (6) and a class (5) */
  ck_assert_int_eq(ref_index_limit(g, U), 0);   /* indexes nothing */
  Ref *r = ref_new(g, DT_F64);
  ref_random_inputs(r, 9);
  int seen[6] = {0};
  for (int k = 0; k < 80; k++) {
    int32_t v = ref_idata(r, X)[k];
    ck_assert(v >= 0 && v < 6);
    seen[v]++;
  }
  for (int k = 0; k < 6; k++)
    ck_assert_msg(seen[k] > 0, "index %d never drawn", k);
  for (int k = 0; k < 40; k++)
    ck_assert(ref_idata(r, Y)[k] >= 0 && ref_idata(r, Y)[k] < 5);
  for (int k = 0; k < 3; k++)
    ck_assert_int_eq(ref_idata(r, U)[k], 0);
  /* the documented stream: X first, one bp_uniform per element */
  BpRng rng;
  bp_rng_seed(&rng, 9 ^ REF_INPUT_SEED_MIX);
  ck_assert_int_eq(ref_idata(r, X)[0], (int32_t)(bp_uniform(&rng) * 6));
  ref_free(r);
}
END_TEST

/* ---- single behaviours ------------------------------------------------------------------ */

START_TEST(max_first_argmax) {
  Graph *g = parse_text("param A : [2, 3] ~ zeros\nloss = sum(max(A, 1)) + max(A)\n");
  Ref *r = ref_new(g, DT_F64);
  Node *A = graph_find(g, "A");
  double v[6] = {2, 5, 5, 7, 1, 7};
  memcpy(ref_data(r, A), v, sizeof v);
  ck_assert_double_eq(ref_forward(r), 5 + 7 + 7);
  ref_backward(r);
  double want[6] = {0, 1, 0, 2, 0, 0};
  for (int k = 0; k < 6; k++)
    ck_assert_msg(ref_grad(r, A)[k] == want[k], "dA[%d] = %g, want %g", k, ref_grad(r, A)[k],
                  want[k]);
  ref_free(r);
}
END_TEST

START_TEST(grads_of_intermediates) {
  Graph *g = parse_text("param A : [2, 2] ~ randn\nh = A * 3\nunused = exp(A)\nloss = sum(h)\n");
  Ref *r = ref_new(g, DT_F64);
  ref_init_params(r, 1);
  ref_forward(r);
  ref_backward(r);
  for (int k = 0; k < 4; k++) {
    ck_assert_double_eq(ref_grad(r, graph_find(g, "h"))[k], 1);
    ck_assert_double_eq(ref_grad(r, graph_find(g, "A"))[k], 3);
    ck_assert_double_eq(ref_grad(r, graph_find(g, "unused"))[k], 0);
    ck_assert_double_eq(ref_data(r, graph_find(g, "h"))[k], 3 * ref_data(r, graph_find(g, "A"))[k]);
  }
  /* a second pass gives the same, not accumulated, gradients */
  ref_forward(r);
  ref_backward(r);
  ck_assert_double_eq(ref_grad(r, graph_find(g, "A"))[0], 3);
  ref_free(r);
}
END_TEST

static const struct {
  const char *spec;
  int32_t bad;
  const char *msg;
} bad_index[] = {
  {"input X : int[3]\nparam C : [4, 2] ~ randn\nloss = sum(C[X])\n", 4,
   "gather: index 1 of int tensor 'X' is 4, outside 0..3"},
  {"input X : int[3]\nparam C : [4, 2] ~ randn\nloss = sum(C[X])\n", -1,
   "gather: index 1 of int tensor 'X' is -1, outside 0..3"},
  {"input Y : int[3]\nparam A : [3, 5] ~ randn\nloss = sum(pick(A, Y))\n", 5,
   "pick: index 1 of int tensor 'Y' is 5, outside 0..4"},
  {"input Y : int[3]\nparam A : [3, 5] ~ randn\nloss = cross_entropy(A, Y)\n", 7,
   "cross_entropy: index 1 of int tensor 'Y' is 7, outside 0..4"},
};

START_TEST(index_errors) {
  Graph *g = parse_text(bad_index[_i].spec);
  Ref *r = ref_new(g, DT_F64);
  ref_init_params(r, 1);
  Node *x = g->nodes[0];
  ck_assert_int_eq(x->type, TY_INT);
  ref_idata(r, x)[1] = bad_index[_i].bad;
  static jmp_buf jb;
  const char *msg = "";
  if (setjmp(jb) == 0) {
    error_catch(&jb);
    ref_forward(r);
    error_catch(NULL);
  } else {
    msg = arena_strndup(error_text(), strlen(error_text()));
    error_catch(NULL);
  }
  ref_free(r);
  ck_assert_msg(strstr(msg, bad_index[_i].msg), "got '%s', want '%s'", msg, bad_index[_i].msg);
}
END_TEST

START_TEST(f32_follows_float) {
  Graph *g = load_spec("makemore.spec", NULL, 0);
  Ref *d = ref_new(g, DT_F64), *f = ref_new(g, DT_F32);
  fill(d, 5);
  fill(f, 5);
  double ld = ref_forward(d), lf = ref_forward(f);
  ck_assert_msg(fabs(ld - lf) < 1e-5 * fabs(ld), "f32 loss %.9g vs f64 %.9g", lf, ld);
  ck_assert_double_eq(lf, (double)(float)lf);
  ref_backward(d);
  ref_backward(f);
  Node *W1 = graph_find(g, "W1");
  long n = shape_numel(&W1->shape);
  for (long k = 0; k < n; k++)
    ck_assert_double_eq(ref_grad(f, W1)[k], (double)(float)ref_grad(f, W1)[k]);
  double rel = max_rel_diff(ref_grad(d, W1), ref_grad(f, W1), n);
  ck_assert_msg(rel < 1e-4, "dW1 f32 vs f64: %.3g", rel);
  ref_free(d);
  ref_free(f);
}
END_TEST

/* transa/transb (made by later stages, never by the parser): values against a
 * naive product, gradients against finite differences */
START_TEST(matmul_transposed) {
  bool ta = _i & 1, tb = _i & 2;
  Graph *g = parse_text("param A : [3, 3] ~ randn\nparam B : [3, 3] ~ randn\n"
                        "param W : [3, 3] ~ randn\nP = A @ B\nloss = sum(P * W)\n");
  Node *P = graph_find(g, "P"), *A = graph_find(g, "A"), *B = graph_find(g, "B");
  P->transa = ta;
  P->transb = tb;
  Ref *r = ref_new(g, DT_F64);
  ref_init_params(r, 3);
  ref_forward(r);
  const double *a = ref_data(r, A), *b = ref_data(r, B), *p = ref_data(r, P);
  for (int i = 0; i < 3; i++)
    for (int j = 0; j < 3; j++) {
      double want = 0;
      for (int k = 0; k < 3; k++)
        want += (ta ? a[k * 3 + i] : a[i * 3 + k]) * (tb ? b[j * 3 + k] : b[k * 3 + j]);
      ck_assert_double_eq_tol(p[i * 3 + j], want, 1e-14);
    }
  ref_free(r);
  double worst = check_fd(g, 3, "matmul transposed");
  ck_assert_msg(worst <= 1e-6, "transa %d transb %d: max relative error %.3g", ta, tb, worst);
}
END_TEST

static Suite *make_suite(void) {
  Suite *s = suite_create("ref");
  TCase *tc = tcase_create("ref");
  tcase_set_timeout(tc, 60);
  tcase_add_loop_test(tc, op_gradients, 0, (int)(sizeof fd_specs / sizeof fd_specs[0]));
  tcase_add_loop_test(tc, fused_equals_granular, 0, 2);
  tcase_add_loop_test(tc, lecture_fd, 0, 2);
  tcase_add_test(tc, init_params);
  tcase_add_test(tc, random_inputs);
  tcase_add_loop_test(tc, matmul_transposed, 1, 4);
  tcase_add_test(tc, max_first_argmax);
  tcase_add_test(tc, grads_of_intermediates);
  tcase_add_loop_test(tc, index_errors, 0, (int)(sizeof bad_index / sizeof bad_index[0]));
  tcase_add_test(tc, f32_follows_float);
  suite_add_tcase(s, tc);
  return s;
}
TESTS_REGISTER(make_suite)
