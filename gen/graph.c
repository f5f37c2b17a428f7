/* graph.c: the op table and the graph of nodes.
 *
 * optab[] is built from ops.h.  graph_add() is the one way nodes come into
 * being: it appends the node (so Graph.nodes is always in topological order)
 * and runs the op's shape rule at once, so a shape error points at the token
 * that made the node.
 */
#include "bpgen.h"

#include <stdio.h>
#include <string.h>

const OpInfo optab[OP_COUNT] = {
#define OP(name, ar, sh, gr, em) [OP_##name] = {#name, ar, sh, gr, em},
#include "ops.h"
#undef OP
};

Graph *new_graph(const SrcFile *f) {
  Graph *g = arena_alloc(sizeof *g);
  g->file = f;
  g->cap = 64;
  g->nodes = arena_alloc(sizeof(Node *) * (size_t)g->cap);
  return g;
}

Node *graph_add(Graph *g, OpKind op, Token *tok, Node *a, Node *b, Node *c, const Shape *given) {
  Node *n = arena_alloc(sizeof *n);
  n->op = op;
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
