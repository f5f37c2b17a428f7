/* bench/jit_times.c: where a training step's time goes in the in-memory
 * (libtcc) build, per block of the emitted forward and backward -- the
 * counterpart of bench/kernel_times.sh (which times the gcc file's kernel
 * calls only): here every block is timed, inline tcc loops included.
 *   build/bench/jit_times SPEC [--reps N] [--threads N] [--dtype f32|f64] [--gcc] [-D NAME=INT]...
 * Emits SPEC for the JIT (what `bpgen run` compiles), puts a clock mark before
 * each block (each `#line` of forward and backward) and at the functions'
 * ends, compiles it with libtcc, runs forward + backward REPS times and prints
 * ms per step for each block, largest first, and the whole step without the
 * marks (median of rounds); all in this thread's CPU time (the host is
 * shared: wall time would count the other processes' slices); --threads N
 * (N > 1): the kernels on N threads, and wall time, which then counts them.
 * --gcc: the same for the file `bpgen SPEC -o`
 * writes, built with gcc -O3 -march=native (needs this binary linked
 * -rdynamic, as the Makefile rule does).  Not a test.
 * Build: make build/bench/jit_times */
#include "bpgen.h"
#include "bp_runtime.h"
#include "ref.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_model.h"
#define BP_KERNELS_DECLARE_ONLY
#include "kernels.h"   /* bp_set_threads: bpgen's pool, which the in-memory build's kernels use */

static int wall;   /* --threads N > 1 */
static double now(void) {
  struct timespec ts;
  clock_gettime(wall ? CLOCK_MONOTONIC : CLOCK_THREAD_CPUTIME_ID, &ts);   /* CPU time: the host is shared */
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

enum { MAXB = 4096 };
static double bt_times[MAXB];
static const char *bt_label[MAXB];
static int bt_cur = -1;
static double bt_last;

/* the emitted code's mark: the time since the last mark goes to the block it opened */
void bt_mark(int k) {
  double t = now();
  if (bt_cur >= 0)
    bt_times[bt_cur] += t - bt_last;
  bt_cur = k;
  bt_last = now();
}

/* src with a bt_mark(k) before each #line of the forward and backward
 * functions and before their returns and closing braces */
static char *instrument(const char *src, int *nblocks) {
  Buf b = {0};
  int in = 0, k = 0;
  buf_printf(&b, "void bt_mark(int);\n");
  for (const char *p = src; *p;) {
    const char *e = strchr(p, '\n');
    size_t len = e ? (size_t)(e - p) + 1 : strlen(p);
    if (strncmp(p, "double bm_forward(", 18) == 0 || strncmp(p, "void bm_backward(", 17) == 0)
      in = 1;
    else if (in && strncmp(p, "#line", 5) == 0 && k < MAXB) {
      /* the label: the comment line after it */
      const char *c = e ? e + 1 : p + len;
      while (*c == ' ')
        c++;
      const char *ce = strchr(c, '\n');
      size_t cl = ce ? (size_t)(ce - c) : strlen(c);
      if (cl > 90)
        cl = 90;
      bt_label[k] = arena_strndup(c, cl);
      buf_printf(&b, "  bt_mark(%d);\n", k++);
    } else if (in && (strncmp(p, "  return", 8) == 0 || p[0] == '}')) {
      buf_printf(&b, "  bt_mark(-1);\n");
      if (p[0] == '}')
        in = 0;
    }
    buf_printf(&b, "%.*s", (int)len, p);
    p += len;
  }
  *nblocks = k;
  return buf_done(&b);
}

static const BpModel *load_gcc(const char *src, const char *name, int threads) {
  char *cpath = arena_printf("build/bench/%s.c", name), *sopath = arena_printf("build/bench/%s.so", name);
  void *so = bench_gcc_so(src, cpath, sopath, 0, NULL);
  const BpModel *m = dlsym(so, "bm_model");
  void (*set_threads)(int) = (void (*)(int))dlsym(so, "bm_set_threads");   /* the file's own pool */
  if (!m || !set_threads)
    error_plain("no bm_model or bm_set_threads in %s", sopath);
  set_threads(threads);
  return m;
}

static void *new_state(const BpModel *m) {
  void *st;
  if (posix_memalign(&st, 64, m->state_size) != 0)
    die("out of memory");
  memset(st, 0, m->state_size);
  m->init(st, 2147483647);
  m->set_lean(st, 1);
  /* inputs: int tensors in [0, 2), floats 0.5; enough to run every block */
  for (int i = 0; i < m->ntensors; i++) {
    const BpTensor *t = &m->tensors[i];
    if (t->kind != BP_INPUT)
      continue;
    for (size_t j = 0; j < t->numel; j++) {
      char *at = (char *)st + t->offset;
      if (t->dtype == BP_I32)
        ((int32_t *)at)[j] = (int32_t)(j % 2);
      else if (t->dtype == BP_F32)
        ((float *)at)[j] = 0.5f;
      else
        ((double *)at)[j] = 0.5;
    }
  }
  return st;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static int cmp_block(const void *a, const void *b) {
  return cmp_double(&bt_times[*(const int *)b], &bt_times[*(const int *)a]);
}

int main(int argc, char **argv) {
  Cli cli;
  cli_init(&cli, DT_F32);
  int reps = 200, gcc = 0, threads = 1;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--reps") == 0 && i + 1 < argc)
      reps = atoi(argv[++i]);
    else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc)
      threads = atoi(argv[++i]), wall = threads > 1;
    else if (strcmp(argv[i], "--gcc") == 0)
      gcc = 1;
    else if (!cli_common(&cli, argc, argv, &i))
      error_plain("usage: jit_times SPEC [--reps N] [--threads N] [--dtype f32|f64] [--gcc] [-D NAME=INT]...");
  }
  bp_set_threads(threads);
  Graph *g = cli_load(&cli);
  grad_build(g);
  EmitOptions opt = {cli.dtype, "bm", !gcc, false, false};
  char *src = emit_c(g, &opt, NULL);
  int nb;
  char *tsrc = instrument(src, &nb);
  const BpModel *plain, *timed;
  if (gcc) {
    plain = load_gcc(src, "jt_plain", threads);
    timed = load_gcc(tsrc, "jt_timed", threads);
  } else {
    JitSymbol sym = {"bt_mark", (const void *)bt_mark};
    JitOptions jo = {NULL, NULL, &sym, 1};
    const char *errs;
    Jit *a = jit_compile(src, cli.spec), *b = jit_try_compile(tsrc, &jo, &errs);
    if (!b)
      error_plain("instrumented source: %s", errs);
    plain = jit_symbol(a, "bm_model");
    timed = jit_symbol(b, "bm_model");
  }
  void *sp = new_state(plain), *st = new_state(timed);
  /* the whole step, unmarked: median of 7 rounds */
  double r[7];
  plain->forward(sp), plain->backward(sp);
  for (int k = 0; k < 7; k++) {
    double t0 = now();
    for (int i = 0; i < reps / 7 + 1; i++)
      plain->forward(sp), plain->backward(sp);
    r[k] = (now() - t0) / (reps / 7 + 1);
  }
  qsort(r, 7, sizeof r[0], cmp_double);
  timed->forward(st), timed->backward(st);
  memset(bt_times, 0, sizeof bt_times);
  double t0 = now();
  for (int i = 0; i < reps; i++)
    timed->forward(st), timed->backward(st);
  double total = (now() - t0) / reps, sum = 0;
  int order[MAXB];
  for (int k = 0; k < nb; k++)
    order[k] = k, sum += bt_times[k] / reps;
  qsort(order, (size_t)nb, sizeof order[0], cmp_block);
  printf("%s build, %s: forward + backward %.3f ms (unmarked, median), %.3f ms marked, blocks %.3f ms\n",
         gcc ? "gcc" : "libtcc", cli.spec, 1e3 * r[3], 1e3 * total, 1e3 * sum);
  for (int j = 0; j < nb && j < (getenv("BT_ALL") ? nb : 60); j++) {
    int k = order[j];
    printf("%8.3f ms %5.1f%%  #%-4d %s\n", 1e3 * bt_times[k] / reps, 100 * bt_times[k] / reps / sum, k,
           bt_label[k]);
  }
  return 0;
}
