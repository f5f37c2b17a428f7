/* layout.c: the state struct -- which member holds which node.
 *
 * Consumes the Graph and its Plan; produces the Layout: the fields in order
 * (params, then their grads in the same order, inputs, named tensors and
 * their grads, batchnorm statistics, then scratch and what normalisations save
 * for the backward), each node's member and its label for comments.
 *
 * Names are made here once: a spec name is a member as it is unless C would
 * read it as something else (a keyword, a macro of the emitted file's
 * headers, a leading '_'), and the members the emitter adds (t42, hp_xhat,
 * hp_sums, ...) are claimed before any of them is made, so no spec name can
 * collide with one.  The tensor table keeps the spec's names.
 */
#include "backend.h"
#include "bp_runtime.h"
#define BP_KERNELS_DECLARE_ONLY
#include "kernels.h"

#include <stdlib.h>
#include <string.h>

static bool name_taken(Layout *e, const char *s) { return strmap_get(&e->names, s, strlen(s)) != NULL; }

#include "c_names.h"   /* c_macro_names: build/gen, made by scripts/c_names.sh */

static int cmp_str(const void *a, const void *b) { return strcmp(*(const char *const *)a, *(const char *const *)b); }

/* A name the emitted C cannot use as a struct member as it is: a keyword (C99
 * to C23), a macro of the headers it includes or of bpgen's runtime, a name
 * reserved to the implementation (leading '_'), or a member the emitter adds
 * itself. */
bool emit_reserved_name(const char *s) {
  static const char *const kw[] = {
    "alignas", "alignof", "auto", "bad_index", "bn_momentum", "bool", "break", "calib_pass", "case", "char", "const",
    "constexpr", "continue", "default", "do", "double", "else", "enum", "extern", "false", "float", "for",
    "goto", "if", "inline", "int", "lean", "long", "nullptr", "register", "restrict", "return", "short",
    "signed", "sizeof", "static", "static_assert", "struct", "switch", "thread_local", "true", "typedef",
    "typeof", "typeof_unqual", "union", "unsigned", "void", "volatile", "while", NULL};
  if (s[0] == '_' || strncmp(s, "BP", 2) == 0)
    return true;
  for (int i = 0; kw[i]; i++)
    if (strcmp(kw[i], s) == 0)
      return true;
  return bsearch(&s, c_macro_names, sizeof c_macro_names / sizeof c_macro_names[0], sizeof c_macro_names[0],
                 cmp_str) != NULL;
}

/* A member name from base: non-identifier characters become '_'; a reserved
 * name gets a trailing '_' ("v" in front when it starts with '_'), a name
 * already used a numeric suffix. */
static const char *member_name(Layout *e, const char *base) {
  char *s = arena_strndup(base, strlen(base));
  for (char *p = s; *p; p++)
    if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || *p == '_' || (p != s && *p >= '0' && *p <= '9')))
      *p = '_';
  if (!*s)
    s = "t";
  if (emit_reserved_name(s))
    s = arena_printf(s[0] == '_' ? "v%s" : "%s_", s);
  const char *c = s;
  for (int k = 2; name_taken(e, c); k++)
    c = arena_printf("%s_%d", s, k);
  return c;
}

/* The suffixes of the members a normalisation saves (saved(), saved_field()). */
static const char *const saved_sfx[] = {"run_mean", "run_var", "xhat", "rstd", "mean", "cal_n",
                                        "cal_mean", "cal_m2", "acc1", "sums"};

/* A base name whose saved members (base_xhat, ...) are all free and usable as
 * they are. */
static const char *free_base(Layout *e, const char *name) {
  char *s = arena_printf("%s%s", name[0] == '_' ? "v" : "", name);
  for (char *p = s; *p; p++)
    if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || *p == '_' || (p != s && *p >= '0' && *p <= '9')))
      *p = '_';
  for (int k = 1;; k++) {
    const char *b = k == 1 ? s : arena_printf("%s_%d", s, k);
    bool ok = true;
    for (size_t i = 0; i < sizeof saved_sfx / sizeof saved_sfx[0] && ok; i++) {
      const char *m = arena_printf("%s_%s", b, saved_sfx[i]);
      ok = !name_taken(e, m) && !emit_reserved_name(m);
    }
    if (ok) {   /* claimed now, made later by saved_field */
      for (size_t i = 0; i < sizeof saved_sfx / sizeof saved_sfx[0]; i++)
        strmap_put(&e->names, arena_printf("%s_%s", b, saved_sfx[i]), (void *)saved_sfx);
      return b;
    }
  }
}

static Field *new_field(Layout *e, const char *cname, const char *tname, int kind, int elem, const Shape *shape,
                        int line, const char *note) {
  if (e->nfields == e->capf) {
    int cap = e->capf ? e->capf * 2 : 64;
    Field *nf = arena_alloc(sizeof(Field) * (size_t)cap);
    if (e->nfields)
      memcpy(nf, e->fields, sizeof(Field) * (size_t)e->nfields);
    e->fields = nf;
    e->capf = cap;
  }
  Field *f = &e->fields[e->nfields++];
  *f = (Field){.cname = cname, .tname = tname, .kind = kind, .elem = elem, .shape = *shape, .line = line,
               .note = note};
  strmap_put(&e->names, cname, (void *)cname);
  return f;
}

static const char *add_field(Layout *e, const char *base, const char *tname, int kind, int elem,
                             const Shape *shape, int line, const char *note) {
  return new_field(e, member_name(e, base), tname, kind, elem, shape, line, note)->cname;
}

/* The member base_sfx that free_base claimed for a normalisation's saved value. */
static void saved_field(Layout *e, const char *base, const char *sfx, const char *tname, int kind, int elem,
                        const Shape *shape, int line, const char *note) {
  const char *c = arena_printf("%s_%s", base, sfx);
  if (strmap_get(&e->names, c, strlen(c)) != (void *)saved_sfx)
    die("saved member %s was not claimed by free_base", c);
  new_field(e, c, tname, kind, elem, shape, line, note);
}

static const Shape scalar_shape = {0, {0}};

static Shape vec_shape(long n) {
  Shape s = {1, {(int)n}};
  return s;
}

/* The d<name> member of a param or named tensor n: the gradient node writes it
 * when it is a backward node of its own, else it is copied there at the end of
 * backward; a param nothing flows into is zeroed (unwritten). */
static const char *grad_field(Layout *e, Node *n) {
  const char *tn = arena_printf("d%s", n->name);
  const char *f = add_field(e, tn, tn, BP_GRAD, 0, &n->shape, n->line, NULL);
  if (!n->grad)
    e->fields[e->nfields - 1].unwritten = true;
  else if (n->grad->is_backward && !e->buf[n->grad->id])
    e->buf[n->grad->id] = f, e->label[n->grad->id] = tn;
  else
    e->copies[e->ncopies++] = (Copy){f, n->grad};
  return f;
}

Node *layout_logits(Graph *g) {
  for (int i = 0; i < g->nforward; i++)
    if (g->nodes[i]->op == OP_cross_entropy)
      return g->nodes[i]->in[0];
  return NULL;
}

/* true when the elements of x from `start` on along axis are one block of its
 * memory for every cut: every axis before `axis` has length 1 */
static bool leading_block(const Shape *x, int axis) {
  for (int d = 0; d < axis; d++)
    if (x->dim[d] != 1)
      return false;
  return true;
}

static const char *offset_buf(const char *b, long off) { return off ? arena_printf("%s + %ld", b, off) : b; }

/* elements per index of axis */
static long inner_of(const Shape *s, int axis) {
  long k = 1;
  for (int d = axis + 1; d < s->rank; d++)
    k *= s->dim[d];
  return k;
}

/* The part of concat c that input x is, when it is a block of c's memory
 * (x not broadcast, the axes before c's axis all 1): its element offset, or -1. */
static long concat_offset(Node *c, Node *x) {
  if (c->op != OP_concat || !leading_block(&c->shape, c->axis))
    return -1;
  for (int k = 0; k < 2; k++) {
    Shape part = c->shape;
    part.dim[c->axis] = c->in[k]->shape.dim[c->axis];
    if (c->in[k] == x && shape_eq(&part, &x->shape) && c->in[0] != c->in[1])
      return k == 0 ? 0 : shape_numel(&c->in[0]->shape);
  }
  return -1;
}

/* A node's member when it has none yet.  Besides a field of its own:
 * - a reshape shares its input's member (the same elements in the same order),
 *   and an input only a reshape reads writes straight into the reshape's;
 * - a slice of a block (W[l] of a stacked param) is a view into its input's
 *   member, "W + offset": no copy;
 * - a part of a concat that is a block of it (a layer's gradient of a stacked
 *   param, the joins of grad.c's sum_contribs) is written straight into the
 *   concat's member at its offset, directly or through reshapes only it reads,
 *   so the concat copies nothing.  Members are never reused for other nodes,
 *   so a view is never overwritten. */
static const char *scratch_buf(Layout *e, Plan *p, Node *n, const int *nread, Node *const *reader) {
  if (e->buf[n->id] || p->no_field[n->id])
    return e->buf[n->id];
  Node *r = nread[n->id] == 1 ? reader[n->id] : NULL;
  const char *b = NULL;
  long off;
  if (n->op == OP_reshape && e->buf[n->in[0]->id])
    b = e->buf[n->in[0]->id];
  else if (n->op == OP_slice && e->buf[n->in[0]->id] && leading_block(&n->in[0]->shape, n->axis))
    b = offset_buf(e->buf[n->in[0]->id], (long)n->start * inner_of(&n->in[0]->shape, n->axis));
  else if (r && r->op == OP_reshape && e->buf[r->id] && r->type == n->type)
    b = e->buf[r->id];
  else if (r && is_float(n) && (off = concat_offset(r, n)) >= 0 && scratch_buf(e, p, r, nread, reader))
    b = offset_buf(e->buf[r->id], off);
  else if (r && r->op == OP_reshape && r->type == n->type && nread[r->id] == 1 &&
           concat_offset(reader[r->id], r) >= 0 && scratch_buf(e, p, r, nread, reader))
    b = e->buf[r->id];
  if (!b)
    b = add_field(e, arena_printf("t%d", n->id), NULL, -1, is_float(n) ? 0 : 1, &n->shape, n->line,
                  optab[n->op].name);
  return e->buf[n->id] = b;
}

Layout *layout_build(Graph *g, Plan *p) {
  Layout *e = arena_alloc(sizeof *e);
  Node *logits = layout_logits(g);
  int nn = g->nnodes;
  e->buf = arena_alloc(sizeof(char *) * (size_t)nn);
  e->label = arena_alloc(sizeof(char *) * (size_t)nn);
  e->save = arena_alloc(sizeof(char *) * (size_t)nn);
  e->save2 = arena_alloc(sizeof(char *) * (size_t)nn);
  e->copies = arena_alloc(sizeof(Copy) * (size_t)(nn + 1));

  /* params, then their grads in the same order: two contiguous runs */
  for (int i = 0; i < g->nforward; i++) {
    Node *n = g->nodes[i];
    if (n->op == OP_param)
      e->buf[n->id] = add_field(e, n->name, n->name, BP_PARAM, 0, &n->shape, n->line, NULL);
  }
  for (int i = 0, k = 0; i < g->nforward; i++) {
    Node *n = g->nodes[i];
    if (n->op != OP_param)
      continue;
    const char *f = grad_field(e, n);   /* first: adding a field may move the array */
    e->fields[k++].grad = f;
  }
  /* inputs, then the named forward tensors and their grads */
  for (int i = 0; i < g->nforward; i++) {
    Node *n = g->nodes[i];
    if (n->op == OP_input)
      e->buf[n->id] = add_field(e, n->name, n->name, BP_INPUT, is_float(n) ? 0 : 1, &n->shape, n->line,
                                NULL);
  }
  for (int i = 0; i < g->nforward; i++) {
    Node *n = g->nodes[i];
    if (n->op == OP_input || n->op == OP_param)
      continue;
    const char *name = n->name;
    if (!name && n == logits && !graph_find(g, "logits"))
      name = "logits";   /* the trainer samples from it */
    if (!name)
      continue;
    e->buf[n->id] = add_field(e, name, name, BP_ACT, is_float(n) ? 0 : 1, &n->shape, n->line, NULL);
  }
  for (int i = 0; i < g->nforward; i++) {
    Node *n = g->nodes[i];
    if (n->op == OP_input || n->op == OP_param || !n->name || !n->grad || !is_float(n))
      continue;
    grad_field(e, n);
  }
  /* batchnorm statistics for inference */
  for (int i = 0; i < g->nforward; i++) {
    Node *n = g->nodes[i];
    if (n->op != OP_batchnorm)
      continue;
    /* an unnamed one's table names cannot be a spec name's: '#' is no identifier */
    const char *tbase = n->name ? n->name : arena_printf("batchnorm#%d", n->id);
    e->save[n->id] = free_base(e, n->name ? n->name : arena_printf("bn%d", n->id));
    const Shape *gs = &n->in[1]->shape;
    saved_field(e, e->save[n->id], "run_mean", arena_printf("%s.mean", tbase), BP_STAT, 0, gs, n->line, NULL);
    saved_field(e, e->save[n->id], "run_var", arena_printf("%s.var", tbase), BP_STAT, 0, gs, n->line, NULL);
  }
  /* a reshape is the same elements in the same order: it shares its input's
   * member, or an input only it reads writes straight into the reshape's */
  int *nread = arena_alloc(sizeof(int) * (size_t)nn);
  Node **reader = arena_alloc(sizeof(Node *) * (size_t)nn);
  for (int i = 0; i < nn; i++)
    for (int k = 0; k < optab[g->nodes[i]->op].arity; k++) {
      Node *in = g->nodes[i]->in[k];
      nread[in->id]++, reader[in->id] = g->nodes[i];
    }
  if (g->loss)
    nread[g->loss->id]++;
  /* scratch: every other node, and what normalisations save for backward */
  for (int i = 0; i < nn; i++) {
    Node *n = g->nodes[i];
    if (!e->label[n->id])   /* constants read as their value in the comments */
      e->label[n->id] = n->name ? n->name : n->op == OP_const ? arena_printf("%g", n->num) : arena_printf("t%d", n->id);
    scratch_buf(e, p, n, nread, reader);
    if (n->op == OP_cross_entropy) {   /* save[]: the probs member itself; save2[]: the safe targets */
      const char *b = n->name ? n->name : arena_printf("t%d", n->id);
      e->save[n->id] = add_field(e, arena_printf("%s_probs", b), NULL, -1, 0, &n->in[0]->shape, n->line,
                                 "softmax of the logits, for backward");
      e->save2[n->id] = add_field(e, arena_printf("%s_ysafe", b), NULL, -1, 1, &n->in[1]->shape, n->line,
                                  "the targets, ignored ones as 0 (the kernel indexes with them)");
    }
    if (n->op == OP_batchnorm || n->op == OP_layernorm) {
      if (!e->save[n->id])
        e->save[n->id] = free_base(e, n->name ? n->name : arena_printf("ln%d", n->id));
      long D = n->shape.dim[n->shape.rank - 1], R = numel(n) / (D ? D : 1);
      const char *b = e->save[n->id];
      Shape sv = vec_shape(n->op == OP_batchnorm ? D : R);
      saved_field(e, b, "xhat", NULL, -1, 0, &n->shape, n->line, "normalised input x̂");
      saved_field(e, b, "rstd", NULL, -1, 0, &sv, n->line, "1/sqrt(var + eps)");
      if (n->op == OP_batchnorm) {
        Shape dv = vec_shape(D);
        saved_field(e, b, "mean", NULL, -1, 0, &sv, n->line, "batch mean");
        saved_field(e, b, "acc1", NULL, -1, 2, &dv, n->line, "column sums");
        Shape d4 = vec_shape(6 * D);
        saved_field(e, b, "sums", NULL, -1, 2, &d4, n->line, "column sums of bp_bn_fwd/bwd");
        saved_field(e, b, "cal_n", NULL, -1, 2, &scalar_shape, n->line, "calibration: rows");
        saved_field(e, b, "cal_mean", NULL, -1, 2, &dv, n->line, "calibration: mean");
        saved_field(e, b, "cal_m2", NULL, -1, 2, &dv, n->line, "calibration: sum of squared deviations");
      }
    }
  }
  for (int i = 0; i < p->nlayers; i++) {
    Layer *ly = p->layers[i];
    Shape ws = vec_shape((long)BP_BNLAYER_WS(ly->N, ly->K, ly->D, ly->V, ly->dc, ly->groups));
    ly->ws = arena_printf("s->%s", add_field(e, arena_printf("%s_ws", e->save[ly->bn->id]), NULL, -1, 0, &ws,
                                              ly->bn->line, "the layer's blocked x̂, and block scratch"));
  }
  StrMap tnames = {0};   /* the parser keeps spec names and d<name> apart */
  for (int i = 0; i < e->nfields; i++) {
    const char *t = e->fields[i].tname;
    if (t && strmap_get(&tnames, t, strlen(t)))
      die("two tensors named %s in the table", t);
    if (t)
      strmap_put(&tnames, t, (void *)t);
  }
  return e;
}
