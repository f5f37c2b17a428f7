/* graph.c: the op table and the graph of nodes.
 *
 * optab[] is built from ops.h, and the spec-level ops' signatures are read
 * from it here (op_sig), so the parser knows each function's tensors and
 * attributes from the table alone.  graph_add() is the one way nodes come into
 * being: it appends the node (so Graph.nodes is always in topological order)
 * with its attributes, and runs the op's shape rule at once, so a shape error
 * points at the token that made the node.
 */
#include "bpgen.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const OpInfo optab[OP_COUNT] = {
#define OP(name, ar, lv, sig, sh, gr, em, rf, fo, ma, re) [OP_##name] = {#name, ar, lv, sig, sh, gr, em, fo, ma, re},
#include "ops.h"
#undef OP
};

static const struct {
  const char *name;
  AttrKind kind;
} attrtab[AT_COUNT] = {
#define ATTR(name, kind, field) [AT_##name] = {#name, kind},
#include "ops.h"
#undef ATTR
};

const char *attr_name(AttrName a) { return attrtab[a].name; }
AttrKind attr_kind(AttrName a) { return attrtab[a].kind; }

/* ---- signatures ------------------------------------------------------------- */

/* sig = NAME "(" param ("," param)* ")"
 * param = IDENT | "[shape]" | "*" | IDENT "=" DEFAULT      (see ops.h) */
static bool parse_sig(OpKind op, OpSig *s, const char **err) {
  const char *p = optab[op].sig, *name = optab[op].name;
  size_t len = strlen(name);
  *s = (OpSig){0};
  if (optab[op].level != LV_FN || !p) {
    *err = "not a function (level LV_FN) with a sig";
    return false;
  }
  if (strncmp(p, name, len) != 0 || p[len] != '(') {
    *err = "the sig does not start with the op's name and '('";
    return false;
  }
  p += len + 1;
  bool kwonly = false;
  for (;;) {
    while (*p == ' ')
      p++;
    size_t n = strcspn(p, ",)");
    if (!p[n]) {
      *err = "no ')'";
      return false;
    }
    const char *eq = memchr(p, '=', n);
    size_t nlen = eq ? (size_t)(eq - p) : n;
    if (nlen == 1 && *p == '*') {
      kwonly = true;
    } else if (n == 7 && strncmp(p, "[shape]", 7) == 0) {
      if (s->nattr || s->shape_arg) {
        *err = "[shape] after an attribute";
        return false;
      }
      s->shape_arg = true;
    } else if (!eq) {
      if (s->nattr || s->shape_arg || kwonly) {
        *err = "a tensor after an attribute";
        return false;
      }
      s->ntensor++;
    } else {
      int a = 0;
      while (a < AT_COUNT && (strlen(attrtab[a].name) != nlen || strncmp(p, attrtab[a].name, nlen) != 0))
        a++;
      if (a == AT_COUNT) {
        *err = arena_printf("no ATTR row for '%.*s'", (int)nlen, p);
        return false;
      }
      if (s->nattr == MAXATTR) {
        *err = "more than MAXATTR attributes";
        return false;
      }
      s->attr[s->nattr].name = attrtab[a].name;
      s->attr[s->nattr].at = (AttrName)a;
      s->attr[s->nattr].kind = attrtab[a].kind;
      s->attr[s->nattr].dflt = arena_strndup(eq + 1, (size_t)(p + n - eq - 1));
      s->nattr++;
      if (!kwonly)
        s->npositional = s->nattr;
    }
    p += n;
    if (*p++ == ')')
      break;
  }
  if (*p) {
    *err = "text after ')'";
    return false;
  }
  if (s->ntensor != optab[op].arity) {
    *err = arena_printf("%d tensors in the sig, arity %d", s->ntensor, optab[op].arity);
    return false;
  }
  return true;
}

const OpSig *op_sig(OpKind op, const char **err) {
  /* outside the arena: the table outlives arena_reset() */
  static OpSig sigs[OP_COUNT];
  static const char *errs[OP_COUNT];
  static bool done[OP_COUNT];
  if (!done[op]) {
    OpSig s;
    const char *e = NULL;
    if (parse_sig(op, &s, &e)) {
      for (int i = 0; i < s.nattr; i++) {
        const char *d = s.attr[i].dflt;
        s.attr[i].dflt = strcpy(xmalloc(strlen(d) + 1), d);
      }
      sigs[op] = s;
    } else {
      errs[op] = strcpy(xmalloc(strlen(e) + 1), e);
    }
    done[op] = true;
  }
  if (err)
    *err = errs[op];
  return errs[op] ? NULL : &sigs[op];
}

Graph *new_graph(const SrcFile *f) {
  Graph *g = arena_alloc(sizeof *g);
  g->file = f;
  g->cap = 64;
  g->nodes = arena_alloc(sizeof(Node *) * (size_t)g->cap);
  return g;
}

Node *graph_add(Graph *g, OpKind op, Token *tok, Node *a, Node *b, Node *c, const Shape *given,
                const NodeAttr *at) {
  Node *n = arena_alloc(sizeof *n);
  n->op = op;
  if (at)
    n->at = *at;
  n->tok = tok;
  n->line = tok ? tok->line : 0;
  n->in[0] = a;
  n->in[1] = b;
  n->in[2] = c;
  n->type = TY_FLOAT;
  if (given)
    n->shape = *given;
  for (int i = 0; i < optab[op].arity; i++)
    if (!n->in[i])
      die("%s: input %d missing", optab[op].name, i);
  if (g->nnodes == g->cap) {
    Node **nn = arena_alloc(sizeof(Node *) * (size_t)g->cap * 2);
    memcpy(nn, g->nodes, sizeof(Node *) * (size_t)g->cap);
    g->nodes = nn;
    g->cap *= 2;
  }
  n->id = g->nnodes;
  g->nodes[g->nnodes++] = n;
  if (optab[op].shape)
    optab[op].shape(n);
  return n;
}

/* v[0..n-1] joined along axis by a balanced tree of binary concats (depth
 * log2 n: each element is copied at most that many times, none when layout.c
 * can write the parts in place). */
Node *graph_concat(Graph *g, Token *tok, Node **v, int n, int axis) {
  if (n == 1)
    return v[0];
  int mid = n / 2;
  Node *a = graph_concat(g, tok, v, mid, axis), *b = graph_concat(g, tok, v + mid, n - mid, axis);
  return graph_add(g, OP_concat, tok, a, b, NULL, NULL, &(NodeAttr){.axis = axis});
}

Node *graph_const(Graph *g, Token *tok, double v) {
  return graph_add(g, OP_const, tok, NULL, NULL, NULL, NULL, &(NodeAttr){.num = v});
}

Node *graph_find(Graph *g, const char *name) {
  for (int i = 0; i < g->nnodes; i++)
    if (g->nodes[i]->name && strcmp(g->nodes[i]->name, name) == 0)
      return g->nodes[i];
  return NULL;
}

long shape_numel(const Shape *s) {
  long n = 1;
  for (int i = 0; i < s->rank; i++)
    n *= s->dim[i];
  return n;
}

bool shape_eq(const Shape *a, const Shape *b) {
  if (a->rank != b->rank)
    return false;
  for (int i = 0; i < a->rank; i++)
    if (a->dim[i] != b->dim[i])
      return false;
  return true;
}

char *shape_str(const Shape *s) {
  char buf[MAXRANK * 24 + 4];
  int at = 0;
  buf[at++] = '[';
  for (int i = 0; i < s->rank; i++)
    at += snprintf(buf + at, sizeof buf - (size_t)at, i ? ", %d" : "%d", s->dim[i]);
  buf[at++] = ']';
  return arena_strndup(buf, (size_t)at);
}
