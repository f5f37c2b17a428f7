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
 * [1, 64], is a shape error, never broadcast).  The file is compiled twice: once
 * to learn which gradients it declares and their shapes, then with those arrays
 * extern, bound to buffers bpgen maps with guard pages around each, so an
 * index out of range is blamed on the array it was aimed at.  backward() runs
 * twice, in a child process each time (a crash or an endless loop is reported,
 * not suffered; the time limit is the parent's, enforced with SIGKILL on the
 * child's process group), over gradients pre-filled two ways: what differs
 * between the runs was read before it was written.  One rule (judge_row)
 * decides "right" for the table, the verdict and the footer.
 */
#include "bpgen.h"
#include "bp_runtime.h"
#include "ref.h"
#include "mine.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <ucontext.h>
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
  "  --tol X    relative tolerance (default 1e-5 for f32, 1e-9 for f64): a gradient is\n"
  "             right within X x its largest value + 10 x its rounding noise (how far\n"
  "             bpgen's generated code and reference runtime differ on it)\n";

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
  "#ifndef BP_GRAD_STORAGE   /* bpgen defines it as extern: the arrays are its guarded buffers */\n"
  "#define BP_GRAD_STORAGE\n"
  "#endif\n"
  "#define GRAD(name, ...) \\\n"
  "  enum { name##__bp_ok = BP_OK_##name }; \\\n"
  "  BP_GRAD_STORAGE real name BP_CAT(BP_DIMS, BP_NARG(__VA_ARGS__))(__VA_ARGS__); \\\n"
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
  EmitOptions opt = {dt, "ninja", true, false, false};
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
    const BpTensor *t = bp_find_tensor(m, n->name, BP_INPUT);
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
      const BpTensor *t = bp_find_tensor(m, n->name, n->op == OP_param ? BP_PARAM : BP_ACT);
      if (!t)
        die("generated model has no tensor %s", n->name);
      p->val[i] = arena_alloc(bytes);
      tensor_get(t, st, p->val[i]);
    }
    if (fillable(n)) {
      const BpTensor *t = bp_find_tensor(m, arena_printf("d%s", n->name), BP_GRAD);
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

/* Every buffer the learner's code touches -- its gradients and bpgen's read-only
 * copies of the forward values -- is a mapping of its own: a guard region with no
 * access on each side, and between them the buffer, placed so that it ends on a
 * page boundary.  An index past the end faults at once; the slack before the
 * start (less than a page) holds a canary, so a write there is found after the
 * run, and anything further before the start faults.  The fault handler in the
 * child names the buffer, so an out-of-bounds write blames the array it was
 * aimed at, never the neighbour it would have landed in. */
typedef struct Guard {
  char *map;             /* the mapping: guard, data pages, guard */
  size_t maplen;
  char *lo;              /* the first data page: canary slack up to data */
  char *data;            /* the buffer; data + bytes is a page boundary */
  size_t bytes, esz;
  const char *name;      /* "dC", "logits" */
  Shape shape;           /* as the learner declared it (gradients), or the tensor's */
  bool readonly;         /* a forward tensor: any write faults */
} Guard;

#define CANARY 0xA5

static Guard *guards;
static int nguards;

static size_t round_up(size_t n, size_t to) { return (n + to - 1) / to * to; }

static Guard *guard_new(size_t bytes, size_t esz, const char *name, const Shape *shape) {
  size_t page = (size_t)sysconf(_SC_PAGESIZE);
  size_t data_len = round_up(bytes ? bytes : 1, page);
  size_t glen = round_up(bytes > (64 << 10) ? bytes : (64 << 10), page);   /* >= the buffer */
  char *map = mmap(NULL, 2 * glen + data_len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                   -1, 0);
  if (map == MAP_FAILED || mprotect(map + glen, data_len, PROT_READ | PROT_WRITE) != 0)
    error_plain("cannot map %zu bytes for %s: %s", bytes, name, strerror(errno));
  Guard *gd = &guards[nguards++];
  *gd = (Guard){map, 2 * glen + data_len, map + glen, map + glen + data_len - bytes, bytes, esz,
                name, *shape, false};
  memset(gd->lo, CANARY, (size_t)(gd->data - gd->lo));
  return gd;
}

static void guards_free(void) {
  for (int i = 0; i < nguards; i++)
    munmap(guards[i].map, guards[i].maplen);
  nguards = 0;
}

/* "dC[-1][9]": flat element f (negative or past the end) of a buffer of that
 * shape, counted row-major with the first index free to run out of range. */
static const char *elem_str(const char *name, const Shape *s, long f) {
  long idx[MAXRANK], rest = f;
  for (int d = s->rank - 1; d > 0; d--) {
    long n = s->dim[d] > 0 ? s->dim[d] : 1;
    long q = rest >= 0 ? rest / n : -((-rest + n - 1) / n);
    idx[d] = rest - q * n;
    rest = q;
  }
  idx[0] = rest;
  const char *out = name;
  for (int d = 0; d < (s->rank ? s->rank : 1); d++)
    out = arena_printf("%s[%ld]", out, s->rank ? idx[d] : f);
  if (s->rank < 2 || idx[s->rank - 1] != 0 || f <= 0)
    return out;
  /* just past a row: more likely written as the row before, one column too far */
  const char *alt = name;
  for (int d = 0; d < s->rank; d++)
    alt = arena_printf("%s[%ld]", alt, d < s->rank - 2 ? idx[d] : d == s->rank - 2 ? idx[d] - 1
                                                                 : (long)s->dim[d]);
  return arena_printf("%s (or %s)", out, alt);
}

/* One gradient of the spec and what the learner did with it. */
typedef struct Slot {
  Node *n;
  const char *gname;     /* "d" + name */
  Guard *gd;             /* the learner's array, or NULL when not declared */
  void *buf;             /* gd->data */
  Shape decl;            /* the shape the learner declared */
  long ndecl;            /* its elements */
  size_t shm_off[2];     /* its copy after each run, in the shared block */
  int given;             /* 1: GIVEN(), 2: GIVEN() with a wrong shape (set after the runs) */
  int id;                /* its index before the sort: sentinel payload, SlotOut index */
} Slot;

/* Per run and slot, what the child hands back (in a shared mapping). */
typedef struct SlotOut {
  int given;             /* 1 = GIVEN, 2 = GIVEN with the wrong shape */
  long before_lo, before_hi;   /* elements written before the start (< 0); 0 when none */
} SlotOut;

typedef struct RunOut {
  int done;              /* backward() returned */
  int fault;             /* it touched a guard region: */
  int fault_buf;         /*   guards[fault_buf], */
  int fault_write;       /*   1 a write, 0 a read, -1 unknown, */
  long fault_elem;       /*   at this element (negative: before the start) */
  char note[512];        /* GIVEN misuse */
} RunOut;

static struct {
  Slot *slot;
  int nslot;
  Pass *pass;
  DType dt;
  RunOut *run;
  SlotOut *out;          /* this run's, by slot id */
  Mine *mine;            /* bpgen run --mine: GIVEN takes the model's gradient */
} cur;   /* for bp_given() and the fault handler, in the child */

static void mine_given(Slot *s, void *buf);

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
      cur.out[s->id].given = 2;
      snprintf(cur.run->note, sizeof cur.run->note, "GIVEN(%s): you declared it %s, but it is %s",
               name, shape_str(&s->decl), shape_str(&s->n->shape));
      return;
    }
    if (cur.mine) {
      mine_given(s, buf);
      cur.out[s->id].given = 1;
      return;
    }
    const double *ref = cur.pass->grad[s->n->id];
    for (long k = 0; k < s->ndecl; k++) {
      if (cur.dt == DT_F32)
        ((float *)buf)[k] = (float)ref[k];
      else
        ((double *)buf)[k] = ref[k];
    }
    cur.out[s->id].given = 1;
    return;
  }
}

/* backward() runs twice, over gradients pre-filled two ways.  Run 0: quiet NaNs
 * whose payload names the array (id < 4096): arithmetic passes a NaN operand's
 * payload on, so a value computed from an unwritten gradient names that one.
 * Run 1: an ordinary number.  An element the same in both runs was computed
 * from this batch alone; one that differs was computed from what a gradient
 * held before backward() wrote it (a += without ZERO, a gradient used before
 * it is filled); one still holding its fill in both runs was never written. */
#define SENT32 0x7FC0B000u
#define SENT64 0x7FF8BADD00000000ull
#define FILL1 1234.5

static uint64_t bits_at(DType dt, const void *p, long k) {
  if (dt == DT_F32) {
    uint32_t b;
    memcpy(&b, (const float *)p + k, 4);
    return b;
  }
  uint64_t b;
  memcpy(&b, (const double *)p + k, 8);
  return b;
}

static uint64_t fill_bits(DType dt, int run, int id) {
  if (dt == DT_F32) {
    float f = (float)(FILL1 + id);
    uint32_t b = SENT32 + (uint32_t)id;
    if (run)
      memcpy(&b, &f, 4);
    return b;
  }
  double f = FILL1 + id;
  uint64_t b = SENT64 + (uint64_t)id;
  if (run)
    memcpy(&b, &f, 8);
  return b;
}

static void fill(DType dt, void *p, long n, int run, int id) {
  uint64_t b = fill_bits(dt, run, id);
  for (long k = 0; k < n; k++) {
    if (dt == DT_F32) {
      uint32_t b32 = (uint32_t)b;
      memcpy((float *)p + k, &b32, 4);
    } else {
      memcpy((double *)p + k, &b, 8);
    }
  }
}

/* The slot id a run-0 NaN came from (either sign), or -1. */
static int sentinel_id(DType dt, uint64_t b) {
  if (dt == DT_F32)
    return ((uint32_t)b & 0x7FFFF000u) == SENT32 ? (int)(b & 0xFFF) : -1;
  return (b & 0x7FFFFFFFFFFFF000ull) == SENT64 ? (int)(b & 0xFFF) : -1;
}

/* ---- running backward() in a child ------------------------------------------------ */

#define TIME_LIMIT 10   /* seconds per run */

/* SIGSEGV/SIGBUS in the child: a touch of a guard region is described in the
 * run's RunOut; any other fault is left to kill the child as before. */
static void on_fault(int sig, siginfo_t *si, void *ucv) {
  const char *a = si->si_addr;
  (void)ucv;
  for (int i = 0; i < nguards; i++) {
    const Guard *gd = &guards[i];
    if (a < gd->map || a >= gd->map + gd->maplen)
      continue;
    long off = (long)(a - gd->data), esz = (long)gd->esz;
    int w = -1;
#if defined(__x86_64__) && defined(REG_ERR)
    w = (((ucontext_t *)ucv)->uc_mcontext.gregs[REG_ERR] & 2) != 0;   /* the page fault's W bit */
#endif
    if (gd->readonly && a >= gd->lo && a < gd->data + gd->bytes)
      w = 1;   /* readable there: only a write faults */
    cur.run->fault_buf = i;
    cur.run->fault_elem = off >= 0 ? off / esz : -((-off + esz - 1) / esz);
    cur.run->fault_write = w;
    cur.run->fault = 1;
    _exit(3);
  }
  signal(sig, SIG_DFL);   /* not ours: the fault repeats and kills the child */
}

static pid_t child_group;   /* while a child runs: its process group */
static void on_parent_signal(int sig) {
  if (child_group > 0)
    kill(-child_group, SIGKILL);
  signal(sig, SIG_DFL);
  raise(sig);
}

/* The child: its own process group, killed with bpgen; fills the gradients
 * with this run's pattern, runs backward(), checks the canaries and copies the
 * gradients into the shared block. */
static void child_setup(pid_t parent) {
  setpgid(0, 0);
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() != parent)
    _exit(1);   /* bpgen died before the line above */
  static char altstack[1 << 16];   /* the handler must run even when the stack overflowed */
  stack_t ss = {.ss_sp = altstack, .ss_size = sizeof altstack};
  sigaltstack(&ss, NULL);
  struct sigaction sa = {0};
  sa.sa_sigaction = on_fault;
  sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_NODEFER;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGSEGV, &sa, NULL);
  sigaction(SIGBUS, &sa, NULL);
  signal(SIGFPE, SIG_DFL);
  signal(SIGILL, SIG_DFL);
  signal(SIGINT, SIG_DFL);
  signal(SIGTERM, SIG_DFL);
  signal(SIGHUP, SIG_DFL);
}

static NORETURN void child_main(void (*backward)(void), int run, char *shm, pid_t parent) {
  child_setup(parent);
  for (int k = 0; k < cur.nslot; k++)
    fill(cur.dt, cur.slot[k].buf, cur.slot[k].ndecl, run, cur.slot[k].id);
  backward();
  size_t esz = cur.dt == DT_F32 ? 4 : 8;
  for (int k = 0; k < cur.nslot; k++) {
    Slot *sl = &cur.slot[k];
    SlotOut *so = &cur.out[sl->id];
    for (const char *p = sl->gd->lo; p < sl->gd->data; p++)
      if (*(const unsigned char *)p != CANARY) {
        long e = -(long)((sl->gd->data - p + esz - 1) / esz);
        if (!so->before_lo)
          so->before_lo = e;
        so->before_hi = e;
      }
    memcpy(shm + sl->shm_off[run], sl->buf, esz * (size_t)sl->ndecl);
  }
  cur.run->done = 1;
  fflush(NULL);
  _exit(0);
}

/* Watches a forked child in its own process group until it exits or hung()
 * says it is stuck (then *timed_out and SIGKILL); SIGKILL then goes to the
 * whole group (whatever backward() started), and the child is reaped.  The
 * watch is the parent's, so nothing the learner's code does to its signals or
 * alarms defeats it.  Returns the wait status. */
static int watch_child(pid_t pid, bool (*hung)(void *ctx, const struct timespec *now), void *ctx,
                       bool *timed_out) {
  setpgid(pid, pid);   /* also here: no moment when a kill of the group misses it */
  child_group = pid;
  static const int sigs[] = {SIGINT, SIGTERM, SIGHUP};
  struct sigaction old[3], sa = {0};
  sa.sa_handler = on_parent_signal;
  sigemptyset(&sa.sa_mask);
  for (int k = 0; k < 3; k++)
    sigaction(sigs[k], &sa, &old[k]);
  long nap = 1000000;   /* ns: 1 ms, doubling to 20 ms */
  *timed_out = false;
  for (;;) {
    siginfo_t si;
    memset(&si, 0, sizeof si);
    if (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) < 0 && errno != EINTR)
      error_plain("waitid: %s", strerror(errno));
    if (si.si_pid == pid)
      break;
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    if (hung(ctx, &now)) {
      *timed_out = true;
      kill(pid, SIGKILL);   /* even if it left the group */
      break;
    }
    struct timespec ts = {0, nap};
    nanosleep(&ts, NULL);
    nap = nap * 2 < 20000000 ? nap * 2 : 20000000;
  }
  /* the child is not reaped yet, so the group is still its */
  kill(-pid, SIGKILL);
  int st;
  while (waitpid(pid, &st, 0) < 0)
    if (errno != EINTR)
      error_plain("waitpid: %s", strerror(errno));
  child_group = 0;
  for (int k = 0; k < 3; k++)
    sigaction(sigs[k], &old[k], NULL);
  return st;
}

/* hung() of one backward() run: past its deadline */
static bool past_deadline(void *ctx, const struct timespec *now) {
  const struct timespec *end = ctx;
  return now->tv_sec > end->tv_sec || (now->tv_sec == end->tv_sec && now->tv_nsec >= end->tv_nsec);
}

/* Runs backward() once in a child and waits at most TIME_LIMIT seconds.
 * Returns the wait status; *timed_out says the limit struck. */
static int run_child(void (*backward)(void), int run, char *shm, bool *timed_out) {
  fflush(NULL);
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid < 0)
    error_plain("fork: %s", strerror(errno));
  if (pid == 0)
    child_main(backward, run, shm, parent);
  struct timespec end;
  clock_gettime(CLOCK_MONOTONIC, &end);
  end.tv_sec += TIME_LIMIT;
  return watch_child(pid, past_deadline, &end, timed_out);
}

/* Why a run did not finish, for the error message. */
static const char *run_failure(const RunOut *ro, int st, bool timed_out) {
  if (timed_out)
    return arena_printf("did not return within %d seconds (an endless loop?)", TIME_LIMIT);
  if (ro->fault) {
    const Guard *gd = &guards[ro->fault_buf];
    long n = (long)(gd->bytes / gd->esz), e = ro->fault_elem;
    const char *at = arena_printf("%s, element %ld of a %s array of %ld", elem_str(gd->name, &gd->shape, e),
                                  e, shape_str(&gd->shape), n);
    if (gd->readonly && ro->fault_write == 1 && e >= 0 && e < n)
      return arena_printf("wrote to %s, which is read-only (%s): the forward values are given; the "
                          "arrays you write are the ones you declare with GRAD", gd->name,
                          elem_str(gd->name, &gd->shape, e));
    const char *verb = ro->fault_write == 1 ? "wrote" : ro->fault_write == 0 ? "read" : "went";
    if (e < 0)
      return arena_printf("%s before the start of %s: %s (an index below 0? a - 1 at index 0?)", verb,
                          gd->name, at);
    return arena_printf("%s past the end of %s: %s (an index out of range? a loop to <= instead of <?)",
                        verb, gd->name, at);
  }
  int sig = WIFSIGNALED(st) ? WTERMSIG(st) : 0;
  return sig == SIGSEGV || sig == SIGBUS
           ? "crashed (a segmentation fault: an index out of bounds? check your loops against the "
             "shapes in ninja.h)"
         : sig == SIGFPE ? "crashed (an arithmetic exception: an integer division by zero?)"
         : sig ? arena_printf("was killed by signal %d (%s)", sig, strsignal(sig))
               : arena_printf("exited with status %d", WEXITSTATUS(st));
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
  bool shape_ok, exact;
  bool approx;           /* the values are right: the one rule, decided by judge_row */
  bool ok;               /* shape_ok && approx: the verdict */
  long unset;            /* elements never written */
  long stale;            /* elements that depend on what a gradient held before backward() */
  long stale_self;       /*   of them, on this gradient's own old contents (+= without ZERO) */
  int from;              /*   else the slot id of the gradient they came from, or -1 */
  long nans;             /* NaN computed from this batch (log of a negative, 0/0) */
  long before_lo, before_hi;   /* elements written before the start (< 0), 0 when none */
  double maxdiff, maxulp;
  double limit;          /* the largest maxdiff that is right */
  const char *why;       /* wrong: the reason */
  const char *hint;      /* wrong: what it looks like (hint_row), or NULL */
} Row;

/* The one rule: a filled gradient is right when its declared shape is the
 * tensor's and it is approximate, i.e. nothing was written before its start,
 * every element was written from this batch alone (none unwritten, none read
 * before it was written) and the largest difference from bpgen's gradient is at
 * most tol x the gradient's largest |value| + NOISE_K x its rounding noise: how
 * far bpgen's two implementations of it (generated code, reference runtime)
 * differ.  The noise term is what lets a gradient 0 in exact arithmetic (db1,
 * dlogit_maxes: rounding only) pass without a floor that would hide a mistake
 * in a small gradient.  The table's "approximate" column, the verdict and the
 * footer all print what this decides. */
#define NOISE_K 10

static void judge_row(Row *r, DType dt, const void *mine, const double *ref, const double *other,
                      double tol, const Slot *slots, int nslot) {
  const Slot *sl = r->s;
  r->shape_ok = shape_matches(&sl->decl, &sl->n->shape);
  if (sl->given == 2) {
    r->shape_ok = false;
    r->why = arena_printf("GIVEN(%s) with the wrong shape: %s", sl->gname,
                          shape_hint(&sl->decl, &sl->n->shape, sl->gname));
  } else if (!r->shape_ok) {
    r->why = shape_hint(&sl->decl, &sl->n->shape, sl->gname);
  }
  if (!r->shape_ok) {
    r->ok = r->approx = false;
    return;
  }
  double scale = 0, noise = 0;
  r->exact = true;
  for (long e = 0; e < sl->ndecl; e++) {
    double v = dt == DT_F32 ? ((const float *)mine)[e] : ((const double *)mine)[e];
    double d = isnan(v) ? INFINITY : fabs(v - ref[e]);
    r->exact &= v == ref[e];
    r->maxdiff = fmax(r->maxdiff, d);
    r->maxulp = fmax(r->maxulp, ulp_distance(dt, v, ref[e]));
    scale = fmax(scale, fabs(ref[e]));
    noise = fmax(noise, fabs(other[e] - ref[e]));
  }
  r->limit = tol * scale + NOISE_K * noise;
  bool close = r->maxdiff <= r->limit;
  r->approx = !r->before_lo && !r->unset && !r->stale && !r->nans && close;
  r->exact &= r->approx;
  r->ok = r->approx;
  const char *g = sl->gname;
  if (r->before_lo)
    r->why = r->before_lo == r->before_hi
               ? arena_printf("backward() wrote before the start of %s: %s, element %ld (an index "
                              "below 0? a - 1 at index 0?)", g, elem_str(g, &sl->decl, r->before_lo),
                              r->before_lo)
               : arena_printf("backward() wrote before the start of %s: %s to %s, elements %ld to %ld "
                              "(an index below 0? a - 1 at index 0?)", g,
                              elem_str(g, &sl->decl, r->before_lo), elem_str(g, &sl->decl, r->before_hi),
                              r->before_lo, r->before_hi);
  else if (r->stale_self)
    r->why = arena_printf("`+=` into %s without zeroing it first? %ld of its %ld elements depend on "
                          "what %s held before backward() wrote it%s (ZERO(%s) before accumulating)",
                          g, r->stale, sl->ndecl, g,
                          r->unset ? arena_printf(", %ld were never written", r->unset) : "", g);
  else if (r->unset)
    r->why = arena_printf("%ld of its %ld elements were never written", r->unset, sl->ndecl);
  else if (r->stale && r->from >= 0) {
    const char *f = NULL;
    for (int k = 0; k < nslot; k++)
      if (slots[k].id == r->from)
        f = slots[k].gname;
    r->why = arena_printf("%ld of its elements were computed from %s before %s was written (NaN: "
                          "computed from a gradient you did not fill? fill it first, or GIVEN(%s) "
                          "to start from bpgen's)", r->stale, f, f, f);
  } else if (r->stale)
    r->why = arena_printf("%ld of its elements depend on what the gradients held before backward() "
                          "ran: a gradient read before it is written", r->stale);
  else if (r->nans)
    r->why = arena_printf("%ld elements are NaN", r->nans);
  else if (!close)
    r->why = arena_printf("maxdiff %.3g is beyond the tolerance %.3g (%.0e x the size of %s + %d x "
                          "its rounding noise %.3g)%s", r->maxdiff, r->limit, tol, g, NOISE_K, noise,
                          dt == DT_F32 ? (r->maxdiff <= 30 * r->limit
                                              ? "; --dtype f64 tells rounding from a mistake" : "")
                          : r->maxdiff <= 1e-5 * scale ? "; float functions (expf, logf) round to "
                                                         "float even in double code: use exp, log"
                                                       : "");
}

/* ---- hints: what a wrong gradient looks like --------------------------------------- */

/* The verdict says a gradient is wrong; a hint says what it looks like, compared
 * with the right one: a constant factor off (a missing / n, a sign, Bessel's
 * n/(n-1)), the transpose, another tensor's gradient, a sum where there should
 * be none, rows that should sum to 0, a local derivative the forward values
 * allow but the op does not have.  A hint never changes the verdict. */

static double max_abs(const double *v, long n) {
  double s = 0;
  for (long k = 0; k < n; k++)
    s = fmax(s, fabs(v[k]));
  return s;
}

static double max_diff(const double *a, const double *b, long n) {
  double d = 0;
  for (long k = 0; k < n; k++)
    d = fmax(d, fabs(a[k] - b[k]));
  return d;
}

/* x looks like y: equal to 1e-4 of y's size, and far closer to y than to the
 * right gradient (dref away) */
static bool looks_like(const double *x, const double *y, long n, double dref) {
  double d = max_diff(x, y, n), s = max_abs(y, n);
  return s > 0 && d <= 1e-4 * s && d < 0.1 * dref;
}

static const char *factor_text(Graph *g, double a) {
  if (fabs(a - 2) <= 1e-4 * 2)
    return "2: a factor 2 too many (the 2 of d(x²)/dx = 2x counted twice?)";
  if (fabs(a - 0.5) <= 1e-4 * 0.5)
    return "1/2: the 2 of d(x²)/dx = 2x left out?";
  for (int i = 0; i < g->ndims; i++) {
    long v = g->dims[i].value;
    if (v < 2)
      continue;
    const char *d = dim_name(g, (int)v);
    double c[4] = {(double)v, 1.0 / (double)v, (double)(v - 1) / (double)v, (double)v / (double)(v - 1)};
    const char *t[4] = {
      arena_printf("%s (= %ld): a missing / %s?", d, v, d),
      arena_printf("1/%s: an extra / %s?", d, d),
      arena_printf("(%s − 1)/%s = %ld/%ld: Bessel's correction — / %s where the spec divides by %s − 1?", d,
                   d, v - 1, v, d, d),
      arena_printf("%s/(%s − 1) = %ld/%ld: Bessel's correction — / (%s − 1) where the spec divides by %s?",
                   d, d, v, v - 1, d, d)};
    for (int k = 0; k < 4; k++)
      if (fabs(a - c[k]) <= 1e-5 * c[k])
        return t[k];
  }
  return NULL;
}

/* The one user of t among the forward nodes, or NULL (none, or several: fan-out). */
static Node *only_user(Graph *g, Node *t) {
  Node *u = NULL;
  for (int i = 0; i < g->nforward; i++)
    for (int k = 0; k < MAXIN && g->nodes[i]->in[k]; k++)
      if (g->nodes[i]->in[k] == t) {
        if (u)
          return NULL;
        u = g->nodes[i];
      }
  return u;
}

/* a local derivative the forward values allow, in place of the op's own */
static const char *unary_hint(Graph *g, Node *t, const double *m, long n, double dref, const Pass *p) {
  Node *u = only_user(g, t);
  if (!u || (u->op != OP_tanh && u->op != OP_exp && u->op != OP_log) || !u->name ||
      !shape_eq(&u->shape, &t->shape) || !p->grad[u->id] || !p->val[u->id] || !p->val[t->id])
    return NULL;
  const double *dy = p->grad[u->id], *y = p->val[u->id], *x = p->val[t->id];
  const char *Y = u->name, *X = t->name;
  double *c = arena_alloc(sizeof(double) * (size_t)n);
  for (int k = 0; k < 4; k++) {
    const char *say = NULL;
    for (long e = 0; e < n; e++) {
      double v = 0;
      switch (u->op) {
      case OP_tanh:
        v = k == 0 ? (1 - y[e]) * dy[e] : k == 1 ? (1 - x[e] * x[e]) * dy[e] : k == 2 ? dy[e] : 1 - y[e] * y[e];
        break;
      case OP_exp: v = k == 0 ? x[e] * dy[e] : k == 1 ? dy[e] : k == 2 ? y[e] : NAN; break;
      default: v = k == 0 ? x[e] * dy[e] : k == 1 ? dy[e] : k == 2 ? 1 / x[e] : NAN; break;
      }
      c[e] = v;
    }
    if (!looks_like(m, c, n, dref))
      continue;
    if (u->op == OP_tanh)
      say = k == 0 ? arena_printf("it is (1 − %s) ⊙ d%s: tanh's derivative is 1 − %s², not 1 − %s", Y, Y, Y, Y)
          : k == 1 ? arena_printf("it is (1 − %s²) ⊙ d%s: tanh's derivative is 1 − tanh² of its output, "
                                  "1 − %s², not of its input %s", X, Y, Y, X)
          : k == 2 ? arena_printf("it is d%s passed through: tanh's derivative (1 − %s²) is missing", Y, Y)
                   : arena_printf("it is 1 − %s² alone: the chain rule's ⊙ d%s is missing", Y, Y);
    else if (u->op == OP_exp)
      say = k == 0 ? arena_printf("it is %s ⊙ d%s: exp's derivative is its output %s = exp(%s), not its input",
                                  X, Y, Y, X)
          : k == 1 ? arena_printf("it is d%s passed through: exp's derivative (%s) is missing", Y, Y)
                   : arena_printf("it is %s alone: the chain rule's ⊙ d%s is missing", Y, Y);
    else
      say = k == 0 ? arena_printf("it is %s ⊙ d%s: log's derivative is 1/%s (divide, not multiply)", X, Y, X)
          : k == 1 ? arena_printf("it is d%s passed through: log's derivative 1/%s is missing", Y, X)
                   : arena_printf("it is 1/%s alone: the chain rule's ⊙ d%s is missing", X, Y);
    return say;
  }
  return NULL;
}

static const char *hint_row(Graph *g, const Row *r, DType dt, const void *mine, const Pass *p) {
  const Slot *sl = r->s;
  Node *t = sl->n;
  long n = shape_numel(&t->shape);
  const double *ref = p->grad[t->id];
  if (!ref || sl->ndecl != n || r->unset || r->stale || r->nans || r->before_lo || sl->given)
    return NULL;
  double *m = arena_alloc(sizeof(double) * (size_t)n), *c = arena_alloc(sizeof(double) * (size_t)n);
  for (long e = 0; e < n; e++)
    m[e] = dt == DT_F32 ? ((const float *)mine)[e] : ((const double *)mine)[e];
  double scale = max_abs(ref, n), dref = max_diff(m, ref, n);
  const char *G = sl->gname;
  if (scale == 0 || dref == 0)
    return NULL;
  int R = t->shape.rank == 2 ? t->shape.dim[0] : 0, C = t->shape.rank == 2 ? t->shape.dim[1] : 0;

  /* the transpose: your [C, R] laid out where the [R, C] goes */
  if (R > 1 && C > 1) {
    for (long i = 0; i < R; i++)
      for (long j = 0; j < C; j++)
        c[i * C + j] = m[j * R + i];
    if (looks_like(c, ref, n, dref))
      return arena_printf("its values are the transpose of the right %s (a [%d, %d] where the [%d, %d] "
                          "goes): the operands of a matmul swapped, or a ᵀ missing?", G, C, R, R, C);
  }
  /* another tensor's gradient */
  for (int i = 0; i < g->nforward; i++) {
    Node *o = g->nodes[i];
    if (o != t && p->grad[i] && shape_numel(&o->shape) == n && looks_like(m, p->grad[i], n, dref))
      return arena_printf("its values are d%s's: written into the wrong buffer, or d%s's line copied?",
                          o->name, o->name);
  }
  const char *u = unary_hint(g, t, m, n, dref, p);
  if (u)
    return u;
  /* a constant factor: the least-squares multiple of the right one */
  double mr = 0, rr = 0;
  for (long e = 0; e < n; e++) {
    mr += m[e] * ref[e];
    rr += ref[e] * ref[e];
  }
  double a = mr / rr;
  for (long e = 0; e < n; e++)
    c[e] = a * ref[e];
  if (a != 0 && looks_like(m, c, n, dref)) {
    const char *f = factor_text(g, fabs(a));
    if (a < 0 && fabs(fabs(a) - 1) <= 1e-5)
      return arena_printf("yours is the right %s × −1: a sign flipped", G);
    if (f)
      return arena_printf("yours is the right %s × %s%s", G, a < 0 ? "−" : "", f);
    return arena_printf("yours is the right %s × %.6g: a constant factor off", G, a);
  }
  /* up to a broadcast: rows (columns) that are the right sum over rows (columns) */
  if (R > 1 && C > 1) {
    double *cs = arena_alloc(sizeof(double) * (size_t)C), *rs = arena_alloc(sizeof(double) * (size_t)R);
    for (long i = 0; i < R; i++)
      for (long j = 0; j < C; j++) {
        cs[j] += ref[i * C + j];
        rs[i] += ref[i * C + j];
      }
    for (int k = 0; k < 4; k++) {
      double div = k % 2 ? (k < 2 ? R : C) : 1;
      for (long i = 0; i < R; i++)
        for (long j = 0; j < C; j++)
          c[i * C + j] = (k < 2 ? cs[j] : rs[i]) / div;
      if (looks_like(m, c, n, dref))
        return arena_printf("every %s of yours is the right %s %s over its %ss (axis %d): a sum, or a "
                            "broadcast, where the gradient should flow %s by %s?",
                            k < 2 ? "row" : "column", G, k % 2 ? "averaged" : "summed",
                            k < 2 ? "row" : "column", k < 2 ? 0 : 1, k < 2 ? "row" : "column",
                            k < 2 ? "row" : "column");
    }
  }
  /* rows that should sum to 0 (softmax minus one-hot) */
  if (t->shape.rank >= 1 && t->shape.dim[t->shape.rank - 1] > 1) {
    long L = t->shape.dim[t->shape.rank - 1], rows = n / L, bad = -1;
    bool zero = true, same = true;   /* same: every row of yours has one sum */
    double badsum = 0, first = 0;
    for (long i = 0; i < rows && zero; i++) {
      double s = 0, sa = 0, ms = 0, msa = 0;
      for (long j = 0; j < L; j++) {
        s += ref[i * L + j];
        sa += fabs(ref[i * L + j]);
        ms += m[i * L + j];
        msa += fabs(m[i * L + j]);
      }
      zero = fabs(s) <= 1e-4 * sa;
      if (i == 0)
        first = ms;
      same &= fabs(ms - first) <= 1e-3 * fabs(first);
      if (bad < 0 && fabs(ms) > 1e-3 * msa && fabs(ms) > 1e-3 * sa) {
        bad = i;
        badsum = ms;
      }
    }
    if (zero && bad >= 0) {
      Node *usr = only_user(g, t);
      bool soft = (usr && (usr->op == OP_cross_entropy || usr->op == OP_softmax)) || strstr(t->name, "logit");
      return same ? arena_printf("each row of the right %s sums to 0%s; every row of yours sums to %.3g%s", G,
                                 soft ? " (softmax minus one-hot)" : "", first,
                                 soft ? ": the − 1 at the label missing, or subtracted twice?" : "")
                  : arena_printf("each row of the right %s sums to 0%s; yours do not (row %ld sums to %.3g)", G,
                                 soft ? " (softmax minus one-hot)" : "", bad, badsum);
    }
  }
  return NULL;
}

/* ---- the learner's source: lines to show, float functions under f64 ----------------- */

static bool is_ident_char(char ch) {
  return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '_';
}

/* The text with comments and string and character literals blanked (newlines
 * kept), so that a scan for names sees only code. */
static char *code_only(const char *text) {
  size_t n = strlen(text);
  char *s = arena_strndup(text, n);
  for (size_t i = 0; i < n; i++) {
    if (s[i] == '/' && s[i + 1] == '/') {
      while (i < n && s[i] != '\n')
        s[i++] = ' ';
    } else if (s[i] == '/' && s[i + 1] == '*') {
      s[i] = s[i + 1] = ' ';
      for (i += 2; i < n && !(s[i] == '*' && s[i + 1] == '/'); i++)
        if (s[i] != '\n')
          s[i] = ' ';
      if (i < n)
        s[i] = s[i + 1] = ' ', i++;
    } else if (s[i] == '"' || s[i] == '\'') {
      char q = s[i];
      for (i++; i < n && s[i] != q && s[i] != '\n'; i++) {
        if (s[i] == '\\' && s[i + 1] && s[i + 1] != '\n')
          s[i++] = ' ';
        s[i] = ' ';
      }
    }
  }
  return s;
}

/* The line of the first assignment to name (name[..]... = / += / -= / *= / /=,
 * memcpy(name, memset(name), else of its first ZERO(name) or GIVEN(name); 0
 * when none. */
static int assign_line(const char *code, const char *name) {
  size_t len = strlen(name);
  int line = 1, other = 0;
  for (const char *p = code; *p; p++) {
    if (*p == '\n') {
      line++;
      continue;
    }
    if (strncmp(p, name, len) != 0 || (p > code && is_ident_char(p[-1])) || is_ident_char(p[len]))
      continue;
    const char *q = p + len;
    for (;;) {
      while (*q == ' ' || *q == '\t' || *q == ')')   /* ((real *)dW2)[k] = */
        q++;
      if (*q != '[')
        break;
      for (int depth = 0; *q && *q != '\n';) {
        depth += *q == '[' ? 1 : *q == ']' ? -1 : 0;
        q++;
        if (!depth)
          break;
      }
    }
    if ((q[0] == '=' && q[1] != '=') || (q[0] && strchr("+-*/", q[0]) && q[1] == '='))
      return line;
    const char *b = p;
    while (b > code && (b[-1] == ' ' || b[-1] == '('))
      b--;
    if ((b - code >= 7 && strncmp(b - 6, "memcpy", 6) == 0) || (b - code >= 7 && strncmp(b - 6, "memset", 6) == 0))
      return line;
    if (!other && ((b - code >= 5 && strncmp(b - 4, "ZERO", 4) == 0) ||
                   (b - code >= 6 && strncmp(b - 5, "GIVEN", 5) == 0)))
      other = line;
    p += len - 1;
  }
  return other;
}

static const char *source_line(const char *text, int line) {
  const char *p = text;
  for (int l = 1; l < line && *p; p++)
    if (*p == '\n')
      l++;
  while (*p == ' ' || *p == '\t')
    p++;
  const char *e = strchr(p, '\n');
  size_t n = e ? (size_t)(e - p) : strlen(p);
  while (n && (p[n - 1] == ' ' || p[n - 1] == '\r'))
    n--;
  return arena_strndup(p, n);
}

/* Under --dtype f64: each call of a float-only math function, as a warning. */
static void warn_float_calls(FILE *out, const char *path, const char *text) {
  static const char *const fns[] = {"expf",  "logf",  "powf",   "tanhf",  "sqrtf", "fabsf", "fmaxf",
                                    "fminf", "sinf",  "cosf",   "log1pf", "expm1f", "exp2f", "log2f",
                                    "log10f", "coshf", "sinhf", "erff",   "floorf", "ceilf", "roundf"};
  const char *code = code_only(text);
  int line = 1;
  for (const char *p = code; *p; p++) {
    if (*p == '\n') {
      line++;
      continue;
    }
    if (!is_ident_char(*p) || (p > code && is_ident_char(p[-1])))
      continue;
    const char *e = p;
    while (is_ident_char(*e))
      e++;
    const char *q = e;
    while (*q == ' ' || *q == '\t')
      q++;
    for (size_t k = 0; k < sizeof fns / sizeof fns[0] && *q == '('; k++)
      if ((size_t)(e - p) == strlen(fns[k]) && strncmp(p, fns[k], (size_t)(e - p)) == 0)
        fprintf(out, "%s:%d: warning: %s() computes in float: under --dtype f64 its result, rounded to "
                     "float (~1e-7), makes a right gradient look wrong at 1e-9; use %.*s()\n",
                path, line, fns[k], (int)strlen(fns[k]) - 1, fns[k]);
    p = e - 1;
  }
}

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

/* The learner's file compiled twice (see the file comment): returns the second
 * state, fills *slotp (the gradients it declares, each with its guarded buffer)
 * and *nslotp.  Exits with an error when the file does not compile. */
static Jit *compile_mine(Graph *g, DType dt, const char *path, const char *text, Slot **slotp,
                         int *nslotp) {
  size_t esz = dt == DT_F32 ? 4 : 8;
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
  /* First compile: the arrays as the learner declared them, to learn which
   * gradients it fills and their shapes.  Second: the same file with the arrays
   * extern, bound to guarded buffers of those sizes. */
  JitSymbol *syms = arena_alloc(sizeof(JitSymbol) * (size_t)(g->nforward + 1));
  syms[0] = (JitSymbol){"bp_given", (const void *)&bp_given};
  JitOptions jo = {"-std=c99 -Wall", dir, syms, 1};
  const char *msgs;
  Jit *s = jit_try_compile(src, &jo, &msgs);
  if (!s) {
    unlink(hpath);
    rmdir(dir);
    error_plain("%s does not compile:\n%s", path, msgs);
  }
  if (!jit_symbol(s, "backward")) {
    jit_free(s);
    unlink(hpath);
    rmdir(dir);
    error_plain("%s has no function 'void backward(void)'", path);
  }
  fputs(msgs, stderr);   /* warnings */

  guards_free();
  guards = arena_alloc(sizeof(Guard) * (size_t)(2 * g->nforward + 1));
  int nslot = 0;
  Slot *slot = arena_alloc(sizeof(Slot) * (size_t)(g->nforward + 1));
  for (int i = 0; i < g->nforward; i++) {
    Node *n = g->nodes[i];
    if (!fillable(n) || is_c_word(n->name))
      continue;
    Slot *sl = &slot[nslot];
    sl->n = n;
    sl->gname = arena_printf("d%s", n->name);
    const int *shp = jit_symbol(s, arena_printf("%s__bp_shape", sl->gname));
    if (!jit_symbol(s, sl->gname) || !shp)
      continue;
    sl->ndecl = 1;
    for (int r = 0; shp[r] >= 0 && r < MAXRANK; r++) {
      sl->decl.dim[sl->decl.rank++] = shp[r];
      sl->ndecl *= shp[r];
    }
    sl->id = nslot;
    sl->gd = guard_new(esz * (size_t)sl->ndecl, esz, sl->gname, &sl->decl);
    sl->buf = sl->gd->data;
    syms[jo.nsymbols++] = (JitSymbol){sl->gname, sl->buf};
    nslot++;
  }
  jit_free(s);
  if (nslot > 4096)
    error_plain("%s declares %d gradients; at most 4096 can be judged", path, nslot);
  s = jit_try_compile(arena_printf("#define BP_GRAD_STORAGE extern\n%s", src), &jo, &msgs);
  unlink(hpath);
  rmdir(dir);
  if (!s) {
    guards_free();
    error_plain("%s does not compile with its gradients bound to bpgen's buffers:\n%s", path, msgs);
  }
  *slotp = slot;
  *nslotp = nslot;
  return s;
}

int ninja_run(Graph *g, const NinjaOpts *o, const char *path, const char *text, FILE *out) {
  DType dt = o->dtype;
  double tol = o->tol > 0 ? o->tol : dt == DT_F32 ? 1e-5 : 1e-9;
  size_t esz = dt == DT_F32 ? 4 : 8;
  Pass pass = {g, arena_alloc(sizeof(double *) * (size_t)g->nforward),
               arena_alloc(sizeof(double *) * (size_t)g->nforward), 0, NULL};
  int32_t **ival = arena_alloc(sizeof(int32_t *) * (size_t)g->nforward);
  /* the other implementation: how far two honest programs differ is the noise */
  Pass other = {g, arena_alloc(sizeof(double *) * (size_t)g->nforward),
                arena_alloc(sizeof(double *) * (size_t)g->nforward), 0, NULL};
  int32_t **ival2 = arena_alloc(sizeof(int32_t *) * (size_t)g->nforward);
  if (o->use_ref) {
    pass_ref(&pass, dt, o->seed, ival);
    pass_gen(&other, dt, o->seed, ival2);
  } else {
    pass_gen(&pass, dt, o->seed, ival);
    pass_ref(&other, dt, o->seed, ival2);
  }

  Slot *slot;
  int nslot;
  Jit *s = compile_mine(g, dt, path, text, &slot, &nslot);
  void (*backward)(void) = (void (*)(void))jit_symbol(s, "backward");

  /* point the learner's tensors at read-only copies */
  for (int i = 0; i < g->nforward; i++) {
    Node *n = g->nodes[i];
    if (!visible(n) || is_c_word(n->name))
      continue;
    void *var = jit_symbol(s, n->name);
    if (!var)
      continue;
    long ne = shape_numel(&n->shape);
    size_t vsz = n->type == TY_INT ? sizeof(int32_t) : esz;
    if (n->shape.rank == 0) {
      if (n->type == TY_INT)
        *(int *)var = ival[i][0];
      else if (dt == DT_F32)
        *(float *)var = (float)pass.val[i][0];
      else
        *(double *)var = pass.val[i][0];
      continue;
    }
    Guard *gd = guard_new(vsz * (size_t)ne, vsz, n->name, &n->shape);
    for (long k = 0; k < ne; k++)
      if (n->type == TY_INT)
        ((int32_t *)gd->data)[k] = ival[i][k];
      else if (dt == DT_F32)
        ((float *)gd->data)[k] = (float)pass.val[i][k];
      else
        ((double *)gd->data)[k] = pass.val[i][k];
    mprotect(gd->lo, (size_t)(gd->data + gd->bytes - gd->lo), PROT_READ);
    gd->readonly = true;
    *(const void **)var = gd->data;
  }

  /* the shared block: two RunOuts, two SlotOut tables, each gradient twice */
  size_t out_off = round_up(2 * sizeof(RunOut), 16);
  size_t shm_size = round_up(out_off + 2 * sizeof(SlotOut) * (size_t)(nslot ? nslot : 1), 16);
  for (int run = 0; run < 2; run++)
    for (int k = 0; k < nslot; k++) {
      slot[k].shm_off[run] = shm_size;
      shm_size += round_up(esz * (size_t)slot[k].ndecl, 16);
    }
  char *shm = mmap(NULL, shm_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (shm == MAP_FAILED) {
    guards_free();
    error_plain("mmap: %s", strerror(errno));
  }
  RunOut *ro = (RunOut *)shm;
  SlotOut *so[2] = {(SlotOut *)(shm + out_off), (SlotOut *)(shm + out_off) + nslot};

  /* run backward() twice in a child: a crash or a hang is the learner's, not ours */
  cur.slot = slot;
  cur.nslot = nslot;
  cur.pass = &pass;
  cur.dt = dt;
  for (int run = 0; run < 2; run++) {
    cur.run = &ro[run];
    cur.out = so[run];
    bool timed_out;
    int st = run_child(backward, run, shm, &timed_out);
    if (!ro[run].done) {
      const char *why = run_failure(&ro[run], st, timed_out);
      jit_free(s);
      guards_free();
      munmap(shm, shm_size);
      error_plain("%s: backward() %s%s", path, why,
                  run ? " -- on its second run, over gradients holding other values before it "
                        "started: does it read a gradient before writing it?" : "");
    }
  }
  jit_free(s);
  guards_free();
  sort_graph = g;

  /* judge, in backward order */
  for (int k = 0; k < nslot; k++)
    slot[k].given = so[0][k].given;   /* by slot before the sort */
  qsort(slot, (size_t)nslot, sizeof *slot, by_backward);

  Row *rows = arena_alloc(sizeof(Row) * (size_t)(nslot ? nslot : 1));
  int nrows = 0, nwrong = 0, first_wrong = -1;
  const char *unfilled = "";
  for (int k = 0; k < nslot; k++) {
    Slot *sl = &slot[k];
    Row *r = &rows[nrows];
    memset(r, 0, sizeof *r);
    r->s = sl;
    const void *a = shm + sl->shm_off[0], *b = shm + sl->shm_off[1];
    const SlotOut *o0 = &so[0][sl->id], *o1 = &so[1][sl->id];
    r->before_lo = o0->before_lo ? o0->before_lo : o1->before_lo;
    r->before_hi = o0->before_lo ? o0->before_hi : o1->before_hi;
    r->from = -1;
    for (long e = 0; e < sl->ndecl; e++) {
      uint64_t ba = bits_at(dt, a, e), bb = bits_at(dt, b, e);
      double v = dt == DT_F32 ? ((const float *)a)[e] : ((const double *)a)[e];
      if (ba == fill_bits(dt, 0, sl->id) && bb == fill_bits(dt, 1, sl->id)) {
        r->unset++;
      } else if (ba != bb) {
        r->stale++;
        int j = sentinel_id(dt, ba);
        if (j == sl->id)
          r->stale_self++;
        else if (j >= 0 && j < nslot && r->from < 0)
          r->from = j;
      } else if (isnan(v)) {
        r->nans++;
      }
    }
    if (sl->given == 1)
      continue;   /* GIVEN: bpgen's own values, not judged */
    if (r->unset == sl->ndecl && sl->given != 2 && !r->before_lo) {
      unfilled = arena_printf("%s %s", unfilled, sl->gname);
      continue;
    }
    judge_row(r, dt, a, pass.grad[sl->n->id], other.grad[sl->n->id], tol, slot, nslot);
    if (!r->ok)
      r->hint = hint_row(g, r, dt, a, &pass);
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
  if (ro[0].note[0])
    fprintf(out, "note: %s\n", ro[0].note);
  if (dt == DT_F64)
    warn_float_calls(out, path, text);
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
      if (r->hint)
        fprintf(out, "  hint: %s\n", r->hint);
      int at = assign_line(code_only(text), r->s->gname);
      if (at)
        fprintf(out, "  %s:%d: %s\n", path, at, source_line(text, at));
      if (nwrong > 1) {
        fprintf(out, "Fix it first: the earliest error explains the later ones (%d wrong in all).\n",
                nwrong);
        for (int k = first_wrong + 1; k < nrows; k++)
          if (!rows[k].ok && rows[k].hint)
            fprintf(out, "  hint for %s (perhaps wrong only through %s): %s\n", rows[k].s->gname,
                    r->s->gname, rows[k].hint);
      }
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
  fprintf(out, "\nexact: bitwise equal; approximate = right: the shape you declared, every element "
               "written from this batch alone (none left unwritten, none read before it was "
               "written), maxdiff <= %.0e x the gradient's largest |value| + %d x its rounding noise "
               "(how far bpgen's two implementations differ)", tol, NOISE_K);
  if (nrows && first_wrong < 0)
    fprintf(out, "; all filled gradients are right\n");
  else if (nrows)
    fprintf(out, "; %d of %d filled gradients are wrong\n", nwrong, nrows);
  else
    fputc('\n', out);
  munmap(shm, shm_size);
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
    error_usage("ninja: give either --header or --mine FILE.c (see bpgen ninja --help)");
  Graph *g = cli_load(&c);
  if (header) {
    fputs(ninja_header(g, c.dtype), stdout);
    return 0;
  }
  SrcFile *f = read_src(mine);
  NinjaOpts o = {c.dtype, c.seed, use_ref, tol};
  return ninja_run(g, &o, mine, f->text, stdout) ? 1 : 0;
}

/* ---- bpgen run --mine: the learner's backward in training --------------------------- *
 * The file is compiled as for ninja (compile_mine).  At each step mine_hook
 * copies the forward values of the model's state into the learner's read-only
 * buffers, fills its gradients with the run-0 NaNs (an element never written,
 * or computed from a gradient before it was written, stays a NaN that names
 * the gradient), calls backward(), and copies the learner's param gradients
 * into the state's, where the optimiser reads them.  At a check step the
 * model's own backward runs on the same batch first and every gradient the
 * learner filled is judged by ninja's rule (judge_row), the rounding noise
 * taken from the reference runtime on the same params and batch. */

typedef struct MineFwd {
  Node *n;
  void *var;             /* the learner's pointer (or scalar) */
  Guard *gd;             /* its read-only buffer (rank > 0) */
  const BpTensor *t;     /* the model's tensor */
} MineFwd;

typedef struct MineShared {   /* the child writes, the parent reads */
  RunOut run;
  volatile long step;
  volatile long beat;         /* +1 entering and leaving backward() */
  volatile int inside;        /* in backward() */
} MineShared;

struct Mine {
  Graph *g;
  DType dt;
  double tol;
  const char *path, *text;
  const BpModel *m;
  Jit *s;
  void (*backward)(void);
  Slot *slot;            /* in backward order */
  int nslot;
  const BpTensor **gen;  /* by slot index: the model's gradient */
  MineFwd *fwd;
  int nfwd;
  SlotOut *out;          /* by slot id: GIVEN */
  MineShared *sh;
  Ref *ref;              /* for the rounding noise at check steps */
  void *state;           /* this step's */
  bool gen_done;         /* the model's backward ran on this step's batch */
  void **run1;           /* by slot index: the gradients of a check step's first run */
};

static const BpTensor *model_tensor(const BpModel *m, Node *n) {
  int kind = n->op == OP_input ? BP_INPUT : n->op == OP_param ? BP_PARAM : BP_ACT;
  return bp_find_tensor(m, n->name, kind);
}

static void mine_run_model_backward(Mine *mi) {
  if (!mi->gen_done)
    mi->m->backward(mi->state);
  mi->gen_done = true;
}

/* GIVEN(dname) in training: the model's gradient on this step's batch */
static void mine_given(Slot *s, void *buf) {
  Mine *mi = cur.mine;
  int k = (int)(s - mi->slot);
  mine_run_model_backward(mi);
  memcpy(buf, (char *)mi->state + mi->gen[k]->offset, mi->gen[k]->numel * (mi->dt == DT_F32 ? 4 : 8));
}

Mine *mine_load(Graph *g, const MineOpts *o, const BpModel *m, const char *path, const char *text) {
  Mine *mi = arena_alloc(sizeof *mi);
  mi->g = g;
  mi->dt = o->dtype;
  mi->tol = o->tol > 0 ? o->tol : o->dtype == DT_F32 ? 1e-5 : 1e-9;
  mi->path = path;
  mi->text = text;
  mi->m = m;
  mi->s = compile_mine(g, mi->dt, path, text, &mi->slot, &mi->nslot);
  mi->backward = (void (*)(void))jit_symbol(mi->s, "backward");
  /* the shapes first: a wrong one is the learner's first mistake */
  for (int k = 0; k < mi->nslot; k++) {
    Slot *sl = &mi->slot[k];
    if (!shape_matches(&sl->decl, &sl->n->shape))
      error_plain("%s: %s", path, shape_hint(&sl->decl, &sl->n->shape, sl->gname));
  }
  const char *missing = "";
  for (int i = 0; i < g->nforward; i++) {
    Node *n = g->nodes[i];
    if (n->op != OP_param)
      continue;
    bool have = false;
    for (int k = 0; k < mi->nslot; k++)
      have |= mi->slot[k].n == n;
    if (!have)
      missing = arena_printf("%s%sd%s", missing, *missing ? ", " : "", n->name);
  }
  if (*missing)
    error_plain("%s: to train with your backward() it must fill the gradient of every param; it "
                "declares no %s (GRAD(dname, dims...); GIVEN(dname) takes bpgen's)", path, missing);
  sort_graph = g;
  qsort(mi->slot, (size_t)mi->nslot, sizeof *mi->slot, by_backward);
  mi->gen = arena_alloc(sizeof(BpTensor *) * (size_t)(mi->nslot + 1));
  for (int k = 0; k < mi->nslot; k++) {
    mi->gen[k] = bp_find_tensor(m, mi->slot[k].gname, BP_GRAD);
    if (!mi->gen[k])
      die("the model has no gradient %s", mi->slot[k].gname);
  }
  /* the forward values the learner reads */
  mi->fwd = arena_alloc(sizeof(MineFwd) * (size_t)(g->nforward + 1));
  for (int i = 0; i < g->nforward; i++) {
    Node *n = g->nodes[i];
    if (!visible(n) || is_c_word(n->name))
      continue;
    void *var = jit_symbol(mi->s, n->name);
    if (!var)
      continue;
    MineFwd *f = &mi->fwd[mi->nfwd++];
    f->n = n;
    f->var = var;
    f->t = model_tensor(m, n);
    if (!f->t)
      die("the model has no tensor %s", n->name);
    if (n->shape.rank > 0) {
      size_t vsz = n->type == TY_INT ? sizeof(int32_t) : mi->dt == DT_F32 ? 4 : 8;
      f->gd = guard_new(vsz * (size_t)shape_numel(&n->shape), vsz, n->name, &n->shape);
      f->gd->readonly = true;
      mprotect(f->gd->lo, (size_t)(f->gd->data + f->gd->bytes - f->gd->lo), PROT_READ);
      *(const void **)var = f->gd->data;
    }
  }
  mi->out = arena_alloc(sizeof(SlotOut) * (size_t)(mi->nslot + 1));
  mi->sh = mmap(NULL, sizeof(MineShared), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (mi->sh == MAP_FAILED)
    error_plain("mmap: %s", strerror(errno));
  memset(mi->sh, 0, sizeof *mi->sh);
  mi->ref = ref_new(g, mi->dt);
  return mi;
}

void mine_free(Mine *mi) {
  jit_free(mi->s);
  guards_free();
  ref_free(mi->ref);
  munmap(mi->sh, sizeof *mi->sh);
}

/* The learner's gradients against the model's on this batch: NULL when all are
 * right, else the first wrong one in backward order, as ninja words it. */
static const char *mine_check(Mine *mi, long step) {
  Graph *g = mi->g;
  DType dt = mi->dt;
  size_t esz = dt == DT_F32 ? 4 : 8;
  const char *st = mi->state;
  mine_run_model_backward(mi);
  /* the reference runtime on the same params and batch: the rounding noise */
  for (int i = 0; i < g->nforward; i++) {
    Node *n = g->nodes[i];
    if (n->op != OP_input && n->op != OP_param)
      continue;
    const BpTensor *t = model_tensor(mi->m, n);
    if (!t)
      die("the model has no tensor %s", n->name);
    if (n->type == TY_INT)
      memcpy(ref_idata(mi->ref, n), st + t->offset, sizeof(int32_t) * t->numel);
    else
      tensor_get(t, st, ref_data(mi->ref, n));
  }
  ref_forward(mi->ref);
  ref_backward(mi->ref);
  Pass pass = {g, arena_alloc(sizeof(double *) * (size_t)g->nforward),
               arena_alloc(sizeof(double *) * (size_t)g->nforward), 0, "bpgen's generated backward"};
  for (int k = 0; k < mi->nslot; k++) {
    Slot *sl = &mi->slot[k];
    sl->given = mi->out[sl->id].given;
    if (sl->given == 1)
      continue;
    long n = sl->ndecl;
    double *ref = arena_alloc(sizeof(double) * (size_t)n);
    tensor_get(mi->gen[k], st, ref);
    Row r;
    memset(&r, 0, sizeof r);
    r.s = sl;
    r.from = -1;
    for (const char *q = sl->gd->lo; q < (const char *)sl->gd->data; q++)
      if (*(const unsigned char *)q != CANARY) {
        long e = -(long)(((const char *)sl->gd->data - q + esz - 1) / esz);
        if (!r.before_lo)
          r.before_lo = e;
        r.before_hi = e;
      }
    for (long e = 0; e < n; e++) {
      uint64_t b = bits_at(dt, sl->buf, e), b1 = bits_at(dt, mi->run1[k], e);
      int j = sentinel_id(dt, b);
      double v = dt == DT_F32 ? ((const float *)sl->buf)[e] : ((const double *)sl->buf)[e];
      if (b == fill_bits(dt, 0, sl->id) && b1 == fill_bits(dt, 1, sl->id)) {
        r.unset++;
      } else if (b != b1) {
        r.stale++;
        if (j == sl->id)
          r.stale_self++;
        else if (r.from < 0)
          r.from = j;
      } else if (isnan(v)) {
        r.nans++;
      }
    }
    judge_row(&r, dt, sl->buf, ref, ref_grad(mi->ref, sl->n), mi->tol, mi->slot, mi->nslot);
    if (r.ok)
      continue;
    /* the values for the hint: forward tensors from the state, gradients the model's */
    for (int i = 0; i < g->nforward; i++) {
      Node *nd = g->nodes[i];
      if (visible(nd) && nd->type == TY_FLOAT) {
        const BpTensor *t = model_tensor(mi->m, nd);
        if (t) {
          pass.val[i] = arena_alloc(sizeof(double) * t->numel);
          tensor_get(t, st, pass.val[i]);
        }
      }
    }
    for (int q = 0; q < mi->nslot; q++) {
      pass.grad[mi->slot[q].n->id] = arena_alloc(sizeof(double) * mi->gen[q]->numel);
      tensor_get(mi->gen[q], st, pass.grad[mi->slot[q].n->id]);
    }
    const char *hint = hint_row(g, &r, dt, sl->buf, &pass);
    int at = assign_line(code_only(mi->text), sl->gname);
    return arena_printf("step %ld: your backward() left the tolerance against bpgen's on the same "
                        "batch: %s is the first wrong gradient in backward order: %s%s%s%s",
                        step, sl->gname, r.why ? r.why : "wrong",
                        hint ? arena_printf("\n  hint: %s", hint) : "",
                        at ? arena_printf("\n  %s:%d: %s", mi->path, at, source_line(mi->text, at)) : "",
                        "\n  (bpgen ninja SPEC --mine FILE judges one batch, every gradient at once)");
  }
  return NULL;
}

const char *mine_hook(void *ctx, void *state, long step, int check) {
  Mine *mi = ctx;
  const char *st = state;
  mi->state = state;
  mi->gen_done = false;
  mi->sh->step = step;
  cur.mine = mi;
  cur.slot = mi->slot;
  cur.nslot = mi->nslot;
  cur.dt = mi->dt;
  cur.out = mi->out;
  for (int f = 0; f < mi->nfwd; f++) {
    MineFwd *fw = &mi->fwd[f];
    if (!fw->gd) {   /* a scalar: the learner's variable holds the value */
      size_t es = fw->n->type == TY_INT ? sizeof(int32_t) : mi->dt == DT_F32 ? 4 : 8;
      memcpy(fw->var, st + fw->t->offset, es);
      continue;
    }
    Guard *gd = fw->gd;
    size_t len = (size_t)(gd->data + gd->bytes - gd->lo);
    mprotect(gd->lo, len, PROT_READ | PROT_WRITE);
    memcpy(gd->data, st + fw->t->offset, gd->bytes);
    mprotect(gd->lo, len, PROT_READ);
  }
  /* a check step runs backward() twice, as ninja: first over gradients holding
   * numbers (kept in run1), then over the NaNs the training step keeps; what
   * differs was read before it was written */
  size_t esz = mi->dt == DT_F32 ? 4 : 8;
  for (int run = check ? 1 : 0; run >= 0; run--) {
    for (int k = 0; k < mi->nslot; k++) {
      fill(mi->dt, mi->slot[k].buf, mi->slot[k].ndecl, run, mi->slot[k].id);
      mi->out[mi->slot[k].id].given = 0;
    }
    mi->sh->inside = 1;
    mi->sh->beat++;
    mi->backward();
    mi->sh->beat++;
    mi->sh->inside = 0;
    if (run == 1) {
      if (!mi->run1)
        mi->run1 = arena_alloc(sizeof(void *) * (size_t)(mi->nslot + 1));
      for (int k = 0; k < mi->nslot; k++) {
        if (!mi->run1[k])
          mi->run1[k] = arena_alloc(esz * (size_t)mi->slot[k].ndecl);
        memcpy(mi->run1[k], mi->slot[k].buf, esz * (size_t)mi->slot[k].ndecl);
      }
    }
  }
  const char *why = check ? mine_check(mi, step) : NULL;
  if (why)
    return why;
  for (int k = 0; k < mi->nslot; k++)
    if (mi->slot[k].n->op == OP_param)
      memcpy((char *)state + mi->gen[k]->offset, mi->slot[k].buf, esz * (size_t)mi->slot[k].ndecl);
  return NULL;
}

/* hung() of a --mine training run: a backward() that has not returned (its
 * heartbeat unchanged) for TIME_LIMIT seconds; time outside backward() is the
 * trainer's and not limited */
typedef struct Beat {
  Mine *mi;
  long last;
  struct timespec since;
} Beat;

static bool beat_stopped(void *ctx, const struct timespec *now) {
  Beat *b = ctx;
  long beat = b->mi->sh->beat;
  if (beat != b->last || !b->mi->sh->inside) {
    b->last = beat;
    b->since = *now;
    return false;
  }
  return now->tv_sec - b->since.tv_sec >= TIME_LIMIT;
}

int mine_train(Mine *mi, int (*train)(const void *m, int argc, char **argv), const BpModel *m,
               int argc, char **argv) {
  fflush(NULL);
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid < 0)
    error_plain("fork: %s", strerror(errno));
  if (pid == 0) {
    child_setup(parent);
    cur.run = &mi->sh->run;
    int rc = train(m, argc, argv);
    fflush(NULL);
    _exit(rc);
  }
  Beat b = {mi, -1, {0, 0}};
  bool timed_out;
  int st = watch_child(pid, beat_stopped, &b, &timed_out);
  fflush(NULL);
  if (!timed_out && WIFEXITED(st) && !mi->sh->run.fault)
    return WEXITSTATUS(st);
  fprintf(stderr, "bpgen: error: %s: backward() %s (at step %ld)\n", mi->path,
          run_failure(&mi->sh->run, st, timed_out), mi->sh->step);
  return 1;
}
