/* ref.c: the reference runtime (see ref.h).
 *
 * Consumes the forward part of a Graph; produces every node's value and, after
 * backward, every node's gradient.  The one idea: each spec op is lowered, as
 * it runs, to primitives recorded on a tape (PrimKind below); each primitive
 * knows only its own local derivative, and backward walks the tape in reverse
 * adding (+=) into its inputs' gradient buffers.  Broadcasting is undone by
 * that same +=: a broadcast input element receives the sum over every output
 * element it fed.  Fused ops get no backward formula of their own.
 *
 * Shapes are recomputed here from the inputs, independently of shape.c, and
 * checked against each node's shape (a mismatch is an internal error).
 */
#include "ref.h"
#include "bp_runtime.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct RefTensor Tensor;
struct RefTensor {
  Shape shape;
  long n;                /* elements */
  double *v;             /* values (float tensors) */
  double *g;             /* gradient, n elements */
  int32_t *iv;           /* values (int tensors) */
  const char *name;      /* spec name or op name, for index errors */
};

typedef enum {
  P_ADD, P_SUB, P_MUL, P_DIV,            /* broadcasting binary */
  P_POW, P_NEG, P_EXP, P_LOG, P_TANH,    /* elementwise unary */
  P_RELU, P_SIGMOID, P_SQRT,
  P_SUM, P_MAX,                          /* over one axis (kept as 1) or all (-1) */
  P_GATHER,                              /* rows of a picked by int tensor idx */
  P_RESHAPE,                             /* same elements, new shape */
  P_TAKE,                                /* out[k] = a[ia[k]]: a transpose, a slice */
  P_PLACE,                               /* zeros, then out[ia[k]] = a[k]: a part of a concat */
  P_MATMUL,                              /* batched, broadcasting over leading dims */
  P_PICK,                                /* out[i] = a[i, idx[i]] */
} PrimKind;

typedef struct Prim {
  PrimKind kind;
  Tensor *a, *b;         /* float inputs (b: binary ops, matmul) */
  Tensor *idx;           /* int input (gather, pick) */
  Tensor *out;
  double num;            /* pow exponent */
  int axis;              /* sum, max */
  bool ta, tb;           /* matmul: transpose a / b (last two axes) */
  long *ia, *ib;         /* binary: input element of each output element;
                            matmul: input matrix of each output matrix;
                            max: flat index of the (first) arg-max */
  long m, k, nn, nbatch; /* matmul sizes */
} Prim;

struct Ref {
  Graph *g;
  DType dtype;
  Tensor **nt;           /* per forward node id: its value */
  Tensor **leaves;       /* inputs, params, consts: live as long as the Ref */
  int nleaves;
  Tensor **tmp;          /* everything else, remade by each forward */
  int ntmp, captmp;
  Prim *tape;
  int ntape, captape;
  bool forwarded, backwarded;
};

double ref_round(const Ref *r, double v) {
  return r->dtype == DT_F32 ? (double)(float)v : v;
}

/* ---- tensors --------------------------------------------------------------- */

static Tensor *alloc_tensor(const Shape *s, bool is_int, const char *name) {
  Tensor *t = xcalloc(1, sizeof *t);
  t->shape = *s;
  t->n = shape_numel(s);
  t->name = name;
  if (is_int) {
    t->iv = xcalloc((size_t)t->n, sizeof *t->iv);
  } else {
    t->v = xcalloc((size_t)t->n, sizeof *t->v);
    t->g = xcalloc((size_t)t->n, sizeof *t->g);
  }
  return t;
}

static void free_tensor(Tensor *t) {
  free(t->v);
  free(t->g);
  free(t->iv);
  free(t);
}

static Tensor *new_tensor(Ref *r, const Shape *s, const char *name) {
  if (r->ntmp == r->captmp) {
    r->captmp = r->captmp ? r->captmp * 2 : 64;
    Tensor **nt = realloc(r->tmp, sizeof *nt * (size_t)r->captmp);
    if (!nt)
      die("out of memory");
    r->tmp = nt;
  }
  return r->tmp[r->ntmp++] = alloc_tensor(s, false, name);
}

/* an int tensor freed with the temporaries */
static Tensor *new_int_tensor(Ref *r, const Shape *s, const char *name) {
  Tensor *t = new_tensor(r, s, name);
  free(t->v), free(t->g);
  t->v = t->g = NULL;
  t->iv = xcalloc((size_t)(t->n ? t->n : 1), sizeof *t->iv);
  return t;
}

static Tensor *new_const(Ref *r, double v) {
  Shape s = {0};
  Tensor *t = new_tensor(r, &s, "const");
  t->v[0] = ref_round(r, v);
  return t;
}

static Prim *push(Ref *r, PrimKind kind, Tensor *a, Tensor *b) {
  if (r->ntape == r->captape) {
    r->captape = r->captape ? r->captape * 2 : 128;
    Prim *np = realloc(r->tape, sizeof *np * (size_t)r->captape);
    if (!np)
      die("out of memory");
    r->tape = np;
  }
  Prim *p = &r->tape[r->ntape++];
  memset(p, 0, sizeof *p);
  p->kind = kind;
  p->a = a;
  p->b = b;
  return p;
}

static void reset(Ref *r) {
  for (int i = 0; i < r->ntape; i++) {
    free(r->tape[i].ia);
    free(r->tape[i].ib);
  }
  r->ntape = 0;
  for (int i = 0; i < r->ntmp; i++)
    free_tensor(r->tmp[i]);
  r->ntmp = 0;
  for (int i = 0; i < r->g->nforward; i++) {
    OpKind op = r->g->nodes[i]->op;
    if (op != OP_input && op != OP_param && op != OP_const)
      r->nt[i] = NULL;
  }
  r->forwarded = r->backwarded = false;
}

/* ---- broadcasting ------------------------------------------------------------ */

/* NumPy's rule: align on the right; each pair of dims equal or one of them 1. */
static bool bcast_shape(const Shape *a, const Shape *b, Shape *out) {
  int rank = a->rank > b->rank ? a->rank : b->rank;
  out->rank = rank;
  for (int i = 0; i < rank; i++) {
    int ja = a->rank - rank + i, jb = b->rank - rank + i;
    int da = ja >= 0 ? a->dim[ja] : 1, db = jb >= 0 ? b->dim[jb] : 1;
    if (da != db && da != 1 && db != 1)
      return false;
    out->dim[i] = da == 1 ? db : da;
  }
  return true;
}

/* For each element of `out` (C order), the flat index of the element of `s`
 * (broadcast into out) that it reads. */
static long *bcast_index(const Shape *s, const Shape *out) {
  long stride[MAXRANK], acc = 1;
  for (int i = out->rank - 1, j = s->rank - 1; i >= 0; i--, j--) {
    stride[i] = (j >= 0 && s->dim[j] != 1) ? acc : 0;
    if (j >= 0)
      acc *= s->dim[j];
  }
  long n = shape_numel(out);
  long *ix = xcalloc((size_t)n, sizeof *ix);
  int ctr[MAXRANK] = {0};
  long off = 0;
  for (long k = 0; k < n; k++) {
    ix[k] = off;
    for (int i = out->rank - 1; i >= 0; i--) {   /* odometer step */
      off += stride[i];
      if (++ctr[i] < out->dim[i])
        break;
      off -= stride[i] * ctr[i];
      ctr[i] = 0;
    }
  }
  return ix;
}

/* ---- recording primitives (forward) -------------------------------------------- */

static Tensor *p_binary(Ref *r, PrimKind kind, Tensor *a, Tensor *b) {
  Shape s;
  if (!bcast_shape(&a->shape, &b->shape, &s))
    die("ref: cannot broadcast %s with %s", shape_str(&a->shape), shape_str(&b->shape));
  Prim *p = push(r, kind, a, b);
  Tensor *o = p->out = new_tensor(r, &s, NULL);
  p->ia = bcast_index(&a->shape, &s);
  p->ib = bcast_index(&b->shape, &s);
  for (long k = 0; k < o->n; k++) {
    double x = a->v[p->ia[k]], y = b->v[p->ib[k]], z;
    switch (kind) {
    case P_ADD: z = x + y; break;
    case P_SUB: z = x - y; break;
    case P_MUL: z = x * y; break;
    case P_DIV: z = x / y; break;
    default: unreachable();
    }
    o->v[k] = ref_round(r, z);
  }
  return o;
}

static Tensor *p_unary(Ref *r, PrimKind kind, Tensor *a, double num) {
  Prim *p = push(r, kind, a, NULL);
  p->num = num;
  Tensor *o = p->out = new_tensor(r, &a->shape, NULL);
  for (long k = 0; k < o->n; k++) {
    double x = a->v[k], z;
    switch (kind) {
    case P_POW: z = pow(x, num); break;
    case P_NEG: z = -x; break;
    case P_EXP: z = exp(x); break;
    case P_LOG: z = log(x); break;
    case P_TANH: z = tanh(x); break;
    case P_RELU: z = x > 0 ? x : 0; break;
    case P_SIGMOID: z = 1 / (1 + exp(-x)); break;
    case P_SQRT: z = sqrt(x); break;
    default: unreachable();
    }
    o->v[k] = ref_round(r, z);
  }
  return o;
}

/* Splits a shape around axis (-1: everything) into outer x len x inner. */
static void split_axis(const Shape *s, int axis, long *outer, long *len, long *inner) {
  *outer = *len = *inner = 1;
  if (axis < 0) {
    *len = shape_numel(s);
    return;
  }
  if (axis >= s->rank)
    die("ref: axis %d out of range for %s", axis, shape_str(s));
  for (int i = 0; i < s->rank; i++) {
    if (i < axis) *outer *= s->dim[i];
    else if (i == axis) *len = s->dim[i];
    else *inner *= s->dim[i];
  }
}

static Tensor *p_reduce(Ref *r, PrimKind kind, Tensor *a, int axis) {
  Shape s = a->shape;
  if (axis < 0)
    s.rank = 0;
  else
    s.dim[axis] = 1;
  long outer, len, inner;
  split_axis(&a->shape, axis, &outer, &len, &inner);
  if (len == 0)
    die("ref: reduction over an empty axis");
  Prim *p = push(r, kind, a, NULL);
  p->axis = axis;
  Tensor *o = p->out = new_tensor(r, &s, NULL);
  if (kind == P_MAX)
    p->ia = xcalloc((size_t)o->n, sizeof *p->ia);
  for (long i = 0; i < outer; i++)
    for (long j = 0; j < inner; j++) {
      long base = i * len * inner + j, at = i * inner + j;
      if (kind == P_SUM) {
        double acc = 0;
        for (long l = 0; l < len; l++)
          acc += a->v[base + l * inner];
        o->v[at] = ref_round(r, acc);
      } else {
        long best = base;   /* strict > keeps the first arg-max */
        for (long l = 1; l < len; l++)
          if (a->v[base + l * inner] > a->v[best])
            best = base + l * inner;
        p->ia[at] = best;
        o->v[at] = a->v[best];
      }
    }
  return o;
}

static void check_index(const Tensor *idx, long k, int32_t v, int limit, const char *what) {
  if (v < 0 || v >= limit)
    error_plain("%s: index %ld of int tensor '%s' is %d, outside 0..%d", what, k,
                idx->name ? idx->name : "?", (int)v, limit - 1);
}

/* table [V, rest...], idx [...] -> [idx..., rest...] */
static Tensor *p_gather(Ref *r, Tensor *table, Tensor *idx) {
  if (table->shape.rank < 1 || idx->shape.rank + table->shape.rank - 1 > MAXRANK)
    die("ref: gather shapes %s[%s]", shape_str(&table->shape), shape_str(&idx->shape));
  Shape s = idx->shape;
  for (int i = 1; i < table->shape.rank; i++)
    s.dim[s.rank++] = table->shape.dim[i];
  int rows = table->shape.dim[0];
  long row = rows ? table->n / rows : 0;
  Prim *p = push(r, P_GATHER, table, NULL);
  p->idx = idx;
  Tensor *o = p->out = new_tensor(r, &s, NULL);
  for (long k = 0; k < idx->n; k++) {
    check_index(idx, k, idx->iv[k], rows, "gather");
    memcpy(o->v + k * row, table->v + (long)idx->iv[k] * row, sizeof(double) * (size_t)row);
  }
  return o;
}

static Tensor *p_reshape(Ref *r, Tensor *a, const Shape *s) {
  if (shape_numel(s) != a->n)
    die("ref: reshape %s to %s", shape_str(&a->shape), shape_str(s));
  Prim *p = push(r, P_RESHAPE, a, NULL);
  Tensor *o = p->out = new_tensor(r, s, NULL);
  memcpy(o->v, a->v, sizeof(double) * (size_t)a->n);
  return o;
}

/* a with axes d0 and d1 swapped; ia[k]: the element of a at output element k */
static Tensor *p_transpose(Ref *r, Tensor *a, int d0, int d1) {
  Shape s = a->shape;
  s.dim[d0] = a->shape.dim[d1], s.dim[d1] = a->shape.dim[d0];
  Prim *p = push(r, P_TAKE, a, NULL);
  Tensor *o = p->out = new_tensor(r, &s, NULL);
  p->ia = xcalloc((size_t)(o->n ? o->n : 1), sizeof(long));
  long astride[MAXRANK], st = 1;
  for (int d = a->shape.rank - 1; d >= 0; d--)
    astride[d] = st, st *= a->shape.dim[d];
  for (long k = 0; k < o->n; k++) {
    long rest = k, off = 0;
    for (int d = s.rank - 1; d >= 0; d--) {   /* output index i_d reads input axis perm(d) */
      long i = rest % s.dim[d];
      rest /= s.dim[d];
      off += i * astride[d == d0 ? d1 : d == d1 ? d0 : d];
    }
    p->ia[k] = off;
    o->v[k] = a->v[off];
  }
  return o;
}

/* The flat offset in a tensor of shape `in` of element k of shape `out`,
 * whose coordinate along axis is shifted by `shift` (a slice's start). */
static long shifted_offset(const Shape *out, const Shape *in, long k, int axis, long shift) {
  long off = 0, stride = 1;
  for (int d = out->rank - 1; d >= 0; d--) {
    long i = k % out->dim[d] + (d == axis ? shift : 0);
    k /= out->dim[d];
    off += i * stride;
    stride *= in->dim[d];
  }
  return off;
}

/* a cut to shape s along axis from `start` on: out[k] = a[ia[k]] */
static Tensor *p_slice(Ref *r, Tensor *a, const Shape *s, int axis, long start) {
  Prim *p = push(r, P_TAKE, a, NULL);
  Tensor *o = p->out = new_tensor(r, s, NULL);
  p->ia = xcalloc((size_t)(o->n ? o->n : 1), sizeof(long));
  for (long k = 0; k < o->n; k++) {
    p->ia[k] = shifted_offset(s, &a->shape, k, axis, start);
    o->v[k] = a->v[p->ia[k]];
  }
  return o;
}

/* zeros shaped s with a at `start` along axis: out[ia[k]] = a[k] */
static Tensor *p_place(Ref *r, Tensor *a, const Shape *s, int axis, long start) {
  Prim *p = push(r, P_PLACE, a, NULL);
  Tensor *o = p->out = new_tensor(r, s, NULL);
  p->ia = xcalloc((size_t)(a->n ? a->n : 1), sizeof(long));
  for (long k = 0; k < a->n; k++) {
    p->ia[k] = shifted_offset(&a->shape, s, k, axis, start);
    o->v[p->ia[k]] = a->v[k];
  }
  return o;
}

/* x [N, K], idx [N] -> [N] */
static Tensor *p_pick(Ref *r, Tensor *x, Tensor *idx, const char *what) {
  if (x->shape.rank != 2 || idx->shape.rank != 1 || idx->shape.dim[0] != x->shape.dim[0])
    die("ref: pick shapes %s, %s", shape_str(&x->shape), shape_str(&idx->shape));
  Shape s = {.rank = 1, .dim = {x->shape.dim[0]}};
  long K = x->shape.dim[1];
  Prim *p = push(r, P_PICK, x, NULL);
  p->idx = idx;
  Tensor *o = p->out = new_tensor(r, &s, NULL);
  for (long i = 0; i < idx->n; i++) {
    check_index(idx, i, idx->iv[i], (int)K, what);
    o->v[i] = x->v[i * K + idx->iv[i]];
  }
  return o;
}

/* a [..., M, K] @ b [..., K, N] -> [batch..., M, N] (ta: a is [..., K, M];
 * tb: b is [..., N, K]); the batch dims broadcast. */
static Tensor *p_matmul(Ref *r, Tensor *a, Tensor *b, bool ta, bool tb) {
  const Shape *sa = &a->shape, *sb = &b->shape;
  if (sa->rank < 2 || sb->rank < 2)
    die("ref: matmul needs rank >= 2, got %s @ %s", shape_str(sa), shape_str(sb));
  long M = ta ? sa->dim[sa->rank - 1] : sa->dim[sa->rank - 2];
  long K = ta ? sa->dim[sa->rank - 2] : sa->dim[sa->rank - 1];
  long K2 = tb ? sb->dim[sb->rank - 1] : sb->dim[sb->rank - 2];
  long N = tb ? sb->dim[sb->rank - 2] : sb->dim[sb->rank - 1];
  Shape ba = *sa, bb = *sb, bs;
  ba.rank -= 2;
  bb.rank -= 2;
  if (K != K2 || !bcast_shape(&ba, &bb, &bs) || bs.rank + 2 > MAXRANK)
    die("ref: matmul shapes %s @ %s", shape_str(sa), shape_str(sb));
  Shape s = bs;
  s.dim[s.rank++] = (int)M;
  s.dim[s.rank++] = (int)N;
  Prim *p = push(r, P_MATMUL, a, b);
  p->ta = ta;
  p->tb = tb;
  p->m = M;
  p->k = K;
  p->nn = N;
  p->nbatch = shape_numel(&bs);
  p->ia = bcast_index(&ba, &bs);
  p->ib = bcast_index(&bb, &bs);
  Tensor *o = p->out = new_tensor(r, &s, NULL);
  for (long q = 0; q < p->nbatch; q++) {
    const double *A = a->v + p->ia[q] * M * K, *B = b->v + p->ib[q] * K * N;
    double *O = o->v + q * M * N;
    for (long i = 0; i < M; i++)
      for (long j = 0; j < N; j++) {
        double acc = 0;
        for (long l = 0; l < K; l++)
          acc += (ta ? A[l * M + i] : A[i * K + l]) * (tb ? B[j * K + l] : B[l * N + j]);
        O[i * N + j] = ref_round(r, acc);
      }
  }
  return o;
}

/* ---- fused ops as compositions -------------------------------------------------- */

static Tensor *c_mean(Ref *r, Tensor *x, int axis) {
  long outer, len, inner;
  split_axis(&x->shape, axis, &outer, &len, &inner);
  return p_binary(r, P_DIV, p_reduce(r, P_SUM, x, axis), new_const(r, (double)len));
}

/* exp(x - max) / sum(exp(x - max)) along axis */
static Tensor *c_softmax(Ref *r, Tensor *x, int axis) {
  Tensor *d = p_binary(r, P_SUB, x, p_reduce(r, P_MAX, x, axis));
  Tensor *e = p_unary(r, P_EXP, d, 0);
  return p_binary(r, P_DIV, e, p_reduce(r, P_SUM, e, axis));
}

/* -mean_i log_softmax(logits)[i, Y[i]] over the rows whose target is not
 * `ignore`: logits [..., K] as rows [N, K], Y [...] as [N]; an ignored row
 * picks class 0 and is multiplied by 0 (a mask), the sum divided by the rows
 * kept (none kept: 0). */
static Tensor *c_cross_entropy(Ref *r, Tensor *logits, Tensor *y, int ignore) {
  long K = logits->shape.dim[logits->shape.rank - 1], N = y->n;
  Shape rows = {2, {(int)N, (int)K}}, flat = {1, {(int)N}};
  Tensor *x = logits->shape.rank == 2 ? logits : p_reshape(r, logits, &rows);
  Tensor *idx = new_int_tensor(r, &flat, y->name);
  long kept = 0;
  for (long i = 0; i < N; i++) {
    bool drop = y->iv[i] == ignore;
    idx->iv[i] = drop ? 0 : y->iv[i];
    kept += !drop;
  }
  Tensor *d = p_binary(r, P_SUB, x, p_reduce(r, P_MAX, x, 1));
  Tensor *lse = p_unary(r, P_LOG, p_reduce(r, P_SUM, p_unary(r, P_EXP, d, 0), 1), 0);
  Tensor *logprobs = p_binary(r, P_SUB, d, lse);
  Tensor *picked = p_pick(r, logprobs, idx, "cross_entropy");
  Tensor *m = new_tensor(r, &flat, "mask");
  for (long i = 0; i < N; i++)
    m->v[i] = y->iv[i] == ignore ? 0 : 1;
  Tensor *sum = p_reduce(r, P_SUM, p_binary(r, P_MUL, picked, m), -1);
  Tensor *mean = p_binary(r, P_DIV, sum, new_const(r, (double)(kept ? kept : 1)));
  return p_unary(r, P_NEG, mean, 0);
}

/* (x - mean) * (var + eps)^-1/2 * gain + bias, statistics along axis; the
 * variance divides by (count - 1) when unbiased. */
static Tensor *c_normalize(Ref *r, Tensor *x, Tensor *gain, Tensor *bias, int axis, double eps,
                           bool unbiased) {
  long outer, len, inner;
  split_axis(&x->shape, axis, &outer, &len, &inner);
  Tensor *diff = p_binary(r, P_SUB, x, c_mean(r, x, axis));
  Tensor *sq = p_unary(r, P_POW, diff, 2);
  Tensor *var = p_binary(r, P_DIV, p_reduce(r, P_SUM, sq, axis),
                         new_const(r, (double)(unbiased ? len - 1 : len)));
  Tensor *inv = p_unary(r, P_POW, p_binary(r, P_ADD, var, new_const(r, eps)), -0.5);
  Tensor *raw = p_binary(r, P_MUL, diff, inv);
  return p_binary(r, P_ADD, p_binary(r, P_MUL, gain, raw), bias);
}

/* ---- the interpreter ----------------------------------------------------------- */

Ref *ref_new(Graph *g, DType dtype) {
  Ref *r = xcalloc(1, sizeof *r);
  r->g = g;
  r->dtype = dtype;
  r->nt = xcalloc((size_t)(g->nforward ? g->nforward : 1), sizeof *r->nt);
  r->leaves = xcalloc((size_t)(g->nforward ? g->nforward : 1), sizeof *r->leaves);
  for (int i = 0; i < g->nforward; i++) {
    Node *n = g->nodes[i];
    if (n->op != OP_input && n->op != OP_param && n->op != OP_const)
      continue;
    Tensor *t = alloc_tensor(&n->shape, n->type == TY_INT, n->name ? n->name : optab[n->op].name);
    if (n->op == OP_const)
      t->v[0] = ref_round(r, n->num);
    r->nt[i] = r->leaves[r->nleaves++] = t;
  }
  return r;
}

void ref_free(Ref *r) {
  if (!r)
    return;
  reset(r);
  for (int i = 0; i < r->nleaves; i++)
    free_tensor(r->leaves[i]);
  free(r->leaves);
  free(r->tmp);
  free(r->tape);
  free(r->nt);
  free(r);
}

/* Evaluates an initialiser strictly left to right (randn order matters). */
static double eval_init(const InitExpr *e, BpRng *rng) {
  double a, b;
  switch (e->kind) {
  case INIT_NUM: return e->num;
  case INIT_RANDN: return bp_randn(rng);
  case INIT_UNIFORM: return 2 * bp_uniform(rng) - 1;
  case INIT_NEG: return -eval_init(e->a, rng);
  case INIT_SQRT: return sqrt(eval_init(e->a, rng));
  default: break;
  }
  a = eval_init(e->a, rng);
  b = eval_init(e->b, rng);
  switch (e->kind) {
  case INIT_ADD: return a + b;
  case INIT_SUB: return a - b;
  case INIT_MUL: return a * b;
  case INIT_DIV: return a / b;
  default: unreachable();
  }
}

void ref_init_params(Ref *r, uint64_t seed) {
  BpRng rng;
  bp_rng_seed(&rng, seed);
  for (int i = 0; i < r->g->nforward; i++) {
    Node *n = r->g->nodes[i];
    if (n->op != OP_param)
      continue;
    Tensor *t = r->nt[i];
    for (long k = 0; k < t->n; k++)
      t->v[k] = ref_round(r, n->init ? eval_init(n->init, &rng) : 0);
  }
}

long ref_index_limit(Graph *g, Node *x) {
  long lim = 0;
  for (int i = 0; i < g->nforward; i++) {
    Node *n = g->nodes[i];
    if (n->in[1] != x)
      continue;
    long l = 0;
    if (n->op == OP_gather)
      l = n->in[0]->shape.dim[0];
    else if ((n->op == OP_pick || n->op == OP_cross_entropy) && n->in[0]->shape.rank == 2)
      l = n->in[0]->shape.dim[1];
    if (l > 0 && (lim == 0 || l < lim))
      lim = l;
  }
  return lim;
}

void ref_draw_input(Graph *g, Node *n, BpRng *rng, void *dst) {
  long numel = shape_numel(&n->shape);
  if (n->type == TY_INT) {
    long lim = ref_index_limit(g, n);
    int32_t *v = dst;
    for (long k = 0; k < numel; k++)
      v[k] = (int32_t)(bp_uniform(rng) * (double)(lim ? lim : 1));
  } else {
    double *v = dst;
    for (long k = 0; k < numel; k++)
      v[k] = bp_randn(rng);
  }
}

void ref_random_inputs(Ref *r, uint64_t seed) {
  BpRng rng;
  bp_rng_seed(&rng, seed ^ REF_INPUT_SEED_MIX);
  for (int i = 0; i < r->g->nforward; i++) {
    Node *n = r->g->nodes[i];
    if (n->op != OP_input)
      continue;
    Tensor *t = r->nt[i];
    ref_draw_input(r->g, n, &rng, t->iv ? (void *)t->iv : (void *)t->v);
    if (t->v)
      for (long k = 0; k < t->n; k++)
        t->v[k] = ref_round(r, t->v[k]);
  }
}

static Tensor *node_value(Ref *r, Node *n) {
  if (n->id < 0 || n->id >= r->g->nforward || r->g->nodes[n->id] != n)
    die("ref: node %d is not a forward node of this graph", n->id);
  Tensor *t = r->nt[n->id];
  if (!t)
    die("ref: value of %s (node %d) asked before ref_forward", optab[n->op].name, n->id);
  return t;
}

double *ref_data(Ref *r, Node *n) {
  Tensor *t = node_value(r, n);
  if (!t->v)
    die("ref_data: node %d is an int tensor", n->id);
  return t->v;
}

int32_t *ref_idata(Ref *r, Node *n) {
  Tensor *t = node_value(r, n);
  if (!t->iv)
    die("ref_idata: node %d is a float tensor", n->id);
  return t->iv;
}

/* ---- the ref column of ops.h: one evaluator per forward op ---------------------- */

/* declared from the table, so a row naming a missing one is a build error;
 * no_ref: the op has none (leaves, backward-only ops) */
#define OP(name, ar, lv, sig, sh, gr, em, rf, fo, ma, re) RefEvalFn rf;
#include "ops.h"
#undef OP
#define no_ref NULL

Tensor *ref_gather(Ref *r, const Node *n, Tensor *const *in) { (void)n; return p_gather(r, in[0], in[1]); }
Tensor *ref_reshape(Ref *r, const Node *n, Tensor *const *in) {
  if (!in[0]->iv)
    return p_reshape(r, in[0], &n->shape);
  Tensor *o = new_int_tensor(r, &n->shape, "reshape");   /* an int index: no gradient */
  memcpy(o->iv, in[0]->iv, sizeof *o->iv * (size_t)o->n);
  return o;
}
/* x[..., start:start+len, ...]; an int tensor's slice is not on the tape */
Tensor *ref_slice(Ref *r, const Node *n, Tensor *const *in) {
  Tensor *x = in[0];
  if (!x->iv)
    return p_slice(r, x, &n->shape, n->axis, n->start);
  Tensor *o = new_int_tensor(r, &n->shape, "slice");
  for (long k = 0; k < o->n; k++)
    o->iv[k] = x->iv[shifted_offset(&n->shape, &x->shape, k, n->axis, n->start)];
  return o;
}

/* each part broadcast to its block (adding zeros), placed in zeros the size of
 * the whole, and the two added */
Tensor *ref_concat(Ref *r, const Node *n, Tensor *const *in) {
  Tensor *part[2];
  long at = 0;
  for (int k = 0; k < 2; k++) {
    Shape ps = n->shape;
    ps.dim[n->axis] = in[k]->shape.dim[n->axis];
    Tensor *full = p_binary(r, P_ADD, in[k], new_tensor(r, &ps, "zeros"));
    part[k] = p_place(r, full, &n->shape, n->axis, at);
    at += ps.dim[n->axis];
  }
  return p_binary(r, P_ADD, part[0], part[1]);
}

/* the tokens at t, t-1, ...: an int tensor, not on the tape (no gradient) */
Tensor *ref_context(Ref *r, const Node *n, Tensor *const *in) {
  Tensor *x = in[0], *o = new_int_tensor(r, &n->shape, "context");
  long T = x->shape.dim[x->shape.rank - 1], K = (long)n->num;
  for (long p = 0; p < x->n / T; p++)
    for (long t = 0; t < T; t++)
      for (long k = 0; k < K; k++)
        o->iv[(p * T + t) * K + k] = t - k >= 0 ? x->iv[p * T + t - k] : n->fill;
  return o;
}

/* softmax of x plus a constant mask, −∞ above the diagonal of the last two axes */
Tensor *ref_causal_softmax(Ref *r, const Node *n, Tensor *const *in) {
  (void)n;
  int T = in[0]->shape.dim[in[0]->shape.rank - 1];
  Shape s = {2, {T, T}};
  Tensor *M = new_tensor(r, &s, "causal mask");
  for (int i = 0; i < T; i++)
    for (int j = 0; j < T; j++)
      M->v[i * T + j] = j <= i ? 0 : -INFINITY;
  return c_softmax(r, p_binary(r, P_ADD, in[0], M), in[0]->shape.rank - 1);
}

/* a constant [T, T] averaging matrix (row t: 1/(t+1) on columns 0..t) times x,
 * the batch axes broadcast by the matmul primitive */
Tensor *ref_causal_mean(Ref *r, const Node *n, Tensor *const *in) {
  (void)n;
  int T = in[0]->shape.dim[in[0]->shape.rank - 2];
  Shape s = {2, {T, T}};
  Tensor *A = new_tensor(r, &s, "causal");
  for (int t = 0; t < T; t++)
    for (int u = 0; u <= t; u++)
      A->v[t * T + u] = ref_round(r, 1.0 / (t + 1));
  return p_matmul(r, A, in[0], false, false);
}
Tensor *ref_transpose(Ref *r, const Node *n, Tensor *const *in) { return p_transpose(r, in[0], n->axis, n->axis2); }
Tensor *ref_matmul(Ref *r, const Node *n, Tensor *const *in) { return p_matmul(r, in[0], in[1], n->transa, n->transb); }
Tensor *ref_add(Ref *r, const Node *n, Tensor *const *in) { (void)n; return p_binary(r, P_ADD, in[0], in[1]); }
Tensor *ref_sub(Ref *r, const Node *n, Tensor *const *in) { (void)n; return p_binary(r, P_SUB, in[0], in[1]); }
Tensor *ref_mul(Ref *r, const Node *n, Tensor *const *in) { (void)n; return p_binary(r, P_MUL, in[0], in[1]); }
Tensor *ref_div(Ref *r, const Node *n, Tensor *const *in) { (void)n; return p_binary(r, P_DIV, in[0], in[1]); }
Tensor *ref_pow(Ref *r, const Node *n, Tensor *const *in) { return p_unary(r, P_POW, in[0], n->num); }
Tensor *ref_neg(Ref *r, const Node *n, Tensor *const *in) { (void)n; return p_unary(r, P_NEG, in[0], 0); }
Tensor *ref_exp(Ref *r, const Node *n, Tensor *const *in) { (void)n; return p_unary(r, P_EXP, in[0], 0); }
Tensor *ref_log(Ref *r, const Node *n, Tensor *const *in) { (void)n; return p_unary(r, P_LOG, in[0], 0); }
Tensor *ref_tanh(Ref *r, const Node *n, Tensor *const *in) { (void)n; return p_unary(r, P_TANH, in[0], 0); }
Tensor *ref_relu(Ref *r, const Node *n, Tensor *const *in) { (void)n; return p_unary(r, P_RELU, in[0], 0); }
Tensor *ref_sigmoid(Ref *r, const Node *n, Tensor *const *in) { (void)n; return p_unary(r, P_SIGMOID, in[0], 0); }
Tensor *ref_sqrt(Ref *r, const Node *n, Tensor *const *in) { (void)n; return p_unary(r, P_SQRT, in[0], 0); }
/* ½x(1 + tanh(√(2/π)(x + 0.044715x³))), from primitives (the tape differentiates it) */
Tensor *ref_gelu(Ref *r, const Node *n, Tensor *const *in) {
  (void)n;
  Tensor *x = in[0];
  Tensor *inner = p_binary(r, P_ADD, x, p_binary(r, P_MUL, new_const(r, 0.044715), p_unary(r, P_POW, x, 3)));
  Tensor *t = p_unary(r, P_TANH, p_binary(r, P_MUL, new_const(r, sqrt(2 / 3.14159265358979323846)), inner), 0);
  return p_binary(r, P_MUL, p_binary(r, P_MUL, new_const(r, 0.5), x), p_binary(r, P_ADD, new_const(r, 1), t));
}
Tensor *ref_sum(Ref *r, const Node *n, Tensor *const *in) { return p_reduce(r, P_SUM, in[0], n->axis); }
Tensor *ref_mean(Ref *r, const Node *n, Tensor *const *in) { return c_mean(r, in[0], n->axis); }
Tensor *ref_max(Ref *r, const Node *n, Tensor *const *in) { return p_reduce(r, P_MAX, in[0], n->axis); }
Tensor *ref_pick(Ref *r, const Node *n, Tensor *const *in) { (void)n; return p_pick(r, in[0], in[1], "pick"); }
Tensor *ref_softmax(Ref *r, const Node *n, Tensor *const *in) { return c_softmax(r, in[0], n->axis); }
Tensor *ref_cross_entropy(Ref *r, const Node *n, Tensor *const *in) { return c_cross_entropy(r, in[0], in[1], n->ignore); }
/* batchnorm over every axis but the last: x viewed as [rows, D] */
Tensor *ref_batchnorm(Ref *r, const Node *n, Tensor *const *in) {
  Shape s = in[0]->shape, rows = {2, {0, s.dim[s.rank - 1]}};
  rows.dim[0] = (int)(shape_numel(&s) / rows.dim[1]);
  if (s.rank == 2)
    return c_normalize(r, in[0], in[1], in[2], 0, n->num, n->unbiased);
  Tensor *y = c_normalize(r, p_reshape(r, in[0], &rows), in[1], in[2], 0, n->num, n->unbiased);
  return p_reshape(r, y, &s);
}
Tensor *ref_layernorm(Ref *r, const Node *n, Tensor *const *in) {
  return c_normalize(r, in[0], in[1], in[2], in[0]->shape.rank - 1, n->num, false);
}

static RefEvalFn *const evaluators[OP_COUNT] = {
#define OP(name, ar, lv, sig, sh, gr, em, rf, fo, ma, re) [OP_##name] = rf,
#include "ops.h"
#undef OP
};

RefEvalFn *ref_evaluator(OpKind op) { return op < OP_COUNT ? evaluators[op] : NULL; }

static Tensor *eval_node(Ref *r, Node *n) {
  Tensor *in[MAXIN] = {0};
  for (int i = 0; i < optab[n->op].arity; i++)
    in[i] = r->nt[n->in[i]->id];
  if (!evaluators[n->op])
    die("ref: op %s is not a forward op", optab[n->op].name);
  return evaluators[n->op](r, n, in);
}

double ref_forward(Ref *r) {
  Graph *g = r->g;
  if (!g->loss)
    die("ref: graph has no loss");
  reset(r);
  for (int i = 0; i < g->nforward; i++) {
    Node *n = g->nodes[i];
    if (n->op == OP_input || n->op == OP_param || n->op == OP_const)
      continue;
    for (int j = 0; j < optab[n->op].arity; j++)
      if (n->in[j]->id >= i || !r->nt[n->in[j]->id])
        die("ref: node %d reads node %d out of order", i, n->in[j]->id);
    Tensor *t = eval_node(r, n);
    if (!shape_eq(&t->shape, &n->shape))
      die("ref: %s (node %d, line %d) computes %s but the graph says %s", optab[n->op].name, i,
          n->line, shape_str(&t->shape), shape_str(&n->shape));
    t->name = n->name ? n->name : optab[n->op].name;
    r->nt[i] = t;
  }
  r->forwarded = true;
  Tensor *l = r->nt[g->loss->id];
  if (l->n != 1)
    die("ref: loss is not a scalar");
  return l->v[0];
}

/* ---- backward ------------------------------------------------------------------ */

static void acc(Ref *r, double *g, long i, double d) {
  g[i] = ref_round(r, g[i] + d);
}

static void back_prim(Ref *r, const Prim *p) {
  Tensor *o = p->out, *a = p->a, *b = p->b;
  const double *go = o->g;
  switch (p->kind) {
  case P_ADD: case P_SUB: case P_MUL: case P_DIV:
    for (long k = 0; k < o->n; k++) {
      double x = a->v[p->ia[k]], y = b->v[p->ib[k]], da, db;
      switch (p->kind) {
      case P_ADD: da = 1; db = 1; break;
      case P_SUB: da = 1; db = -1; break;
      case P_MUL: da = y; db = x; break;
      default: da = 1 / y; db = -x / (y * y); break;
      }
      acc(r, a->g, p->ia[k], da * go[k]);
      acc(r, b->g, p->ib[k], db * go[k]);
    }
    break;
  case P_POW: case P_NEG: case P_EXP: case P_LOG: case P_TANH:
  case P_RELU: case P_SIGMOID: case P_SQRT:
    for (long k = 0; k < o->n; k++) {
      double x = a->v[k], y = o->v[k], d;
      switch (p->kind) {
      case P_POW: d = p->num * pow(x, p->num - 1); break;
      case P_NEG: d = -1; break;
      case P_EXP: d = y; break;
      case P_LOG: d = 1 / x; break;
      case P_TANH: d = 1 - y * y; break;
      case P_RELU: d = x > 0 ? 1 : 0; break;
      case P_SIGMOID: d = y * (1 - y); break;
      default: d = 0.5 / y; break;
      }
      acc(r, a->g, k, d * go[k]);
    }
    break;
  case P_SUM: {
    long outer, len, inner;
    split_axis(&a->shape, p->axis, &outer, &len, &inner);
    for (long i = 0; i < outer; i++)
      for (long j = 0; j < inner; j++)
        for (long l = 0; l < len; l++)
          acc(r, a->g, i * len * inner + l * inner + j, go[i * inner + j]);
    break;
  }
  case P_MAX:
    for (long k = 0; k < o->n; k++)
      acc(r, a->g, p->ia[k], go[k]);
    break;
  case P_GATHER: {
    long row = a->shape.dim[0] ? a->n / a->shape.dim[0] : 0;
    for (long k = 0; k < p->idx->n; k++)
      for (long j = 0; j < row; j++)
        acc(r, a->g, (long)p->idx->iv[k] * row + j, go[k * row + j]);
    break;
  }
  case P_RESHAPE:
    for (long k = 0; k < o->n; k++)
      acc(r, a->g, k, go[k]);
    break;
  case P_TAKE:
    for (long k = 0; k < o->n; k++)
      acc(r, a->g, p->ia[k], go[k]);
    break;
  case P_PLACE:
    for (long k = 0; k < a->n; k++)
      acc(r, a->g, k, go[p->ia[k]]);
    break;
  case P_PICK: {
    long K = a->shape.dim[1];
    for (long i = 0; i < o->n; i++)
      acc(r, a->g, i * K + p->idx->iv[i], go[i]);
    break;
  }
  case P_MATMUL: {
    long M = p->m, K = p->k, N = p->nn;
    for (long q = 0; q < p->nbatch; q++) {
      long ao = p->ia[q] * M * K, bo = p->ib[q] * K * N;
      const double *A = a->v + ao, *B = b->v + bo, *G = go + q * M * N;
      for (long i = 0; i < M; i++)
        for (long l = 0; l < K; l++) {
          double s = 0;   /* dA[i,l] = sum_j G[i,j] B[l,j] */
          for (long j = 0; j < N; j++)
            s += G[i * N + j] * (p->tb ? B[j * K + l] : B[l * N + j]);
          acc(r, a->g, ao + (p->ta ? l * M + i : i * K + l), s);
        }
      for (long l = 0; l < K; l++)
        for (long j = 0; j < N; j++) {
          double s = 0;   /* dB[l,j] = sum_i A[i,l] G[i,j] */
          for (long i = 0; i < M; i++)
            s += (p->ta ? A[l * M + i] : A[i * K + l]) * G[i * N + j];
          acc(r, b->g, bo + (p->tb ? j * K + l : l * N + j), s);
        }
    }
    break;
  }
  }
}

void ref_backward(Ref *r) {
  if (!r->forwarded)
    die("ref_backward before ref_forward");
  for (int i = 0; i < r->nleaves; i++)
    if (r->leaves[i]->g)
      memset(r->leaves[i]->g, 0, sizeof(double) * (size_t)r->leaves[i]->n);
  for (int i = 0; i < r->ntmp; i++)
    if (r->tmp[i]->g)   /* int temporaries have none */
      memset(r->tmp[i]->g, 0, sizeof(double) * (size_t)r->tmp[i]->n);
  r->nt[r->g->loss->id]->g[0] = 1;
  for (int i = r->ntape - 1; i >= 0; i--)
    back_prim(r, &r->tape[i]);
  r->backwarded = true;
}

double *ref_grad(Ref *r, Node *n) {
  if (!r->backwarded)
    die("ref_grad before ref_backward");
  Tensor *t = node_value(r, n);
  if (!t->g)
    die("ref_grad: node %d is an int tensor", n->id);
  return t->g;
}
