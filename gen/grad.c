/* grad.c: the backward graph, derived by symbolic rules.
 *
 * Consumes a forward Graph (nodes[0..nforward-1], shapes inferred) and appends
 * backward nodes to it: one derivative rule per differentiable op (the grad
 * column of ops.h) turns d(out) into one contribution per input, and
 * grad_build() walks the forward nodes in reverse topological order, summing
 * the contributions a node receives (fan-out: the multivariate chain rule adds
 * them) into n->grad before calling that node's rule.  The one idea: the
 * backward pass is more graph, made of ordinary ops (matmul, mul, sumto, ...)
 * plus a few backward-only ops whose exact semantics are written beside their
 * shape rules below -- the emitter implements exactly those.
 *
 * A rule may hand back dout itself as a contribution (add, reshape to the same
 * shape, pow 1): gradients are values, so aliasing is fine and saves a copy.
 * After the walk, the backward nodes that no wanted gradient (params and named
 * float statements) depends on are pruned and ids renumbered.
 */
#include "bpgen.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int grad_perturb;   /* test hook: OpKind + 1 of the rule to perturb (x 1.001), 0 = none */

/* ---- building nodes -------------------------------------------------------- */

static Node *binary(Graph *g, OpKind op, Token *tok, Node *a, Node *b) {
  return graph_add(g, op, tok, a, b, NULL, NULL, NULL);
}

static Node *unary(Graph *g, OpKind op, Token *tok, Node *a) {
  return graph_add(g, op, tok, a, NULL, NULL, NULL, NULL);
}

static Node *with_axis(Graph *g, OpKind op, Token *tok, Node *a, Node *b, int axis) {
  return graph_add(g, op, tok, a, b, NULL, NULL, &(NodeAttr){.axis = axis, .num = 1});
}

/* dy summed down to `to` where the forward op broadcast its input; dy itself
 * when nothing was broadcast. */
static Node *reduce_to(Graph *g, Token *tok, Node *dy, const Shape *to) {
  if (shape_eq(&dy->shape, to))
    return dy;
  return graph_add(g, OP_sumto, tok, dy, NULL, NULL, to, NULL);
}

/* x broadcast up to `to`, times scale (expand's num; 1 = none) */
static Node *expand(Graph *g, Token *tok, Node *x, const Shape *to, double scale) {
  return graph_add(g, OP_expand, tok, x, NULL, NULL, to, &(NodeAttr){.num = scale});
}

static Node *matmul(Graph *g, Token *tok, Node *a, Node *b, bool ta, bool tb) {
  return graph_add(g, OP_matmul, tok, a, b, NULL, NULL, &(NodeAttr){.transa = ta, .transb = tb, .num = 1});
}

static Node *reshape(Graph *g, Token *tok, Node *x, const Shape *to) {
  if (shape_eq(&x->shape, to))
    return x;
  return graph_add(g, OP_reshape, tok, x, NULL, NULL, to, NULL);
}

/* ---- shape rules of the backward-only ops ---------------------------------- *
 *
 * Semantics, exactly as the emitter must implement them (x̂, rstd: below):
 *
 * sumto(dy) -> n->shape S     out[j] = Σ dy[i] over every i that broadcasts to j
 *                             (NumPy rules, right-aligned; S broadcasts to dy)
 * expand(x) -> n->shape S     out[i] = num · x[i broadcast down to x's shape]
 *                             (x broadcasts to S; num is a scale, 1 = none)
 * tanh_bwd(t, dy)             (1 − t·t) · dy
 * relu_bwd(y, dy)             y > 0 ? dy : 0
 * sigmoid_bwd(s, dy)          s · (1 − s) · dy
 * max_bwd(x, dy), axis        zeros shaped as x, except dy[r] at the FIRST index of
 *                             the maximum of each slice r along axis (dy has the
 *                             reduced shape, axis kept as 1); axis −1: one slice,
 *                             the whole tensor in row-major order, dy a scalar
 * pick_bwd(Y, dy) -> [N, K]   zeros; out[i, Y[i]] = dy[i]
 * gather_bwd(X, dy) -> C's    zeros shaped as C [V, R...]; for each flat index j
 *                             of X: out[X[j], :] += dy[j, :] (scatter-add; rows
 *                             of dy are the trailing R... block)
 * softmax_bwd(y, dy), axis    y · (dy − Σ_axis(dy · y))   (Σ kept per slice)
 * xent_bwd(L, Y, dl) [N, K]   (softmax(L[i])[k] − [k == Y[i]]) / N · dl   (dl scalar)
 * bn_bwd_x(bn, dy) [N, D]     x = bn->in[0], gain = bn->in[1] ([1,D] or [D]),
 *                             eps = bn->num; per column d over the batch b:
 *                               mean = Σ_b x / N
 *                               var  = Σ_b (x − mean)² / (N − 1)   (unbiased)
 *                                                    / N           (otherwise)
 *                               rstd = (var + eps)^(−1/2),  x̂ = (x − mean) · rstd
 *                             dx = gain·rstd/N · (N·dy − Σ_b dy − c·x̂·Σ_b(dy·x̂))
 *                               with c = N/(N−1) when unbiased, c = 1 otherwise
 * bn_bwd_gain(bn, dy)         Σ_b dy · x̂, shaped as gain ([1,D] or [D])
 * ln_bwd_x(ln, dy) [..., D]   x = ln->in[0], gain [D], eps = ln->num; per row over
 *                             the last axis (D entries):
 *                               mean = Σ x / D, var = Σ (x − mean)² / D,
 *                               rstd = (var + eps)^(−1/2), x̂ = (x − mean) · rstd
 *                               g = gain · dy   (the gradient of x̂)
 *                             dx = rstd · (g − Σ g / D − x̂ · Σ(g · x̂) / D)
 * ln_bwd_gain(ln, dy) [D]     Σ over all rows (every leading index) of dy · x̂
 * pad(dy) -> n->shape S       zeros shaped S, except out[..., start + i, ...] =
 *                             dy[..., i, ...] along axis (dy is S with that
 *                             axis cut to its own length)
 */

/* true if `from` broadcasts to `to` (right-aligned; each dim equal or 1) */
static bool bcasts_to(const Shape *from, const Shape *to) {
  if (from->rank > to->rank)
    return false;
  for (int i = 1; i <= from->rank; i++) {
    int f = from->dim[from->rank - i], t = to->dim[to->rank - i];
    if (f != t && f != 1)
      return false;
  }
  return true;
}

static void check_shape_sane(const Node *n) {
  if (n->shape.rank < 0 || n->shape.rank > MAXRANK)
    die("%s: bad rank %d", optab[n->op].name, n->shape.rank);
  for (int i = 0; i < n->shape.rank; i++)
    if (n->shape.dim[i] < 1)
      die("%s: bad shape %s", optab[n->op].name, shape_str(&n->shape));
}

void shape_given(Node *n) {
  Node *a = n->in[0], *b = n->in[1];
  const char *op = optab[n->op].name;
  n->type = TY_FLOAT;
  check_shape_sane(n);
  switch (n->op) {
  case OP_sumto:
    if (!bcasts_to(&n->shape, &a->shape))
      die("sumto: %s does not broadcast to %s", shape_str(&n->shape), shape_str(&a->shape));
    break;
  case OP_expand:
    if (!bcasts_to(&a->shape, &n->shape))
      die("expand: %s does not broadcast to %s", shape_str(&a->shape), shape_str(&n->shape));
    break;
  case OP_pick_bwd:
    if (a->type != TY_INT || a->shape.rank != 1 || n->shape.rank != 2 ||
        n->shape.dim[0] != a->shape.dim[0] || !shape_eq(&b->shape, &a->shape))
      die("pick_bwd: Y %s, dy %s, out %s", shape_str(&a->shape), shape_str(&b->shape),
          shape_str(&n->shape));
    break;
  case OP_gather_bwd: {
    /* dy = [X..., C[1:]...] */
    bool ok = a->type == TY_INT && n->shape.rank >= 1 &&
              b->shape.rank == a->shape.rank + n->shape.rank - 1;
    for (int i = 0; ok && i < a->shape.rank; i++)
      ok = b->shape.dim[i] == a->shape.dim[i];
    for (int i = 1; ok && i < n->shape.rank; i++)
      ok = b->shape.dim[a->shape.rank + i - 1] == n->shape.dim[i];
    if (!ok)
      die("gather_bwd: X %s, dy %s, out %s", shape_str(&a->shape), shape_str(&b->shape),
          shape_str(&n->shape));
    break;
  }
  case OP_pad: {
    bool ok = n->axis >= 0 && n->axis < n->shape.rank && a->shape.rank == n->shape.rank && n->start >= 0 &&
              (long)n->start + a->shape.dim[n->axis] <= n->shape.dim[n->axis];
    for (int i = 0; ok && i < n->shape.rank; i++)
      ok = i == n->axis || a->shape.dim[i] == n->shape.dim[i];
    if (!ok)
      die("pad: dy %s at %d along axis %d of %s", shape_str(&a->shape), n->start, n->axis, shape_str(&n->shape));
    break;
  }
  case OP_bn_bwd_gain:
  case OP_ln_bwd_gain:
    if (a->op != (n->op == OP_bn_bwd_gain ? OP_batchnorm : OP_layernorm) ||
        !shape_eq(&n->shape, &a->in[1]->shape) || !shape_eq(&b->shape, &a->shape))
      die("%s: shape %s, gain %s", op, shape_str(&n->shape), shape_str(&a->in[1]->shape));
    break;
  default:
    die("shape_given: unexpected op %s", op);
  }
}

void shape_bwd_same(Node *n) {
  Node *a = n->in[0], *dy = n->in[1];
  n->type = TY_FLOAT;
  n->shape = a->shape;
  if (n->op == OP_max_bwd) {
    Shape r = a->shape;
    if (n->axis < 0)
      r.rank = 0;
    else if (n->axis < r.rank)
      r.dim[n->axis] = 1;
    else
      die("max_bwd: axis %d of %s", n->axis, shape_str(&a->shape));
    if (!shape_eq(&r, &dy->shape))
      die("max_bwd: dy %s for x %s", shape_str(&dy->shape), shape_str(&a->shape));
    return;
  }
  if (n->op == OP_softmax_bwd && (n->axis < 0 || n->axis >= a->shape.rank))
    die("softmax_bwd: axis %d of %s", n->axis, shape_str(&a->shape));
  if (!shape_eq(&a->shape, &dy->shape))
    die("%s: %s vs dy %s", optab[n->op].name, shape_str(&a->shape), shape_str(&dy->shape));
}

void shape_xent_bwd(Node *n) {
  Node *l = n->in[0], *y = n->in[1], *dl = n->in[2];
  n->type = TY_FLOAT;
  n->shape = l->shape;
  if (l->shape.rank < 2 || y->type != TY_INT || y->shape.rank != l->shape.rank - 1 ||
      shape_numel(&y->shape) * l->shape.dim[l->shape.rank - 1] != shape_numel(&l->shape) || dl->shape.rank != 0)
    die("xent_bwd: logits %s, Y %s, dloss %s", shape_str(&l->shape), shape_str(&y->shape),
        shape_str(&dl->shape));
}

void shape_bn_bwd_x(Node *n) {
  Node *bn = n->in[0], *dy = n->in[1];
  OpKind want = n->op == OP_bn_bwd_x ? OP_batchnorm : OP_layernorm;
  n->type = TY_FLOAT;
  if (bn->op != want)
    die("%s: in0 is %s", optab[n->op].name, optab[bn->op].name);
  n->shape = bn->in[0]->shape;
  if (!shape_eq(&dy->shape, &bn->shape))
    die("%s: dy %s for %s", optab[n->op].name, shape_str(&dy->shape), shape_str(&bn->shape));
}

/* ---- derivative rules ---------------------------------------------------------
 * Each fills din[i] with d(loss)/d(in[i]) given dout = d(loss)/d(n), shaped as
 * in[i]; NULL for no gradient (int inputs).  Nodes made here are marked
 * is_backward / fwd = n by grad_build. */

/* y = a + b: da = Σ_broadcast dy, db likewise */
void grad_add(Graph *g, Node *n, Node *dy, Node **din) {
  din[0] = reduce_to(g, n->tok, dy, &n->in[0]->shape);
  din[1] = reduce_to(g, n->tok, dy, &n->in[1]->shape);
}

/* y = a − b: da = dy, db = −dy (each summed over broadcast axes) */
void grad_sub(Graph *g, Node *n, Node *dy, Node **din) {
  din[0] = reduce_to(g, n->tok, dy, &n->in[0]->shape);
  din[1] = unary(g, OP_neg, n->tok, reduce_to(g, n->tok, dy, &n->in[1]->shape));
}

/* y = a · b: da = b · dy, db = a · dy */
void grad_mul(Graph *g, Node *n, Node *dy, Node **din) {
  Node *a = n->in[0], *b = n->in[1];
  din[0] = reduce_to(g, n->tok, binary(g, OP_mul, n->tok, dy, b), &a->shape);
  din[1] = reduce_to(g, n->tok, binary(g, OP_mul, n->tok, dy, a), &b->shape);
}

/* y = a / b: da = dy / b, db = −dy · y / b  (= −dy · a / b²) */
void grad_div(Graph *g, Node *n, Node *dy, Node **din) {
  Node *a = n->in[0], *b = n->in[1];
  din[0] = reduce_to(g, n->tok, binary(g, OP_div, n->tok, dy, b), &a->shape);
  Node *t = binary(g, OP_div, n->tok, binary(g, OP_mul, n->tok, dy, n), b);
  din[1] = unary(g, OP_neg, n->tok, reduce_to(g, n->tok, t, &b->shape));
}

/* y = x^p: dx = dy · p · x^(p−1)  (p = 0: no gradient; p = 1: dy; p = 2: 2x·dy) */
void grad_pow(Graph *g, Node *n, Node *dy, Node **din) {
  Node *x = n->in[0];
  double p = n->num;
  if (p == 0) {
    din[0] = NULL;
    return;
  }
  if (p == 1) {
    din[0] = dy;
    return;
  }
  Node *xp = x;
  if (p != 2) {
    xp = graph_add(g, OP_pow, n->tok, x, NULL, NULL, NULL, &(NodeAttr){.num = p - 1});
  }
  din[0] = binary(g, OP_mul, n->tok, dy, binary(g, OP_mul, n->tok, graph_const(g, n->tok, p), xp));
}

void grad_neg(Graph *g, Node *n, Node *dy, Node **din) {
  din[0] = unary(g, OP_neg, n->tok, dy);
}

/* y = exp(x): dx = dy · y, from the saved output */
void grad_exp(Graph *g, Node *n, Node *dy, Node **din) {
  din[0] = binary(g, OP_mul, n->tok, dy, n);
}

/* y = log(x): dx = dy / x */
void grad_log(Graph *g, Node *n, Node *dy, Node **din) {
  din[0] = binary(g, OP_div, n->tok, dy, n->in[0]);
}

/* t = tanh(x): dx = (1 − t²) · dy, from the saved output */
void grad_tanh(Graph *g, Node *n, Node *dy, Node **din) {
  din[0] = binary(g, OP_tanh_bwd, n->tok, n, dy);
}

void grad_relu(Graph *g, Node *n, Node *dy, Node **din) {
  din[0] = binary(g, OP_relu_bwd, n->tok, n, dy);
}

void grad_sigmoid(Graph *g, Node *n, Node *dy, Node **din) {
  din[0] = binary(g, OP_sigmoid_bwd, n->tok, n, dy);
}

/* context(X): int in, int out: no gradient */
void grad_context(Graph *g, Node *n, Node *dy, Node **din) {
  (void)g, (void)n, (void)dy;
  din[0] = NULL;
}

/* y = causal_softmax(x): softmax's rule along the last axis (y = 0 where masked
 * makes those dx 0) */
void grad_causal_softmax(Graph *g, Node *n, Node *dy, Node **din) {
  din[0] = with_axis(g, OP_softmax_bwd, n->tok, n, dy, n->shape.rank - 1);
}

/* y = causal_mean(x): dx[s] = Σ_{t ≥ s} dy[t] / (t + 1) */
void grad_causal_mean(Graph *g, Node *n, Node *dy, Node **din) {
  din[0] = unary(g, OP_causal_mean_bwd, n->tok, dy);
}

/* y = transpose(x, a, b): dx = transpose(dy, a, b) */
/* y = x[start:start+len] along axis: dx = dy placed there in zeros */
void grad_slice(Graph *g, Node *n, Node *dy, Node **din) {
  din[0] = graph_add(g, OP_pad, n->tok, dy, NULL, NULL, &n->in[0]->shape,
                     &(NodeAttr){.axis = n->axis, .start = n->start});
}

/* dy[start:start+len] along axis */
static Node *slice_of(Graph *g, Token *tok, Node *dy, int axis, int start, int len) {
  Shape s = dy->shape;
  s.dim[axis] = len;
  return graph_add(g, OP_slice, tok, dy, NULL, NULL, &s, &(NodeAttr){.axis = axis, .start = start});
}

/* y = [a, b] along axis: da, db are dy cut at the seam, summed over the axes
 * the forward broadcast */
void grad_concat(Graph *g, Node *n, Node *dy, Node **din) {
  int ax = n->axis, la = n->in[0]->shape.dim[ax], lb = n->in[1]->shape.dim[ax];
  din[0] = reduce_to(g, n->tok, slice_of(g, n->tok, dy, ax, 0, la), &n->in[0]->shape);
  din[1] = reduce_to(g, n->tok, slice_of(g, n->tok, dy, ax, la, lb), &n->in[1]->shape);
}

void grad_transpose(Graph *g, Node *n, Node *dy, Node **din) {
  din[0] = graph_add(g, OP_transpose, n->tok, dy, NULL, NULL, NULL, &(NodeAttr){.axis = n->axis, .axis2 = n->axis2});
}

/* y = gelu(x) (tanh form): dx = gelu'(x) ⊙ dy, one fused node reading x */
void grad_gelu(Graph *g, Node *n, Node *dy, Node **din) {
  din[0] = binary(g, OP_gelu_bwd, n->tok, n->in[0], dy);
}

/* y = √x: dx = dy · 0.5 / y */
void grad_sqrt(Graph *g, Node *n, Node *dy, Node **din) {
  din[0] = binary(g, OP_div, n->tok, binary(g, OP_mul, n->tok, dy, graph_const(g, n->tok, 0.5)), n);
}

/* y = Σ_axis x: every x in a slice gets that slice's dy */
void grad_sum(Graph *g, Node *n, Node *dy, Node **din) {
  din[0] = expand(g, n->tok, dy, &n->in[0]->shape, 1);
}

/* y = mean_axis x: as sum, scaled by 1/count */
void grad_mean(Graph *g, Node *n, Node *dy, Node **din) {
  Node *x = n->in[0];
  din[0] = expand(g, n->tok, dy, &x->shape, (double)shape_numel(&n->shape) / (double)shape_numel(&x->shape));
}

/* y = max_axis x: only the (first) arg-max moved y, so only it gets dy */
void grad_max(Graph *g, Node *n, Node *dy, Node **din) {
  din[0] = with_axis(g, OP_max_bwd, n->tok, n->in[0], dy, n->axis);
}

/* y[i] = x[i, Y[i]]: dx is dy placed at (i, Y[i]), zero elsewhere */
void grad_pick(Graph *g, Node *n, Node *dy, Node **din) {
  din[0] = graph_add(g, OP_pick_bwd, n->tok, n->in[1], dy, NULL, &n->in[0]->shape, NULL);
  din[1] = NULL;
}

/* y = softmax(x): dx = y · (dy − Σ_axis dy·y) */
void grad_softmax(Graph *g, Node *n, Node *dy, Node **din) {
  din[0] = with_axis(g, OP_softmax_bwd, n->tok, n, dy, n->axis);
}

/* loss = −mean_i log softmax(L)[i, Y[i]]: dL = (softmax(L) − onehot(Y)) / N · dloss
 * (Exercise 2, fused) */
void grad_cross_entropy(Graph *g, Node *n, Node *dy, Node **din) {
  din[0] = graph_add(g, OP_xent_bwd, n->tok, n->in[0], n->in[1], dy, NULL, &n->at);
  din[1] = NULL;
}

/* y = gain · x̂ + bias, x̂ = (x − mean_b x) · (var_b x + eps)^(−1/2)  (Exercise 3):
 *   dx    = gain·rstd/N · (N·dy − Σ_b dy − N/(N−1)·x̂·Σ_b(dy·x̂))    unbiased variance
 *   dx    = gain·rstd/N · (N·dy − Σ_b dy − x̂·Σ_b(dy·x̂))             1/N variance
 *   dgain = Σ_b dy·x̂,   dbias = Σ_b dy
 * The N/(N−1) is Bessel's correction flowing back through the variance.  The
 * gradient is that of the training-mode forward (batch statistics); at eval
 * the statistics are constants and dx would be gain·rstd·dy. */
void grad_batchnorm(Graph *g, Node *n, Node *dy, Node **din) {
  din[0] = graph_add(g, OP_bn_bwd_x, n->tok, n, dy, NULL, NULL, NULL);
  din[1] = graph_add(g, OP_bn_bwd_gain, n->tok, n, dy, NULL, &n->in[1]->shape, NULL);
  din[2] = reduce_to(g, n->tok, dy, &n->in[2]->shape);
}

/* layernorm over the last axis (llm.c's layernorm_backward):
 *   g = gain·dy;  dx = rstd · (g − mean(g) − x̂·mean(g·x̂))
 *   dgain = Σ_rows dy·x̂,  dbias = Σ_rows dy */
void grad_layernorm(Graph *g, Node *n, Node *dy, Node **din) {
  din[0] = graph_add(g, OP_ln_bwd_x, n->tok, n, dy, NULL, NULL, NULL);
  din[1] = graph_add(g, OP_ln_bwd_gain, n->tok, n, dy, NULL, &n->in[1]->shape, NULL);
  din[2] = reduce_to(g, n->tok, dy, &n->in[2]->shape);
}

/* y = C[X]: dC[X[j]] += dy[j] (scatter-add; = onehot(X)ᵀ · dy) */
void grad_gather(Graph *g, Node *n, Node *dy, Node **din) {
  din[0] = graph_add(g, OP_gather_bwd, n->tok, n->in[1], dy, NULL, &n->in[0]->shape, NULL);
  din[1] = NULL;
}

/* a view: the gradient is dy viewed back */
void grad_reshape(Graph *g, Node *n, Node *dy, Node **din) {
  din[0] = reshape(g, n->tok, dy, &n->in[0]->shape);
}

/* Y = A·B: dA = dY·Bᵀ, dB = Aᵀ·dY.  Batched A [..., M, K] with a 2-D B [K, N]:
 * dB = Aᵀ·dY with A and dY flattened to [P, K] and [P, N] (P = the batch
 * size); other batched cases use batched matmuls summed down to the input's
 * shape where its batch dims were broadcast. */
/* y = a · b:  da = dy · bᵀ, db = aᵀ · dy;  y = a · bᵀ (b stored (out, in), as
 * llm.c's weights):  da = dy · b, db = dyᵀ · a.  A 2-D b under a batched a
 * gets the sum over the batch: one product of a and dy viewed as 2-D. */
void grad_matmul(Graph *g, Node *n, Node *dy, Node **din) {
  Node *a = n->in[0], *b = n->in[1];
  Token *tok = n->tok;
  bool tb = n->transb;
  if (n->transa)
    die("grad_matmul: forward matmul with a transposed left operand");
  din[0] = reduce_to(g, tok, matmul(g, tok, dy, b, false, !tb), &a->shape);
  Node *x = tb ? dy : a, *y = tb ? a : dy;   /* db = xᵀ · y */
  if (a->shape.rank > 2 && b->shape.rank == 2) {
    int k = x->shape.dim[x->shape.rank - 1], m = y->shape.dim[y->shape.rank - 1];
    Shape x2 = {2, {(int)(shape_numel(&x->shape) / k), k}};
    Shape y2 = {2, {(int)(shape_numel(&y->shape) / m), m}};
    din[1] = matmul(g, tok, reshape(g, tok, x, &x2), reshape(g, tok, y, &y2), true, false);
  } else {
    din[1] = reduce_to(g, tok, matmul(g, tok, x, y, true, false), &b->shape);
  }
}

/* ---- grad_build ---------------------------------------------------------------- */

typedef struct Contrib Contrib;
struct Contrib {
  Node *val;
  Contrib *next;
};

static void add_edge(Graph *g, Node *user, int arg, Node *val) {
  if (g->nedges == g->capedges) {
    int cap = g->capedges ? g->capedges * 2 : 64;
    GradEdge *e = arena_alloc(sizeof *e * (size_t)cap);
    if (g->nedges)
      memcpy(e, g->edges, sizeof *e * (size_t)g->nedges);
    g->edges = e;
    g->capedges = cap;
  }
  g->edges[g->nedges++] = (GradEdge){user, arg, val};
}

/* Marks nodes g->nodes[from..] as made for forward node n. */
static void mark(Graph *g, int from, Node *n) {
  for (int i = from; i < g->nnodes; i++) {
    Node *b = g->nodes[i];
    b->is_backward = true;
    b->fwd = n;
    b->tok = n->tok;
    b->line = n->line;
  }
}

/* The gradients a user asks for: params and named float statements (not inputs). */
static bool wanted(const Node *n) {
  if (n->is_backward || n->type != TY_FLOAT)
    return false;
  return n->op == OP_param || (n->name && n->op != OP_input);
}

static void keep(Node *n, bool *live) {
  if (!n || !n->is_backward || live[n->id])
    return;
  live[n->id] = true;
  for (int i = 0; i < MAXIN; i++)
    keep(n->in[i], live);
}

/* Drops backward nodes no wanted gradient depends on; renumbers ids. */
static void prune(Graph *g) {
  bool *live = arena_alloc(sizeof *live * (size_t)g->nnodes);
  int nf = g->nforward;
  for (int i = 0; i < nf; i++)
    if (wanted(g->nodes[i]))
      keep(g->nodes[i]->grad, live);
  for (int i = 0; i < nf; i++) {
    Node *x = g->nodes[i];
    if (x->grad && !live[x->grad->id])
      x->grad = NULL;
  }
  int k = 0;
  for (int i = 0; i < g->nedges; i++)
    if (live[g->edges[i].val->id])
      g->edges[k++] = g->edges[i];
  g->nedges = k;
  int at = nf;
  for (int i = nf; i < g->nnodes; i++)
    if (live[i]) {
      g->nodes[at] = g->nodes[i];
      g->nodes[at]->id = at;
      at++;
    }
  g->nnodes = at;
}

static int cmp_pad_start(const void *a, const void *b) {
  const Node *x = *(Node *const *)a, *y = *(Node *const *)b;
  return (x->start > y->start) - (x->start < y->start);
}

/* zeros shaped as `like` with `len` along axis */
static Node *zeros_cut(Graph *g, Token *tok, const Shape *like, int axis, int len) {
  Shape s = *like;
  s.dim[axis] = len;
  return expand(g, tok, graph_const(g, tok, 0), &s, 1);
}

/* The sum of a node's contributions.  The slices of one tensor (an RNN's
 * emb[:, t], a stacked param's W[l]) each send back a pad: zeros but for their
 * cut.  Summing T pads costs T full tensors; when every contribution is a pad
 * along one axis, those of one range are added, and the ranges, in order with
 * zeros in the gaps, are joined by concats instead. */
static Node *sum_contribs(Graph *g, Node *n, Contrib *list) {
  int np = 0, total = 0;
  bool pads = true;
  for (Contrib *c = list; c; c = c->next, total++)
    pads &= c->val->op == OP_pad && c->val->axis == list->val->axis;
  if (total > 1 && pads) {
    Node **p = arena_alloc(sizeof *p * (size_t)total);
    for (Contrib *c = list; c; c = c->next)
      p[np++] = c->val;
    qsort(p, (size_t)np, sizeof *p, cmp_pad_start);
    int ax = p[0]->axis, k = 0;
    bool disjoint = true;
    Node **dy = arena_alloc(sizeof *dy * (size_t)np);
    int *start = arena_alloc(sizeof *start * (size_t)np);
    for (int i = 0; i < np; i++) {
      Node *d = p[i]->in[0];
      int len = d->shape.dim[ax];
      if (k && start[k - 1] == p[i]->start && dy[k - 1]->shape.dim[ax] == len) {
        dy[k - 1] = binary(g, OP_add, n->tok, dy[k - 1], d);   /* one range used twice */
        continue;
      }
      if (k && start[k - 1] + dy[k - 1]->shape.dim[ax] > p[i]->start)
        disjoint = false;
      start[k] = p[i]->start, dy[k++] = d;
    }
    if (disjoint) {
      Node **piece = arena_alloc(sizeof *piece * (size_t)(2 * k + 1));
      int m = 0, at = 0;
      for (int i = 0; i < k; i++) {
        if (start[i] > at)
          piece[m++] = zeros_cut(g, n->tok, &n->shape, ax, start[i] - at);
        piece[m++] = dy[i];
        at = start[i] + dy[i]->shape.dim[ax];
      }
      if (at < n->shape.dim[ax])
        piece[m++] = zeros_cut(g, n->tok, &n->shape, ax, n->shape.dim[ax] - at);
      return graph_concat(g, n->tok, piece, m, ax);
    }
  }
  Node *sum = NULL;
  for (Contrib *c = list; c; c = c->next)
    sum = sum ? binary(g, OP_add, n->tok, sum, c->val) : c->val;
  return sum;
}

void grad_build(Graph *g) {
  if (!g->loss)
    die("grad_build: no loss");
  if (g->nforward == 0)
    g->nforward = g->nnodes;
  if (g->nforward != g->nnodes)
    die("grad_build: graph already has backward nodes");
  int nf = g->nforward;
  Contrib **in = arena_alloc(sizeof *in * (size_t)nf);
  g->edges = NULL;
  g->nedges = g->capedges = 0;

  int from = g->nnodes;
  Node *seed = graph_const(g, g->loss->tok, 1);
  mark(g, from, g->loss);
  Contrib *c0 = arena_alloc(sizeof *c0);
  c0->val = seed;
  in[g->loss->id] = c0;

  for (int i = nf - 1; i >= 0; i--) {
    Node *n = g->nodes[i];
    if (!in[i])
      continue;
    /* fan-out: the gradients of all uses add up */
    from = g->nnodes;
    Node *sum = sum_contribs(g, n, in[i]);
    mark(g, from, n);
    if (!shape_eq(&sum->shape, &n->shape))
      die("grad_build: d%s is %s, %s is %s", n->name ? n->name : optab[n->op].name,
          shape_str(&sum->shape), optab[n->op].name, shape_str(&n->shape));
    n->grad = sum;
    if (!optab[n->op].grad)
      continue;

    Node *din[MAXIN] = {0};
    from = g->nnodes;
    optab[n->op].grad(g, n, sum, din);
    if (grad_perturb == (int)n->op + 1)
      for (int k = 0; k < optab[n->op].arity; k++)
        if (din[k]) {
          din[k] = binary(g, OP_mul, n->tok, din[k], graph_const(g, n->tok, 1.001));
          break;
        }
    mark(g, from, n);
    for (int k = 0; k < optab[n->op].arity; k++) {
      Node *x = n->in[k];
      if (!din[k])
        continue;
      if (x->type != TY_FLOAT)
        die("grad_%s: gradient for int input %d", optab[n->op].name, k);
      if (!shape_eq(&din[k]->shape, &x->shape))
        die("grad_%s: input %d gets %s, is %s", optab[n->op].name, k,
            shape_str(&din[k]->shape), shape_str(&x->shape));
      /* append, keeping the order the uses were met in */
      Contrib *c = arena_alloc(sizeof *c), **p = &in[x->id];
      c->val = din[k];
      while (*p)
        p = &(*p)->next;
      *p = c;
      add_edge(g, n, k, din[k]);
    }
  }

  /* A wanted tensor no gradient reaches (not used on the way to the loss, or
   * only through int or pow-0 paths) gets an explicit zero: expand(0). */
  for (int i = 0; i < nf; i++) {
    Node *n = g->nodes[i];
    if (wanted(n) && !n->grad) {
      from = g->nnodes;
      n->grad = expand(g, n->tok, graph_const(g, n->tok, 0), &n->shape, 1);
      mark(g, from, n);
    }
  }
  prune(g);
}
