/* bench/step.c: microseconds per full training step (forward, backward, SGD
 * update) of a spec's emitted model, for several dim overrides, three ways:
 *   gcc  the emitted file (bpgen SPEC -o FILE.c) built with gcc -O3
 *        -march=native as a shared object and loaded with dlopen;
 *   tcc  the same model compiled in memory by libtcc (jit_compile), the
 *        kernels handed over from this binary (gcc-compiled);
 *   ref  the reference runtime (runtime/ref.c), few reps: it is slow.
 * Builds are timed interleaved (gcc, tcc, ref, gcc, tcc, ...), each round long
 * enough to be measured, and the median round is reported.  Also measured:
 * gcc's compile time for the emitted file; whether a step allocates (malloc,
 * calloc, realloc counted here while steps run); that the gcc build with N
 * threads gives the same bits as with 1 in every tensor of the model's table.
 *
 * Output, one line per figure (bench/run.sh makes the table):
 *   gcc H B us / tcc H B us / ref H B us / cc H B ms / allocs H B n / bits H B same|DIFF
 * plus the matmul GFLOP count per step: "flop H B mflop".
 *
 * Usage: bench-step SPEC [--threads N] [--quick] [--no-ref] [--config H,B]...  (default
 * configs: 64,32 200,32 1024,256 4096,1024; the spec must have dims H and B).
 */
#include "bpgen.h"
#include "bp_runtime.h"
#include "ref.h"

#include <dlfcn.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define BP_KERNELS_DECLARE_ONLY
#include "kernels.h"

#include "alloc_count.h" /* nalloc, counting */
#include "bench_model.h"

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

/* a model instance: its state, with one batch of inputs drawn in range */
typedef struct Inst {
  const BpModel *m;
  void *st;
} Inst;

static Inst new_inst(const BpModel *m, Graph *g) {
  Inst in = {m, NULL};
  if (posix_memalign(&in.st, 64, m->state_size) != 0)
    die("out of memory");
  memset(in.st, 0, m->state_size);
  m->init(in.st, 2147483647);
  m->set_lean(in.st, 1);   /* as the trainer runs it */
  bench_fill_inputs(m, in.st, g, 42);
  return in;
}

static double lr = 0.01;

static void step(Inst *in) {
  in->m->forward(in->st);
  in->m->backward(in->st);
  in->m->sgd_step(in->st, lr);
}

/* seconds per step over one round of n steps */
static double time_steps(Inst *in, long n) {
  double t0 = now();
  for (long i = 0; i < n; i++)
    step(in);
  return (now() - t0) / (double)n;
}

static void ref_step(Ref *r, Graph *g) {
  ref_forward(r);
  ref_backward(r);
  for (int i = 0; i < g->nforward; i++) {
    Node *n = g->nodes[i];
    if (n->op != OP_param)
      continue;
    double *p = ref_data(r, n), *d = ref_grad(r, n);
    long k = shape_numel(&n->shape);
    for (long j = 0; j < k; j++)
      p[j] = ref_round(r, p[j] - lr * d[j]);
  }
}

/* matmul flops of the whole step (forward and backward graph) */
static double matmul_flops(Graph *g) {
  double f = 0;
  for (int i = 0; i < g->nnodes; i++) {
    Node *n = g->nodes[i];
    if (n->op != OP_matmul)
      continue;
    const Shape *a = &n->in[0]->shape;
    int k = n->transa ? a->dim[a->rank - 2] : a->dim[a->rank - 1];
    f += 2.0 * (double)shape_numel(&n->shape) * k;
  }
  return f;
}

int main(int argc, char **argv) {
  const char *spec = NULL;
  int threads = 1, quick = 0, nconf = 0, noref = 0;
  int conf[16][2];
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc)
      threads = atoi(argv[++i]);
    else if (strcmp(argv[i], "--quick") == 0)
      quick = 1;
    else if (strcmp(argv[i], "--no-ref") == 0)
      noref = 1;
    else if (strcmp(argv[i], "--config") == 0 && i + 1 < argc && nconf < 16) {
      if (sscanf(argv[++i], "%d,%d", &conf[nconf][0], &conf[nconf][1]) != 2)
        error_plain("--config H,B");
      nconf++;
    } else if (argv[i][0] != '-')
      spec = argv[i];
    else
      error_plain("usage: bench-step SPEC [--threads N] [--quick] [--no-ref] [--config H,B]...");
  }
  if (!spec)
    error_plain("usage: bench-step SPEC [--threads N] [--quick] [--no-ref] [--config H,B]...");
  if (nconf == 0) {
    static const int def[4][2] = {{64, 32}, {200, 32}, {1024, 256}, {4096, 1024}};
    memcpy(conf, def, sizeof def);
    nconf = 4;
  }
  const char *outdir = "build/bench";
  int rounds = quick ? 5 : 11;
  double round_time = quick ? 0.02 : 0.05;
  for (int c = 0; c < nconf; c++) {
    int H = conf[c][0], B = conf[c][1];
    Cli cli;
    cli_init(&cli, DT_F32);
    cli.spec = spec;
    cli.ovr[0] = (DimOverride){"H", H, false};
    cli.ovr[1] = (DimOverride){"B", B, false};
    cli.novr = 2;
    Graph *g = cli_load(&cli);
    grad_build(g);
    printf("flop %d %d %.3f\n", H, B, matmul_flops(g) / 1e6);

    /* (a) gcc: emit, compile (timed), dlopen */
    EmitOptions gopt = {DT_F32, "bm", false, false, false};
    char *src = emit_c(g, &gopt, NULL);
    char *cpath = arena_printf("%s/step_%d_%d.c", outdir, H, B);
    char *sopath = arena_printf("%s/step_%d_%d.so", outdir, H, B);
    double cc;
    /* the kernels are static in the file: its bm_set_threads sets their thread count */
    void *so = bench_gcc_so(src, cpath, sopath, 0, &cc);
    printf("cc %d %d %.0f\n", H, B, 1e3 * cc);
    const BpModel *gm = dlsym(so, "bm_model");
    void (*so_threads)(int) = (void (*)(int))dlsym(so, "bm_set_threads");
    if (!gm || !so_threads)
      error_plain("no bm_model in %s", sopath);

    /* (b) tcc */
    EmitOptions topt = {DT_F32, "bm", true, false, false};
    char *tsrc = emit_c(g, &topt, NULL);
    char *tpath = arena_printf("%s/step_%d_%d_jit.c", outdir, H, B);
    FILE *f = fopen(tpath, "w");   /* for reading only: what tcc compiles */
    if (f) {
      fputs(tsrc, f);
      fclose(f);
    }
    double t0 = now();
    Jit *jit = jit_compile(tsrc, spec);
    double tcc_ms = 1e3 * (now() - t0);
    printf("tcccompile %d %d %.1f\n", H, B, tcc_ms);
    printf("threads %d %d %d\n", H, B, threads);
    const BpModel *tm = jit_symbol(jit, "bm_model");

    bp_set_threads(threads);
    so_threads(threads);
    Inst gi = new_inst(gm, g), ti = new_inst(tm, g);
    /* (c) the reference runtime */
    Ref *r = ref_new(g, DT_F32);
    ref_init_params(r, 2147483647);
    ref_random_inputs(r, 42);

    /* calibrate the steps per round */
    step(&gi), step(&ti);
    double one = time_steps(&gi, 3);
    long ng = (long)(round_time / one) + 1;
    one = time_steps(&ti, 3);
    long nt = (long)(round_time / one) + 1;
    t0 = now();
    if (!noref)
      ref_step(r, g);
    double rone = now() - t0;
    long nr = (long)(round_time / 4 / rone) + 1;
    int rrounds = noref ? 0 : rone > 0.05 ? 1 : rounds;
    if (rone > 0.5)
      nr = 0;   /* seconds per step: the single calibration step is the figure */

    double tg[64], tt[64], tr[64];
    for (int k = 0; k < rounds; k++) {
      tg[k] = time_steps(&gi, ng);
      tt[k] = time_steps(&ti, nt);
      if (k < rrounds) {
        if (nr == 0) {
          tr[k] = rone;
        } else {
          t0 = now();
          for (long i = 0; i < nr; i++)
            ref_step(r, g);
          tr[k] = (now() - t0) / (double)nr;
        }
      }
    }
    qsort(tg, (size_t)rounds, sizeof(double), cmp_double);
    qsort(tt, (size_t)rounds, sizeof(double), cmp_double);
    if (rrounds > 0)
      qsort(tr, (size_t)rrounds, sizeof(double), cmp_double);
    printf("gcc %d %d %.2f\n", H, B, 1e6 * tg[rounds / 2]);
    printf("tcc %d %d %.2f\n", H, B, 1e6 * tt[rounds / 2]);
    if (rrounds > 0)
      printf("ref %d %d %.1f\n", H, B, 1e6 * tr[rrounds / 2]);

    /* a step allocates nothing */
    nalloc = 0;
    counting = 1;
    for (int k = 0; k < 10; k++)
      step(&gi), step(&ti);
    counting = 0;
    printf("allocs %d %d %ld\n", H, B, nalloc);

    /* threads: the same bits as one thread (gcc build, from the same start), in
     * every tensor of the model's table (params, grads, named values,
     * statistics); not in the whole state, whose tail is the kernels' scratch:
     * its packing buffers hold whatever share of an operand the calling
     * thread packed last */
    {
      Inst a = new_inst(gm, g), b = new_inst(gm, g);
      so_threads(1);
      for (int k = 0; k < 3; k++)
        step(&a);
      so_threads(threads > 1 ? threads : 2);
      for (int k = 0; k < 3; k++)
        step(&b);
      so_threads(threads);
      int same = 1;
      for (int t = 0; t < gm->ntensors; t++) {
        const BpTensor *x = &gm->tensors[t];
        size_t bytes = x->numel * (x->dtype == BP_F64 ? 8 : 4);
        same &= memcmp((const char *)a.st + x->offset, (const char *)b.st + x->offset, bytes) == 0;
      }
      printf("bits %d %d %s\n", H, B, same ? "same" : "DIFF");
      free(a.st);
      free(b.st);
    }
    fflush(stdout);
    ref_free(r);
    free(gi.st);
    free(ti.st);
    jit_free(jit);
    /* no dlclose: the .so's kernel threads wait inside it */

  }
  return 0;
}
