/* cmd_explain.c: `bpgen explain SPEC` -- the backward pass as one writes it on
 * paper.
 *
 * Consumes the graph after grad_build() and the gradient contributions it
 * recorded (Graph.edges); prints each spec statement followed by the lines
 * "dx += <math>" its rules produced, in backward order, using the lecture's
 * d<name> for named tensors.  Each op's notation and remark are its row in
 * ops.h (the math and remark columns).  The one idea: a contribution is printed as the
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

static const char *fwd_name(Explain *x, Node *n);

static const char *fwd_label(void *ctx, Node *n) { return fwd_name(ctx, n); }

/* The forward expression of an unnamed forward node: its op's math (ops.h). */
static const char *fwd_expr(Explain *x, Node *n) { return note_math(n, true, fwd_label, x); }

/* Name of a forward node: its spec name, a number, its expression if short,
 * else t<id>. */
static const char *fwd_name(Explain *x, Node *n) {
  if (n->name)
    return n->name;
  if (n->op == OP_const)
    return note_num(n->num);
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

static const char *bexpr(Explain *x, Node *b, Node *user);

/* A node used inside a contribution: by name unless made by the same rule. */
static const char *ref(Explain *x, Node *b, Node *user) {
  if (!b->is_backward)
    return fwd_name(x, b);
  if (x->gname[b->id] && (b->fwd != user || b == user->grad))
    return x->gname[b->id];
  if (b->op == OP_const)
    return note_num(b->num);
  if (b->fwd != user)
    return arena_printf("t%d", b->id);
  return bexpr(x, b, user);
}

typedef struct RefCtx {
  Explain *x;
  Node *user;
} RefCtx;

static const char *ref_label(void *ctx, Node *n) {
  RefCtx *c = ctx;
  return ref(c->x, n, c->user);
}

/* The math of one backward node made by user's rule: its op's math (ops.h),
 * with two conventions of the lecture's: a zero gradient is 0, and a product
 * with a scalar is written scalar·tensor. */
static const char *bexpr(Explain *x, Node *b, Node *user) {
  RefCtx c = {x, user};
  Node *i0 = b->in[0], *i1 = b->in[1];
  if (b->op == OP_expand && i0->op == OP_const && i0->num == 0)
    return "0";
  if (b->op == OP_mul && (i0->shape.rank == 0 || i1->shape.rank == 0)) {
    const char *a = note_paren(ref(x, i0, user)), *d = note_paren(ref(x, i1, user));
    return i1->shape.rank == 0 && i0->shape.rank != 0 ? arena_printf("%s·%s", d, a) : arena_printf("%s·%s", a, d);
  }
  return note_math(b, false, ref_label, &c);
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
  int ne = g->nedges;
  const GradEdge *e = g->edges;
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
                      : ed->val->fwd == u ? bexpr(x, ed->val, u)
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
    for (int op = 0; op < OP_COUNT; op++) {
      if (!ops[op] || !optab[op].remark)
        continue;
      Node *on = NULL;   /* the line's node of that op: the remark speaks of its tensors */
      for (int i = 0; i < g->nforward; i++)
        if (g->nodes[i]->line == line && g->nodes[i]->op == (OpKind)op)
          on = g->nodes[i];
      const char *err;
      char *r = note_fill(optab[op].remark, on, true, fwd_label, x, &err);
      if (!r)
        die("the remark of %s in ops.h: %s", optab[op].name, err);
      print_block(r);
    }
  }
}
