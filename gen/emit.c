/* emit.c: the printer.  Plan (plan.c) + Layout (layout.c) -> one C99
 * translation unit: a state struct, forward, backward, the update step, an
 * inference forward, batchnorm calibration, and the BpModel table of
 * runtime/bp_runtime.h.
 *
 * The one idea: every step of the plan becomes one straight-line block with
 * its shapes baked in as constants, writing members of the state struct.
 * Params, inputs and named tensors keep their spec names (s->W1); the
 * gradient node grad.c made for a param or a named tensor writes its "d"
 * member (s->dW1); every other node a scratch member (s->t42).  Each block
 * opens with a #line pointing at the spec line whose rule made it and a
 * comment with the math, so the backward() function reads like the lecture's
 * backward pass.  A step kind has one printer: ST_NODE the op's emit_* of
 * ops.h, the fused kinds emit_gemm_bias, bn_forward, emit_bn_group and
 * emit_layer.
 *
 * Numerics: elementwise math runs in `real` (float or double per --dtype);
 * every reduction (sum, mean, softmax and cross-entropy denominators,
 * batchnorm statistics, sumto, the backward sums) accumulates in double and
 * rounds once.  Matmuls call the kernels of runtime/kernels.h.
 */
#include "backend.h"
#include "bp_runtime.h"
#define BP_KERNELS_DECLARE_ONLY
#include "kernels.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the printer's state -------------------------------------------------------- */
struct Emit {
  Graph *g;
  const EmitOptions *opt;
  Plan *plan;
  Buf *b;                /* body being written */
  const char *sfx;       /* "f" for float math functions, "" for double */
  /* the Layout's (layout.c), for the printers */
  const char **buf;      /* per node id: member holding the node's value */
  const char **label;    /* per node id: name used in comments */
  const char **save;     /* per node id (batchnorm, layernorm, cross_entropy): base of saved members */
  const char **save2;    /* per node id (cross_entropy): its safe-targets member */
  Field *fields;
  int nfields;
  Copy *copies;
  int ncopies;
  bool eval;             /* writing forward_eval: batchnorm from stored statistics */
  int calib_passes;      /* fn_calib: batchnorm calibration passes (the deepest chain) */
  const char **lines;    /* spec source lines, 1-based */
  int nlines;
};

static void L(Emit *e, const char *fmt, ...) PRINTF(2, 3);
static void L(Emit *e, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  buf_printf(e->b, "  ");
  buf_vprintf(e->b, fmt, ap);
  buf_printf(e->b, "\n");
  va_end(ap);
}


/* ---- small text helpers ----------------------------------------------------------- */

/* A literal of the real type: "0.1f" for f32, "0.10000000000000001" for f64. */
static const char *lit(Emit *e, double v) {
  char buf[64];
  if (v != v)
    return "(real)NAN";
  if (v > 1e308 || v < -1e308)
    return v > 0 ? "(real)INFINITY" : "(-(real)INFINITY)";
  snprintf(buf, sizeof buf, e->opt->dtype == DT_F32 ? "%.9g" : "%.17g", v);
  if (!strpbrk(buf, ".e"))
    strcat(buf, ".0");
  if (e->opt->dtype == DT_F32)
    strcat(buf, "f");
  return arena_strndup(buf, strlen(buf));
}

/* A double literal. */
static const char *dlit(double v) {
  char buf[64];
  snprintf(buf, sizeof buf, "%.17g", v);
  if (!strpbrk(buf, ".en"))
    strcat(buf, ".0");
  return arena_strndup(buf, strlen(buf));
}

/* Name of a math function in the real type: fn(e, "exp") is expf or exp. */
static const char *fn(Emit *e, const char *name) {
  return arena_printf("%s%s", name, e->sfx);
}

/* A kernel of runtime/kernels.h in the real type: kern(e, "tanh") is
 * bp_tanh_f32 or bp_tanh_f64. */
static const char *kern(Emit *e, const char *name) {
  return arena_printf("bp_%s_%s", name, e->opt->dtype == DT_F32 ? "f32" : "f64");
}

static const char *V(Emit *e, Node *n) {
  const char *b = e->buf[n->id];
  if (!b)
    die("node %d (%s) has no buffer", n->id, optab[n->op].name);
  return arena_printf(strchr(b, ' ') ? "(s->%s)" : "s->%s", b);   /* a view: "W + 4096" */
}

static const char *lab(Emit *e, Node *n) { return e->label[n->id]; }


/* "i0*64 + i1": the linear index of a tensor of shape `in` read broadcast
 * against loop variables i0.. over shape `o` (shapes aligned on the right,
 * size-1 and missing dims contribute nothing). */
static const char *bidx(const Shape *o, const Shape *in) {
  Buf b = {0};
  long stride = 1;
  int terms = 0;
  char *parts[MAXRANK];
  int np = 0;
  for (int d = in->rank - 1; d >= 0; d--) {
    int od = d + o->rank - in->rank;
    if (in->dim[d] != 1 && od >= 0) {
      parts[np++] = stride == 1 ? arena_printf("i%d", od) : arena_printf("i%d*%ld", od, stride);
      terms++;
    }
    stride *= in->dim[d];
  }
  if (!terms)
    return "0";
  for (int k = np - 1; k >= 0; k--)
    buf_printf(&b, "%s%s", k == np - 1 ? "" : " + ", parts[k]);
  return buf_done(&b);
}

static void loops_open(Emit *e, const Shape *o) {
  for (int d = 0; d < o->rank; d++)
    L(e, "%*sfor (int i%d = 0; i%d < %d; i%d++)", 2 * d, "", d, d, o->dim[d], d);
}

/* Splits a shape at axis (-1: all) into outer x len x inner. */
static void split_axis(const Shape *s, int axis, long *outer, long *len, long *inner) {
  *outer = 1, *len = 1, *inner = 1;
  if (axis < 0) {
    *len = shape_numel(s);
    return;
  }
  if (axis >= s->rank)
    die("axis %d out of rank %d", axis, s->rank);
  for (int d = 0; d < s->rank; d++)
    *(d < axis ? outer : d == axis ? len : inner) *= s->dim[d];
}

/* The index "o*81 + j*3 + k" of element j along the axis (mode 1), of the
 * first element (mode 2: j = 0), or of the reduced result (mode 0: no j);
 * terms of unit loops are left out. */
static const char *lin3(long outer, long len, long inner, int mode) {
  Buf b = {0};
  if (outer > 1)
    buf_printf(&b, "o*%ld", (mode ? len : 1) * inner);
  if (mode == 1 && len > 1) {
    if (b.len)
      buf_printf(&b, " + ");
    if (inner == 1)
      buf_printf(&b, "j");
    else
      buf_printf(&b, "j*%ld", inner);
  }
  if (inner > 1)
    buf_printf(&b, "%sk", b.len ? " + " : "");
  if (!b.len)
    buf_printf(&b, "0");
  return buf_done(&b);
}

/* Opens the outer/inner loops of a reduction along an axis. */
static void axis_loops(Emit *e, long outer, long inner) {
  if (outer > 1)
    L(e, "for (int o = 0; o < %ld; o++)", outer);
  if (inner > 1)
    L(e, "for (int k = 0; k < %ld; k++)", inner);
}

/* Replaces @0/@1/@2 by args[0..2] in a C expression template. */
static const char *subst(const char *t, const char *a0, const char *a1, const char *a2) {
  Buf b = {0};
  for (const char *p = t; *p; p++) {
    if (p[0] == '@' && p[1] >= '0' && p[1] <= '2') {
      const char *a = p[1] == '0' ? a0 : p[1] == '1' ? a1 : a2;
      buf_printf(&b, "%s", a);
      p++;
    } else {
      buf_printf(&b, "%c", *p);
    }
  }
  return buf_done(&b);
}

/* The spec's text of a line, trimmed, safe inside a comment, cut to an
 * excerpt: every backward block quotes its forward line, so a long line
 * quoted whole would make the output quadratic in the spec. */
enum { EXCERPT = 72 };
static const char *src_line(Emit *e, int line) {
  if (line < 1 || line > e->nlines)
    return "";
  const char *p = e->lines[line];
  while (*p == ' ' || *p == '\t')
    p++;
  const char *q = p;
  while (*q && *q != '\n' && *q != '\r' && *q != '#' && q - p <= EXCERPT)
    q++;
  while (q > p && (q[-1] == ' ' || q[-1] == '\t'))
    q--;
  bool cut = q - p > EXCERPT;
  if (cut)   /* at a character's first byte */
    for (q = p + EXCERPT; q > p && ((unsigned char)*q & 0xC0) == 0x80; q--)
      ;
  Buf b = {0};
  for (const char *c = p; c < q; c++) {
    if (c[0] == '*' && c[1] == '/')
      buf_printf(&b, "* ");
    else if (c[0] == '/' && c[1] == '*')
      buf_printf(&b, "/ ");
    else if ((unsigned char)*c < 32)
      buf_printf(&b, " ");
    else
      buf_printf(&b, "%c", *c);
  }
  if (cut)
    buf_printf(&b, " ...");
  return buf_done(&b);
}

/* The spec's path as the body of a C string literal (#line): quotes and
 * backslashes escaped, '?' too (no trigraph can end the literal early),
 * control characters as '_'. */
static const char *spec_cstr(Emit *e) {
  const char *name = e->g->file ? e->g->file->name : "spec";
  Buf b = {0};
  for (const char *p = name; *p; p++) {
    if (*p == '"' || *p == '\\' || *p == '?')
      buf_printf(&b, "\\%c", *p);
    else if ((unsigned char)*p < 32 || *p == 127)
      buf_printf(&b, "_");
    else
      buf_printf(&b, "%c", *p);
  }
  return buf_done(&b);
}

/* The spec's path inside a comment: no star-slash can close it, no slash-star
 * open another. */
static const char *spec_comment(Emit *e) {
  const char *name = e->g->file ? e->g->file->name : "spec";
  Buf b = {0};
  for (const char *p = name; *p; p++) {
    if ((unsigned char)*p < 32 || *p == 127)
      buf_printf(&b, "_");
    else if ((p[0] == '*' && p[1] == '/') || (p[0] == '/' && p[1] == '*'))
      buf_printf(&b, "%c ", *p);
    else
      buf_printf(&b, "%c", *p);
  }
  return buf_done(&b);
}

/* Opens a node's block: #line at its spec line, then the math as a comment. */
static void head(Emit *e, Node *n, const char *fmt, ...) PRINTF(3, 4);
static void head(Emit *e, Node *n, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  Buf m = {0};
  buf_vprintf(&m, fmt, ap);
  va_end(ap);
  const char *math = buf_done(&m);
  if (n->line > 0)
    buf_printf(e->b, "#line %d \"%s\"\n", n->line, spec_cstr(e));
  if (n->is_backward && n->fwd)
    L(e, "/* %s = %s   %s   (from line %d: %s) */", lab(e, n), math, shape_str(&n->shape),
      n->fwd->line, src_line(e, n->fwd->line));
  else
    L(e, "/* %s = %s   %s */", lab(e, n), math, shape_str(&n->shape));
}

/* A node's math from its op's row of ops.h: the notation `bpgen explain`
 * prints, over the labels the emitted comments use; each block stands alone,
 * so in the table's standalone form (a derivative's: "emb viewed as [32, 30]",
 * "bndiff²"). */
static const char *emit_label(void *ctx, Node *n) { return ((Emit *)ctx)->label[n->id]; }
static const char *math(Emit *e, Node *n) { return note_math(n, false, emit_label, e); }

/* head() with the node's math from the table, and a note after it ("" or "  (...)") */
static void head_math(Emit *e, Node *n, const char *note) { head(e, n, "%s%s", math(e, n), note); }

/* ---- elementwise ------------------------------------------------------------------ */

/* out = expr(in0, in1, in2) elementwise with broadcasting; t is a template
 * over @0 @1 @2 (the inputs' elements). */
static void elementwise(Emit *e, Node *n, int nin, const char *t) {
  const char *idx[3] = {"", "", ""};
  long ne = numel(n);
  bool flat = true;
  for (int k = 0; k < nin; k++)
    if (!shape_eq(&n->in[k]->shape, &n->shape) && numel(n->in[k]) != 1)
      flat = false;
  if (ne == 1) {
    for (int k = 0; k < nin; k++)
      idx[k] = arena_printf("%s[0]", V(e, n->in[k]));
    L(e, "%s[0] = %s;", V(e, n), subst(t, idx[0], idx[1], idx[2]));
  } else if (flat) {
    for (int k = 0; k < nin; k++)
      idx[k] = arena_printf("%s[%s]", V(e, n->in[k]), numel(n->in[k]) == 1 ? "0" : "i");
    L(e, "for (int i = 0; i < %ld; i++)", ne);
    L(e, "  %s[i] = %s;", V(e, n), subst(t, idx[0], idx[1], idx[2]));
  } else {
    for (int k = 0; k < nin; k++)
      idx[k] = arena_printf("%s[%s]", V(e, n->in[k]), bidx(&n->shape, &n->in[k]->shape));
    loops_open(e, &n->shape);
    L(e, "%*s%s[%s] = %s;", 2 * n->shape.rank, "", V(e, n), bidx(&n->shape, &n->shape),
      subst(t, idx[0], idx[1], idx[2]));
  }
}

/* ---- the JIT's gcc-compiled loops (templates/model_kernels.h) ------------------- */

/* "(const int[]){32, 64}": the dims of o */
static const char *dims_lit(const Shape *o) {
  Buf b = {0};
  buf_printf(&b, "(const int[]){");
  for (int d = 0; d < o->rank; d++)
    buf_printf(&b, "%s%d", d ? ", " : "", o->dim[d]);
  buf_printf(&b, "}");
  return buf_done(&b);
}

/* the strides of `in` read broadcast against o, per dim of o (0: broadcast) */
static const char *strides_lit(const Shape *o, const Shape *in) {
  long st[MAXRANK] = {0}, s = 1;
  for (int d = in->rank - 1; d >= 0; d--) {
    int od = d + o->rank - in->rank;
    if (od >= 0)
      st[od] = in->dim[d] == 1 ? 0 : s;
    s *= in->dim[d];
  }
  Buf b = {0};
  buf_printf(&b, "(const int[]){");
  for (int d = 0; d < o->rank; d++)
    buf_printf(&b, "%s%ld", d ? ", " : "", st[d]);
  buf_printf(&b, "}");
  return buf_done(&b);
}

static const char *bpm(Emit *e, const char *name) {
  return arena_printf("bpm_%s_%s", name, e->opt->dtype == DT_F32 ? "f32" : "f64");
}

void emit_input(Emit *e, Node *n) { (void)e, (void)n; }
void emit_param(Emit *e, Node *n) { (void)e, (void)n; }

void emit_const(Emit *e, Node *n) {
  if (n->name || e->label[n->id][0] == 'd')
    head_math(e, n, "");
  else
    head(e, n, "the constant");
  L(e, "%s[0] = %s;", V(e, n), lit(e, n->num));
}

void emit_add(Emit *e, Node *n) {
  head_math(e, n, "");
  elementwise(e, n, 2, "@0 + @1");
}

void emit_sub(Emit *e, Node *n) {
  head_math(e, n, "");
  elementwise(e, n, 2, "@0 - @1");
}

void emit_mul(Emit *e, Node *n) {
  head_math(e, n, "");
  elementwise(e, n, 2, "@0 * @1");
}

void emit_div(Emit *e, Node *n) {
  head_math(e, n, "");
  elementwise(e, n, 2, "@0 / @1");
}

void emit_pow(Emit *e, Node *n) {
  head_math(e, n, "");
  double p = n->num;
  const char *t;
  if (p == 1)
    t = "@0";
  else if (p == 2)
    t = "@0 * @0";
  else if (p == -1)
    t = arena_printf("%s / @0", lit(e, 1));
  else if (p == 0.5)
    t = arena_printf("%s(@0)", fn(e, "sqrt"));
  else if (p == -0.5)
    t = arena_printf("%s / %s(@0)", lit(e, 1), fn(e, "sqrt"));
  else
    t = arena_printf("%s(@0, %s)", fn(e, "pow"), lit(e, p));
  elementwise(e, n, 1, t);
}

void emit_neg(Emit *e, Node *n) {
  head_math(e, n, "");
  elementwise(e, n, 1, "-@0");
}

static void unary_fn(Emit *e, Node *n, const char *f) {
  head_math(e, n, "");
  elementwise(e, n, 1, arena_printf("%s(@0)", fn(e, f)));
}

/* y = f(x) over the array by a kernel (gcc-compiled, vectorised) */
static void unary_kernel(Emit *e, Node *n, const char *f) {
  head_math(e, n, "");
  L(e, "%s(%ld, %s, %s);", kern(e, f), numel(n), V(e, n->in[0]), V(e, n));
}

void emit_exp(Emit *e, Node *n) { unary_kernel(e, n, "exp"); }
void emit_log(Emit *e, Node *n) { unary_fn(e, n, "log"); }
void emit_tanh(Emit *e, Node *n) { unary_kernel(e, n, "tanh"); }
void emit_sqrt(Emit *e, Node *n) { unary_fn(e, n, "sqrt"); }

void emit_relu(Emit *e, Node *n) {
  head_math(e, n, "");
  elementwise(e, n, 1, arena_printf("@0 > 0 ? @0 : %s", lit(e, 0)));
}

void emit_sigmoid(Emit *e, Node *n) {
  head_math(e, n, "");
  elementwise(e, n, 1, arena_printf("%s / (%s + %s(-@0))", lit(e, 1), lit(e, 1), fn(e, "exp")));
}

void emit_tanh_bwd(Emit *e, Node *n) {
  head_math(e, n, "");
  L(e, "%s(%ld, %s, %s, %s, 0);", kern(e, "tanh_bwd"), numel(n), V(e, n->in[0]), V(e, n->in[1]), V(e, n));
}

void emit_relu_bwd(Emit *e, Node *n) {
  head_math(e, n, "");
  elementwise(e, n, 2, arena_printf("@0 > 0 ? @1 : %s", lit(e, 0)));
}

/* GPT-2's GELU, the tanh form: a kernel in both builds (libm's tanhf per
 * element was half of the transformer's step, in the gcc file too) */
void emit_gelu(Emit *e, Node *n) {
  head_math(e, n, "  = ½x(1 + tanh(√(2/π)(x + 0.044715x³)))");
  L(e, "%s(%ld, %s, %s);", kern(e, "gelu"), numel(n), V(e, n->in[0]), V(e, n));
}

/* gelu'(x) ⊙ dy: t = tanh(c(x + a x³)), ½(1 + t) + ½x(1 − t²)·c(1 + 3a x²)
 * (x and dy have the output's shape) */
void emit_gelu_bwd(Emit *e, Node *n) {
  head_math(e, n, "");
  L(e, "%s(%ld, %s, %s, %s);", kern(e, "gelu_bwd"), numel(n), V(e, n->in[0]), V(e, n->in[1]), V(e, n));
}

void emit_sigmoid_bwd(Emit *e, Node *n) {
  head_math(e, n, "");
  elementwise(e, n, 2, arena_printf("@0 * (%s - @0) * @1", lit(e, 1)));
}

/* broadcast dy up to n->shape, times num */
void emit_expand(Emit *e, Node *n) {
  head_math(e, n, "");
  if (n->num == 1)
    elementwise(e, n, 1, "@0");
  else
    elementwise(e, n, 1, arena_printf("%s * @0", lit(e, n->num)));
}

/* Appends " + i<d>*stride" (just "i<d>" for stride 1) to an index. */
static void term(Buf *b, int d, long stride) {
  buf_printf(b, "%si%d", b->len ? " + " : "", d);
  if (stride != 1)
    buf_printf(b, "*%ld", stride);
}

/* sum dy down to n->shape: the dims broadcasting stretched are summed */
void emit_sumto(Emit *e, Node *n) {
  Node *x = n->in[0];
  const Shape *I = &x->shape, *O = &n->shape;
  head_math(e, n, "");
  if (shape_eq(I, O)) {
    L(e, "memcpy(%s, %s, sizeof %s);", V(e, n), V(e, x), V(e, n));
    return;
  }
  /* reduced dims all leading (a bias gradient) or all trailing: one kernel */
  {
    int first_kept = I->rank, last_red = -1, last_kept = -1, first_red = I->rank;
    for (int d = 0; d < I->rank; d++) {
      int od = d - (I->rank - O->rank);
      bool r = od < 0 || (O->dim[od] == 1 && I->dim[d] != 1);
      if (I->dim[d] == 1)
        continue;
      if (r)
        last_red = d, first_red = first_red < d ? first_red : d;
      else
        last_kept = d, first_kept = first_kept < d ? first_kept : d;
    }
    long no = numel(n), ni = numel(x);
    if (last_red < first_kept) {
      L(e, "%s(%ld, %ld, %s, %s, 0);", kern(e, "colsum"), ni / no, no, V(e, x), V(e, n));
      return;
    }
    if (last_kept < first_red) {
      L(e, "%s(%ld, %ld, %s, %s, 0);", kern(e, "rowsum"), no, ni / no, V(e, x), V(e, n));
      return;
    }
  }
  bool red[MAXRANK];
  long istride[MAXRANK], ostride[MAXRANK];
  long st = 1;
  for (int d = I->rank - 1; d >= 0; d--)
    istride[d] = st, st *= I->dim[d];
  st = 1;
  for (int d = O->rank - 1; d >= 0; d--)
    ostride[d] = st, st *= O->dim[d];
  for (int d = 0; d < I->rank; d++) {
    int od = d - (I->rank - O->rank);
    red[d] = od < 0 || (O->dim[od] == 1 && I->dim[d] != 1);
  }
  /* loops over the kept dims outside, the summed dims inside */
  Buf ii = {0}, oi = {0};
  int depth = 0;
  for (int d = 0; d < I->rank; d++) {
    if (red[d] || I->dim[d] == 1)
      continue;
    L(e, "%*sfor (int i%d = 0; i%d < %d; i%d++)", 2 * depth++, "", d, d, I->dim[d], d);
    term(&ii, d, istride[d]);
    term(&oi, d, ostride[d - (I->rank - O->rank)]);
  }
  L(e, "%*s{", 2 * depth, "");
  L(e, "%*s  double acc = 0;", 2 * depth, "");
  int rd = depth + 1;
  for (int d = 0; d < I->rank; d++) {
    if (!red[d])
      continue;
    L(e, "%*sfor (int i%d = 0; i%d < %d; i%d++)", 2 * rd++, "", d, d, I->dim[d], d);
    term(&ii, d, istride[d]);
  }
  const char *is = ii.len ? buf_done(&ii) : "0", *os = oi.len ? buf_done(&oi) : "0";
  L(e, "%*sacc += %s[%s];", 2 * rd, "", V(e, x), is);
  L(e, "%*s  %s[%s] = (real)acc;", 2 * depth, "", V(e, n), os);
  L(e, "%*s}", 2 * depth, "");
}

/* ---- shape ops ---------------------------------------------------------------------- */

void emit_reshape(Emit *e, Node *n) {
  if (strcmp(V(e, n), V(e, n->in[0])) == 0) {   /* layout.c gave both one member */
    head_math(e, n, "  (the same memory)");
    return;
  }
  head_math(e, n, "");
  L(e, "memcpy(%s, %s, sizeof %s);", V(e, n), V(e, n->in[0]), V(e, n));
}

/* out[p, t, k] = X[p, t - k], fill before the first position */
void emit_context(Emit *e, Node *n) {
  Node *x = n->in[0];
  long T = x->shape.dim[x->shape.rank - 1], P = numel(x) / (T ? T : 1), K = (long)n->num;
  head_math(e, n, arena_printf("  (positions t, t−1, ..., t−%ld; %d before the first)", K - 1, n->fill));
  L(e, "for (int p = 0; p < %ld; p++)", P);
  L(e, "  for (int t = 0; t < %ld; t++)", T);
  L(e, "    for (int k = 0; k < %ld; k++)", K);
  L(e, "      %s[((size_t)p * %ld + t) * %ld + k] = t - k >= 0 ? %s[(size_t)p * %ld + t - k] : %d;", V(e, n), T, K,
    V(e, x), T, n->fill);
}

/* row i of each [T, T]: softmax over columns 0..i, 0 after, by a kernel in
 * both builds (vector exp for f32; libm's exp per element was most of the
 * attention's own time); ST_CAUSAL_SOFTMAX: the x·c it reads (scale c, x the
 * product) folded in, aux that node */
static void causal_softmax(Emit *e, Node *n, Node *aux, double scale) {
  long T = n->shape.dim[n->shape.rank - 1];
  if (aux)
    head(e, n, "causal_softmax(%s)  (the scaling in the kernel: no pass of its own)", math(e, aux));
  else
    head_math(e, n, "");
  L(e, "%s(%ld, %ld, %s, %s, %s);", kern(e, "causal_softmax"), numel(n) / (T ? T : 1), T, dlit(scale),
    V(e, aux ? aux->in[aux->in[0]->op == OP_const && aux->op == OP_mul ? 1 : 0] : n->in[0]), V(e, n));
}
void emit_causal_softmax(Emit *e, Node *n) { causal_softmax(e, n, NULL, 1); }

/* ST_SCORES: n = causal_softmax(m / c) (t = m / c, or NULL: of m itself), m =
 * q · kᵀ by heads: the product made in n's memory, the softmax in place;
 * ST_SCORES_BWD: n = sb / c (or sb), sb the causal softmax_bwd whose dy is m
 * = dy · vᵀ: the same in n's memory, m written too when the user sees it
 * (not when the state is lean) */
static void scores(Emit *e, Node *n, Node *t, Node *m, double scale, bool bwd, bool full) {
  const Shape *o = &m->shape;
  long T = o->dim[o->rank - 1], D = m->in[0]->shape.dim[o->rank - 1], nb = T ? numel(m) / (T * T) : 0;
  if (!bwd) {
    head(e, n, "causal_softmax(%s)  (%s = %s made in %s's rows, the softmax in place: not stored)",
         t ? math(e, t) : lab(e, m), lab(e, m), math(e, m), lab(e, n));
    L(e, "%s(%ld, %ld, %ld, %s, %s, %s, %s);", kern(e, "causal_scores"), nb, T, D, V(e, m->in[0]), V(e, m->in[1]),
      dlit(scale), V(e, n));
    return;
  }
  const char *sc = n == t ? "" : n->op == OP_div ? arena_printf(" / %g", 1 / scale) : arena_printf(" · %g", scale);
  head(e, n, "%s%s  (%s = %s made in %s's rows%s, the softmax backward in place)", math(e, t), sc, lab(e, m),
       math(e, m), lab(e, n), full ? " unless it is seen" : "");
  L(e, "%s(%ld, %ld, %ld, %s, %s, %s, %s, %s, %s);", kern(e, "causal_scores_bwd"), nb, T, D, V(e, m->in[0]),
    V(e, m->in[1]), V(e, t->in[0]), dlit(scale),
    full ? arena_printf("s->lean ? NULL : %s", V(e, m)) : "NULL", V(e, n));
}

/* x viewed as [outer, len, inner] around n->axis: a slice copies a run of
 * `cut` rows of `inner` elements out of (slice) or into (pad) each outer block */
static void cut_copy(Emit *e, Node *n, Node *x, bool into) {
  long outer, len, inner, cut = into ? x->shape.dim[n->axis] : n->shape.dim[n->axis];
  split_axis(into ? &n->shape : &x->shape, n->axis, &outer, &len, &inner);
  const char *dst = V(e, n), *src = V(e, x);
  long run = cut * inner, big = len * inner, off = (long)n->start * inner;
  if (outer == 1) {
    L(e, "memcpy(%s + %ld, %s + %ld, %ld * sizeof *%s);", dst, into ? off : 0, src, into ? 0 : off, run, dst);
    return;
  }
  if (into)
    L(e, "%s(%ld, %ld, %s, %ld, %s + %ld, %ld);", kern(e, "copy_rows"), outer, run, src, run, dst, off, big);
  else
    L(e, "%s(%ld, %ld, %s + %ld, %ld, %s, %ld);", kern(e, "copy_rows"), outer, run, src, off, big, dst, run);
}

/* The pointer to element `off` of x's member, as V() prints it. */
static const char *at_offset(Emit *e, Node *x, long off) {
  const char *b = e->buf[x->id];
  return off ? arena_printf("(s->%s + %ld)", b, off) : V(e, x);
}

/* y = x[start:start+len] along axis (a view of a block of x: nothing to do) */
void emit_slice(Emit *e, Node *n) {
  Node *x = n->in[0];
  long outer, len, inner;
  split_axis(&x->shape, n->axis, &outer, &len, &inner);
  if (strcmp(V(e, n), at_offset(e, x, (long)n->start * inner)) == 0) {
    head_math(e, n, "  (a view of its block: no copy)");
    return;
  }
  head_math(e, n, "");
  cut_copy(e, n, x, false);
}

/* zeros, with dy at [start:start+len] along axis */
void emit_pad(Emit *e, Node *n) {
  head_math(e, n, "");
  L(e, "memset(%s, 0, %ld * sizeof *%s);", V(e, n), numel(n), V(e, n));
  cut_copy(e, n, n->in[0], true);
}

/* [a, b] along axis: each part the layout did not already write in place
 * (layout.c) copied to its place -- a part of the concat's shape as rows
 * (bp_copy_rows, on the kernels' threads, in both builds), a part broadcast up
 * to it (an axis of 1 repeats) by a loop nest over it (the in-memory build:
 * the strided copy bpm_copy) */
void emit_concat(Emit *e, Node *n) {
  const Shape *O = &n->shape;
  long ostride[MAXRANK], st = 1;
  for (int d = O->rank - 1; d >= 0; d--)
    ostride[d] = st, st *= O->dim[d];
  bool in_place[2] = {strcmp(V(e, n->in[0]), V(e, n)) == 0,
                      strcmp(V(e, n->in[1]), at_offset(e, n, numel(n->in[0]))) == 0 && n->in[0] != n->in[1]};
  head_math(e, n, in_place[0] && in_place[1] ? "  (both parts written in place: no copy)" : "");
  for (int k = 0; k < 2; k++) {
    Node *x = n->in[k];
    Shape part = *O;
    part.dim[n->axis] = x->shape.dim[n->axis];
    long off = k ? (long)n->in[0]->shape.dim[n->axis] * ostride[n->axis] : 0;
    if (in_place[k])
      continue;
    long block = O->dim[n->axis] * ostride[n->axis], run = part.dim[n->axis] * ostride[n->axis];
    if (block == 0)
      continue;
    if (shape_eq(&part, &x->shape)) {
      if (numel(n) == block)
        L(e, "memcpy(%s + %ld, %s, %ld * sizeof *%s);", V(e, n), off, V(e, x), run, V(e, n));
      else
        L(e, "%s(%ld, %ld, %s, %ld, %s + %ld, %ld);", kern(e, "copy_rows"), numel(n) / block, run, V(e, x), run,
          V(e, n), off, block);
      continue;
    }
    if (e->opt->for_jit && O->rank <= 8) {
      Buf os = {0};
      buf_printf(&os, "(const int[]){");
      for (int d = 0; d < O->rank; d++)
        buf_printf(&os, "%s%ld", d ? ", " : "", ostride[d]);
      buf_printf(&os, "}");
      L(e, "%s(%d, %s, %s, %s, %s + %ld, %s);", bpm(e, "copy"), O->rank, dims_lit(&part), V(e, x),
        strides_lit(&part, &x->shape), V(e, n), off, buf_done(&os));
      continue;
    }
    Buf oi = {0};
    for (int d = 0; d < O->rank; d++)
      buf_printf(&oi, "%si%d*%ld", d ? " + " : "", d, ostride[d]);
    if (off)
      buf_printf(&oi, " + %ld", off);
    loops_open(e, &part);
    L(e, "%*s%s[%s] = %s[%s];", 2 * O->rank, "", V(e, n), buf_done(&oi), V(e, x), bidx(&part, &x->shape));
  }
}

/* the T and C of x [..., T, C], and the product of the rest */
static void tc_split(Node *x, long *P, long *T, long *C) {
  *C = x->shape.dim[x->shape.rank - 1], *T = x->shape.dim[x->shape.rank - 2];
  *P = numel(x) / (*T * *C != 0 ? *T * *C : 1);
}

/* y[p, t, c] = (Σ_{s ≤ t} x[p, s, c]) / (t + 1): a running sum down T per column */
void emit_causal_mean(Emit *e, Node *n) {
  long P, T, C;
  tc_split(n, &P, &T, &C);
  head_math(e, n, "  = the mean of positions 0..t");
  L(e, "for (int p = 0; p < %ld; p++)", P);
  L(e, "  for (int c = 0; c < %ld; c++) {", C);
  L(e, "    double acc = 0;");
  L(e, "    for (int t = 0; t < %ld; t++) {", T);
  L(e, "      acc += %s[((size_t)p * %ld + t) * %ld + c];", V(e, n->in[0]), T, C);
  L(e, "      %s[((size_t)p * %ld + t) * %ld + c] = (real)(acc / (t + 1));", V(e, n), T, C);
  L(e, "    }");
  L(e, "  }");
}

/* dx[p, s, c] = Σ_{t ≥ s} dy[p, t, c] / (t + 1): a running sum up T per column */
void emit_causal_mean_bwd(Emit *e, Node *n) {
  long P, T, C;
  tc_split(n, &P, &T, &C);
  head_math(e, n, "");
  L(e, "for (int p = 0; p < %ld; p++)", P);
  L(e, "  for (int c = 0; c < %ld; c++) {", C);
  L(e, "    double acc = 0;");
  L(e, "    for (int t = %ld; t >= 0; t--) {", T - 1);
  L(e, "      acc += (double)%s[((size_t)p * %ld + t) * %ld + c] / (t + 1);", V(e, n->in[0]), T, C);
  L(e, "      %s[((size_t)p * %ld + t) * %ld + c] = (real)acc;", V(e, n), T, C);
  L(e, "    }");
  L(e, "  }");
}

/* the input viewed as [A, n1, B, n2, C], n1 and n2 the swapped axes */
static bool swap_axes(Emit *e, Node *n) {
  const Shape *X = &n->in[0]->shape;
  int p = n->axis < n->axis2 ? n->axis : n->axis2, q = n->axis < n->axis2 ? n->axis2 : n->axis;
  long A = 1, B = 1, C = 1;
  if (p == q)
    return false;
  for (int d = 0; d < X->rank; d++) {
    if (d < p)
      A *= X->dim[d];
    else if (d > p && d < q)
      B *= X->dim[d];
    else if (d > q)
      C *= X->dim[d];
  }
  head_math(e, n, arena_printf("  (axes %d and %d swapped)", n->axis, n->axis2));
  L(e, "%s(%ld, %d, %ld, %d, %ld, %s, %ld, %s, %ld);", kern(e, "swap_axes"), A, X->dim[p], B, X->dim[q], C,
    V(e, n->in[0]), X->dim[q] * C, V(e, n), X->dim[p] * C);
  return true;
}

/* ST_SWAP_SLICE: the swap t of adjacent axes reads its input's rows where the
 * slice sl (not made) would have copied them from: columns [start, start + w)
 * of sl's input, rows W apart */
static void emit_swap_slice(Emit *e, Node *t, Node *sl) {
  Node *x = sl->in[0];
  long A, n1, n2, C, W = x->shape.dim[x->shape.rank - 1];
  if (!swap_dims(t, &A, &n1, &n2, &C))
    die("ST_SWAP_SLICE on a node that swaps no adjacent axes");
  head(e, t, "(%s[..., %d:%ld] viewed as %s)ᵀ  (axes %d and %d swapped, the columns read in place: no slice of "
       "their own)", lab(e, x), sl->start, (long)sl->start + sl->shape.dim[sl->axis], shape_str(&t->in[0]->shape),
       t->axis, t->axis2);
  L(e, "%s(%ld, %ld, 1, %ld, %ld, %s, %ld, %s, %ld);", kern(e, "swap_axes"), A, n1, n2, C, at_offset(e, x, sl->start),
    W, V(e, t), n1 * C);
}

/* ST_CAT_PARTS: each part of concat c written into its columns of c's rows,
 * a swapped part by the swap itself */
static void emit_cat_parts(Emit *e, Node *c, const CatParts *cp) {
  long W = c->shape.dim[c->shape.rank - 1], rows = W ? numel(c) / W : 0;
  Buf m = {0};
  for (int k = 0; k < cp->n; k++)
    buf_printf(&m, "%s%s%s", k ? ", " : "[", lab(e, cp->p[k].x), cp->p[k].swap ? "ᵀ" : "");
  head(e, c, "%s]_%d  (each part written into its columns: no swap or inner concat of its own)", buf_done(&m),
       c->axis);
  if (rows == 0)
    return;
  /* one kernel pass over c's rows, each written whole (a pass per part left
   * each row's lines to be fetched once per part: 2.3x the time, cold) */
  Buf geo = {0}, src = {0};
  int n = 0;
  for (int k = 0; k < cp->n; k++) {
    const CatPart *q = &cp->p[k];
    long A = rows, n1 = 1, n2 = 1, C = q->w;
    if (q->w == 0)
      continue;
    if (q->swap && !swap_dims(q->swap, &A, &n1, &n2, &C))
      die("ST_CAT_PARTS: a swapped part that swaps no adjacent axes");
    buf_printf(&geo, "%s%ld, %ld, %ld, %ld, %ld", n ? ", " : "", q->col, n1, n2, C, q->swap ? n2 * C : q->w);
    buf_printf(&src, "%s%s", n++ ? ", " : "", V(e, q->x));
  }
  L(e, "{");
  L(e, "  static const long geo_[] = {%s};   /* per part: column, runs, rows per run block, run, run stride */",
    buf_done(&geo));
  L(e, "  const real *const src_[] = {%s};", buf_done(&src));
  L(e, "  %s(%ld, %ld, %d, geo_, src_, %s);", kern(e, "cat_parts"), rows, W, n, V(e, c));
  L(e, "}");
}

/* x with axes axis and axis2 swapped: the kernel bp_swap_axes, whose rows run
 * on the kernels' threads; swapping an axis with itself, loops over the output
 * with the input read with its own strides in swapped places */
void emit_transpose(Emit *e, Node *n) {
  if (swap_axes(e, n))
    return;
  Node *x = n->in[0];
  const Shape *O = &n->shape;
  long xstride[MAXRANK], st = 1;
  for (int d = x->shape.rank - 1; d >= 0; d--)
    xstride[d] = st, st *= x->shape.dim[d];
  Buf ix = {0};
  for (int d = 0; d < O->rank; d++) {
    long s = xstride[d == n->axis ? n->axis2 : d == n->axis2 ? n->axis : d];
    buf_printf(&ix, "%si%d*%ld", d ? " + " : "", d, s);
  }
  head_math(e, n, arena_printf("  (axes %d and %d swapped)", n->axis, n->axis2));
  loops_open(e, O);
  L(e, "%*s%s[%s] = %s[%s];", 2 * O->rank, "", V(e, n), bidx(O, O), V(e, x), buf_done(&ix));
}

/* a gather's sizes: rows of the table, elements per row, indices */
static void gather_dims(Node *table, Node *idx, long *rows, long *r, long *ni) {
  *rows = table->shape.dim[0], *r = numel(table) / (*rows ? *rows : 1), *ni = numel(idx);
}

/* C[X]: row X[i] of the table for each index (out of range: zeros, flagged) */
void emit_gather(Emit *e, Node *n) {
  Node *c = n->in[0], *x = n->in[1];
  long rows, r, ni;
  gather_dims(c, x, &rows, &r, &ni);
  head_math(e, n, "");
  L(e, "for (int i = 0; i < %ld; i++) {", ni);
  L(e, "  int32_t ix = %s[i];", V(e, x));
  L(e, "  if (ix < 0 || ix >= %ld) {", rows);
  L(e, "    s->bad_index = 1;");
  L(e, "    memset(&%s[i*%ld], 0, %ld * sizeof(real));", V(e, n), r, r);
  L(e, "    continue;");
  L(e, "  }");
  L(e, "  for (int r = 0; r < %ld; r++)", r);
  L(e, "    %s[i*%ld + r] = %s[ix*%ld + r];", V(e, n), r, V(e, c), r);
  L(e, "}");
}

/* dC: zeros, then row i of dy added into row X[i] (the lecture's dC loop) */
void emit_gather_bwd(Emit *e, Node *n) {
  Node *x = n->in[0], *dy = n->in[1];
  long rows, r, ni;
  gather_dims(n, x, &rows, &r, &ni);
  head_math(e, n, "");
  L(e, "memset(%s, 0, sizeof %s);", V(e, n), V(e, n));
  L(e, "for (int i = 0; i < %ld; i++) {", ni);
  L(e, "  int32_t ix = %s[i];", V(e, x));
  L(e, "  if (ix < 0 || ix >= %ld)", rows);
  L(e, "    continue;");
  L(e, "  for (int r = 0; r < %ld; r++)", r);
  L(e, "    %s[ix*%ld + r] += %s[i*%ld + r];", V(e, n), r, V(e, dy), r);
  L(e, "}");
}

/* ---- matmul ------------------------------------------------------------------------- */

/* tri 0: a product (emit_matmul); 1: only the lower triangle of each [T, T]
 * of the result is read (full: the rest too, unless the state is lean); 2:
 * the first operand is 0 above its diagonal (plan_attention): per head, a
 * bp_gemm_causal call that leaves out the blocks that cannot matter */
static void matmul(Emit *e, Node *n, int tri, bool full) {
  Node *a = n->in[0], *b = n->in[1];
  const Shape *O = &n->shape, *A = &a->shape, *B = &b->shape;
  head_math(e, n, tri == 1 ? "  (the lower triangle: what the causal softmax reads)"
                  : tri == 2 ? "  (the blocks under the diagonal of the causal mask)" : "");
  if (O->rank < 2 || A->rank < 2 || B->rank < 2)
    die("matmul of rank < 2");
  long M = O->dim[O->rank - 2], N = O->dim[O->rank - 1];
  long K = n->transa ? A->dim[A->rank - 2] : A->dim[A->rank - 1];
  const char *k = e->opt->dtype == DT_F32 ? "bp_gemm_f32" : "bp_gemm_f64";
  Shape ob = *O, ab = *A, bb = *B;
  ob.rank -= 2, ab.rank -= 2, bb.rank -= 2;
  long nb = shape_numel(&ob);
  const char *tail = tri ? arena_printf(", %d, %s", tri, full ? "!s->lean" : "0") : ", 0";
  if (tri)
    k = kern(e, "gemm_causal");
  if (nb == 1 || (!tri && !n->transa && bb.rank == 0 && shape_eq(&ab, &ob))) {
    /* one call; a batch of a over a shared b folds into the rows */
    L(e, "%s(%ld, %ld, %ld, %s, %d, %s, %d, %s%s);", k, M * nb, N, K, V(e, a), n->transa, V(e, b),
      n->transb, V(e, n), tail);
    return;
  }
  if (shape_eq(&ab, &ob) && shape_eq(&bb, &ob)) {
    /* nb products one after another in each operand: one call, the threads share them */
    L(e, "%s(%ld, %ld, %ld, %ld, %s, %d, %s, %d, %s, %d, %s);", kern(e, "gemm_batch"), nb, M, N, K, V(e, a),
      n->transa, V(e, b), n->transb, V(e, n), tri, tri && full ? "!s->lean" : "0");
    return;
  }
  loops_open(e, &ob);
  L(e, "%*s%s(%ld, %ld, %ld, %s + (%s)*%ld, %d, %s + (%s)*%ld, %d, %s + (%s)*%ld%s);", 2 * ob.rank, "",
    k, M, N, K, V(e, a), bidx(&ob, &ab), M * K, n->transa, V(e, b), bidx(&ob, &bb), K * N, n->transb,
    V(e, n), bidx(&ob, &ob), M * N, tail);
}

void emit_matmul(Emit *e, Node *n) { matmul(e, n, 0, false); }

/* y = a · b + bias (ST_GEMM_BIAS: n the add, m the product): C starts as the
 * bias row, the product adds on */
static void emit_gemm_bias(Emit *e, Node *n, Node *m) {
  Node *bias = n->in[0] == m ? n->in[1] : n->in[0];
  Node *a = m->in[0], *b = m->in[1];
  head(e, n, "%s + %s  (the product starts from the bias row)", math(e, m), lab(e, bias));
  /* rows of a batch fold into M (plan.c: only without transa then) */
  long N = m->shape.dim[m->shape.rank - 1], M = numel(m) / (N ? N : 1);
  long K = m->transa ? a->shape.dim[0] : a->shape.dim[a->shape.rank - 1];
  L(e, "%s(%ld, %ld, %ld, %s, %d, %s, %d, %s, %s);", kern(e, "gemm_bias"), M, N, K, V(e, a), m->transa, V(e, b),
    m->transb, V(e, bias), V(e, n));
}

/* ---- reductions ------------------------------------------------------------------- */


static void reduce(Emit *e, Node *n, bool mean) {
  Node *x = n->in[0];
  long outer, len, inner;
  split_axis(&x->shape, n->axis, &outer, &len, &inner);
  head_math(e, n, "");
  axis_loops(e, outer, inner);
  L(e, "{");
  L(e, "  double acc = 0;");
  L(e, "  for (int j = 0; j < %ld; j++)", len);
  L(e, "    acc += %s[%s];", V(e, x), lin3(outer, len, inner, 1));
  L(e, "  %s[%s] = (real)(acc%s);", V(e, n), lin3(outer, len, inner, 0),
    mean ? arena_printf(" / %ld", len) : "");
  L(e, "}");
}

void emit_sum(Emit *e, Node *n) { reduce(e, n, false); }
void emit_mean(Emit *e, Node *n) { reduce(e, n, true); }

void emit_max(Emit *e, Node *n) {
  Node *x = n->in[0];
  long outer, len, inner;
  split_axis(&x->shape, n->axis, &outer, &len, &inner);
  head_math(e, n, "");
  const char *xi = lin3(outer, len, inner, 1);
  axis_loops(e, outer, inner);
  L(e, "{");
  L(e, "  real m = %s[%s];", V(e, x), lin3(outer, len, inner, 2));
  L(e, "  for (int j = 1; j < %ld; j++)", len);
  L(e, "    if (%s[%s] > m)", V(e, x), xi);
  L(e, "      m = %s[%s];", V(e, x), xi);
  L(e, "  %s[%s] = m;", V(e, n), lin3(outer, len, inner, 0));
  L(e, "}");
}

/* dy to the first arg-max along the axis, zeros elsewhere */
void emit_max_bwd(Emit *e, Node *n) {
  Node *x = n->in[0], *dy = n->in[1];
  long outer, len, inner;
  split_axis(&x->shape, n->axis, &outer, &len, &inner);
  head_math(e, n, "");
  const char *xi = lin3(outer, len, inner, 1);
  L(e, "memset(%s, 0, sizeof %s);", V(e, n), V(e, n));
  axis_loops(e, outer, inner);
  L(e, "{");
  L(e, "  int best = 0;");
  L(e, "  real m = %s[%s];", V(e, x), lin3(outer, len, inner, 2));
  L(e, "  for (int j = 1; j < %ld; j++)", len);
  L(e, "    if (%s[%s] > m) {", V(e, x), xi);
  L(e, "      m = %s[%s];", V(e, x), xi);
  L(e, "      best = j;");
  L(e, "    }");
  L(e, "  {");
  L(e, "    int j = best;");
  L(e, "    %s[%s] = %s[%s];", V(e, n), xi, V(e, dy), lin3(outer, len, inner, 0));
  L(e, "  }");
  L(e, "}");
}

/* ---- indexing by class ---------------------------------------------------------------- */

void emit_pick(Emit *e, Node *n) {
  Node *x = n->in[0], *y = n->in[1];
  long N = x->shape.dim[0], K = x->shape.dim[1];
  head_math(e, n, "");
  L(e, "for (int i = 0; i < %ld; i++) {", N);
  L(e, "  int32_t c = %s[i];", V(e, y));
  L(e, "  if (c < 0 || c >= %ld) {", K);
  L(e, "    s->bad_index = 1;");
  L(e, "    %s[i] = 0;", V(e, n));
  L(e, "  } else {");
  L(e, "    %s[i] = %s[i*%ld + c];", V(e, n), V(e, x), K);
  L(e, "  }");
  L(e, "}");
}

void emit_pick_bwd(Emit *e, Node *n) {
  Node *y = n->in[0], *dy = n->in[1];
  long N = n->shape.dim[0], K = n->shape.dim[1];
  head_math(e, n, "");
  L(e, "memset(%s, 0, sizeof %s);", V(e, n), V(e, n));
  L(e, "for (int i = 0; i < %ld; i++) {", N);
  L(e, "  int32_t c = %s[i];", V(e, y));
  L(e, "  if (c >= 0 && c < %ld)", K);
  L(e, "    %s[i*%ld + c] = %s[i];", V(e, n), K, V(e, dy));
  L(e, "}");
}

/* ---- softmax and cross-entropy ------------------------------------------------------- */

void emit_softmax(Emit *e, Node *n) {
  Node *x = n->in[0];
  long outer, len, inner;
  split_axis(&x->shape, n->axis, &outer, &len, &inner);
  head_math(e, n, "  (exp(x − max) / Σ exp(x − max))");
  if (inner == 1) {
    L(e, "%s(%ld, %ld, %s, %s);", kern(e, "softmax"), outer, len, V(e, x), V(e, n));
    return;
  }
  const char *xi = lin3(outer, len, inner, 1);
  axis_loops(e, outer, inner);
  L(e, "{");
  L(e, "  real m = %s[%s];", V(e, x), lin3(outer, len, inner, 2));
  L(e, "  for (int j = 1; j < %ld; j++)", len);
  L(e, "    if (%s[%s] > m)", V(e, x), xi);
  L(e, "      m = %s[%s];", V(e, x), xi);
  L(e, "  double sum = 0;");
  L(e, "  for (int j = 0; j < %ld; j++)", len);
  L(e, "    sum += %s[%s] = %s(%s[%s] - m);", V(e, n), xi, fn(e, "exp"), V(e, x), xi);
  L(e, "  for (int j = 0; j < %ld; j++)", len);
  L(e, "    %s[%s] = (real)(%s[%s] / sum);", V(e, n), xi, V(e, n), xi);
  L(e, "}");
}

/* the backward of a causal softmax (rows of T, 0 above the diagonal), by a
 * kernel in both builds that reads dy only where y can be nonzero and writes
 * those dx, zeros after; ST_SOFTMAX_BWD_SCALED: n is sb·c (or sb / c), the
 * factor in the same pass */
static void causal_softmax_bwd(Emit *e, Node *n, Node *sb, double scale) {
  long T = sb->shape.dim[sb->shape.rank - 1];
  if (n != sb)
    head(e, n, "%s%s  (the scaling in the softmax backward's kernel)", math(e, sb),
         n->op == OP_div ? arena_printf(" / %g", 1 / scale) : arena_printf(" · %g", scale));
  else
    head_math(e, n, "");
  L(e, "%s(%ld, %ld, %s, %s, %s, %s);", kern(e, "causal_softmax_bwd"), numel(sb) / (T ? T : 1), T, dlit(scale),
    V(e, sb->in[0]), V(e, sb->in[1]), V(e, n));
}

void emit_softmax_bwd(Emit *e, Node *n) {
  Node *y = n->in[0], *dy = n->in[1];
  long outer, len, inner;
  split_axis(&y->shape, n->axis, &outer, &len, &inner);
  if (y->op == OP_causal_softmax && inner == 1) {
    causal_softmax_bwd(e, n, n, 1);
    return;
  }
  head_math(e, n, "");
  const char *xi = lin3(outer, len, inner, 1);
  axis_loops(e, outer, inner);
  L(e, "{");
  L(e, "  double dot = 0;");
  L(e, "  for (int j = 0; j < %ld; j++)", len);
  L(e, "    dot += (double)%s[%s] * %s[%s];", V(e, dy), xi, V(e, y), xi);
  L(e, "  for (int j = 0; j < %ld; j++)", len);
  L(e, "    %s[%s] = %s[%s] * (%s[%s] - (real)dot);", V(e, n), xi, V(e, y), xi, V(e, dy), xi);
  L(e, "}");
}

/* loss = mean over rows of logsumexp(row) - row[Y] */
/* loss = mean over the rows whose target is not `ignore` of logsumexp(row) -
 * row[Y]; logits [..., K] are rows of K.  The kernel indexes with the targets:
 * out-of-range ones are flagged first (NaN loss), ignored ones read as 0 and
 * their terms taken back out, exactly, in double.  No target left: loss 0. */
void emit_cross_entropy(Emit *e, Node *n) {
  Node *x = n->in[0], *y = n->in[1];
  long N = numel(y), K = x->shape.dim[x->shape.rank - 1];
  const char *ys = arena_printf("s->%s", e->save2[n->id]);
  head_math(e, n, arena_printf(" = −(1/n) Σ_i log softmax(%s)[i, %s[i]], n = #(%s ≠ %d)", lab(e, x), lab(e, y),
                               lab(e, y), n->ignore));
  L(e, "{");
  L(e, "  int nvalid = 0;");
  L(e, "  for (int i = 0; i < %ld; i++) {", N);
  L(e, "    int32_t c = %s[i];", V(e, y));
  L(e, "    if (c == %d) {", n->ignore);
  L(e, "      %s[i] = 0;", ys);
  L(e, "      continue;");
  L(e, "    }");
  L(e, "    if (c < 0 || c >= %ld)", K);
  L(e, "      s->bad_index = 1;");
  L(e, "    %s[i] = c;", ys);
  L(e, "    nvalid++;");
  L(e, "  }");
  L(e, "  if (s->bad_index) {");
  L(e, "    %s[0] = 0;", V(e, n));
  L(e, "  } else {");
  L(e, "    double mean = %s(%ld, %ld, %s, %s, s->%s);", kern(e, "xent_fwd"), N, K, V(e, x), ys, e->save[n->id]);
  L(e, "    if (nvalid < %ld) {   /* the ignored rows' terms (target 0) out again */", N);
  L(e, "      double total = mean * %ld;", N);
  L(e, "      for (int i = 0; i < %ld; i++) {", N);
  L(e, "        if (%s[i] != %d)", V(e, y), n->ignore);
  L(e, "          continue;");
  L(e, "        const real *row = &%s[(size_t)i * %ld];", V(e, x), K);
  L(e, "        double m = row[0], sum = 0;");
  L(e, "        for (int j = 1; j < %ld; j++)", K);
  L(e, "          m = row[j] > m ? row[j] : m;");
  L(e, "        for (int j = 0; j < %ld; j++)", K);
  L(e, "          sum += exp(row[j] - m);");
  L(e, "        total -= log(sum) + m - row[0];");
  L(e, "      }");
  L(e, "      mean = nvalid ? total / nvalid : 0;");
  L(e, "    }");
  L(e, "    %s[0] = (real)mean;", V(e, n));
  L(e, "  }");
  L(e, "}");
}

/* dlogits = (softmax(logits) - onehot(Y)) / n · dloss over the rows kept, 0 in
 * the ignored ones */
void emit_xent_bwd(Emit *e, Node *n) {
  Node *x = n->in[0], *y = n->in[1], *dl = n->in[2];
  long N = numel(y), K = x->shape.dim[x->shape.rank - 1];
  head_math(e, n, "");
  /* softmax as forward saved it (grad.c makes xent_bwd only from its
   * cross_entropy); Y only compared, never used as an index */
  Node *f = n->fwd;
  if (!f || f->op != OP_cross_entropy || f->in[0] != x || f->in[1] != y || !e->save[f->id])
    die("xent_bwd without its cross_entropy's saved softmax");
  L(e, "{");
  L(e, "  int nvalid = 0;");
  L(e, "  for (int i = 0; i < %ld; i++)", N);
  L(e, "    nvalid += %s[i] != %d;", V(e, y), n->ignore);
  L(e, "  %s(%ld, %ld, s->%s, %s, nvalid == %ld ? %s[0] : nvalid ? %s[0] * %ld / nvalid : 0, %s, 0);",
    kern(e, "xent_bwd"), N, K, e->save[f->id], V(e, y), N, V(e, dl), V(e, dl), N, V(e, n));
  L(e, "  if (nvalid < %ld)", N);
  L(e, "    for (int i = 0; i < %ld; i++)", N);
  L(e, "      if (%s[i] == %d)", V(e, y), n->ignore);
  L(e, "        memset(&%s[(size_t)i * %ld], 0, %ld * sizeof(real));", V(e, n), K, K);
  L(e, "}");
}

/* ---- normalisation ------------------------------------------------------------------ */

static const char *saved(Emit *e, Node *bn, const char *what) {
  return arena_printf("s->%s_%s", e->save[bn->id], what);
}

/* the math of batchnorm n, above whatever call computes it */
static void bn_head(Emit *e, Node *n) {
  head_math(e, n, arena_printf(" = %s ⊙ (%s − mean_b) / sqrt(var_b + %g) + %s,  var_b with 1/%s", lab(e, n->in[1]),
                               lab(e, n->in[0]), n->num, lab(e, n->in[2]), n->unbiased ? "(n−1)" : "n"));
}

/* the math of a batchnorm backward group's nodes, above its call */
static void bn_group_heads(Emit *e, BnGroup *gr) {
  if (gr->tanh)
    head_math(e, gr->tanh, "");
  if (gr->bias)
    head_math(e, gr->bias, "");
  if (gr->gain)
    head_math(e, gr->gain, "");
  head_math(e, gr->x, "");
  if (gr->xsum)
    head_math(e, gr->xsum, "");
}

/* training: batch mean and variance per column; eval: the stored statistics;
 * t: the tanh of the output in the same pass (ST_BN_TANH), or NULL.
 * Rows are walked in memory order with double accumulators per column (the
 * _sums member), so the loops vectorise; bp_bn_fwd of kernels.h. */
static void bn_forward(Emit *e, Node *n, Node *t) {
  Node *x = n->in[0], *gain = n->in[1], *bias = n->in[2];
  long N = bn_rows(n), D = bn_cols(n);
  double div = n->unbiased ? (double)(N - 1) : (double)N;
  const char *mean = saved(e, n, "mean"), *rstd = saved(e, n, "rstd");
  bn_head(e, n);
  if (t)
    head_math(e, t, "  (in the same pass)");
  if (e->opt->sync_bn && !e->eval) {   /* --sync-bn: the statistics over the ranks (bn_sync.h) */
    L(e, "bp_bn_sync_fwd(s->ranks, %ld, %ld, %s, %s, %s, %s, %d, %s, %s, %s, %s, %s);", N, D, V(e, x), V(e, gain),
      V(e, bias), dlit(n->num), n->unbiased, mean, rstd, saved(e, n, "xhat"), V(e, n), saved(e, n, "sums"));
    if (t)
      L(e, "%s(%ld, %s, %s);", kern(e, "tanh"), N * D, V(e, n), V(e, t));
    return;
  }
  /* mean and variance in one pass (sums of x - x[0,j]), then x̂ = (x - mean)·rstd,
   * the output (and the tanh) in a second pass */
  L(e, "%s(%ld, %ld, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s);", kern(e, "bn_fwd"), N, D, V(e, x),
    V(e, gain), V(e, bias), dlit(n->num), dlit(div), e->eval ? saved(e, n, "run_mean") : "NULL",
    e->eval ? saved(e, n, "run_var") : "NULL", mean, rstd, saved(e, n, "xhat"), V(e, n), t ? V(e, t) : "NULL",
    saved(e, n, "sums"));
}

void emit_batchnorm(Emit *e, Node *n) { bn_forward(e, n, NULL); }

/* the batchnorm backward of plan_fusion, one kernel call for the group */
static void emit_bn_group(Emit *e, BnGroup *gr) {
  Node *bn = gr->bn, *dy = gr->dy, *g = bn->in[1];
  long N = bn_rows(bn), D = bn_cols(bn);
  double c = bn->unbiased ? (double)N / (double)(N - 1) : 1.0;
  bn_group_heads(e, gr);
  if (e->opt->sync_bn) {   /* --sync-bn: the column sums over the ranks (bn_sync.h) */
    L(e, "bp_bn_sync_bwd(s->ranks, %ld, %ld, %s, %s, %s, %s, %s, %s, %d, %s, %s, %s, %s, %s);", N, D,
      gr->tanh ? V(e, gr->tanh->in[0]) : "NULL", gr->tanh ? V(e, gr->tanh->in[1]) : "NULL", V(e, dy),
      saved(e, bn, "xhat"), V(e, g), saved(e, bn, "rstd"), bn->unbiased, gr->gain ? V(e, gr->gain) : "NULL",
      gr->bias ? V(e, gr->bias) : "NULL", V(e, gr->x), gr->xsum ? V(e, gr->xsum) : "NULL", saved(e, bn, "sums"));
    return;
  }
  L(e, "/* two passes: %s%s and its two column sums, then %s%s */",
    gr->tanh ? "" : "read ", lab(e, dy), lab(e, gr->x), gr->xsum ? " and its column sum" : "");
  L(e, "%s(%ld, %ld, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s);", kern(e, "bn_bwd"), N, D,
    gr->tanh ? V(e, gr->tanh->in[0]) : "NULL", gr->tanh ? V(e, gr->tanh->in[1]) : "NULL", V(e, dy),
    saved(e, bn, "xhat"), V(e, g), saved(e, bn, "rstd"), dlit(c), gr->gain ? V(e, gr->gain) : "NULL",
    gr->bias ? V(e, gr->bias) : "NULL", V(e, gr->x), gr->xsum ? V(e, gr->xsum) : "NULL", saved(e, bn, "sums"));
}

/* dx alone (the plan groups every bn_bwd_x with what reads the same dy; this is
 * the printer of a group of one): bp_bn_bwd, as for the group */
void emit_bn_bwd_x(Emit *e, Node *n) { emit_bn_group(e, &(BnGroup){.bn = n->in[0], .dy = n->in[1], .x = n}); }

void emit_bn_bwd_gain(Emit *e, Node *n) {
  Node *bn = n->in[0], *dy = n->in[1];
  long N = bn_rows(bn), D = bn_cols(bn);
  const char *a1 = saved(e, bn, "acc1");
  head_math(e, n, "");
  L(e, "memset(%s, 0, sizeof %s);", a1, a1);
  L(e, "for (int i = 0; i < %ld; i++)", N);
  L(e, "  for (int j = 0; j < %ld; j++)", D);
  L(e, "    %s[j] += (double)%s[i*%ld + j] * %s[i*%ld + j];", a1, V(e, dy), D, saved(e, bn, "xhat"), D);
  L(e, "for (int j = 0; j < %ld; j++)", D);
  L(e, "  %s[j] = (real)%s[j];", V(e, n), a1);
}

/* layernorm and its dx: kernels in both builds (runtime/kernels_attn.h, their
 * loops written out beside them), so rows are shared by the kernels' threads */
/* layernorm n's comment (note after the formula) and its kernel call on the
 * rows of x, or of x + x2 written to sum (x2 and sum "NULL" when not) */
static void ln_fwd(Emit *e, Node *n, const char *note, const char *x, const char *x2, const char *sum) {
  Node *in = n->in[0];
  long D = in->shape.dim[in->shape.rank - 1], R = numel(in) / (D ? D : 1);
  head_math(e, n, arena_printf(" = %s ⊙ (%s − mean) / sqrt(var + %g) + %s  (over the last axis%s)",
                               lab(e, n->in[1]), lab(e, in), n->num, lab(e, n->in[2]), note));
  L(e, "%s(%ld, %ld, %s, %s, %s, %s, %s, %s, %s, %s, %s);", kern(e, "layernorm"), R, D, x, x2, sum, V(e, n->in[1]),
    V(e, n->in[2]), dlit(n->num), saved(e, n, "rstd"), saved(e, n, "xhat"), V(e, n));
}
void emit_layernorm(Emit *e, Node *n) { ln_fwd(e, n, "", V(e, n->in[0]), "NULL", "NULL"); }
/* ST_ADD_LN: n = layernorm(a), a = p + q (made here, not in a pass of its own) */
static void emit_add_ln(Emit *e, Node *n, Node *a) {
  head(e, a, "%s  (made in the pass of the layernorm below)", math(e, a));
  ln_fwd(e, n, "; its input's add in the same pass", V(e, a->in[0]), V(e, a->in[1]), V(e, a));
}

/* dx = rstd · (dx̂ - mean(dx̂) - x̂·mean(dx̂·x̂)),  dx̂ = gain ⊙ dy, per row, into
 * out; add: plus that tensor (ST_LN_BWD_ADD), else "NULL" */
static void ln_bwd_call(Emit *e, Node *n, const char *add, const char *out) {
  Node *ln = n->in[0];
  long D = ln->shape.dim[ln->shape.rank - 1], R = numel(ln) / (D ? D : 1);
  L(e, "%s(%ld, %ld, %s, %s, %s, %s, %s, %s);", kern(e, "ln_bwd_x"), R, D, saved(e, ln, "xhat"), V(e, n->in[1]),
    V(e, ln->in[1]), saved(e, ln, "rstd"), add, out);
}
void emit_ln_bwd_x(Emit *e, Node *n) {
  head_math(e, n, "");
  ln_bwd_call(e, n, "NULL", V(e, n));
}
/* ST_LN_BWD_ADD: n = r + l, l a layernorm's dx (not made): one pass */
static void emit_ln_bwd_add(Emit *e, Node *n, Node *l) {
  Node *r = n->in[0] == l ? n->in[1] : n->in[0];
  head(e, n, "%s + (%s)  (the layernorm's dx added in its own pass: none for the sum)", lab(e, r), math(e, l));
  ln_bwd_call(e, l, V(e, r), V(e, n));
}

/* dgain = Σ over the rows of dy ⊙ x̂: the kernel bp_ln_bwd_gain in both builds
 * (a column at a time, as a written-out loop would sum it, ran 6x slower: it
 * walks the rows a stride apart) */
void emit_ln_bwd_gain(Emit *e, Node *n) {
  Node *ln = n->in[0];
  long D = ln->shape.dim[ln->shape.rank - 1], R = numel(ln) / (D ? D : 1);
  head_math(e, n, "");
  L(e, "%s(%ld, %ld, %s, %s, %s);", kern(e, "ln_bwd_gain"), R, D, V(e, n->in[1]), saved(e, ln, "xhat"), V(e, n));
}

static const char *kind_word(int kind) {
  static const char *const w[] = {"input", "param", "grad", "activation", "statistic"};
  return kind >= 0 && kind <= 4 ? w[kind] : "scratch";
}

/* a tensor the layer makes in passing: written (unless lean) when someone may look */
static const char *observed(Emit *e, Node *n) {
  const char *v = V(e, n);
  bool seen = false;
  for (int i = 0; i < e->nfields; i++)
    if (e->fields[i].tname && strcmp(v + 3, e->fields[i].cname) == 0)
      seen = true;
  for (int i = 0; i < e->ncopies; i++)
    if (e->copies[i].src == n)
      seen = true;
  return seen ? arena_printf("s->lean ? NULL : %s", v) : "NULL";
}

static const char *opt_v(Emit *e, Node *n) { return n ? V(e, n) : "NULL"; }

static void emit_layer(Emit *e, Layer *ly, bool backward) {
  if (e->opt->sync_bn)
    die("a fused batchnorm layer under --sync-bn (plan_build fuses none then)");
  Node *bn = ly->bn, *A = ly->mm1->in[0], *W1 = ly->mm1->in[1], *W2 = ly->mm2->in[1];
  Node *gain = bn->in[1], *bias = bn->in[2];
  const char *sfx = e->opt->dtype == DT_F32 ? "f32" : "f64";
  if (!backward) {
    if (ly->b1)
      head(e, ly->z, "%s + %s", math(e, ly->mm1), lab(e, ly->b1));
    else
      head_math(e, ly->z, "");
    bn_head(e, bn);
    head_math(e, ly->t, "");
    if (ly->b2)
      head(e, ly->out, "%s + %s", math(e, ly->mm2), lab(e, ly->b2));
    else
      head_math(e, ly->out, "");
    L(e, "/* one layer, %d columns at a time: the product, batch statistics, x̂, tanh and the next", ly->dc);
    L(e, " * product while the block is in cache (%s, %s, %s written unless s->lean) */", lab(e, ly->z), lab(e, bn),
      lab(e, ly->t));
    double div = bn->unbiased ? (double)(ly->N - 1) : (double)ly->N;
    L(e, "bp_bnlayer_fwd_%s(%ld, %ld, %ld, %ld, %d, %d, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s);",
      sfx, ly->N, ly->K, ly->D, ly->V, ly->dc, ly->groups, V(e, A), V(e, W1), opt_v(e, ly->b1), V(e, gain),
      V(e, bias), dlit(bn->num), dlit(div), V(e, W2), opt_v(e, ly->b2), saved(e, bn, "mean"), saved(e, bn, "rstd"),
      V(e, ly->out), observed(e, ly->z), observed(e, bn), observed(e, ly->t), ly->ws);
    return;
  }
  BnGroup *gr = ly->bg;
  double c = bn->unbiased ? (double)ly->N / (double)(ly->N - 1) : 1.0;
  head_math(e, ly->dt, "");
  head_math(e, ly->dW2, "");
  bn_group_heads(e, gr);
  head_math(e, ly->dW1, "");
  if (ly->dA)
    head_math(e, ly->dA, "");
  L(e, "/* the layer's backward, %d columns at a time (%s, %s, %s written unless s->lean) */", ly->dc,
    lab(e, ly->dt), lab(e, gr->tanh), lab(e, gr->x));
  L(e, "bp_bnlayer_bwd_%s(%ld, %ld, %ld, %ld, %d, %d, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s);",
    sfx, ly->N, ly->K, ly->D, ly->V, ly->dc, ly->groups, V(e, A), V(e, W1), V(e, gain), V(e, bias), saved(e, bn, "rstd"),
    dlit(c), V(e, W2), V(e, ly->dout), opt_v(e, ly->dA), V(e, ly->dW1), opt_v(e, gr->xsum), opt_v(e, gr->gain),
    opt_v(e, gr->bias), V(e, ly->dW2), observed(e, ly->dt), observed(e, gr->tanh), observed(e, gr->x), ly->ws);
}

/* ---- the functions ------------------------------------------------------------------- */

static void emit_init_expr(Emit *e, InitExpr *x, const char **out, int *ntmp) {
  const char *a = NULL, *b = NULL;
  switch (x->kind) {
  case INIT_NUM:
    *out = dlit(x->num);
    return;
  case INIT_RANDN:
    *out = arena_printf("t%d", (*ntmp)++);
    L(e, "  double %s = bp_randn(&rng);", *out);
    return;
  case INIT_UNIFORM:
    *out = arena_printf("t%d", (*ntmp)++);
    L(e, "  double %s = 2 * bp_uniform(&rng) - 1;", *out);
    return;
  case INIT_NEG:
  case INIT_SQRT:
    emit_init_expr(e, x->a, &a, ntmp);
    *out = arena_printf("t%d", (*ntmp)++);
    L(e, "  double %s = %s(%s);", *out, x->kind == INIT_NEG ? "-" : "sqrt", a);
    return;
  default:
    emit_init_expr(e, x->a, &a, ntmp);   /* left operand's draws come first */
    emit_init_expr(e, x->b, &b, ntmp);
    *out = arena_printf("t%d", (*ntmp)++);
    L(e, "  double %s = %s %c %s;", *out, a, "+-*/"[x->kind - INIT_ADD], b);
    return;
  }
}

static void fn_init(Emit *e, const char *p) {
  Graph *g = e->g;
  buf_printf(e->b, "void %s_init(%s_state *s, uint64_t seed) {\n", p, p);
  L(e, "BpRng rng;");
  L(e, "bp_rng_seed(&rng, seed);");
  for (int i = 0; i < e->nfields; i++) {
    Field *f = &e->fields[i];
    if (f->kind != BP_INPUT && f->kind != BP_PARAM)
      L(e, "memset(s->%s, 0, sizeof s->%s);", f->cname, f->cname);
  }
  L(e, "s->bad_index = 0;");
  L(e, "s->lean = 0;");
  L(e, "s->bn_momentum = 0;");
  for (int i = 0; i < g->nforward; i++)
    if (g->nodes[i]->op == OP_batchnorm) {
      L(e, "s->ranks = NULL;");
      break;
    }
  for (int i = 0; i < g->nforward; i++) {
    Node *n = g->nodes[i];
    if (n->op != OP_param)
      continue;
    if (n->line > 0)
      buf_printf(e->b, "#line %d \"%s\"\n", n->line, spec_cstr(e));
    L(e, "/* %s   %s */", src_line(e, n->line), shape_str(&n->shape));
    if (!n->init) {
      L(e, "memset(%s, 0, sizeof %s);", V(e, n), V(e, n));
      continue;
    }
    L(e, "for (int i = 0; i < %ld; i++) {", numel(n));
    const char *v;
    int ntmp = 0;
    emit_init_expr(e, n->init, &v, &ntmp);
    L(e, "  %s[i] = (real)(%s);", V(e, n), v);
    L(e, "}");
  }
  buf_printf(e->b, "}\n\n");
}

/* ---- kernel binding: where a node's loops come from --------------------------------- *
 * The file written for gcc has every loop inline: what a learner reads, and
 * gcc optimises it.  libtcc does not optimise, so in memory these ops call a
 * loop of templates/model_kernels.h that bpgen's own gcc compiled (bpm_*),
 * when the shape suits it.  This table is the one place that chooses: a
 * bound printer writes the node's block and returns true, or returns false
 * (the shape does not suit it) and the op's own printer writes the loops. */
typedef bool BoundFn(Emit *e, Node *n);

static bool bound_bcast(Emit *e, Node *n, const char *op) {
  if (numel(n) == 1 || n->shape.rank > 8)
    return false;
  Node *a = n->in[0], *b = n->in[1];
  head_math(e, n, "");
  L(e, "%s(%s, %d, %s, %s, %s, %s, %s, %s);", bpm(e, "bcast"), op, n->shape.rank, dims_lit(&n->shape), V(e, a),
    strides_lit(&n->shape, &a->shape), V(e, b), strides_lit(&n->shape, &b->shape), V(e, n));
  return true;
}
static bool bound_add(Emit *e, Node *n) { return bound_bcast(e, n, "BPM_ADD"); }
static bool bound_sub(Emit *e, Node *n) { return bound_bcast(e, n, "BPM_SUB"); }
static bool bound_mul(Emit *e, Node *n) { return bound_bcast(e, n, "BPM_MUL"); }
static bool bound_div(Emit *e, Node *n) { return bound_bcast(e, n, "BPM_DIV"); }

static bool bound_expand(Emit *e, Node *n) {
  if (numel(n) == 1 || n->shape.rank > 8)
    return false;
  head_math(e, n, "");
  L(e, "%s(%d, %s, %s, %s, %s, %s);", bpm(e, "expand"), n->shape.rank, dims_lit(&n->shape), V(e, n->in[0]),
    strides_lit(&n->shape, &n->in[0]->shape), lit(e, n->num), V(e, n));
  return true;
}

static bool bound_gather(Emit *e, Node *n) {
  Node *c = n->in[0], *x = n->in[1];
  long rows, r, ni;
  gather_dims(c, x, &rows, &r, &ni);
  head_math(e, n, "");
  L(e, "if (%s(%ld, %ld, %ld, %s, %s, %s))", bpm(e, "gather"), ni, r, rows, V(e, c), V(e, x), V(e, n));
  L(e, "  s->bad_index = 1;");
  return true;
}

static bool bound_gather_bwd(Emit *e, Node *n) {
  Node *x = n->in[0], *dy = n->in[1];
  long rows, r, ni;
  gather_dims(n, x, &rows, &r, &ni);
  head_math(e, n, "");
  L(e, "%s(%ld, %ld, %ld, %s, %s, %s);", bpm(e, "gather_bwd"), ni, r, rows, V(e, x), V(e, dy), V(e, n));
  return true;
}

static bool bound_bn_bwd_gain(Emit *e, Node *n) {
  Node *bn = n->in[0], *dy = n->in[1];
  head_math(e, n, "");
  L(e, "%s(%ld, %ld, %s, %s, %s, %s);", bpm(e, "bn_bwd_gain"), bn_rows(bn), bn_cols(bn), V(e, dy),
    saved(e, bn, "xhat"), saved(e, bn, "acc1"), V(e, n));
  return true;
}

static bool bound_softmax_bwd(Emit *e, Node *n) {
  long outer, len, inner;
  split_axis(&n->in[0]->shape, n->axis, &outer, &len, &inner);
  if (inner != 1 || n->in[0]->op == OP_causal_softmax)   /* that one is a kernel in both builds */
    return false;
  head_math(e, n, "");
  L(e, "%s(%ld, %ld, %s, %s, %s);", kern(e, "softmax_bwd"), outer, len, V(e, n->in[0]), V(e, n->in[1]),
    V(e, n));
  return true;
}

static BoundFn *const jit_bound[OP_COUNT] = {
  [OP_add] = bound_add,       [OP_sub] = bound_sub,           [OP_mul] = bound_mul,
  [OP_div] = bound_div,       [OP_expand] = bound_expand,     [OP_gather] = bound_gather,
  [OP_gather_bwd] = bound_gather_bwd, [OP_bn_bwd_gain] = bound_bn_bwd_gain,
  [OP_softmax_bwd] = bound_softmax_bwd,
};

/* One step's block: a printer per step kind. */
static void emit_layer(Emit *e, Layer *ly, bool backward);
static void emit_step(Emit *e, const Step *st) {
  switch (st->kind) {
  case ST_NODE:
    if (!(e->opt->for_jit && jit_bound[st->node->op] && jit_bound[st->node->op](e, st->node)))
      optab[st->node->op].emit(e, st->node);
    return;
  case ST_GEMM_BIAS: emit_gemm_bias(e, st->node, st->aux); return;
  case ST_BN_TANH: bn_forward(e, st->node, st->aux); return;
  case ST_BN_BWD: emit_bn_group(e, st->bg); return;
  case ST_LAYER_FWD: emit_layer(e, st->ly, false); return;
  case ST_LAYER_BWD: emit_layer(e, st->ly, true); return;
  case ST_CAUSAL_SOFTMAX: causal_softmax(e, st->node, st->aux, st->scale); return;
  case ST_SOFTMAX_BWD_SCALED: causal_softmax_bwd(e, st->node, st->aux, st->scale); return;
  case ST_GEMM_LOWER: matmul(e, st->node, 1, st->full); return;
  case ST_GEMM_TRI_A: matmul(e, st->node, 2, false); return;
  case ST_SWAP_SLICE: emit_swap_slice(e, st->node, st->aux); return;
  case ST_CAT_PARTS: emit_cat_parts(e, st->node, st->cat); return;
  case ST_LN_BWD_ADD: emit_ln_bwd_add(e, st->node, st->aux); return;
  case ST_ADD_LN: emit_add_ln(e, st->node, st->aux); return;
  case ST_SCORES: scores(e, st->node, st->aux, st->prod, st->scale, false, false); return;
  case ST_SCORES_BWD: scores(e, st->node, st->aux, st->prod, st->scale, true, st->full); return;
  }
  unreachable();
}

static void emit_schedule(Emit *e, const Schedule *s) {
  for (int i = 0; i < s->n; i++)
    emit_step(e, &s->steps[i]);
}

/* The functions that run kernels point them at the state's scratch (the calling
 * thread's block, kernels.h "scratch") and give the thread its previous block
 * back on return: a model called from inside another model's code, or two
 * states on one thread one after the other, each use their own. */
#define SCRATCH_ENTER "void *scratch_prev_ = bp_scratch_use(s->BP_scratch);"
#define SCRATCH_LEAVE "bp_scratch_use(scratch_prev_);"

static void fn_forward(Emit *e, const char *p, bool eval) {
  Graph *g = e->g;
  e->eval = eval;
  buf_printf(e->b, "double %s_forward%s(%s_state *s) {\n", p, eval ? "_eval" : "", p);
  L(e, "%s", SCRATCH_ENTER);
  L(e, "s->bad_index = 0;");
  emit_schedule(e, eval ? &e->plan->eval : &e->plan->train);
  e->eval = false;
  for (int i = 0; i < g->nforward && !eval; i++) {   /* running statistics, when asked */
    Node *n = g->nodes[i];
    if (n->op != OP_batchnorm)
      continue;
    L(e, "if (s->bn_momentum > 0)   /* %s: (1 − m)·run + m·batch */", lab(e, n));
    L(e, "  for (int j = 0; j < %ld; j++) {", bn_cols(n));
    L(e, "    double r = %s[j];", saved(e, n, "rstd"));
    L(e, "    %s[j] = (real)((1 - s->bn_momentum) * %s[j] + s->bn_momentum * %s[j]);", saved(e, n, "run_mean"),
      saved(e, n, "run_mean"), saved(e, n, "mean"));
    L(e, "    %s[j] = (real)((1 - s->bn_momentum) * %s[j] + s->bn_momentum * (1 / (r * r) - %s));",
      saved(e, n, "run_var"), saved(e, n, "run_var"), dlit(n->num));
    L(e, "  }");
  }
  if (!g->loss)
    die("graph has no loss");
  L(e, "%s", SCRATCH_LEAVE);
  L(e, "return s->bad_index ? (double)NAN : (double)%s[0];", V(e, g->loss));
  buf_printf(e->b, "}\n\n");
}

static void fn_backward(Emit *e, const char *p) {
  buf_printf(e->b, "void %s_backward(%s_state *s) {\n", p, p);
  L(e, "%s", SCRATCH_ENTER);
  /* every grad is written whole by its node, except those nothing flows into */
  for (int k = 0; k < e->nfields; k++)
    if (e->fields[k].unwritten)
      L(e, "memset(s->%s, 0, sizeof s->%s);   /* no gradient flows here */", e->fields[k].cname,
        e->fields[k].cname);
  emit_schedule(e, &e->plan->backward);
  for (int i = 0; i < e->ncopies; i++) {
    Copy *c = &e->copies[i];
    L(e, "%smemcpy(s->%s, %s, sizeof s->%s);   /* %s is %s */", e->plan->inlayer[c->src->id] ? "if (!s->lean) " : "",
      c->dst, V(e, c->src), c->dst, c->dst, lab(e, c->src));
  }
  L(e, "%s", SCRATCH_LEAVE);
  buf_printf(e->b, "}\n\n");
}

static void fn_sgd(Emit *e, const char *p) {
  buf_printf(e->b, "void %s_sgd_step(%s_state *s, double lr) {\n", p, p);
  L(e, "(void)s, (void)lr;");
  /* the params are one run of fields and the grads of params another, in the same
   * order (the state's layout): one call over all of them when the k-th grad
   * field is the k-th param's grad throughout */
  int np = 0, ng = 0, same = 1;
  long total = 0;
  const char *p0 = NULL, *g0 = NULL;
  for (int i = 0; i < e->nfields; i++)
    if (e->fields[i].kind == BP_PARAM) {
      Field *f = &e->fields[i];
      int k = 0;
      const char *gname = NULL;
      for (int j = 0; j < e->nfields && !gname; j++)
        if (e->fields[j].tname && e->fields[j].kind == BP_GRAD && k++ == np)
          gname = e->fields[j].cname;
      if (!f->tname || !f->grad || !gname || strcmp(gname, f->grad) != 0)
        same = 0;
      if (!p0)
        p0 = f->cname, g0 = f->grad;
      np++, total += shape_numel(&f->shape);
    }
  /* params and their grads each consecutive fields of the model's float type */
  int lastp = -1, lastg = -1;
  for (int i = 0; i < e->nfields; i++) {
    Field *f = &e->fields[i];
    bool isp = f->kind == BP_PARAM, isg = f->kind == BP_GRAD && f->tname && ng < np;
    if (!isp && !isg)
      continue;
    if (f->elem != 0 || (isp && lastp >= 0 && lastp != i - 1) || (isg && lastg >= 0 && lastg != i - 1))
      same = 0;
    if (isp)
      lastp = i;
    else
      lastg = i, ng++;
  }
  if (np > 1 && same) {
    L(e, "%s(%ld, s->%s, s->%s, lr);   /* all %d params: one run */", kern(e, "sgd"), total, p0, g0, np);
    buf_printf(e->b, "}\n\n");
    return;
  }
  for (int i = 0; i < e->nfields; i++) {
    Field *f = &e->fields[i];
    if (f->kind != BP_PARAM)
      continue;
    long ne = shape_numel(&f->shape);
    L(e, "%s(%ld, s->%s, s->%s, lr);", kern(e, "sgd"), ne, f->cname, f->grad);
  }
  buf_printf(e->b, "}\n\n");
}

/* AdamW over the caller's moments: the kernel bp_adamw_torch (torch.optim.AdamW's order of operations,
 * as templates/trainer.c's tr_adamw): m and v hold one element per param
 * element, the params taken in the state's field order; t is the update's
 * number, from 1.  And the kernels' thread count, for callers of the API. */
static void fn_adamw(Emit *e, const char *p) {
  const char *r = e->opt->dtype == DT_F32 ? "float" : "double";
  buf_printf(e->b, "void %s_adamw_step(%s_state *s, %s *m, %s *v, long t, double lr, double beta1, double beta2,\n"
                   "                   double eps, double weight_decay) {\n", p, p, r, r);
  L(e, "(void)s, (void)m, (void)v, (void)t, (void)lr, (void)beta1, (void)beta2, (void)eps, (void)weight_decay;");
  L(e, "double b1c = 1 - pow(beta1, (double)t), b2c = 1 - pow(beta2, (double)t);");
  L(e, "real b1 = (real)beta1, b2 = (real)beta2, e = (real)eps;");
  L(e, "real decay = (real)(1 - lr * weight_decay), step = (real)(lr / b1c), c2 = (real)sqrt(b2c);");
  L(e, "(void)b1, (void)b2, (void)e, (void)decay, (void)step, (void)c2;");
  long at = 0;
  for (int i = 0; i < e->nfields; i++) {
    Field *f = &e->fields[i];
    if (f->kind != BP_PARAM)
      continue;
    long ne = shape_numel(&f->shape);
    L(e, "%s(%ld, s->%s, s->%s, m + %ld, v + %ld, b1, b2, e, decay, step, c2);", kern(e, "adamw_torch"), ne,
      f->cname, f->grad, at, at);
    at += ne;
  }
  buf_printf(e->b, "}\n\n");
  buf_printf(e->b, "void %s_set_threads(int n) { bp_set_threads(n); }\n\n", p);
}

/* Marks n and every forward node it depends on. */
static void mark_deps(Node *n, bool *mark) {
  if (mark[n->id])
    return;
  mark[n->id] = true;
  for (int k = 0; k < optab[n->op].arity; k++)
    mark_deps(n->in[k], mark);
}

/* Batchnorm calibration, the lecture's "calibrate the batch norm at the end of
 * training", for any number of batchnorms: a batchnorm's input depends on the
 * batchnorms upstream of it, so their statistics must be final before its own
 * are gathered.  Pass p gathers the statistics of the batchnorms with p
 * batchnorms upstream (their depth), running the inference forward (the
 * shallower ones from their calibrated statistics) up to their inputs. */
/* the most batchnorms on one path ending at n, n included (memo: value + 1) */
static int bn_count(Node *n, int *memo) {
  if (!memo[n->id]) {
    int d = 0;
    for (int k = 0; k < optab[n->op].arity; k++) {
      int dk = bn_count(n->in[k], memo);
      d = dk > d ? dk : d;
    }
    memo[n->id] = d + (n->op == OP_batchnorm) + 1;
  }
  return memo[n->id] - 1;
}

static void fn_calib(Emit *e, const char *p) {
  Graph *g = e->g;
  int *memo = arena_alloc(sizeof(int) * (size_t)g->nnodes);
  int *depth = arena_alloc(sizeof(int) * (size_t)g->nnodes);
  int npass = 0;
  for (int i = 0; i < g->nforward; i++) {
    Node *n = g->nodes[i];
    if (n->op != OP_batchnorm)
      continue;
    depth[n->id] = bn_count(n, memo) - 1;
    npass = depth[n->id] + 1 > npass ? depth[n->id] + 1 : npass;
  }
  e->calib_passes = npass;

  buf_printf(e->b, "void %s_calib_begin(%s_state *s, int pass) {\n", p, p);
  L(e, "s->calib_pass = pass;");
  for (int i = 0; i < g->nforward; i++) {
    Node *n = g->nodes[i];
    if (n->op != OP_batchnorm)
      continue;
    const char *b = e->save[n->id];
    L(e, "if (pass == %d) {   /* %s */", depth[n->id], lab(e, n));
    L(e, "  s->%s_cal_n[0] = 0;", b);
    L(e, "  memset(s->%s_cal_mean, 0, sizeof s->%s_cal_mean);", b, b);
    L(e, "  memset(s->%s_cal_m2, 0, sizeof s->%s_cal_m2);", b, b);
    L(e, "}");
  }
  buf_printf(e->b, "}\n\n");

  /* inference-mode forward up to the inputs of this pass's batchnorms, then
   * merge the first nrows rows into the running mean and M2 (Chan et al.) */
  buf_printf(e->b, "void %s_calib_accum(%s_state *s, int nrows) {\n", p, p);
  L(e, "(void)nrows;");
  L(e, "%s", SCRATCH_ENTER);
  if (npass)
    L(e, "switch (s->calib_pass) {");
  for (int pass = 0; pass < npass; pass++) {
    bool *need = arena_alloc((size_t)g->nnodes);
    for (int i = 0; i < g->nforward; i++)
      if (g->nodes[i]->op == OP_batchnorm && depth[i] == pass)
        mark_deps(g->nodes[i]->in[0], need);
    L(e, "case %d:", pass);
    e->eval = true;
    for (int i = 0; i < e->plan->eval.n; i++)
      if (need[e->plan->eval.steps[i].node->id])
        emit_step(e, &e->plan->eval.steps[i]);
    e->eval = false;
    for (int i = 0; i < g->nforward; i++) {
      Node *n = g->nodes[i];
      if (n->op != OP_batchnorm || depth[i] != pass)
        continue;
      /* the first nrows examples (the batch axis) are R rows each of [rows, D] */
      Node *x = n->in[0];
      long N = x->shape.dim[0], R = bn_rows(n) / (N ? N : 1), D = bn_cols(n);
      const char *b = e->save[n->id];
      const char *m = R == 1 ? arena_printf("nrows < 0 ? 0 : nrows > %ld ? %ld : nrows", N, N)
                             : arena_printf("(nrows < 0 ? 0 : nrows > %ld ? %ld : nrows) * %ld", N, N, R);
      if (e->opt->for_jit) {   /* the same sums, by a gcc-compiled kernel */
        L(e, "/* calibration of %s */", lab(e, n));
        L(e, "%s(%s, %ld, %s, s->%s_cal_n, s->%s_cal_mean, s->%s_cal_m2);", bpm(e, "bn_calib"), m, D, V(e, x), b, b,
          b);
        continue;
      }
      L(e, "{ /* calibration of %s */", lab(e, n));
      L(e, "  int m = %s;", m);
      L(e, "  if (m > 0) {");
      L(e, "    double na = s->%s_cal_n[0], nt = na + m;", b);
      L(e, "    for (int j = 0; j < %ld; j++) {", D);
      L(e, "      double bm = 0, b2 = 0;");
      L(e, "      for (int i = 0; i < m; i++)");
      L(e, "        bm += %s[i*%ld + j];", V(e, x), D);
      L(e, "      bm /= m;");
      L(e, "      for (int i = 0; i < m; i++) {");
      L(e, "        double d = %s[i*%ld + j] - bm;", V(e, x), D);
      L(e, "        b2 += d * d;");
      L(e, "      }");
      L(e, "      double delta = bm - s->%s_cal_mean[j];", b);
      L(e, "      s->%s_cal_mean[j] += delta * m / nt;", b);
      L(e, "      s->%s_cal_m2[j] += b2 + delta * delta * na * m / nt;", b);
      L(e, "    }");
      L(e, "    s->%s_cal_n[0] = nt;", b);
      L(e, "  }");
      L(e, "}");
    }
    L(e, "break;");
  }
  if (npass)
    L(e, "}");
  L(e, "%s", SCRATCH_LEAVE);
  buf_printf(e->b, "}\n\n");

  buf_printf(e->b, "void %s_calib_end(%s_state *s) {\n", p, p);
  L(e, "(void)s;");
  for (int i = 0; i < g->nforward; i++) {
    Node *n = g->nodes[i];
    if (n->op != OP_batchnorm)
      continue;
    const char *b = e->save[n->id];
    long D = numel(n->in[1]);
    L(e, "if (s->calib_pass == %d) {   /* %s: the ranks' sums merged, then the statistics */", depth[i], lab(e, n));
    L(e, "  bp_bn_calib_merge(s->ranks, %ld, s->%s_cal_n, s->%s_cal_mean, s->%s_cal_m2);", D, b, b, b);
    L(e, "  for (int j = 0; j < %ld; j++) {", D);
    L(e, "    s->%s_run_mean[j] = (real)s->%s_cal_mean[j];", b, b);
    L(e, "    s->%s_run_var[j] = (real)(s->%s_cal_n[0] > 1 ? s->%s_cal_m2[j] / (s->%s_cal_n[0] - 1) : 0);", b, b, b, b);
    L(e, "  }");
    L(e, "}");
  }
  buf_printf(e->b, "}\n\n");
}

/* a batchnorm in the forward: the state holds its ranks and momentum, the
 * table its setters */
static bool has_batchnorm(const Graph *g) {
  for (int i = 0; i < g->nforward; i++)
    if (g->nodes[i]->op == OP_batchnorm)
      return true;
  return false;
}

static void fn_model(Emit *e, const char *p, const char *stem) {
  Graph *g = e->g;
  bool f32 = e->opt->dtype == DT_F32;
  Node *logits = layout_logits(g);
  int loss_index = -1, logits_index = -1, nt = 0;
  long nparam = 0;
  const char *first_param = NULL, *first_grad = NULL;
  buf_printf(e->b, "static const BpTensor %s_tensors[] = {\n", p);
  for (int i = 0; i < e->nfields; i++) {
    Field *f = &e->fields[i];
    if (!f->tname)
      continue;
    if (f->kind == BP_PARAM) {
      nparam += shape_numel(&f->shape);
      if (!first_param)
        first_param = f->cname;
    }
    if (f->kind == BP_GRAD && !first_grad)
      first_grad = f->cname;
    if (f->kind == BP_ACT && g->loss && strcmp(f->cname, e->buf[g->loss->id]) == 0)
      loss_index = nt;
    if (f->kind == BP_ACT && logits && strcmp(f->cname, e->buf[logits->id]) == 0)
      logits_index = nt;
    Buf d = {0};
    for (int k = 0; k < BP_MAXRANK; k++)
      buf_printf(&d, "%s%d", k ? ", " : "", k < f->shape.rank ? f->shape.dim[k] : 0);
    buf_printf(e->b, "  {\"%s\", %s, %s, %d, {%s}, %ld, offsetof(%s_state, %s), %d},\n", f->tname,
            (const char *[]){"BP_INPUT", "BP_PARAM", "BP_GRAD", "BP_ACT", "BP_STAT"}[f->kind],
            f->elem == 1 ? "BP_I32" : f32 ? "BP_F32" : "BP_F64", f->shape.rank, buf_done(&d),
            shape_numel(&f->shape), p, f->cname, f->line);
    nt++;
  }
  if (logits_index < 0)
    for (int i = 0, k = 0; i < e->nfields; i++)
      if (e->fields[i].tname) {
        if (e->fields[i].kind == BP_ACT && strcmp(e->fields[i].tname, "logits") == 0)
          logits_index = k;
        k++;
      }
  buf_printf(e->b, "};\n\n");
  static const char *const w[][3] = {
    {"void", "init", "void *st, uint64_t seed"}, {"double", "forward", "void *st"},
    {"void", "backward", "void *st"},            {"void", "sgd_step", "void *st, double lr"},
    {"double", "forward_eval", "void *st"},      {"void", "calib_begin", "void *st, int pass"},
    {"void", "calib_accum", "void *st, int nrows"}, {"void", "calib_end", "void *st"},
  };
  static const char *const args[] = {"st, seed", "st", "st", "st, lr", "st", "st, pass", "st, nrows", "st"};
  for (int i = 0; i < 8; i++)
    buf_printf(e->b, "static %s %s_abi_%s(%s) { %s%s_%s(%s); }\n", w[i][0], p, w[i][1], w[i][2],
            strcmp(w[i][0], "void") ? "return " : "", p, w[i][1], args[i]);
  buf_printf(e->b, "static void %s_abi_set_lean(void *st, int on) { ((%s_state *)st)->lean = on != 0; }\n", p, p);
  bool has_bn = has_batchnorm(g);
  if (has_bn) {
    buf_printf(e->b, "static void %s_abi_set_bn_momentum(void *st, double m) { ((%s_state *)st)->bn_momentum = m; }\n",
               p, p);
    buf_printf(e->b, "static void %s_abi_set_ranks(void *st, const BpRanks *r) { ((%s_state *)st)->ranks = r; }\n",
               p, p);
  }
  buf_printf(e->b, "\nconst BpModel %s_model = {\n", p);
  buf_printf(e->b, "  \"%s\", %s, sizeof(%s_state), %d, %s_tensors,\n", stem, f32 ? "BP_F32" : "BP_F64", p, nt, p);
  if (first_param)
    buf_printf(e->b, "  offsetof(%s_state, %s), offsetof(%s_state, %s), %ld,\n", p, first_param, p, first_grad,
            nparam);
  else
    buf_printf(e->b, "  0, 0, 0,\n");
  buf_printf(e->b, "  %d, %d,\n", loss_index, logits_index);
  buf_printf(e->b, "  %s_abi_init, %s_abi_forward, %s_abi_backward, %s_abi_sgd_step, %s_abi_forward_eval,\n", p,
          p, p, p, p);
  buf_printf(e->b, "  %d, %s_abi_calib_begin, %s_abi_calib_accum, %s_abi_calib_end, %s_abi_set_lean, %s,\n",
             e->calib_passes, p, p, p, p, has_bn ? arena_printf("%s_abi_set_bn_momentum", p) : "NULL");
  buf_printf(e->b, "  %s, %d,\n};\n", has_bn ? arena_printf("%s_abi_set_ranks", p) : "NULL",
             has_bn && e->opt->sync_bn);
}

/* ---- the translation unit ------------------------------------------------------------ */

/* The kernels: definitions (static) pasted into the gcc file; prototypes
 * only for the JIT, which links bpgen's own gcc-compiled copies. */
static const char *kernels_text(const EmitOptions *opt) {
  const char *k = embedded_text("runtime/kernels.h");
  if (!opt->for_jit)
    return k;
  return arena_printf("#define BP_KERNELS_DECLARE_ONLY\n%s#undef BP_KERNELS_DECLARE_ONLY\n"
                      "#define BPM_KERNELS_DECLARE_ONLY\n%s#undef BPM_KERNELS_DECLARE_ONLY\n",
                      k, embedded_text("templates/model_kernels.h"));
}

static const char *c_ident(const char *s) {
  char *p = arena_strndup(s, strlen(s));
  for (char *c = p; *c; c++)
    if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || *c == '_' || (c != p && *c >= '0' && *c <= '9')))
      *c = '_';
  return *p ? p : "model";
}

char *emit_c(Graph *g, const EmitOptions *opt, char **header) {
  Emit em = {0}, *e = &em;
  e->g = g;
  e->opt = opt;
  e->sfx = opt->dtype == DT_F32 ? "f" : "";
  /* sizes: kernels index a tensor with int, libtcc lays out structs of less
   * than 2 GiB (it wraps larger sizes silently) */
  Node *big = NULL;
  for (int i = 0; i < g->nnodes; i++)
    if (!big || shape_numel(&g->nodes[i]->shape) > shape_numel(&big->shape))
      big = g->nodes[i];
  if (big && shape_numel(&big->shape) > (1L << 30))
    error_tok(big->tok, "%s tensor %s has %ld elements; bpgen handles up to 2^30 (1073741824) per tensor",
              big->is_backward ? "the gradient" : "this", shape_str(&big->shape), shape_numel(&big->shape));

  /* spec lines for the comments */
  const char *text = g->file && g->file->text ? g->file->text : "";
  int nl = 1;
  for (const char *c = text; *c; c++)
    nl += *c == '\n';
  e->lines = arena_alloc(sizeof(char *) * (size_t)(nl + 2));
  e->nlines = nl;
  e->lines[1] = text;
  for (int k = 2, i = 0; text[i]; i++)
    if (text[i] == '\n')
      e->lines[k++] = text + i + 1;

  const char *p = c_ident(opt->prefix ? opt->prefix : "model");
  e->plan = plan_build(g, !opt->sync_bn);
  Layout *lay = layout_build(g, e->plan);
  e->buf = lay->buf, e->label = lay->label, e->save = lay->save, e->save2 = lay->save2;
  e->fields = lay->fields, e->nfields = lay->nfields, e->copies = lay->copies, e->ncopies = lay->ncopies;
  if (opt->for_jit) {
    double bytes = 0;
    for (int i = 0; i < e->nfields; i++)
      bytes += (double)shape_numel(&e->fields[i].shape) * (e->fields[i].elem == 1 ? 4 : e->fields[i].elem == 2 ||
                                                           opt->dtype == DT_F64 ? 8 : 4) + 64;
    if (bytes > 2147483647.0 - 4096)
      error_tok(big->tok, "the model's state needs %.2f GB (this tensor %s alone %.2f GB); the in-memory "
                "compiler (libtcc) handles states up to 2 GiB: make the dims smaller, or write the C with "
                "`bpgen SPEC -o model.c` (or --trainer) and build it with gcc", bytes / 1e9, shape_str(&big->shape),
                (double)shape_numel(&big->shape) * (opt->dtype == DT_F64 ? 8 : 4) / 1e9);
  }

  /* the header: fields of the state struct */
  bool f32 = opt->dtype == DT_F32;
  Buf fb = {0};
  /* Activations, intermediate grads and scratch of 8 MB or more (far beyond the
   * caches) start on a 64-byte boundary: the kernels write them by streaming
   * stores, which need one.  Smaller ones keep the packed layout.  Params and the
   * grads of params (the first grads, as many elements) stay one run each. */
  long nparam_el = 0, grad_el = 0;
  for (int i = 0; i < e->nfields; i++)
    if (e->fields[i].tname && e->fields[i].kind == BP_PARAM)
      nparam_el += shape_numel(&e->fields[i].shape);
  for (int i = 0; i < e->nfields; i++) {
    Field *f = &e->fields[i];
    const char *ty = f->elem == 1 ? "int32_t" : f->elem == 2 ? "double" : f32 ? "float" : "double";
    bool run = f->tname && (f->kind == BP_PARAM || f->kind == BP_INPUT || f->kind == BP_STAT ||
                            (f->kind == BP_GRAD && grad_el < nparam_el));
    if (f->tname && f->kind == BP_GRAD)
      grad_el += shape_numel(&f->shape);
    long bytes = shape_numel(&f->shape) * (f->elem == 2 || !f32 ? 8 : 4);
    bool align = !run && f->elem != 1 && bytes >= 8000000;
    buf_printf(&fb, "  %s %s[%ld]%s;   /* %s %s", ty, f->cname, shape_numel(&f->shape),
            align ? " __attribute__((aligned(64)))" : "", shape_str(&f->shape),
            f->tname ? kind_word(f->kind) : "scratch");
    if (f->note)
      buf_printf(&fb, ": %s", f->note);
    if (f->line > 0)
      buf_printf(&fb, ", line %d", f->line);
    buf_printf(&fb, " */\n");
  }
  buf_printf(&fb, "  int32_t bad_index;   /* set by forward when an index was out of range */\n");
  buf_printf(&fb, "  int32_t lean;        /* set_lean: skip writing what training does not read */\n");
  buf_printf(&fb, "  int32_t calib_pass;  /* set by calib_begin: the batchnorms being calibrated */\n");
  buf_printf(&fb, "  double bn_momentum;  /* set_bn_momentum: running statistics (0: off) */\n");
  bool has_bn = has_batchnorm(g);
  if (has_bn)
    buf_printf(&fb, "  const BpRanks *ranks;   /* set_ranks: data-parallel ranks (NULL: one process) */\n");
  size_t scratch = BP_WS_BYTES(f32 ? 4 : 8);
  buf_printf(&fb, "  unsigned char BP_scratch[%zu];   /* the kernels' scratch for the calling thread */\n", scratch);
  char *upper = arena_strndup(p, strlen(p));
  for (char *c = upper; *c; c++)
    if (*c >= 'a' && *c <= 'z')
      *c = (char)(*c - 'a' + 'A');
  const char *guard = arena_printf("BPGEN_%s_H", upper);
  const char *keys[] = {"prefix", "spec", "dtype", "guard", "runtime", "fields", "real", "nparam", "mbytes",
                        "PREFIX", "scratch", "wscratch"};
  const char *vals[] = {p, spec_comment(e), f32 ? "f32" : "f64", guard, embedded_text("runtime/bp_runtime.h"),
                        buf_done(&fb), f32 ? "float" : "double", arena_printf("%ld", nparam_el),
                        arena_printf("%ld", 2 * nparam_el * (f32 ? 4 : 8)), upper,
                        arena_printf("%zu", scratch), arena_printf("%zu", (size_t)BP_WS_BYTES(8))};
  char *head_text = template_fill(embedded_text("templates/model_head.h"), keys, vals, 12);
  if (header)
    *header = head_text;

  Buf out = {0};
  e->b = &out;
  buf_printf(&out, "/* %s.c: forward, backward and training step of %s, generated by bpgen.\n", p, spec_comment(e));
  buf_printf(&out, " * Generated file: do not edit.  First the API (the header, also written as a .h file),\n"
                " * then the kernels it calls, then the model: %s_init, %s_forward, %s_backward, ...\n"
                " * Each block of the model starts with #line at the spec line it comes from. */\n", p, p, p);
  buf_printf(&out, "#include <math.h>\n#include <stddef.h>\n#include <stdint.h>\n#include <string.h>\n\n");
  buf_printf(&out, "%s\n", head_text);
  buf_printf(&out, "%s\n", kernels_text(opt));
  buf_printf(&out, "typedef %s real;\n\n", f32 ? "float" : "double");
  if (has_bn)   /* the batchnorm's loops over the ranks (--sync-bn, calibration) */
    buf_printf(&out, "%s\n", embedded_text("templates/bn_sync.h"));
  fn_init(e, p);
  fn_forward(e, p, false);
  fn_backward(e, p);
  fn_sgd(e, p);
  fn_adamw(e, p);
  fn_forward(e, p, true);
  fn_calib(e, p);
  fn_model(e, p, opt->prefix ? opt->prefix : "model");
  return buf_done(&out);
}
