/* test_grad.c: the backward graph grad.c derives.
 *
 * Structural checks (which ops a rule makes, shapes, pruning, the perturb
 * hook), then a numeric check: a tiny test-only evaluator runs the backward
 * nodes with naive loops -- taking every forward value from the reference
 * runtime -- and its gradients must match the runtime's tape autograd in f64.
 * The evaluator pins the semantics of the backward-only ops written in
 * grad.c; the emitter must compute the same.
 */
#include "tests.h"
#include "ref.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int count_op(Graph *g, OpKind op) {
  int k = 0;
  for (int i = g->nforward; i < g->nnodes; i++)
    k += g->nodes[i]->op == op;
  return k;
}

static Graph *built(const char *text) {
  Graph *g = parse_text(text);
  grad_build(g);
  return g;
}

static const char head[] =
  "dim B = 4\ndim D = 3\ndim K = 5\n"
  "input X : int[B]\ninput Y : int[B]\ninput x : [B, D]\n"
  "param W : [D, K] ~ randn\nparam b : [K] ~ randn\n"
  "param g : [1, D] ~ randn\nparam c : [1, D] ~ randn\nparam E : [K, D] ~ randn\n";

static Graph *built_body(const char *body) {
  return built(arena_printf("%s%s", head, body));
}

/* ---- which ops each rule makes ------------------------------------------------ */

static const struct {
  const char *body;
  OpKind op;
  int at_least;
} makes[] = {
  {"loss = cross_entropy(x @ W, Y)\n", OP_xent_bwd, 1},
  {"loss = cross_entropy(x @ W, Y)\n", OP_matmul, 1},      /* dW only: x is an input */
  {"h = batchnorm(x, g, c, eps=1e-5)\nloss = cross_entropy(h @ W, Y)\n", OP_bn_bwd_gain, 1},
  {"loss = cross_entropy(x @ W + b, Y)\n", OP_sumto, 1},   /* db: [B,K] -> [K] */
  {"loss = cross_entropy(tanh(x @ W), Y)\n", OP_tanh_bwd, 1},
  {"loss = cross_entropy(relu(x @ W), Y)\n", OP_relu_bwd, 1},
  {"loss = cross_entropy(sigmoid(x @ W), Y)\n", OP_sigmoid_bwd, 1},
  {"loss = cross_entropy(softmax(x @ W), Y)\n", OP_softmax_bwd, 1},
  {"loss = mean(max(x @ W, 1))\n", OP_max_bwd, 1},
  {"loss = -mean(pick(x @ W, Y))\n", OP_pick_bwd, 1},
  {"loss = cross_entropy(E[X], Y)\n", OP_gather_bwd, 1},
  {"loss = sum(exp(x @ W))\n", OP_expand, 1},
};

START_TEST(test_makes) {
  Graph *g = built_body(makes[_i].body);
  ck_assert_msg(count_op(g, makes[_i].op) >= makes[_i].at_least, "%s: no %s in backward",
                makes[_i].body, optab[makes[_i].op].name);
}
END_TEST

/* dA = dY·Bᵀ (transb), dB = Aᵀ·dY (transa) */
START_TEST(test_matmul_trans) {
  Graph *g = built_body("h = tanh(x @ W)\nloss = cross_entropy(h @ E, Y)\n");
  int ta = 0, tb = 0;
  for (int i = g->nforward; i < g->nnodes; i++) {
    Node *n = g->nodes[i];
    if (n->op == OP_matmul) {
      ta += n->transa && !n->transb;
      tb += n->transb && !n->transa;
    }
  }
  ck_assert_int_eq(ta, 2);   /* dE, dW */
  ck_assert_int_eq(tb, 1);   /* dh (no dx: x is an input) */
}
END_TEST

/* batched a [B, D, D] @ W [D, K]: dW through reshapes to [B*D, D] and [B*D, K] */
START_TEST(test_matmul_batched) {
  Graph *k = built("dim B = 2\ndim M = 3\ndim K = 4\ndim N = 5\n"
                   "param A : [B, M, K] ~ randn\nparam W : [K, N] ~ randn\n"
                   "loss = mean(A @ W)\n");
  Node *W = graph_find(k, "W");
  ck_assert_ptr_nonnull(W->grad);
  ck_assert_int_eq(W->grad->op, OP_matmul);
  ck_assert(W->grad->transa);
  ck_assert_int_eq(W->grad->in[0]->op, OP_reshape);
  ck_assert_int_eq(W->grad->in[0]->shape.dim[0], 6);
}
END_TEST

/* every param and named float statement has a gradient of its own shape;
 * inputs and int tensors have none */
static void check_grads(Graph *g) {
  for (int i = 0; i < g->nforward; i++) {
    Node *n = g->nodes[i];
    bool want = n->type == TY_FLOAT && (n->op == OP_param || (n->name && n->op != OP_input));
    if (want) {
      ck_assert_msg(n->grad != NULL, "%s has no gradient", n->name);
      ck_assert_msg(shape_eq(&n->grad->shape, &n->shape), "d%s is %s, %s is %s", n->name,
                    shape_str(&n->grad->shape), n->name, shape_str(&n->shape));
      ck_assert(n->grad->is_backward);
    }
    if (n->type == TY_INT || n->op == OP_input)
      ck_assert_msg(n->grad == NULL, "%s should have no gradient", n->name);
  }
  for (int i = 0; i < g->nnodes; i++) {
    ck_assert_int_eq(g->nodes[i]->id, i);
    ck_assert(g->nodes[i]->is_backward == (i >= g->nforward));
    if (i >= g->nforward) {
      ck_assert_ptr_nonnull(g->nodes[i]->fwd);
      for (int k = 0; k < MAXIN; k++)
        if (g->nodes[i]->in[k])
          ck_assert_int_lt(g->nodes[i]->in[k]->id, i);
    }
  }
}

static Graph *load_spec(const char *name, DimOverride *ovr, int novr) {
  const char *path = arena_printf("%s/%s", specs_dir(), name);
  return parse_spec(read_src(path), ovr, novr);
}

static const char *const lecture[] = {"makemore.spec", "makemore_granular.spec"};

START_TEST(test_lecture_grads) {
  Graph *g = load_spec(lecture[_i], NULL, 0);
  grad_build(g);
  check_grads(g);
  if (_i == 0) {
    ck_assert_int_eq(count_op(g, OP_xent_bwd), 1);
    ck_assert_int_eq(count_op(g, OP_bn_bwd_x), 1);
    ck_assert_int_eq(count_op(g, OP_gather_bwd), 1);
    ck_assert_int_eq(count_op(g, OP_matmul), 4);   /* dh, dW2, dembcat, dW1 */
  }
}
END_TEST

START_TEST(test_pruning) {
  /* the const 2 gets no gradient; nothing but dloss, its broadcast, and dW */
  Graph *g = built("dim D = 3\nparam W : [D, 2] ~ randn\nloss = mean(W * 2)\n");
  check_grads(g);
  ck_assert_int_eq(count_op(g, OP_sumto), 0);
  ck_assert_int_eq(g->nnodes - g->nforward, 3);
  for (int i = 0; i < g->nforward; i++)
    if (g->nodes[i]->op == OP_const)
      ck_assert_ptr_null(g->nodes[i]->grad);
  /* no gradient flows into the int index of a gather or pick */
  Graph *h = built_body("loss = -mean(pick(E[X] @ W, Y))\n");
  check_grads(h);
  ck_assert_int_eq(count_op(h, OP_gather_bwd), 1);
  /* an input feeding a product: only the param's side is computed */
  Graph *k = built_body("loss = mean(x * g)\n");
  ck_assert_int_eq(count_op(k, OP_mul), 1);
  ck_assert_int_eq(count_op(k, OP_sumto), 1);
}
END_TEST

START_TEST(test_zero_grad) {
  Graph *g = built_body("side = tanh(x @ W)\nloss = mean(E)\n");
  Node *s = graph_find(g, "side");
  ck_assert_ptr_nonnull(s->grad);
  ck_assert_int_eq(s->grad->op, OP_expand);
  ck_assert_int_eq(s->grad->in[0]->op, OP_const);
  ck_assert(s->grad->in[0]->num == 0);
  ck_assert_int_eq(count_op(g, OP_tanh_bwd), 0);
  /* W reaches the loss only through side: zero as well */
  ck_assert_int_eq(graph_find(g, "W")->grad->op, OP_expand);
  check_grads(g);
}
END_TEST

START_TEST(test_fanout) {
  Graph *g = built_body("h = x @ W\nloss = mean(h * h)\n");
  Node *h = graph_find(g, "h");
  ck_assert_int_eq(h->grad->op, OP_add);
  ck_assert_ptr_eq(h->grad->fwd, h);
  int ne = g->nedges;
  const GradEdge *e = g->edges;
  int into_h = 0;
  for (int k = 0; k < ne; k++)
    into_h += e[k].user->in[e[k].arg] == h;
  ck_assert_int_eq(into_h, 2);
}
END_TEST

START_TEST(test_perturb) {
  const char *body = "h = tanh(x @ W)\nloss = cross_entropy(h @ E, Y)\n";
  Graph *a = built_body(body);
  grad_perturb = OP_tanh + 1;
  Graph *b = built_body(body);
  grad_perturb = 0;
  ck_assert_int_eq(b->nnodes, a->nnodes + 2);
  bool found = false;
  for (int i = b->nforward; i < b->nnodes; i++)
    found |= b->nodes[i]->op == OP_const && b->nodes[i]->num == 1.001;
  ck_assert(found);
}
END_TEST

/* ---- the test-only evaluator of backward nodes -------------------------------- */

typedef struct Eval {
  Graph *g;
  Ref *r;
  double **v;    /* by node id */
} Eval;

/* flat index into `in` for flat index i of `out`, `in` broadcast to `out` */
static long bidx(const Shape *in, const Shape *out, long i) {
  long j = 0, stride = 1;
  for (int d = out->rank - 1, e = in->rank - 1; d >= 0; d--, e--) {
    long k = i % out->dim[d];
    i /= out->dim[d];
    if (e >= 0) {
      if (in->dim[e] != 1)
        j += k * stride;
      stride *= in->dim[e];
    }
  }
  return j;
}

static double *val(Eval *ev, Node *n) {
  if (n->is_backward)
    return ev->v[n->id];
  if (n->op == OP_const) {
    static double c[64];
    static int at;
    at = (at + 1) % 64;
    c[at] = n->num;
    return &c[at];
  }
  return ref_data(ev->r, n);
}

static int32_t *ival(Eval *ev, Node *n) { return ref_idata(ev->r, n); }

/* statistics of a normalisation: xhat and rstd per (slice), as grad.c defines */
static void norm_stats(Eval *ev, Node *nn, double *xhat, double *rstd) {
  Node *x = nn->in[0];
  double *xv = val(ev, x);
  bool bn = nn->op == OP_batchnorm;
  int D = x->shape.dim[x->shape.rank - 1];
  long rows = shape_numel(&x->shape) / D;
  long nslices = bn ? D : rows, cnt = bn ? rows : D;
  for (long s = 0; s < nslices; s++) {
#define AT(k) (bn ? (k) * D + s : s * D + (k))
    double mean = 0, var = 0;
    for (long k = 0; k < cnt; k++)
      mean += xv[AT(k)];
    mean /= cnt;
    for (long k = 0; k < cnt; k++)
      var += (xv[AT(k)] - mean) * (xv[AT(k)] - mean);
    var /= bn && nn->unbiased ? cnt - 1 : cnt;
    rstd[s] = 1 / sqrt(var + nn->num);
    for (long k = 0; k < cnt; k++)
      xhat[AT(k)] = (xv[AT(k)] - mean) * rstd[s];
#undef AT
  }
}

static void eval_node(Eval *ev, Node *n) {
  long N = shape_numel(&n->shape);
  double *o = ev->v[n->id] = calloc((size_t)(N ? N : 1), sizeof(double));
  Node *a = n->in[0], *b = n->in[1];
  double *av = a && a->type == TY_FLOAT ? val(ev, a) : NULL;
  double *bv = b && b->type == TY_FLOAT ? val(ev, b) : NULL;
  switch (n->op) {
  case OP_const: o[0] = n->num; break;
  case OP_add: case OP_sub: case OP_mul: case OP_div:
    for (long i = 0; i < N; i++) {
      double x = av[bidx(&a->shape, &n->shape, i)], y = bv[bidx(&b->shape, &n->shape, i)];
      o[i] = n->op == OP_add ? x + y : n->op == OP_sub ? x - y : n->op == OP_mul ? x * y : x / y;
    }
    break;
  case OP_neg: for (long i = 0; i < N; i++) o[i] = -av[i]; break;
  case OP_pow: for (long i = 0; i < N; i++) o[i] = pow(av[i], n->num); break;
  case OP_reshape: memcpy(o, av, sizeof(double) * (size_t)N); break;
  case OP_sumto:
    for (long i = 0; i < shape_numel(&a->shape); i++)
      o[bidx(&n->shape, &a->shape, i)] += av[i];
    break;
  case OP_expand:
    for (long i = 0; i < N; i++) o[i] = n->num * av[bidx(&a->shape, &n->shape, i)];
    break;
  case OP_matmul: {
    const Shape *sa = &a->shape, *sb = &b->shape;
    int M = n->shape.dim[n->shape.rank - 2], Nn = n->shape.dim[n->shape.rank - 1];
    int K = n->transa ? sa->dim[sa->rank - 2] : sa->dim[sa->rank - 1];
    long P = N / ((long)M * Nn);
    long stra = sa->rank > 2 ? (long)M * K : 0, strb = sb->rank > 2 ? (long)K * Nn : 0;
    for (long p = 0; p < P; p++)
      for (int i = 0; i < M; i++)
        for (int j = 0; j < Nn; j++) {
          double s = 0;
          for (int k = 0; k < K; k++) {
            double x = av[p * stra + (n->transa ? (long)k * M + i : (long)i * K + k)];
            double y = bv[p * strb + (n->transb ? (long)j * K + k : (long)k * Nn + j)];
            s += x * y;
          }
          o[p * M * Nn + (long)i * Nn + j] = s;
        }
    break;
  }
  case OP_tanh_bwd: for (long i = 0; i < N; i++) o[i] = (1 - av[i] * av[i]) * bv[i]; break;
  case OP_relu_bwd: for (long i = 0; i < N; i++) o[i] = av[i] > 0 ? bv[i] : 0; break;
  case OP_sigmoid_bwd: for (long i = 0; i < N; i++) o[i] = av[i] * (1 - av[i]) * bv[i]; break;
  case OP_max_bwd: {
    /* slices along axis: out index i belongs to slice bidx(dy shape, x shape, i) */
    long M = shape_numel(&b->shape);
    for (long s = 0; s < M; s++) {
      long best = -1;
      for (long i = 0; i < N; i++)
        if (bidx(&b->shape, &n->shape, i) == s && (best < 0 || av[i] > av[best]))
          best = i;
      o[best] = bv[s];
    }
    break;
  }
  case OP_softmax_bwd: {
    Shape rs = n->shape;
    rs.dim[n->axis] = 1;
    long M = shape_numel(&rs);
    double *dot = calloc((size_t)M, sizeof(double));
    for (long i = 0; i < N; i++) dot[bidx(&rs, &n->shape, i)] += av[i] * bv[i];
    for (long i = 0; i < N; i++) o[i] = av[i] * (bv[i] - dot[bidx(&rs, &n->shape, i)]);
    free(dot);
    break;
  }
  case OP_pick_bwd: {
    int32_t *y = ival(ev, a);
    int K = n->shape.dim[1];
    for (int i = 0; i < n->shape.dim[0]; i++) o[(long)i * K + y[i]] = bv[i];
    break;
  }
  case OP_gather_bwd: {
    int32_t *X = ival(ev, a);
    long rows = shape_numel(&a->shape), R = N / n->shape.dim[0];
    for (long j = 0; j < rows; j++)
      for (long k = 0; k < R; k++) o[(long)X[j] * R + k] += bv[j * R + k];
    break;
  }
  case OP_xent_bwd: {
    int32_t *y = ival(ev, b);
    double dl = val(ev, n->in[2])[0];
    int R = n->shape.dim[0], K = n->shape.dim[1];
    for (int i = 0; i < R; i++) {
      double m = -INFINITY, s = 0;
      for (int k = 0; k < K; k++) m = fmax(m, av[i * K + k]);
      for (int k = 0; k < K; k++) s += exp(av[i * K + k] - m);
      for (int k = 0; k < K; k++)
        o[i * K + k] = (exp(av[i * K + k] - m) / s - (k == y[i])) / R * dl;
    }
    break;
  }
  case OP_bn_bwd_x: case OP_bn_bwd_gain: case OP_ln_bwd_x: case OP_ln_bwd_gain: {
    Node *x = a->in[0];
    long XN = shape_numel(&x->shape);
    int D = x->shape.dim[x->shape.rank - 1];
    long rows = XN / D;
    double *xhat = calloc((size_t)XN, sizeof(double)), *rstd = calloc((size_t)(rows > D ? rows : D), sizeof(double));
    norm_stats(ev, a, xhat, rstd);
    double *gain = val(ev, a->in[1]);
    if (n->op == OP_bn_bwd_gain || n->op == OP_ln_bwd_gain) {
      for (long i = 0; i < XN; i++) o[i % D] += bv[i] * xhat[i];
    } else if (n->op == OP_bn_bwd_x) {
      double c = a->unbiased ? (double)rows / (rows - 1) : 1;
      for (int d = 0; d < D; d++) {
        double sdy = 0, sdx = 0;
        for (long r = 0; r < rows; r++) {
          sdy += bv[r * D + d];
          sdx += bv[r * D + d] * xhat[r * D + d];
        }
        for (long r = 0; r < rows; r++)
          o[r * D + d] = gain[d] * rstd[d] / rows *
                         (rows * bv[r * D + d] - sdy - c * xhat[r * D + d] * sdx);
      }
    } else {
      for (long r = 0; r < rows; r++) {
        double mg = 0, mgx = 0;
        for (int d = 0; d < D; d++) {
          mg += gain[d] * bv[r * D + d];
          mgx += gain[d] * bv[r * D + d] * xhat[r * D + d];
        }
        mg /= D;
        mgx /= D;
        for (int d = 0; d < D; d++)
          o[r * D + d] = rstd[r] * (gain[d] * bv[r * D + d] - mg - xhat[r * D + d] * mgx);
      }
    }
    free(xhat);
    free(rstd);
    break;
  }
  default:
    ck_abort_msg("evaluator: no %s", optab[n->op].name);
  }
}

/* Runs spec forward and backward on the reference runtime, evaluates the
 * backward graph, and compares every wanted gradient; returns the worst
 * relative difference. */
static double compare(Graph *g, const char *what) {
  grad_build(g);
  Ref *r = ref_new(g, DT_F64);
  ref_init_params(r, 42);
  srand(7);
  for (int i = 0; i < g->nforward; i++) {
    Node *n = g->nodes[i];
    if (n->op != OP_input)
      continue;
    long N = shape_numel(&n->shape);
    if (n->type == TY_INT) {
      /* indices valid for whatever they index: the smallest table or class count */
      int lim = 1 << 30;
      for (int j = 0; j < g->nforward; j++) {
        Node *u = g->nodes[j];
        if (u->op == OP_gather && u->in[1] == n && u->in[0]->shape.dim[0] < lim)
          lim = u->in[0]->shape.dim[0];
        if ((u->op == OP_pick || u->op == OP_cross_entropy) && u->in[1] == n &&
            u->in[0]->shape.dim[1] < lim)
          lim = u->in[0]->shape.dim[1];
      }
      for (long k = 0; k < N; k++)
        ref_idata(r, n)[k] = rand() % lim;
    } else {
      for (long k = 0; k < N; k++)
        ref_data(r, n)[k] = (double)rand() / RAND_MAX * 2 - 1;
    }
  }
  ref_forward(r);
  ref_backward(r);
  Eval ev = {g, r, calloc((size_t)g->nnodes, sizeof(double *))};
  for (int i = g->nforward; i < g->nnodes; i++)
    eval_node(&ev, g->nodes[i]);
  double worst = 0;
  for (int i = 0; i < g->nforward; i++) {
    Node *n = g->nodes[i];
    if (!n->grad)
      continue;
    double *want = ref_grad(r, n), *got = val(&ev, n->grad);
    double md = 0, scale = 1e-300;
    long N = shape_numel(&n->shape), at = 0;
    for (long k = 0; k < N; k++) {
      scale = fmax(scale, fabs(want[k]));
      if (fabs(got[k] - want[k]) > md) {
        md = fabs(got[k] - want[k]);
        at = k;
      }
    }
    /* relative to the tensor's largest entry; a gradient that is zero in exact
     * arithmetic (db1: batchnorm follows b1) is compared at 1e-6 instead */
    double rel = md / fmax(scale, 1e-6);
    if (rel > 1e-9)
      fprintf(stderr, "%s: d%s maxdiff %.3g (relative %.3g) at %ld: got %.17g want %.17g\n", what,
              n->name ? n->name : optab[n->op].name, md, rel, at, got[at], want[at]);
    worst = fmax(worst, rel);
  }
  for (int i = 0; i < g->nnodes; i++)
    free(ev.v[i]);
  free(ev.v);
  ref_free(r);
  return worst;
}

static const struct {
  const char *spec;
  const char *ovr;   /* "B=7,H=13" or NULL */
  bool expand;       /* lower the fused ops first (--expand) */
} numeric_specs[] = {
  {"makemore.spec", NULL, false},
  {"makemore_granular.spec", NULL, false},
  {"makemore.spec", "B=7,H=13,T=4", false},
  {"makemore_granular.spec", "B=7,H=13,T=4", false},
  {"mlp_relu.spec", NULL, false},
  {"makemore.spec", "B=7,H=13,T=4", true},
};

START_TEST(test_numeric_specs) {
  DimOverride ovr[8];
  int novr = 0;
  if (numeric_specs[_i].ovr) {
    char *s = arena_printf("%s", numeric_specs[_i].ovr);
    for (char *t = strtok(s, ","); t; t = strtok(NULL, ",")) {
      char *eq = strchr(t, '=');
      *eq = '\0';
      ovr[novr++] = (DimOverride){t, atol(eq + 1), false};
    }
  }
  Graph *g = load_spec(numeric_specs[_i].spec, ovr, novr);
  if (numeric_specs[_i].expand)
    g = expand_fused(g);
  double rel = compare(g, numeric_specs[_i].spec);
  ck_assert_msg(rel <= 1e-9, "%s: worst relative difference %.3g", numeric_specs[_i].spec, rel);
}
END_TEST

/* every op, odd shapes */
static const char *const numeric_bodies[] = {
  "h = tanh(x @ W + b)\nloss = cross_entropy(h, Y)\n",
  "h = relu(x @ W) - b\nloss = cross_entropy(h, Y)\n",
  "h = sigmoid(x @ W) * b\nloss = cross_entropy(h / (b * b + 1), Y)\n",
  "h = sqrt(exp(x @ W))\nl = log(h + 1)\nloss = mean(l ^ 3) + sum(-h) / 7\n",
  "p = softmax(x @ W)\nq = softmax(x @ W, axis=0)\nloss = -mean(pick(log(p * q), Y))\n",
  "m = max(x @ W, 1)\nn = max(x @ W, 0)\nt = max(x @ W)\nloss = mean(m) + mean(n) * t\n",
  "h = batchnorm(x * g + c, g, c, eps=1e-5)\nloss = cross_entropy(h @ W, Y)\n",
  "h = batchnorm(x * g + c, g, c, eps=1e-3, unbiased=false)\nloss = cross_entropy(h @ W, Y)\n",
  "h = layernorm(x @ W, b, b * 2, eps=1e-5)\nloss = cross_entropy(h, Y)\n",
  "e = E[X]\nf = reshape(e, [B, D])\nloss = cross_entropy(f @ W, Y)\n",
  "h = x @ W\nk = h * h + h\nloss = mean((k * k + 1) ^ 0.5 * mean(h, 0)) + mean(sum(h, 1) ^ 2)\n",
  "h = x @ W\nloss = mean(sum(h, 0) / b)\n",
};

START_TEST(test_numeric_ops) {
  Graph *g = parse_text(arena_printf("%s%s", head, numeric_bodies[_i]));
  double rel = compare(g, numeric_bodies[_i]);
  ck_assert_msg(rel <= 1e-9, "%s: worst relative difference %.3g", numeric_bodies[_i], rel);
}
END_TEST

/* batched matmul with equal batch axes, and with a 2-D right operand */
START_TEST(test_numeric_batched) {
  Graph *g = parse_text("dim B = 3\ndim T = 4\ndim K = 5\ndim N = 2\n"
                        "param A : [B, T, K] ~ randn\nparam Q : [B, K, N] ~ randn\n"
                        "param W : [K, N] ~ randn\n"
                        "loss = mean(tanh(A @ Q) * (A @ W))\n");
  double rel = compare(g, "batched");
  ck_assert_msg(rel <= 1e-9, "batched: worst relative difference %.3g", rel);
}
END_TEST

static Suite *make_suite(void) {
  Suite *s = suite_create("grad");
  TCase *tc = tcase_create("structure");
  tcase_add_loop_test(tc, test_makes, 0, (int)(sizeof makes / sizeof makes[0]));
  tcase_add_test(tc, test_matmul_trans);
  tcase_add_test(tc, test_matmul_batched);
  tcase_add_loop_test(tc, test_lecture_grads, 0, 2);
  tcase_add_test(tc, test_pruning);
  tcase_add_test(tc, test_zero_grad);
  tcase_add_test(tc, test_fanout);
  tcase_add_test(tc, test_perturb);
  suite_add_tcase(s, tc);
  TCase *tn = tcase_create("numeric");
  tcase_add_loop_test(tn, test_numeric_specs, 0, (int)(sizeof numeric_specs / sizeof numeric_specs[0]));
  tcase_add_loop_test(tn, test_numeric_ops, 0, (int)(sizeof numeric_bodies / sizeof numeric_bodies[0]));
  tcase_add_test(tn, test_numeric_batched);
  suite_add_tcase(s, tn);
  return s;
}

TESTS_REGISTER(make_suite)
