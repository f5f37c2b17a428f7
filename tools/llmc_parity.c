/* llmc_parity.c: llm.c's own GPT-2 (its train_gpt2.c, included unmodified
 * with TESTING defined, as its test_gpt2.c does) beside bpgen's numbers, for
 * tools/llmc_parity.sh.  Built against ../shared/ref/llm.c (-I there) and
 * bpgen's runtime/ (npy_parse.h to read and write .npy, llmc_ckpt.h for the
 * checkpoint's param names and shapes).
 *
 *   llmc_parity tokens OUT.bin N V SEED
 *       an llm.c token file (256 int32: 20240520, 1, N; then N uint16) of N
 *       tokens drawn uniformly below V (xorshift64*, seeded with SEED)
 *   llmc_parity export MODEL.bin TOKENS.bin B T DIR
 *       llm.c reads MODEL.bin (gpt2_build_from_checkpoint); writes every param
 *       as DIR/<name>.npy (fp32) and the batch -- X the first B*T tokens as
 *       [B, T], Y the same shifted by one (llm.c's DataLoader) -- as DIR/X.npy
 *       and DIR/Y.npy (int32), the inputs `bpgen grad --in DIR` reads
 *   llmc_parity grad MODEL.bin TOKENS.bin B T BPDIR
 *       gpt2_forward, gpt2_zero_grad, gpt2_backward on that batch; compares
 *       with bpgen grad's BPDIR/loss.npy, logits.npy ([B, T, V] or [B, T, Vp]:
 *       the first V columns of each row, as test_gpt2.c) and <name>.grad.npy
 *       (every element), with
 *       test_gpt2.c's tolerances: loss and logits within 1e-2, gradients
 *       within 2e-2 absolute.  Prints the max abs diff per tensor.
 *   llmc_parity train MODEL.bin TOKENS.bin B T STEPS LR WD BPLOG.csv
 *       STEPS steps on that one batch: forward, zero_grad, backward,
 *       gpt2_update(LR, 0.9, 0.999, 1e-8, WD, step+1) (test_gpt2.c's loop);
 *       prints llm.c's loss and bpgen's (the loss column of `bpgen run --log`)
 *       side by side, and fails when any differs by 1e-2 or more.
 *   llmc_parity time MODEL.bin TOKENS.bin B T STEPS
 *       bench/gpt2_bench.sh's llm.c column: 3 warm-up steps, then STEPS steps
 *       of forward, zero_grad, backward, gpt2_update (test_gpt2.c's
 *       hyperparameters), each timed on the wall clock (OpenMP threads: set
 *       OMP_NUM_THREADS); prints "loss0 <first step's loss>" and
 *       "ms <median> <min> <max>" per step.
 * Exit status: 0 when everything is within tolerance, 1 otherwise, 2 on a
 * usage or file error.
 */
#define TESTING
#include "train_gpt2.c"

#include "npy_parse.h"
#include "llmc_ckpt.h"

static void fail(const char *fmt, const char *a, const char *b) {
  fprintf(stderr, "llmc_parity: error: ");
  fprintf(stderr, fmt, a, b);
  fputc('\n', stderr);
  exit(2);
}

static unsigned char *slurp(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f)
    fail("%s: cannot open%s", path, "");
  size_t cap = 1 << 16, n = 0;
  unsigned char *b = malloc(cap);
  for (;;) {
    if (n == cap)
      b = realloc(b, cap *= 2);
    size_t got = fread(b + n, 1, cap - n, f);
    if (got == 0)
      break;
    n += got;
  }
  fclose(f);
  *len = n;
  return b;
}

/* ---- the batch ------------------------------------------------------------------ */

static uint64_t rng_state;
static uint32_t rng_next(void) {   /* xorshift64* */
  rng_state ^= rng_state >> 12;
  rng_state ^= rng_state << 25;
  rng_state ^= rng_state >> 27;
  return (uint32_t)((rng_state * 0x2545F4914F6CDD1DULL) >> 32);
}

static int cmd_tokens(char **argv) {
  long n = atol(argv[1]), v = atol(argv[2]);
  rng_state = (uint64_t)atoll(argv[3]) * 2654435761u + 1;
  if (n < 2 || v < 1 || v > 65535)
    fail("tokens: bad N or V%s%s", "", "");
  unsigned char head[1024] = {0};
  llmc_put32(head, 20240520);
  llmc_put32(head + 4, 1);
  llmc_put32(head + 8, (uint32_t)n);
  FILE *f = fopen(argv[0], "wb");
  if (!f)
    fail("%s: cannot create%s", argv[0], "");
  fwrite(head, 1, sizeof head, f);
  for (long i = 0; i < n; i++) {
    unsigned t = rng_next() % (uint32_t)v;
    unsigned char b[2] = {t & 0xFF, t >> 8};
    fwrite(b, 1, 2, f);
  }
  if (fclose(f) != 0)
    fail("%s: write error%s", argv[0], "");
  return 0;
}

/* X and Y [B*T] from the first B*T+1 tokens of an llm.c token file. */
static void read_batch(const char *path, int B, int T, int V, int *x, int *y) {
  size_t len;
  unsigned char *b = slurp(path, &len);
  if (len < 1024 || (int32_t)llmc_get32(b) != 20240520 || llmc_get32(b + 4) != 1)
    fail("%s: not an llm.c token file (version 1)%s", path, "");
  size_t n = llmc_get32(b + 8);
  if (len != 1024 + 2 * n || n < (size_t)B * T + 1)
    fail("%s: too short for one batch of B*T+1 tokens%s", path, "");
  for (int i = 0; i < B * T; i++) {
    x[i] = b[1024 + 2 * i] | b[1025 + 2 * i] << 8;
    y[i] = b[1026 + 2 * i] | b[1027 + 2 * i] << 8;
    if (x[i] >= V || y[i] >= V)
      fail("%s: a token is beyond the checkpoint's V%s", path, "");
  }
  free(b);
}

/* ---- .npy ------------------------------------------------------------------------- */

static void npy_write(const char *path, NpyType t, int rank, const long *dim, const void *data,
                      size_t nbytes) {
  unsigned char head[NPY_MAXHEADER];
  size_t hl = npy_header_text(head, sizeof head, t, rank, dim);
  FILE *f = fopen(path, "wb");
  if (!f)
    fail("%s: cannot create%s", path, "");
  if (fwrite(head, 1, hl, f) != hl || fwrite(data, 1, nbytes, f) != nbytes || fclose(f) != 0)
    fail("%s: write error%s", path, "");
}

/* The floats of a '<f4' or '<f8' .npy as doubles (malloc'ed): numel of them,
 * or (numel 0) as many as it has, into *got. */
static double *npy_read_n(const char *path, size_t numel, size_t *got) {
  size_t len;
  unsigned char *b = slurp(path, &len);
  NpyHeader h;
  char err[256];
  if (npy_header_parse(b, len, 0, &h, err, sizeof err) < 0)
    fail("%s: %s", path, err);
  if ((h.type != NPY_F4 && h.type != NPY_F8) || (numel && h.numel != numel) || h.fortran)
    fail("%s: not a C-order float array of the expected size%s", path, "");
  numel = h.numel;
  if (got)
    *got = numel;
  double *v = malloc((numel ? numel : 1) * sizeof *v);
  for (size_t i = 0; i < numel; i++) {
    if (h.type == NPY_F4) {
      float f;
      memcpy(&f, b + h.offset + 4 * i, 4);
      v[i] = f;
    } else {
      memcpy(&v[i], b + h.offset + 8 * i, 8);
    }
  }
  free(b);
  return v;
}

static double *npy_read(const char *path, size_t numel) { return npy_read_n(path, numel, NULL); }

/* ---- the model --------------------------------------------------------------------- */

static char *join(const char *dir, const char *name, const char *ext) {
  size_t n = strlen(dir) + strlen(name) + strlen(ext) + 2;
  char *p = malloc(n);
  snprintf(p, n, "%s/%s%s", dir, name, ext);
  return p;
}

/* llm.c's 16 param (or grad) pointers in checkpoint order. */
static void tensors(ParameterTensors *p, float *t[LLMC_NPARAMS]) {
  float *all[LLMC_NPARAMS] = {p->wte, p->wpe, p->ln1w, p->ln1b, p->qkvw, p->qkvb, p->attprojw,
                              p->attprojb, p->ln2w, p->ln2b, p->fcw, p->fcb, p->fcprojw,
                              p->fcprojb, p->lnfw, p->lnfb};
  memcpy(t, all, sizeof all);
}

/* The header's shapes for the model llm.c read (llmc_ckpt.h's table). */
static void shapes(const GPT2 *m, LlmcHeader *h) {
  const GPT2Config *c = &m->config;
  long dim[LLMC_NDIMS] = {c->max_seq_len, c->vocab_size, c->num_layers, c->num_heads,
                          c->channels, c->padded_vocab_size};
  memcpy(h->dim, dim, sizeof dim);
  char err[256];
  if (llmc_shapes(h, err, sizeof err) < 0)
    fail("%s%s", err, "");
  for (int p = 0; p < LLMC_NPARAMS; p++)
    if (h->numel[p] != m->param_sizes[p])
      fail("llmc_ckpt.h's shape of %s differs from llm.c's param size%s", llmc_params[p].name, "");
}

static int cmd_export(char **argv) {
  GPT2 m;
  gpt2_build_from_checkpoint(&m, argv[0]);
  int B = atoi(argv[2]), T = atoi(argv[3]);
  LlmcHeader h;
  shapes(&m, &h);
  float *t[LLMC_NPARAMS];
  tensors(&m.params, t);
  for (int p = 0; p < LLMC_NPARAMS; p++)
    npy_write(join(argv[4], llmc_params[p].name, ".npy"), NPY_F4, llmc_params[p].rank,
              h.shape[p], t[p], h.numel[p] * sizeof(float));
  int *x = malloc((size_t)B * T * sizeof *x), *y = malloc((size_t)B * T * sizeof *y);
  read_batch(argv[1], B, T, m.config.vocab_size, x, y);
  long bt[2] = {B, T};
  npy_write(join(argv[4], "X", ".npy"), NPY_I4, 2, bt, x, (size_t)B * T * sizeof *x);
  npy_write(join(argv[4], "Y", ".npy"), NPY_I4, 2, bt, y, (size_t)B * T * sizeof *y);
  return 0;
}

static int cmd_grad(char **argv) {
  GPT2 m;
  gpt2_build_from_checkpoint(&m, argv[0]);
  int B = atoi(argv[2]), T = atoi(argv[3]);
  const char *dir = argv[4];
  int V = m.config.vocab_size, Vp = m.config.padded_vocab_size;
  int *x = malloc((size_t)B * T * sizeof *x), *y = malloc((size_t)B * T * sizeof *y);
  read_batch(argv[1], B, T, V, x, y);
  gpt2_forward(&m, x, y, B, T);
  gpt2_zero_grad(&m);
  gpt2_backward(&m);
  int ok = 1;
  double *bl = npy_read(join(dir, "loss", ".npy"), 1);
  double dl = fabs(bl[0] - m.mean_loss);
  ok &= dl < 1e-2;
  printf("%-10s %12s %12s %12s  %s\n", "tensor", "llm.c", "bpgen", "max|diff|", "(tolerance)");
  printf("%-10s %12.6f %12.6f %12.3e  %s\n", "loss", m.mean_loss, bl[0], dl,
         dl < 1e-2 ? "ok (1e-2)" : "NOT OK (1e-2)");
  /* the spec's logits: [B, T, V] (the loss's), or [B, T, Vp] (llm.c's) */
  size_t nlog;
  double *blog = npy_read_n(join(dir, "logits", ".npy"), 0, &nlog);
  size_t w = nlog == (size_t)B * T * V ? (size_t)V : (size_t)Vp;
  if (nlog != (size_t)B * T * w)
    fail("%s: logits of neither [B, T, V] nor [B, T, Vp]%s", dir, "");
  double md = 0;
  for (int bt = 0; bt < B * T; bt++)
    for (int v = 0; v < V; v++) {
      double d = fabs(blog[(size_t)bt * w + v] - m.acts.logits[(size_t)bt * Vp + v]);
      md = d > md ? d : md;
    }
  ok &= md < 1e-2;
  printf("%-10s %12s %12s %12.3e  %s\n", "logits", "", "", md,
         md < 1e-2 ? "ok (1e-2)" : "NOT OK (1e-2)");
  LlmcHeader h;
  shapes(&m, &h);
  float *g[LLMC_NPARAMS];
  tensors(&m.grads, g);
  for (int p = 0; p < LLMC_NPARAMS; p++) {
    double *bg = npy_read(join(dir, llmc_params[p].name, ".grad.npy"), h.numel[p]);
    double d = 0, mx = 0;
    for (size_t i = 0; i < h.numel[p]; i++) {
      double e = fabs(bg[i] - g[p][i]);
      d = e > d ? e : d;
      mx = fabs(g[p][i]) > mx ? fabs(g[p][i]) : mx;
    }
    ok &= d <= 2e-2;
    printf("d%-9s %12s %12.3e %12.3e  %s\n", llmc_params[p].name, "max|grad|", mx, d,
           d <= 2e-2 ? "ok (2e-2)" : "NOT OK (2e-2)");
    free(bg);
  }
  printf("%s\n", ok ? "gradients: OK (test_gpt2.c's tolerances)" : "gradients: NOT OK");
  gpt2_free(&m);
  return ok ? 0 : 1;
}

static int cmd_train(char **argv) {
  GPT2 m;
  gpt2_build_from_checkpoint(&m, argv[0]);
  int B = atoi(argv[2]), T = atoi(argv[3]), steps = atoi(argv[4]);
  float lr = (float)atof(argv[5]), wd = (float)atof(argv[6]);
  int *x = malloc((size_t)B * T * sizeof *x), *y = malloc((size_t)B * T * sizeof *y);
  read_batch(argv[1], B, T, m.config.vocab_size, x, y);
  /* bpgen's log: a header line, then step,loss,dev_loss */
  size_t len;
  char *csv = (char *)slurp(argv[7], &len);
  csv = realloc(csv, len + 1);
  csv[len] = '\0';
  double *bl = calloc((size_t)steps, sizeof *bl);
  int nb = 0;
  char *line = strchr(csv, '\n');
  while (line && nb < steps) {
    line++;
    long st;
    double l;
    if (sscanf(line, "%ld,%lf", &st, &l) == 2 && st == nb)
      bl[nb++] = l;
    line = strchr(line, '\n');
  }
  if (nb < steps)
    fail("%s: fewer steps logged than asked%s", argv[7], "");
  int ok = 1;
  printf("%4s %12s %12s %10s\n", "step", "llm.c", "bpgen", "|diff|");
  for (int s = 0; s < steps; s++) {
    gpt2_forward(&m, x, y, B, T);
    gpt2_zero_grad(&m);
    gpt2_backward(&m);
    gpt2_update(&m, lr, 0.9f, 0.999f, 1e-8f, wd, s + 1);
    double d = fabs(m.mean_loss - bl[s]);
    ok &= d < 1e-2;
    printf("%4d %12.6f %12.6f %10.2e%s\n", s, m.mean_loss, bl[s], d, d < 1e-2 ? "" : "  NOT OK");
  }
  printf("%s\n", ok ? "losses: OK (within 1e-2 at every step)" : "losses: NOT OK");
  gpt2_free(&m);
  return ok ? 0 : 1;
}

static double wall_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return 1e3 * (double)ts.tv_sec + 1e-6 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static int cmd_time(char **argv) {
  GPT2 m;
  gpt2_build_from_checkpoint(&m, argv[0]);
  int B = atoi(argv[2]), T = atoi(argv[3]), steps = atoi(argv[4]);
  if (steps < 1)
    fail("time: STEPS must be at least 1%s%s", "", "");
  int *x = malloc((size_t)B * T * sizeof *x), *y = malloc((size_t)B * T * sizeof *y);
  read_batch(argv[1], B, T, m.config.vocab_size, x, y);
  double *ms = malloc((size_t)steps * sizeof *ms);
  for (int s = 0; s < 3 + steps; s++) {
    double t0 = wall_ms();
    gpt2_forward(&m, x, y, B, T);
    gpt2_zero_grad(&m);
    gpt2_backward(&m);
    gpt2_update(&m, 1e-4f, 0.9f, 0.999f, 1e-8f, 0.01f, s + 1);
    double t1 = wall_ms();
    if (s == 0)
      printf("loss0 %.6f\n", m.mean_loss);
    if (s >= 3)
      ms[s - 3] = t1 - t0;
  }
  qsort(ms, (size_t)steps, sizeof *ms, cmp_double);
  printf("ms %.3f %.3f %.3f\n", ms[steps / 2], ms[0], ms[steps - 1]);
  free(ms);
  gpt2_free(&m);
  return 0;
}

int main(int argc, char **argv) {
  static const struct { const char *name; int nargs; int (*fn)(char **); } cmds[] = {
    {"tokens", 4, cmd_tokens}, {"export", 5, cmd_export}, {"grad", 5, cmd_grad},
    {"train", 8, cmd_train}, {"time", 5, cmd_time},
  };
  for (size_t i = 0; argc > 1 && i < sizeof cmds / sizeof cmds[0]; i++)
    if (strcmp(argv[1], cmds[i].name) == 0 && argc == cmds[i].nargs + 2)
      return cmds[i].fn(argv + 2);
  fprintf(stderr, "usage: llmc_parity tokens|export|grad|train|time ... (see tools/llmc_parity.c)\n");
  return 2;
}
