/* cmd_grad.c: `bpgen grad` -- one forward and backward pass on tensors from
 * .npy files, writing the loss, every value and every gradient back as .npy.
 *
 * The pass runs on a Backend: anything that can take tensors by node, run
 * forward and backward, and hand back values and gradients by node, all as
 * doubles whatever its dtype: generated code compiled in memory by libtcc
 * (backend_jit, the default) or the reference runtime (backend_ref, --ref).
 */
#include "bpgen.h"
#include "bp_runtime.h"
#include "npy.h"
#include "ref.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct Backend {
  void *self;
  void (*init_params)(void *self, uint64_t seed);        /* every param from the spec */
  void (*set_float)(void *self, Node *n, const double *v); /* input or param */
  void (*set_int)(void *self, Node *n, const int32_t *v);  /* int input */
  double (*forward)(void *self);                          /* returns the loss */
  void (*backward)(void *self);
  void (*get_value)(void *self, Node *n, double *dst);    /* n->shape elements */
  void (*get_grad)(void *self, Node *n, double *dst);
  void (*free)(void *self);
} Backend;

/* ---- the reference runtime as a backend ------------------------------------------ */

static void r_init(void *s, uint64_t seed) { ref_init_params(s, seed); }
static void r_set_float(void *s, Node *n, const double *v) {
  double *d = ref_data(s, n);
  for (long i = 0; i < shape_numel(&n->shape); i++)
    d[i] = ref_round(s, v[i]);
}
static void r_set_int(void *s, Node *n, const int32_t *v) {
  memcpy(ref_idata(s, n), v, sizeof(int32_t) * (size_t)shape_numel(&n->shape));
}
static double r_forward(void *s) { return ref_forward(s); }
static void r_backward(void *s) { ref_backward(s); }
static void r_get_value(void *s, Node *n, double *dst) {
  memcpy(dst, ref_data(s, n), sizeof(double) * (size_t)shape_numel(&n->shape));
}
static void r_get_grad(void *s, Node *n, double *dst) {
  memcpy(dst, ref_grad(s, n), sizeof(double) * (size_t)shape_numel(&n->shape));
}
static void r_free(void *s) { ref_free(s); }

static Backend backend_ref(Graph *g, DType dt) {
  return (Backend){ref_new(g, dt), r_init, r_set_float, r_set_int, r_forward, r_backward,
                   r_get_value, r_get_grad, r_free};
}

/* ---- generated code, compiled in memory, as a backend ------------------------------ */

typedef struct JitRun {
  Jit *jit;
  const BpModel *m;
  char *st;
} JitRun;

static void j_get(JitRun *j, const char *name, long numel, double *dst) {
  const BpTensor *t = bp_find_tensor(j->m, name, -1);
  for (long i = 0; i < numel; i++)
    dst[i] = !t ? 0 : t->dtype == BP_F32 ? ((float *)(j->st + t->offset))[i] : ((double *)(j->st + t->offset))[i];
}

static void j_init(void *s, uint64_t seed) {
  JitRun *j = s;
  j->m->init(j->st, seed);
}
static void j_set_float(void *s, Node *n, const double *v) {
  JitRun *j = s;
  const BpTensor *t = bp_find_tensor(j->m, n->name, -1);
  if (!t)
    die("generated model has no tensor %s", n->name);
  for (long i = 0; i < shape_numel(&n->shape); i++)
    if (t->dtype == BP_F32)
      ((float *)(j->st + t->offset))[i] = (float)v[i];
    else
      ((double *)(j->st + t->offset))[i] = v[i];
}
static void j_set_int(void *s, Node *n, const int32_t *v) {
  JitRun *j = s;
  const BpTensor *t = bp_find_tensor(j->m, n->name, -1);
  if (!t)
    die("generated model has no tensor %s", n->name);
  memcpy(j->st + t->offset, v, sizeof(int32_t) * (size_t)shape_numel(&n->shape));
}
static double j_forward(void *s) {
  JitRun *j = s;
  return j->m->forward(j->st);
}
static void j_backward(void *s) {
  JitRun *j = s;
  j->m->backward(j->st);
}
static void j_get_value(void *s, Node *n, double *dst) { j_get(s, n->name, shape_numel(&n->shape), dst); }
static void j_get_grad(void *s, Node *n, double *dst) {
  j_get(s, arena_printf("d%s", n->name), shape_numel(&n->shape), dst);
}
static void j_free(void *s) {
  JitRun *j = s;
  free(j->st);
  jit_free(j->jit);
  free(j);
}

static Backend backend_jit(Graph *g, DType dt) {
  grad_build(g);
  EmitOptions opt = {dt, "grad", true, false, false};
  JitRun *j = xcalloc(1, sizeof *j);
  j->jit = jit_compile(emit_c(g, &opt, NULL), g->file ? g->file->name : "spec");
  j->m = jit_symbol(j->jit, "grad_model");
  if (!j->m)
    die("generated code lacks grad_model");
  j->st = xcalloc(1, j->m->state_size);
  return (Backend){j, j_init, j_set_float, j_set_int, j_forward, j_backward, j_get_value, j_get_grad, j_free};
}

/* ---- helpers ------------------------------------------------------------------------ */

static const char usage[] =
  "usage: bpgen grad SPEC --in DIR --out DIR [options]\n"
  "\n"
  "One forward and backward pass.  Reads DIR/<name>.npy for every input\n"
  "(required) and every param present (the others are initialised from the\n"
  "spec with --seed); writes OUT/loss.npy, and OUT/<name>.npy (value) and\n"
  "OUT/<name>.grad.npy (gradient of the loss) for every param and every named\n"
  "float intermediate, as <f8 (f64) or <f4 (f32).  Prints a gradient summary.\n"
  "Int inputs may be <i4, <i8 or |u1 files, floats <f8 or <f4.\n"
  "\n"
  "options:\n"
  "  --in DIR          where the inputs (and any params) are\n"
  "  --out DIR         where the results go (created if needed)\n"
  "  --dtype f64|f32   float type of the pass (default f64)\n"
  "  --seed N          seed for params not given (default 2147483647)\n"
  "  -D NAME=INT       override a dim\n"
  "  --expand          lower fused ops to primitives first\n"
  "  --random-inputs   make the inputs instead of reading them: int inputs get\n"
  "                    valid random indices (below the rows of the table they\n"
  "                    index, or the classes they pick), float inputs randn;\n"
  "                    drawn from --seed (a generator apart from the params'),\n"
  "                    and written to OUT/<name>.npy (<i4 or <f8)\n"
  "  --ref             run on the reference runtime instead of generated code\n"
  "                    (compiled in memory by libtcc, the default)\n";

static char *join(const char *dir, const char *name, const char *ext) {
  return arena_printf("%s/%s%s", dir, name, ext);
}

static bool file_exists(const char *path) {
  struct stat st;
  return stat(path, &st) == 0;
}

/* mkdir -p */
static void make_dir(const char *path) {
  char *p = arena_strndup(path, strlen(path));
  for (char *s = p + 1;; s++) {
    if (*s != '/' && *s != '\0')
      continue;
    char c = *s;
    *s = '\0';
    if (mkdir(p, 0777) != 0 && errno != EEXIST)
      error_plain("cannot create directory %s: %s", p, strerror(errno));
    *s = c;
    if (!c)
      break;
  }
  struct stat st;
  if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
    error_plain("%s is not a directory", path);
}

static bool is_leaf(const Node *n) {
  return n->op == OP_input || n->op == OP_param || n->op == OP_const;
}

/* ---- the command ---------------------------------------------------------------------- */

int cmd_grad(int argc, char **argv) {
  Cli cli;
  cli_init(&cli, DT_F64);
  const char *in = NULL, *out = NULL;
  bool random_inputs = false, use_ref = false;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      fputs(usage, stdout);
      return 0;
    } else if (strcmp(argv[i], "--in") == 0) {
      in = cli_value(argc, argv, &i);
    } else if (strcmp(argv[i], "--out") == 0) {
      out = cli_value(argc, argv, &i);
    } else if (strcmp(argv[i], "--ref") == 0) {
      use_ref = true;
    } else if (strcmp(argv[i], "--random-inputs") == 0) {
      random_inputs = true;
    } else if (!cli_common(&cli, argc, argv, &i)) {
      cli_unknown("grad", argv[i]);
    }
  }
  if (cli.out)
    error_usage("grad: -o is not an option of grad; use --out DIR");
  if (!in && !random_inputs)
    error_usage("grad: --in DIR is required (or --random-inputs)");
  if (!out)
    error_usage("grad: --out DIR is required");
  Graph *g = cli_load(&cli);
  DType dt = cli.dtype;

  /* everything read is checked before the backend exists, so errors leak nothing */
  int nf = g->nforward;
  void **given = arena_alloc(sizeof(void *) * (size_t)(nf ? nf : 1));
  BpRng rng;
  bp_rng_seed(&rng, cli.seed ^ REF_INPUT_SEED_MIX);   /* ref_random_inputs' draws when no input file is given */
  for (int i = 0; i < nf; i++) {
    Node *n = g->nodes[i];
    if (n->op != OP_input && n->op != OP_param)
      continue;
    long numel = shape_numel(&n->shape);
    const char *path = in ? join(in, n->name, ".npy") : NULL;
    bool present = path && file_exists(path);
    if (n->op == OP_input && !present && !random_inputs)
      error_plain("grad: input '%s' needs %s (shape %s)", n->name, path, shape_str(&n->shape));
    if (!present && n->op == OP_param)
      continue;
    if (n->type == TY_INT) {
      int32_t *v = arena_alloc(sizeof(int32_t) * (size_t)(numel ? numel : 1));
      if (present) {
        npy_load_int(path, &n->shape, v);
        long lim = ref_index_limit(g, n);
        for (long k = 0; lim && k < numel; k++)
          if (v[k] < 0 || v[k] >= lim)
            error_plain("%s: element %ld is %d, outside 0..%ld (the rows or classes '%s' indexes)",
                        path, k, (int)v[k], lim - 1, n->name);
      } else {
        ref_draw_input(g, n, &rng, v);
      }
      given[i] = v;
    } else {
      double *v = arena_alloc(sizeof(double) * (size_t)(numel ? numel : 1));
      if (present)
        npy_load_float(path, &n->shape, v);
      else
        ref_draw_input(g, n, &rng, v);
      given[i] = v;
    }
  }

  make_dir(out);
  Backend b = use_ref ? backend_ref(g, dt) : backend_jit(g, dt);
  b.init_params(b.self, cli.seed);
  for (int i = 0; i < nf; i++) {
    Node *n = g->nodes[i];
    if (!given[i])
      continue;
    if (n->type == TY_INT)
      b.set_int(b.self, n, given[i]);
    else
      b.set_float(b.self, n, given[i]);
  }
  if (random_inputs)   /* keep what was made, so the run can be repeated with --in */
    for (int i = 0; i < nf; i++) {
      Node *n = g->nodes[i];
      if (n->op != OP_input || !given[i])
        continue;
      const char *path = join(out, n->name, ".npy");
      if (n->type == TY_INT)
        npy_write(path, NPY_I4, &n->shape, given[i]);
      else
        npy_save_float(path, DT_F64, &n->shape, given[i]);
    }
  double loss = b.forward(b.self);
  b.backward(b.self);

  Shape scalar = {0};
  npy_save_float(join(out, "loss", ".npy"), dt, &scalar, &loss);
  printf("loss %.17g\n", loss);
  printf("%-16s %-16s %14s %14s\n", "name", "shape", "max|grad|", "mean|grad|");
  for (int i = 0; i < nf; i++) {
    Node *n = g->nodes[i];
    if (!n->name || n->type != TY_FLOAT || n->op == OP_input || n->op == OP_const)
      continue;
    if (is_leaf(n) && n->op != OP_param)
      continue;
    long numel = shape_numel(&n->shape);
    double *buf = xmalloc(sizeof(double) * (size_t)(numel ? numel : 1));
    b.get_value(b.self, n, buf);
    npy_save_float(join(out, n->name, ".npy"), dt, &n->shape, buf);
    b.get_grad(b.self, n, buf);
    npy_save_float(join(out, n->name, ".grad.npy"), dt, &n->shape, buf);
    double mx = 0, sum = 0;
    for (long k = 0; k < numel; k++) {
      double a = fabs(buf[k]);
      mx = a > mx ? a : mx;
      sum += a;
    }
    free(buf);
    printf("%-16s %-16s %14.6e %14.6e\n", n->name, shape_str(&n->shape), mx,
           numel ? sum / (double)numel : 0.0);
  }
  b.free(b.self);
  return 0;
}
