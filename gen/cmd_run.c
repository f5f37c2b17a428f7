/* cmd_run.c: `bpgen run SPEC --data FILE [trainer options]` -- the model and
 * the trainer (templates/trainer.c) compiled together in memory with libtcc,
 * then run: nothing is written to disk unless asked (--log, --save).
 *
 * The same text, with the model's kernels written inline and a main(), is what
 * `bpgen SPEC --trainer -o train.c` writes for gcc (trainer_source), so both
 * ways run the same trainer code on the same arguments.  Before parsing the
 * spec, run reads the word list and sets -D V=<vocabulary size> when the spec
 * has a dim V and the user gave none.  With tensor data (--data-x X.npy ...)
 * the files go to the trainer untouched and no dim is set from them.  A
 * --load file in llm.c's GPT-2 format (recognised by its magic) sets the dims
 * maxT V L NH C Vp from its header, as -D would (llmc_set_dims).
 *
 * Started by mpirun (issue 17), run initialises MPI (gen/comm.c) and hands
 * the trainer the communication table before it runs: data-parallel
 * training, each rank one process of this same command.
 */
#include "bpgen.h"
#include "comm.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sys/stat.h>

#include "bp_runtime.h"
#include "mine.h"
#include "npy_parse.h"
#include "llmc_ckpt.h"
#define BP_KERNELS_DECLARE_ONLY

static const char run_usage[] =
  "usage: bpgen run SPEC --data FILE [-D NAME=INT]... [--dtype f32|f64] [--seed N] [options]\n"
  "       bpgen run SPEC --text FILE | --data-tokens F.bin [--val-tokens F.bin] [...]\n"
  "       bpgen run SPEC --data-x X.npy [--data-y Y.npy] [--dev-x X.npy --dev-y Y.npy]\n"
  "                      [--test-x X.npy --test-y Y.npy] [...]\n"
  "\n"
  "Compiles SPEC and a trainer in memory (libtcc), trains on the words in FILE\n"
  "(one per line), calibrates batchnorm over the training split, prints the\n"
  "train and dev loss and samples words.  V is set from the data unless -D V=\n"
  "is given; the batch B and context T are the spec's (override with -D).\n"
  "\n"
  "Sequence models (inputs X, Y int[B,T], logits [B,T,V]) train on --data as\n"
  "makemore does (a word a row, makemore's split), or on a token stream: --text\n"
  "FILE (V set from its distinct bytes) or llm.c's token files --data-tokens.\n"
  "\n"
  "Models that are not character models train on tensors: .npy files (C or\n"
  "Fortran order, little-endian '<f4' '<f8' '<i4' '<i8' '|u1') whose first axis\n"
  "is the example axis and whose other axes are the input's shape without the\n"
  "batch B.  The spec's inputs in order: the first is fed from the -x files,\n"
  "the second from the -y files.  Dev and test splits are optional; nothing is\n"
  "sampled.\n"
  "\n"
  "run's own options:\n"
  "  --mine FILE.c       train with your own backward() (Exercise 4): FILE.c as for\n"
  "                      `bpgen ninja --mine` (it must fill every param's gradient);\n"
  "                      at step 0 and at every loss line and evaluation, bpgen's\n"
  "                      generated backward runs on the same batch and the run\n"
  "                      stops (exit status 1) at the first step where a gradient\n"
  "                      of yours leaves the tolerance, naming it\n"
  "  --tol X             --mine's tolerance (default 1e-5 for f32, 1e-9 for f64),\n"
  "                      the rule of `bpgen ninja`\n"
  "  --rng torch         draw the params' randn initialisers (declaration order) and\n"
  "                      the minibatch rows as torch.Generator().manual_seed(SEED)\n"
  "                      with torch.randn / torch.randint do on the CPU (ATen's AVX2\n"
  "                      kernel; --rng torch-scalar: its scalar kernel, which torch\n"
  "                      runs on AVX-512 and non-x86 machines), so the run starts\n"
  "                      from the notebook's params and batches\n"
  "  --torch-global P,Q  with --rng torch: params P, Q drawn from torch's global\n"
  "                      generator instead, as the notebook draws bngain and bnbias\n"
  "                      (no generator=g), after torch.manual_seed(N) with N from\n"
  "  --torch-global-seed N  (default 42)\n"
  "\n";

/* The trainer's own option list (tr_usage in templates/trainer.c, the text
 * this command compiles), read out of its string literal, so --help cannot
 * drift from what the trainer accepts. */
static const char *trainer_options(void) {
  const char *p = strstr(embedded_text("templates/trainer.c"), "static const char tr_usage[] =");
  if (!p)
    die("templates/trainer.c has no tr_usage");
  p = strchr(p, '=') + 1;
  char *out = arena_alloc(strlen(p) + 1), *o = out;   /* the literals are shorter than the rest */
  for (;;) {
    while (*p == ' ' || *p == '\n')
      p++;
    if (*p != '"')
      break;
    for (p++; *p && *p != '"'; p++) {
      char c = *p;
      if (c == '\\' && p[1]) {
        p++;
        c = *p == 'n' ? '\n' : *p == 't' ? '\t' : *p;
      }
      *o++ = c;
    }
    if (*p)
      p++;
  }
  *o = '\0';
  return out;
}

/* The trainer's options that take a value (passed through untouched). */
static const char *const run_valued[] = {
  "--data", "--log", "--save", "--load", "--steps", "--decay-at", "--eval-every", "--eval-batches", "--threads",
  "--print-every", "--save-every", "--samples", "--lr", "--weight-decay", "--beta1",
  "--beta2", "--eps", "--optimizer", "--split-seed", "--lr-schedule", "--warmup", "--lr-min",
  "--clip", "--temperature", "--top-k", "--sample-len", "--text", "--data-tokens", "--val-tokens",
  "--bn-stats", "--bn-momentum",
};

/* Tensor-data options (passed through to the trainer; see templates/trainer.c). */
static const char *const run_tensor_opts[] = {
  "--data-x", "--data-y", "--dev-x", "--dev-y", "--test-x", "--test-y",
};

static bool is_tensor_opt(const char *a) {
  for (size_t k = 0; k < sizeof run_tensor_opts / sizeof run_tensor_opts[0]; k++)
    if (strcmp(a, run_tensor_opts[k]) == 0)
      return true;
  return false;
}

/* C identifier from the spec's file stem ("specs/make-more.spec" -> make_more). */
const char *spec_prefix(const char *spec) {
  const char *base = strrchr(spec, '/');
  base = base ? base + 1 : spec;
  const char *dot = strchr(base, '.');
  size_t n = dot && dot != base ? (size_t)(dot - base) : strlen(base);
  if (n == 0 || strcmp(spec, "-") == 0)
    return "model";
  char *p = arena_alloc(n + 2), *q = p;
  if (isdigit((unsigned char)base[0]))
    *q++ = '_';
  for (size_t i = 0; i < n; i++)
    *q++ = isalnum((unsigned char)base[i]) ? base[i] : '_';
  return p;
}

/* Vocabulary size of a word list as the trainer builds it: '.' and every
 * distinct byte of the non-empty lines ('\r' before '\n' ignored). */
static int data_vocab(const char *path) {
  SrcFile *f = read_src(path);
  bool seen[256] = {0};
  const char *p = f->text, *end = f->text + f->len;
  while (p < end) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    const char *e = nl ? nl : end;
    if (e > p && e[-1] == '\r')
      e--;
    for (const char *c = p; c < e; c++)
      seen[(unsigned char)*c] = true;
    p = nl ? nl + 1 : end;
  }
  int n = 1;
  for (int c = 0; c < 256; c++)
    n += seen[c] && c != '.';
  return n;
}

/* Vocabulary size of a --text stream as the trainer builds it: its distinct
 * bytes. */
static int text_vocab(const char *path) {
  SrcFile *f = read_src(path);
  bool seen[256] = {0};
  for (size_t i = 0; i < f->len; i++)
    seen[(unsigned char)f->text[i]] = true;
  int n = 0;
  for (int c = 0; c < 256; c++)
    n += seen[c];
  return n > 0 ? n : 1;
}

/* ---- llm.c's checkpoints (runtime/llmc_ckpt.h; read and written by the trainer) -- */

/* The spec's dims maxT V L NH C Vp for the trainer, which checks an llm.c
 * header against them and writes them into one: "#define TR_LLMC_DIMS {...}",
 * -1 for a dim the spec lacks. */
static char *llmc_dims_define(const Graph *g) {
  char *s = "#define TR_LLMC_DIMS {";
  for (int d = 0; d < LLMC_NDIMS; d++) {
    long v = -1;
    for (int k = 0; k < g->ndims; k++)
      if (strcmp(g->dims[k].name, llmc_dim_names[d]) == 0)
        v = g->dims[k].value;
    s = arena_printf("%s%ld%s", s, v, d + 1 < LLMC_NDIMS ? ", " : "}\n");
  }
  return s;
}

/* When path (--load's file) is a regular file starting with llm.c's magic:
 * its header checked (the whole file's size too), its dims set as if given by
 * -D for the dims the spec has (g, parsed without them); an explicit -D that
 * disagrees is an error.  Returns whether any -D was added. */
static bool llmc_set_dims(Cli *c, const Graph *g, const char *path) {
  struct stat st;
  if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
    return false;   /* the trainer names the problem */
  FILE *f = fopen(path, "rb");
  if (!f)
    return false;
  unsigned char buf[LLMC_HEADER_BYTES];
  size_t n = fread(buf, 1, sizeof buf, f);
  fclose(f);
  if (!llmc_is_checkpoint(buf, n))
    return false;
  LlmcHeader h;
  char err[512];
  if (llmc_header_parse(buf, n, (unsigned long long)st.st_size, &h, err, sizeof err) < 0)
    error_plain("%s: %s", path, err);
  bool added = false;
  for (int d = 0; d < LLMC_NDIMS; d++) {
    const char *name = llmc_dim_names[d];
    bool given = false;
    for (int k = 0; k < c->novr; k++)
      if (strcmp(c->ovr[k].name, name) == 0) {
        if (c->ovr[k].value != h.dim[d])
          error_plain("%s: the checkpoint has %s = %ld but -D %s=%ld was given", path, name,
                      h.dim[d], name, c->ovr[k].value);
        given = true;
      }
    bool in_spec = false;
    for (int k = 0; k < g->ndims; k++)
      in_spec |= strcmp(g->dims[k].name, name) == 0;
    if (given || !in_spec)
      continue;
    if (c->novr == (int)(sizeof c->ovr / sizeof c->ovr[0]))
      error_plain("too many -D options");
    c->ovr[c->novr].name = name;
    c->ovr[c->novr].value = h.dim[d];
    c->novr++;
    added = true;
  }
  for (int k = 0; added && k < c->novr; k++)
    c->ovr[k].used = false;
  return added;
}

/* The shape (after the example axis) of .npy file path, fed to the k-th input
 * of g, against the input's: when they differ and one dim of the spec, set to
 * a size the file has, makes them agree, the error says which -D fits
 * ("try -D F=20").  Only the header is read; everything else about the file
 * is the trainer's to check. */
/* Whether the spec, parsed again with -D dim=v besides the user's, gives input
 * `name` the shape of the file h after the example axis. */
static bool dim_fits(Cli *c, Graph *g, const char *name, const char *dim, long v, const NpyHeader *h) {
  DimOverride ovr[65];
  int n = 0;
  for (int j = 0; j < c->novr; j++)
    if (strcmp(c->ovr[j].name, dim) != 0)
      ovr[n++] = (DimOverride){c->ovr[j].name, c->ovr[j].value, false};
  ovr[n++] = (DimOverride){dim, v, false};
  jmp_buf jb;
  volatile bool ok = false;   /* volatile: read after longjmp */
  if (setjmp(jb) == 0) {
    error_catch(&jb);
    Graph *g2 = parse_spec(g->file, ovr, n);
    Node *in = graph_find(g2, name);
    bool fits = in && in->shape.rank == h->rank;
    for (int a = 1; fits && a < h->rank; a++)
      fits = in->shape.dim[a] == h->dim[a];
    ok = fits;
  }
  error_catch(NULL);
  return ok;
}

void run_check_npy(Cli *c, Graph *g, int k, const char *path) {
  Node *in = NULL;
  for (int i = 0, seen = 0; i < g->nforward && !in; i++)
    if (g->nodes[i]->op == OP_input && seen++ == k)
      in = g->nodes[i];
  if (!in || in->shape.rank < 1 || strcmp(path, "-") == 0)
    return;
  FILE *f = fopen(path, "rb");
  if (!f)
    return;   /* the trainer names the error */
  unsigned char buf[NPY_MAXHEADER + 16];
  size_t len = fread(buf, 1, sizeof buf, f);
  fclose(f);
  NpyHeader h;
  char err[256];
  /* the header alone: parse errors about the data's length are not ours */
  if (npy_header_parse(buf, len, 0, &h, err, sizeof err) < 0 && strncmp(err, "truncated data", 14) != 0)
    return;
  const Shape *s = &in->shape;
  bool same = h.rank == s->rank;
  for (int i = 1; same && i < s->rank; i++)
    same = h.dim[i] == s->dim[i];
  if (same)
    return;
  char got[160], want[160];
  npy_shape_text(got, sizeof got, h.rank, h.dim);
  long wd[MAXRANK];
  for (int i = 0; i < s->rank; i++)
    wd[i] = s->dim[i];
  npy_shape_text(want, sizeof want, s->rank, wd);
  const char *n_first = arena_printf("(N%s", strchr(want, ',') ? strchr(want, ',') : ")");
  const char *fix = "";
  for (int d = 0; d < g->ndims && h.rank == s->rank && !*fix; d++) {
    for (int i = 1; i < s->rank && !*fix; i++) {
      if (h.dim[i] == s->dim[i] || h.dim[i] < 1)
        continue;
      if (dim_fits(c, g, in->name, g->dims[d].name, h.dim[i], &h))
        fix = arena_printf("; try -D %s=%ld", g->dims[d].name, h.dim[i]);
    }
  }
  /* the trainer's words (tr_load_input), and the hint */
  error_usage("%s: shape %s does not match input %s %s: expected %s for N examples%s", path, got,
              in->name, want, n_first, fix);
}

char *trainer_source(Graph *g, const EmitOptions *opt) {
  EmitOptions o = *opt;
  o.trainer = false;
  if (!o.prefix)
    o.prefix = "model";
  char *model = emit_c(g, &o, NULL);
  char *trainer = template_fill(embedded_text("templates/trainer.c"), NULL, NULL, 0);
  char *dims = llmc_dims_define(g);
  if (opt->for_jit)
    return arena_printf("%s\n%s#line 1 \"templates/trainer.c\"\n%s", model, dims, trainer);
  /* for gcc: POSIX for clock_gettime/fsync even under -std=c99 */
  return arena_printf("#define _POSIX_C_SOURCE 200809L\n%s\n%s#line 1 \"templates/trainer.c\"\n%s\n"
                      "int main(int argc, char **argv) {\n"
                      "  return bp_train_main(&%s_model, argc, argv);\n"
                      "}\n", model, dims, trainer, o.prefix);
}

typedef int TrainMain(const struct BpModel *m, int argc, char **argv);
typedef void TrainSetComm(const BpComm *c);

/* What cmd_run hands run_trainer beyond the trainer's own arguments: --mine and
 * --rng torch (predict and sample leave them empty). */
typedef struct RunHooks {
  const char *mine, *rng, *global;
  unsigned long long global_seed;
  double tol;
  bool torch;
  bool sync_bn;   /* --sync-bn: the model generated with the statistics over the ranks */
} RunHooks;

static int compile_and_call(Cli *c, Graph *g, const char *entry, const RunHooks *h, int targc, char **targv);
typedef void TrainHooks(const char *(*mine)(void *, void *, long, int), void *ctx,
                        const char *torch_prog);

/* An initialiser in reverse Polish notation for the trainer's --rng torch
 * (tr_torch_init in templates/trainer.c). */
static const char *init_rpn(const InitExpr *x) {
  switch (x->kind) {
  case INIT_NUM: return arena_printf("N%.17g", x->num);
  case INIT_RANDN: return "R";
  case INIT_UNIFORM: return "U";
  case INIT_NEG: return arena_printf("%s ~", init_rpn(x->a));
  case INIT_SQRT: return arena_printf("%s S", init_rpn(x->a));
  default:
    return arena_printf("%s %s %c", init_rpn(x->a), init_rpn(x->b), "+-*/"[x->kind - INIT_ADD]);
  }
}

static bool in_list(const char *list, const char *name) {
  size_t n = strlen(name);
  for (const char *p = list; p && *p;) {
    const char *e = strchr(p, ',');
    size_t l = e ? (size_t)(e - p) : strlen(p);
    if (l == n && strncmp(p, name, n) == 0)
      return true;
    p = e ? e + 1 : NULL;
  }
  return false;
}

/* The params' initialisers for --rng torch, in declaration order, after the
 * kernel and the global generator's seed: "avx2 42;NAME GEN RPN;..." */
static const char *torch_prog(Graph *g, bool avx2, const char *global, unsigned long long seed2) {
  const char *prog = arena_printf("%s %llu;", avx2 ? "avx2" : "scalar", seed2);
  for (int i = 0; i < g->nforward; i++) {
    Node *n = g->nodes[i];
    if (n->op == OP_param && n->init)
      prog = arena_printf("%s%s %c %s;", prog, n->name, in_list(global, n->name) ? 'G' : 'g',
                          init_rpn(n->init));
  }
  for (const char *p = global; p && *p;) {   /* every name given must be a param */
    const char *e = strchr(p, ',');
    const char *name = e ? arena_strndup(p, (size_t)(e - p)) : p;
    bool found = false;
    for (int i = 0; i < g->nforward; i++)
      found |= g->nodes[i]->op == OP_param && g->nodes[i]->init && strcmp(g->nodes[i]->name, name) == 0;
    if (!found)
      error_plain("run: --torch-global %s: the spec has no param '%s' with an initialiser", global, name);
    p = e ? e + 1 : NULL;
  }
  return prog;
}

int cmd_run(int argc, char **argv) {
  Cli c;
  cli_init(&c, DT_F32);
  char **targv = arena_alloc(sizeof(char *) * (size_t)(argc + 4));
  int targc = 0;
  targv[targc++] = "bpgen run";
  const char *data = NULL;
  const char *load = NULL;     /* --load FILE, or --resume's --save FILE */
  const char *save = NULL;
  const char *text = NULL;     /* --text FILE */
  bool tensors = false;        /* --data-x given */
  bool tokens = false;         /* --data-tokens given */
  const char *mine = NULL;     /* --mine FILE.c */
  const char *rng = NULL;      /* --rng torch|bpgen */
  const char *global = NULL;   /* --torch-global P,Q */
  unsigned long long global_seed = 42;   /* --torch-global-seed N */
  bool global_seed_set = false;
  bool resume = false;
  bool sync_bn = false;        /* --sync-bn */
  double tol = 0;
  const char *tfile[3][2] = {{NULL}};   /* --data-x .. --test-y */
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      fputs(run_usage, stdout);
      fputs(trainer_options(), stdout);
      return 0;
    }
    if (strcmp(a, "--sync-bn") == 0) {   /* the trainer checks it too: the model must have it */
      sync_bn = true;
      targv[targc++] = argv[i];
      continue;
    }
    if (strcmp(a, "--quiet") == 0 || strcmp(a, "--resume") == 0 || strcmp(a, "--json") == 0 ||
        strcmp(a, "--comm-stats") == 0) {
      resume |= strcmp(a, "--resume") == 0;
      targv[targc++] = argv[i];
      continue;
    }
    if (strcmp(a, "--mine") == 0) {
      mine = cli_value(argc, argv, &i);
      continue;
    }
    if (strcmp(a, "--tol") == 0) {
      tol = cli_double("--tol", cli_value(argc, argv, &i));
      continue;
    }
    if (strcmp(a, "--rng") == 0) {
      rng = cli_value(argc, argv, &i);
      if (strcmp(rng, "torch") != 0 && strcmp(rng, "torch-scalar") != 0 && strcmp(rng, "bpgen") != 0)
        error_plain("run: --rng %s: give torch or torch-scalar (torch.randn / torch.randint's "
                    "numbers) or bpgen (the default)", rng);
      continue;
    }
    if (strcmp(a, "--torch-global") == 0) {
      global = cli_value(argc, argv, &i);
      continue;
    }
    if (strcmp(a, "--torch-global-seed") == 0) {
      const char *v = cli_value(argc, argv, &i);
      char *e;
      global_seed = strtoull(v, &e, 10);
      if (!*v || *e || *v == '-')
        error_plain("run: --torch-global-seed %s: expected a non-negative integer", v);
      global_seed_set = true;
      continue;
    }
    bool valued = false;
    for (size_t k = 0; k < sizeof run_valued / sizeof run_valued[0]; k++)
      valued |= strcmp(a, run_valued[k]) == 0;
    valued |= is_tensor_opt(a);
    tensors |= strcmp(a, "--data-x") == 0;
    if (valued) {
      const char *v = cli_value(argc, argv, &i);
      if (strcmp(a, "--data") == 0)
        data = v;
      if (strcmp(a, "--text") == 0)
        text = v;
      if (strcmp(a, "--load") == 0)
        load = v;
      if (strcmp(a, "--save") == 0)
        save = v;
      tokens |= strcmp(a, "--data-tokens") == 0;
      resume |= strcmp(a, "--load") == 0;
      for (int k = 0; k < 6; k++)
        if (strcmp(a, run_tensor_opts[k]) == 0)
          tfile[k / 2][k % 2] = v;
      targv[targc++] = (char *)a;
      targv[targc++] = (char *)v;
      continue;
    }
    if (!cli_common(&c, argc, argv, &i))
      cli_unknown("run", a);
  }
  if (c.out)
    error_usage("run: writes no model file; for a trainer to build with gcc use "
                "'bpgen SPEC --trainer -o train.c'");
  if (!c.spec)
    error_usage("run: no spec file given (see bpgen run --help)");
  if (!data && !tensors && !text && !tokens)
    error_usage("run: no data: give --data FILE (words, one per line), --text FILE or "
                "--data-tokens FILE.bin (a token stream), or --data-x X.npy [--data-y Y.npy] "
                "(tensors)");
  if ((data != NULL) + tensors + (text != NULL) + tokens > 1)
    error_usage("run: two kinds of data: give --data (words), --text or --data-tokens (a "
                "token stream), or --data-x/--data-y (tensors), not both");
  bool torch = rng && strncmp(rng, "torch", 5) == 0;
  if ((global || global_seed_set) && !torch)
    error_plain("run: --torch-global%s needs --rng torch", global ? "" : "-seed");
  if (torch && resume)
    error_plain("run: --rng torch starts from the notebook's params; it does not continue a "
                "checkpoint (--load, --resume)");
  if (tol < 0 || (tol > 0 && !mine))
    error_plain("run: --tol is --mine's tolerance (a positive number)");
  targv[targc++] = "--seed";
  targv[targc++] = arena_printf("%llu", (unsigned long long)c.seed);
  targv[targc] = NULL;

  /* an llm.c checkpoint sets the dims, V among them; else V follows the data
   * unless the user set it */
  Graph *g = cli_load(&c);
  if (!load && resume && save)
    load = save;
  if (load && llmc_set_dims(&c, g, load))
    g = cli_load(&c);
  bool user_v = false;
  for (int k = 0; k < c.novr; k++)
    user_v |= strcmp(c.ovr[k].name, "V") == 0;
  if (!user_v && (data || text)) {
    for (int k = 0; k < g->ndims; k++) {
      if (strcmp(g->dims[k].name, "V") != 0)
        continue;
      int v = data ? data_vocab(data) : text_vocab(text);
      if (g->dims[k].value != v) {
        if (comm_world()->rank == 0)
          fprintf(stderr, "note: V = %d from %s (the spec says %ld)\n", v, data ? data : text,
                  g->dims[k].value);
        if (c.novr == (int)(sizeof c.ovr / sizeof c.ovr[0]))
          error_plain("too many -D options");
        c.ovr[c.novr].name = "V";
        c.ovr[c.novr].value = v;
        c.ovr[c.novr].used = false;
        c.novr++;
        for (int j = 0; j < c.novr; j++)
          c.ovr[j].used = false;
        g = cli_load(&c);
      }
      break;
    }
  }
  for (int s = 0; s < 3; s++)
    for (int k = 0; k < 2; k++)
      if (tfile[s][k])
        run_check_npy(&c, g, k, tfile[s][k]);
  if (sync_bn && mine)
    error_plain("run: --sync-bn and --mine: your backward() does not sum batchnorm's column sums over "
                "the ranks; train it without --sync-bn");
  RunHooks h = {mine, rng, global, global_seed, tol, torch, sync_bn};
  return compile_and_call(&c, g, "bp_train_main", &h, targc, targv);
}

/* Compiles g with the trainer in memory and calls its entry point (bp_train_main,
 * bp_predict_main or bp_sample_main) on targv: predict and sample, without
 * run's --mine and --rng torch. */
int run_trainer(Cli *c, Graph *g, const char *entry, int targc, char **targv) {
  return compile_and_call(c, g, entry, &(RunHooks){0}, targc, targv);
}

/* run_trainer, with the hooks h hands the trainer before it starts */
static int compile_and_call(Cli *c, Graph *g, const char *entry, const RunHooks *h, int targc, char **targv) {
  grad_build(g);
  EmitOptions opt = {c->dtype, spec_prefix(c->spec), true, false, h->sync_bn};
  char *src = trainer_source(g, &opt);
  Jit *j = jit_compile(src, c->spec);
  TrainMain *fn = (TrainMain *)jit_symbol(j, entry);
  TrainSetComm *set_comm = (TrainSetComm *)jit_symbol(j, "bp_train_set_comm");
  const struct BpModel *m = jit_symbol(j, arena_printf("%s_model", opt.prefix));
  if (!fn || !set_comm || !m)
    die("the compiled trainer lacks %s, bp_train_set_comm or %s_model", entry, opt.prefix);
  set_comm(comm_world());
  TrainHooks *hooks = (TrainHooks *)jit_symbol(j, "bp_train_hooks");
  if (!hooks)
    die("the compiled trainer lacks bp_train_hooks");
  const char *prog = h->torch ? torch_prog(g, strcmp(h->rng, "torch") == 0, h->global, h->global_seed) : NULL;
  Mine *mi = NULL;
  if (h->mine) {
    MineOpts mo = {c->dtype, h->tol};
    mi = mine_load(g, &mo, m, h->mine, read_src(h->mine)->text);
  }
  hooks(mi ? mine_hook : NULL, mi, prog);
  fflush(stdout);
  int rc = mi ? mine_train(mi, (int (*)(const void *, int, char **))fn, m, targc, targv)
              : fn(m, targc, targv);
  fflush(stdout);
  if (mi)
    mine_free(mi);
  jit_free(j);
  comm_finish();
  return rc;
}
