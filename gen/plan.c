/* plan.c: the schedule -- which nodes the emitted C computes together.
 *
 * Consumes a Graph after grad_build; produces a Plan: three ordered step lists
 * (training forward, inference forward, backward), each step one node or a
 * fused group, as data a test can read (plan_text) before any C is printed.
 * emit.c has one printer per step kind; layout.c reads the plan only to leave
 * out the products no one stores and to size the layers' workspaces.
 */
#include "backend.h"
#define BP_KERNELS_DECLARE_ONLY
#include "kernels.h"

#include <string.h>

/* The fusion decisions, per node id, while they are made. */
typedef struct Fuse {
  Graph *g;
  bool *skip;            /* written by a fused block hosted at another node */
  Node **bias_mm;        /* add: the matmul it adds a bias row to, as one gemm_bias */
  Node **act;            /* batchnorm: the tanh of its output, in the same pass */
  BnGroup **bng;         /* the batchnorm backward block hosted at this node */
  Layer **layer;         /* the layer call (forward or backward) hosted at this node */
  bool *lskip;           /* inside a layer call hosted elsewhere */
  bool *inlayer;         /* a tensor only the layer's kernels see (no other reader) */
  Layer **layers;
  int nlayers;
  Node **fold;           /* causal_softmax: the x·c it reads; y·c of the backward: the softmax_bwd y */
  double *factor;        /* the c (or 1/c for a division) of a fold */
  signed char *tri;      /* matmul: 1 only its lower triangle is read, 2 its first operand is lower */
  bool *full;            /* tri 1 on a tensor the user sees (a named grad): all of it unless lean */
  Node **scores;         /* causal softmax (or its backward's host): the tri-1 product made in its memory */
  Node **swap_slice;     /* transpose: the last-axis slice it reads through (ST_SWAP_SLICE) */
  CatParts **cat;        /* concat: its parts written in place (ST_CAT_PARTS) */
  Node **ln_add;         /* add: the layernorm dx it adds in that kernel's pass (ST_LN_BWD_ADD) */
  Node **add_ln;         /* layernorm: the add of its input, made in its pass (ST_ADD_LN) */
} Fuse;

/* ---- fusion: fewer passes over memory ------------------------------------------- *
 * A node-per-block step walks every [batch, width] tensor several times; these
 * patterns fold passes together (each fused block still prints every node's math):
 *   y = x @ W + b      the bias is the product's starting value (bp_gemm_bias);
 *                      the product alone is never stored
 *   h = tanh(bn(x))    tanh in batchnorm's output pass
 *   batchnorm backward dy = (1 - h²) ⊙ dh, Σ_b dy, Σ_b dy ⊙ x̂, dx and Σ_b dx in
 *                      two passes (bp_bn_bwd), where they were six
 * Only unnamed nodes disappear; every named tensor and grad is still written. */

/* A bias row for y of shape [..., N]: shape [N], [1,N], ... (float). */
static bool is_bias_row(Node *b, Node *y) {
  if (b->type != TY_FLOAT || y->shape.rank < 2 || b->shape.rank < 1)
    return false;
  long N = y->shape.dim[y->shape.rank - 1];
  return b->shape.dim[b->shape.rank - 1] == N && numel(b) == N;
}

/* m is one product of rows: [M,K]·[K,N] (either side transposed), or a batch
 * [..., T, K] over one [K,N] whose rows fold into M (the sequence models'
 * linear maps) */
static bool gemm_rows(Node *m) {
  const Shape *a = &m->in[0]->shape, *b = &m->in[1]->shape;
  if (b->rank != 2)
    return false;
  return m->shape.rank == 2 ? a->rank == 2 : !m->transa && a->rank == m->shape.rank;
}

/* s sums a [N,D] (or [N,...,D]) tensor down to [D] or [1,D]: every axis but
 * the last */
static bool is_row_sum(Node *s, Node *x) {
  if (!s || s->op != OP_sumto || s->in[0] != x || x->shape.rank < 2)
    return false;
  long D = x->shape.dim[x->shape.rank - 1];
  if (s->shape.rank < 1 || s->shape.dim[s->shape.rank - 1] != D)
    return false;
  return numel(s) == D;
}

static void plan_attention(Fuse *e, const int *nuse, const bool *exposed);
static void plan_heads(Fuse *e, const int *nuse, const bool *exposed);
static void plan_residual(Fuse *e, const int *nuse, const bool *exposed);

static void plan_fusion(Fuse *e) {
  Graph *g = e->g;
  int nn = g->nnodes;
  int *nuse = arena_alloc(sizeof(int) * (size_t)nn);
  bool *isgrad = arena_alloc((size_t)nn);
  e->skip = arena_alloc((size_t)nn);
  e->bias_mm = arena_alloc(sizeof(Node *) * (size_t)nn);
  e->act = arena_alloc(sizeof(Node *) * (size_t)nn);
  e->bng = arena_alloc(sizeof(BnGroup *) * (size_t)nn);
  for (int i = 0; i < nn; i++) {
    Node *n = g->nodes[i];
    for (int k = 0; k < optab[n->op].arity; k++)
      nuse[n->in[k]->id]++;
    if (n->grad)
      isgrad[n->grad->id] = true;
  }
  if (g->loss)
    nuse[g->loss->id]++;
  /* y = x @ W + b */
  for (int i = 0; i < g->nforward; i++) {
    Node *n = g->nodes[i];
    if (n->op != OP_add || !is_float(n))
      continue;
    for (int k = 0; k < 2; k++) {
      Node *m = n->in[k], *b = n->in[1 - k];
      if (m->op != OP_matmul || m->name || nuse[m->id] != 1 || isgrad[m->id] || !gemm_rows(m) ||
          !shape_eq(&m->shape, &n->shape) || b == m || !is_bias_row(b, n))
        continue;
      e->bias_mm[n->id] = m;
      e->skip[m->id] = true;
      break;
    }
  }
  /* h = tanh(batchnorm(...)) */
  for (int i = 0; i < g->nforward; i++) {
    Node *t = g->nodes[i];
    if (t->op == OP_tanh && t->in[0]->op == OP_batchnorm && !e->act[t->in[0]->id] &&
        shape_eq(&t->shape, &t->in[0]->shape)) {
      e->act[t->in[0]->id] = t;
      e->skip[t->id] = true;
    }
  }
  /* batchnorm backward groups, one per bn_bwd_x */
  for (int i = g->nforward; i < nn; i++) {
    Node *x = g->nodes[i];
    if (x->op != OP_bn_bwd_x || !shape_eq(&x->in[1]->shape, &x->in[0]->shape))
      continue;
    BnGroup *gr = arena_alloc(sizeof *gr);
    gr->bn = x->in[0], gr->dy = x->in[1], gr->x = x;
    if (gr->dy->op == OP_tanh_bwd && gr->dy->is_backward && !e->skip[gr->dy->id] &&
        shape_eq(&gr->dy->shape, &gr->dy->in[0]->shape) && shape_eq(&gr->dy->shape, &gr->dy->in[1]->shape))
      gr->tanh = gr->dy;
    for (int j = g->nforward; j < nn; j++) {
      Node *m = g->nodes[j];
      if (e->skip[m->id] || e->bng[m->id])
        continue;
      if (!gr->gain && m->op == OP_bn_bwd_gain && m->in[0] == gr->bn && m->in[1] == gr->dy)
        gr->gain = m;
      else if (!gr->bias && is_row_sum(m, gr->dy))
        gr->bias = m;
      else if (!gr->xsum && is_row_sum(m, x))
        gr->xsum = m;
    }
    Node *mem[5] = {gr->tanh, x, gr->gain, gr->bias, gr->xsum};
    Node *host = x;
    for (int k = 0; k < 5; k++)
      if (mem[k] && mem[k]->id < host->id)
        host = mem[k];
    for (int k = 0; k < 5; k++)
      if (mem[k])
        e->skip[mem[k]->id] = true;
    e->skip[host->id] = false;
    e->bng[host->id] = gr;
  }
  /* named tensors and the grads of named ones: the user reads them whole */
  bool *exposed = arena_alloc((size_t)nn);
  for (int i = 0; i < g->nforward; i++) {
    Node *n = g->nodes[i];
    if (n->name) {
      exposed[n->id] = true;
      if (n->grad)
        exposed[n->grad->id] = true;
    }
  }
  plan_attention(e, nuse, exposed);
  plan_heads(e, nuse, exposed);
  plan_residual(e, nuse, exposed);
}


/* ---- attention: the causal mask known to the kernels ------------------------------- *
 *   att = causal_softmax(s / c)   the scaling in the softmax's kernel (s / c is
 *                                 not stored), its backward's dx / c in the
 *                                 softmax backward's kernel
 *   s = q · kᵀ, datt = dy · vᵀ    only the lower triangle (j <= i) is read by a
 *                                 causal softmax or its backward: only the row
 *                                 blocks' columns up to the diagonal are made
 *   att · v, attᵀ · dy, ...       the first operand is 0 above its diagonal: the
 *                                 blocks of zeros are not multiplied
 *   causal_softmax(q · kᵀ / c)    the product made in the softmax's own memory, head
 *   and its backward              by head, the softmax then in place: the scores
 *                                 (and datt, unless the user sees it) never have a
 *                                 [T, T] tensor of their own
 * (bp_causal_softmax, bp_causal_softmax_bwd, bp_gemm_causal, bp_causal_scores). */

/* t = x · c, c · x or x / c, c a constant (not too small or large to invert):
 * x, and the factor in *k */
static Node *const_scale(Node *t, double *k) {
  if (!is_float(t) || (t->op != OP_mul && t->op != OP_div))
    return NULL;
  int ci = t->in[1]->op == OP_const ? 1 : t->op == OP_mul && t->in[0]->op == OP_const ? 0 : -1;
  if (ci < 0)
    return NULL;
  double c = t->in[ci]->num, a = c < 0 ? -c : c;
  Node *x = t->in[1 - ci];
  if (!(a > 1e-30 && a < 1e30) || !is_float(x) || !shape_eq(&x->shape, &t->shape))
    return NULL;
  *k = t->op == OP_div ? 1 / c : c;
  return x;
}

/* a softmax_bwd of a causal softmax along its last axis: 0 above the diagonal */
static bool causal_bwd(Node *n) {
  return n->op == OP_softmax_bwd && n->in[0]->op == OP_causal_softmax && n->axis == n->shape.rank - 1;
}

/* x is 0 above the diagonal of its last two axes */
static bool lower_tri(Fuse *e, Node *x) {
  return x->op == OP_causal_softmax || causal_bwd(x) || (e->fold[x->id] && x->op != OP_causal_softmax);
}

/* m is a per-head product [..., T, T]·[..., T, D] or [..., T, D]·[..., D, T]ᵀ
 * (the batch axes the same on both sides, as attention's) */
static bool head_product(Node *m) {
  if (m->op != OP_matmul || !is_float(m))
    return false;
  const Shape *o = &m->shape, *a = &m->in[0]->shape, *b = &m->in[1]->shape;
  if (o->rank < 2 || a->rank != o->rank || b->rank != o->rank)
    return false;
  for (int d = 0; d + 2 < o->rank; d++)
    if (a->dim[d] != o->dim[d] || b->dim[d] != o->dim[d])
      return false;
  return true;
}

static void plan_attention(Fuse *e, const int *nuse, const bool *exposed) {
  Graph *g = e->g;
  int nn = g->nnodes;
  e->fold = arena_alloc(sizeof(Node *) * (size_t)nn);
  e->factor = arena_alloc(sizeof(double) * (size_t)nn);
  e->tri = arena_alloc((size_t)nn);
  e->full = arena_alloc((size_t)nn);
  for (int i = 0; i < nn; i++) {
    Node *n = g->nodes[i], *t, *x;
    double k;
    if (n->op == OP_causal_softmax && (t = n->in[0]) && !t->is_backward && nuse[t->id] == 1 &&
        !exposed[t->id] && !e->skip[t->id] && const_scale(t, &k)) {
      e->fold[n->id] = t, e->factor[n->id] = k, e->skip[t->id] = true;
    } else if (n->is_backward && (x = const_scale(n, &k)) && causal_bwd(x) && nuse[x->id] == 1 &&
               !exposed[x->id] && !e->skip[x->id] && !e->skip[n->id]) {
      e->fold[n->id] = x, e->factor[n->id] = k, e->skip[x->id] = true;
    }
  }
  for (int i = 0; i < nn; i++) {
    Node *m = g->nodes[i];
    if (!head_product(m) || e->skip[m->id])
      continue;
    const Shape *o = &m->shape;
    int T = o->dim[o->rank - 1];
    if (!m->transb && lower_tri(e, m->in[0]) && m->in[0]->shape.dim[o->rank - 1] == m->in[0]->shape.dim[o->rank - 2] &&
        o->dim[o->rank - 2] == m->in[0]->shape.dim[o->rank - 1]) {
      e->tri[m->id] = 2;
      continue;
    }
    if (m->transa || !m->transb || o->dim[o->rank - 2] != T || m == g->loss || (exposed[m->id] && !m->is_backward))
      continue;
    /* every reader reads the lower triangle only */
    bool lower = nuse[m->id] > 0;
    for (int j = 0; j < nn && lower; j++) {
      Node *r = g->nodes[j];
      for (int q = 0; q < optab[r->op].arity; q++) {
        if (r->in[q] != m)
          continue;
        Node *host = r;   /* a folded x·c reads for its causal softmax */
        for (int h = 0; h < nn && e->skip[r->id]; h++)
          if (e->fold[g->nodes[h]->id] == r)
            host = g->nodes[h];
        bool ok = (host->op == OP_causal_softmax && host->in[0] == (host == r ? m : r)) ||
                  (causal_bwd(r) && q == 1 && r->in[0] != m);
        lower = lower && ok;
      }
    }
    if (lower)
      e->tri[m->id] = 1, e->full[m->id] = exposed[m->id];
  }
  /* a lower-triangle product read by one causal softmax or one softmax
   * backward as its dy: made where that reads it (a forward product the user
   * sees is never tri 1, above) */
  e->scores = arena_alloc(sizeof(Node *) * (size_t)nn);
  for (int i = 0; i < nn; i++) {
    Node *n = g->nodes[i], *m, *sb;
    double k;
    if (e->skip[n->id])
      continue;
    if (n->op == OP_causal_softmax)
      m = e->fold[n->id] ? const_scale(e->fold[n->id], &k) : n->in[0];
    else if ((sb = e->fold[n->id] ? e->fold[n->id] : n) && causal_bwd(sb))
      m = sb->in[1];
    else
      continue;
    if (e->tri[m->id] != 1 || nuse[m->id] != 1 || e->skip[m->id] || m == g->loss)
      continue;
    e->scores[n->id] = m;
    e->skip[m->id] = true;
  }
}


/* ---- heads: the attention's per-head views made in one pass ------------------------ *
 *   q = swap(reshape(qkv[:, :, a:b]))      the swap reads columns a:b of qkv's rows
 *                                           in place: the slice is not made
 *   dqkv = [swap(dq), [swap(dk), swap(dv)]]  each swap writes its columns of dqkv's
 *                                           rows: no swap or inner concat is made
 * (bp_swap_axes with row strides).  The nodes left out are unnamed and read by
 * that one reader only. */

bool swap_dims(Node *t, long *A, long *n1, long *n2, long *C) {
  if (t->op != OP_transpose || !is_float(t))
    return false;
  int p = t->axis < t->axis2 ? t->axis : t->axis2, q = t->axis < t->axis2 ? t->axis2 : t->axis;
  const Shape *X = &t->in[0]->shape;
  if (q != p + 1 || q >= X->rank)
    return false;
  *A = 1, *C = 1, *n1 = X->dim[p], *n2 = X->dim[q];
  for (int d = 0; d < p; d++)
    *A *= X->dim[d];
  for (int d = q + 1; d < X->rank; d++)
    *C *= X->dim[d];
  return true;
}

/* x may be left out for its one reader: unnamed, read once, not fused already */
static bool inner_node(Fuse *e, const int *nuse, const bool *exposed, Node *x) {
  return !x->name && nuse[x->id] == 1 && !exposed[x->id] && !e->skip[x->id] && is_float(x) &&
         x != e->g->loss;
}

/* rows of x's last axis (its numel over the last dim) */
static long last_rows(Node *x) {
  long w = x->shape.rank ? x->shape.dim[x->shape.rank - 1] : 1;
  return w ? numel(x) / w : 0;
}

/* the parts of concat c (columns from col) into *out; inner concats flattened */
static void cat_parts(Fuse *e, const int *nuse, const bool *exposed, Node *c, long col, CatParts *out,
                      int *swaps) {
  for (int k = 0; k < 2; k++) {
    Node *x = c->in[k], *y = x;
    long w = x->shape.dim[x->shape.rank - 1], A, n1, n2, C;
    if (y->op == OP_reshape && inner_node(e, nuse, exposed, y))
      y = y->in[0];
    if (x->op == OP_concat && x->axis == x->shape.rank - 1 && inner_node(e, nuse, exposed, x) &&
        last_rows(x) == last_rows(c)) {
      cat_parts(e, nuse, exposed, x, col, out, swaps);
      e->skip[x->id] = true;
    } else if (swap_dims(y, &A, &n1, &n2, &C) && inner_node(e, nuse, exposed, y) && n1 * C == w &&
               A * n2 == last_rows(c)) {
      out->p[out->n++] = (CatPart){y->in[0], y, col, w};
      e->skip[y->id] = e->skip[x->id] = true;
      ++*swaps;
    } else {
      out->p[out->n++] = (CatPart){x, NULL, col, w};
    }
    col += w;
  }
}

static void plan_heads(Fuse *e, const int *nuse, const bool *exposed) {
  Graph *g = e->g;
  int nn = g->nnodes;
  e->swap_slice = arena_alloc(sizeof(Node *) * (size_t)nn);
  e->cat = arena_alloc(sizeof(CatParts *) * (size_t)nn);
  for (int i = 0; i < nn; i++) {
    Node *t = g->nodes[i], *r, *sl;
    long A, n1, n2, C;
    if (!swap_dims(t, &A, &n1, &n2, &C) || e->skip[t->id])
      continue;
    r = sl = t->in[0];
    if (r->op == OP_reshape && inner_node(e, nuse, exposed, r))
      sl = r->in[0];
    if (sl->op != OP_slice || sl->axis != sl->shape.rank - 1 || !inner_node(e, nuse, exposed, sl) ||
        n2 * C != sl->shape.dim[sl->axis] || A * n1 != last_rows(sl))
      continue;
    e->swap_slice[t->id] = sl;
    e->skip[sl->id] = e->skip[r->id] = true;
  }
  /* outermost concats first: an inner one is flattened into its reader; the
   * parts gathered in one scratch list (a leaf per concat of a tree, and one),
   * kept only when a swap is among them */
  bool *was = arena_alloc((size_t)nn);
  CatParts tmp = {0, arena_alloc(sizeof(CatPart) * (size_t)(nn + 1))};
  for (int i = nn - 1; i >= 0; i--) {
    Node *c = g->nodes[i];
    if (c->op != OP_concat || !is_float(c) || c->shape.rank < 2 || c->axis != c->shape.rank - 1 || e->skip[c->id])
      continue;
    memcpy(was, e->skip, (size_t)nn);
    int swaps = 0;
    tmp.n = 0;
    cat_parts(e, nuse, exposed, c, 0, &tmp, &swaps);
    if (!swaps) {
      memcpy(e->skip, was, (size_t)nn);   /* nothing to gain: the concat as it was */
      continue;
    }
    CatParts *cp = arena_alloc(sizeof *cp);
    cp->n = tmp.n, cp->p = arena_alloc(sizeof(CatPart) * (size_t)tmp.n);
    memcpy(cp->p, tmp.p, sizeof(CatPart) * (size_t)tmp.n);
    e->cat[c->id] = cp;
  }
}

/* ---- the residual stream: its adds in layernorm's passes --------------------------- *
 *   dx = dr + ln_bwd_x(...)   the layernorm's dx added in its kernel's pass: the dx
 *                             is not made
 *   layernorm(x + y)          the add made in the layernorm's pass (the sum still
 *                             written: the stream reads it on)
 * Both give the bits of the two passes. */
static void plan_residual(Fuse *e, const int *nuse, const bool *exposed) {
  Graph *g = e->g;
  int nn = g->nnodes;
  e->ln_add = arena_alloc(sizeof(Node *) * (size_t)nn);
  for (int i = g->nforward; i < nn; i++) {
    Node *n = g->nodes[i];
    if (n->op != OP_add || !is_float(n) || e->skip[n->id] || e->bng[n->id] || n->in[0] == n->in[1])
      continue;
    for (int k = 0; k < 2; k++) {
      Node *l = n->in[k], *r = n->in[1 - k];
      if (l->op == OP_ln_bwd_x && inner_node(e, nuse, exposed, l) && shape_eq(&l->shape, &n->shape) &&
          shape_eq(&r->shape, &n->shape) && is_float(r)) {
        e->ln_add[n->id] = l, e->skip[l->id] = true;
        break;
      }
    }
  }
  /* layernorm(x + y), when nothing reads the sum before the layernorm */
  e->add_ln = arena_alloc(sizeof(Node *) * (size_t)nn);
  for (int i = 0; i < g->nforward; i++) {
    Node *n = g->nodes[i], *a = n->in[0];
    if (n->op != OP_layernorm || !is_float(n) || e->skip[n->id] || a->op != OP_add || e->skip[a->id] ||
        e->bias_mm[a->id] || a->is_backward || a == g->loss || !shape_eq(&a->in[0]->shape, &a->shape) ||
        !shape_eq(&a->in[1]->shape, &a->shape) || !is_float(a->in[0]) || !is_float(a->in[1]))
      continue;
    bool later = true;   /* no reader of a between a and n (the order is topological) */
    for (int j = a->id + 1; j < n->id && later; j++)
      for (int q = 0; q < optab[g->nodes[j]->op].arity; q++)
        later = later && g->nodes[j]->in[q] != a;
    if (later)
      e->add_ln[n->id] = a, e->skip[a->id] = true;
  }
}

/* ---- layers: a batchnorm layer by column blocks ------------------------------------ *
 * z = A·W1 + b1, batchnorm, tanh, out = h·W2 + b2, each intermediate read by the
 * next only, batch statistics (training forward and the backward): one
 * bp_bnlayer_fwd call for the forward and one bp_bnlayer_bwd call for the
 * backward, where the node-by-node step makes eight passes over [N, D] arrays
 * in each direction.  Batchnorm works per column, so a block of columns is
 * made, normalised and used while in cache; only x̂ reaches memory.  The
 * named tensors of the layer (z, y, h and their grads) are still written unless
 * the caller set the state's lean flag (set_lean): a trainer wants the params'
 * grads only.  Small layers (N·D below BP_LAYER_MIN) stay node by node: the
 * passes are in cache anyway. */
#define BP_LAYER_MIN 65536

static Node *find_bwd(Fuse *e, OpKind op, Node *a, Node *b, bool ta, bool tb) {
  Graph *g = e->g;
  for (int i = g->nforward; i < g->nnodes; i++) {
    Node *m = g->nodes[i];
    if (m->op == op && m->in[0] == a && m->in[1] == b && m->transa == ta && m->transb == tb)
      return m;
  }
  return NULL;
}

static bool mat2(Node *n) { return n->shape.rank == 2 && is_float(n); }

static void plan_layers(Fuse *e, bool layers) {
  Graph *g = e->g;
  int nn = g->nnodes;
  int *fuse = arena_alloc(sizeof(int) * (size_t)nn);   /* readers among forward nodes */
  e->layer = arena_alloc(sizeof(Layer *) * (size_t)nn);
  e->lskip = arena_alloc((size_t)nn);
  e->inlayer = arena_alloc((size_t)nn);
  e->layers = arena_alloc(sizeof(Layer *) * (size_t)nn);
  for (int i = 0; i < g->nforward; i++)
    for (int k = 0; k < optab[g->nodes[i]->op].arity; k++)
      fuse[g->nodes[i]->in[k]->id]++;
  if (g->loss)
    fuse[g->loss->id]++;
  for (int i = 0; i < g->nforward && layers; i++) {
    Node *bn = g->nodes[i], *t = e->act[bn->id];
    if (bn->op != OP_batchnorm || !t || !mat2(bn) || fuse[bn->id] != 1 || fuse[t->id] != 1)
      continue;
    Layer ly = {.bn = bn, .t = t, .z = bn->in[0]};
    ly.mm1 = e->bias_mm[ly.z->id] ? e->bias_mm[ly.z->id] : ly.z;
    if (ly.mm1 != ly.z)
      ly.b1 = ly.z->in[0] == ly.mm1 ? ly.z->in[1] : ly.z->in[0];
    /* the reader of h: out = h·W2 (+ b2) */
    for (int j = i + 1; j < g->nforward; j++) {
      Node *m = g->nodes[j];
      if (m->op == OP_matmul && m->in[0] == t)
        ly.mm2 = m;
    }
    if (!ly.mm2 || ly.mm1->op != OP_matmul || fuse[ly.z->id] != 1 || (ly.mm1 != ly.z && fuse[ly.mm1->id] != 1))
      continue;
    Node *mm1 = ly.mm1, *mm2 = ly.mm2;
    if (mm1->transa || mm1->transb || mm2->transa || mm2->transb || !mat2(mm1) || !mat2(mm2) ||
        !mat2(mm1->in[0]) || !mat2(mm1->in[1]) || !mat2(mm2->in[1]) || !shape_eq(&mm1->shape, &bn->shape))
      continue;
    ly.out = mm2;
    for (int j = 0; j < g->nforward; j++)
      if (e->bias_mm[g->nodes[j]->id] == mm2) {
        ly.out = g->nodes[j];
        ly.b2 = ly.out->in[0] == mm2 ? ly.out->in[1] : ly.out->in[0];
      }
    if (ly.out != mm2 && fuse[mm2->id] != 1)
      continue;
    ly.N = bn->shape.dim[0], ly.D = bn->shape.dim[1];
    ly.K = mm1->in[0]->shape.dim[1], ly.V = mm2->shape.dim[1];
    if (ly.N * ly.D < BP_LAYER_MIN || ly.N < 2 || numel(bn->in[1]) != ly.D || numel(bn->in[2]) != ly.D)
      continue;
    /* the backward: dout -> dt, dW2 -> tanh/batchnorm group -> dW1, dA */
    ly.dout = mm2->grad;
    if (!ly.dout || !ly.dout->is_backward)
      continue;
    ly.dt = find_bwd(e, OP_matmul, ly.dout, mm2->in[1], false, true);
    ly.dW2 = find_bwd(e, OP_matmul, t, ly.dout, true, false);
    for (int j = g->nforward; j < nn; j++)
      if (e->bng[g->nodes[j]->id] && e->bng[g->nodes[j]->id]->bn == bn)
        ly.bg = e->bng[g->nodes[j]->id];
    if (!ly.dt || !ly.dW2 || t->grad != ly.dt || !ly.bg || !ly.bg->tanh || ly.bg->tanh->in[1] != ly.dt ||
        ly.bg->tanh->in[0] != t || mm1->grad != ly.bg->x)
      continue;
    ly.dW1 = find_bwd(e, OP_matmul, mm1->in[0], ly.bg->x, true, false);
    ly.dA = find_bwd(e, OP_matmul, ly.bg->x, mm1->in[1], false, true);
    if (!ly.dW1)
      continue;
    /* no other reader of the layer's inner backward nodes */
    Node *inner[] = {ly.dt, ly.bg->tanh, ly.bg->x};
    bool alone = true;
    for (int j = g->nforward; j < nn; j++) {
      Node *m = g->nodes[j];
      for (int k = 0; k < optab[m->op].arity; k++)
        for (int q = 0; q < 3; q++)
          if (m->in[k] == inner[q] && m != ly.dt && m != ly.bg->tanh && m != ly.bg->x && m != ly.dW1 &&
              m != ly.dA && m != ly.bg->gain && m != ly.bg->bias && m != ly.bg->xsum)
            alone = false;
    }
    if (!alone)
      continue;
    /* columns per block: a block of z ~256 KB (the kernels' batchnorm keeps up to
     * 64 columns of sums in registers); groups of blocks: fixed by the shape */
    long dc = 65536 / ly.N / 16 * 16;
    ly.dc = (int)(dc < 16 ? 16 : dc > 64 ? 64 : dc);
    long nb = (ly.D + ly.dc - 1) / ly.dc;
    ly.groups = (int)(nb < 4 ? nb : 4);
    Layer *L = arena_alloc(sizeof *L);
    *L = ly;
    e->layers[e->nlayers++] = L;
    Node *fw[] = {ly.mm1, ly.z, bn, t, mm2, ly.out};
    Node *bw[] = {ly.dt, ly.dW2, ly.bg->tanh, ly.bg->x, ly.bg->gain, ly.bg->bias, ly.bg->xsum, ly.dW1, ly.dA};
    for (int k = 0; k < 6; k++)
      e->lskip[fw[k]->id] = true;
    e->layer[ly.out->id] = L;
    Node *host = NULL;
    for (int k = 0; k < 9; k++)
      if (bw[k]) {
        e->lskip[bw[k]->id] = true;
        if (!host || bw[k]->id < host->id)
          host = bw[k];
      }
    e->layer[host->id] = L;
    e->inlayer[ly.z->id] = e->inlayer[bn->id] = e->inlayer[t->id] = true;
    e->inlayer[ly.dt->id] = e->inlayer[ly.bg->tanh->id] = e->inlayer[ly.bg->x->id] = true;
  }
}


/* The steps of nodes[from..to) in order: with layer calls (training) or node
 * by node (inference). */
static Schedule schedule(Fuse *f, int from, int to, bool layers) {
  Schedule s = {arena_alloc(sizeof(Step) * (size_t)(to - from + 1)), 0};
  for (int i = from; i < to; i++) {
    Node *n = f->g->nodes[i];
    Step st = {ST_NODE, n, NULL, NULL, NULL, 1, false, NULL, NULL};
    if (layers && f->layer[n->id])
      st.kind = n->is_backward ? ST_LAYER_BWD : ST_LAYER_FWD, st.ly = f->layer[n->id];
    else if ((layers && f->lskip[n->id]) || f->skip[n->id])
      continue;
    else if (f->bng[n->id])
      st.kind = ST_BN_BWD, st.bg = f->bng[n->id];
    else if (n->op == OP_add && f->bias_mm[n->id])
      st.kind = ST_GEMM_BIAS, st.aux = f->bias_mm[n->id];
    else if (n->op == OP_batchnorm && f->act[n->id])
      st.kind = ST_BN_TANH, st.aux = f->act[n->id];
    else if (f->scores[n->id])
      st.kind = n->op == OP_causal_softmax ? ST_SCORES : ST_SCORES_BWD, st.prod = f->scores[n->id],
      st.aux = f->fold[n->id] ? f->fold[n->id] : n->op == OP_causal_softmax ? NULL : n,
      st.scale = f->fold[n->id] ? f->factor[n->id] : 1, st.full = f->full[f->scores[n->id]->id];
    else if (f->fold[n->id])
      st.kind = n->op == OP_causal_softmax ? ST_CAUSAL_SOFTMAX : ST_SOFTMAX_BWD_SCALED, st.aux = f->fold[n->id],
      st.scale = f->factor[n->id];
    else if (f->tri[n->id])
      st.kind = f->tri[n->id] == 1 ? ST_GEMM_LOWER : ST_GEMM_TRI_A, st.full = f->full[n->id];
    else if (f->swap_slice[n->id])
      st.kind = ST_SWAP_SLICE, st.aux = f->swap_slice[n->id];
    else if (f->cat[n->id])
      st.kind = ST_CAT_PARTS, st.cat = f->cat[n->id];
    else if (f->ln_add[n->id])
      st.kind = ST_LN_BWD_ADD, st.aux = f->ln_add[n->id];
    else if (f->add_ln[n->id])
      st.kind = ST_ADD_LN, st.aux = f->add_ln[n->id];
    s.steps[s.n++] = st;
  }
  return s;
}

Plan *plan_build(Graph *g, bool layers) {
  Fuse f = {.g = g};
  plan_fusion(&f);
  plan_layers(&f, layers);
  Plan *p = arena_alloc(sizeof *p);
  p->train = schedule(&f, 0, g->nforward, true);
  p->eval = schedule(&f, 0, g->nforward, false);
  p->backward = schedule(&f, g->nforward, g->nnodes, true);
  p->no_field = arena_alloc((size_t)g->nnodes);
  for (int i = 0; i < g->nnodes; i++)   /* (a product the user sees keeps its member) */
    p->no_field[i] = f.skip[i] && g->nodes[i]->op == OP_matmul && !f.full[i];
  for (int i = 0; i < g->nnodes; i++)   /* what a kernel folded in */
    if (f.fold[i])
      p->no_field[f.fold[i]->id] = true;
  p->inlayer = f.inlayer;
  p->layers = f.layers;
  p->nlayers = f.nlayers;
  return p;
}

/* ---- the plan as text, for tests and for reading --------------------------------------- */

static const char **gname;   /* per node id: d<name> for the gradient of a named node */

static const char *node_name(Node *n) {
  if (!n)
    return "-";
  return n->name ? n->name : gname[n->id] ? gname[n->id] : arena_printf("t%d", n->id);
}

static void schedule_text(Buf *b, const char *title, const Schedule *s) {
  static const char *const kind[] = {"NODE",          "GEMM_BIAS",          "BN_TANH",    "BN_BWD",
                                     "LAYER_FWD",     "LAYER_BWD",          "CAUSAL_SOFTMAX",
                                     "SOFTMAX_BWD_SCALED", "GEMM_LOWER",    "GEMM_TRI_A",
                                     "SWAP_SLICE",    "CAT_PARTS",          "LN_BWD_ADD",
                                     "ADD_LN",        "SCORES",             "SCORES_BWD"};
  buf_printf(b, "%s:", title);
  for (int i = 0; i < s->n; i++) {
    const Step *st = &s->steps[i];
    if (st->kind == ST_NODE) {
      buf_printf(b, " %s", node_name(st->node));
      continue;
    }
    buf_printf(b, " {%s %s", kind[st->kind], node_name(st->node));
    if (st->aux)
      buf_printf(b, " %s", node_name(st->aux));
    if (st->prod)
      buf_printf(b, " %s", node_name(st->prod));
    if (st->bg) {
      Node *m[] = {st->bg->tanh, st->bg->x, st->bg->gain, st->bg->bias, st->bg->xsum};
      for (int k = 0; k < 5; k++)
        if (m[k] && m[k] != st->node)
          buf_printf(b, " %s", node_name(m[k]));
    }
    if (st->ly)
      buf_printf(b, " %s..%s", node_name(st->ly->z), node_name(st->ly->out));
    for (int k = 0; st->cat && k < st->cat->n; k++)
      buf_printf(b, " %s%s", node_name(st->cat->p[k].x), st->cat->p[k].swap ? "^T" : "");
    buf_printf(b, "}");
  }
  buf_printf(b, "\n");
}

char *plan_text(Graph *g) {
  Plan *p = plan_build(g, true);
  gname = arena_alloc(sizeof(char *) * (size_t)g->nnodes);
  for (int i = 0; i < g->nforward; i++)
    if (g->nodes[i]->name && g->nodes[i]->grad)
      gname[g->nodes[i]->grad->id] = arena_printf("d%s", g->nodes[i]->name);
  Buf b = {0};
  schedule_text(&b, "train", &p->train);
  schedule_text(&b, "eval", &p->eval);
  schedule_text(&b, "backward", &p->backward);
  return buf_done(&b);
}
