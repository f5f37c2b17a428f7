/* shape.c: the forward ops' shape rules (the shape column of ops.h).
 *
 * graph_add() calls a rule as soon as a node exists: the rule reads the
 * inputs' shapes and types, and sets n->shape and n->type, or reports a user
 * error at n->tok with every shape involved.  Only the index operands of
 * gather, pick and cross_entropy may be int tensors; everything else must be
 * float.  Every shape a rule makes is checked to hold at most INT_MAX elements,
 * so later stages can count elements in an int without overflow.
 *
 * graph_add() sets the node's attributes (axis, eps, ...) before it runs the
 * rule; reshape's target travels in the shape passed as `given`.
 */
#include "bpgen.h"

#include <limits.h>

static const char *opname(Node *n) { return optab[n->op].name; }

/* n->shape = *s, after checking the element count fits in an int. */
static void set_shape(Node *n, const Shape *s, ElemType type) {
  long numel = 1;
  for (int i = 0; i < s->rank; i++) {
    if (s->dim[i] <= 0)
      die("%s: dim %d is %d", opname(n), i, s->dim[i]);
    if (__builtin_mul_overflow(numel, (long)s->dim[i], &numel) || numel > INT_MAX)
      error_tok(n->tok, "%s: result %s has more than %d elements", opname(n), shape_str(s), INT_MAX);
  }
  n->shape = *s;
  n->type = type;
}

static void need_float(Node *n, Node *in, const char *what) {
  if (in->type != TY_FLOAT)
    error_tok(n->tok, "%s: %s is an int tensor %s where a float is needed", opname(n), what,
              shape_str(&in->shape));
}

static void need_int(Node *n, Node *in, const char *what) {
  if (in->type != TY_INT)
    error_tok(n->tok, "%s: %s must be an int tensor, got a float %s", opname(n), what,
              shape_str(&in->shape));
}

bool shape_broadcast(const Shape *a, const Shape *b, Shape *out) {
  Shape r = {.rank = a->rank > b->rank ? a->rank : b->rank};
  for (int i = 1; i <= r.rank; i++) {
    int da = i <= a->rank ? a->dim[a->rank - i] : 1;
    int db = i <= b->rank ? b->dim[b->rank - i] : 1;
    if (da != db && da != 1 && db != 1)
      return false;
    r.dim[r.rank - i] = da == 1 ? db : da;
  }
  *out = r;
  return true;
}

/* C[X]: table float [V, rest...], index int [any...] -> [index..., rest...] */
void shape_gather(Node *n) {
  Node *t = n->in[0], *x = n->in[1];
  need_float(n, t, "the table");
  need_int(n, x, "the index");
  if (t->shape.rank < 1)
    error_tok(n->tok, "gather: the table must have at least one axis, got %s", shape_str(&t->shape));
  int rank = x->shape.rank + t->shape.rank - 1;
  if (rank > MAXRANK)
    error_tok(n->tok, "gather: result of %s[%s] has rank %d, more than %d", shape_str(&t->shape),
              shape_str(&x->shape), rank, MAXRANK);
  Shape s = x->shape;
  for (int i = 1; i < t->shape.rank; i++)
    s.dim[s.rank++] = t->shape.dim[i];
  set_shape(n, &s, TY_FLOAT);
}

/* reshape: the target is the given n->shape; element counts must match. */
void shape_reshape(Node *n) {
  Node *x = n->in[0];
  need_float(n, x, "the input");
  Shape s = n->shape;
  if (shape_numel(&x->shape) != shape_numel(&s))
    error_tok(n->tok, "reshape: %s has %ld elements, %s has %ld", shape_str(&x->shape),
              shape_numel(&x->shape), shape_str(&s), shape_numel(&s));
  set_shape(n, &s, TY_FLOAT);
}

/* a @ b: [..., M, K] @ [K, N] (a batched over its leading axes), [M, K] @
 * [..., K, N] (b batched: the same a for every matrix of b), or equal
 * leading batch axes on both sides.  transa/transb swap the last two axes. */
void shape_matmul(Node *n) {
  Node *a = n->in[0], *b = n->in[1];
  need_float(n, a, "the left operand");
  need_float(n, b, "the right operand");
  const Shape *sa = &a->shape, *sb = &b->shape;
  if (sa->rank < 2 || sb->rank < 2)
    error_tok(n->tok, "matmul: both operands need at least 2 axes, got %s @ %s", shape_str(sa),
              shape_str(sb));
  if (sb->rank != 2 && sa->rank != 2 && sb->rank != sa->rank)
    error_tok(n->tok, "matmul: batch axes differ: %s @ %s", shape_str(sa), shape_str(sb));
  for (int i = 0; sb->rank > 2 && sa->rank > 2 && i < sb->rank - 2; i++)
    if (sa->dim[i] != sb->dim[i])
      error_tok(n->tok, "matmul: batch axes differ: %s @ %s", shape_str(sa), shape_str(sb));
  int m = sa->dim[sa->rank - (n->transa ? 1 : 2)], ka = sa->dim[sa->rank - (n->transa ? 2 : 1)];
  int kb = sb->dim[sb->rank - (n->transb ? 1 : 2)], nn = sb->dim[sb->rank - (n->transb ? 2 : 1)];
  if (ka != kb)
    error_tok(n->tok, "matmul: inner dims differ (%d vs %d): %s%s @ %s%s", ka, kb, shape_str(sa),
              n->transa ? "^T" : "", shape_str(sb), n->transb ? "^T" : "");
  Shape s = sa->rank == 2 ? *sb : *sa;   /* the batch axes of the batched side */
  s.dim[s.rank - 2] = m;
  s.dim[s.rank - 1] = nn;
  set_shape(n, &s, TY_FLOAT);
}

/* + - * /: NumPy broadcasting. */
void shape_bcast(Node *n) {
  Node *a = n->in[0], *b = n->in[1];
  need_float(n, a, "the left operand");
  need_float(n, b, "the right operand");
  Shape s;
  if (!shape_broadcast(&a->shape, &b->shape, &s))
    error_tok(n->tok, "%s: shapes %s and %s do not broadcast", opname(n), shape_str(&a->shape),
              shape_str(&b->shape));
  set_shape(n, &s, TY_FLOAT);
}

/* elementwise, one input: same shape */
void shape_unary(Node *n) {
  need_float(n, n->in[0], "the input");
  set_shape(n, &n->in[0]->shape, TY_FLOAT);
}

/* sum/mean/max along n->axis, kept as 1 (keepdim); axis -1: over all axes,
 * rank 0.  The parser range-checks the axis. */
void shape_reduce(Node *n) {
  Node *x = n->in[0];
  need_float(n, x, "the input");
  Shape s = {0};
  if (n->axis >= 0) {
    if (n->axis >= x->shape.rank)
      die("%s: axis %d of %s", opname(n), n->axis, shape_str(&x->shape));
    s = x->shape;
    s.dim[n->axis] = 1;
  }
  set_shape(n, &s, TY_FLOAT);
}

/* pick(x, Y): x float [N, K], Y int [N] -> [N] */
void shape_pick(Node *n) {
  Node *x = n->in[0], *y = n->in[1];
  need_float(n, x, "x");
  need_int(n, y, "the index");
  if (x->shape.rank != 2 || y->shape.rank != 1 || x->shape.dim[0] != y->shape.dim[0])
    error_tok(n->tok, "pick: needs x [N, K] and an index [N], got %s and %s", shape_str(&x->shape),
              shape_str(&y->shape));
  set_shape(n, &y->shape, TY_FLOAT);
}

/* softmax: same shape, at least one axis (the parser range-checks n->axis) */
void shape_softmax(Node *n) {
  Node *x = n->in[0];
  need_float(n, x, "the input");
  if (x->shape.rank < 1)
    error_tok(n->tok, "softmax: the input needs at least one axis, got %s", shape_str(&x->shape));
  set_shape(n, &x->shape, TY_FLOAT);
}

/* cross_entropy(logits, Y): logits float [N, K], Y int [N] -> scalar */
void shape_xent(Node *n) {
  Node *x = n->in[0], *y = n->in[1];
  need_float(n, x, "logits");
  need_int(n, y, "the target");
  bool ok = x->shape.rank >= 2 && y->shape.rank == x->shape.rank - 1;
  for (int d = 0; ok && d < y->shape.rank; d++)
    ok = x->shape.dim[d] == y->shape.dim[d];
  if (!ok)
    error_tok(n->tok, "cross_entropy: needs logits [N, K] and targets [N] (or [..., K] and [...]), got %s and %s",
              shape_str(&x->shape), shape_str(&y->shape));
  Shape s = {0};
  set_shape(n, &s, TY_FLOAT);
}

/* gain and bias of a normalisation over the last axis, of width d */
static void check_affine(Node *n, Node *p, const char *what, int d, bool allow_row) {
  need_float(n, p, what);
  bool ok = (p->shape.rank == 1 && p->shape.dim[0] == d) ||
            (allow_row && p->shape.rank == 2 && p->shape.dim[0] == 1 && p->shape.dim[1] == d);
  if (!ok)
    error_tok(n->tok, "%s: %s must be [%d]%s, got %s (input %s)", opname(n), what, d,
              allow_row ? arena_printf(" or [1, %d]", d) : "", shape_str(&p->shape),
              shape_str(&n->in[0]->shape));
}

/* context(X, size, fill): X int [..., T] -> int [..., T, size] */
void shape_context(Node *n) {
  Node *x = n->in[0];
  need_int(n, x, "the tokens");
  if (x->shape.rank < 1 || x->shape.rank >= MAXRANK)
    error_tok(n->tok, "context: the tokens must be [..., T] (rank 1 to %d), got %s", MAXRANK - 1,
              shape_str(&x->shape));
  if (n->num != (int)n->num || n->num < 1)
    error_tok(n->tok, "context: size must be a whole number of at least 1, got %g", n->num);
  Shape s = x->shape;
  s.dim[s.rank++] = (int)n->num;
  set_shape(n, &s, TY_INT);
}

/* causal_mean(x): x [..., T, C] -> the same shape */
void shape_causal(Node *n) {
  Node *x = n->in[0];
  need_float(n, x, "the input");
  if (x->shape.rank < 2)
    error_tok(n->tok, "causal_mean: the input must be [..., T, C], got %s", shape_str(&x->shape));
  set_shape(n, &x->shape, TY_FLOAT);
}

/* causal_softmax(x): x [..., T, T] -> the same shape */
void shape_causal_square(Node *n) {
  Node *x = n->in[0];
  need_float(n, x, "the input");
  int r = x->shape.rank;
  if (r < 2 || x->shape.dim[r - 1] != x->shape.dim[r - 2])
    error_tok(n->tok, "causal_softmax: the last two axes must be square ([..., T, T]), got %s", shape_str(&x->shape));
  set_shape(n, &x->shape, TY_FLOAT);
}

/* transpose(x, dim0, dim1): x's shape with the two axes swapped */
void shape_transpose(Node *n) {
  Node *x = n->in[0];
  if (n->axis == n->axis2)
    error_tok(n->tok, "transpose: dim0 and dim1 are both axis %d: name two different axes of %s", n->axis,
              shape_str(&x->shape));
  Shape s = x->shape;
  s.dim[n->axis] = x->shape.dim[n->axis2];
  s.dim[n->axis2] = x->shape.dim[n->axis];
  set_shape(n, &s, x->type);
}

/* batchnorm(x, gain, bias): x [N, D] or [N, ..., D], gain and bias [D] or
 * [1, D] -> x's shape; the statistics over every axis but the last (part 5's
 * BatchNorm1d over [B, T, C]) */
void shape_batchnorm(Node *n) {
  Node *x = n->in[0];
  need_float(n, x, "the input");
  if (x->shape.rank < 2)
    error_tok(n->tok, "batchnorm: the input must be [N, D] or [N, ..., D], got %s", shape_str(&x->shape));
  int D = x->shape.dim[x->shape.rank - 1];
  check_affine(n, n->in[1], "gain", D, true);
  check_affine(n, n->in[2], "bias", D, true);
  if (n->unbiased && shape_numel(&x->shape) / D < 2)
    error_tok(n->tok, "batchnorm: unbiased variance needs a batch of at least 2, got %s",
              shape_str(&x->shape));
  set_shape(n, &x->shape, TY_FLOAT);
}

/* layernorm(x, gain, bias): x [..., D], gain and bias [D] -> x's shape */
void shape_layernorm(Node *n) {
  Node *x = n->in[0];
  need_float(n, x, "the input");
  if (x->shape.rank < 1)
    error_tok(n->tok, "layernorm: the input needs at least one axis, got %s", shape_str(&x->shape));
  check_affine(n, n->in[1], "gain", x->shape.dim[x->shape.rank - 1], false);
  check_affine(n, n->in[2], "bias", x->shape.dim[x->shape.rank - 1], false);
  set_shape(n, &x->shape, TY_FLOAT);
}

/* x[..., start:start+len, ...] along n->axis: the parser gives the result's
 * shape (x's with that axis cut); the cut must lie inside x.  Int tensors
 * slice too (an RNN's X[:, t]); only float ones have a gradient. */
void shape_slice(Node *n) {
  Node *x = n->in[0];
  Shape s = n->shape;
  bool ok = n->axis >= 0 && n->axis < x->shape.rank && s.rank == x->shape.rank && n->start >= 0 &&
            s.dim[n->axis] >= 1 && (long)n->start + s.dim[n->axis] <= x->shape.dim[n->axis];
  for (int i = 0; ok && i < s.rank; i++)
    ok = i == n->axis || s.dim[i] == x->shape.dim[i];
  if (!ok)
    die("slice: [%d:%d] along axis %d of %s", n->start, n->start + s.dim[n->axis < 0 ? 0 : n->axis], n->axis,
        shape_str(&x->shape));
  set_shape(n, &s, x->type);
}

/* concat(a, b, axis): equal ranks; along axis the lengths add, the other axes
 * broadcast as NumPy's (each equal or 1). */
void shape_concat(Node *n) {
  Node *a = n->in[0], *b = n->in[1];
  need_float(n, a, "the first tensor");
  need_float(n, b, "the second tensor");
  const Shape *sa = &a->shape, *sb = &b->shape;
  if (sa->rank != sb->rank)
    error_tok(n->tok, "concat: the tensors need the same number of axes, got %s and %s", shape_str(sa),
              shape_str(sb));
  Shape s = *sa;
  for (int i = 0; i < s.rank; i++) {
    if (i == n->axis) {
      s.dim[i] = sa->dim[i] + sb->dim[i];
      continue;
    }
    if (sa->dim[i] != sb->dim[i] && sa->dim[i] != 1 && sb->dim[i] != 1)
      error_tok(n->tok, "concat: %s and %s differ at axis %d, which is not the concat axis %d (and neither is 1)",
                shape_str(sa), shape_str(sb), i, n->axis);
    s.dim[i] = sa->dim[i] == 1 ? sb->dim[i] : sa->dim[i];
  }
  set_shape(n, &s, TY_FLOAT);
}
