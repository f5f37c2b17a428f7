/* trainer.c: the training program that drives an emitted model through the
 * BpModel ABI (runtime/bp_runtime.h): parse options, load the data, train,
 * calibrate batchnorm, evaluate, sample.
 *
 * It is appended to the emitted model, after the BpModel definition, both for
 * gcc (`bpgen SPEC --trainer -o train.c`, which adds a main()) and for libtcc
 * (`bpgen run`, which calls bp_train_main directly), so the two behave the
 * same.  Plain C99 with POSIX (fsync, rename, isatty): gcc's default gnu mode
 * and tcc both accept it.  Everything here is static except bp_train_main,
 * which never exits the process: errors longjmp back to it, it frees what it
 * allocated and returns 1.
 *
 * Data (words, one per line): '\r' before '\n' and a missing final newline are
 * accepted, empty lines are skipped, and a word may hold printable ASCII except
 * '.' and space (anything else is an error naming file:line).  The vocabulary
 * is '.' (index 0, the separator) then the characters of the data in byte
 * order.  Words are shuffled as the lecture shuffles them -- Python's
 * random.seed(42); random.shuffle(words) -- by a Mersenne Twister (MT19937,
 * seeded like CPython's random.seed(int)) and CPython's shuffle algorithm, so
 * the split is the lecture's own (--split-seed N changes the 42), then split
 * by word: the first int(0.8 n) train, up to int(0.9 n) dev, the rest test.  Each word
 * of length L yields L+1 examples: a context of T indices padded with '.'
 * and the next index, the last one '.'.  Minibatch rows are drawn with
 * replacement, row = next() mod ntrain, from a BpRng seeded with seed+2.
 * Samples use a BpRng seeded with seed+10 (the lecture's generator offset).
 *
 * Sequences (makemore.py's CharDataset), when the model's two inputs are
 * int[B,T] (X then Y in the spec's order) and the logits [B,T,V] or [B*T,V]:
 * --data words as above, each word one row: x = [0, w1..wn, 0...], y = [w1..wn,
 * 0, -1...] (-1: ignored by the loss); T must be at least the longest word + 1.
 * The split is makemore's: rp = torch.randperm(n) after torch.manual_seed(S)
 * (S = --split-seed, default 3407), reproduced bit for bit (MT19937 seeded as
 * PyTorch's CPU generator, ATen's randperm_cpu swaps); the last min(1000,
 * int(n * 0.1)) words of rp are the test set, reported as "test loss".  Rows
 * are drawn as for contexts.  The model's loss must be the mean over the valid
 * positions of its batch (cross-entropy with ignore_index -1): checked before
 * training; the loss over a split weighs each batch by its valid positions.
 * Samples: B words at a time, each from the logits at its last position.
 *
 * Token streams (X, Y int[B,T]): --text FILE (token i the i-th smallest of its
 * distinct bytes; the first 90% train, the rest dev) or llm.c's token files
 * --data-tokens F.bin [--val-tokens F.bin] (256 int32: 20240520, 1, count;
 * then count uint16 tokens, each below V).  A batch is a window of B*T+1
 * tokens, X row b its tokens b*T.. and Y the same shifted by one, windows
 * advancing by B*T (llm.c's DataLoader).  Training draws the windows in
 * llm.c's shuffled order (each epoch a random_permutation from an MT19937
 * seeded with 42); dev windows are all taken in order.  --sample-len tokens
 * are sampled after the start token 0, from the last T at most.
 *
 * Optimiser: sgd (the model's sgd_step) or AdamW as torch.optim.AdamW
 * (tr_adamw), after --clip (clip_grad_norm_), at the rate of --lr-schedule
 * with --warmup (tr_lr_at).  The schedule depends on --steps: a run resumed
 * with the same --steps is exact; changing --steps changes the cosine curve.
 *
 * Tensor data (models that are not character models): --data-x X.npy and
 * --data-y Y.npy are the training split, --dev-x/--dev-y and --test-x/--test-y
 * the optional dev and test splits.  The model's inputs (BP_INPUT tensors, in
 * the table's order, i.e. the spec's) are fed from them: the first from the -x
 * file, the second from the -y file (a model with one input takes only -x
 * files; more than two inputs are not supported).  Each input's first axis is
 * the batch B; each file's first axis is the example axis and the rest of its
 * shape must equal the input's shape without B.  Files are NumPy .npy version
 * 1.0, 2.0 or 3.0, C or Fortran order, little-endian '<f4' '<f8' '<i4' '<i8' or
 * '|u1' (runtime/npy_parse.h reads the header, as bpgen itself does);
 * int inputs take only the int types, float inputs any (converted to the
 * model's float type, and must be finite).  Int inputs are indices: negative
 * values are rejected, and the second input, when it is int[B] and the model
 * has logits [B,K], must be below K (the class of each example).  Before
 * training every example of every split goes through the model's forward once,
 * so an index the trainer cannot see (a gather) is reported as file, row and
 * position instead of a NaN loss later, and an example whose loss is NaN for
 * another reason names the first non-finite tensor, as training does.  Minibatches are drawn as for words (rows with
 * replacement, BpRng seeded with seed+2), the dev and test losses are exact
 * means over their splits, and nothing is sampled.
 *
 * Checkpoints (--save, --load, --resume) are uncompressed .npz files: a zip
 * of stored (method 0) .npy entries that numpy.load reads without bpgen:
 *   step (int64)     steps done        rng (uint64)   minibatch RNG state
 *   seed (uint64)    the run's seed    vocab (uint8)  itos, '.' first
 *   adamw_t (int64)  AdamW updates done (adamw only)
 *   <param>          every param, with its shape and the model's float type
 *   <name>.mean/.var batchnorm statistics (BP_STAT tensors)
 *   adamw.m.<param>, adamw.v.<param>   AdamW moments (adamw only)
 * Each entry carries a CRC-32 that loading checks.  A checkpoint is written to
 * a temporary file FILE.tmpPID in the same directory, fsync'ed, renamed over
 * the old one, and the directory is fsync'ed: a kill leaves the old or the new
 * file.  Params or moments holding a NaN or Inf are never written.  Before
 * training, --save FILE must name a regular file or nothing, in a directory
 * that takes new files, and the run holds FILE.lock (flock) to its end: a
 * second run saving to FILE is refused; temporary files that killed runs left
 * are removed then.  The --log is flushed before each checkpoint and, when a
 * run continues from one, cut back to the checkpoint's step (a killed run may
 * have logged later steps, the last line torn).
 *
 * llm.c's GPT-2 checkpoints (runtime/llmc_ckpt.h): --save FILE.bin writes the
 * params in its format (fp32; no step, RNG or moments), --load reads a file
 * that starts with its magic (20240326) whatever its name, params only, after
 * checking the header against the model's dims and param shapes
 * (tr_llmc_match).  `bpgen run` compiles the spec at the checkpoint's dims.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../runtime/npy_parse.h"   /* pasted here by scripts/embed.sh */
#include "../runtime/llmc_ckpt.h"   /* likewise */

enum { TR_SPLITS = 3, TR_MAXSAMPLE = 200 };
enum { TR_SCHED_STEP, TR_SCHED_COSINE, TR_SCHED_CONSTANT };   /* --lr-schedule */
/* what the trainer feeds (Tr.mode): the lecture's contexts (X int[B,T], Y
 * int[B]); makemore's sequences (X, Y int[B,T], a word a row); a token
 * stream (X, Y int[B,T], windows of T+1 tokens); tensors from .npy files */
enum { TR_CTX, TR_SEQ, TR_STREAM, TR_TENSOR };

typedef struct TrOpts {
  const char *data;        /* --data FILE: words, one per line */
  const char *log;         /* --log FILE: CSV step,loss,dev_loss */
  const char *save;        /* --save FILE: checkpoint written at the end (and --save-every) */
  const char *load;        /* --load FILE: checkpoint to continue from */
  long steps;              /* --steps N (total, counting loaded steps) */
  long decay_at;           /* --decay-at N: lr/10 from this step (default steps/2) */
  long eval_every;         /* --eval-every N: dev loss every N steps (0: never) */
  long print_every;        /* --print-every N */
  long save_every;         /* --save-every N */
  long samples;            /* --samples N */
  double lr, wd, beta1, beta2, eps;
  int adamw, quiet, resume, lr_set;
  int schedule;            /* --lr-schedule step|cosine|constant (TR_SCHED_*) */
  long warmup;             /* --warmup N: linear warmup steps */
  double lr_min;           /* --lr-min X: the cosine schedule's floor */
  double clip;             /* --clip X: gradient clipping by global norm (0: none) */
  double bn_momentum;      /* --bn-stats running: --bn-momentum X (0: calibrate instead) */
  double temperature;      /* --temperature X: sampling (default 1) */
  long top_k;              /* --top-k K: sample among the K largest logits (0: all) */
  long sample_len;         /* --sample-len N: tokens sampled from a stream model */
  const char *text;        /* --text FILE: a character-level token stream */
  const char *tokens[2];   /* --data-tokens / --val-tokens FILE.bin: llm.c token files */
  int split_seed_set;
  uint64_t seed;
  uint32_t split_seed;     /* --split-seed N: Python random.seed for the shuffle (42) */
  const char *tfile[TR_SPLITS][2];  /* tensor data: --data-x/-y, --dev-x/-y, --test-x/-y */
  int samples_set;         /* --samples given (a note with tensor data) */
} TrOpts;

typedef struct TrWord { const char *s; size_t len; } TrWord;
typedef struct TrMt { uint32_t s[624]; int i; } TrMt;   /* MT19937 (tr_mt_next) */

typedef struct TrSplit {
  uint8_t *x;              /* [n, T] contexts (indices < 95: printable ASCII and '.') */
  uint8_t *y;              /* [n] next index; bytes, not int32: a quarter of the pages
                            * to fault in before the first step */
  size_t n, nwords;
  unsigned char *td[2];    /* tensor data: n rows of each input, rowbytes[k] each */
  int8_t *sx, *sy;         /* sequences: [n, T] inputs and targets (-1: ignored) */
  uint16_t *tok;           /* stream: ntok tokens; n = (ntok-1)/(B*T) windows of B*T+1 */
  size_t ntok;
  const char *file;        /* stream: the file the tokens came from */
} TrSplit;

typedef struct Tr {
  const BpModel *m;
  TrOpts o;
  jmp_buf jb;
  const BpTensor *tx, *ty, *tlogits;
  int B, T, V;
  size_t esize;            /* bytes per float element */
  char itos[256];
  int stoi[256];
  int nvocab;
  unsigned char *text;     /* the data file */
  TrWord *words;
  size_t nwords;
  TrSplit split[TR_SPLITS];
  int tensor;              /* tensor data (--data-x) rather than words */
  int mode;                /* TR_CTX, TR_SEQ, TR_STREAM or TR_TENSOR */
  int nin;                 /* tensor data: inputs fed (1 or 2) */
  const BpTensor *tin[2];  /* tensor data: the inputs, in table order */
  size_t rowbytes[2];      /* tensor data: bytes of one example of each input */
  unsigned char *npybuf;   /* tensor data: the .npy file being read */
  void *state;
  void *mom_m, *mom_v;     /* AdamW moments, [nparam] of the model's float type */
  long adamw_t;
  size_t *idx;             /* [B] minibatch rows */
  BpRng batch_rng;
  long step;               /* steps done */
  FILE *in, *log, *ck;
  char *tmpname;           /* checkpoint being written */
  char *lockname;          /* --save FILE.lock, held (flock) while the run lives */
  int lockfd, locked;
  unsigned char *logbuf;   /* --log FILE being cut back on resume */
  unsigned char *ckbuf;    /* checkpoint being read */
  unsigned char *membuf;   /* one entry being written */
  double *probs;
  unsigned char *tokbuf;   /* stream: the file being read */
  uint32_t *perm;          /* stream: this epoch's window order (llm.c's shuffle) */
  long perm_epoch;         /* the epoch perm holds (when perm_epoch_set) */
  int perm_epoch_set;
  TrMt perm_mt;            /* stream: llm.c's shuffle generator (seed 42) */
  int32_t *samp;           /* sampling: the sequences being generated */
  const TrWord **seqorder; /* sequences: the words in randperm order */
  int tty;
  double t0;               /* training start */
  long first_step;
} Tr;

static char tr_errbuf[1024];     /* the last error message (for tests) */
static FILE *tr_out;             /* results: losses, samples (stdout unless set) */

static void tr_fail(Tr *tr, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(tr_errbuf, sizeof tr_errbuf, fmt, ap);
  va_end(ap);
  fflush(tr_out);
  if (tr->tty && !tr->o.quiet)
    fputc('\n', stderr);
  fprintf(stderr, "bpgen: error: %s\n", tr_errbuf);   /* one prefix, as bpgen's own errors */
  longjmp(tr->jb, 1);
}

static void *tr_alloc(Tr *tr, size_t n) {
  void *p = calloc(n ? n : 1, 1);
  if (!p)
    tr_fail(tr, "out of memory (%lu bytes)", (unsigned long)n);
  return p;
}

static double tr_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int tr_finite(double x) { return x == x && x - x == 0.0; }

/* little-endian fields of zip and token-file headers */
static void tr_put16(unsigned char *p, unsigned v) { p[0] = v & 0xFF; p[1] = (v >> 8) & 0xFF; }
static void tr_put32(unsigned char *p, uint32_t v) { tr_put16(p, v & 0xFFFF); tr_put16(p + 2, v >> 16); }
static unsigned tr_get16(const unsigned char *p) { return p[0] | (unsigned)p[1] << 8; }
static uint32_t tr_get32(const unsigned char *p) { return tr_get16(p) | (uint32_t)tr_get16(p + 2) << 16; }

/* ---- options ----------------------------------------------------------------- */

static const char tr_usage[] =
  "trainer options:\n"
  "  --data FILE         words, one per line (a character model): the lecture's\n"
  "                      contexts when the model's inputs are X int[B,T] and\n"
  "                      Y int[B]; makemore's sequences (a word a row, Y -1\n"
  "                      past its end) when both are int[B,T]\n"
  "  --text FILE         a token stream (X, Y int[B,T]): the file's bytes, the\n"
  "                      vocabulary its distinct bytes in order; the last 10%\n"
  "                      is the dev split\n"
  "  --data-tokens F.bin a token stream from llm.c's token file (uint16 tokens\n"
  "  --val-tokens F.bin  after a 256-int32 header); --val-tokens the dev split\n"
  "  --data-x X.npy      or tensors: the training split of the model's first input\n"
  "  --data-y Y.npy      and of its second (inputs in the spec's order; each\n"
  "                      file's first axis is the example axis, the rest the\n"
  "                      input's shape without the batch B)\n"
  "  --dev-x/--dev-y F   the dev split (optional), as --data-x/--data-y\n"
  "  --test-x/--test-y F the test split (optional)\n"
  "  --steps N           training steps (default 200000, the lecture's)\n"
  "  --lr X              learning rate (default 0.1 for sgd, 0.001 for adamw)\n"
  "  --lr-schedule S     step (default: lr/10 from --decay-at N on, default half\n"
  "                      of --steps), cosine (down to --lr-min X, default 0,\n"
  "                      at the last step) or constant\n"
  "  --warmup N          linear warmup over the first N steps: lr*(i+1)/N\n"
  "  --optimizer sgd|adamw   (adamw as torch.optim.AdamW: --beta1 0.9 --beta2\n"
  "                      0.999 --eps 1e-8 --weight-decay 0 by default, as llm.c;\n"
  "                      makemore: --lr 5e-4 --beta2 0.99 --weight-decay 0.01)\n"
  "  --clip X            scale the gradients to global norm X when above it\n"
  "  --bn-stats S        batchnorm statistics for evaluation: calibrate (default,\n"
  "                      the lecture's: over the training split after training)\n"
  "                      or running (part 5's BatchNorm1d: each training step\n"
  "                      moves them by --bn-momentum X, default 0.1; var from 1)\n"
  "  --seed N            init (seed), batches (seed+2), samples (seed+10)\n"
  "  --split-seed N      shuffle of the words before the 80/10/10 split, as Python's\n"
  "                      random.seed(N); random.shuffle(words) (default 42, the lecture's);\n"
  "                      sequences: torch.manual_seed(N); torch.randperm (default\n"
  "                      3407, makemore's), the last min(1000, 10%) words the test set\n"
  "  --eval-every N      dev loss every N steps (default 0: only at the end)\n"
  "  --print-every N     loss line every N steps (default min(10000, steps/10))\n"
  "  --log FILE          CSV step,loss,dev_loss of every step (see bpgen plot)\n"
  "  --save FILE         checkpoint (.npz) at the end, and every --save-every N steps\n"
  "                      (FILE.bin: llm.c's GPT-2 checkpoint, params only, fp32)\n"
  "  --load FILE         continue from a checkpoint (or start from llm.c's, by its\n"
  "                      magic: its params only)\n"
  "  --resume            --load the --save file when it exists\n"
  "  --samples N         words sampled after training (default 20; words only)\n"
  "  --sample-len N      tokens sampled from a stream model (default 200)\n"
  "  --temperature X     sampling: logits / X (default 1)\n"
  "  --top-k K           sampling: only the K most likely tokens (default 0: all)\n"
  "  --quiet             no progress or loss lines, only the results\n"
  "  --threads N         threads of the heavy kernels (default 1); results are\n"
  "                      bit-identical for every N\n";

static long tr_long(Tr *tr, const char *opt, const char *s, long lo) {
  char *end;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (errno || end == s || *end || v < lo)
    tr_fail(tr, "%s: '%s' is not a whole number >= %ld", opt, s, lo);
  return v;
}

static double tr_double(Tr *tr, const char *opt, const char *s) {
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  if (errno || end == s || *end || !tr_finite(v) || v < 0)
    tr_fail(tr, "%s: '%s' is not a finite number >= 0", opt, s);
  return v;
}

/* The tensor-data file options; returns 1 when `a` is one of them. */
static int tr_tensor_opt(Tr *tr, const char *a, const char *v) {
  static const char *const names[TR_SPLITS][2] = {
    {"--data-x", "--data-y"}, {"--dev-x", "--dev-y"}, {"--test-x", "--test-y"}};
  for (int s = 0; s < TR_SPLITS; s++)
    for (int k = 0; k < 2; k++)
      if (strcmp(a, names[s][k]) == 0) {
        tr->o.tfile[s][k] = v;
        return 1;
      }
  return 0;
}

/* Words (--data) or tensors (--data-x ...), not both; each split's files
 * together.  Sets tr->tensor. */
static void tr_tensor_opts_check(Tr *tr) {
  TrOpts *o = &tr->o;
  static const char *const split[TR_SPLITS] = {"--data", "--dev", "--test"};
  int any = 0;
  for (int s = 0; s < TR_SPLITS; s++)
    any |= o->tfile[s][0] || o->tfile[s][1];
  if (o->tokens[1] && !o->tokens[0])
    tr_fail(tr, "--val-tokens needs --data-tokens (the training split)");
  int nsrc = (o->data != NULL) + any + (o->text != NULL) + (o->tokens[0] != NULL);
  if (nsrc > 1)
    tr_fail(tr, "two kinds of data: give --data (words), --text or --data-tokens (a token "
            "stream), or --data-x/--data-y (tensors), not both");
  if (!any) {
    if (!o->data && !o->text && !o->tokens[0])
      tr_fail(tr, "no data: give --data FILE (words, one per line), --text FILE or "
              "--data-tokens FILE.bin (a token stream), or --data-x X.npy [--data-y Y.npy] "
              "(tensors)");
    return;
  }
  for (int s = 0; s < TR_SPLITS; s++)
    if (o->tfile[s][1] && !o->tfile[s][0])
      tr_fail(tr, "%s-y needs %s-x too (the model's first input)", split[s], split[s]);
  for (int s = 1; s < TR_SPLITS; s++)
    if (o->tfile[s][0] && !o->tfile[0][0])
      tr_fail(tr, "%s-x needs --data-x (the training split)", split[s]);
  if (!o->tfile[0][0])
    tr_fail(tr, "no training data: give --data-x X.npy (and --data-y Y.npy)");
  tr->tensor = 1;
  tr->mode = TR_TENSOR;
  if (o->samples_set && o->samples > 0)
    fprintf(stderr, "note: --samples ignored: sampling needs words (--data); tensor data "
            "has nothing to sample\n");
  o->samples = 0;
}

/* Returns 2 for --help (usage printed), else 0. */
static int tr_parse(Tr *tr, int argc, char **argv) {
  TrOpts *o = &tr->o;
  o->steps = 200000;
  o->decay_at = -1;
  o->print_every = -1;
  o->samples = 20;
  o->lr = 0.1;
  o->beta1 = 0.9;
  o->beta2 = 0.999;
  o->eps = 1e-8;
  o->seed = 2147483647u;
  o->split_seed = 42;
  o->temperature = 1;
  o->sample_len = 200;
  double bn_m = 0.1;
  int bn_running = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      fputs(tr_usage, tr_out);
      return 2;
    }
    if (strcmp(a, "--quiet") == 0) {
      o->quiet = 1;
      continue;
    }
    if (strcmp(a, "--resume") == 0) {
      o->resume = 1;
      continue;
    }
    if (a[0] != '-' || a[1] != '-')
      tr_fail(tr, "unexpected argument '%s' (see --help)", a);
    if (i + 1 >= argc)
      tr_fail(tr, "%s needs a value (see --help)", a);
    const char *v = argv[++i];
    if (strcmp(a, "--data") == 0) o->data = v;
    else if (strcmp(a, "--text") == 0) o->text = v;
    else if (strcmp(a, "--data-tokens") == 0) o->tokens[0] = v;
    else if (strcmp(a, "--val-tokens") == 0) o->tokens[1] = v;
    else if (strcmp(a, "--warmup") == 0) o->warmup = tr_long(tr, a, v, 0);
    else if (strcmp(a, "--lr-min") == 0) o->lr_min = tr_double(tr, a, v);
    else if (strcmp(a, "--clip") == 0) {
      o->clip = tr_double(tr, a, v);
      if (o->clip == 0)
        tr_fail(tr, "--clip: 0 would zero every gradient; give a norm > 0");
    }
    else if (strcmp(a, "--temperature") == 0) {
      o->temperature = tr_double(tr, a, v);
      if (o->temperature == 0)
        tr_fail(tr, "--temperature: 0 divides the logits by zero; give a value > 0");
    }
    else if (strcmp(a, "--top-k") == 0) o->top_k = tr_long(tr, a, v, 0);
    else if (strcmp(a, "--sample-len") == 0) o->sample_len = tr_long(tr, a, v, 0);
    else if (strcmp(a, "--lr-schedule") == 0) {
      if (strcmp(v, "step") == 0) o->schedule = TR_SCHED_STEP;
      else if (strcmp(v, "cosine") == 0) o->schedule = TR_SCHED_COSINE;
      else if (strcmp(v, "constant") == 0) o->schedule = TR_SCHED_CONSTANT;
      else tr_fail(tr, "--lr-schedule: '%s' is not step, cosine or constant", v);
    }
    else if (strcmp(a, "--log") == 0) o->log = v;
    else if (strcmp(a, "--save") == 0) o->save = v;
    else if (strcmp(a, "--load") == 0) o->load = v;
    else if (strcmp(a, "--steps") == 0) o->steps = tr_long(tr, a, v, 0);
    else if (strcmp(a, "--decay-at") == 0) o->decay_at = tr_long(tr, a, v, 0);
    else if (strcmp(a, "--eval-every") == 0) o->eval_every = tr_long(tr, a, v, 0);
    else if (strcmp(a, "--print-every") == 0) o->print_every = tr_long(tr, a, v, 1);
    else if (strcmp(a, "--save-every") == 0) o->save_every = tr_long(tr, a, v, 0);
    else if (strcmp(a, "--samples") == 0) { o->samples = tr_long(tr, a, v, 0); o->samples_set = 1; }
    else if (tr_tensor_opt(tr, a, v)) continue;
    else if (strcmp(a, "--lr") == 0) { o->lr = tr_double(tr, a, v); o->lr_set = 1; }
    else if (strcmp(a, "--weight-decay") == 0) o->wd = tr_double(tr, a, v);
    else if (strcmp(a, "--beta1") == 0) o->beta1 = tr_double(tr, a, v);
    else if (strcmp(a, "--beta2") == 0) o->beta2 = tr_double(tr, a, v);
    else if (strcmp(a, "--eps") == 0) o->eps = tr_double(tr, a, v);
    else if (strcmp(a, "--threads") == 0) {
      long n = tr_long(tr, a, v, 1);
      if (n > 64)
        tr_fail(tr, "--threads: %ld is more than 64", n);
#ifdef BP_KERNEL_LIST
      bp_set_threads((int)n);   /* the kernels' pool: bpgen's in memory, the file's own with gcc */
#endif
    }
    else if (strcmp(a, "--split-seed") == 0) {
      long n = tr_long(tr, a, v, 0);
      if (n > 4294967295L)
        tr_fail(tr, "--split-seed: %ld is above 2^32-1", n);
      o->split_seed = (uint32_t)n;
      o->split_seed_set = 1;
    }
    else if (strcmp(a, "--seed") == 0) {
      char *end;
      errno = 0;
      unsigned long long s = strtoull(v, &end, 10);
      if (errno || end == v || *end || v[0] == '-')
        tr_fail(tr, "--seed: '%s' is not a non-negative whole number", v);
      o->seed = (uint64_t)s;
    } else if (strcmp(a, "--bn-stats") == 0) {
      if (strcmp(v, "calibrate") == 0) bn_running = 0;
      else if (strcmp(v, "running") == 0) bn_running = 1;
      else tr_fail(tr, "--bn-stats: '%s' is neither calibrate nor running", v);
    } else if (strcmp(a, "--bn-momentum") == 0) {
      bn_m = tr_double(tr, a, v);
      if (!(bn_m > 0 && bn_m <= 1))
        tr_fail(tr, "--bn-momentum: %s is not in (0, 1]", v);
    } else if (strcmp(a, "--optimizer") == 0) {
      if (strcmp(v, "sgd") == 0) o->adamw = 0;
      else if (strcmp(v, "adamw") == 0) o->adamw = 1;
      else tr_fail(tr, "--optimizer: '%s' is neither sgd nor adamw", v);
    } else {
      tr_fail(tr, "unknown option '%s' (see --help)", a);
    }
  }
  tr_tensor_opts_check(tr);
  if (o->adamw && !o->lr_set)
    o->lr = 0.001;
  if (o->beta1 >= 1 || o->beta2 >= 1)
    tr_fail(tr, "--beta1 and --beta2 must be below 1");
  if (o->decay_at < 0)
    o->decay_at = o->steps / 2;
  if (o->lr_min > o->lr && o->schedule == TR_SCHED_COSINE)
    tr_fail(tr, "--lr-min %g is above --lr %g", o->lr_min, o->lr);
  if (o->print_every < 0) {
    o->print_every = o->steps / 10 < 10000 ? o->steps / 10 : 10000;
    if (o->print_every < 1)
      o->print_every = 1;
  }
  if (o->resume && !o->save)
    tr_fail(tr, "--resume needs --save FILE (the checkpoint to continue)");
  o->bn_momentum = bn_running ? bn_m : 0;
  if (o->resume && o->load)
    tr_fail(tr, "give --resume or --load, not both");
  if (o->resume && access(o->save, F_OK) == 0)
    o->load = o->save;
  return 0;
}

/* ---- the model's tensors --------------------------------------------------- */

static double tr_get(const Tr *tr, const BpTensor *t, size_t i) {
  const char *p = (const char *)tr->state + t->offset;
  if (t->dtype == BP_F64) return ((const double *)p)[i];
  if (t->dtype == BP_F32) return ((const float *)p)[i];
  return ((const int32_t *)p)[i];
}

static int tr_isfloat(const BpTensor *t) { return t->dtype == BP_F32 || t->dtype == BP_F64; }

/* Tensor data: the model's inputs in table order, the first fed from the -x
 * files, the second (if any) from the -y files; B is the first input's first
 * axis.  V is the logits' last dim when the model has [B,K] logits, else 0. */
static void tr_find_inputs(Tr *tr) {
  const BpModel *m = tr->m;
  const TrOpts *o = &tr->o;
  tr->esize = m->dtype == BP_F64 ? sizeof(double) : sizeof(float);
  for (int i = 0; i < m->ntensors; i++) {
    const BpTensor *t = &m->tensors[i];
    if (t->kind != BP_INPUT)
      continue;
    if (tr->nin == 2)
      tr_fail(tr, "model %s: more than two inputs (%s, %s, %s): tensor data feeds two "
              "(--data-x, --data-y)", m->name, tr->tin[0]->name, tr->tin[1]->name, t->name);
    if (t->rank == 0 || t->dims[0] < 1)
      tr_fail(tr, "model %s: input %s is a scalar: tensor data needs the batch as its first axis",
              m->name, t->name);
    tr->tin[tr->nin++] = t;
  }
  if (tr->nin == 0)
    tr_fail(tr, "model %s has no inputs to feed", m->name);
  tr->B = tr->tin[0]->dims[0];
  for (int k = 0; k < tr->nin; k++) {
    const BpTensor *t = tr->tin[k];
    if (t->dims[0] != tr->B)
      tr_fail(tr, "model %s: input %s has %d rows but %s has %d: both need the batch first",
              m->name, t->name, t->dims[0], tr->tin[0]->name, tr->B);
    tr->rowbytes[k] = t->numel / (size_t)tr->B * (t->dtype == BP_I32 ? sizeof(int32_t) : tr->esize);
  }
  if (m->logits_index >= 0) {
    tr->tlogits = &m->tensors[m->logits_index];
    if (tr->tlogits->rank == 2 && tr->tlogits->dims[0] == tr->B)
      tr->V = tr->tlogits->dims[1];
  }
  static const char *const split[TR_SPLITS] = {"--data", "--dev", "--test"};
  for (int s = 0; s < TR_SPLITS; s++) {
    if (tr->nin == 1 && o->tfile[s][1])
      tr_fail(tr, "model %s has one input (%s): give %s-x only, not %s-y", m->name,
              tr->tin[0]->name, split[s], split[s]);
    if (tr->nin == 2 && o->tfile[s][0] && !o->tfile[s][1])
      tr_fail(tr, "model %s has two inputs (%s, %s): give %s-y too", m->name,
              tr->tin[0]->name, tr->tin[1]->name, split[s]);
  }
}

/* The lecture's contexts: X the int input [B,T], Y the int input [B],
 * logits [B,V].  Sequences and streams: X and Y the model's two int[B,T]
 * inputs in the spec's order, logits [B,T,V] (or [B*T,V]: the same memory). */
static void tr_find_tensors(Tr *tr) {
  const BpModel *m = tr->m;
  if (tr->tensor) {
    tr_find_inputs(tr);
    return;
  }
  const BpTensor *in[2] = {NULL, NULL};
  int nin = 0;
  for (int i = 0; i < m->ntensors; i++) {
    const BpTensor *t = &m->tensors[i];
    if (t->kind != BP_INPUT)
      continue;
    if (t->dtype != BP_I32)
      tr_fail(tr, "model %s: input %s is not int: the words trainer feeds only int[B,T] "
              "contexts and int[B] or int[B,T] targets", m->name, t->name);
    if (nin == 2 || (t->rank != 1 && t->rank != 2))
      tr_fail(tr, "model %s: input %s: expected one int[B,T] input and one int[B] or "
              "int[B,T] input", m->name, t->name);
    in[nin++] = t;
  }
  int seq = nin == 2 && in[0]->rank == 2 && in[1]->rank == 2;
  if (seq) {
    tr->tx = in[0];
    tr->ty = in[1];
  } else {
    for (int k = 0; k < nin; k++) {
      if (in[k]->rank == 2 && !tr->tx)
        tr->tx = in[k];
      else if (in[k]->rank == 1 && !tr->ty)
        tr->ty = in[k];
    }
  }
  if (!tr->tx || !tr->ty)
    tr_fail(tr, "model %s: the words trainer needs inputs X : int[B,T] and Y : int[B] (the "
            "lecture's contexts) or X, Y : int[B,T] (sequences)", m->name);
  tr->B = tr->tx->dims[0];
  tr->T = tr->tx->dims[1];
  if (tr->ty->dims[0] != tr->B)
    tr_fail(tr, "model %s: %s has %d rows but %s has %d", m->name, tr->tx->name, tr->B,
            tr->ty->name, tr->ty->dims[0]);
  if (seq && tr->ty->dims[1] != tr->T)
    tr_fail(tr, "model %s: %s is [%d, %d] but %s is [%d, %d]: sequence targets have the "
            "inputs' shape", m->name, tr->ty->name, tr->B, tr->ty->dims[1], tr->tx->name,
            tr->B, tr->T);
  if ((tr->o.text || tr->o.tokens[0]) && !seq)
    tr_fail(tr, "model %s: a token stream (%s) needs inputs X, Y : int[B,T] (targets at "
            "every position); %s is int[%d]", m->name, tr->o.text ? "--text" : "--data-tokens",
            tr->ty->name, tr->ty->dims[0]);
  tr->mode = !seq ? TR_CTX : tr->o.data ? TR_SEQ : TR_STREAM;
  if (m->logits_index < 0)
    tr_fail(tr, "model %s: no logits tensor (cross_entropy's input) to sample from", m->name);
  tr->tlogits = &m->tensors[m->logits_index];
  const BpTensor *l = tr->tlogits;
  if (!seq) {
    if (l->rank != 2 || l->dims[0] != tr->B)
      tr_fail(tr, "model %s: logits %s should be [B,V]", m->name, l->name);
    tr->V = l->dims[1];
  } else {
    if (!(l->rank == 3 && l->dims[0] == tr->B && l->dims[1] == tr->T) &&
        !(l->rank == 2 && l->dims[0] == tr->B * tr->T))
      tr_fail(tr, "model %s: logits %s should be [B,T,V] (or [B*T,V]) for sequences", m->name,
              l->name);
    tr->V = l->dims[l->rank - 1];
  }
  tr->esize = m->dtype == BP_F64 ? sizeof(double) : sizeof(float);
}

/* ---- data ------------------------------------------------------------------ */

/* What st is when it is not a regular file ("a directory", ...), else NULL. */
static const char *tr_not_regular(const struct stat *st) {
  if (S_ISREG(st->st_mode)) return NULL;
  if (S_ISDIR(st->st_mode)) return "a directory";
  if (S_ISCHR(st->st_mode)) return "a character device";
  if (S_ISBLK(st->st_mode)) return "a block device";
  if (S_ISFIFO(st->st_mode)) return "a FIFO";
  return "a special file";
}

/* The whole file, with a '\0' after it (*len bytes before that); into *buf,
 * which the caller frees (kept in Tr so a failure's cleanup finds it). */
static void tr_slurp(Tr *tr, const char *path, unsigned char **buf, size_t *len) {
  tr->in = fopen(path, "rb");
  if (!tr->in)
    tr_fail(tr, "%s: cannot open: %s", path, strerror(errno));
  struct stat st;
  if (fstat(fileno(tr->in), &st) == 0 && S_ISDIR(st.st_mode))   /* pipes are fine */
    tr_fail(tr, "%s: is a directory, not a file", path);
  size_t cap = 1 << 16, n = 0;
  *buf = tr_alloc(tr, cap);
  for (;;) {
    if (n + 1 >= cap) {
      unsigned char *nb = realloc(*buf, cap * 2);
      if (!nb)
        tr_fail(tr, "%s: out of memory", path);
      *buf = nb;
      cap *= 2;
    }
    size_t got = fread(*buf + n, 1, cap - 1 - n, tr->in);
    n += got;
    if (got == 0)
      break;
  }
  if (ferror(tr->in))
    tr_fail(tr, "%s: read error", path);
  fclose(tr->in);
  tr->in = NULL;
  (*buf)[n] = '\0';
  *len = n;
}

static void tr_read_words(Tr *tr, const char *path) {
  size_t len;
  tr_slurp(tr, path, &tr->text, &len);

  size_t nlines = 1;
  for (size_t i = 0; i < len; i++)
    nlines += tr->text[i] == '\n';
  tr->words = tr_alloc(tr, nlines * sizeof(TrWord));
  char *p = (char *)tr->text, *end = p + len;
  long line = 0;
  while (p < end) {
    line++;
    char *nl = memchr(p, '\n', (size_t)(end - p));
    char *e = nl ? nl : end;
    if (e > p && e[-1] == '\r')
      e--;
    for (char *c = p; c < e; c++) {
      unsigned char ch = (unsigned char)*c;
      if (ch < 0x21 || ch > 0x7e || ch == '.') {
        char what[32];
        if (ch > 0x20 && ch < 0x7f)
          snprintf(what, sizeof what, "character '%c'", ch);
        else
          snprintf(what, sizeof what, "byte 0x%02x%s", ch, ch == ' ' ? " (a space)" : "");
        tr_fail(tr, "%s:%ld: %s in a word: words hold printable ASCII except '.' and space",
                path, line, what);
      }
    }
    if (e > p) {
      tr->words[tr->nwords].s = p;
      tr->words[tr->nwords].len = (size_t)(e - p);
      tr->nwords++;
    }
    p = nl ? nl + 1 : end;
  }
  if (tr->nwords == 0)
    tr_fail(tr, "%s: no words (the file is empty or holds only empty lines)", path);
}

static void tr_vocab(Tr *tr) {
  int seen[256] = {0};
  for (size_t w = 0; w < tr->nwords; w++)
    for (size_t i = 0; i < tr->words[w].len; i++)
      seen[(unsigned char)tr->words[w].s[i]] = 1;
  for (int c = 0; c < 256; c++)
    tr->stoi[c] = -1;
  tr->itos[0] = '.';
  tr->stoi['.'] = 0;
  tr->nvocab = 1;
  for (int c = 0; c < 256; c++)
    if (seen[c]) {
      tr->stoi[c] = tr->nvocab;
      tr->itos[tr->nvocab++] = (char)c;
    }
}

static void tr_build_split(Tr *tr, TrSplit *s, const TrWord *w, size_t nw) {
  int T = tr->T;
  size_t n = 0;
  for (size_t i = 0; i < nw; i++)
    n += w[i].len + 1;
  s->n = n;
  s->nwords = nw;
  s->x = tr_alloc(tr, n * (size_t)T);
  s->y = tr_alloc(tr, n);
  size_t r = 0;
  for (size_t i = 0; i < nw; i++) {
    uint8_t ctx[64];
    for (int t = 0; t < T; t++)
      ctx[t] = 0;
    for (size_t k = 0; k <= w[i].len; k++) {   /* plain loops: libtcc compiles this, and a
                                                  * libc call per example cost more */
      uint8_t ix = (uint8_t)(k < w[i].len ? tr->stoi[(unsigned char)w[i].s[k]] : 0);
      uint8_t *xr = s->x + r * (size_t)T;
      for (int t = 0; t < T; t++)
        xr[t] = ctx[t];
      s->y[r++] = ix;
      for (int t = 0; t + 1 < T; t++)
        ctx[t] = ctx[t + 1];
      ctx[T - 1] = ix;
    }
  }
}

/* The Mersenne Twister MT19937 as CPython's random module uses it, for the
 * lecture's shuffle.  random.seed(n) for 0 <= n < 2^32 is init_by_array with
 * the one key n; shuffle draws j = _randbelow(i + 1) for i from n-1 down to 1,
 * and _randbelow(m) takes k = bit_length(m) bits (getrandbits: the top k bits
 * of one 32-bit output), drawing again while the result is >= m. */

static void tr_mt_seed(TrMt *mt, uint32_t key) {
  uint32_t *s = mt->s;
  s[0] = 19650218u;
  for (int i = 1; i < 624; i++)
    s[i] = 1812433253u * (s[i - 1] ^ (s[i - 1] >> 30)) + (uint32_t)i;
  int i = 1;
  for (int k = 624; k > 0; k--) {      /* init_by_array, key length 1 */
    s[i] = (s[i] ^ ((s[i - 1] ^ (s[i - 1] >> 30)) * 1664525u)) + key;
    if (++i >= 624) { s[0] = s[623]; i = 1; }
  }
  for (int k = 623; k > 0; k--) {
    s[i] = (s[i] ^ ((s[i - 1] ^ (s[i - 1] >> 30)) * 1566083941u)) - (uint32_t)i;
    if (++i >= 624) { s[0] = s[623]; i = 1; }
  }
  s[0] = 0x80000000u;
  mt->i = 624;
}

static uint32_t tr_mt_next(TrMt *mt) {
  uint32_t *s = mt->s;
  if (mt->i >= 624) {   /* the next 624 words; k + 1 and k + 397 wrap without a division */
    for (int k = 0; k < 624; k++) {
      int k1 = k + 1 < 624 ? k + 1 : 0, k397 = k + 397 < 624 ? k + 397 : k + 397 - 624;
      uint32_t y = (s[k] & 0x80000000u) | (s[k1] & 0x7fffffffu);
      s[k] = s[k397] ^ (y >> 1) ^ ((y & 1u) ? 0x9908b0dfu : 0u);
    }
    mt->i = 0;
  }
  uint32_t y = s[mt->i++];
  y ^= y >> 11;
  y ^= (y << 7) & 0x9d2c5680u;
  y ^= (y << 15) & 0xefc60000u;
  return y ^ (y >> 18);
}

static uint32_t tr_mt_below(TrMt *mt, uint32_t m) {
  int k = 0;
  while (k < 32 && (m >> k) != 0)
    k++;
  for (;;) {
    uint32_t r = tr_mt_next(mt) >> (32 - k);
    if (r < m)
      return r;
  }
}

static void tr_load_data(Tr *tr) {
  if (tr->T > 64)
    tr_fail(tr, "context T = %d is longer than 64", tr->T);
  tr_read_words(tr, tr->o.data);
  tr_vocab(tr);
  TrMt mt;
  tr_mt_seed(&mt, tr->o.split_seed);
  for (size_t i = tr->nwords; i > 1; i--) {   /* CPython: for i in reversed(range(1, n)) */
    size_t j = (size_t)tr_mt_below(&mt, (uint32_t)i);
    TrWord t = tr->words[i - 1];
    tr->words[i - 1] = tr->words[j];
    tr->words[j] = t;
  }
  size_t n = tr->nwords, n1 = n * 8 / 10, n2 = n * 9 / 10;
  tr_build_split(tr, &tr->split[0], tr->words, n1);
  tr_build_split(tr, &tr->split[1], tr->words + n1, n2 - n1);
  tr_build_split(tr, &tr->split[2], tr->words + n2, n - n2);
  if (tr->split[0].n == 0)
    tr_fail(tr, "%s: %lu word%s: too few for a training split (80%% of the words)", tr->o.data,
            (unsigned long)n, n == 1 ? "" : "s");
  if (tr->nvocab != tr->V)
    tr_fail(tr, "%s has a vocabulary of %d ('.' and %d characters) but the model's %s "
            "have V = %d: use -D V=%d", tr->o.data, tr->nvocab, tr->nvocab - 1,
            tr->tlogits->name, tr->V, tr->nvocab);
}

/* MT19937 seeded as PyTorch's CPU generator (torch.manual_seed(n), n < 2^32)
 * and llm.c's manual_seed: init_genrand, the plain recurrence, no key array. */
static void tr_mt_init(TrMt *mt, uint32_t seed) {
  mt->s[0] = seed;
  for (int i = 1; i < 624; i++)
    mt->s[i] = 1812433253u * (mt->s[i - 1] ^ (mt->s[i - 1] >> 30)) + (uint32_t)i;
  mt->i = 624;
}

/* torch.randperm(n) on the CPU after torch.manual_seed(seed), for n below
 * 2^32/20 (ATen's randperm_cpu: for i < n-1, z = random() % (n-i), swap
 * r[i] and r[i+z]); makemore.py's split is the first draw after its seed. */
static void tr_torch_randperm(size_t *r, size_t n, uint32_t seed) {
  TrMt mt;
  tr_mt_init(&mt, seed);
  for (size_t i = 0; i < n; i++)
    r[i] = i;
  for (size_t i = 0; i + 1 < n; i++) {
    size_t z = (size_t)(tr_mt_next(&mt) % (uint32_t)(n - i));
    size_t t = r[i];
    r[i] = r[z + i];
    r[z + i] = t;
  }
}

/* makemore's rows: x = [0, w1..wn, 0...], y = [w1..wn, 0, -1...] over T. */
static void tr_build_seq(Tr *tr, TrSplit *s, const TrWord *const *w, size_t nw) {
  int T = tr->T;
  s->n = s->nwords = nw;
  s->sx = tr_alloc(tr, nw * (size_t)T);
  s->sy = tr_alloc(tr, nw * (size_t)T);
  for (size_t i = 0; i < nw; i++) {
    int8_t *x = s->sx + i * (size_t)T, *y = s->sy + i * (size_t)T;
    int len = (int)w[i]->len;
    for (int t = 0; t < T; t++) {
      int c = t < len ? tr->stoi[(unsigned char)w[i]->s[t]] : 0;
      x[t] = (int8_t)(t == 0 ? 0 : t <= len ? tr->stoi[(unsigned char)w[i]->s[t - 1]] : 0);
      y[t] = (int8_t)(t < len ? c : t == len ? 0 : -1);
    }
  }
}

/* makemore's data: the words of --data, their vocabulary as the lecture's,
 * split as makemore.py does: rp = torch.randperm(n) after
 * torch.manual_seed(--split-seed, default 3407); the last min(1000, int(n *
 * 0.1)) words of rp are the test set (split 1), the others in rp's order the
 * training set. */
static void tr_load_seq(Tr *tr) {
  const char *path = tr->o.data;
  if (!tr->o.split_seed_set)
    tr->o.split_seed = 3407;
  tr_read_words(tr, path);
  tr_vocab(tr);
  size_t n = tr->nwords, longest = 0;
  for (size_t i = 0; i < n; i++)
    if (tr->words[i].len > tr->words[longest].len)
      longest = i;
  int maxlen = (int)tr->words[longest].len;
  if (maxlen + 1 > tr->T)
    tr_fail(tr, "%s: the longest word (%.*s, %d characters) needs sequences of %d tokens (a "
            "start token and the word) but the model's %s has T = %d: use -D T=%d", path,
            maxlen > 40 ? 40 : maxlen, tr->words[longest].s, maxlen, maxlen + 1, tr->tx->name,
            tr->T, maxlen + 1);
  if (tr->nvocab != tr->V)
    tr_fail(tr, "%s has a vocabulary of %d ('.' and %d characters) but the model's %s "
            "have V = %d: use -D V=%d", path, tr->nvocab, tr->nvocab - 1, tr->tlogits->name,
            tr->V, tr->nvocab);
  if (tr->nvocab > 127)
    tr_fail(tr, "%s: a vocabulary of %d is above 127", path, tr->nvocab);
  size_t ntest = (size_t)((double)n * 0.1);
  if (ntest > 1000)
    ntest = 1000;
  if (n - ntest == 0)
    tr_fail(tr, "%s: %lu word%s: too few for a training split", path, (unsigned long)n,
            n == 1 ? "" : "s");
  size_t *rp = tr_alloc(tr, n * sizeof *rp);
  const TrWord **order = tr_alloc(tr, n * sizeof *order);
  tr_torch_randperm(rp, n, tr->o.split_seed);
  for (size_t i = 0; i < n; i++)
    order[i] = &tr->words[rp[i]];
  free(rp);
  tr->seqorder = order;
  tr_build_seq(tr, &tr->split[0], order, n - ntest);
  tr_build_seq(tr, &tr->split[1], order + (n - ntest), ntest);
}

/* llm.c's token file (dev/data/data_common.py write_datafile): 256 int32
 * (magic 20240520, version 1, token count, the rest 0) then the tokens as
 * uint16, the file exactly that long.  Every token must be below V. */
static void tr_read_tokens(Tr *tr, TrSplit *s, const char *path) {
  size_t len;
  tr_slurp(tr, path, &tr->tokbuf, &len);
  const unsigned char *b = tr->tokbuf;
  if (len < 1024)
    tr_fail(tr, "%s: %lu bytes: too short for llm.c's token file header (256 int32)", path,
            (unsigned long)len);
  int32_t h[3];
  for (int i = 0; i < 3; i++)
    h[i] = (int32_t)tr_get32(b + 4 * i);
  if (h[0] != 20240520)
    tr_fail(tr, "%s: bad magic %ld: not an llm.c token file (its header starts with "
            "20240520)%s", path, (long)h[0], h[0] == 20240326 ? "; this is a model checkpoint" : "");
  if (h[1] != 1)
    tr_fail(tr, "%s: token file version %ld: only version 1 (uint16 tokens) is read", path,
            (long)h[1]);
  if (h[2] <= 0)
    tr_fail(tr, "%s: the header says %ld tokens", path, (long)h[2]);
  size_t ntok = (size_t)h[2];
  if (len != 1024 + 2 * ntok)
    tr_fail(tr, "%s: the header says %lu tokens (%lu bytes) but the file has %lu bytes after "
            "it", path, (unsigned long)ntok, (unsigned long)(2 * ntok),
            (unsigned long)(len - 1024));
  s->tok = tr_alloc(tr, ntok * sizeof(uint16_t));
  for (size_t i = 0; i < ntok; i++) {
    unsigned v = tr_get16(b + 1024 + 2 * i);
    if ((int)v >= tr->V)
      tr_fail(tr, "%s: token %lu is %u, beyond the model's vocabulary (%s has V = %d)", path,
              (unsigned long)i, v, tr->tlogits->name, tr->V);
    s->tok[i] = (uint16_t)v;
  }
  s->ntok = ntok;
  s->file = path;
  free(tr->tokbuf);
  tr->tokbuf = NULL;
}

/* A stream split's windows: B*T+1 tokens each (B rows of T+1 overlapping by
 * one, as llm.c's dataloader reads them), advancing by B*T.  Too few tokens
 * for one is an error for `required` splits. */
static void tr_stream_windows(Tr *tr, TrSplit *s, const char *what, int required) {
  size_t bt = (size_t)tr->B * (size_t)tr->T;
  s->n = s->ntok > bt ? (s->ntok - 1) / bt : 0;
  if (s->n == 0 && required)
    tr_fail(tr, "%s: %lu token%s, fewer than one batch needs: B*T+1 = %lu (B = %d rows of "
            "T+1 = %d tokens)%s", what, (unsigned long)s->ntok, s->ntok == 1 ? "" : "s",
            (unsigned long)(bt + 1), tr->B, tr->T + 1, s->ntok < (size_t)tr->T + 1 ?
            "; not even one row of T+1" : "");
}

/* A token stream: --text FILE (its bytes; the vocabulary its distinct bytes in
 * order, token i the i-th smallest; the first 90% of the tokens train, the
 * rest dev) or --data-tokens FILE.bin [--val-tokens FILE.bin]. */
static void tr_load_stream(Tr *tr) {
  const TrOpts *o = &tr->o;
  if (o->text) {
    size_t len;
    tr_slurp(tr, o->text, &tr->text, &len);
    int seen[256] = {0};
    for (size_t i = 0; i < len; i++)
      seen[tr->text[i]] = 1;
    for (int c = 0; c < 256; c++)
      tr->stoi[c] = -1;
    tr->nvocab = 0;
    for (int c = 0; c < 256; c++)
      if (seen[c]) {
        tr->stoi[c] = tr->nvocab;
        tr->itos[tr->nvocab++] = (char)c;
      }
    if (len == 0)
      tr_fail(tr, "%s: empty file", o->text);
    if (tr->nvocab != tr->V)
      tr_fail(tr, "%s has %d distinct bytes but the model's %s have V = %d: use -D V=%d",
              o->text, tr->nvocab, tr->tlogits->name, tr->V, tr->nvocab);
    size_t ntrain = len - len / 10;
    for (int k = 0; k < 2; k++) {
      TrSplit *s = &tr->split[k];
      size_t from = k ? ntrain : 0, to = k ? len : ntrain;
      s->ntok = to - from;
      s->tok = tr_alloc(tr, (s->ntok ? s->ntok : 1) * sizeof(uint16_t));
      for (size_t i = from; i < to; i++)
        s->tok[i - from] = (uint16_t)tr->stoi[tr->text[i]];
      s->file = o->text;
    }
    free(tr->text);
    tr->text = NULL;
    char what[4200];
    snprintf(what, sizeof what, "%s (the first 90%% of its bytes)", o->text);
    tr_stream_windows(tr, &tr->split[0], what, 1);
    tr_stream_windows(tr, &tr->split[1], o->text, 0);
    if (tr->split[1].n == 0 && !o->quiet)
      fprintf(stderr, "note: %s: its last 10%% (%lu bytes) is shorter than one batch: no dev "
              "loss\n", o->text, (unsigned long)tr->split[1].ntok);
    return;
  }
  for (int k = 0; k < 2; k++)
    if (o->tokens[k]) {
      tr_read_tokens(tr, &tr->split[k], o->tokens[k]);
      tr_stream_windows(tr, &tr->split[k], o->tokens[k], 1);
    }
}

/* Tensor data: rows idx[0..B-1] of split s into the model's inputs. */
static void tr_set_rows_tensor(Tr *tr, const TrSplit *s, const size_t *idx) {
  for (int k = 0; k < tr->nin; k++) {
    size_t rb = tr->rowbytes[k];
    unsigned char *dst = (unsigned char *)tr->state + tr->tin[k]->offset;
    for (int b = 0; b < tr->B; b++)
      memcpy(dst + (size_t)b * rb, s->td[k] + idx[b] * rb, rb);
  }
}

enum { TR_PAD = -1 };   /* a sequence row index: a padding row (x 0, y -1: no valid position) */

/* Window w of stream split s into X and Y: tokens w*B*T .. w*B*T+B*T, X row
 * b the B*T tokens from b*T on, Y the same shifted by one (llm.c's
 * dataloader_load_batch). */
static void tr_set_window(Tr *tr, const TrSplit *s, size_t w) {
  int32_t *X = (int32_t *)((char *)tr->state + tr->tx->offset);
  int32_t *Y = (int32_t *)((char *)tr->state + tr->ty->offset);
  size_t bt = (size_t)tr->B * (size_t)tr->T;
  const uint16_t *p = s->tok + w * bt;
  for (size_t i = 0; i < bt; i++) {
    X[i] = p[i];
    Y[i] = p[i + 1];
  }
}

/* Rows idx[0..B-1] of split s into the model's inputs. */
static void tr_set_rows(Tr *tr, const TrSplit *s, const size_t *idx) {
  if (tr->tensor) {
    tr_set_rows_tensor(tr, s, idx);
    return;
  }
  int32_t *X = (int32_t *)((char *)tr->state + tr->tx->offset);
  int32_t *Y = (int32_t *)((char *)tr->state + tr->ty->offset);
  if (tr->mode == TR_SEQ) {
    size_t T = (size_t)tr->T;
    for (int b = 0; b < tr->B; b++) {
      int32_t *xr = X + (size_t)b * T, *yr = Y + (size_t)b * T;
      if (idx[b] == (size_t)TR_PAD) {
        for (size_t t = 0; t < T; t++)
          xr[t] = 0, yr[t] = -1;
        continue;
      }
      const int8_t *sx = s->sx + idx[b] * T, *sy = s->sy + idx[b] * T;
      for (size_t t = 0; t < T; t++)
        xr[t] = sx[t], yr[t] = sy[t];
    }
    return;
  }
  for (int b = 0; b < tr->B; b++) {
    const uint8_t *xr = s->x + idx[b] * tr->T;
    for (int t = 0; t < tr->T; t++)
      X[(size_t)b * tr->T + t] = xr[t];
    Y[b] = s->y[idx[b]];
  }
}

/* Rows first..first+k-1 of s, the rest of the batch copies of row `fill`
 * (sequences: padding rows, which hold no valid position). */
static void tr_set_range(Tr *tr, const TrSplit *s, size_t first, int k, size_t fill) {
  if (tr->mode == TR_SEQ)
    fill = (size_t)TR_PAD;
  for (int b = 0; b < tr->B; b++)
    tr->idx[b] = b < k ? first + (size_t)b : fill;
  tr_set_rows(tr, s, tr->idx);
}

/* The exact mean loss over a whole split in eval mode.  The model's loss is the
 * mean of B independent row losses, so a last partial batch of k rows is
 * padded with copies of its first row r and corrected by a batch of B r's:
 * sum = B*L(partial) - (B-k)*L(r). */
static double tr_split_loss_seq(Tr *tr, const TrSplit *s);

static double tr_split_loss(Tr *tr, const TrSplit *s) {
  if (s->n == 0)
    return NAN;
  if (tr->mode == TR_SEQ || tr->mode == TR_STREAM)
    return tr_split_loss_seq(tr, s);
  size_t B = (size_t)tr->B, i = 0;
  double sum = 0;
  for (; i + B <= s->n; i += B) {
    tr_set_range(tr, s, i, (int)B, 0);
    sum += (double)B * tr->m->forward_eval(tr->state);
  }
  if (i < s->n) {
    int k = (int)(s->n - i);
    tr_set_range(tr, s, i, k, i);
    double lp = tr->m->forward_eval(tr->state);
    tr_set_range(tr, s, i, 0, i);
    double lr = tr->m->forward_eval(tr->state);
    sum += (double)B * lp - (double)(B - (size_t)k) * lr;
  }
  return sum / (double)s->n;
}

/* Positions of the batch in the model's Y whose target is not -1. */
static size_t tr_valid_count(const Tr *tr) {
  const int32_t *Y = (const int32_t *)((const char *)tr->state + tr->ty->offset);
  size_t n = 0;
  for (size_t i = 0; i < tr->ty->numel; i++)
    n += Y[i] != -1;
  return n;
}

/* The mean loss over every valid position of a sequence or stream split, in
 * eval mode.  The contract assumed of the model (tr_check_ignore tests it):
 * its loss is the mean over the batch's valid positions (targets not -1:
 * cross-entropy with ignore_index = -1, PyTorch's mean reduction).  A batch
 * of c valid positions then weighs c: the split's loss is sum(c_k L_k) /
 * sum(c_k), exact however the counts differ between batches (the last
 * sequence batch is filled with padding rows, which count 0). */
static double tr_split_loss_seq(Tr *tr, const TrSplit *s) {
  size_t B = (size_t)tr->B;
  double sum = 0, cnt = 0;
  for (size_t i = 0; i < s->n; i += tr->mode == TR_SEQ ? B : 1) {
    if (tr->mode == TR_SEQ)
      tr_set_range(tr, s, i, s->n - i < B ? (int)(s->n - i) : (int)B, 0);
    else
      tr_set_window(tr, s, i);
    size_t c = tr_valid_count(tr);
    double l = tr->m->forward_eval(tr->state);
    if (c > 0) {
      sum += (double)c * l;
      cnt += (double)c;
    }
  }
  return cnt > 0 ? sum / cnt : NAN;
}

/* Sequences: the model must ignore targets of -1 and average over the valid
 * positions (tr_split_loss_seq's contract).  One word with the rest of the
 * batch padding, and the batch of B copies of it, must give the same loss;
 * a NaN that goes away with the -1 targets set to 0 is a model that does not
 * ignore them. */
static void tr_check_ignore(Tr *tr) {
  const TrSplit *s = &tr->split[0];
  tr_set_range(tr, s, 0, 1, 0);
  double l1 = tr->m->forward_eval(tr->state);
  int32_t *Y = (int32_t *)((char *)tr->state + tr->ty->offset);
  if (l1 != l1) {
    for (size_t i = 0; i < tr->ty->numel; i++)
      Y[i] = Y[i] == -1 ? 0 : Y[i];
    l1 = tr->m->forward_eval(tr->state);
    if (l1 == l1)
      tr_fail(tr, "model %s: its loss is NaN on a batch with ignored targets (-1 past each "
            "word's end) and finite without them: sequences need a cross-entropy that ignores "
            "-1 (ignore_index)", tr->m->name);
    return;   /* NaN for another reason: training names the tensor */
  }
  for (int b = 0; b < tr->B; b++)
    tr->idx[b] = 0;
  tr_set_rows(tr, s, tr->idx);
  double lb = tr->m->forward_eval(tr->state);
  double tol = tr->m->dtype == BP_F64 ? 1e-9 : 1e-4;
  if (l1 == l1 && lb == lb && fabs(l1 - lb) > tol * (fabs(lb) > 1 ? fabs(lb) : 1))
    tr_fail(tr, "model %s: its loss is %.6g on one word padded with ignored rows but %.6g on %d "
            "copies of it: sequences need the loss to be the mean over the valid positions "
            "(targets not -1)", tr->m->name, l1, lb, tr->B);
}

static int tr_has_stats(const Tr *tr) {
  for (int i = 0; i < tr->m->ntensors; i++)
    if (tr->m->tensors[i].kind == BP_STAT)
      return 1;
  return 0;
}

/* Batchnorm statistics over the whole training split, the lecture's way: the
 * mean and unbiased variance of the batchnorm input over every training row. */
static void tr_calibrate(Tr *tr) {
  if (!tr_has_stats(tr) || tr->o.bn_momentum > 0)   /* running statistics: nothing to gather */
    return;
  const TrSplit *s = &tr->split[0];
  size_t B = (size_t)tr->B;
  for (int pass = 0; pass < tr->m->calib_passes; pass++) {
    tr->m->calib_begin(tr->state, pass);
    for (size_t w = 0; tr->mode == TR_STREAM && w < s->n; w++) {
      tr_set_window(tr, s, w);
      tr->m->calib_accum(tr->state, tr->B);
    }
    for (size_t i = 0; tr->mode != TR_STREAM && i < s->n; i += B) {
      int k = s->n - i < B ? (int)(s->n - i) : (int)B;
      tr_set_range(tr, s, i, k, i);
      tr->m->calib_accum(tr->state, k);
    }
    tr->m->calib_end(tr->state);
  }
}

/* ---- non-finite values ------------------------------------------------------ */

/* The first tensor in the model's table holding a NaN or Inf: grads when
 * `grads`, else params, statistics and forward values. */
static const BpTensor *tr_nonfinite(Tr *tr, int grads) {
  for (int i = 0; i < tr->m->ntensors; i++) {
    const BpTensor *t = &tr->m->tensors[i];
    if (!tr_isfloat(t) || t->kind == BP_INPUT || (t->kind == BP_GRAD) != (grads != 0))
      continue;
    for (size_t k = 0; k < t->numel; k++)
      if (!tr_finite(tr_get(tr, t, k)))
        return t;
  }
  return NULL;
}

/* Training runs lean (the named intermediates unwritten): to name the first
 * non-finite tensor, the same batch again with everything written. */
static void tr_rerun_full(Tr *tr, int backward) {
  if (!tr->m->set_lean)
    return;
  tr->m->set_lean(tr->state, 0);
  tr->m->forward(tr->state);
  if (backward)
    tr->m->backward(tr->state);
}

static void tr_check_loss(Tr *tr, double loss) {
  if (tr_finite(loss))
    return;
  tr_rerun_full(tr, 0);
  const BpTensor *t = tr_nonfinite(tr, 0);
  if (t)
    tr_fail(tr, "step %ld: the loss is %g; first non-finite tensor: %s (spec line %d)%s",
            tr->step, loss, t->name, t->line, tr->o.save ? "; the last checkpoint is kept" : "");
  tr_fail(tr, "step %ld: the loss is %g%s", tr->step, loss,
          tr->o.save ? "; the last checkpoint is kept" : "");
}

static void tr_check_grads(Tr *tr) {
  const char *g = (const char *)tr->state + tr->m->grad_offset;
  size_t n = tr->m->nparam;
#ifdef BP_KERNEL_LIST
  /* after a model bpgen emitted: its gcc-compiled kernel (runtime/kernels.h);
   * the loop below costs as much as a small model's step under tcc */
  if (tr->m->dtype == BP_F64 ? bp_allfinite_f64(n, (const double *)g) : bp_allfinite_f32(n, (const float *)g))
    return;
#else
  int bad = 0;
  if (tr->m->dtype == BP_F64) {
    for (size_t i = 0; i < n && !bad; i++)
      bad = !tr_finite(((const double *)g)[i]);
  } else {
    for (size_t i = 0; i < n && !bad; i++)
      bad = !tr_finite(((const float *)g)[i]);
  }
  if (!bad)
    return;
#endif
  tr_rerun_full(tr, 1);
  const BpTensor *t = tr_nonfinite(tr, 1);
  tr_fail(tr, "step %ld: non-finite gradient; first non-finite tensor: %s (spec line %d)%s",
          tr->step, t ? t->name : "?", t ? t->line : 0,
          tr->o.save ? "; the last checkpoint is kept" : "");
}

/* ---- optimisers ------------------------------------------------------------- */

/* AdamW as PyTorch's torch.optim.AdamW (its single-tensor loop, the CPU
 * default), in its order of operations: decoupled weight decay on the old
 * param, moments, bias correction with t = updates done (from 1):
 *   p *= 1 - lr*wd;  m = b1*m + (1-b1)*g;  v = b2*v + (1-b2)*g*g;
 *   p += (-lr / (1 - b1^t)) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
 * llm.c's train_gpt2.c writes the same update (wd 0 there) in another order. */
#define TR_ADAMW(TYPE, SQRT)                                                           \
  do {                                                                               \
    TYPE *p = (TYPE *)((char *)tr->state + m->param_offset);                         \
    const TYPE *g = (const TYPE *)((const char *)tr->state + m->grad_offset);        \
    TYPE *mm = (TYPE *)tr->mom_m, *vv = (TYPE *)tr->mom_v;                           \
    TYPE b1 = (TYPE)o->beta1, b2 = (TYPE)o->beta2, eps = (TYPE)o->eps;               \
    TYPE decay = (TYPE)(1 - lr * o->wd), step = (TYPE)(lr / b1c), c2 = (TYPE)sqrt(b2c); \
    for (size_t i = 0; i < m->nparam; i++) {                                         \
      TYPE gi = g[i];                                                                \
      TYPE mi = b1 * mm[i] + (1 - b1) * gi;                                          \
      TYPE vi = b2 * vv[i] + (1 - b2) * gi * gi;                                     \
      mm[i] = mi;                                                                    \
      vv[i] = vi;                                                                    \
      TYPE pi = p[i] * decay;                                                        \
      p[i] = pi + (-step * mi) / (SQRT(vi) / c2 + eps);   /* addcdiv's order */        \
    }                                                                                \
  } while (0)

static void tr_adamw(Tr *tr, double lr) {
  const BpModel *m = tr->m;
  const TrOpts *o = &tr->o;
  tr->adamw_t++;
  double b1c = 1 - pow(o->beta1, (double)tr->adamw_t);
  double b2c = 1 - pow(o->beta2, (double)tr->adamw_t);
  if (m->dtype == BP_F64)
    TR_ADAMW(double, sqrt);
  else
    TR_ADAMW(float, sqrtf);
}

/* --clip X: every param's gradient scaled by min(1, X / (norm + 1e-6)), norm
 * the 2-norm of all of them together, as torch.nn.utils.clip_grad_norm_
 * (which multiplies by the clamped factor even when it is 1).  Returns the
 * norm before clipping. */
static double tr_clip_grads(Tr *tr, double maxnorm) {
  const BpModel *m = tr->m;
  char *g = (char *)tr->state + m->grad_offset;
  double ss = 0;
  if (m->dtype == BP_F64) {
    for (size_t i = 0; i < m->nparam; i++)
      ss += ((double *)g)[i] * ((double *)g)[i];
  } else {
    for (size_t i = 0; i < m->nparam; i++)
      ss += (double)((float *)g)[i] * ((float *)g)[i];
  }
  double norm = sqrt(ss), c = maxnorm / (norm + 1e-6);
  if (c < 1) {
    if (m->dtype == BP_F64) {
      for (size_t i = 0; i < m->nparam; i++)
        ((double *)g)[i] *= c;
    } else {
      float cf = (float)c;
      for (size_t i = 0; i < m->nparam; i++)
        ((float *)g)[i] *= cf;
    }
  }
  return norm;
}

/* The learning rate of step i (0-based) of o->steps: a linear warmup over the
 * first --warmup W steps (lr*(i+1)/W), then --lr-schedule's: step (the
 * lecture's: lr, lr/10 from --decay-at on), constant, or cosine (llm.c's:
 * from lr down to --lr-min over the steps after the warmup,
 * lr_min + (lr - lr_min) * (1 + cos(pi * (i - W) / (steps - W))) / 2). */
static double tr_lr_at(const TrOpts *o, long i) {
  if (i < o->warmup)
    return o->lr * (double)(i + 1) / (double)o->warmup;
  if (o->schedule == TR_SCHED_CONSTANT)
    return o->lr;
  if (o->schedule == TR_SCHED_STEP)
    return i < o->decay_at ? o->lr : o->lr / 10;
  double span = (double)(o->steps - o->warmup);
  double r = span > 0 ? (double)(i - o->warmup) / span : 1;
  if (r > 1)
    r = 1;
  return o->lr_min + 0.5 * (1 + cos(3.14159265358979323846 * r)) * (o->lr - o->lr_min);
}

/* ---- checkpoints: .npz ------------------------------------------------------ */

static uint32_t tr_crc32(const unsigned char *p, size_t n) {
  static uint32_t table[256];
  if (!table[1])
    for (uint32_t i = 0; i < 256; i++) {
      uint32_t c = i;
      for (int k = 0; k < 8; k++)
        c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
      table[i] = c;
    }
  uint32_t c = 0xFFFFFFFFu;
  for (size_t i = 0; i < n; i++)
    c = table[(c ^ p[i]) & 0xFF] ^ (c >> 8);
  return c ^ 0xFFFFFFFFu;
}

/* an array's dims as npy_parse.h takes them */
static void tr_dims(long *dim, int rank, const int *dims) {
  for (int i = 0; i < rank; i++)
    dim[i] = dims[i];
}

typedef struct TrCkWriter {
  FILE *f;
  uint32_t off;                /* bytes written so far */
  unsigned char *cd;           /* central directory being built */
  size_t cdlen, cdcap;
  int nentries;
} TrCkWriter;

static void tr_ck_entry(Tr *tr, TrCkWriter *w, const char *name, NpyType type, int rank,
                        const int *dims, const void *data, size_t nbytes) {
  unsigned char head[NPY_MAXHEADER];
  long dim[NPY_MAXRANK];
  tr_dims(dim, rank, dims);
  size_t hlen = npy_header_text(head, sizeof head, type, rank, dim);
  size_t total = hlen + nbytes;
  free(tr->membuf);
  tr->membuf = tr_alloc(tr, total);
  unsigned char *b = tr->membuf;
  memcpy(b, head, hlen);
  memcpy(b + hlen, data, nbytes);
  char fname[300];
  snprintf(fname, sizeof fname, "%s.npy", name);
  size_t nlen = strlen(fname);
  if ((uint64_t)w->off + total + nlen + 30 > 0xFFFFFFF0u)
    tr_fail(tr, "checkpoint larger than 4 GiB: not supported");
  uint32_t crc = tr_crc32(b, total);
  unsigned char h[46];
  memset(h, 0, sizeof h);
  tr_put32(h, 0x04034b50u);
  tr_put16(h + 4, 20);
  tr_put16(h + 12, 0x21);        /* date: 1980-01-01 */
  tr_put32(h + 14, crc);
  tr_put32(h + 18, (uint32_t)total);
  tr_put32(h + 22, (uint32_t)total);
  tr_put16(h + 26, (unsigned)nlen);
  if (fwrite(h, 1, 30, w->f) != 30 || fwrite(fname, 1, nlen, w->f) != nlen ||
      fwrite(b, 1, total, w->f) != total)
    tr_fail(tr, "%s: write error: %s", tr->tmpname, strerror(errno));
  if (w->cdlen + 46 + nlen > w->cdcap) {
    size_t cap = (w->cdcap + 46 + nlen) * 2;
    unsigned char *nb = realloc(w->cd, cap);
    if (!nb)
      tr_fail(tr, "out of memory");
    w->cd = nb;
    w->cdcap = cap;
  }
  unsigned char *c = w->cd + w->cdlen;
  memset(c, 0, 46);
  tr_put32(c, 0x02014b50u);
  tr_put16(c + 4, 20);
  tr_put16(c + 6, 20);
  tr_put16(c + 14, 0x21);
  tr_put32(c + 16, crc);
  tr_put32(c + 20, (uint32_t)total);
  tr_put32(c + 24, (uint32_t)total);
  tr_put16(c + 28, (unsigned)nlen);
  tr_put32(c + 42, w->off);
  memcpy(c + 46, fname, nlen);
  w->cdlen += 46 + nlen;
  w->off += (uint32_t)(30 + nlen + total);
  w->nentries++;
}

static NpyType tr_type(const BpTensor *t) {
  return t->dtype == BP_F64 ? NPY_F8 : t->dtype == BP_F32 ? NPY_F4 : NPY_I4;
}

static void tr_ck_tensor(Tr *tr, TrCkWriter *w, const char *name, const BpTensor *t, const void *p) {
  tr_ck_entry(tr, w, name, tr_type(t), t->rank, t->dims, p, t->numel * tr->esize);
}

/* The directory part of path ("." when it has none) into dir. */
static void tr_dirname(const char *path, char *dir, size_t cap) {
  snprintf(dir, cap, "%s", path);
  char *slash = strrchr(dir, '/');
  if (slash == dir)
    slash[1] = '\0';
  else if (slash)
    *slash = '\0';
  else
    snprintf(dir, cap, ".");
}

static void tr_fsync_dir(const char *path) {
  char dir[4096];
  tr_dirname(path, dir, sizeof dir);
  int fd = open(dir, O_RDONLY);
  if (fd >= 0) {
    fsync(fd);
    close(fd);
  }
}

/* The first param or statistic (or, with `moments`, AdamW moment of a
 * param) holding a NaN or Inf, or NULL. */
static const BpTensor *tr_state_nonfinite(Tr *tr, int moments) {
  const BpModel *m = tr->m;
  for (int i = 0; i < m->ntensors; i++) {
    const BpTensor *t = &m->tensors[i];
    if ((t->kind != BP_PARAM && t->kind != BP_STAT) || !tr_isfloat(t))
      continue;
    const char *base = moments ? NULL : (const char *)tr->state + t->offset;
    for (int k = 0; k < (moments ? 2 : 1); k++) {
      if (moments) {
        if (t->kind != BP_PARAM)
          break;
        base = (const char *)(k ? tr->mom_v : tr->mom_m) + (t->offset - m->param_offset);
      }
      for (size_t e = 0; e < t->numel; e++) {
        double v = m->dtype == BP_F64 ? ((const double *)base)[e] : ((const float *)base)[e];
        if (!tr_finite(v))
          return t;
      }
    }
  }
  return NULL;
}

/* The log's rows so far, on disk before a checkpoint names their step (a kill
 * then loses no row that a resume would not write again). */
static void tr_flush_log(Tr *tr) {
  if (tr->log && (fflush(tr->log) != 0 || fsync(fileno(tr->log)) != 0))
    tr_fail(tr, "%s: write error: %s", tr->o.log, strerror(errno));
}

/* ---- checkpoints: llm.c's GPT-2 format (runtime/llmc_ckpt.h) ------------------ */

/* The spec's dims maxT V L NH C Vp (-1 for a dim the spec lacks), which
 * trainer_source (gen/cmd_run.c) defines before this file. */
#ifndef TR_LLMC_DIMS
#define TR_LLMC_DIMS {-1, -1, -1, -1, -1, -1}
#endif
static const long tr_llmc_spec_dims[LLMC_NDIMS] = TR_LLMC_DIMS;

/* --save FILE.bin writes llm.c's format (params only). */
static int tr_llmc_path(const char *path) {
  size_t n = strlen(path);
  return n > 4 && strcmp(path + n - 4, ".bin") == 0;
}

/* The model's tensor of each of llm.c's 16 params, into t[], after checking
 * that the model is llm.c's GPT-2 at the dims of h: the spec's dims equal the
 * header's, each param has the header's shape, and the model has no other
 * param or statistic (the file would not hold it).  `what` names the file. */
static void tr_llmc_match(Tr *tr, const char *what, const LlmcHeader *h,
                          const BpTensor *t[LLMC_NPARAMS]) {
  const BpModel *m = tr->m;
  for (int d = 0; d < LLMC_NDIMS; d++)
    if (tr_llmc_spec_dims[d] >= 0 && tr_llmc_spec_dims[d] != h->dim[d])
      tr_fail(tr, "%s: the checkpoint has %s = %ld but model %s was built with %s = %ld "
              "(bpgen run takes the dims from the checkpoint; a --trainer program has its "
              "own)", what, llmc_dim_names[d], h->dim[d], m->name, llmc_dim_names[d],
              tr_llmc_spec_dims[d]);
  for (int p = 0; p < LLMC_NPARAMS; p++) {
    const struct LlmcParam *lp = &llmc_params[p];
    t[p] = NULL;
    for (int i = 0; i < m->ntensors && !t[p]; i++)
      if (m->tensors[i].kind == BP_PARAM && strcmp(m->tensors[i].name, lp->name) == 0)
        t[p] = &m->tensors[i];
    if (!t[p])
      tr_fail(tr, "%s: model %s has no param %s: llm.c's checkpoints hold GPT-2's params "
              "(specs/gpt2.spec)", what, m->name, lp->name);
    int same = t[p]->rank == lp->rank;
    for (int a = 0; same && a < lp->rank; a++)
      same = t[p]->dims[a] == h->shape[p][a];
    if (!same) {
      char got[160], want[160];
      long md[BP_MAXRANK];
      for (int a = 0; a < t[p]->rank; a++)
        md[a] = t[p]->dims[a];
      tr_fail(tr, "%s: %s is %s in the checkpoint's layout but %s in model %s (spec line %d)",
              what, lp->name, npy_shape_text(want, sizeof want, lp->rank, h->shape[p]),
              npy_shape_text(got, sizeof got, t[p]->rank, md), m->name, t[p]->line);
    }
  }
  for (int i = 0; i < m->ntensors; i++) {
    const BpTensor *u = &m->tensors[i];
    if (u->kind != BP_PARAM && u->kind != BP_STAT)
      continue;
    int known = 0;
    for (int p = 0; p < LLMC_NPARAMS; p++)
      known |= t[p] == u;
    if (!known)
      tr_fail(tr, "%s: model %s has %s %s (spec line %d), which llm.c's checkpoint format does "
              "not hold", what, m->name, u->kind == BP_PARAM ? "param" : "statistic", u->name,
              u->line);
  }
}

/* --save FILE.bin: the params in llm.c's format, rounded to fp32 (a f64 model
 * loses precision; steps, RNG and AdamW moments are not written: llm.c's
 * checkpoints hold only params).  The header's dims are the spec's, written
 * as tr_save writes a checkpoint: a temporary file renamed over FILE. */
static void tr_llmc_save_layout(Tr *tr, const char *path, LlmcHeader *h,
                                const BpTensor *t[LLMC_NPARAMS]) {
  char err[512];
  memset(h, 0, sizeof *h);
  for (int d = 0; d < LLMC_NDIMS; d++) {
    if (tr_llmc_spec_dims[d] < 1)
      tr_fail(tr, "--save %s: model %s has no dim %s, which llm.c's header needs "
              "(specs/gpt2.spec has maxT V L NH C Vp)", path, tr->m->name, llmc_dim_names[d]);
    h->dim[d] = tr_llmc_spec_dims[d];
  }
  if (llmc_shapes(h, err, sizeof err) < 0)
    tr_fail(tr, "--save %s: %s", path, err);
  tr_llmc_match(tr, path, h, t);
}

static void tr_llmc_save(Tr *tr, const char *path) {
  const BpModel *m = tr->m;
  LlmcHeader h;
  const BpTensor *t[LLMC_NPARAMS];
  tr_llmc_save_layout(tr, path, &h, t);
  const BpTensor *bad = tr_state_nonfinite(tr, 0);
  if (bad)
    tr_fail(tr, "step %ld: %s holds a non-finite value (spec line %d): no checkpoint written",
            tr->step, bad->name, bad->line);
  tr_flush_log(tr);
  size_t plen = strlen(path) + 32;
  tr->tmpname = tr_alloc(tr, plen);
  snprintf(tr->tmpname, plen, "%s.tmp%ld", path, (long)getpid());
  tr->ck = fopen(tr->tmpname, "wb");
  if (!tr->ck)
    tr_fail(tr, "%s: cannot create: %s", tr->tmpname, strerror(errno));
  unsigned char head[LLMC_HEADER_BYTES], buf[4096];
  llmc_header_write(head, h.dim);
  int ok = fwrite(head, 1, sizeof head, tr->ck) == sizeof head;
  for (int p = 0; p < LLMC_NPARAMS && ok; p++) {
    const char *base = (const char *)tr->state + t[p]->offset;
    for (size_t e = 0; e < t[p]->numel && ok; ) {
      size_t n = 0;
      for (; n < sizeof buf / 4 && e < t[p]->numel; n++, e++) {
        float f = m->dtype == BP_F64 ? (float)((const double *)base)[e] : ((const float *)base)[e];
        uint32_t u;
        memcpy(&u, &f, 4);
        llmc_put32(buf + 4 * n, u);
      }
      ok = fwrite(buf, 4, n, tr->ck) == n;
    }
  }
  ok = ok && fflush(tr->ck) == 0 && fsync(fileno(tr->ck)) == 0;
  ok = fclose(tr->ck) == 0 && ok;
  tr->ck = NULL;
  if (!ok)
    tr_fail(tr, "%s: write error: %s", tr->tmpname, strerror(errno));
  if (rename(tr->tmpname, path) != 0)
    tr_fail(tr, "%s: cannot rename to %s: %s", tr->tmpname, path, strerror(errno));
  free(tr->tmpname);
  tr->tmpname = NULL;
  tr_fsync_dir(path);
}

/* --load FILE of llm.c's format (tr_load saw its magic; its len bytes are in
 * tr->ckbuf): the header checked (llmc_header_parse), the params matched to
 * the model's (tr_llmc_match), each element finite.  Params only: training
 * starts at step 0, with AdamW's moments at zero. */
static void tr_llmc_load(Tr *tr, const char *path, size_t len) {
  const BpModel *m = tr->m;
  LlmcHeader h;
  char err[512];
  if (llmc_header_parse(tr->ckbuf, len, len, &h, err, sizeof err) < 0)
    tr_fail(tr, "%s: %s", path, err);
  const BpTensor *t[LLMC_NPARAMS];
  tr_llmc_match(tr, path, &h, t);
  const unsigned char *p = tr->ckbuf + LLMC_HEADER_BYTES;
  for (int k = 0; k < LLMC_NPARAMS; k++) {
    char *base = (char *)tr->state + t[k]->offset;
    for (size_t e = 0; e < t[k]->numel; e++, p += 4) {
      uint32_t u = llmc_get32(p);
      float f;
      memcpy(&f, &u, 4);
      if (!tr_finite(f))
        tr_fail(tr, "%s: %s holds a non-finite value (element %lu)", path, t[k]->name,
                (unsigned long)e);
      if (m->dtype == BP_F64)
        ((double *)base)[e] = f;
      else
        ((float *)base)[e] = f;
    }
  }
  tr->step = 0;
  tr->adamw_t = 0;
  if (!tr->o.quiet)
    fprintf(stderr, "note: %s: llm.c's checkpoint: params only (%lu); training starts at step 0"
            "%s\n", path, (unsigned long)h.nparam, tr->o.adamw ? " with AdamW's moments at 0" : "");
}

static void tr_save(Tr *tr, const char *path) {
  if (tr_llmc_path(path)) {   /* llm.c's format */
    tr_llmc_save(tr, path);
    return;
  }
  const BpModel *m = tr->m;
  const BpTensor *bad = tr_state_nonfinite(tr, 0);
  const BpTensor *badm = bad || !tr->o.adamw ? NULL : tr_state_nonfinite(tr, 1);
  if (bad || badm) {
    int old = access(path, F_OK) == 0;
    const char *where = old ? " keeps the last one" : " does not exist yet";
    if (bad)
      tr_fail(tr, "step %ld: %s holds a non-finite value (spec line %d; the learning rate too "
              "high?): no checkpoint written; %s%s", tr->step, bad->name, bad->line, path, where);
    tr_fail(tr, "step %ld: the AdamW moments of %s hold a non-finite value (spec line %d; a "
            "gradient's square overflows?): no checkpoint written; %s%s", tr->step, badm->name,
            badm->line, path, where);
  }
  tr_flush_log(tr);
  size_t plen = strlen(path) + 32;
  tr->tmpname = tr_alloc(tr, plen);
  snprintf(tr->tmpname, plen, "%s.tmp%ld", path, (long)getpid());
  tr->ck = fopen(tr->tmpname, "wb");
  if (!tr->ck)
    tr_fail(tr, "%s: cannot create: %s", tr->tmpname, strerror(errno));
  TrCkWriter w;
  memset(&w, 0, sizeof w);
  w.f = tr->ck;
  int one = 1;
  int64_t step = tr->step, at = tr->adamw_t;
  uint64_t rng = tr->batch_rng.s, seed = tr->o.seed;
  int nv = tr->nvocab;
  tr_ck_entry(tr, &w, "step", NPY_I8, 0, &one, &step, 8);
  tr_ck_entry(tr, &w, "rng", NPY_U8, 0, &one, &rng, 8);
  tr_ck_entry(tr, &w, "seed", NPY_U8, 0, &one, &seed, 8);
  tr_ck_entry(tr, &w, "vocab", NPY_U1, 1, &nv, tr->itos, (size_t)nv);
  if (tr->o.adamw)
    tr_ck_entry(tr, &w, "adamw_t", NPY_I8, 0, &one, &at, 8);
  for (int i = 0; i < m->ntensors; i++) {
    const BpTensor *t = &m->tensors[i];
    if (t->kind == BP_PARAM || t->kind == BP_STAT)
      tr_ck_tensor(tr, &w, t->name, t, (char *)tr->state + t->offset);
  }
  for (int k = 0; k < 2 && tr->o.adamw; k++)
    for (int i = 0; i < m->ntensors; i++) {
      const BpTensor *t = &m->tensors[i];
      if (t->kind != BP_PARAM)
        continue;
      char name[300];
      snprintf(name, sizeof name, "adamw.%c.%s", k ? 'v' : 'm', t->name);
      tr_ck_tensor(tr, &w, name, t, (char *)(k ? tr->mom_v : tr->mom_m) + (t->offset - m->param_offset));
    }
  unsigned char e[22];
  memset(e, 0, sizeof e);
  tr_put32(e, 0x06054b50u);
  tr_put16(e + 8, (unsigned)w.nentries);
  tr_put16(e + 10, (unsigned)w.nentries);
  tr_put32(e + 12, (uint32_t)w.cdlen);
  tr_put32(e + 16, w.off);
  int ok = fwrite(w.cd, 1, w.cdlen, tr->ck) == w.cdlen && fwrite(e, 1, 22, tr->ck) == 22;
  free(w.cd);
  ok = ok && fflush(tr->ck) == 0 && fsync(fileno(tr->ck)) == 0;
  ok = fclose(tr->ck) == 0 && ok;
  tr->ck = NULL;
  if (!ok)
    tr_fail(tr, "%s: write error: %s", tr->tmpname, strerror(errno));
  if (rename(tr->tmpname, path) != 0)
    tr_fail(tr, "%s: cannot rename to %s: %s", tr->tmpname, path, strerror(errno));
  free(tr->tmpname);
  tr->tmpname = NULL;
  tr_fsync_dir(path);
}

/* --save FILE before training: FILE is a regular file or absent (a checkpoint
 * is renamed over it, which would replace a device, FIFO or directory); its
 * directory takes new files (found now, not after the last step); no other
 * run writes FILE: FILE.lock is held with flock until this run ends, a second
 * run is refused.  Under the lock, FILE.tmpPID files of runs killed while
 * writing (PID gone, or this process's own from an earlier call) are
 * removed. */
static void tr_save_prepare(Tr *tr, const char *path) {
  if (tr_llmc_path(path)) {   /* a model llm.c's format cannot hold: say so before training */
    LlmcHeader h;
    const BpTensor *t[LLMC_NPARAMS];
    tr_llmc_save_layout(tr, path, &h, t);
  }
  struct stat st;
  const char *what = stat(path, &st) == 0 ? tr_not_regular(&st) : NULL;
  if (what)
    tr_fail(tr, "--save %s: is %s: a checkpoint is written beside it and renamed over it, "
            "so give a file name", path, what);
  char dir[4096];
  tr_dirname(path, dir, sizeof dir);
  size_t plen = strlen(path) + 32;
  tr->tmpname = tr_alloc(tr, plen);
  snprintf(tr->tmpname, plen, "%s.tmp%ld", path, (long)getpid());
  int fd = open(tr->tmpname, O_WRONLY | O_CREAT | O_EXCL, 0644);
  if (fd < 0 && errno != EEXIST) {
    free(tr->tmpname);   /* nothing to remove */
    tr->tmpname = NULL;
    tr_fail(tr, "--save %s: cannot create files in %s: %s", path, dir, strerror(errno));
  }
  if (fd >= 0)
    close(fd);
  remove(tr->tmpname);
  free(tr->tmpname);
  tr->tmpname = NULL;

  tr->lockname = tr_alloc(tr, plen);
  snprintf(tr->lockname, plen, "%s.lock", path);
  for (;;) {
    fd = open(tr->lockname, O_RDWR | O_CREAT, 0644);
    if (fd < 0)
      tr_fail(tr, "%s: cannot create: %s", tr->lockname, strerror(errno));
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
      int err = errno;
      char pid[32] = "";
      ssize_t n = read(fd, pid, sizeof pid - 1);
      pid[n > 0 ? n : 0] = '\0';
      pid[strcspn(pid, "\n")] = '\0';
      close(fd);
      if (err == EWOULDBLOCK)
        tr_fail(tr, "--save %s: another run is writing this checkpoint (process %s holds %s): "
                "give another --save FILE, or wait for it to end", path, pid[0] ? pid : "?",
                tr->lockname);
      tr_fail(tr, "%s: cannot lock: %s", tr->lockname, strerror(err));
    }
    /* the holder before us removes the file as it ends: lock the file the
     * name holds now, or two runs could each hold a lock on a different one */
    struct stat a, b;
    if (fstat(fd, &a) == 0 && stat(tr->lockname, &b) == 0 && a.st_dev == b.st_dev &&
        a.st_ino == b.st_ino)
      break;
    close(fd);
  }
  tr->lockfd = fd;
  tr->locked = 1;
  char pid[32];
  int n = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
  int ok = ftruncate(fd, 0) == 0 && write(fd, pid, (size_t)n) == n;
  (void)ok;   /* the pid only helps a refused run's message */

  const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
  size_t blen = strlen(base);
  DIR *d = opendir(dir);
  struct dirent *de;
  while (d && (de = readdir(d))) {
    const char *nm = de->d_name;
    if (strncmp(nm, base, blen) != 0 || strncmp(nm + blen, ".tmp", 4) != 0)
      continue;
    const char *digits = nm + blen + 4;
    char *end;
    errno = 0;
    long p = strtol(digits, &end, 10);
    if (*digits < '0' || *digits > '9' || *end || errno || p <= 0 || p > 2147483647L)
      continue;   /* not FILE.tmpPID */
    if (p != (long)getpid() && !(kill((pid_t)p, 0) != 0 && errno == ESRCH))
      continue;   /* a live process: not provably ours to remove */
    char full[4096 + 300];
    if (base == path)   /* no directory given: name the file as the user would */
      snprintf(full, sizeof full, "%s", nm);
    else
      snprintf(full, sizeof full, "%s%s%s", dir, dir[strlen(dir) - 1] == '/' ? "" : "/", nm);
    if (remove(full) == 0 && !tr->o.quiet)
      fprintf(stderr, "note: removed %s, left by a run that was killed while saving\n", full);
  }
  if (d)
    closedir(d);
}

static void tr_unlock(Tr *tr) {
  if (tr->locked) {
    unlink(tr->lockname);   /* while still held: see tr_save_prepare */
    close(tr->lockfd);
    tr->locked = 0;
  }
  free(tr->lockname);
  tr->lockname = NULL;
}

typedef struct TrEntry {
  const unsigned char *data;   /* the .npy bytes */
  size_t len;
  char name[320];
} TrEntry;

/* Finds the .npy entry `name` of the zip in tr->ckbuf (len bytes); checks the
 * central directory, the local header and the CRC.  Returns 0 when absent. */
static int tr_ck_find(Tr *tr, const char *path, size_t len, const char *name, TrEntry *out) {
  const unsigned char *b = tr->ckbuf;
  if (len < 22 || tr_get32(b + len - 22) != 0x06054b50u)
    tr_fail(tr, "%s: not a checkpoint (no zip end record: truncated or not an .npz)", path);
  size_t n = tr_get16(b + len - 12), cdlen = tr_get32(b + len - 10), cdoff = tr_get32(b + len - 6);
  if (cdoff > len - 22 || cdlen > len - 22 - cdoff)
    tr_fail(tr, "%s: corrupt checkpoint (central directory out of range)", path);
  size_t p = cdoff;
  char want[300];
  snprintf(want, sizeof want, "%s.npy", name);
  for (size_t i = 0; i < n; i++) {
    if (p + 46 > cdoff + cdlen || tr_get32(b + p) != 0x02014b50u)
      tr_fail(tr, "%s: corrupt checkpoint (central directory entry %lu)", path, (unsigned long)i);
    size_t nlen = tr_get16(b + p + 28), xlen = tr_get16(b + p + 30), clen = tr_get16(b + p + 32);
    size_t sz = tr_get32(b + p + 20), lo = tr_get32(b + p + 42);
    uint32_t crc = tr_get32(b + p + 16);
    if (p + 46 + nlen > cdoff + cdlen)
      tr_fail(tr, "%s: corrupt checkpoint (central directory entry %lu)", path, (unsigned long)i);
    int match = nlen == strlen(want) && memcmp(b + p + 46, want, nlen) == 0;
    if (match) {
      if (tr_get16(b + p + 10) != 0 || sz != tr_get32(b + p + 24))
        tr_fail(tr, "%s: entry %s is compressed: save with numpy.savez, not savez_compressed",
                path, want);
      if (lo + 30 > cdoff || tr_get32(b + lo) != 0x04034b50u)
        tr_fail(tr, "%s: corrupt checkpoint (local header of %s)", path, want);
      size_t d = lo + 30 + tr_get16(b + lo + 26) + tr_get16(b + lo + 28);
      if (d > cdoff || sz > cdoff - d)
        tr_fail(tr, "%s: corrupt checkpoint (%s runs past the data)", path, want);
      if (tr_crc32(b + d, sz) != crc)
        tr_fail(tr, "%s: corrupt checkpoint (CRC mismatch in %s)", path, want);
      out->data = b + d;
      out->len = sz;
      snprintf(out->name, sizeof out->name, "%s", want);
      return 1;
    }
    p += 46 + nlen + xlen + clen;
  }
  return 0;
}

/* Copies entry `name` into dst after checking its dtype and shape (a
 * Fortran-order entry is reordered).  Returns 0 when the entry is absent and
 * !required. */
static int tr_ck_get(Tr *tr, const char *path, size_t len, const char *name, NpyType type,
                     int rank, const int *dims, void *dst, size_t nbytes, int required) {
  TrEntry e;
  if (!tr_ck_find(tr, path, len, name, &e)) {
    if (required)
      tr_fail(tr, "%s: checkpoint has no %s (written for another model?)", path, name);
    return 0;
  }
  NpyHeader h;
  char err[256];
  if (npy_header_parse(e.data, e.len, 1, &h, err, sizeof err) < 0)
    tr_fail(tr, "%s: %s: %s", path, e.name, err);
  long dim[NPY_MAXRANK];
  tr_dims(dim, rank, dims);
  int same = h.type == type && h.rank == rank && h.nbytes == nbytes;
  for (int i = 0; same && i < rank; i++)
    same = h.dim[i] == dim[i];
  if (!same) {
    char got[160], want[160];
    tr_fail(tr, "%s: %s is %s %s but this model wants %s %s", path, e.name,
            npy_dtypes[h.type].descr, npy_shape_text(got, sizeof got, h.rank, h.dim),
            npy_dtypes[type].descr, npy_shape_text(want, sizeof want, rank, dim));
  }
  if (h.fortran)
    npy_to_c_order(dst, e.data + h.offset, &h);
  else
    memcpy(dst, e.data + h.offset, nbytes);
  return 1;
}

static void tr_load(Tr *tr, const char *path) {
  const BpModel *m = tr->m;
  tr->ck = fopen(path, "rb");
  if (!tr->ck)
    tr_fail(tr, "%s: cannot open: %s", path, strerror(errno));
  struct stat st;
  const char *what = fstat(fileno(tr->ck), &st) == 0 ? tr_not_regular(&st) : NULL;
  if (what)
    tr_fail(tr, "%s: is %s, not a checkpoint file (.npz)", path, what);
  if (fseek(tr->ck, 0, SEEK_END) != 0)
    tr_fail(tr, "%s: cannot seek", path);
  long flen = ftell(tr->ck);
  if (flen < 0 || fseek(tr->ck, 0, SEEK_SET) != 0)
    tr_fail(tr, "%s: cannot seek", path);
  size_t len = (size_t)flen;
  tr->ckbuf = tr_alloc(tr, len);
  if (fread(tr->ckbuf, 1, len, tr->ck) != len)
    tr_fail(tr, "%s: read error", path);
  fclose(tr->ck);
  tr->ck = NULL;
  if (llmc_is_checkpoint(tr->ckbuf, len)) {   /* llm.c's format */
    tr_llmc_load(tr, path, len);
    return;
  }
  int one = 1;
  int64_t step, at = 0;
  uint64_t rng, seed;
  char vocab[256];
  tr_ck_get(tr, path, len, "step", NPY_I8, 0, &one, &step, 8, 1);
  tr_ck_get(tr, path, len, "rng", NPY_U8, 0, &one, &rng, 8, 1);
  tr_ck_get(tr, path, len, "seed", NPY_U8, 0, &one, &seed, 8, 1);
  int nv = tr->nvocab;
  tr_ck_get(tr, path, len, "vocab", NPY_U1, 1, &nv, vocab, (size_t)nv, 1);
  if (memcmp(vocab, tr->itos, (size_t)nv) != 0)
    tr_fail(tr, "%s: the checkpoint's vocabulary differs from %s's", path,
            tr->o.data ? tr->o.data : tr->o.text ? tr->o.text : "the data");
  if (step < 0)
    tr_fail(tr, "%s: corrupt checkpoint (step %lld)", path, (long long)step);
  for (int i = 0; i < m->ntensors; i++) {
    const BpTensor *t = &m->tensors[i];
    if (t->kind == BP_PARAM || t->kind == BP_STAT)
      tr_ck_get(tr, path, len, t->name, tr_type(t), t->rank, t->dims,
                (char *)tr->state + t->offset, t->numel * tr->esize, t->kind == BP_PARAM);
  }
  if (tr->o.adamw) {
    int have = tr_ck_get(tr, path, len, "adamw_t", NPY_I8, 0, &one, &at, 8, 0);
    for (int k = 0; k < 2 && have; k++)
      for (int i = 0; i < m->ntensors; i++) {
        const BpTensor *t = &m->tensors[i];
        if (t->kind != BP_PARAM)
          continue;
        char name[300];
        snprintf(name, sizeof name, "adamw.%c.%s", k ? 'v' : 'm', t->name);
        tr_ck_get(tr, path, len, name, tr_type(t), t->rank, t->dims,
                  (char *)(k ? tr->mom_v : tr->mom_m) + (t->offset - m->param_offset),
                  t->numel * tr->esize, 1);
      }
    if (!have && !tr->o.quiet)
      fprintf(stderr, "note: %s has no AdamW state: moments start at zero\n", path);
    tr->adamw_t = at;
  }
  free(tr->ckbuf);
  tr->ckbuf = NULL;
  tr->step = step;
  tr->batch_rng.s = rng;
  if (seed != tr->o.seed && !tr->o.quiet)
    fprintf(stderr, "note: %s was trained with --seed %llu; the data split follows --seed %llu\n",
            path, (unsigned long long)seed, (unsigned long long)tr->o.seed);
}

/* ---- tensor data: .npy files ---------------------------------------------------- */

/* Reads the .npy file at path into tr->npybuf and its header into h; the
 * data, in C order, starts at tr->npybuf + h->offset (Fortran-order data is
 * reordered into a new buffer). */
static void tr_npy_read(Tr *tr, const char *path, NpyHeader *h) {
  free(tr->npybuf);
  tr->npybuf = NULL;
  size_t len;
  tr_slurp(tr, path, &tr->npybuf, &len);
  char err[256];
  if (npy_header_parse(tr->npybuf, len, 0, h, err, sizeof err) < 0)
    tr_fail(tr, "%s: %s", path, err);
  if (h->fortran) {
    unsigned char *c = tr_alloc(tr, h->offset + h->nbytes);
    npy_to_c_order(c + h->offset, tr->npybuf + h->offset, h);
    free(tr->npybuf);
    tr->npybuf = c;
  }
}

static void tr_shape_str(char *buf, size_t cap, const long *dims, int rank, const char *first) {
  int n = snprintf(buf, cap, "(");
  for (int i = 0; i < rank && (size_t)n < cap; i++) {
    if (i == 0 && first)
      n += snprintf(buf + n, cap - (size_t)n, "%s", first);
    else
      n += snprintf(buf + n, cap - (size_t)n, "%ld", dims[i]);
    if ((size_t)n < cap)
      n += snprintf(buf + n, cap - (size_t)n, "%s", rank == 1 ? "," : i + 1 < rank ? ", " : "");
  }
  if ((size_t)n < cap)
    snprintf(buf + n, cap - (size_t)n, ")");
}

/* Reads input k of split s from path: checks the shape against the input's
 * (examples first), converts into the input's element type, checks the values
 * (finite floats; indices >= 0 and, when maxv > 0, below maxv). */
static void tr_load_input(Tr *tr, TrSplit *s, int k, const char *path, long maxv) {
  const BpTensor *t = tr->tin[k];
  NpyHeader a;
  tr_npy_read(tr, path, &a);
  long want[BP_MAXRANK];
  for (int i = 0; i < t->rank; i++)
    want[i] = t->dims[i];
  int ok = a.rank == t->rank;
  for (int i = 1; ok && i < t->rank; i++)
    ok = a.dim[i] == want[i];
  if (!ok) {
    char got[128], exp[128], in[128];
    tr_shape_str(got, sizeof got, a.dim, a.rank, NULL);
    tr_shape_str(exp, sizeof exp, want, t->rank, "N");
    tr_shape_str(in, sizeof in, want, t->rank, NULL);
    tr_fail(tr, "%s: shape %s does not match input %s %s: expected %s for N examples", path, got,
            t->name, in, exp);
  }
  int isint = t->dtype == BP_I32;
  int isfloat = a.type == NPY_F8 || a.type == NPY_F4;
  if (isint && isfloat)
    tr_fail(tr, "%s: holds floats ('%s') but input %s is int: give indices as '<i4', "
            "'<i8' or '|u1'", path, npy_dtypes[a.type].descr, t->name);
  size_t n = (size_t)a.dim[0], per = t->numel / (size_t)tr->B;
  if (k == 0) {
    s->n = n;
  } else if (n != s->n) {
    tr_fail(tr, "%s has %lu examples but %s has %lu", path, (unsigned long)n,
            tr->o.tfile[s - tr->split][0], (unsigned long)s->n);
  }
  s->td[k] = tr_alloc(tr, n * tr->rowbytes[k]);
  for (size_t i = 0; i < n * per; i++) {
    const unsigned char *p = tr->npybuf + a.offset + i * (size_t)npy_dtypes[a.type].size;
    double f = 0;
    long long v = 0;
    if (a.type == NPY_F4) { float x; memcpy(&x, p, 4); f = x; }
    else if (a.type == NPY_F8) memcpy(&f, p, 8);
    else if (a.type == NPY_U1) v = *p;
    else if (a.type == NPY_I4) { int32_t x; memcpy(&x, p, 4); v = x; }
    else { int64_t x; memcpy(&x, p, 8); v = x; }
    if (!isfloat)
      f = (double)v;
    unsigned char *d = s->td[k] + i * (isint ? sizeof(int32_t) : tr->esize);
    if (!isint) {
      if (!tr_finite(f))
        tr_fail(tr, "%s: row %lu: non-finite value %g", path, (unsigned long)(i / per), f);
      if (tr->esize == sizeof(double))
        memcpy(d, &f, sizeof f);
      else {
        float x = (float)f;
        memcpy(d, &x, sizeof x);
      }
      continue;
    }
    if (v < 0)
      tr_fail(tr, "%s: row %lu: index %lld is negative (input %s holds indices)", path,
              (unsigned long)(i / per), v, t->name);
    if (maxv > 0 && v >= maxv)
      tr_fail(tr, "%s: row %lu: class %lld is out of range 0..%ld (%s has %ld classes)", path,
              (unsigned long)(i / per), v, maxv - 1, tr->tlogits->name, maxv);
    if (v > 2147483647LL)
      tr_fail(tr, "%s: row %lu: index %lld does not fit in int32", path,
              (unsigned long)(i / per), v);
    int32_t x = (int32_t)v;
    memcpy(d, &x, sizeof x);
  }
  free(tr->npybuf);
  tr->npybuf = NULL;
}

/* Tensor data: the three splits from their files (dev and test may be absent:
 * n = 0).  The second input, when it is int[B] and the logits are [B,K], holds
 * classes below K. */
static void tr_load_tensors(Tr *tr) {
  long maxy = 0;
  if (tr->nin == 2 && tr->tin[1]->dtype == BP_I32 && tr->tin[1]->rank == 1 && tr->V > 0)
    maxy = tr->V;
  for (int s = 0; s < TR_SPLITS; s++)
    for (int k = 0; k < tr->nin; k++)
      if (tr->o.tfile[s][k])
        tr_load_input(tr, &tr->split[s], k, tr->o.tfile[s][k], k == 1 ? maxy : 0);
  if (tr->split[0].n == 0)
    tr_fail(tr, "%s: no examples (its first axis is 0)", tr->o.tfile[0][0]);
}

/* Row r of split si gives a NaN loss at initialisation: say why.  A value
 * that went non-finite is in the loss tensor too, and the first non-finite
 * tensor is named (as in training).  An index out of the model's range makes
 * forward return NaN while the loss tensor stays finite (the model flags it):
 * the int input and element are found by setting the row's elements to 0 (an
 * index every table has) from the last back, until the NaN is gone.  The
 * labels were range-checked when read (tr_load_input). */
static void tr_blame_row(Tr *tr, int si, size_t r) {
  const BpModel *m = tr->m;
  const TrSplit *s = &tr->split[si];
  const char *f0 = tr->o.tfile[si][0], *f1 = tr->o.tfile[si][1];
  tr_set_range(tr, s, r, 0, r);
  if (m->set_lean)
    m->set_lean(tr->state, 0);
  double l = m->forward(tr->state);
  double lt = tr_get(tr, &m->tensors[m->loss_index], 0);
  if (!tr_finite(lt) || l == l) {
    const BpTensor *t = tr_nonfinite(tr, 0);
    if (t)
      tr_fail(tr, "%s%s%s: row %lu: the model's loss is %g for this example at initialisation; "
              "first non-finite tensor: %s (spec line %d)", f0, f1 ? ", " : "", f1 ? f1 : "",
              (unsigned long)r, lt, t->name, t->line);
  } else {
    for (int k = 0; k < tr->nin; k++) {
      const BpTensor *in = tr->tin[k];
      if (in->dtype != BP_I32)
        continue;
      size_t per = in->numel / (size_t)tr->B;
      int32_t *x = (int32_t *)((char *)tr->state + in->offset);
      const int32_t *row = (const int32_t *)(s->td[k] + r * tr->rowbytes[k]);
      for (size_t j = per; j-- > 0;) {
        for (int b = 0; b < tr->B; b++)
          x[(size_t)b * per + j] = 0;
        double v = m->forward(tr->state);
        if (v == v)   /* no NaN now: element j was out of range */
          tr_fail(tr, "%s: row %lu: the model's loss is NaN for this example: an index out of "
                  "the model's range (%s holds indices): %ld at position %lu of the row",
                  k ? f1 : f0, (unsigned long)r, in->name, (long)row[j], (unsigned long)j);
      }
      tr_set_range(tr, s, r, 0, r);
    }
  }
  tr_fail(tr, "%s%s%s: row %lu: the model's loss is NaN for this example at "
          "initialisation", f0, f1 ? ", " : "", f1 ? f1 : "", (unsigned long)r);
}

/* Tensor data: every example of split s goes through the model's forward
 * once (in batches; a batch with a NaN loss row by row, each row as a batch of
 * B copies), so a NaN loss -- an index out of the model's range, which the
 * model flags and returns NaN for, or a non-finite value -- is reported with
 * file and row before training. */
static void tr_check_split(Tr *tr, int si) {
  const TrSplit *s = &tr->split[si];
  size_t B = (size_t)tr->B;
  for (size_t i = 0; i < s->n; i += B) {
    int k = s->n - i < B ? (int)(s->n - i) : (int)B;
    tr_set_range(tr, s, i, k, i);
    double l = tr->m->forward(tr->state);
    if (l == l)
      continue;
    for (size_t r = i; r < i + (size_t)k; r++) {
      tr_set_range(tr, s, r, 0, r);
      l = tr->m->forward(tr->state);
      if (l != l)
        tr_blame_row(tr, si, r);
    }
  }
}

/* --log FILE: a new log with its header at step 0; continuing from a
 * checkpoint at step S, the log cut back to its rows of steps 0..S-1 (a
 * killed run may have left later rows and a torn last line), then appended
 * to; a missing or empty log starts again with its header, and so does one
 * that is not a regular file (a pipe or a terminal: a new stream). */
static void tr_open_log(Tr *tr) {
  static const char header[] = "step,loss,dev_loss\n";
  const char *path = tr->o.log;
  size_t keep = 0, len = 0;
  long last = -1;
  struct stat st;
  int exists = stat(path, &st) == 0;
  if (tr->step > 0 && exists && tr_not_regular(&st)) {
    tr->log = fopen(path, "a");   /* a pipe or terminal: a new stream, with its header */
    if (!tr->log)
      tr_fail(tr, "%s: cannot open: %s", path, strerror(errno));
    fputs(header, tr->log);
    return;
  }
  if (tr->step > 0 && exists) {
    tr_slurp(tr, path, &tr->logbuf, &len);
    const char *t = (const char *)tr->logbuf, *end = t + len;
    size_t hl = sizeof header - 1;
    if (len >= hl ? memcmp(t, header, hl) != 0 : memcmp(t, header, len) != 0)
      tr_fail(tr, "--log %s: not a training log (its first line is not step,loss,dev_loss): "
              "not appending to it", path);
    if (len >= hl) {
      keep = hl;
      for (const char *p = t + hl; p < end;) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        char *e;
        errno = 0;
        long row = strtol(p, &e, 10);
        if (!nl || e == p || *e != ',' || errno || (last >= 0 && row != last + 1) ||
            row < 0 || row >= tr->step)
          break;   /* a torn line, or past the checkpoint */
        last = row;
        p = nl + 1;
        keep = (size_t)(p - t);
      }
    }
    free(tr->logbuf);
    tr->logbuf = NULL;
    if (keep < len && truncate(path, (off_t)keep) != 0)
      tr_fail(tr, "%s: cannot cut back to step %ld: %s", path, tr->step, strerror(errno));
    if (!tr->o.quiet && keep < len)
      fprintf(stderr, "note: %s cut back to the checkpoint's step %ld (%lu bytes after it "
              "dropped)\n", path, tr->step, (unsigned long)(len - keep));
    if (!tr->o.quiet && last >= 0 && last + 1 < tr->step)
      fprintf(stderr, "note: %s has no rows for steps %ld..%ld (not in this log)\n", path,
              last + 1, tr->step - 1);
  }
  tr->log = fopen(path, keep > 0 ? "a" : "w");
  if (!tr->log)
    tr_fail(tr, "%s: cannot open: %s", path, strerror(errno));
  if (keep == 0)
    fputs(header, tr->log);
}

static void tr_print_tensors(Tr *tr) {
  const BpModel *m = tr->m;
  static const char *const name[TR_SPLITS] = {"train", "dev", "test"};
  fprintf(tr_out, "data: tensors; examples");
  for (int s = 0; s < TR_SPLITS; s++)
    fprintf(tr_out, "%s %s %lu", s ? "," : "", name[s], (unsigned long)tr->split[s].n);
  fprintf(tr_out, "\nmodel: %s, %lu parameters, batch %d, inputs", m->name,
          (unsigned long)m->nparam, tr->B);
  for (int k = 0; k < tr->nin; k++) {
    const BpTensor *t = tr->tin[k];
    fprintf(tr_out, "%s %s %s[", k ? "," : "", t->name, t->dtype == BP_I32 ? "int" : "");
    for (int i = 0; i < t->rank; i++)
      fprintf(tr_out, "%s%d", i ? ", " : "", t->dims[i]);
    fprintf(tr_out, "] <- %s", tr->o.tfile[0][k]);
  }
  fputc('\n', tr_out);
}

/* ---- training ---------------------------------------------------------------- */

/* The progress line for step `shown` (0-based, as the loss lines). */
static void tr_progress(Tr *tr, long shown, int last, double loss) {
  double el = tr_now() - tr->t0;
  double rate = el > 0 ? (double)(tr->step - tr->first_step) / el : 0;
  double eta = rate > 0 ? (double)(tr->o.steps - tr->step) / rate : 0;
  fprintf(stderr, "%sstep %ld/%ld  loss %.4f  %.0f steps/s  ETA %.0fs%s", tr->tty ? "\r" : "",
          shown, tr->o.steps, loss, rate, eta, tr->tty && !last ? "   " : "\n");
}

/* Stream training: the window of step i in llm.c's order (its training
 * DataLoader with shuffling, one shard): each epoch over the n windows is a
 * permutation of 0..n-1 drawn by random_permutation (for i from n-1 down to
 * 1, j = randint32() % (i+1), swap) from an MT19937 seeded with 42 once, the
 * epochs one after another.  Computed from the step alone, so a run resumed
 * from a checkpoint draws the same windows. */
static size_t tr_stream_window(Tr *tr, long step) {
  size_t n = tr->split[0].n;
  long epoch = (long)((size_t)step / n);
  if (!tr->perm)
    tr->perm = tr_alloc(tr, n * sizeof *tr->perm);
  if (tr->perm_epoch != epoch || !tr->perm_epoch_set) {
    if (!tr->perm_epoch_set || epoch < tr->perm_epoch) {
      tr_mt_init(&tr->perm_mt, 42);
      tr->perm_epoch = -1;
      tr->perm_epoch_set = 1;
    }
    while (tr->perm_epoch < epoch) {
      for (size_t i = 0; i < n; i++)
        tr->perm[i] = (uint32_t)i;
      for (size_t i = n - 1; i > 0; i--) {
        size_t j = tr_mt_next(&tr->perm_mt) % (uint32_t)(i + 1);
        uint32_t t = tr->perm[i];
        tr->perm[i] = tr->perm[j];
        tr->perm[j] = t;
      }
      tr->perm_epoch++;
    }
  }
  return tr->perm[(size_t)step % n];
}

static void tr_train(Tr *tr) {
  const BpModel *m = tr->m;
  const TrOpts *o = &tr->o;
  const TrSplit *s = &tr->split[0];
  const char *fmt = m->dtype == BP_F64 ? "%ld,%.17g," : "%ld,%.9g,";
  double last_shown = 0, loss = 0;
  tr->t0 = tr_now();
  tr->first_step = tr->step;
  while (tr->step < o->steps) {
    long i = tr->step;
    if (tr->mode == TR_STREAM) {
      tr_set_window(tr, s, tr_stream_window(tr, i));
    } else {
      for (int b = 0; b < tr->B; b++)
        tr->idx[b] = (size_t)(bp_rng_next(&tr->batch_rng) % (uint64_t)s->n);
      tr_set_rows(tr, s, tr->idx);
    }
    loss = m->forward(tr->state);
    tr_check_loss(tr, loss);
    m->backward(tr->state);
    tr_check_grads(tr);
    if (o->clip > 0)
      tr_clip_grads(tr, o->clip);
    double lr = tr_lr_at(o, i);
    if (o->adamw)
      tr_adamw(tr, lr);
    else
      m->sgd_step(tr->state, lr);
    tr->step++;
    if (tr->step == tr->first_step + 1 && getenv("BPGEN_STEP_CLOCK")) {
      /* bench/run.sh: wall clock at the end of the first step (start-up time) */
      struct timespec ts;
      clock_gettime(CLOCK_REALTIME, &ts);
      fprintf(stderr, "first step done: %lld ns\n", (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec);
    }
    double dev = NAN;
    if (o->eval_every > 0 && tr->step % o->eval_every == 0) {
      tr_calibrate(tr);
      dev = tr_split_loss(tr, &tr->split[1]);
    }
    if (tr->log) {
      fprintf(tr->log, fmt, i, loss);
      if (tr_finite(dev))
        fprintf(tr->log, m->dtype == BP_F64 ? "%.17g" : "%.9g", dev);
      fputc('\n', tr->log);
    }
    if (!o->quiet && i % o->print_every == 0) {
      fprintf(tr_out, "%7ld/%7ld: %.4f\n", i, o->steps, loss);
      fflush(tr_out);
    }
    if (!o->quiet && tr_finite(dev)) {
      fprintf(tr_out, "%7ld/%7ld: dev loss %.4f\n", tr->step, o->steps, dev);
      fflush(tr_out);
    }
    if (!o->quiet) {
      if (tr->tty) {
        if ((i & 63) == 0) {
          double now = tr_now();
          if (now - last_shown > 0.2) {
            tr_progress(tr, i, 0, loss);
            last_shown = now;
          }
        }
      } else if (i % o->print_every == 0 && i > 0) {
        tr_progress(tr, i, 0, loss);
      }
    }
    if (o->save && o->save_every > 0 && tr->step % o->save_every == 0 && tr->step < o->steps)
      tr_save(tr, o->save);
  }
  if (!o->quiet && tr->tty)
    tr_progress(tr, tr->step, 1, loss);
}

/* A token drawn from the logits at element `off` of the logits tensor (V of
 * them): z = logits / --temperature; with --top-k K only the z at least the
 * K-th largest (ties kept, as makemore's generate); then softmax and one
 * uniform draw of r against the cumulative sums. */
static int tr_cmp_desc(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? 1 : x > y ? -1 : 0;
}

static int tr_pick(Tr *tr, size_t off, BpRng *r) {
  int V = tr->V;
  double temp = tr->o.temperature, mx = -INFINITY, sum = 0, floor = -INFINITY;
  double *z = tr->probs;
  for (int v = 0; v < V; v++) {
    z[v] = tr_get(tr, tr->tlogits, off + (size_t)v) / temp;
    if (z[v] > mx)
      mx = z[v];
  }
  if (tr->o.top_k > 0 && tr->o.top_k < V) {   /* the K-th largest, from a sorted copy */
    double *sorted = tr->probs + V;
    memcpy(sorted, z, (size_t)V * sizeof(double));
    qsort(sorted, (size_t)V, sizeof(double), tr_cmp_desc);
    floor = sorted[tr->o.top_k - 1];
  }
  for (int v = 0; v < V; v++)
    sum += z[v] = z[v] >= floor ? exp(z[v] - mx) : 0;
  double u = bp_uniform(r) * sum, acc = 0;
  int ix = V - 1;
  for (int v = 0; v < V; v++) {
    acc += z[v];
    if (u < acc && z[v] > 0) {
      ix = v;
      break;
    }
  }
  while (z[ix] == 0 && ix > 0)   /* u rounded past the last kept token */
    ix--;
  return ix;
}

static void tr_sample(Tr *tr) {
  const BpModel *m = tr->m;
  BpRng r;
  bp_rng_seed(&r, tr->o.seed + 10);
  int32_t *X = (int32_t *)((char *)tr->state + tr->tx->offset);
  int32_t *Y = (int32_t *)((char *)tr->state + tr->ty->offset);
  free(tr->probs);
  tr->probs = NULL;
  tr->probs = tr_alloc(tr, 2 * (size_t)tr->V * sizeof(double));
  char word[TR_MAXSAMPLE + 2];
  for (long n = 0; n < tr->o.samples; n++) {
    int32_t ctx[64];
    for (int t = 0; t < tr->T; t++)
      ctx[t] = 0;
    int len = 0;
    for (;;) {
      for (int b = 0; b < tr->B; b++) {
        memcpy(X + (size_t)b * tr->T, ctx, (size_t)tr->T * sizeof(int32_t));
        Y[b] = 0;
      }
      m->forward_eval(tr->state);
      int ix = tr_pick(tr, 0, &r);
      word[len++] = tr->itos[ix];
      if (ix == 0 || len == TR_MAXSAMPLE)
        break;
      memmove(ctx, ctx + 1, (size_t)(tr->T - 1) * sizeof(int32_t));
      ctx[tr->T - 1] = ix;
    }
    word[len] = '\0';
    fprintf(tr_out, "%s%s\n", word, word[len - 1] == '.' ? "" : "...");
  }
}

/* Sequences: B words at once, row b the word so far after the start token 0;
 * all rows are at the same position t, the next token drawn from the logits
 * at (b, t) (a causal model: later positions do not matter); a word ends at
 * token 0 or after T-1 characters (makemore's max_new_tokens = max word
 * length with T = that + 1).  Printed as the lecture's: the word, then '.'
 * when it ended ('...' when cut). */
static void tr_sample_seq(Tr *tr) {
  const BpModel *m = tr->m;
  BpRng r;
  bp_rng_seed(&r, tr->o.seed + 10);
  size_t B = (size_t)tr->B, T = (size_t)tr->T, V = (size_t)tr->V;
  int32_t *X = (int32_t *)((char *)tr->state + tr->tx->offset);
  int32_t *Y = (int32_t *)((char *)tr->state + tr->ty->offset);
  free(tr->probs);
  tr->probs = NULL;
  tr->probs = tr_alloc(tr, 2 * V * sizeof(double));
  char *word = tr_alloc(tr, B * (T + 1));
  int *done = tr_alloc(tr, B * sizeof(int));
  for (long first = 0; first < tr->o.samples; first += (long)B) {
    size_t nb = tr->o.samples - first < (long)B ? (size_t)(tr->o.samples - first) : B;
    for (size_t i = 0; i < B * T; i++)
      X[i] = 0, Y[i] = 0;
    for (size_t b = 0; b < B; b++)
      done[b] = b >= nb;
    size_t t = 0;
    for (; t + 1 < T; t++) {
      m->forward_eval(tr->state);
      int active = 0;
      for (size_t b = 0; b < nb; b++) {
        if (done[b])
          continue;
        int ix = tr_pick(tr, (b * T + t) * V, &r);
        X[b * T + t + 1] = ix;
        word[b * (T + 1) + t] = tr->itos[ix];
        done[b] = ix == 0 ? (int)t + 1 : 0;
        active += !done[b];
      }
      if (!active)
        break;
    }
    for (size_t b = 0; b < nb; b++) {
      int len = done[b] ? done[b] : (int)(T - 1);
      fprintf(tr_out, "%.*s%s\n", len, word + b * (T + 1), done[b] ? "" : "...");
    }
  }
  free(word);
  free(done);
}

/* Streams: one sequence in row 0, started with token 0 (for --text the
 * smallest byte, '\n' in most texts), --sample-len N tokens drawn from the
 * logits at its last position, the model fed its last T tokens at most.
 * --text prints the bytes, --data-tokens the token ids. */
static void tr_sample_stream(Tr *tr) {
  const BpModel *m = tr->m;
  long n = tr->o.sample_len;
  if (n <= 0)
    return;
  BpRng r;
  bp_rng_seed(&r, tr->o.seed + 10);
  size_t T = (size_t)tr->T, V = (size_t)tr->V;
  int32_t *X = (int32_t *)((char *)tr->state + tr->tx->offset);
  int32_t *Y = (int32_t *)((char *)tr->state + tr->ty->offset);
  free(tr->probs);
  tr->probs = NULL;
  tr->probs = tr_alloc(tr, 2 * V * sizeof(double));
  tr->samp = tr_alloc(tr, ((size_t)n + 1) * sizeof(int32_t));
  memset(X, 0, tr->tx->numel * sizeof(int32_t));
  memset(Y, 0, tr->ty->numel * sizeof(int32_t));
  fprintf(tr_out, "sample:\n");
  size_t len = 1;   /* samp[0] = 0, the start */
  for (long k = 0; k < n; k++) {
    size_t from = len > T ? len - T : 0, L = len - from;
    for (size_t t = 0; t < L; t++)
      X[t] = tr->samp[from + t];
    m->forward_eval(tr->state);
    int ix = tr_pick(tr, (L - 1) * V, &r);
    tr->samp[len++] = ix;
    if (tr->o.text)
      fputc((unsigned char)tr->itos[ix], tr_out);
    else
      fprintf(tr_out, "%s%d", k ? " " : "", ix);
  }
  fputc('\n', tr_out);
}

static void tr_free(Tr *tr) {
  if (tr->in) fclose(tr->in);
  if (tr->log) fclose(tr->log);
  if (tr->ck) fclose(tr->ck);
  if (tr->tmpname) {
    remove(tr->tmpname);
    free(tr->tmpname);
  }
  tr_unlock(tr);
  free(tr->ckbuf);
  free(tr->logbuf);
  free(tr->membuf);
  free(tr->text);
  free(tr->words);
  for (int i = 0; i < TR_SPLITS; i++) {
    free(tr->split[i].x);
    free(tr->split[i].y);
    free(tr->split[i].td[0]);
    free(tr->split[i].td[1]);
  }
  free(tr->npybuf);
  free(tr->state);
  free(tr->mom_m);
  free(tr->mom_v);
  free(tr->idx);
  free(tr->probs);
  free(tr->tokbuf);
  free(tr->perm);
  free(tr->samp);
  free(tr->seqorder);
  for (int i = 0; i < TR_SPLITS; i++) {
    free(tr->split[i].sx);
    free(tr->split[i].sy);
    free(tr->split[i].tok);
  }
}

int bp_train_main(const BpModel *m, int argc, char **argv) {
  Tr trs;
  Tr *volatile tr = &trs;   /* volatile: used after longjmp */
  memset(tr, 0, sizeof *tr);
  tr->m = m;
  if (!tr_out)
    tr_out = stdout;
  tr_errbuf[0] = '\0';
  tr->tty = isatty(2);
  if (setjmp(tr->jb)) {
    fflush(tr_out);
    tr_free(tr);
    return 1;
  }
  if (tr_parse(tr, argc, argv) == 2)
    return 0;
  const TrOpts *o = &tr->o;
  if (o->save)
    tr_save_prepare(tr, o->save);
  tr_find_tensors(tr);
  if (tr->tensor) {
    tr_load_tensors(tr);
    tr_print_tensors(tr);
  } else if (tr->mode == TR_SEQ) {
    tr_load_seq(tr);
    fprintf(tr_out, "data: %s: %lu words, vocabulary of %d; sequences of %d tokens, train %lu, "
            "test %lu (torch.randperm, seed %lu)\n", o->data, (unsigned long)tr->nwords,
            tr->nvocab, tr->T, (unsigned long)tr->split[0].n, (unsigned long)tr->split[1].n,
            (unsigned long)o->split_seed);
    fprintf(tr_out, "model: %s, %lu parameters, batch %d\n", m->name, (unsigned long)m->nparam,
            tr->B);
  } else if (tr->mode == TR_STREAM) {
    tr_load_stream(tr);
    fprintf(tr_out, "data: %s: %lu tokens train, %lu dev (%s); windows of %d tokens, %lu "
            "batches train, %lu dev\n", tr->split[0].file, (unsigned long)tr->split[0].ntok,
            (unsigned long)tr->split[1].ntok, o->text ? "the last 10%" : o->tokens[1] ?
            o->tokens[1] : "no --val-tokens", tr->T + 1, (unsigned long)tr->split[0].n,
            (unsigned long)tr->split[1].n);
    fprintf(tr_out, "model: %s, %lu parameters, batch %d, vocabulary %d\n", m->name,
            (unsigned long)m->nparam, tr->B, tr->V);
  } else {
    tr_load_data(tr);
    fprintf(tr_out, "data: %s: %lu words, vocabulary of %d; examples train %lu, dev %lu, test %lu\n",
            o->data, (unsigned long)tr->nwords, tr->nvocab, (unsigned long)tr->split[0].n,
            (unsigned long)tr->split[1].n, (unsigned long)tr->split[2].n);
    fprintf(tr_out, "model: %s, %lu parameters, batch %d, context %d\n", m->name,
            (unsigned long)m->nparam, tr->B, tr->T);
  }
  fflush(tr_out);

  size_t ssize = (m->state_size + 63) / 64 * 64;
  tr->state = tr_alloc(tr, ssize);
  tr->idx = tr_alloc(tr, (size_t)tr->B * sizeof(size_t));
  m->init(tr->state, o->seed);
  if (m->set_lean)   /* the params' grads, loss and logits are all training reads */
    m->set_lean(tr->state, 1);
  for (int s = 0; s < TR_SPLITS && tr->tensor; s++)
    tr_check_split(tr, s);
  if (tr->mode == TR_SEQ)
    tr_check_ignore(tr);
  bp_rng_seed(&tr->batch_rng, o->seed + 2);
  if (o->adamw) {
    tr->mom_m = tr_alloc(tr, m->nparam * tr->esize);
    tr->mom_v = tr_alloc(tr, m->nparam * tr->esize);
  }
  if (o->bn_momentum > 0) {   /* part 5: running mean 0, running variance 1 */
    if (!m->set_bn_momentum)
      tr_fail(tr, "--bn-stats running: the model has no batchnorm");
    for (int i = 0; i < m->ntensors; i++) {
      const BpTensor *t = &m->tensors[i];
      size_t l = strlen(t->name);
      if (t->kind == BP_STAT && l > 4 && strcmp(t->name + l - 4, ".var") == 0)
        for (size_t k = 0; k < t->numel; k++) {
          if (t->dtype == BP_F32) ((float *)((char *)tr->state + t->offset))[k] = 1;
          else ((double *)((char *)tr->state + t->offset))[k] = 1;
        }
    }
    m->set_bn_momentum(tr->state, o->bn_momentum);
  }
  if (o->load) {
    tr_load(tr, o->load);
    fprintf(tr_out, "loaded %s at step %ld\n", o->load, tr->step);
  }
  if (o->log)
    tr_open_log(tr);
  long start = tr->step;
  double t0 = tr_now();
  tr_train(tr);
  double el = tr_now() - t0;
  if (!o->quiet && tr->step > start)
    fprintf(stderr, "trained %ld steps in %.1fs (%.0f steps/s)\n", tr->step - start, el,
            (double)(tr->step - start) / (el > 0 ? el : 1));
  if (tr->log) {
    if (fclose(tr->log) != 0) {
      tr->log = NULL;
      tr_fail(tr, "%s: write error", o->log);
    }
    tr->log = NULL;
  }
  tr_calibrate(tr);
  if (o->save)
    tr_save(tr, o->save);
  double ltr = tr_split_loss(tr, &tr->split[0]), ldev = tr_split_loss(tr, &tr->split[1]);
  fprintf(tr_out, "train loss %.4f\n", ltr);
  const char *held = tr->mode == TR_SEQ ? "test" : "dev";   /* makemore's split is train/test */
  if (tr_finite(ldev))
    fprintf(tr_out, "%s loss %.4f\n", held, ldev);
  else
    fprintf(tr_out, "%s loss n/a (no %s %s)\n", held, held,
            tr->tensor ? "split: --dev-x" : tr->mode == TR_STREAM ? "tokens" : "words");
  if (tr->tensor && tr->split[2].n > 0)
    fprintf(tr_out, "test loss %.4f\n", tr_split_loss(tr, &tr->split[2]));
  if (tr->mode == TR_CTX)
    tr_sample(tr);
  else if (tr->mode == TR_SEQ)
    tr_sample_seq(tr);
  else if (tr->mode == TR_STREAM)
    tr_sample_stream(tr);
  fflush(tr_out);
  tr_free(tr);
  return 0;
}
