/* bench/seq_step.c: milliseconds per full training step (forward, backward,
 * optimiser) of one spec's emitted model, both builds, for the sequence
 * models of issue 14 (wavenet.spec with SGD, transformer.spec and gpt2.spec
 * with AdamW):
 *   gcc  the emitted file (bpgen SPEC -o) built with gcc -O3 -march=native as
 *        a shared object and loaded with dlopen (rebuilt only when the
 *        emitted text changed);
 *   tcc  the same model compiled in memory by libtcc (what `bpgen run` runs).
 * Both start from the same init (--seed) and one batch of inputs drawn in
 * range (runtime/ref.c's ref_draw_input), are timed interleaved (gcc, tcc,
 * gcc, ...) in rounds, and the median round is reported: in the process's CPU
 * time (the host is shared: wall time would count the other processes'
 * slices; one thread, so CPU time is the step's time), and in wall time.  The
 * optimiser is the model's own: sgd_step(lr), or <prefix>_adamw_step (torch's
 * AdamW) with moments held here.  Also: whether a step allocates (malloc,
 * calloc, realloc counted while steps run), the state's bytes, and the first
 * two losses of each build (before and after one update).
 *
 *   build/bench/seq_step SPEC [-D NAME=INT]... [--seed N] [--optimizer sgd|adamw]
 *       [--lr X] [--beta1 X] [--beta2 X] [--eps X] [--weight-decay X]
 *       [--rounds N] [--round-ms MS] [--save DIR] [--info]
 *
 * --save DIR: writes the init params and the batch as DIR/<name>.npy (f32 and
 * i4), for bench/torch_seq_step.py to compute the same two losses.  --info:
 * only the state's size (libtcc build, no timing).  Output, one figure a line:
 *   state BYTES / moments BYTES / nparam N / loss0 gcc|tcc X / loss1 gcc|tcc X /
 *   ms gcc|tcc MEDIAN MIN MAX (CPU time) / wall gcc|tcc MEDIAN / allocs N / rounds N
 * Not a test.  Build: make build/bench/seq_step */
#include "bpgen.h"
#include "bp_runtime.h"
#include "npy.h"
#include "ref.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "alloc_count.h" /* nalloc, counting */
#include "bench_model.h"

static double clock_s(clockid_t c) {
  struct timespec ts;
  clock_gettime(c, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
static double now(void) { return clock_s(CLOCK_PROCESS_CPUTIME_ID); }
static double wall(void) { return clock_s(CLOCK_MONOTONIC); }

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

typedef void AdamwFn(void *s, float *m, float *v, long t, double lr, double b1, double b2, double eps,
                     double wd);

typedef struct Opt {
  int adamw;
  double lr, b1, b2, eps, wd;
} Opt;

/* one build's model and state, with its optimiser's moments */
typedef struct Inst {
  const BpModel *m;
  AdamwFn *adamw;
  void *st;
  float *mm, *vv;
  long t;                   /* AdamW updates done */
} Inst;

static const Opt *opt;

static void step(Inst *in) {
  in->m->forward(in->st);
  in->m->backward(in->st);
  if (opt->adamw)
    in->adamw(in->st, in->mm, in->vv, ++in->t, opt->lr, opt->b1, opt->b2, opt->eps, opt->wd);
  else
    in->m->sgd_step(in->st, opt->lr);
}

/* CPU seconds per step over n steps; *w: wall seconds per step */
static double time_steps(Inst *in, long n, double *w) {
  double t0 = now(), w0 = wall();
  for (long i = 0; i < n; i++)
    step(in);
  if (w)
    *w = (wall() - w0) / (double)n;
  return (now() - t0) / (double)n;
}

static Inst new_inst(const BpModel *m, AdamwFn *adamw, Graph *g, uint64_t seed) {
  Inst in = {m, adamw, NULL, NULL, NULL, 0};
  if (m->dtype != BP_F32)
    error_plain("seq_step: f32 models only");
  if (posix_memalign(&in.st, 64, m->state_size) != 0)
    die("out of memory");
  memset(in.st, 0, m->state_size);
  m->init(in.st, seed);
  if (m->set_lean)
    m->set_lean(in.st, 1);   /* as the trainer runs it */
  bench_fill_inputs(m, in.st, g, 42);
  if (opt->adamw) {
    in.mm = xcalloc(m->nparam, sizeof(float));
    in.vv = xcalloc(m->nparam, sizeof(float));
  }
  return in;
}

/* the first two losses: before and after one update */
static void first_losses(Inst *in, const char *name) {
  double l0 = in->m->forward(in->st);
  in->m->backward(in->st);
  if (opt->adamw)
    in->adamw(in->st, in->mm, in->vv, ++in->t, opt->lr, opt->b1, opt->b2, opt->eps, opt->wd);
  else
    in->m->sgd_step(in->st, opt->lr);
  double l1 = in->m->forward(in->st);
  in->m->backward(in->st);   /* leave it as a step leaves it */
  printf("loss0 %s %.6f\nloss1 %s %.6f\n", name, l0, name, l1);
}

static void save_npy(Inst *in, const char *dir) {
  mkdir(dir, 0777);
  for (int i = 0; i < in->m->ntensors; i++) {
    const BpTensor *t = &in->m->tensors[i];
    if (t->kind != BP_PARAM && t->kind != BP_INPUT)
      continue;
    Shape s = {t->rank, {0}};
    for (int k = 0; k < t->rank; k++)
      s.dim[k] = t->dims[k];
    npy_write(arena_printf("%s/%s.npy", dir, t->name), t->dtype == BP_I32 ? NPY_I4 : NPY_F4, &s,
              (char *)in->st + t->offset);
  }
}

/* the file built by gcc, reused while the emitted text is the same */
static const BpModel *load_gcc(const char *src, const char *stem, AdamwFn **adamw) {
  char *cpath = arena_printf("build/bench/seq_%s.c", stem), *sopath = arena_printf("build/bench/seq_%s.so", stem);
  void *so = bench_gcc_so(src, cpath, sopath, 1, NULL);
  const BpModel *m = dlsym(so, "bm_model");
  *adamw = (AdamwFn *)dlsym(so, "bm_adamw_step");
  if (!m || !*adamw)
    error_plain("no bm_model or bm_adamw_step in %s", sopath);
  return m;
}

static const char usage[] =
    "usage: seq_step SPEC [-D NAME=INT]... [--seed N] [--optimizer sgd|adamw] [--lr X] [--beta1 X]\n"
    "       [--beta2 X] [--eps X] [--weight-decay X] [--rounds N] [--round-ms MS] [--save DIR] [--info]";

int main(int argc, char **argv) {
  Cli cli;
  cli_init(&cli, DT_F32);
  static Opt o = {0, 0.1, 0.9, 0.999, 1e-8, 0.0};
  int rounds = 11, info = 0, lr_set = 0;
  double round_s = 0.1;
  const char *save = NULL;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--optimizer") == 0 && i + 1 < argc) {
      const char *v = argv[++i];
      if (strcmp(v, "adamw") == 0)
        o.adamw = 1;
      else if (strcmp(v, "sgd") != 0)
        error_plain("--optimizer: '%s' is neither sgd nor adamw", v);
    } else if (strcmp(a, "--lr") == 0 && i + 1 < argc)
      o.lr = atof(argv[++i]), lr_set = 1;
    else if (strcmp(a, "--beta1") == 0 && i + 1 < argc)
      o.b1 = atof(argv[++i]);
    else if (strcmp(a, "--beta2") == 0 && i + 1 < argc)
      o.b2 = atof(argv[++i]);
    else if (strcmp(a, "--eps") == 0 && i + 1 < argc)
      o.eps = atof(argv[++i]);
    else if (strcmp(a, "--weight-decay") == 0 && i + 1 < argc)
      o.wd = atof(argv[++i]);
    else if (strcmp(a, "--rounds") == 0 && i + 1 < argc)
      rounds = atoi(argv[++i]);
    else if (strcmp(a, "--round-ms") == 0 && i + 1 < argc)
      round_s = atof(argv[++i]) / 1e3;
    else if (strcmp(a, "--save") == 0 && i + 1 < argc)
      save = argv[++i];
    else if (strcmp(a, "--info") == 0)
      info = 1;
    else if (!cli_common(&cli, argc, argv, &i))
      error_plain("%s", usage);
  }
  if (rounds < 1 || rounds > 99)
    error_plain("--rounds: 1 to 99");
  if (o.adamw && !lr_set)
    o.lr = 1e-3;
  opt = &o;
  Graph *g = cli_load(&cli);
  grad_build(g);

  EmitOptions topt = {DT_F32, "bm", true, false, false};
  Jit *jit = jit_compile(emit_c(g, &topt, NULL), cli.spec);
  const BpModel *tm = jit_symbol(jit, "bm_model");
  AdamwFn *tadamw = (AdamwFn *)jit_symbol(jit, "bm_adamw_step");
  if (!tm || !tadamw)
    error_plain("no bm_model or bm_adamw_step in the libtcc build");
  printf("state %zu\nmoments %zu\nnparam %zu\n", tm->state_size, o.adamw ? 2 * tm->nparam * sizeof(float) : 0,
         tm->nparam);
  if (info)
    return 0;

  EmitOptions gopt = {DT_F32, "bm", false, false, false};
  AdamwFn *gadamw;
  const BpModel *gm = load_gcc(emit_c(g, &gopt, NULL), spec_prefix(cli.spec), &gadamw);
  Inst gi = new_inst(gm, gadamw, g, cli.seed), ti = new_inst(tm, tadamw, g, cli.seed);
  if (save)
    save_npy(&gi, save);
  first_losses(&gi, "gcc");
  first_losses(&ti, "tcc");

  /* steps per round from a calibration */
  step(&gi), step(&ti);
  long ng = (long)(round_s / time_steps(&gi, 3, NULL)) + 1, nt = (long)(round_s / time_steps(&ti, 3, NULL)) + 1;
  double tg[99], tt[99], wg[99], wt[99];
  for (int k = 0; k < rounds; k++) {
    tg[k] = time_steps(&gi, ng, &wg[k]);
    tt[k] = time_steps(&ti, nt, &wt[k]);
  }
  qsort(tg, (size_t)rounds, sizeof(double), cmp_double);
  qsort(tt, (size_t)rounds, sizeof(double), cmp_double);
  qsort(wg, (size_t)rounds, sizeof(double), cmp_double);
  qsort(wt, (size_t)rounds, sizeof(double), cmp_double);
  printf("ms gcc %.4f %.4f %.4f\n", 1e3 * tg[rounds / 2], 1e3 * tg[0], 1e3 * tg[rounds - 1]);
  printf("ms tcc %.4f %.4f %.4f\n", 1e3 * tt[rounds / 2], 1e3 * tt[0], 1e3 * tt[rounds - 1]);
  printf("wall gcc %.4f\nwall tcc %.4f\n", 1e3 * wg[rounds / 2], 1e3 * wt[rounds / 2]);
  printf("rounds %d\n", rounds);

  /* a step allocates nothing, in either build */
  nalloc = 0;
  counting = 1;
  for (int k = 0; k < 10; k++)
    step(&gi), step(&ti);
  counting = 0;
  printf("allocs %ld\n", nalloc);
  fflush(stdout);
  return 0;
}
