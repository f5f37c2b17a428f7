/* notation.c: an op's math, from the math column of ops.h.
 *
 * Consumes a node and a way to label its inputs; produces the formula the
 * template in its op's row spells, e.g. "%P0 ⊙ %P1" -> "(h − b) ⊙ dy".  The
 * one idea: the op table says how an op reads; the caller (`bpgen explain`,
 * and later emit.c's block comments) only says how a tensor is called.  The
 * escapes are listed in ops.h.
 */
#include "bpgen.h"

#include <stdlib.h>
#include <string.h>

/* A number as the lecture writes it: an integer, a fraction p/q when it is one
 * (q <= 4096) that six digits would not show exactly or in under four (1/32,
 * 1/31, 5/3, −3/2 stays −1.5), else six significant digits. */
const char *note_num(double v) {
  if (v == (long)v && v > -1e9 && v < 1e9)
    return arena_printf("%ld", (long)v);
  const char *dec = arena_printf("%.6g", v);
  int digits = 0;
  bool lead = true;
  for (const char *c = dec; *c && *c != 'e'; c++)
    if (*c >= '0' && *c <= '9' && !(lead && *c == '0')) {
      digits++;
      lead = false;
    }
  if (strtod(dec, NULL) == v && digits < 4)
    return dec;
  for (long q = 2; q <= 4096; q++) {
    double pq = v * (double)q;
    long pi = (long)(pq < 0 ? pq - 0.5 : pq + 0.5);
    if (pi != 0 && (double)pi / (double)q == v && labs(pi) < 1000000)
      return arena_printf("%ld/%ld", pi, q);
  }
  return dec;
}

static bool is_ident(const char *s) {
  if (!*s)
    return false;
  for (; *s; s++)
    if (!(*s == '_' || (*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z')))
      return false;
  return true;
}

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

const char *note_paren(const char *s) { return is_atom(s) ? s : arena_printf("(%s)", s); }

/* axis letters: b for the batch axis, then j, k, ... */
const char *note_axis(int axis) {
  static const char *const names[] = {"b", "j", "k", "l", "m", "n"};
  return axis < 0 ? "all" : names[axis < 6 ? axis : 5];
}

/* the axes `from` has and `to` (which broadcasts to it) has not, as in Σ_b or Σ_{b,j} */
static const char *sum_axes(const Shape *from, const Shape *to) {
  char buf[64] = "";
  int k = 0, lead = from->rank - to->rank;
  for (int i = 0; i < from->rank; i++)
    if (i < lead || (to->dim[i - lead] == 1 && from->dim[i] != 1)) {
      strcat(buf, k++ ? "," : "");
      strcat(buf, note_axis(i));
    }
  return k > 1 ? arena_printf("Σ_{%s}", buf) : arena_printf("Σ_%s", buf);
}

/* the rows a normalisation's statistics run down (every axis but the last of
 * a batchnorm), else dim 0 */
static long rows(const Node *x) {
  if (x->op == OP_batchnorm && x->shape.rank > 2)
    return shape_numel(&x->shape) / x->shape.dim[x->shape.rank - 1];
  return x->shape.dim[0];
}

/* input k of n, or NULL (and *err) when the template names one n lacks */
static Node *input(Node *n, char c, const char **err) {
  int k = c - '0';
  if (k < 0 || k >= MAXIN || k >= optab[n->op].arity || !n->in[k]) {
    *err = arena_printf("%s has no input %c", optab[n->op].name, c);
    return NULL;
  }
  return n->in[k];
}

char *note_fill(const char *tmpl, Node *n, bool forward, NoteLabel *label, void *ctx, const char **err) {
  Buf b = {0};
  *err = NULL;
  for (const char *p = tmpl; *p; p++) {
    if (*p != '%') {
      buf_printf(&b, "%c", *p);
      continue;
    }
    char e = *++p;
    if (e == '{') {   /* %{forward|derivative} */
      const char *bar = strchr(p, '|'), *end = bar ? strchr(bar, '}') : NULL;
      if (!end) {
        *err = "%{ without | and }";
        break;
      }
      const char *from = forward ? p + 1 : bar + 1, *to = forward ? bar : end;
      char *part = note_fill(arena_strndup(from, (size_t)(to - from)), n, forward, label, ctx, err);
      if (!part)
        break;
      buf_printf(&b, "%s", part);
      p = end;
      continue;
    }
    /* %o: the node itself; %d0, %do: the gradient of input 0, of the node (dC, d(expr)) */
    if (e == 'o' || e == 'd') {
      Node *t = n;
      if (e == 'd' && *++p != 'o' && !(t = input(n, *p, err)))
        break;
      const char *l = label(ctx, t);
      buf_printf(&b, "%s", e == 'o' ? l : is_ident(l) ? arena_printf("d%s", l) : arena_printf("d(%s)", l));
      continue;
    }
    Node *x = NULL;
    int k = 0;
    /* escapes with an input digit */
    if (e && strchr("PFTSNUMk", e)) {
      k = *++p - '0';
      if (!(x = input(n, *p, err)))
        break;
    } else if (e >= '0' && e <= '9') {
      if (!(x = input(n, e, err)))
        break;
      if (p[1] == '.' && p[2] >= '0' && p[2] <= '9') {   /* %0.1: input 1 of input 0 */
        if (!(x = input(x, p[2], err)))
          break;
        p += 2;
      }
      buf_printf(&b, "%s", label(ctx, x));
      continue;
    }
    switch (e) {
    case 'P': buf_printf(&b, "%s", note_paren(label(ctx, x))); break;
    case 'F': buf_printf(&b, "%s", forward ? note_paren(label(ctx, x)) : label(ctx, x)); break;
    case 'T': buf_printf(&b, "%s", (k == 0 ? n->transa : k == 1 && n->transb) ? "ᵀ" : ""); break;
    case 'S': buf_printf(&b, "%s", sum_axes(&x->shape, &n->shape)); break;
    case 'N':   /* cross-entropy over [..., K]: the mean is over the targets not ignored */
      if (n->op == OP_xent_bwd && x->shape.rank > 2)
        buf_printf(&b, "n(%s ≠ %d)", label(ctx, n->in[1]), n->ignore);
      else
        buf_printf(&b, "%ld", rows(x));
      break;
    case 'U':
      if (x->unbiased)
        buf_printf(&b, "%ld/%ld·", rows(x), rows(x) - 1);
      break;
    case 'M':
      if (!(x->op == OP_const && x->num == 1))
        buf_printf(&b, " · %s", label(ctx, x));
      break;
    case 'k':
      if (n->num != 1)
        buf_printf(&b, "%s·%s", note_num(n->num), note_paren(label(ctx, x)));
      else
        buf_printf(&b, "%s", label(ctx, x));
      break;
    case 'n': buf_printf(&b, "%s", note_num(n->num)); break;
    case 'x': buf_printf(&b, "%s", note_axis(n->axis)); break;
    case 'R': {   /* a slice's or pad's index: [:, 2:5] */
      int len = n->op == OP_pad ? n->in[0]->shape.dim[n->axis] : n->shape.dim[n->axis];
      buf_printf(&b, "[");
      for (int d = 0; d < n->axis; d++)
        buf_printf(&b, ":, ");
      buf_printf(&b, "%d:%d]", n->start, n->start + len);
      break;
    }
    case 's': buf_printf(&b, "%s", shape_str(&n->shape)); break;
    case 'E':
      if (forward)
        buf_printf(&b, "^%s", note_num(n->num));
      else if (n->num == 2)
        buf_printf(&b, "²");
      else
        buf_printf(&b, "^(%s)", note_num(n->num));
      break;
    case '%': buf_printf(&b, "%%"); break;
    default:
      *err = arena_printf("unknown escape '%%%c'", e ? e : '0');
    }
    if (*err)
      break;
  }
  char *s = buf_done(&b);
  return *err ? NULL : s;
}

char *note_math(Node *n, bool forward, NoteLabel *label, void *ctx) {
  const char *tmpl = optab[n->op].math, *err;
  if (!tmpl)
    die("%s has no math in ops.h", optab[n->op].name);
  char *s = note_fill(tmpl, n, forward, label, ctx, &err);
  if (!s)
    die("the math of %s in ops.h: %s", optab[n->op].name, err);
  return s;
}
