/* cmd_explain.c: `bpgen explain SPEC` -- the backward pass as one writes it on
 * paper.
 *
 * Consumes the graph after grad_build() and the gradient contributions it
 * recorded (grad_edges); prints each spec statement followed by the lines
 * "dx += <math>" its rules produced, in backward order, using the lecture's
 * d<name> for named tensors.  The one idea: a contribution is printed as the
 * expression of the backward nodes the rule made, inlined; anything made
 * elsewhere (another gradient, a forward value) appears by name.
 */
#include "bpgen.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct Explain {
  Graph *g;
  const char **gname;   /* by node id: "d<x>" when the node is some x's gradient */
} Explain;

static const char usage[] =
  "usage: bpgen explain SPEC [-D NAME=INT]... [--expand]\n"
  "\n"
  "Prints each forward line of SPEC followed by the backward lines derived from\n"
  "it, in the notation of the lecture: dX is d(loss)/dX, · is a matrix product,\n"
  "⊙ an elementwise one, ᵀ a transpose, Σ_b a sum over the batch axis.\n"
  "--expand lowers the fused ops (cross_entropy, softmax, batchnorm, layernorm)\n"
  "first, so their gradients appear step by step.\n";

/* display width of UTF-8 text (every code point here is one column) */
static int width(const char *s) {
  int w = 0;
  for (; *s; s++)
    w += ((unsigned char)*s & 0xC0) != 0x80;
  return w;
}

static const char *pad(const char *s, int w) {
  int n = w - width(s);
  return n > 0 ? arena_printf("%s%*s", s, n, "") : s;
}

static const char *num_str(double v) {
  if (v == (long)v && v > -1e9 && v < 1e9)
    return arena_printf("%ld", (long)v);
  return arena_printf("%.6g", v);
}

static const char *fwd_name(Explain *x, Node *n);

/* no space outside brackets: needs no parentheses */
static bool is_atom(const char *s) {
  int depth = 0;
  for (; *s; s++)
    if (*s == '(' || *s == '[')
      depth++;
    else if (*s == ')' || *s == ']')
      depth--;
    else if (*s == ' ' && depth == 0)
      return false;
  return true;
}

static const char *paren(const char *s) { return is_atom(s) ? s : arena_printf("(%s)", s); }

/* axis letters: b for the batch axis, then j, k, ... */
static const char *axis_name(int axis) {
  static const char *const names[] = {"b", "j", "k", "l", "m", "n"};
  return axis < 0 ? "all" : names[axis < 6 ? axis : 5];
}

/* The forward expression of an unnamed forward node, in spec-like math. */
static const char *fwd_expr(Explain *x, Node *n) {
  const char *a = n->in[0] ? paren(fwd_name(x, n->in[0])) : "";
  const char *b = n->in[1] ? paren(fwd_name(x, n->in[1])) : "";
  switch (n->op) {
  case OP_add: return arena_printf("%s + %s", a, b);
  case OP_sub: return arena_printf("%s − %s", a, b);
  case OP_mul: return arena_printf("%s ⊙ %s", a, b);
  case OP_div: return arena_printf("%s / %s", a, b);
  case OP_matmul: return arena_printf("%s · %s", a, b);
  case OP_neg: return arena_printf("−%s", a);
  case OP_pow: return arena_printf("%s^%s", a, num_str(n->num));
  case OP_gather: return arena_printf("%s[%s]", a, fwd_name(x, n->in[1]));
  case OP_pick: return arena_printf("%s[·, %s]", a, fwd_name(x, n->in[1]));
  case OP_sum: case OP_mean: case OP_max:
    return arena_printf("%s_%s(%s)", optab[n->op].name, axis_name(n->axis), fwd_name(x, n->in[0]));
  default:
    return arena_printf("%s(%s%s%s)", optab[n->op].name, fwd_name(x, n->in[0]),
                        n->in[1] ? ", " : "", n->in[1] ? fwd_name(x, n->in[1]) : "");
  }
}

/* Name of a forward node: its spec name, a number, its expression if short,
 * else t<id>. */
static const char *fwd_name(Explain *x, Node *n) {
  if (n->name)
    return n->name;
  if (n->op == OP_const)
    return num_str(n->num);
  const char *e = fwd_expr(x, n);
  return width(e) <= 26 ? e : arena_printf("t%d", n->id);
}

/* d<name>, or d(<expression>) for an unnamed value */
static const char *grad_name(Explain *x, Node *n) {
  const char *s = fwd_name(x, n);
  bool ident = true;
  for (const char *p = s; *p; p++)
    ident &= (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '_';
  return arena_printf(ident ? "d%s" : "d(%s)", s);
}

static const char *bexpr(Explain *x, Node *b, Node *user, bool top);

/* A node used inside a contribution: by name unless made by the same rule. */
static const char *ref(Explain *x, Node *b, Node *user) {
  if (!b->is_backward)
    return fwd_name(x, b);
  if (x->gname[b->id] && (b->fwd != user || b == user->grad))
    return x->gname[b->id];
  if (b->op == OP_const)
    return num_str(b->num);
  if (b->fwd != user)
    return arena_printf("t%d", b->id);
  return bexpr(x, b, user, false);
}

/* sumto's summed axes, as in Σ_b or Σ_{b,j} */
static const char *sum_axes(const Shape *from, const Shape *to) {
  char buf[64] = "";
  int k = 0, lead = from->rank - to->rank;
  for (int i = 0; i < from->rank; i++)
    if (i < lead || (to->dim[i - lead] == 1 && from->dim[i] != 1)) {
      strcat(buf, k++ ? "," : "");
      strcat(buf, axis_name(i));
    }
  return k > 1 ? arena_printf("Σ_{%s}", buf) : arena_printf("Σ_%s", buf);
}

/* The math of one backward node made by user's rule. */
static const char *bexpr(Explain *x, Node *b, Node *user, bool top) {
  Node *i0 = b->in[0], *i1 = b->in[1];
  const char *a = i0 ? ref(x, i0, user) : "", *c = i1 ? ref(x, i1, user) : "";
  const char *s;
  switch (b->op) {
  case OP_const: s = num_str(b->num); break;
  case OP_add: s = arena_printf("%s + %s", a, c); break;
  case OP_sub: s = arena_printf("%s − %s", a, paren(c)); break;
  case OP_mul:
    if (i0->shape.rank == 0 || i1->shape.rank == 0)
      s = i1->shape.rank == 0 && i0->shape.rank != 0 ? arena_printf("%s·%s", paren(c), paren(a))
                                                     : arena_printf("%s·%s", paren(a), paren(c));
    else
      s = arena_printf("%s ⊙ %s", paren(a), paren(c));
    break;
  case OP_div: s = arena_printf("%s / %s", paren(a), paren(c)); break;
  case OP_neg: s = arena_printf("−%s", paren(a)); break;
  case OP_pow:
    s = b->num == 2 ? arena_printf("%s²", paren(a)) : arena_printf("%s^(%s)", paren(a), num_str(b->num));
    break;
  case OP_matmul:
    s = arena_printf("%s%s · %s%s", paren(a), b->transa ? "ᵀ" : "", paren(c), b->transb ? "ᵀ" : "");
    break;
  case OP_reshape: s = arena_printf("%s viewed as %s", a, shape_str(&b->shape)); break;
  case OP_sumto: s = arena_printf("%s %s", sum_axes(&i0->shape, &b->shape), paren(a)); break;
  case OP_expand:
    if (i0->op == OP_const && i0->num == 0)
      s = "0";
    else if (b->num != 1)
      s = arena_printf("%s·%s broadcast to %s", num_str(b->num), paren(a), shape_str(&b->shape));
    else
      s = arena_printf("%s broadcast to %s", a, shape_str(&b->shape));
    break;
  case OP_tanh_bwd: s = arena_printf("(1 − %s²) ⊙ %s", a, paren(c)); break;
  case OP_relu_bwd: s = arena_printf("[%s > 0] ⊙ %s", a, paren(c)); break;
  case OP_sigmoid_bwd: s = arena_printf("%s ⊙ (1 − %s) ⊙ %s", a, a, paren(c)); break;
  case OP_max_bwd:
    s = arena_printf("onehot(argmax_%s %s) ⊙ %s", axis_name(b->axis), a, paren(c));
    break;
  case OP_pick_bwd: s = arena_printf("onehot(%s) ⊙ %s", a, paren(c)); break;
  case OP_gather_bwd: s = arena_printf("onehot(%s)ᵀ · %s   (scatter-add)", a, paren(c)); break;
  case OP_softmax_bwd:
    s = arena_printf("%s ⊙ (%s − Σ_%s %s ⊙ %s)", a, c, axis_name(b->axis), paren(c), a);
    break;
  case OP_xent_bwd:
    s = arena_printf("(softmax(%s) − onehot(%s)) / %d", a, c, i0->shape.dim[0]);
    if (!(b->in[2]->op == OP_const && b->in[2]->num == 1))
      s = arena_printf("%s · %s", s, ref(x, b->in[2], user));
    break;
  case OP_bn_bwd_x: {
    int n = i0->in[0]->shape.dim[0];
    const char *g = fwd_name(x, i0->in[1]);
    s = i0->unbiased
      ? arena_printf("%s·rstd/%d · (%d·%s − Σ_b %s − %d/%d·x̂ ⊙ Σ_b(%s ⊙ x̂))", g, n, n, c, c, n, n - 1, c)
      : arena_printf("%s·rstd/%d · (%d·%s − Σ_b %s − x̂ ⊙ Σ_b(%s ⊙ x̂))", g, n, n, c, c, c);
    break;
  }
  case OP_bn_bwd_gain: s = arena_printf("Σ_b %s ⊙ x̂", paren(c)); break;
  case OP_ln_bwd_x: {
    const char *g = fwd_name(x, i0->in[1]);
    s = arena_printf("rstd ⊙ (g − mean_j g − x̂ ⊙ mean_j(g ⊙ x̂)),  g = %s ⊙ %s", g, paren(c));
    break;
  }
  case OP_ln_bwd_gain: s = arena_printf("Σ_rows %s ⊙ x̂", paren(c)); break;
  default:
    s = arena_printf("%s(%s%s%s)", optab[b->op].name, a, i1 ? ", " : "", c);
  }
  (void)top;
  return s;
}

/* The statement's text: its source line without the comment. */
static const char *line_text(Graph *g, int line) {
  const char *p = g->file->text;
  for (int l = 1; l < line && *p; p++)
    if (*p == '\n')
      l++;
  const char *e = p;
  while (*e && *e != '\n' && *e != '#')
    e++;
  while (e > p && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r'))
    e--;
  return arena_strndup(p, (size_t)(e - p));
}

static const char *note(OpKind op) {
  switch (op) {
  case OP_batchnorm:
    return "n/(n−1) is Bessel's correction coming back through the unbiased variance.\n"
           "This is the training-mode gradient (batch statistics, which depend on x);\n"
           "at eval the statistics are fixed numbers and dx = gain·rstd ⊙ dy.";
  case OP_gather:
    return "As a loop: for every position p of X: dC[X[p]] += demb[p] (rows hit twice add).\n"
           "The same as a matmul with one-hot rows: dC = onehot(X)ᵀ · demb.";
  case OP_max:
    return "Only the largest entry of each slice moved the max; the others did not affect it,\n"
           "so their gradient is 0 (on ties the first index gets it, as in PyTorch).";
  case OP_cross_entropy:
    return "Exercise 2: softmax minus one-hot, over the batch size; each row sums to 0.";
  default:
    return NULL;
  }
}

/* Contributions of one statement: its nodes in forward order (dh, dW2, db2 for
 * h @ W2 + b2, as the lecture lists them) -- unless a contribution goes to an
 * unnamed value of the statement, which must be defined before it is used:
 * then backward order. */
static bool backward_order;
static int by_user(const void *pa, const void *pb) {
  const GradEdge *a = *(const GradEdge *const *)pa, *b = *(const GradEdge *const *)pb;
  if (a->user != b->user)
    return backward_order ? b->user->id - a->user->id : a->user->id - b->user->id;
  return a->arg - b->arg;
}

/* an unnamed value of this statement whose gradient is more than dy passed on */
static bool internal(const GradEdge *e, int line) {
  Node *t = e->user->in[e->arg];
  return !t->name && t->op != OP_param && t->op != OP_input && t->line == line &&
         e->val != e->user->grad;
}

static FILE *xout;   /* where explain_print writes */

static void print_block(const char *text) {
  for (const char *p = text; *p;) {
    const char *e = strchr(p, '\n');
    int n = e ? (int)(e - p) : (int)strlen(p);
    fprintf(xout, "      %.*s\n", n, p);
    p += n + (e != NULL);
  }
}

int cmd_explain(int argc, char **argv) {
  Cli c;
  cli_init(&c, DT_F64);
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      fputs(usage, stdout);
      return 0;
    }
    if (!cli_common(&c, argc, argv, &i))
      cli_unknown("explain", argv[i]);
  }
  Graph *g = cli_load(&c);
  grad_build(g);
  explain_print(g, stdout);
  return 0;
}

void explain_print(Graph *g, FILE *out) {
  xout = out;
  Explain ex = {g, arena_alloc(sizeof(char *) * (size_t)g->nnodes)};
  Explain *x = &ex;
  /* a gradient shared by several tensors (dy passed through) takes the first
   * spec name among them */
  bool *named = arena_alloc(sizeof(bool) * (size_t)g->nnodes);
  for (int i = 0; i < g->nforward; i++) {
    Node *n = g->nodes[i];
    if (n->grad && (!ex.gname[n->grad->id] || (n->name && !named[n->grad->id]))) {
      ex.gname[n->grad->id] = grad_name(x, n);
      named[n->grad->id] = n->name != NULL;
    }
  }
  int ne;
  const GradEdge *e = grad_edges(g, &ne);
  /* uses per target, so the last contribution to a fan-out can say so */
  int *uses = arena_alloc(sizeof(int) * (size_t)g->nforward);
  int *seen = arena_alloc(sizeof(int) * (size_t)g->nforward);
  for (int k = 0; k < ne; k++)
    uses[e[k].user->in[e[k].arg]->id]++;

  /* statement lines, in backward order (the order the rules ran) */
  int maxline = 0;
  for (int i = 0; i < g->nforward; i++)
    if (g->nodes[i]->line > maxline)
      maxline = g->nodes[i]->line;
  for (int line = maxline; line >= 1; line--) {
    Node *last = NULL;
    bool ops[OP_COUNT] = {0};
    for (int i = 0; i < g->nforward; i++) {
      Node *n = g->nodes[i];
      if (n->line == line && optab[n->op].arity > 0) {
        last = n;
        ops[n->op] = true;
      }
    }
    if (!last)
      continue;
    Node *shown = last;
    for (int i = 0; i < g->nforward; i++)
      if (g->nodes[i]->line == line && g->nodes[i]->name && optab[g->nodes[i]->op].arity > 0)
        shown = g->nodes[i];
    fprintf(out, "%-4d%s  %s\n", line, pad(line_text(g, line), 42), shape_str(&shown->shape));

    /* the lines of this statement, then align their "+=" */
    const char *lhs[256], *rhs[256], *shp[256], *after[256];
    int nl = 0, w = 0;
    /* this statement's contributions: its nodes in forward order, inputs in order */
    const GradEdge *mine[256];
    int nm = 0;
    backward_order = false;
    for (int k = 0; k < ne && nm < 256; k++)
      if (e[k].user->line == line) {
        backward_order |= internal(&e[k], line);
        mine[nm++] = &e[k];
      }
    qsort(mine, (size_t)nm, sizeof mine[0], by_user);
    for (int m = 0; m < nm; m++) {
      const GradEdge *ed = mine[m];
      Node *u = ed->user, *t = u->in[ed->arg];
      seen[t->id]++;
      /* plumbing inside one statement: an unnamed value passing dy through */
      if (!t->name && t->op != OP_param && t->line == line && ed->val == u->grad)
        continue;
      const char *r = ed->val == u->grad ? grad_name(x, u)   /* dy passed through */
                      : ed->val->fwd == u ? bexpr(x, ed->val, u, true)
                      : ref(x, ed->val, u);
      lhs[nl] = grad_name(x, t);
      rhs[nl] = r;
      shp[nl] = shape_str(&t->shape);
      after[nl] = uses[t->id] > 1 && seen[t->id] == uses[t->id]
        ? arena_printf("(%s is used %d times: each use is a path to the loss, and by the chain\n"
                       " rule the gradients of all paths add up, so %s is their sum)",
                       fwd_name(x, t), uses[t->id], grad_name(x, t))
        : NULL;
      if (width(lhs[nl]) > w)
        w = width(lhs[nl]);
      nl++;
    }
    for (int i = 0; i < nl; i++) {
      const char *l = arena_printf("%s += %s", pad(lhs[i], w), rhs[i]);
      fprintf(out, "      %s %s\n", pad(l, 42), shp[i]);
      if (after[i])
        print_block(after[i]);
    }
    for (int i = 0; i < g->nforward; i++) {
      Node *n = g->nodes[i];
      if (n->line == line && n->name && n->grad && n->grad->op == OP_expand && n->grad->fwd == n &&
          n->grad->in[0]->op == OP_const && n->grad->in[0]->num == 0)
        fprintf(out, "      %s = 0   (%s does not reach the loss)\n", grad_name(x, n), n->name);
    }
    for (int op = 0; op < OP_COUNT; op++)
      if (ops[op] && note((OpKind)op))
        print_block(note((OpKind)op));
  }
}
