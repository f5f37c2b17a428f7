/* expand.c: lowering fused ops into their primitive decomposition (--expand).
 *
 * Consumes a forward Graph and returns a new one in which cross_entropy,
 * softmax, batchnorm and layernorm are written out step by step, as Exercise 1
 * of the lecture does (logit_maxes, norm_logits, counts, ..., bnmeani, bndiff,
 * ...); every other node is copied.  The fused node's name moves to the last
 * node of its decomposition, so every named tensor of the spec is in both graphs
 * and `bpgen check --expand` can compare their gradients name by name.  The
 * pieces are named as the lecture names them (logit_maxes, norm_logits, counts,
 * counts_sum, counts_sum_inv, probs, logprobs; bnmeani, bndiff, bndiff2, bnvar,
 * bnvar_inv, bnraw; layernorm's ln...), so `bpgen explain --expand` prints
 * dbndiff where it would print t16; a name the spec already uses gets _2, _3.
 */
#include "bpgen.h"

#include <string.h>

typedef struct Lower {
  Graph *g;
  Token *tok;   /* the fused node's token: every piece points at its line */
  Graph *orig;  /* the spec's graph: its names are taken */
} Lower;

static bool taken(Lower *l, const char *name) {
  for (int i = 0; i < l->g->nnodes; i++)
    if (l->g->nodes[i]->name && strcmp(l->g->nodes[i]->name, name) == 0)
      return true;
  for (int i = 0; i < l->orig->nnodes; i++)
    if (l->orig->nodes[i]->name && strcmp(l->orig->nodes[i]->name, name) == 0)
      return true;
  return false;
}

/* n named base (the lecture's name), or base_2, base_3 ... when taken */
static Node *named(Lower *l, Node *n, const char *base) {
  const char *name = base;
  for (int k = 2; taken(l, name); k++)
    name = arena_printf("%s_%d", base, k);
  n->name = name;
  return n;
}

static Node *op2(Lower *l, OpKind op, Node *a, Node *b) {
  return graph_add(l->g, op, l->tok, a, b, NULL, NULL, NULL);
}

static Node *cnst(Lower *l, double v) { return graph_const(l->g, l->tok, v); }

static Node *powc(Lower *l, Node *x, double p) {
  return graph_add(l->g, OP_pow, l->tok, x, NULL, NULL, NULL, &(NodeAttr){.num = p});
}

/* sum/mean/max over one axis (-1: all), the axis kept as 1 (keepdim) */
static Node *reduce(Lower *l, OpKind op, Node *x, int axis) {
  return graph_add(l->g, op, l->tok, x, NULL, NULL, NULL, &(NodeAttr){.axis = axis});
}

/* softmax along axis: counts = exp(x − max x); counts · (Σ counts)^−1 */
static Node *lower_softmax(Lower *l, Node *x, int axis) {
  Node *maxes = named(l, reduce(l, OP_max, x, axis), "logit_maxes");
  Node *norm = named(l, op2(l, OP_sub, x, maxes), "norm_logits");
  Node *counts = named(l, op2(l, OP_exp, norm, NULL), "counts");
  Node *sum = named(l, reduce(l, OP_sum, counts, axis), "counts_sum");
  Node *inv = named(l, powc(l, sum, -1), "counts_sum_inv");
  return op2(l, OP_mul, counts, inv);
}

/* cross_entropy(logits [N,K], Y) = −mean_i log(probs)[i, Y[i]] */
static Node *lower_xent(Lower *l, Node *logits, Node *y) {
  Node *probs = named(l, lower_softmax(l, logits, logits->shape.rank - 1), "probs");
  Node *picked = op2(l, OP_pick, named(l, op2(l, OP_log, probs, NULL), "logprobs"), y);
  return op2(l, OP_neg, reduce(l, OP_mean, picked, -1), NULL);
}

/* batchnorm / layernorm: gain · (x − mean)·(var + eps)^−½ + bias, the
 * statistics over axis 0 (batchnorm) or the last axis (layernorm). */
static Node *lower_norm(Lower *l, Node *n, Node *x, Node *gain, Node *bias) {
  bool bn = n->op == OP_batchnorm;
  if (bn && x->shape.rank > 2) {   /* over every axis but the last: as [rows, D] */
    Shape s = x->shape, rows = {2, {0, s.dim[s.rank - 1]}};
    rows.dim[0] = (int)(shape_numel(&s) / rows.dim[1]);
    Node *y = lower_norm(l, n, graph_add(l->g, OP_reshape, l->tok, x, NULL, NULL, &rows, NULL), gain, bias);
    return graph_add(l->g, OP_reshape, l->tok, y, NULL, NULL, &s, NULL);
  }
  int axis = bn ? 0 : x->shape.rank - 1;
  int count = x->shape.dim[axis];
  const char *p = bn ? "bn" : "ln";
  Node *mean = named(l, op2(l, OP_mul, cnst(l, 1.0 / count), reduce(l, OP_sum, x, axis)),
                     arena_printf("%smeani", p));
  Node *diff = named(l, op2(l, OP_sub, x, mean), arena_printf("%sdiff", p));
  Node *diff2 = named(l, powc(l, diff, 2), arena_printf("%sdiff2", p));
  double scale = bn && n->unbiased ? 1.0 / (count - 1) : 1.0 / count;
  Node *var = named(l, op2(l, OP_mul, cnst(l, scale), reduce(l, OP_sum, diff2, axis)),
                    arena_printf("%svar", p));
  Node *var_inv = named(l, powc(l, op2(l, OP_add, var, cnst(l, n->num)), -0.5),
                        arena_printf("%svar_inv", p));
  Node *raw = named(l, op2(l, OP_mul, diff, var_inv), arena_printf("%sraw", p));
  return op2(l, OP_add, op2(l, OP_mul, gain, raw), bias);
}

Graph *expand_fused(Graph *g) {
  Graph *e = new_graph(g->file);
  e->dims = g->dims;
  e->ndims = g->ndims;
  int nf = g->nforward ? g->nforward : g->nnodes;
  Node **map = arena_alloc(sizeof *map * (size_t)g->nnodes);
  for (int i = 0; i < nf; i++) {
    Node *n = g->nodes[i], *in[MAXIN] = {0}, *m;
    for (int k = 0; k < optab[n->op].arity; k++)
      in[k] = map[n->in[k]->id];
    Lower l = {e, n->tok, g};
    switch (n->op) {
    case OP_cross_entropy:   /* over [N, K] rows; a sequence's [..., K] stays fused */
      if (in[0]->shape.rank == 2) {
        m = lower_xent(&l, in[0], in[1]);
        break;
      }
      m = graph_add(e, n->op, n->tok, in[0], in[1], NULL, &n->shape, &n->at);
      break;
    case OP_softmax:
      m = lower_softmax(&l, in[0], n->axis);
      break;
    case OP_batchnorm:
    case OP_layernorm:
      m = lower_norm(&l, n, in[0], in[1], in[2]);
      break;
    default:   /* every attribute copied at once; a leaf keeps its declared type */
      m = graph_add(e, n->op, n->tok, in[0], in[1], in[2], &n->shape, &n->at);
      if (optab[n->op].level == LV_LEAF)
        m->type = n->type;
    }
    if (!shape_eq(&m->shape, &n->shape) || m->type != n->type)
      die("expand_fused: %s became %s", shape_str(&n->shape), shape_str(&m->shape));
    m->name = n->name;
    m->line = n->line;
    map[i] = m;
  }
  e->nforward = e->nnodes;
  e->loss = g->loss ? map[g->loss->id] : NULL;
  return e;
}
