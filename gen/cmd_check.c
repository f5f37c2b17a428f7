/* cmd_check.c: `bpgen check SPEC`: the lecture's cmp table -- the gradients of
 * generated code (compiled in memory by libtcc) against the reference runtime,
 * for every param and named intermediate, on the same params and inputs.
 *
 * Both sides start from the same seed; the generated side's params are copied
 * into the runtime anyway, so a difference in the table is a difference in the
 * gradients, never in the starting point (an init mismatch is reported).  Int
 * inputs are drawn valid for their use (rows of the gathered table, classes);
 * float inputs are N(0,1) -- the runtime's own draws (ref_random_inputs).
 * The finite-difference column perturbs a few elements of each param in an
 * f64 runtime and compares the central difference with the generated
 * gradient.
 *
 * Pass/fail: maxdiff <= tol * scale + 4 * u * L * max(T, scale), tol 1e-9 (f64) or
 * 1e-4 (f32) and scale the tensor's largest reference magnitude -- floored at
 * 1% of the largest over all tensors, so a gradient that is zero in exact
 * arithmetic (b1 before a batchnorm) is judged against the model's gradient
 * scale, not its own noise.  The second term is the rounding a long sum owes:
 * the generated code sums in its own float type (the reference accumulates in
 * double), and a sum of n terms of size T drifts by about u*n*T, u = 2^-24
 * (f32) or 2^-53 (f64), however small the result.  L adds up, along the
 * longest path from the loss, the sums the gradient passes through (matmul
 * inner dims, broadcasts undone, batchnorm/softmax/layernorm rows, gathered
 * rows, fan-out) and those that made the values its rules read; T is the
 * largest term fed into the tensor's gradient sums (the consumers' gradients,
 * times the other operand for mul and matmul, over the length for mean and
 * cross_entropy); the factor 4 is margin over that typical drift.  A sum's
 * own value counts sqrt(n) (its relative error), a gradient's sum n (its
 * error relative to one term).  A tensor holding NaN or Inf on either side is
 * never within tolerance, and no part of any scale.
 */
#include "bpgen.h"
#include "bp_runtime.h"
#include "ref.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char check_usage[] =
  "usage: bpgen check SPEC [--dtype f32|f64] [-D NAME=INT]... [--seed N] [--expand] [--tol X]\n"
  "\n"
  "Generated gradients (compiled in memory) against the reference runtime, per\n"
  "param and named tensor, as the lecture's cmp: exact (bitwise), approximate\n"
  "(allclose rtol 1e-5, atol 1e-8), maxdiff, and for params a central finite\n"
  "difference in f64.  Exit status 1 when a tensor is out of tolerance.\n"
  "  --dtype f32|f64  float type of the generated code (default f32)\n"
  "  --expand         generate from the primitive (expanded) graph\n"
  "  --tol X          relative tolerance (default 1e-4 for f32, 1e-9 for f64); the\n"
  "                   rounding long sums owe is allowed on top (see the table's header)\n"
  "  --json           the table as one JSON object on standard output, numbers at\n"
  "                   full precision (the text goes to standard error)\n";

static double get(const BpModel *m, const void *st, const BpTensor *t, long i) {
  const char *p = (const char *)st + t->offset;
  if (t->dtype == BP_F32)
    return ((const float *)p)[i];
  if (t->dtype == BP_F64)
    return ((const double *)p)[i];
  (void)m;
  return ((const int32_t *)p)[i];
}

static void set(void *st, const BpTensor *t, long i, double v) {
  char *p = (char *)st + t->offset;
  if (t->dtype == BP_F32)
    ((float *)p)[i] = (float)v;
  else if (t->dtype == BP_F64)
    ((double *)p)[i] = v;
  else
    ((int32_t *)p)[i] = (int32_t)v;
}

/* A compiled model and one state. */
typedef struct Gen {
  Jit *jit;
  const BpModel *m;
  void *st;
} Gen;

static Gen gen_compile(Graph *g, DType dt, const char *name) {
  EmitOptions opt = {dt, "check", true, false, false};
  const char *src = emit_c(g, &opt, NULL);
  Gen gen = {0};
  gen.jit = jit_compile(src, name);
  gen.m = jit_symbol(gen.jit, "check_model");
  if (!gen.m)
    die("generated code lacks check_model");
  size_t sz = (gen.m->state_size + 63) / 64 * 64;
  gen.st = aligned_alloc(64, sz);
  if (!gen.st)
    die("out of memory");
  memset(gen.st, 0, sz);
  return gen;
}

static void gen_free(Gen *gen) {
  free(gen->st);
  jit_free(gen->jit);
}

/* Random inputs as the runtime draws them (ints valid for their use, floats
 * N(0,1)), set alike in the generated state and both runtimes. */
static void fill_inputs(Graph *gf, Gen *gen, Ref *r, Ref *r64, uint64_t seed) {
  ref_random_inputs(r, seed);
  for (int i = 0; i < gf->nforward; i++) {
    Node *n = gf->nodes[i];
    if (n->op != OP_input)
      continue;
    const BpTensor *t = bp_find_tensor(gen->m, n->name, -1);
    if (!t)
      die("generated model has no input %s", n->name);
    for (long k = 0; k < shape_numel(&n->shape); k++) {
      if (n->type == TY_INT) {
        set(gen->st, t, k, ref_idata(r, n)[k]);
        ref_idata(r64, n)[k] = ref_idata(r, n)[k];
      } else {
        set(gen->st, t, k, ref_data(r, n)[k]);
        double v = get(gen->m, gen->st, t, k);   /* as the generated side holds it */
        ref_data(r, n)[k] = ref_data(r64, n)[k] = v;
      }
    }
  }
}

typedef struct Row {
  const char *name;
  Shape shape;
  bool exact, approx, pass;
  long nonfinite;                      /* elements NaN or Inf on either side */
  double maxdiff, maxulp, scale, fd;   /* fd < 0: no column */
  double len, terms, allowed;          /* rounding: L, T, and the absolute bound */
} Row;

/* ---- how much rounding a tensor's gradient may carry ------------------------ */

static double max_abs(const double *v, long n) {
  double m = 0;
  for (long i = 0; i < n; i++)
    if (fabs(v[i]) > m && isfinite(v[i]))
      m = fabs(v[i]);
  return m;
}

/* The length of the longest sum n's forward value is computed by (its own,
 * not its inputs'). */
static double fwd_len(const Node *n) {
  const Shape *a = n->op == OP_input || n->op == OP_param || n->op == OP_const ? NULL : &n->in[0]->shape;
  switch (n->op) {
  case OP_sum: case OP_mean:
    return n->axis < 0 ? (double)shape_numel(a) : a->dim[n->axis];
  case OP_matmul:
    return n->transa ? a->dim[a->rank - 2] : a->dim[a->rank - 1];
  case OP_softmax:
    return a->dim[n->axis];
  case OP_cross_entropy:   /* the rows, then a row's K */
    return (double)shape_numel(a) / a->dim[a->rank - 1] + a->dim[a->rank - 1];
  case OP_batchnorm:   /* rows: every axis but the last */
    return (double)shape_numel(a) / a->dim[a->rank - 1];
  case OP_layernorm:
    return a->dim[a->rank - 1];
  default:
    return 0;
  }
}

/* The length of the sum that makes c's contribution to the gradient of its
 * input k: a broadcast undone, a matmul's other inner dim, the rows of a
 * normalisation, the gathered rows that may land on one table row. */
static double bwd_len(const Node *c, int k) {
  const Node *t = c->in[k];
  double ratio = (double)shape_numel(&c->shape) / (double)shape_numel(&t->shape), own = 0;
  switch (c->op) {
  case OP_matmul: {
    const Shape *a = &c->in[0]->shape;
    ratio *= c->transa ? a->dim[a->rank - 2] : a->dim[a->rank - 1];
    break;
  }
  case OP_softmax:
    own = t->shape.dim[c->axis];
    break;
  case OP_cross_entropy:
    own = t->shape.dim[t->shape.rank - 1];
    break;
  case OP_batchnorm:
    own = (double)shape_numel(&c->in[0]->shape) / c->in[0]->shape.dim[c->in[0]->shape.rank - 1];
    break;
  case OP_layernorm:
    own = k == 0 ? t->shape.dim[t->shape.rank - 1] : 0;
    break;
  case OP_gather:
    own = k == 0 ? (double)shape_numel(&c->in[1]->shape) : 0;
    break;
  default:
    break;
  }
  return ratio > 1 && ratio > own ? ratio : own;
}

/* For every forward float node of g: len[id] = L and terms[id] = T (see the
 * file's opening comment), from the graph and the reference's values and
 * gradients (after ref_backward).  Returns the length of the sums that made the
 * loss's value. */
static double rounding_lengths(Graph *g, Ref *r, double *len, double *terms) {
  int nf = g->nforward;
  double *flen = arena_alloc(sizeof(double) * (size_t)nf);    /* values: cumulative */
  double *vmax = arena_alloc(sizeof(double) * (size_t)nf);
  double *gmax = arena_alloc(sizeof(double) * (size_t)nf);
  int *uses = arena_alloc(sizeof(int) * (size_t)nf);
  bool *seen = arena_alloc(sizeof(bool) * (size_t)nf);
  for (int i = 0; i < nf; i++) {
    Node *n = g->nodes[i];
    double m = 0;
    for (int k = 0; k < optab[n->op].arity; k++) {
      if (flen[n->in[k]->id] > m)
        m = flen[n->in[k]->id];
      uses[n->in[k]->id]++;
    }
    flen[i] = m + sqrt(fwd_len(n));   /* a sum's value is off by about u*sqrt(n), relative */
    if (n->type == TY_FLOAT) {
      vmax[i] = max_abs(ref_data(r, n), shape_numel(&n->shape));
      gmax[i] = max_abs(ref_grad(r, n), shape_numel(&n->shape));
    }
  }
  int lid = g->loss->id;
  len[lid] = 0;   /* dloss = 1 exactly */
  terms[lid] = 1;
  seen[lid] = true;
  for (int i = nf - 1; i >= 0; i--) {
    Node *c = g->nodes[i];
    if (!seen[i] || c->type != TY_FLOAT)
      continue;
    /* the values c's rules read: none for add, sub, sum, mean, reshape and the
     * index ops; the other operand for mul and matmul; c's input and output
     * otherwise */
    double rd = 0;
    bool linear = c->op == OP_add || c->op == OP_sub || c->op == OP_sum || c->op == OP_mean ||
                  c->op == OP_reshape || c->op == OP_gather || c->op == OP_pick;
    if (!linear)
      for (int k = 0; k < optab[c->op].arity; k++)
        if (flen[c->in[k]->id] > rd)
          rd = flen[c->in[k]->id];
    if (!linear && c->op != OP_mul && c->op != OP_matmul && flen[i] > rd)
      rd = flen[i];
    for (int k = 0; k < optab[c->op].arity; k++) {
      Node *t = c->in[k];
      if (t->type != TY_FLOAT)
        continue;
      double l = len[i] + bwd_len(c, k) + rd + (uses[t->id] - 1);
      /* the size of one term c hands to dt, relative to dc's largest */
      double f = 1;
      if ((c->op == OP_mul || c->op == OP_matmul) && c->in[1 - k]->type == TY_FLOAT)
        f = vmax[c->in[1 - k]->id] > 1 ? vmax[c->in[1 - k]->id] : 1;
      else if (c->op == OP_mean)
        f = 1 / fwd_len(c);
      else if (c->op == OP_cross_entropy)
        f = 1.0 / t->shape.dim[0];
      double tm = gmax[i] * f;
      if (!seen[t->id] || l > len[t->id])
        len[t->id] = l;
      if (!seen[t->id] || tm > terms[t->id])
        terms[t->id] = tm;
      seen[t->id] = true;
    }
  }
  return flen[lid];
}

/* ULPs as a short column: whole numbers, large ones in e-notation */
static FILE *check_json;   /* --json: where the JSON goes */

/* A JSON number at full precision (the double reads back the same); null
 * for NaN and Inf, which JSON lacks. */
static const char *jnum(double v) {
  return isfinite(v) ? arena_printf("%.17g", v) : "null";
}

/* s as the inside of a JSON string (names and paths). */
static const char *json_escape(const char *s) {
  Buf b = {0};
  buf_printf(&b, "%s", "");
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\')
      buf_printf(&b, "\\%c", c);
    else if (c < 32 || c == 127)
      buf_printf(&b, "\\u%04x", c);
    else
      buf_printf(&b, "%c", c);
  }
  return buf_done(&b);
}

static const char *ulp_str(double u) {
  return u < 1e6 ? arena_printf("%.0f", u) : arena_printf("%.1e", u);
}

int check_graphs(Graph *gf, Graph *gg, DType dt, uint64_t seed, double tol, FILE *out) {
  Gen gen = gen_compile(gg, dt, gf->file ? gf->file->name : "spec");
  int nfail = check_model(gf, gen.m, gen.st, gg != gf, seed, tol, out);
  gen_free(&gen);
  return nfail;
}

int check_model(Graph *gf, const BpModel *m, void *state, bool expanded, uint64_t seed, double tol, FILE *out) {
  DType dt = m->dtype == BP_F64 ? DT_F64 : DT_F32;
  if (tol <= 0)
    tol = dt == DT_F64 ? 1e-9 : 1e-4;
  Gen gen = {NULL, m, state};
  m->init(gen.st, seed);

  Ref *r = ref_new(gf, dt);
  Ref *r64 = ref_new(gf, DT_F64);
  ref_init_params(r, seed);
  /* same starting point: report an init mismatch, then use the generated params */
  long init_bad = 0;
  for (int i = 0; i < gf->nforward; i++) {
    Node *n = gf->nodes[i];
    if (n->op != OP_param)
      continue;
    const BpTensor *t = bp_find_tensor(m, n->name, -1);
    if (!t)
      die("generated model has no param %s", n->name);
    double *d = ref_data(r, n), *d64 = ref_data(r64, n);
    for (long k = 0; k < shape_numel(&n->shape); k++) {
      double v = get(m, gen.st, t, k);
      init_bad += d[k] != v;
      d[k] = d64[k] = v;
    }
  }
  fill_inputs(gf, &gen, r, r64, seed);

  double lg = m->forward(gen.st);
  m->backward(gen.st);
  double lr = ref_forward(r);
  ref_backward(r);

  double *len = arena_alloc(sizeof(double) * (size_t)gf->nforward);
  double *terms = arena_alloc(sizeof(double) * (size_t)gf->nforward);
  double lflen = rounding_lengths(gf, r, len, terms);
  double unit = dt == DT_F64 ? 0x1p-53 : 0x1p-24;   /* unit roundoff */

  /* rows: params, then named float intermediates, in spec order */
  Row *rows = arena_alloc(sizeof(Row) * (size_t)gf->nforward);
  int nrows = 0;
  double gmax = 0;
  for (int pass = 0; pass < 2; pass++)
    for (int i = 0; i < gf->nforward; i++) {
      Node *n = gf->nodes[i];
      bool want = pass == 0 ? n->op == OP_param
                            : n->op != OP_param && n->op != OP_input && n->name && n->type == TY_FLOAT;
      if (!want)
        continue;
      const BpTensor *t = bp_find_tensor(m, arena_printf("d%s", n->name), -1);
      if (!t)
        continue;
      Row *w = &rows[nrows++];
      w->name = n->name;
      w->shape = n->shape;
      w->exact = w->approx = true;
      w->fd = -1;
      w->len = len[n->id];
      w->terms = terms[n->id];
      const double *ref = ref_grad(r, n);
      for (long k = 0; k < shape_numel(&n->shape); k++) {
        double a = get(m, gen.st, t, k), b = ref[k];
        double d = fabs(a - b);
        if (!isfinite(a) || !isfinite(b)) {
          w->nonfinite++;   /* never within tolerance, and no part of any scale */
          w->exact = w->approx = false;
          w->maxdiff = NAN;
          w->maxulp = INFINITY;
          continue;
        }
        if (a != b)
          w->exact = false;
        if (!allclose_elem(a, b))
          w->approx = false;
        double u = ulp_distance(dt, a, b);
        if (!(u <= w->maxulp))
          w->maxulp = u;
        if (!(d <= w->maxdiff) && !w->nonfinite)
          w->maxdiff = d;   /* NaN (a non-finite element) sticks */
        if (fabs(b) > w->scale)
          w->scale = fabs(b);
      }
      if (w->scale > gmax)
        gmax = w->scale;
    }

  /* finite differences on the f64 runtime, a few elements per param */
  BpRng pick;
  bp_rng_seed(&pick, seed + 17);
  for (int i = 0, k = 0; i < gf->nforward; i++) {
    Node *n = gf->nodes[i];
    if (n->op != OP_param || k >= nrows || strcmp(rows[k].name, n->name) != 0)
      continue;
    Row *w = &rows[k++];
    const BpTensor *t = bp_find_tensor(m, arena_printf("d%s", n->name), -1);
    double *p = ref_data(r64, n);
    long ne = shape_numel(&n->shape);
    w->fd = 0;
    for (int s = 0; s < 4; s++) {
      long e = (long)(bp_uniform(&pick) * (double)ne);
      double keep = p[e], h = 1e-5 * (fabs(keep) > 1 ? fabs(keep) : 1);
      p[e] = keep + h;
      double up = ref_forward(r64);
      p[e] = keep - h;
      double dn = ref_forward(r64);
      p[e] = keep;
      double fd = (up - dn) / (2 * h), d = fabs(fd - get(m, gen.st, t, e));
      if (!(d <= w->fd))
        w->fd = d;
    }
  }

  int nfail = 0;
  double lscale = fabs(lr) > 1 ? fabs(lr) : 1, lterm = lscale;
  for (int k = 0; k < optab[gf->loss->op].arity; k++)
    if (gf->loss->in[k]->type == TY_FLOAT) {
      double v = max_abs(ref_data(r, gf->loss->in[k]), shape_numel(&gf->loss->in[k]->shape));
      if (v > lterm)
        lterm = v;
    }
  double lallowed = tol * lscale + 4 * unit * lflen * lterm;
  bool loss_ok = isfinite(lg) && isfinite(lr) && fabs(lg - lr) <= lallowed;
  fprintf(out, "check %s: generated (%s%s) vs reference runtime, seed %llu, tolerance %g relative\n",
          gf->file ? gf->file->name : "spec", dt == DT_F64 ? "f64" : "f32", expanded ? ", expanded" : "",
          (unsigned long long)seed, tol);
  fprintf(out, "within tolerance: no NaN or Inf, and maxdiff <= allowed = %g * scale + 4 * 2^%d * L * max(T, scale);\n"
               "scale: the tensor's largest reference magnitude (at least 1%% of the largest of all); L: the length\n"
               "of the sums its gradient passes through; T: their largest term (%s sums round by ~2^%d * L * T)\n",
          tol, dt == DT_F64 ? -53 : -24, dt == DT_F64 ? "f64" : "f32", dt == DT_F64 ? -53 : -24);
  if (init_bad)
    fprintf(out, "note: %ld param elements differ between the two initialisations; the generated ones are used\n",
            init_bad);
  fprintf(out, "loss: generated %.9g, reference %.9g\n", lg, lr);
  fprintf(out, "%-16s | %-12s | %-5s | %-11s | %-9s | %-8s | %-9s | %-7s | %s\n", "name", "shape", "exact",
          "approximate", "maxdiff", "max ULPs", "fd (f64)", "L", "allowed");
  fprintf(out, "%-16s | %-12s | %-5s | %-11s | %-9.2e | %-8s | %-9s | %-7.0f | %-9.2e%s\n", "loss", "[]",
          lg == lr ? "True" : "False", allclose_elem(lg, lr) ? "True" : "False", fabs(lg - lr),
          ulp_str(ulp_distance(dt, lg, lr)), "", lflen, lallowed,
          loss_ok ? "" : isfinite(lg) && isfinite(lr) ? "   <- out of tolerance" : "   <- not finite");
  nfail += !loss_ok;
  Buf js = {0};
  buf_printf(&js, "{\"spec\": \"%s\", \"dtype\": \"%s\", \"expanded\": %s, \"seed\": %llu, "
             "\"tol\": %s, \"loss\": {\"generated\": %s, \"reference\": %s, \"maxdiff\": %s, "
             "\"allowed\": %s, \"pass\": %s}, \"gradients\": [",
             json_escape(gf->file ? gf->file->name : "spec"), dt == DT_F64 ? "f64" : "f32",
             expanded ? "true" : "false", (unsigned long long)seed, jnum(tol), jnum(lg), jnum(lr),
             jnum(fabs(lg - lr)), jnum(lallowed), loss_ok ? "true" : "false");
  for (int i = 0; i < nrows; i++) {
    Row *w = &rows[i];
    double scale = w->scale > 0.01 * gmax ? w->scale : 0.01 * gmax;
    double big = w->terms > w->scale ? w->terms : w->scale;
    w->allowed = tol * scale + 4 * unit * w->len * big;
    w->pass = !w->nonfinite && (w->maxdiff <= w->allowed || (w->allowed == 0 && w->maxdiff == 0));
    nfail += !w->pass;
    char fd[32] = "";
    if (w->fd >= 0)
      snprintf(fd, sizeof fd, "%.2e", w->fd);
    const char *why = w->pass        ? ""
                      : w->nonfinite ? arena_printf("   <- %ld elements NaN or Inf", w->nonfinite)
                                     : "   <- out of tolerance";
    fprintf(out, "%-16s | %-12s | %-5s | %-11s | %-9.2e | %-8s | %-9s | %-7.0f | %-9.2e%s\n",
            arena_printf("d%s", w->name), shape_str(&w->shape), w->exact ? "True" : "False",
            w->approx ? "True" : "False", w->maxdiff, ulp_str(w->maxulp), fd, w->len, w->allowed, why);
    buf_printf(&js, "%s{\"name\": \"d%s\", \"shape\": [", i ? ", " : "", json_escape(w->name));
    for (int k = 0; k < w->shape.rank; k++)
      buf_printf(&js, "%s%d", k ? ", " : "", w->shape.dim[k]);
    buf_printf(&js, "], \"exact\": %s, \"approximate\": %s, \"maxdiff\": %s, \"max_ulps\": %s, "
               "\"fd\": %s, \"L\": %s, \"allowed\": %s, \"nonfinite\": %ld, \"pass\": %s}",
               w->exact ? "true" : "false", w->approx ? "true" : "false", jnum(w->maxdiff),
               jnum(w->maxulp), w->fd >= 0 ? jnum(w->fd) : "null", jnum(w->len), jnum(w->allowed),
               w->nonfinite, w->pass ? "true" : "false");
  }
  buf_printf(&js, "], \"failed\": %d, \"pass\": %s}\n", nfail, nfail ? "false" : "true");
  const char *json = buf_done(&js);
  if (check_json) {
    fputs(json, check_json);
    fflush(check_json);
  }
  if (nfail)
    fprintf(out, "FAIL: %d of %d tensors out of tolerance\n", nfail, nrows + 1);
  else
    fprintf(out, "ok: loss and %d gradients within tolerance\n", nrows);
  ref_free(r);
  ref_free(r64);
  return nfail;
}

int cmd_check(int argc, char **argv) {
  Cli c;
  cli_init(&c, DT_F32);
  double tol = 0;
  bool json = false;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      fputs(check_usage, stdout);
      return 0;
    }
    if (strcmp(argv[i], "--json") == 0) {
      json = true;
    } else if (strcmp(argv[i], "--tol") == 0) {
      const char *v = cli_value(argc, argv, &i);
      tol = cli_double("--tol", v);
      if (!(tol > 0))
        error_usage("--tol: '%s' is not a positive number", v);
    } else if (!cli_common(&c, argc, argv, &i) || c.out) {
      cli_unknown("check", argv[i]);
    }
  }
  const char *pert = getenv("BPGEN_PERTURB");   /* test hook: break one rule */
  if (pert && *pert) {
    int k = 0;
    while (k < OP_COUNT && strcmp(optab[k].name, pert) != 0)
      k++;
    if (k == OP_COUNT)
      error_plain("BPGEN_PERTURB: no op '%s'", pert);
    grad_perturb = k + 1;
  }
  if (!c.spec)
    error_usage("no spec file given (see bpgen check --help)");
  Graph *gf = parse_spec(read_src(c.spec), c.ovr, c.novr);
  Graph *gg = c.expand ? expand_fused(gf) : gf;
  grad_build(gg);
  check_json = json ? stdout : NULL;
  return check_graphs(gf, gg, c.dtype, c.seed, tol, json ? stderr : stdout) ? 1 : 0;
}
