/* cmd_ninja.c: `bpgen ninja SPEC --mine FILE.c` -- exercise mode: judge a
 * backward pass the learner wrote by hand, as the lecture's cmp() does.
 *
 * Consumes the spec's graph and the learner's C file; produces the lecture's
 * table (name | shape ok | exact | approximate | maxdiff | max ULPs) for every
 * gradient the learner filled, in the order of the backward pass, the first
 * wrong one marked.  `--header` prints what the learner programs against.
 *
 * How it works: one forward and backward pass runs on a batch (params from
 * the seed, random valid inputs) -- in generated code compiled with libtcc, or
 * with --ref in the reference runtime -- and gives the forward values and the
 * reference gradients.  The learner's file is compiled in a separate libtcc
 * state after the header (ninja_header): forward tensors are pointers bpgen
 * sets to read-only copies of the values, indexed like arrays (logits[i][j]);
 * each gradient the learner fills is an array the learner declares with
 * GRAD(dname, dims...), so its shape is the learner's statement and is
 * compared with the true one before any value (a missing keepdim, [64] for
 * [1, 64], is a shape error, never broadcast).  Every GRAD array is filled
 * with a NaN sentinel before backward() runs; an array still all sentinel
 * afterwards was not filled.  backward() runs in a child process, so a crash
 * or an endless loop in the learner's code is reported, not suffered.
 */
#include "bpgen.h"
#include "bp_runtime.h"
#include "ref.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

static const char usage[] =
  "usage: bpgen ninja SPEC --mine FILE.c [--dtype f32|f64] [--ref] [--tol X] [-D NAME=INT]...\n"
  "       bpgen ninja SPEC --header [--dtype f32|f64] [-D NAME=INT]...\n"
  "\n"
  "Exercise mode (the lecture's \"becoming a backprop ninja\"): you write the\n"
  "gradients in C, bpgen judges them.\n"
  "  --header   print the declarations your file programs against: the dims, every\n"
  "             forward tensor by name (read-only, logits[i][j]), and the gradients\n"
  "             you may fill with their shapes; save it as ninja.h for your editor\n"
  "  --mine F   compile F in memory, run its backward() on one batch (params from\n"
  "             --seed, default 2147483647; random valid inputs) and print, for each\n"
  "             gradient F filled, in backward order:\n"
  "               name | shape ok | exact | approximate | maxdiff | max ULPs\n"
  "             exit status 1 when a filled gradient is wrong\n"
  "  --ref      take the forward values and reference gradients from the reference\n"
  "             runtime instead of bpgen's generated code\n"
  "  --tol X    relative tolerance (default 1e-4 for f32, 1e-9 for f64)\n";

/* ---- the header ------------------------------------------------------------------ */

/* The tensors the learner sees: inputs, params and named statements. */
static bool visible(const Node *n) {
  return !n->is_backward && n->name && (n->op == OP_input || n->op == OP_param || n->name);
}

/* A gradient the learner may fill: params and named float statements. */
static bool fillable(const Node *n) {
  return !n->is_backward && n->name && n->type == TY_FLOAT && n->op != OP_input;
}

static bool is_c_word(const char *s) {
  static const char *const kw[] = {
    "auto", "break", "case", "char", "const", "continue", "default", "do", "double", "else",
    "enum", "extern", "float", "for", "goto", "if", "inline", "int", "long", "register",
    "restrict", "return", "short", "signed", "sizeof", "static", "struct", "switch", "typedef",
    "union", "unsigned", "void", "volatile", "while", "real", "backward", "GRAD", "ZERO", "GIVEN",
    "main", "memset", "memcpy", "exp", "log", "tanh", "sqrt", "pow", "fabs", "expf", "logf",
    "tanhf", "sqrtf", "powf", "fabsf", "fmax", "fmaxf", "NAN", "INFINITY"};
  for (size_t i = 0; i < sizeof kw / sizeof kw[0]; i++)
    if (strcmp(s, kw[i]) == 0)
      return true;
  return strncmp(s, "bp_", 3) == 0 || strncmp(s, "BP_", 3) == 0;
}

/* A dim written with the spec's name when one dim has that value, else the number. */
static const char *dim_name(Graph *g, int v) {
  const char *found = NULL;
  for (int i = 0; i < g->ndims; i++)
    if (g->dims[i].value == v) {
      if (found)
        return arena_printf("%d", v);   /* two dims share the value: be plain */
      found = g->dims[i].name;
    }
  return found ? found : arena_printf("%d", v);
}

static const char *dims_list(Graph *g, const Shape *s) {
  const char *out = "";
  for (int i = 0; i < s->rank; i++)
    out = arena_printf("%s%s%s", out, i ? ", " : "", dim_name(g, s->dim[i]));
  return s->rank ? out : "1";
}

/* "const real (*logits)[V]" for a [B, V] tensor */
static const char *pointer_decl(Graph *g, Node *n) {
  const char *ty = n->type == TY_INT ? "int" : "real";
  if (n->shape.rank == 0)
    return arena_printf("%s %s", ty, n->name);
  if (n->shape.rank == 1)
    return arena_printf("const %s *%s", ty, n->name);
  const char *rest = "";
  for (int i = 1; i < n->shape.rank; i++)
    rest = arena_printf("%s[%s]", rest, dim_name(g, n->shape.dim[i]));
  return arena_printf("const %s (*%s)%s", ty, n->name, rest);
}

static const char header_macros[] =
  "/* GRAD(dname, dims...): declares the gradient dname with the shape you give,\n"
  " * e.g. GRAD(dlogits, B, V); bpgen compares that shape with the true one.  Only\n"
  " * the names listed above are accepted (a typo fails to compile). */\n"
  "#define BP_NARG_(a, b, c, d, e, f, n, ...) n\n"
  "#define BP_NARG(...) BP_NARG_(__VA_ARGS__, 6, 5, 4, 3, 2, 1, 0)\n"
  "#define BP_CAT_(a, b) a##b\n"
  "#define BP_CAT(a, b) BP_CAT_(a, b)\n"
  "#define BP_DIMS1(a) [a]\n"
  "#define BP_DIMS2(a, b) [a][b]\n"
  "#define BP_DIMS3(a, b, c) [a][b][c]\n"
  "#define BP_DIMS4(a, b, c, d) [a][b][c][d]\n"
  "#define BP_DIMS5(a, b, c, d, e) [a][b][c][d][e]\n"
  "#define BP_DIMS6(a, b, c, d, e, f) [a][b][c][d][e][f]\n"
  "#define GRAD(name, ...) \\\n"
  "  enum { name##__bp_ok = BP_OK_##name }; \\\n"
  "  real name BP_CAT(BP_DIMS, BP_NARG(__VA_ARGS__))(__VA_ARGS__); \\\n"
  "  const int name##__bp_shape[] = {__VA_ARGS__, -1}\n"
  "/* ZERO(dname): every element 0, before accumulating with += */\n"
  "#define ZERO(name) memset((name), 0, sizeof(name))\n"
  "/* GIVEN(dname): fill dname with bpgen's own gradient (not judged), to start an\n"
  " * exercise in the middle of the backward pass, e.g. GIVEN(dhpreact) */\n"
  "void bp_given(void *grad, const char *name, const int *shape);\n"
  "#define GIVEN(name) bp_given((name), #name, name##__bp_shape)\n"
  "\n"
  "/* your entry point: called once, after the forward pass */\n"
  "void backward(void);\n";

char *ninja_header(Graph *g, DType dt) {
  const char *real = dt == DT_F64 ? "double" : "float";
  char *s = arena_printf(
    "/* ninja.h: what your backward pass can use, for %s (%s).\n"
    " * Written by `bpgen ninja %s --header`; bpgen puts it before your file itself,\n"
    " * so saving it as ninja.h is only for your editor.\n"
    " * Forward tensors are read-only and indexed as arrays: logits[i][j]. */\n"
    "#ifndef BPGEN_NINJA_H\n#define BPGEN_NINJA_H\n#include <math.h>\n#include <string.h>\n"
    "typedef %s real;\n\n",
    g->file->name, real, g->file->name, real);
  if (g->ndims) {
    s = arena_printf("%s/* dims */\nenum {", s);
    for (int i = 0; i < g->ndims; i++)
      s = arena_printf("%s%s %s = %ld", s, i ? "," : "", g->dims[i].name, g->dims[i].value);
    s = arena_printf("%s };\n\n", s);
  }
  static const char *const sect[] = {"inputs", "params", "forward values"};
  for (int k = 0; k < 3; k++) {
    s = arena_printf("%s/* %s */\n", s, sect[k]);
    for (int i = 0; i < g->nforward; i++) {
      Node *n = g->nodes[i];
      int kind = n->op == OP_input ? 0 : n->op == OP_param ? 1 : 2;
      if (!visible(n) || kind != k)
        continue;
      if (is_c_word(n->name)) {
        s = arena_printf("%s/* %s: not available (its name is a C word) */\n", s, n->name);
        continue;
      }
      const char *d = pointer_decl(g, n);
      s = arena_printf("%s%s;%*s/* %s%s, line %d */\n", s, d, (int)(strlen(d) < 34 ? 34 - strlen(d) : 1), "",
                       n->type == TY_INT ? "int" : "", shape_str(&n->shape), n->line);
    }
    s = arena_printf("%s\n", s);
  }
  s = arena_printf("%s/* the gradients you may fill, with their true shapes */\nenum {\n", s);
  for (int i = 0; i < g->nforward; i++) {
    Node *n = g->nodes[i];
    if (fillable(n) && !is_c_word(n->name))
      s = arena_printf("%s  BP_OK_d%s = 1,%*s/* GRAD(d%s, %s); */\n", s, n->name,
                       (int)(strlen(n->name) < 20 ? 20 - strlen(n->name) : 1), "", n->name,
                       dims_list(g, &n->shape));
  }
  s = arena_printf("%s  BP_OK__end\n};\n\n%s#endif\n", s, header_macros);
  return s;
}

/* ---- one pass: forward values and reference gradients ----------------------------- */

typedef struct Pass {
  Graph *g;
  double **val;    /* by node id (visible nodes): values as doubles */
  double **grad;   /* by node id (fillable nodes): the reference gradient */
  double loss;
  const char *source;   /* which code computed them, for the report */
} Pass;

static void draw_inputs(Graph *g, uint64_t seed, DType dt, Pass *p, int32_t **ival) {
  BpRng rng;
  bp_rng_seed(&rng, seed ^ REF_INPUT_SEED_MIX);
  for (int i = 0; i < g->nforward; i++) {
    Node *n = g->nodes[i];
    if (n->op != OP_input)
      continue;
    long ne = shape_numel(&n->shape);
    if (n->type == TY_INT) {
      ival[i] = arena_alloc(sizeof(int32_t) * (size_t)ne);
      ref_draw_input(g, n, &rng, ival[i]);
    } else {
      p->val[i] = arena_alloc(sizeof(double) * (size_t)ne);
      ref_draw_input(g, n, &rng, p->val[i]);
      if (dt == DT_F32)
        for (long k = 0; k < ne; k++)
          p->val[i][k] = (float)p->val[i][k];
    }
  }
}

static void pass_ref(Pass *p, DType dt, uint64_t seed, int32_t **ival) {
  Graph *g = p->g;
  Ref *r = ref_new(g, dt);
  ref_init_params(r, seed);
  draw_inputs(g, seed, dt, p, ival);
  for (int i = 0; i < g->nforward; i++) {
    Node *n = g->nodes[i];
    if (n->op != OP_input)
      continue;
    long ne = shape_numel(&n->shape);
    if (n->type == TY_INT)
      memcpy(ref_idata(r, n), ival[i], sizeof(int32_t) * (size_t)ne);
    else
      memcpy(ref_data(r, n), p->val[i], sizeof(double) * (size_t)ne);
  }
  p->loss = ref_forward(r);
  ref_backward(r);
  for (int i = 0; i < g->nforward; i++) {
    Node *n = g->nodes[i];
    size_t bytes = sizeof(double) * (size_t)shape_numel(&n->shape);
    if (visible(n) && n->type == TY_FLOAT) {
      p->val[i] = arena_alloc(bytes);
      memcpy(p->val[i], ref_data(r, n), bytes);
    }
    if (fillable(n)) {
      p->grad[i] = arena_alloc(bytes);
      memcpy(p->grad[i], ref_grad(r, n), bytes);
    }
  }
  ref_free(r);
  p->source = "the reference runtime (--ref)";
}

static const BpTensor *find_tensor(const BpModel *m, const char *name, int kind) {
  for (int i = 0; i < m->ntensors; i++)
    if (m->tensors[i].kind == kind && strcmp(m->tensors[i].name, name) == 0)
      return &m->tensors[i];
  return NULL;
}

static void tensor_get(const BpTensor *t, const void *st, double *dst) {
  const char *p = (const char *)st + t->offset;
  for (size_t k = 0; k < t->numel; k++)
    dst[k] = t->dtype == BP_F32 ? ((const float *)p)[k] : ((const double *)p)[k];
}

static void tensor_set(const BpTensor *t, void *st, const double *src, const int32_t *isrc) {
  char *p = (char *)st + t->offset;
  for (size_t k = 0; k < t->numel; k++) {
    if (t->dtype == BP_I32)
      ((int32_t *)p)[k] = isrc[k];
    else if (t->dtype == BP_F32)
      ((float *)p)[k] = (float)src[k];
    else
      ((double *)p)[k] = src[k];
  }
}

/* Generated code: the same code `bpgen SPEC -o model.c` writes, compiled in memory. */
static void pass_gen(Pass *p, DType dt, uint64_t seed, int32_t **ival) {
  Graph *g = p->g;
  grad_build(g);
  EmitOptions opt = {dt, "ninja", true, false};
  const char *src = emit_c(g, &opt, NULL);
  Jit *j = jit_compile(src, g->file->name);
  const BpModel *m = jit_symbol(j, "ninja_model");
  if (!m)
    die("generated code has no ninja_model");
  size_t sz = (m->state_size + 63) / 64 * 64;
  void *st = aligned_alloc(64, sz ? sz : 64);
  if (!st)
    die("out of memory");
  memset(st, 0, sz);
  m->init(st, seed);
  draw_inputs(g, seed, dt, p, ival);
  for (int i = 0; i < g->nforward; i++) {
    Node *n = g->nodes[i];
    if (n->op != OP_input)
      continue;
    const BpTensor *t = find_tensor(m, n->name, BP_INPUT);
    if (!t)
      die("generated model has no input %s", n->name);
    tensor_set(t, st, p->val[i], ival[i]);
  }
  p->loss = m->forward(st);
  m->backward(st);
  for (int i = 0; i < g->nforward; i++) {
    Node *n = g->nodes[i];
    size_t bytes = sizeof(double) * (size_t)shape_numel(&n->shape);
    if (visible(n) && n->type == TY_FLOAT && n->op != OP_input) {
      const BpTensor *t = find_tensor(m, n->name, n->op == OP_param ? BP_PARAM : BP_ACT);
      if (!t)
        die("generated model has no tensor %s", n->name);
      p->val[i] = arena_alloc(bytes);
      tensor_get(t, st, p->val[i]);
    }
    if (fillable(n)) {
      const BpTensor *t = find_tensor(m, arena_printf("d%s", n->name), BP_GRAD);
      if (!t)
        die("generated model has no gradient d%s", n->name);
      p->grad[i] = arena_alloc(bytes);
      tensor_get(t, st, p->grad[i]);
    }
  }
  free(st);
  jit_free(j);
  p->source = "bpgen's generated backward (the code `bpgen SPEC -o model.c` writes)";
}

/* ---- the learner's code ------------------------------------------------------------- */

/* One gradient of the spec and what the learner did with it. */
typedef struct Slot {
  Node *n;
  const char *gname;     /* "d" + name */
  void *buf;             /* the learner's array, or NULL when not declared */
  Shape decl;            /* the shape the learner declared */
  long ndecl;            /* its elements */
  size_t shm_off;        /* its copy in the shared block */
  int given;             /* 1: GIVEN(), 2: GIVEN() with a wrong shape (set after the run) */
  int id;                /* its sentinel's payload */
} Slot;

/* What the child process hands back (in a shared mapping). */
typedef struct Shared {
  int done;              /* backward() returned */
  int given[256];        /* per slot: 1 = GIVEN, 2 = GIVEN with the wrong shape */
  char note[512];        /* GIVEN misuse */
} Shared;

static struct {
  Slot *slot;
  int nslot;
  Pass *pass;
  DType dt;
  Shared *sh;
} cur;   /* for bp_given(), called from the learner's code */

static bool shape_matches(const Shape *decl, const Shape *truth) {
  if (truth->rank == 0)
    return decl->rank == 1 && decl->dim[0] == 1;
  return shape_eq(decl, truth);
}

static void bp_given(void *buf, const char *name, const int *shape) {
  (void)shape;
  for (int i = 0; i < cur.nslot; i++) {
    Slot *s = &cur.slot[i];
    if (s->buf != buf || strcmp(s->gname, name) != 0)
      continue;
    if (!shape_matches(&s->decl, &s->n->shape)) {
      cur.sh->given[i] = 2;
      snprintf(cur.sh->note, sizeof cur.sh->note, "GIVEN(%s): you declared it %s, but it is %s",
               name, shape_str(&s->decl), shape_str(&s->n->shape));
      return;
    }
    const double *ref = cur.pass->grad[s->n->id];
    for (long k = 0; k < s->ndecl; k++) {
      if (cur.dt == DT_F32)
        ((float *)buf)[k] = (float)ref[k];
      else
        ((double *)buf)[k] = ref[k];
    }
    cur.sh->given[i] = 1;
    return;
  }
}

/* Quiet NaNs whose payload names the array (id < 4096): arithmetic passes a NaN
 * operand's payload on, so a value computed from another, unfilled gradient
 * carries that one's id and is seen as NaN, not as "not filled". */
#define SENT32 0x7FC0B000u
#define SENT64 0x7FF8BADD00000000ull

static bool is_sentinel(DType dt, const void *p, long k, int id) {
  if (dt == DT_F32) {
    uint32_t b;
    memcpy(&b, (const float *)p + k, 4);
    return b == SENT32 + (uint32_t)id;
  }
  uint64_t b;
  memcpy(&b, (const double *)p + k, 8);
  return b == SENT64 + (uint64_t)id;
}

static void fill_sentinel(DType dt, void *p, long n, int id) {
  for (long k = 0; k < n; k++) {
    if (dt == DT_F32) {
      uint32_t b = SENT32 + (uint32_t)id;
      memcpy((float *)p + k, &b, 4);
    } else {
      uint64_t b = SENT64 + (uint64_t)id;
      memcpy((double *)p + k, &b, 8);
    }
  }
}

/* ---- judging --------------------------------------------------------------------- */

static const char *shape_hint(const Shape *decl, const Shape *truth, const char *gname) {
  /* same elements, the 1s dropped: a missing keepdim */
  Shape a = {0}, b = {0};
  for (int i = 0; i < decl->rank; i++)
    if (decl->dim[i] != 1)
      a.dim[a.rank++] = decl->dim[i];
  for (int i = 0; i < truth->rank; i++)
    if (truth->dim[i] != 1)
      b.dim[b.rank++] = truth->dim[i];
  if (shape_eq(&a, &b))
    return arena_printf("you declared %s %s but it is %s: a missing keepdim? A sum over an axis "
                        "that was broadcast keeps that axis as 1", gname, shape_str(decl),
                        shape_str(truth));
  Shape o;
  if (shape_broadcast(decl, truth, &o) && shape_eq(&o, decl))
    return arena_printf("you declared %s %s but it is %s: the forward pass broadcast it, so its "
                        "gradient is summed over the broadcast axes", gname, shape_str(decl),
                        shape_str(truth));
  return arena_printf("you declared %s %s but it is %s", gname, shape_str(decl), shape_str(truth));
}

typedef struct Row {
  Slot *s;
  bool filled, shape_ok, exact, approx, ok, given;
  long unset;            /* elements never written */
  long nans;
  double maxdiff, maxulp;
  const char *why;       /* wrong: the reason */
} Row;

/* Backward order: by the spec line of the tensor's first use, last line first;
 * within a line, uses in forward order (dh, dW2, db2 for h @ W2 + b2). */
static int use_key(Graph *g, Node *t, int *arg) {
  for (int i = 0; i < g->nforward; i++)
    for (int k = 0; k < MAXIN && g->nodes[i]->in[k]; k++)
      if (g->nodes[i]->in[k] == t) {
        *arg = k;
        return i;
      }
  *arg = 0;
  return g->nforward;   /* the loss: used by nothing */
}

static Graph *sort_graph;
static int by_backward(const void *pa, const void *pb) {
  const Slot *a = pa, *b = pb;
  int ka, kb, ua = use_key(sort_graph, a->n, &ka), ub = use_key(sort_graph, b->n, &kb);
  int la = ua < sort_graph->nforward ? sort_graph->nodes[ua]->line : 1 << 30;
  int lb = ub < sort_graph->nforward ? sort_graph->nodes[ub]->line : 1 << 30;
  if (la != lb)
    return lb - la;
  if (ua != ub)
    return ua - ub;
  return ka - kb;
}

int ninja_run(Graph *g, const NinjaOpts *o, const char *path, const char *text, FILE *out) {
  DType dt = o->dtype;
  double tol = o->tol > 0 ? o->tol : dt == DT_F32 ? 1e-4 : 1e-9;
  size_t esz = dt == DT_F32 ? 4 : 8;
  Pass pass = {g, arena_alloc(sizeof(double *) * (size_t)g->nforward),
               arena_alloc(sizeof(double *) * (size_t)g->nforward), 0, NULL};
  int32_t **ival = arena_alloc(sizeof(int32_t *) * (size_t)g->nforward);
  if (o->use_ref)
    pass_ref(&pass, dt, o->seed, ival);
  else
    pass_gen(&pass, dt, o->seed, ival);

  /* the learner's translation unit: the header, then the file as itself */
  const char *src = arena_printf("%s#line 1 \"%s\"\n%s", ninja_header(g, dt), path, text);
  char dir[] = "/tmp/bpgen_ninja_XXXXXX";   /* holds ninja.h for #include "ninja.h" */
  if (!mkdtemp(dir))
    error_plain("cannot make a temporary directory: %s", strerror(errno));
  const char *hpath = arena_printf("%s/ninja.h", dir);
  FILE *hf = fopen(hpath, "w");
  if (hf) {
    fputs(ninja_header(g, dt), hf);
    fclose(hf);
  }
  const JitSymbol given_sym = {"bp_given", (const void *)&bp_given};
  const JitOptions jo = {"-std=c99 -Wall", dir, &given_sym, 1};
  const char *msgs;
  Jit *s = jit_try_compile(src, &jo, &msgs);
  unlink(hpath);
  rmdir(dir);
  if (!s)
    error_plain("%s does not compile:\n%s", path, msgs);
  void (*backward)(void) = (void (*)(void))jit_symbol(s, "backward");
  if (!backward) {
    jit_free(s);
    error_plain("%s has no function 'void backward(void)'", path);
  }
  fputs(msgs, stderr);   /* warnings */

  /* point the learner's tensors at read-only-by-convention copies */
  for (int i = 0; i < g->nforward; i++) {
    Node *n = g->nodes[i];
    if (!visible(n) || is_c_word(n->name))
      continue;
    void *var = jit_symbol(s, n->name);
    if (!var)
      continue;
    long ne = shape_numel(&n->shape);
    if (n->type == TY_INT) {
      if (n->shape.rank == 0)
        *(int *)var = ival[i][0];
      else
        *(const void **)var = ival[i];
      continue;
    }
    void *copy = arena_alloc(esz * (size_t)(ne ? ne : 1));
    for (long k = 0; k < ne; k++)
      if (dt == DT_F32)
        ((float *)copy)[k] = (float)pass.val[i][k];
      else
        ((double *)copy)[k] = pass.val[i][k];
    if (n->shape.rank == 0)
      memcpy(var, copy, esz);
    else
      *(const void **)var = copy;
  }

  /* the gradients the learner declared */
  int nslot = 0;
  Slot *slot = arena_alloc(sizeof(Slot) * (size_t)g->nforward);
  size_t shm_size = (sizeof(Shared) + 15) / 16 * 16;   /* arrays 16-byte aligned */
  for (int i = 0; i < g->nforward; i++) {
    Node *n = g->nodes[i];
    if (!fillable(n) || is_c_word(n->name))
      continue;
    Slot *sl = &slot[nslot];
    sl->n = n;
    sl->gname = arena_printf("d%s", n->name);
    sl->buf = jit_symbol(s, sl->gname);
    const int *shp = jit_symbol(s, arena_printf("%s__bp_shape", sl->gname));
    if (!sl->buf || !shp)
      continue;
    sl->ndecl = 1;
    for (int r = 0; shp[r] >= 0 && r < MAXRANK; r++) {
      sl->decl.dim[sl->decl.rank++] = shp[r];
      sl->ndecl *= shp[r];
    }
    sl->id = nslot;
    sl->shm_off = shm_size;
    shm_size += (esz * (size_t)sl->ndecl + 15) / 16 * 16;
    nslot++;
  }
  if (nslot > 256)
    nslot = 256;
  sort_graph = g;

  /* run backward() in a child: a crash or a hang is the learner's, not ours */
  Shared *sh = mmap(NULL, shm_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (sh == MAP_FAILED)
    error_plain("mmap: %s", strerror(errno));
  cur.slot = slot;
  cur.nslot = nslot;
  cur.pass = &pass;
  cur.dt = dt;
  cur.sh = sh;
  for (int k = 0; k < nslot; k++)
    fill_sentinel(dt, slot[k].buf, slot[k].ndecl, k);
  fflush(NULL);
  pid_t pid = fork();
  if (pid < 0)
    error_plain("fork: %s", strerror(errno));
  if (pid == 0) {
    /* the default action, so the parent sees the signal (ASan would catch it) */
    signal(SIGSEGV, SIG_DFL);
    signal(SIGBUS, SIG_DFL);
    signal(SIGFPE, SIG_DFL);
    signal(SIGILL, SIG_DFL);
    alarm(10);
    backward();
    for (int k = 0; k < nslot; k++)
      memcpy((char *)sh + slot[k].shm_off, slot[k].buf, esz * (size_t)slot[k].ndecl);
    sh->done = 1;
    fflush(NULL);
    _exit(0);
  }
  int st;
  while (waitpid(pid, &st, 0) < 0)
    if (errno != EINTR)
      error_plain("waitpid: %s", strerror(errno));
  jit_free(s);
  if (!sh->done) {
    int sig = WIFSIGNALED(st) ? WTERMSIG(st) : 0;
    const char *why = sig == SIGALRM ? "did not return within 10 seconds (an endless loop?)"
                      : sig == SIGSEGV || sig == SIGBUS
                        ? "crashed (a segmentation fault: an index out of bounds? check your loops "
                          "against the shapes in ninja.h)"
                      : sig == SIGFPE ? "crashed (an arithmetic exception: an integer division by zero?)"
                      : sig ? arena_printf("was killed by signal %d (%s)", sig, strsignal(sig))
                            : arena_printf("exited with status %d", WEXITSTATUS(st));
    munmap(sh, shm_size);
    error_plain("%s: backward() %s", path, why);
  }
  for (int k = 0; k < nslot; k++)   /* the child's arrays, seen through the shared copy */
    slot[k].buf = (char *)sh + slot[k].shm_off;

  /* judge, in backward order */
  double big = 0;
  for (int i = 0; i < g->nforward; i++)
    if (pass.grad[i])
      for (long k = 0; k < shape_numel(&g->nodes[i]->shape); k++)
        big = fmax(big, fabs(pass.grad[i][k]));
  for (int k = 0; k < nslot; k++)
    slot[k].given = sh->given[k];   /* by slot before the sort */
  qsort(slot, (size_t)nslot, sizeof *slot, by_backward);

  Row *rows = arena_alloc(sizeof(Row) * (size_t)(nslot ? nslot : 1));
  int nrows = 0, nwrong = 0, first_wrong = -1;
  const char *unfilled = "";
  for (int k = 0; k < nslot; k++) {
    Slot *sl = &slot[k];
    Row *r = &rows[nrows];
    memset(r, 0, sizeof *r);
    r->s = sl;
    long unset = 0, nans = 0;
    for (long e = 0; e < sl->ndecl; e++) {
      bool sent = is_sentinel(dt, sl->buf, e, sl->id);
      double v = dt == DT_F32 ? ((float *)sl->buf)[e] : ((double *)sl->buf)[e];
      unset += sent;
      nans += isnan(v) && !sent;
    }
    if (sl->given == 1)
      continue;   /* GIVEN: bpgen's own values, not judged */
    if (unset == sl->ndecl && sl->given != 2) {
      unfilled = arena_printf("%s %s", unfilled, sl->gname);
      continue;
    }
    r->filled = true;
    r->shape_ok = shape_matches(&sl->decl, &sl->n->shape);
    r->unset = unset;
    r->nans = nans;
    if (sl->given == 2) {
      r->shape_ok = false;
      r->why = arena_printf("GIVEN(%s) with the wrong shape: %s", sl->gname,
                            shape_hint(&sl->decl, &sl->n->shape, sl->gname));
    } else if (!r->shape_ok) {
      r->why = shape_hint(&sl->decl, &sl->n->shape, sl->gname);
    } else {
      const double *ref = pass.grad[sl->n->id];
      double scale = 0;
      r->exact = r->approx = true;
      for (long e = 0; e < sl->ndecl; e++) {
        double v = dt == DT_F32 ? ((float *)sl->buf)[e] : ((double *)sl->buf)[e];
        double d = fabs(v - ref[e]);
        if (isnan(v))
          d = INFINITY;
        r->exact &= v == ref[e];
        r->approx &= d <= 1e-8 + 1e-5 * fabs(ref[e]);
        if (d > r->maxdiff || isnan(d))
          r->maxdiff = d;
        r->maxulp = fmax(r->maxulp, ulp_distance(dt, v, ref[e]));
        scale = fmax(scale, fabs(ref[e]));
      }
      scale = fmax(scale, 1e-3 * big);   /* a gradient 0 in exact arithmetic (db1) */
      r->ok = unset == 0 && nans == 0 && (r->approx || r->maxdiff <= tol * scale);
      if (unset)
        r->why = arena_printf("%ld of its %ld elements were never written", unset, sl->ndecl);
      else if (nans)
        r->why = arena_printf("%ld elements are NaN: computed from a gradient you did not fill? "
                              "(fill it first, or GIVEN(d...) to start from bpgen's)", nans);
      else if (!r->ok)
        r->why = arena_printf("maxdiff %.3g is beyond the tolerance %.3g (%.0e x the size of %s)",
                              r->maxdiff, tol * scale, tol, sl->gname);
    }
    if (!r->shape_ok)
      r->ok = false;
    if (!r->ok) {
      nwrong++;
      if (first_wrong < 0)
        first_wrong = nrows;
    }
    nrows++;
  }

  fprintf(out, "%s: %s, %s, seed %llu, loss %.6f\n", path, g->file->name,
          dt == DT_F32 ? "float32" : "float64", (unsigned long long)o->seed, pass.loss);
  fprintf(out, "reference: %s\n\n", pass.source);
  if (sh->note[0])
    fprintf(out, "note: %s\n", sh->note);
  if (nrows == 0) {
    fprintf(out, "no gradient filled yet: declare one with GRAD(dname, dims...) and write it in "
                 "backward() (see `bpgen ninja %s --header`)\n", g->file->name);
  } else {
    int w = 6;
    for (int k = 0; k < nrows; k++)
      if ((int)strlen(rows[k].s->gname) > w)
        w = (int)strlen(rows[k].s->gname);
    fprintf(out, "%-*s | shape ok | exact | approximate | maxdiff   | max ULPs\n", w, "tensor");
    for (int k = 0; k < nrows; k++) {
      Row *r = &rows[k];
      if (!r->shape_ok)
        fprintf(out, "%-*s | False    |       |             |           |", w, r->s->gname);
      else
        fprintf(out, "%-*s | True     | %-5s | %-11s | %-9.3g | %.0f", w, r->s->gname,
                r->exact ? "True" : "False", r->approx ? "True" : "False", r->maxdiff, r->maxulp);
      if (k == first_wrong)
        fprintf(out, "   <-- first wrong");
      fputc('\n', out);
    }
    if (first_wrong >= 0) {
      Row *r = &rows[first_wrong];
      fprintf(out, "\n%s is the first wrong gradient in backward order: %s.\n", r->s->gname, r->why);
      if (nwrong > 1)
        fprintf(out, "Fix it first: the earliest error explains the later ones (%d wrong in all).\n",
                nwrong);
    }
  }
  if (*unfilled)
    fprintf(out, "\nnot filled yet:%s\n", unfilled);
  int given = 0;
  for (int k = 0; k < nslot; k++)
    given += slot[k].given == 1;
  if (given) {
    fprintf(out, "given by bpgen (GIVEN):");
    for (int k = 0; k < nslot; k++)
      if (slot[k].given == 1)
        fprintf(out, " %s", slot[k].gname);
    fputc('\n', out);
  }
  fprintf(out, "\nexact: bitwise equal; approximate: allclose (rtol 1e-5, atol 1e-8); "
               "a gradient is wrong beyond maxdiff %.0e x its largest value%s\n",
          tol, nrows && first_wrong < 0 ? "; all filled gradients are right" : "");
  munmap(sh, shm_size);
  return nwrong;
}

int cmd_ninja(int argc, char **argv) {
  Cli c;
  cli_init(&c, DT_F32);
  bool header = false, use_ref = false;
  const char *mine = NULL;
  double tol = 0;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      fputs(usage, stdout);
      return 0;
    }
    if (strcmp(argv[i], "--header") == 0)
      header = true;
    else if (strcmp(argv[i], "--ref") == 0)
      use_ref = true;
    else if (strcmp(argv[i], "--mine") == 0)
      mine = cli_value(argc, argv, &i);
    else if (strcmp(argv[i], "--tol") == 0)
      tol = cli_double("--tol", cli_value(argc, argv, &i));
    else if (!cli_common(&c, argc, argv, &i))
      cli_unknown("ninja", argv[i]);
  }
  if (header == (mine != NULL))
    error_plain("ninja: give either --header or --mine FILE.c (see bpgen ninja --help)");
  Graph *g = cli_load(&c);
  if (header) {
    fputs(ninja_header(g, c.dtype), stdout);
    return 0;
  }
  SrcFile *f = read_src(mine);
  NinjaOpts o = {c.dtype, c.seed, use_ref, tol};
  return ninja_run(g, &o, mine, f->text, stdout) ? 1 : 0;
}
