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
 * Each entry carries a CRC-32 that loading checks.  --save FILE.safetensors
 * writes the same entries as safetensors (see tr_st_entry); --load reads
 * either, and a file of weights alone (no step) too (see tr_load); .bin is
 * llm.c's format (below).  Any other --save extension is refused before
 * training.  A checkpoint is written to
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
#include "../runtime/bp_comm.h"     /* the same; <mpi.h> under -DBP_MPI */
#include "../runtime/llmc_ckpt.h"   /* likewise */

enum { TR_SPLITS = 3, TR_MAXSAMPLE = 200 };
enum { TR_SCHED_STEP, TR_SCHED_COSINE, TR_SCHED_CONSTANT };   /* --lr-schedule */
/* what the trainer feeds (Tr.mode): the lecture's contexts (X int[B,T], Y
 * int[B]); makemore's sequences (X, Y int[B,T], a word a row); a token
 * stream (X, Y int[B,T], windows of T+1 tokens); tensors from .npy files */
enum { TR_CTX, TR_SEQ, TR_STREAM, TR_TENSOR };
/* what the entry point does (Tr.cmd): bp_train_main trains; bp_predict_main
 * and bp_sample_main use a checkpoint without training */
enum { TR_TRAIN, TR_PREDICT, TR_SAMPLE };

typedef struct TrOpts {
  const char *data;        /* --data FILE: words, one per line */
  const char *log;         /* --log FILE: CSV step,loss,dev_loss */
  const char *save;        /* --save FILE: checkpoint written at the end (and --save-every) */
  const char *load;        /* --load FILE: checkpoint to continue from */
  long steps;              /* --steps N (total, counting loaded steps) */
  long decay_at;           /* --decay-at N: lr/10 from this step (default steps/2) */
  long eval_every;         /* --eval-every N: dev loss every N steps (0: never) */
  long eval_batches;       /* --eval-batches N: a stream split's loss over its first N windows (0: all) */
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
  int sync_bn;             /* --sync-bn: batchnorm's batch statistics over the ranks */
  int comm_stats;          /* --comm-stats: rank 0 prints the allreduces' count and time */
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
  int seed_set;            /* --seed given (predict, sample: else the checkpoint's) */
  int argmax, json;        /* predict: --argmax (classes), --json (summary on stdout) */
  const char *out;         /* predict: -o FILE.npy (- for standard output) */
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
  int ckfmt;               /* its format (TR_CK_NPZ, TR_CK_ST) */
  struct TrStEntry *st;    /* safetensors being read: its tensors (nst), sorted by name */
  int nst;
  char *stnames;           /* their names */
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
  int cmd;                 /* TR_TRAIN, or bpgen predict / sample (TR_PREDICT, TR_SAMPLE) */
  double t0;               /* training start */
  long first_step;
} Tr;

static char tr_errbuf[1024];     /* the last error message (for tests) */
static int tr_parsing;           /* in tr_parse: an error is a usage error (status 2) */
static FILE *tr_out;             /* results: losses, samples (stdout unless set) */

/* Data-parallel training (issue 17; the tr_mpi_* functions before "training"):
 * the ranks of this run.  One process (rank 0 of 1) unless a launcher started
 * it with MPI at hand. */
typedef struct TrMpi {
  const BpComm *c;         /* the table in use */
  BpComm own;              /* the table filled here (one process, or -DBP_MPI's) */
  int rank, size;
  int started;             /* -DBP_MPI: MPI_Init was called here; finalised at the end */
  FILE *out, *null;        /* rank > 0: tr_out before, and /dev/null in its place */
  BpRanks ranks;           /* the model's view (set_ranks): --sync-bn, calibration */
  double share;            /* this rank's share of the step's loss (--sync-bn's backward) */
  /* --comm-stats: allreduces [0] of the gradients, [1] batchnorm's, [2] the rest */
  long ncalls[3];
  double secs[3], bytes[3];
} TrMpi;
static TrMpi tr_mpi = {NULL, {0, 1, NULL, NULL, NULL, NULL, NULL}, 0, 1, 0, NULL, NULL,
                       {0, 1, NULL, NULL}, 1, {0}, {0}, {0}};
static const BpComm *tr_comm_given;   /* bp_train_set_comm's, or NULL */

static void tr_fail(Tr *tr, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(tr_errbuf, sizeof tr_errbuf, fmt, ap);
  va_end(ap);
  fflush(tr_out);
  if (tr->tty && !tr->o.quiet)
    fputc('\n', stderr);
  if (tr_mpi.size > 1)   /* which rank: the others may not have seen it */
    fprintf(stderr, "bpgen: error: rank %d of %d: %s\n", tr_mpi.rank, tr_mpi.size, tr_errbuf);
  else
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
  "  --sync-bn           MPI: batchnorm's batch mean and variance over all the\n"
  "                      ranks' rows (SyncBatchNorm), not each rank's own (the\n"
  "                      default, as DistributedDataParallel); the model must be\n"
  "                      generated with it (bpgen run --sync-bn does)\n"
  "  --comm-stats        MPI: at the end, rank 0 prints the allreduces' count, bytes\n"
  "                      and time (the gradients', batchnorm's, the rest)\n"
  "  --seed N            init (seed), batches (seed+2), samples (seed+10)\n"
  "  --split-seed N      shuffle of the words before the 80/10/10 split, as Python's\n"
  "                      random.seed(N); random.shuffle(words) (default 42, the lecture's);\n"
  "                      sequences: torch.manual_seed(N); torch.randperm (default\n"
  "                      3407, makemore's), the last min(1000, 10%) words the test set\n"
  "  --eval-every N      dev loss every N steps (default 0: only at the end)\n"
  "  --eval-batches N    token streams: a split's loss over its first N batches\n"
  "                      (windows of B x T) instead of all of them (default 0: all)\n"
  "  --print-every N     loss line every N steps (default min(10000, steps/10))\n"
  "  --log FILE          CSV step,loss,dev_loss of every step (see bpgen plot)\n"
  "  --save FILE         checkpoint (.npz or .safetensors) at the end, and every\n"
  "                      --save-every N steps\n"
  "                      (FILE.bin: llm.c's GPT-2 checkpoint, params only, fp32)\n"
  "  --load FILE         continue from a checkpoint (or start from llm.c's, by its\n"
  "                      magic: its params only)\n"
  "  --resume            --load the --save file when it exists\n"
  "  --samples N         words sampled after training (default 20; words only)\n"
  "  --sample-len N      tokens sampled from a stream model (default 200)\n"
  "  --temperature X     sampling: logits / X (default 1)\n"
  "  --top-k K           sampling: only the K most likely tokens (default 0: all)\n"
  "  --quiet             no progress or loss lines, only the results\n"
  "  --json              the results as one JSON object on standard output (full\n"
  "                      precision); the text lines go to standard error\n"
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

/* predict and sample: a checkpoint, and tensor data for predict only. */
static void tr_use_opts_check(Tr *tr) {
  TrOpts *o = &tr->o;
  if (!o->load)
    tr_fail(tr, "no checkpoint: give --load FILE.npz (written by bpgen run --save)");
  if (o->data || o->text || o->tokens[0] || o->save || o->log || o->resume)
    tr_fail(tr, "%s trains nothing: --data, --text, --data-tokens, --save, --log and --resume "
            "are run's options", tr->cmd == TR_PREDICT ? "predict" : "sample");
  for (int s = 1; s < TR_SPLITS; s++)
    if (o->tfile[s][0] || o->tfile[s][1])
      tr_fail(tr, "predict reads one split: --data-x X.npy [--data-y Y.npy]");
  if (tr->cmd == TR_SAMPLE) {
    if (o->tfile[0][0] || o->tfile[0][1])
      tr_fail(tr, "sample reads no data: it draws from the checkpoint's model");
    return;
  }
  if (!o->tfile[0][0])
    tr_fail(tr, "no data: give --data-x X.npy (the model's first input)");
  if (o->tfile[0][1] && !o->tfile[0][0])
    tr_fail(tr, "--data-y needs --data-x too (the model's first input)");
  if (o->json && o->out && strcmp(o->out, "-") == 0)
    tr_fail(tr, "--json and -o - both write to standard output: give -o FILE.npy");
  tr->tensor = 1;
  tr->mode = TR_TENSOR;
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
  tr_parsing = 1;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = NULL;
    char name[40];
    const char *eq = strncmp(a, "--", 2) == 0 && a[2] != '=' ? strchr(a, '=') : NULL;
    if (eq) {   /* --opt=value */
      if ((size_t)(eq - a) >= sizeof name)
        tr_fail(tr, "unknown option '%.*s' (see --help)", (int)(eq - a), a);
      memcpy(name, a, (size_t)(eq - a));
      name[eq - a] = '\0';
      a = name;
      v = eq + 1;
    }
    int flag = strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0 || strcmp(a, "--quiet") == 0 ||
               strcmp(a, "--resume") == 0 || strcmp(a, "--argmax") == 0 || strcmp(a, "--json") == 0 ||
               strcmp(a, "--sync-bn") == 0 || strcmp(a, "--comm-stats") == 0;
    if (flag && v)
      tr_fail(tr, "%s takes no value ('%s'; see --help)", a, argv[i]);
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      fputs(tr_usage, tr_out);
      tr_parsing = 0;
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
    if (strcmp(a, "--sync-bn") == 0 && tr->cmd == TR_TRAIN) {
      o->sync_bn = 1;
      continue;
    }
    if (strcmp(a, "--comm-stats") == 0 && tr->cmd == TR_TRAIN) {
      o->comm_stats = 1;
      continue;
    }
    if (strcmp(a, "--json") == 0 && tr->cmd != TR_SAMPLE) {
      o->json = 1;
      continue;
    }
    if (strcmp(a, "--argmax") == 0 && tr->cmd == TR_PREDICT) {
      o->argmax = 1;
      continue;
    }
    if (strcmp(a, "-n") == 0 && tr->cmd == TR_SAMPLE) {   /* words, or a stream's tokens */
      if (i + 1 >= argc)
        tr_fail(tr, "-n needs a value (see --help)");
      o->samples = o->sample_len = tr_long(tr, a, argv[++i], 0);
      continue;
    }
    if (strcmp(a, "-o") == 0 && tr->cmd == TR_PREDICT) {
      if (i + 1 >= argc)
        tr_fail(tr, "-o needs a value (see --help)");
      o->out = argv[++i];
      continue;
    }
    if (a[0] != '-' || a[1] != '-')
      tr_fail(tr, "%s '%s' (see --help)", a[0] == '-' ? "unknown option" : "unexpected argument", a);
    if (!v) {
      if (i + 1 >= argc)
        tr_fail(tr, "%s needs a value (see --help)", a);
      v = argv[++i];
    }
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
    else if (strcmp(a, "--eval-batches") == 0) o->eval_batches = tr_long(tr, a, v, 0);
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
      o->seed_set = 1;
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
  if (tr->cmd != TR_TRAIN) {
    tr_use_opts_check(tr);
    tr_parsing = 0;
    return 0;
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
  tr_parsing = 0;
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
    if (tr->nin == 2 && o->tfile[s][0] && !o->tfile[s][1] && tr->cmd != TR_PREDICT)
      tr_fail(tr, "model %s has two inputs (%s, %s): give %s-y too", m->name,
              tr->tin[0]->name, tr->tin[1]->name, split[s]);
  }
}

/* "[32, 3]": a tensor's dims (static storage, two at a time) */
static const char *tr_dims_str(const BpTensor *t) {
  static char buf[2][64];
  static int k;
  char *b = buf[k ^= 1];
  size_t n = 0;
  b[n++] = '[';
  for (int i = 0; i < t->rank && n < 50; i++)
    n += (size_t)snprintf(b + n, 64 - n, "%s%d", i ? ", " : "", t->dims[i]);
  snprintf(b + n, 64 - n, "]");
  return b;
}

/* The lecture's contexts: X the int input [B,T] (or [B]: one token), Y the int input [B],
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
      tr_fail(tr, "model %s: input %s is int%s: the words trainer feeds a context int[B,T] (or "
              "int[B], one token) and targets int[B] or int[B,T]%s", m->name, t->name,
              tr_dims_str(t), nin == 2 ? ", two inputs in all" : "");
    in[nin++] = t;
  }
  int seq = nin == 2 && in[0]->rank == 2 && in[1]->rank == 2;
  if (seq) {
    tr->tx = in[0];
    tr->ty = in[1];
  } else if (nin == 2 && in[0]->rank == 1 && in[1]->rank == 1) {
    tr->tx = in[0];   /* a bigram: a context of one token, then the targets (spec order) */
    tr->ty = in[1];
  } else {
    for (int k = 0; k < nin; k++) {
      if (in[k]->rank == 2 && !tr->tx)
        tr->tx = in[k];
      else if (in[k]->rank == 1 && !tr->ty)
        tr->ty = in[k];
    }
  }
  if (!tr->tx || !tr->ty) {
    if (nin < 2)
      tr_fail(tr, "model %s has %s: the words trainer needs two int inputs, a context X : "
              "int[B,T] (or int[B], one token) and targets Y : int[B] (or X, Y : int[B,T], "
              "sequences)", m->name, nin ? "one input" : "no inputs");
    tr_fail(tr, "model %s: inputs %s int%s and %s int%s: the words trainer needs a context X : "
            "int[B,T] (or int[B], one token) and targets Y : int[B], or X, Y : int[B,T] "
            "(sequences)", m->name, in[0]->name, tr_dims_str(in[0]), in[1]->name,
            tr_dims_str(in[1]));
  }
  tr->B = tr->tx->dims[0];
  tr->T = tr->tx->rank == 2 ? tr->tx->dims[1] : 1;
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
  tr->in = fopen(strcmp(path, "-") == 0 ? "/dev/stdin" : path, "rb");   /* -: standard input */
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
  size_t bt = (size_t)tr->B * (size_t)tr->T * (size_t)tr_mpi.size;   /* MPI: the global batch's */
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
 * dataloader_load_batch).  Over MPI a window is the global batch's, size*B
 * rows, and `part` picks which B of them (tr_set_window: this rank's). */
static void tr_set_window_part(Tr *tr, const TrSplit *s, size_t w, int part) {
  int32_t *X = (int32_t *)((char *)tr->state + tr->tx->offset);
  int32_t *Y = (int32_t *)((char *)tr->state + tr->ty->offset);
  size_t bt = (size_t)tr->B * (size_t)tr->T;
  const uint16_t *p = s->tok + (w * (size_t)tr_mpi.size + (size_t)part) * bt;
  for (size_t i = 0; i < bt; i++) {
    X[i] = p[i];
    Y[i] = p[i + 1];
  }
}

static void tr_set_window(Tr *tr, const TrSplit *s, size_t w) {
  tr_set_window_part(tr, s, w, tr_mpi.rank);
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
static int tr_mpi_mine(size_t batch);
static void tr_mpi_sum(Tr *tr, void *buf, size_t n, int f64, const char *what);

static double tr_split_loss(Tr *tr, const TrSplit *s) {
  if (s->n == 0)
    return NAN;
  if (tr->mode == TR_SEQ || tr->mode == TR_STREAM)
    return tr_split_loss_seq(tr, s);
  size_t B = (size_t)tr->B, i = 0, j = 0;
  double sum = 0;
  for (; i + B <= s->n; i += B, j++) {   /* MPI: batch j on rank j mod size */
    if (!tr_mpi_mine(j))
      continue;
    tr_set_range(tr, s, i, (int)B, 0);
    sum += (double)B * tr->m->forward_eval(tr->state);
  }
  if (i < s->n && tr_mpi_mine(j)) {
    int k = (int)(s->n - i);
    tr_set_range(tr, s, i, k, i);
    double lp = tr->m->forward_eval(tr->state);
    tr_set_range(tr, s, i, 0, i);
    double lr = tr->m->forward_eval(tr->state);
    sum += (double)B * lp - (double)(B - (size_t)k) * lr;
  }
  tr_mpi_sum(tr, &sum, 1, 1, "the split's loss");
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
  size_t B = (size_t)tr->B, n = s->n;
  if (tr->mode == TR_STREAM && tr->o.eval_batches > 0 && (size_t)tr->o.eval_batches < n)
    n = (size_t)tr->o.eval_batches;   /* the first windows: the same every time */
  double sum = 0, cnt = 0;
  for (size_t i = 0; i < n; i += tr->mode == TR_SEQ ? B : 1) {
    if (tr->mode == TR_SEQ && !tr_mpi_mine(i / B))   /* a stream window: every rank its part */
      continue;
    if (tr->mode == TR_SEQ)
      tr_set_range(tr, s, i, n - i < B ? (int)(n - i) : (int)B, 0);
    else
      tr_set_window(tr, s, i);
    size_t c = tr_valid_count(tr);
    double l = tr->m->forward_eval(tr->state);
    if (c > 0) {
      sum += (double)c * l;
      cnt += (double)c;
    }
  }
  double sc[2] = {sum, cnt};
  tr_mpi_sum(tr, sc, 2, 1, "the split's loss");
  sum = sc[0], cnt = sc[1];
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

/* The model's view of the ranks (set_ranks) on or off: on only around what
 * every rank does at the same point (a training step's forward and backward
 * under --sync-bn, calibration), so that a forward one rank runs alone (a NaN
 * being named) never waits for the others. */
static void tr_set_ranks(Tr *tr, int on) {
  if (tr_mpi.size > 1 && tr->m->set_ranks)
    tr->m->set_ranks(tr->state, on ? &tr_mpi.ranks : NULL);
}

/* Batchnorm statistics over the whole training split, the lecture's way: the
 * mean and unbiased variance of the batchnorm input over every training row.
 * Over MPI the batches are split over the ranks (batch j on rank j mod N; a
 * stream window's N parts each on its rank), each rank merges its rows into
 * the model's sums, and the model's calib_end merges the ranks' sums in rank
 * order: the statistics of one process, to rounding, the same on every rank.
 * A model without set_ranks (hand-written): every rank over the whole split. */
static void tr_calibrate(Tr *tr) {
  if (!tr_has_stats(tr) || tr->o.bn_momentum > 0)   /* running statistics: nothing to gather */
    return;
  const TrSplit *s = &tr->split[0];
  size_t B = (size_t)tr->B;
  int split = tr_mpi.size > 1 && tr->m->set_ranks;
  tr_set_ranks(tr, 1);
  for (int pass = 0; pass < tr->m->calib_passes; pass++) {
    tr->m->calib_begin(tr->state, pass);
    for (size_t w = 0; tr->mode == TR_STREAM && w < s->n; w++)
      for (int part = 0; part < tr_mpi.size; part++) {
        if (split && part != tr_mpi.rank)
          continue;
        tr_set_window_part(tr, s, w, part);
        tr->m->calib_accum(tr->state, tr->B);
      }
    for (size_t i = 0, j = 0; tr->mode != TR_STREAM && i < s->n; i += B, j++) {
      if (split && !tr_mpi_mine(j))
        continue;
      int k = s->n - i < B ? (int)(s->n - i) : (int)B;
      tr_set_range(tr, s, i, k, i);
      tr->m->calib_accum(tr->state, k);
    }
    tr->m->calib_end(tr->state);
  }
  tr_set_ranks(tr, 0);
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
#ifdef BP_KERNEL_LIST
  /* after a model bpgen emitted: the same loop in its gcc-compiled kernel
   * (runtime/kernels.h); under libtcc, the loop below was ~7% of a transformer's step */
  double decay = 1 - lr * o->wd, step = lr / b1c, c2 = sqrt(b2c);
  char *p = (char *)tr->state + m->param_offset;
  const char *g = (const char *)tr->state + m->grad_offset;
  if (m->dtype == BP_F64)
    bp_adamw_torch_f64(m->nparam, (double *)p, (const double *)g, (double *)tr->mom_m, (double *)tr->mom_v,
                       o->beta1, o->beta2, o->eps, decay, step, c2);
  else
    bp_adamw_torch_f32(m->nparam, (float *)p, (const float *)g, (float *)tr->mom_m, (float *)tr->mom_v,
                       (float)o->beta1, (float)o->beta2, (float)o->eps, (float)decay, (float)step, (float)c2);
#else
  if (m->dtype == BP_F64)
    TR_ADAMW(double, sqrt);
  else
    TR_ADAMW(float, sqrtf);
#endif
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

/* checkpoint formats (by --save's extension; --load also looks at the bytes) */
enum { TR_CK_NPZ, TR_CK_ST };

typedef struct TrCkWriter {
  FILE *f;
  uint32_t off;                /* bytes written so far */
  unsigned char *cd;           /* central directory being built */
  size_t cdlen, cdcap;
  int nentries;
  int st;                      /* safetensors: 1 while building the header, 2 writing the data */
  size_t jlen, jcap;           /* safetensors: the JSON header so far (in tr->membuf) */
  uint64_t doff;               /* safetensors: data bytes so far */
} TrCkWriter;

static void tr_st_entry(Tr *tr, TrCkWriter *w, const char *name, NpyType type, int rank,
                        const int *dims, const void *data, size_t nbytes);

static void tr_ck_entry(Tr *tr, TrCkWriter *w, const char *name, NpyType type, int rank,
                        const int *dims, const void *data, size_t nbytes) {
  if (w->st) {
    tr_st_entry(tr, w, name, type, rank, dims, data, nbytes);
    return;
  }
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

/* ---- checkpoints: .safetensors ---------------------------------------------- *
 * The format Hugging Face and PyTorch users exchange weights in: an 8-byte
 * little-endian header length N, N bytes of JSON,
 *   {"__metadata__": {"format": "pt"}, "W1": {"dtype": "F32", "shape": [30, 64],
 *    "data_offsets": [BEGIN, END]}, ...}
 * then the data: each tensor's little-endian bytes in C order at [BEGIN, END),
 * counted from the end of the header.  bpgen writes the entries its .npz holds,
 * under the same names and in the same order, except that rng and seed are
 * I64 (the same 64 bits: PyTorch before 2.3 has no uint64, and
 * safetensors.torch would refuse the whole file); the header is padded with
 * spaces so that the data starts at a multiple of 8 bytes. */

/* safetensors' dtypes: name, bytes, and the NpyType bpgen reads it as (-1: none) */
static const struct TrStType { const char *name; int size, npy; } tr_st_types[] = {
  {"F64", 8, NPY_F8}, {"F32", 4, NPY_F4}, {"I32", 4, NPY_I4}, {"I64", 8, NPY_I8},
  {"U8", 1, NPY_U1},  {"U64", 8, NPY_U8}, {"F16", 2, -1},     {"BF16", 2, -1},
  {"I8", 1, -1},      {"I16", 2, -1},     {"U16", 2, -1},     {"U32", 4, -1},
  {"BOOL", 1, -1},    {"F8_E4M3", 1, -1}, {"F8_E5M2", 1, -1},
};
enum { TR_ST_NTYPES = sizeof tr_st_types / sizeof tr_st_types[0] };

/* the safetensors name of an NpyType */
static const char *tr_st_name(NpyType t) {
  for (int i = 0; i < TR_ST_NTYPES; i++)
    if (tr_st_types[i].npy == (int)t)
      return tr_st_types[i].name;
  return "?";
}

/* Appends to the JSON header being built in tr->membuf. */
static void tr_jput(Tr *tr, TrCkWriter *w, const char *fmt, ...) {
  if (!w->jcap) {   /* tr->membuf may hold the last .npz entry, or nothing */
    free(tr->membuf);
    tr->membuf = tr_alloc(tr, w->jcap = 1024);
  }
  for (;;) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf((char *)tr->membuf + w->jlen, w->jcap - w->jlen, fmt, ap);
    va_end(ap);
    if (n < 0)
      tr_fail(tr, "%s: cannot format the safetensors header", tr->tmpname);
    if ((size_t)n < w->jcap - w->jlen) {
      w->jlen += (size_t)n;
      return;
    }
    size_t cap = (w->jcap + (size_t)n + 1) * 2;
    unsigned char *nb = realloc(tr->membuf, cap);
    if (!nb)
      tr_fail(tr, "out of memory");
    tr->membuf = nb;
    w->jcap = cap;
  }
}

/* One entry: its line of the header (w->st 1) or its bytes (w->st 2). */
static void tr_st_entry(Tr *tr, TrCkWriter *w, const char *name, NpyType type, int rank,
                        const int *dims, const void *data, size_t nbytes) {
  if (w->st == 2) {
    if (fwrite(data, 1, nbytes, w->f) != nbytes)
      tr_fail(tr, "%s: write error: %s", tr->tmpname, strerror(errno));
    return;
  }
  tr_jput(tr, w, ",\"");
  for (const char *c = name; *c; c++)   /* names are identifiers and dots; escape anyway */
    tr_jput(tr, w, *c == '"' || *c == '\\' ? "\\%c" : (unsigned char)*c < 0x20 ? "\\u%04x" : "%c", *c);
  tr_jput(tr, w, "\":{\"dtype\":\"%s\",\"shape\":[", type == NPY_U8 ? "I64" : tr_st_name(type));
  for (int i = 0; i < rank; i++)
    tr_jput(tr, w, "%s%d", i ? "," : "", dims[i]);
  tr_jput(tr, w, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)w->doff,
          (unsigned long long)(w->doff + nbytes));
  w->doff += nbytes;
}

/* --save's format, from its extension (any case): .npz or .safetensors; -1 else. */
static int tr_ck_format(const char *path) {
  const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
  const char *dot = strrchr(base, '.');
  if (!dot || dot == base)
    return -1;
  const char *want[] = {".npz", ".safetensors"};
  for (int k = 0; k < 2; k++) {
    size_t i = 0;
    while (dot[i] && want[k][i] && (dot[i] | 0x20) == want[k][i])
      i++;
    if (!dot[i] && !want[k][i])
      return k == 0 ? TR_CK_NPZ : TR_CK_ST;
  }
  return -1;
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

/* The end of every checkpoint writer: flush and sync the temporary file, then
 * rename it over `path` (atomic: a reader sees the old file or the new one). */
static void tr_ck_commit(Tr *tr, const char *path, int ok) {
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
    t[p] = bp_find_tensor(m, lp->name, BP_PARAM);
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
  tr_ck_commit(tr, path, ok);
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

/* Every entry of a checkpoint, in order, to w (the .npz's zip, or one pass
 * of the safetensors writer). */
static void tr_ck_entries(Tr *tr, TrCkWriter *w) {
  const BpModel *m = tr->m;
  int one = 1;
  int64_t step = tr->step, at = tr->adamw_t;
  uint64_t rng = tr->batch_rng.s, seed = tr->o.seed;
  int nv = tr->nvocab;
  tr_ck_entry(tr, w, "step", NPY_I8, 0, &one, &step, 8);
  tr_ck_entry(tr, w, "rng", NPY_U8, 0, &one, &rng, 8);
  tr_ck_entry(tr, w, "seed", NPY_U8, 0, &one, &seed, 8);
  tr_ck_entry(tr, w, "vocab", NPY_U1, 1, &nv, tr->itos, (size_t)nv);
  if (tr->o.adamw)
    tr_ck_entry(tr, w, "adamw_t", NPY_I8, 0, &one, &at, 8);
  for (int i = 0; i < m->ntensors; i++) {
    const BpTensor *t = &m->tensors[i];
    if (t->kind == BP_PARAM || t->kind == BP_STAT)
      tr_ck_tensor(tr, w, t->name, t, (char *)tr->state + t->offset);
  }
  for (int k = 0; k < 2 && tr->o.adamw; k++)
    for (int i = 0; i < m->ntensors; i++) {
      const BpTensor *t = &m->tensors[i];
      if (t->kind != BP_PARAM)
        continue;
      char name[300];
      snprintf(name, sizeof name, "adamw.%c.%s", k ? 'v' : 'm', t->name);
      tr_ck_tensor(tr, w, name, t, (char *)(k ? tr->mom_v : tr->mom_m) + (t->offset - m->param_offset));
    }
}

static void tr_save(Tr *tr, const char *path) {
  if (tr_llmc_path(path)) {   /* llm.c's format */
    tr_llmc_save(tr, path);
    return;
  }
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
  int ok;
  if (tr_ck_format(path) == TR_CK_ST) {
    w.st = 1;
    tr_jput(tr, &w, "{\"__metadata__\":{\"format\":\"pt\"}");
    tr_ck_entries(tr, &w);
    tr_jput(tr, &w, "}");
    while ((8 + w.jlen) % 8)
      tr_jput(tr, &w, " ");
    unsigned char n8[8];
    tr_put32(n8, (uint32_t)w.jlen);
    tr_put32(n8 + 4, (uint32_t)((uint64_t)w.jlen >> 32));
    if (fwrite(n8, 1, 8, tr->ck) != 8 || fwrite(tr->membuf, 1, w.jlen, tr->ck) != w.jlen)
      tr_fail(tr, "%s: write error: %s", tr->tmpname, strerror(errno));
    w.st = 2;
    tr_ck_entries(tr, &w);
    ok = 1;
  } else {
    tr_ck_entries(tr, &w);
    unsigned char e[22];
    memset(e, 0, sizeof e);
    tr_put32(e, 0x06054b50u);
    tr_put16(e + 8, (unsigned)w.nentries);
    tr_put16(e + 10, (unsigned)w.nentries);
    tr_put32(e + 12, (uint32_t)w.cdlen);
    tr_put32(e + 16, w.off);
    ok = fwrite(w.cd, 1, w.cdlen, tr->ck) == w.cdlen && fwrite(e, 1, 22, tr->ck) == 22;
    free(w.cd);
  }
  tr_ck_commit(tr, path, ok);
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
  if (tr_ck_format(path) < 0 && !tr_llmc_path(path))
    tr_fail(tr, "--save %s: unknown checkpoint format: name it FILE.npz (numpy's) or "
            "FILE.safetensors (Hugging Face's); FILE.bin is llm.c's GPT-2 format (params only)",
            path);
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

/* ---- reading .safetensors ------------------------------------------------------- *
 * The JSON header is read by a small recursive-descent scanner bounded by the
 * header's end (nesting at most 64 deep): any bytes give either a table of
 * tensors or one message naming the file, and the tensor where there is one.
 * Checked: the header length against the file's, the JSON syntax, each
 * tensor's dtype (one of safetensors'), shape (non-negative integers, at most
 * TR_ST_MAXRANK) and data_offsets (in the data, as many bytes as dtype and
 * shape make), no two tensors overlapping, no name twice.  __metadata__ must
 * be an object; other keys of a tensor are skipped. */

enum { TR_ST_MAXRANK = 16 };

typedef struct TrStEntry {
  const char *name;            /* in tr->stnames */
  const struct TrStType *type;
  int rank;
  long dim[TR_ST_MAXRANK];
  uint64_t begin, end;         /* bytes, from the end of the header */
} TrStEntry;

typedef struct TrJs {
  Tr *tr;
  const char *path;
  const unsigned char *b, *p, *end;   /* the header: its start, the scan, its end */
} TrJs;

static void tr_js_fail(TrJs *j, const char *what) {
  tr_fail(j->tr, "%s: not a safetensors file: its JSON header %s (at byte %lu of %lu)", j->path,
          what, (unsigned long)(j->p - j->b), (unsigned long)(j->end - j->b));
}

static int tr_js_peek(TrJs *j) {
  while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
    j->p++;
  return j->p < j->end ? *j->p : -1;
}

static void tr_js_expect(TrJs *j, int c, const char *what) {
  if (tr_js_peek(j) != c)
    tr_js_fail(j, what);
  j->p++;
}

static unsigned tr_js_hex4(TrJs *j) {
  unsigned v = 0;
  for (int k = 0; k < 4; k++, j->p++) {
    int c = j->p < j->end ? *j->p : -1;
    int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 :
            c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
    if (d < 0)
      tr_js_fail(j, "has a bad \\u escape");
    v = v * 16 + (unsigned)d;
  }
  return v;
}

/* A string, decoded to UTF-8 into out (which holds the encoded length + 1:
 * decoding never lengthens) and NUL-terminated, or skipped when out is NULL;
 * returns its length. */
static size_t tr_js_string(TrJs *j, char *out) {
  if (tr_js_peek(j) != '"')
    tr_js_fail(j, "expects a string");
  j->p++;
  size_t n = 0;
  for (;;) {
    if (j->p >= j->end)
      tr_js_fail(j, "has a string that does not end");
    unsigned c = *j->p++;
    if (c == '"')
      break;
    if (c < 0x20)
      tr_js_fail(j, "has a control character in a string");
    if (c == '\\') {
      int e = j->p < j->end ? *j->p++ : -1;
      if (e == 'u') {
        unsigned cp = tr_js_hex4(j);
        if (cp >= 0xD800 && cp < 0xDC00) {   /* a surrogate pair */
          if (j->end - j->p < 6 || j->p[0] != '\\' || j->p[1] != 'u')
            tr_js_fail(j, "has a lone surrogate in a \\u escape");
          j->p += 2;
          unsigned lo = tr_js_hex4(j);
          if (lo < 0xDC00 || lo > 0xDFFF)
            tr_js_fail(j, "has a lone surrogate in a \\u escape");
          cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
        } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
          tr_js_fail(j, "has a lone surrogate in a \\u escape");
        }
        if (cp == 0)
          tr_js_fail(j, "has \\u0000 in a string");
        unsigned char u[4];
        int k = cp < 0x80 ? (u[0] = (unsigned char)cp, 1) :
                cp < 0x800 ? (u[0] = (unsigned char)(0xC0 | cp >> 6), 2) :
                cp < 0x10000 ? (u[0] = (unsigned char)(0xE0 | cp >> 12), 3) :
                (u[0] = (unsigned char)(0xF0 | cp >> 18), 4);
        for (int q = 1; q < k; q++)
          u[q] = (unsigned char)(0x80 | ((cp >> (6 * (k - 1 - q))) & 0x3F));
        for (int q = 0; q < k; q++, n++)
          if (out)
            out[n] = (char)u[q];
        continue;
      }
      const char *from = "\"\\/bfnrt", *to = "\"\\/\b\f\n\r\t";
      const char *at = e > 0 ? strchr(from, e) : NULL;
      if (!at)
        tr_js_fail(j, "has a bad escape in a string");
      c = (unsigned char)to[at - from];
    }
    if (out)
      out[n] = (char)c;
    n++;
  }
  if (out)
    out[n] = '\0';
  return n;
}

/* A non-negative integer (shapes and offsets). */
static uint64_t tr_js_uint(TrJs *j) {
  int c = tr_js_peek(j);
  if (c < '0' || c > '9')
    tr_js_fail(j, "has a shape or offset that is not a non-negative integer");
  uint64_t v = 0;
  while (j->p < j->end && *j->p >= '0' && *j->p <= '9') {
    if (v > (UINT64_MAX - 9) / 10)
      tr_js_fail(j, "has a shape or offset too large");
    v = v * 10 + (uint64_t)(*j->p++ - '0');
  }
  if (j->p < j->end && (*j->p == '.' || *j->p == 'e' || *j->p == 'E'))
    tr_js_fail(j, "has a shape or offset that is not a non-negative integer");
  return v;
}

/* Any JSON value, checked and skipped. */
static void tr_js_skip(TrJs *j, int depth) {
  if (depth > 64)
    tr_js_fail(j, "nests too deep");
  int c = tr_js_peek(j);
  if (c == '"') {
    tr_js_string(j, NULL);
  } else if (c == '{' || c == '[') {
    int close = c == '{' ? '}' : ']';
    j->p++;
    if (tr_js_peek(j) == close) {
      j->p++;
      return;
    }
    for (;;) {
      if (close == '}') {
        tr_js_string(j, NULL);
        tr_js_expect(j, ':', "expects ':' after a key");
      }
      tr_js_skip(j, depth + 1);
      if (tr_js_peek(j) != ',')
        break;
      j->p++;
    }
    tr_js_expect(j, close, close == '}' ? "expects ',' or '}' in an object" : "expects ',' or ']' in an array");
  } else if (c == '-' || (c >= '0' && c <= '9')) {
    if (c == '-')
      j->p++;
    int digits = 0;
    while (j->p < j->end && ((*j->p >= '0' && *j->p <= '9') || *j->p == '.' || *j->p == 'e' ||
                             *j->p == 'E' || *j->p == '+' || *j->p == '-'))
      j->p++, digits++;
    if (!digits)
      tr_js_fail(j, "has a bad number");
  } else {
    static const char *const lit[] = {"true", "false", "null"};
    for (int k = 0; k < 3; k++) {
      size_t n = strlen(lit[k]);
      if ((size_t)(j->end - j->p) >= n && memcmp(j->p, lit[k], n) == 0) {
        j->p += n;
        return;
      }
    }
    tr_js_fail(j, c < 0 ? "ends early" : "has an unexpected character");
  }
}

/* One tensor's object: {"dtype": ..., "shape": [...], "data_offsets": [b, e]}. */
static void tr_st_tensor(TrJs *j, TrStEntry *e, char *scratch) {
  int have = 0;
  tr_js_expect(j, '{', "expects an object for each tensor");
  if (tr_js_peek(j) == '}')
    tr_fail(j->tr, "%s: tensor %s has no dtype, shape or data_offsets", j->path, e->name);
  for (;;) {
    tr_js_string(j, scratch);
    tr_js_expect(j, ':', "expects ':' after a key");
    if (strcmp(scratch, "dtype") == 0) {
      tr_js_string(j, scratch);
      e->type = NULL;
      for (int k = 0; k < TR_ST_NTYPES && !e->type; k++)
        if (strcmp(scratch, tr_st_types[k].name) == 0)
          e->type = &tr_st_types[k];
      if (!e->type)
        tr_fail(j->tr, "%s: tensor %s has dtype \"%.40s\", not one of safetensors' (F64, F32, "
                "I64, I32, U8, ...)", j->path, e->name, scratch);
      have |= 1;
    } else if (strcmp(scratch, "shape") == 0) {
      tr_js_expect(j, '[', "expects '[' for a shape");
      e->rank = 0;
      if (tr_js_peek(j) != ']')
        for (;;) {
          if (e->rank == TR_ST_MAXRANK)
            tr_fail(j->tr, "%s: tensor %s has more than %d dims", j->path, e->name, TR_ST_MAXRANK);
          uint64_t d = tr_js_uint(j);
          if (d > 0x7FFFFFFF)
            tr_fail(j->tr, "%s: tensor %s has a dim of %llu", j->path, e->name, (unsigned long long)d);
          e->dim[e->rank++] = (long)d;
          if (tr_js_peek(j) != ',')
            break;
          j->p++;
        }
      tr_js_expect(j, ']', "expects ',' or ']' in a shape");
      have |= 2;
    } else if (strcmp(scratch, "data_offsets") == 0) {
      tr_js_expect(j, '[', "expects '[' for data_offsets");
      e->begin = tr_js_uint(j);
      tr_js_expect(j, ',', "expects two data_offsets");
      e->end = tr_js_uint(j);
      tr_js_expect(j, ']', "expects two data_offsets");
      have |= 4;
    } else {
      tr_js_skip(j, 1);
    }
    if (tr_js_peek(j) != ',')
      break;
    j->p++;
  }
  tr_js_expect(j, '}', "expects ',' or '}' in a tensor's object");
  if (have != 7)
    tr_fail(j->tr, "%s: tensor %s has no %s", j->path, e->name,
            !(have & 1) ? "dtype" : !(have & 2) ? "shape" : "data_offsets");
}

static int tr_st_by_begin(const void *a, const void *b) {
  const TrStEntry *x = a, *y = b;
  return x->begin < y->begin ? -1 : x->begin > y->begin ? 1 : x->end < y->end ? -1 : x->end > y->end;
}

static int tr_st_by_name(const void *a, const void *b) {
  return strcmp(((const TrStEntry *)a)->name, ((const TrStEntry *)b)->name);
}

/* Reads and checks the header of the safetensors file in tr->ckbuf into tr->st. */
static void tr_st_parse(Tr *tr, const char *path, size_t len) {
  const unsigned char *b = tr->ckbuf;
  if (len < 8)
    tr_fail(tr, "%s: not a checkpoint (%lu bytes; a .safetensors file starts with an 8-byte "
            "header length)", path, (unsigned long)len);
  uint64_t hlen = tr_get32(b) | (uint64_t)tr_get32(b + 4) << 32;
  if (hlen > len - 8)
    tr_fail(tr, "%s: not a safetensors file: its header length is %llu bytes but %lu follow "
            "(truncated?)", path, (unsigned long long)hlen, (unsigned long)(len - 8));
  size_t datalen = len - 8 - (size_t)hlen;
  TrJs j = {tr, path, b + 8, b + 8, b + 8 + hlen};
  tr->stnames = tr_alloc(tr, (size_t)hlen + 1);
  size_t used = 0, cap = 0;
  tr_js_expect(&j, '{', "does not start with '{'");
  if (tr_js_peek(&j) == '}')
    j.p++;
  else
    for (;;) {
      char *name = tr->stnames + used;
      size_t n = tr_js_string(&j, name);
      tr_js_expect(&j, ':', "expects ':' after a name");
      if (strcmp(name, "__metadata__") == 0) {
        if (tr_js_peek(&j) != '{')
          tr_js_fail(&j, "has a __metadata__ that is not an object");
        tr_js_skip(&j, 0);
      } else {
        used += n + 1;
        if (tr->nst == (int)cap) {
          cap = cap ? cap * 2 : 16;
          TrStEntry *ne = realloc(tr->st, cap * sizeof *ne);
          if (!ne)
            tr_fail(tr, "out of memory");
          tr->st = ne;
        }
        TrStEntry *e = &tr->st[tr->nst++];
        memset(e, 0, sizeof *e);
        e->name = name;
        tr_st_tensor(&j, e, tr->stnames + used);   /* scratch: the unused rest */
      }
      if (tr_js_peek(&j) != ',')
        break;
      j.p++;
    }
  tr_js_expect(&j, '}', "expects ',' or '}' after a tensor");
  if (tr_js_peek(&j) >= 0)
    tr_js_fail(&j, "has more after its closing '}'");
  for (int i = 0; i < tr->nst; i++) {
    TrStEntry *e = &tr->st[i];
    uint64_t bytes = (uint64_t)e->type->size;
    for (int k = 0; k < e->rank; k++) {
      if (e->dim[k] && bytes > UINT64_MAX / (uint64_t)e->dim[k])
        tr_fail(tr, "%s: tensor %s: its shape is too large", path, e->name);
      bytes *= (uint64_t)e->dim[k];
    }
    if (e->begin > e->end || e->end > datalen)
      tr_fail(tr, "%s: tensor %s: data_offsets [%llu, %llu] are not within the %lu bytes of data "
              "(truncated?)", path, e->name, (unsigned long long)e->begin,
              (unsigned long long)e->end, (unsigned long)datalen);
    if (e->end - e->begin != bytes)
      tr_fail(tr, "%s: tensor %s: data_offsets [%llu, %llu] hold %llu bytes, but %s of its shape "
              "take %llu", path, e->name, (unsigned long long)e->begin, (unsigned long long)e->end,
              (unsigned long long)(e->end - e->begin), e->type->name, (unsigned long long)bytes);
  }
  qsort(tr->st, (size_t)tr->nst, sizeof *tr->st, tr_st_by_begin);
  const TrStEntry *last = NULL;
  for (int i = 0; i < tr->nst; i++) {
    const TrStEntry *e = &tr->st[i];
    if (e->begin == e->end)
      continue;
    if (last && e->begin < last->end)
      tr_fail(tr, "%s: tensors %s and %s overlap (bytes [%llu, %llu) and [%llu, %llu))", path,
              last->name, e->name, (unsigned long long)last->begin, (unsigned long long)last->end,
              (unsigned long long)e->begin, (unsigned long long)e->end);
    last = e;
  }
  qsort(tr->st, (size_t)tr->nst, sizeof *tr->st, tr_st_by_name);
  for (int i = 1; i < tr->nst; i++)
    if (strcmp(tr->st[i - 1].name, tr->st[i].name) == 0)
      tr_fail(tr, "%s: tensor %s appears twice in the header", path, tr->st[i].name);
}

/* ---- reading a checkpoint, either format ------------------------------------------- */

/* An entry as found in the file: its type and shape, its bytes. */
typedef struct TrCkView {
  NpyHeader h;                 /* .npz: the .npy header (Fortran order possible) */
  int type;                    /* NpyType, or -1 (a safetensors dtype bpgen does not read) */
  const char *tname;           /* the type as the format names it */
  int rank;
  long dim[TR_ST_MAXRANK];
  size_t nbytes;
  const unsigned char *data;
  char ename[320];             /* the entry's name in the file (W.npy, W) */
} TrCkView;

static const char *tr_ck_tname(const Tr *tr, NpyType t) {
  return tr->ckfmt == TR_CK_ST ? tr_st_name(t) : npy_dtypes[t].descr;
}

/* Finds entry `name` in the checkpoint in tr->ckbuf; 0 when absent. */
static int tr_ck_view(Tr *tr, const char *path, size_t len, const char *name, TrCkView *v) {
  memset(v, 0, sizeof *v);
  if (tr->ckfmt == TR_CK_ST) {
    TrStEntry key;
    key.name = name;
    const TrStEntry *e = bsearch(&key, tr->st, (size_t)tr->nst, sizeof *tr->st, tr_st_by_name);
    if (!e)
      return 0;
    v->type = e->type->npy;
    v->tname = e->type->name;
    v->rank = e->rank;
    memcpy(v->dim, e->dim, sizeof v->dim);
    v->nbytes = (size_t)(e->end - e->begin);
    uint64_t hlen = tr_get32(tr->ckbuf) | (uint64_t)tr_get32(tr->ckbuf + 4) << 32;
    v->data = tr->ckbuf + 8 + hlen + e->begin;
    snprintf(v->ename, sizeof v->ename, "%s", name);
    return 1;
  }
  TrEntry e;
  if (!tr_ck_find(tr, path, len, name, &e))
    return 0;
  char err[256];
  if (npy_header_parse(e.data, e.len, 1, &v->h, err, sizeof err) < 0)
    tr_fail(tr, "%s: %s: %s", path, e.name, err);
  v->type = (int)v->h.type;
  v->tname = npy_dtypes[v->h.type].descr;
  v->rank = v->h.rank;
  for (int i = 0; i < v->h.rank; i++)
    v->dim[i] = v->h.dim[i];
  v->nbytes = v->h.nbytes;
  v->data = e.data + v->h.offset;
  snprintf(v->ename, sizeof v->ename, "%s", e.name);
  return 1;
}

/* The names of the checkpoint's entries, for a message: "a, b, c" (cut with
 * "..." to fit cap). */
static const char *tr_ck_names(Tr *tr, size_t len, char *buf, size_t cap) {
  size_t n = 0;
  int count = 0;
  buf[0] = '\0';
  const unsigned char *b = tr->ckbuf;
  size_t total = tr->ckfmt == TR_CK_ST ? (size_t)tr->nst : tr_get16(b + len - 12);
  size_t p = tr->ckfmt == TR_CK_ST ? 0 : tr_get32(b + len - 6);
  for (size_t i = 0; i < total && n + 8 < cap; i++, count++) {
    char nm[300];
    if (tr->ckfmt == TR_CK_ST) {
      snprintf(nm, sizeof nm, "%s", tr->st[i].name);
    } else {   /* the central directory, checked by tr_ck_find before */
      size_t nl = tr_get16(b + p + 28);
      snprintf(nm, sizeof nm, "%.*s", (int)(nl > 4 ? nl - 4 : nl), (const char *)b + p + 46);
      p += 46 + nl + tr_get16(b + p + 30) + tr_get16(b + p + 32);
    }
    int w = snprintf(buf + n, cap - n, "%s%s", count ? ", " : "", nm);
    if (w < 0 || (size_t)w >= cap - n - 5) {
      snprintf(buf + n, cap - n, "%s...", count ? ", " : "");
      return buf;
    }
    n += (size_t)w;
  }
  if (!count)
    snprintf(buf, cap, "nothing");
  return buf;
}

/* Copies entry `name` into dst after checking its dtype and shape (a
 * Fortran-order entry is reordered).  Returns 0 when the entry is absent and
 * !required.  With `convert` (weights from elsewhere), a float entry of the
 * other float type is converted to the model's. */
static int tr_ck_get(Tr *tr, const char *path, size_t len, const char *name, NpyType type,
                     int rank, const int *dims, void *dst, size_t nbytes, int required, int convert) {
  TrCkView v;
  if (!tr_ck_view(tr, path, len, name, &v)) {
    if (required && convert) {
      char have[400];
      tr_fail(tr, "%s: has no tensor %s, which this model's spec declares (the file holds: %s)",
              path, name, tr_ck_names(tr, len, have, sizeof have));
    }
    if (required)
      tr_fail(tr, "%s: checkpoint has no %s (written for another model?)", path, name);
    return 0;
  }
  long dim[NPY_MAXRANK];
  tr_dims(dim, rank, dims);
  int other = convert && ((type == NPY_F4 && v.type == NPY_F8) || (type == NPY_F8 && v.type == NPY_F4));
  int sametype = v.type == (int)type || other ||
                 (type == NPY_U8 && v.type == NPY_I8 && tr->ckfmt == TR_CK_ST);  /* rng, seed */
  int same = sametype && v.rank == rank;
  for (int i = 0; same && i < rank; i++)
    same = v.dim[i] == dim[i];
  if (!same) {
    char got[400], want[160];
    long gd[TR_ST_MAXRANK];
    memcpy(gd, v.dim, sizeof gd);
    tr_fail(tr, "%s: %s is %s %s but this model wants %s %s", path, v.ename, v.tname,
            npy_shape_text(got, sizeof got, v.rank, gd), tr_ck_tname(tr, type),
            npy_shape_text(want, sizeof want, rank, dim));
  }
  const unsigned char *src = v.data;
  unsigned char *tmp = NULL;
  if (v.h.fortran) {
    tmp = malloc(v.nbytes ? v.nbytes : 1);
    if (!tmp)
      tr_fail(tr, "out of memory (%lu bytes)", (unsigned long)v.nbytes);
    npy_to_c_order(tmp, v.data, &v.h);
    src = tmp;
  }
  if (!other) {
    memcpy(dst, src, nbytes);
  } else {
    size_t n = nbytes / (size_t)npy_dtypes[type].size;
    for (size_t i = 0; i < n; i++) {
      if (type == NPY_F4) {
        double d;
        memcpy(&d, src + 8 * i, 8);
        ((float *)dst)[i] = (float)d;
      } else {
        float f;
        memcpy(&f, src + 4 * i, 4);
        ((double *)dst)[i] = f;
      }
    }
  }
  free(tmp);
  return 1;
}

/* --load FILE: a checkpoint bpgen wrote (.npz or .safetensors: step, RNG,
 * vocabulary, params, statistics, AdamW state), or weights alone (a file
 * without "step": numpy.savez of the params, a PyTorch state_dict saved with
 * safetensors), which sets the params (each must be there, by its spec name,
 * f32 or f64) and the statistics it has, and leaves the rest as a new run
 * has it.  The format is the file's: a zip is an .npz; else
 * a .safetensors name or a '{' after 8 bytes makes it safetensors. */
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
  const unsigned char *b = tr->ckbuf;
  int zip = len >= 2 && b[0] == 'P' && b[1] == 'K';
  tr->ckfmt = !zip && (tr_ck_format(path) == TR_CK_ST || (len > 8 && b[8] == '{')) ? TR_CK_ST : TR_CK_NPZ;
  if (tr->ckfmt == TR_CK_ST)
    tr_st_parse(tr, path, len);
  TrCkView probe;
  int full = tr_ck_view(tr, path, len, "step", &probe);
  int one = 1;
  int64_t step = 0, at = 0;
  uint64_t rng = tr->batch_rng.s, seed = tr->o.seed;
  if (full) {
    char vocab[256];
    tr_ck_get(tr, path, len, "step", NPY_I8, 0, &one, &step, 8, 1, 0);
    tr_ck_get(tr, path, len, "rng", NPY_U8, 0, &one, &rng, 8, 1, 0);
    tr_ck_get(tr, path, len, "seed", NPY_U8, 0, &one, &seed, 8, 1, 0);
    int nv = tr->nvocab;
    tr_ck_get(tr, path, len, "vocab", NPY_U1, 1, &nv, vocab, (size_t)nv, 1, 0);
    if (memcmp(vocab, tr->itos, (size_t)nv) != 0)
      tr_fail(tr, "%s: the checkpoint's vocabulary differs from %s's", path,
              tr->o.data ? tr->o.data : tr->o.text ? tr->o.text : "the data");
    if (step < 0)
      tr_fail(tr, "%s: corrupt checkpoint (step %lld)", path, (long long)step);
  }
  for (int i = 0; i < m->ntensors; i++) {
    const BpTensor *t = &m->tensors[i];
    if (t->kind == BP_PARAM || t->kind == BP_STAT)
      tr_ck_get(tr, path, len, t->name, tr_type(t), t->rank, t->dims,
                (char *)tr->state + t->offset, t->numel * tr->esize, t->kind == BP_PARAM, !full);
  }
  if (tr->o.adamw && full) {
    int have = tr_ck_get(tr, path, len, "adamw_t", NPY_I8, 0, &one, &at, 8, 0, 0);
    for (int k = 0; k < 2 && have; k++)
      for (int i = 0; i < m->ntensors; i++) {
        const BpTensor *t = &m->tensors[i];
        if (t->kind != BP_PARAM)
          continue;
        char name[300];
        snprintf(name, sizeof name, "adamw.%c.%s", k ? 'v' : 'm', t->name);
        tr_ck_get(tr, path, len, name, tr_type(t), t->rank, t->dims,
                  (char *)(k ? tr->mom_v : tr->mom_m) + (t->offset - m->param_offset),
                  t->numel * tr->esize, 1, 0);
      }
    if (!have && !tr->o.quiet)
      fprintf(stderr, "note: %s has no AdamW state: moments start at zero\n", path);
  }
  if (tr->o.adamw)
    tr->adamw_t = at;
  free(tr->ckbuf);
  tr->ckbuf = NULL;
  free(tr->st);
  tr->st = NULL;
  tr->nst = 0;
  free(tr->stnames);
  tr->stnames = NULL;
  if (!full) {
    if (!tr->o.quiet)
      fprintf(stderr, "note: %s holds weights only (no step, RNG or optimizer state): training "
              "starts from them at step 0\n", path);
    return;
  }
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

/* ---- data parallel (MPI) ------------------------------------------------------ *
 * Issue 17.  Every rank runs this same trainer on the same data and options;
 * only the rows differ.  Step i's global batch is size*B rows drawn from the
 * one stream (batch_rng), rank r's the B from r*B on, so the batch of a step
 * does not depend on the number of ranks: N ranks of batch B train on the
 * rows one process of batch N*B does (stream data: the window of N*B rows,
 * rank r's rows r*B..).  Each rank runs forward and backward on its rows; the
 * gradients are weighted by the rank's share of the loss (its valid
 * positions; equal shares but for sequences) and summed over the ranks
 * (MPI_Allreduce), which makes them the gradient of the global batch's mean
 * loss; every rank then takes the same optimiser step.  Params start as rank
 * 0's (broadcast after init or --load) and are checked to be the same every
 * TR_MPI_CHECK_EVERY steps (a hash).  Rank 0 alone prints, logs, saves and
 * samples; the others' tr_out is /dev/null.  Evaluation splits the batches
 * over the ranks and sums.  Batchnorm uses each rank's batch statistics (as
 * PyTorch's DistributedDataParallel does by default); --bn-stats running
 * averages the running statistics over the ranks after each step.  An error on
 * any rank ends the job (MPI_Abort) once its own clean-up is done, so the
 * others do not wait for it in a collective; the checkpoint on disk is the
 * last complete one, written by rank 0 as ever. */
enum { TR_MPI_CHECK_EVERY = 100 };

/* bpgen run: the table of the MPI library bpgen links (gen/comm.c), set before
 * bp_train_main.  Not set: one process, or -DBP_MPI's own. */
void bp_train_set_comm(const BpComm *c) { tr_comm_given = c; }

static void tr_mpi_begin(Tr *tr) {
  tr_mpi.c = tr_comm_given;
#ifdef BP_MPI
  if (!tr_mpi.c && bp_comm_launched()) {
    int rc = bp_comm_mpi_init(&tr_mpi.own);
    if (rc < 0)
      tr_fail(tr, "MPI_Init failed");
    tr_mpi.started = rc;
    tr_mpi.c = &tr_mpi.own;
  }
#endif
  if (!tr_mpi.c) {
    int n = bp_comm_launched();
    if (n > 1)
      tr_fail(tr, "started by an MPI launcher as one of %d ranks, but this trainer was built "
              "without MPI: each rank would train alone (build it with mpicc -DBP_MPI)", n);
    bp_comm_self(&tr_mpi.own);
    tr_mpi.c = &tr_mpi.own;
  }
  tr_mpi.rank = tr_mpi.c->rank;
  tr_mpi.size = tr_mpi.c->size;
  if (tr_mpi.rank > 0) {
    tr_mpi.null = fopen("/dev/null", "w");
    if (!tr_mpi.null)
      tr_fail(tr, "/dev/null: cannot open: %s", strerror(errno));
    tr_mpi.out = tr_out;
    tr_out = tr_mpi.null;
  }
}

/* The end of the run, on every path out of bp_train_main: after an error on
 * any rank of several, the whole job ends here (MPI_Abort); else tr_out back
 * and MPI finalised when tr_mpi_begin initialised it. */
static void tr_mpi_end(int failed) {
  if (failed && tr_mpi.size > 1) {
    fflush(stderr);
    tr_mpi.c->abort(1);
  }
  if (tr_mpi.null) {
    fclose(tr_mpi.null);
    tr_out = tr_mpi.out;
  }
#ifdef BP_MPI
  if (tr_mpi.started)
    MPI_Finalize();
#endif
  memset(&tr_mpi, 0, sizeof tr_mpi);
  tr_mpi.size = 1;
}

/* After the options: rank 0 alone writes files and prints. */
static void tr_mpi_roles(Tr *tr) {
  if (tr_mpi.rank == 0)
    return;
  TrOpts *o = &tr->o;
  o->quiet = 1;
  o->log = o->save = o->load = NULL;
  o->resume = 0;
  o->samples = 0;
  o->sample_len = 0;
}

/* An allreduce, counted and timed as kind k of --comm-stats (0: the gradients,
 * 1: batchnorm's sums, 2: the rest). */
static void tr_mpi_sum_as(Tr *tr, void *buf, size_t n, int f64, const char *what, int k) {
  if (tr_mpi.size == 1)
    return;
  double t0 = tr_now();
  if (tr_mpi.c->allreduce_sum(buf, n, f64) != 0)
    tr_fail(tr, "MPI_Allreduce of %s failed", what);
  tr_mpi.secs[k] += tr_now() - t0;
  tr_mpi.ncalls[k]++;
  tr_mpi.bytes[k] += (double)n * (f64 ? 8 : 4);
}

static void tr_mpi_sum(Tr *tr, void *buf, size_t n, int f64, const char *what) {
  tr_mpi_sum_as(tr, buf, n, f64, what, 2);
}

/* BpRanks.sum for the model (tr_set_ranks).  grads: the backward's sums of
 * --sync-bn, each rank's weighed by its share of the global loss (sequences:
 * its valid positions c, else equal), divided by this rank's: sum(c_r buf_r) /
 * c, which the trainer's weighing of this rank's gradients by c / sum(c_r)
 * makes the global batch's. */
static void tr_ranks_sum(void *ctx, double *buf, size_t n, int grads) {
  Tr *tr = (Tr *)ctx;
  double c = tr_mpi.share;
  if (grads && c != 1)
    for (size_t i = 0; i < n; i++)
      buf[i] *= c;
  tr_mpi_sum_as(tr, buf, n, 1, "batchnorm's sums", 1);
  if (grads && c != 1)
    for (size_t i = 0; i < n; i++)
      buf[i] /= c;
}

/* --comm-stats: rank 0's allreduces, at the end of the run. */
static void tr_mpi_report(Tr *tr, double train_secs) {
  if (!tr->o.comm_stats || tr_mpi.rank != 0)
    return;
  static const char *const kind[] = {"gradients", "batchnorm", "other"};
  fprintf(stderr, "allreduce over %d rank%s (rank 0, training %.3f s):\n", tr_mpi.size,
          tr_mpi.size == 1 ? "" : "s", train_secs);
  for (int k = 0; k < 3; k++)
    fprintf(stderr, "  %-9s %8ld calls %12.0f bytes each %10.3f ms each %9.3f s total\n", kind[k],
            tr_mpi.ncalls[k], tr_mpi.ncalls[k] ? tr_mpi.bytes[k] / (double)tr_mpi.ncalls[k] : 0.0,
            tr_mpi.ncalls[k] ? 1e3 * tr_mpi.secs[k] / (double)tr_mpi.ncalls[k] : 0.0, tr_mpi.secs[k]);
}

static void tr_mpi_bcast(Tr *tr, void *buf, size_t bytes, const char *what) {
  if (tr_mpi.size > 1 && tr_mpi.c->bcast(buf, bytes) != 0)
    tr_fail(tr, "MPI_Bcast of %s failed", what);
}

/* Evaluation: batch j of a split is this rank's. */
static int tr_mpi_mine(size_t batch) { return batch % (size_t)tr_mpi.size == (size_t)tr_mpi.rank; }

/* Before training (after init and --load, which only rank 0 reads): the ranks
 * must run the same model on the same data with the same options, then start
 * from rank 0's params, statistics, moments, step and batch stream. */
static void tr_mpi_start(Tr *tr) {
  tr_mpi.ranks.rank = tr_mpi.rank;
  tr_mpi.ranks.size = tr_mpi.size;
  tr_mpi.ranks.ctx = tr;
  tr_mpi.ranks.sum = tr_ranks_sum;
  tr_mpi.share = 1;
  if (tr_mpi.size == 1)
    return;
  const BpModel *m = tr->m;
  const TrOpts *o = &tr->o;
  static const char *const what[] = {
    "the number of params", "the batch B", "the context T", "the state size", "the float type",
    "the data mode", "the training split's size", "the dev split's size", "--steps", "--optimizer",
    "the seed", "--bn-stats", "--sync-bn"};
  double mine[13] = {(double)m->nparam, tr->B, tr->T, (double)m->state_size, m->dtype, tr->mode,
                     (double)tr->split[0].n, (double)tr->split[1].n, (double)o->steps, o->adamw,
                     (double)o->seed, o->bn_momentum, o->sync_bn};
  double root[13];
  memcpy(root, mine, sizeof root);
  tr_mpi_bcast(tr, root, sizeof root, "the run's sizes");
  for (int k = 0; k < 13; k++)
    if (root[k] != mine[k])
      tr_fail(tr, "%s is %.17g here but %.17g on rank 0: every rank must run the same spec, "
              "-D values, data and options", what[k], mine[k], root[k]);
  uint64_t head[3] = {(uint64_t)tr->step, (uint64_t)tr->adamw_t, tr->batch_rng.s};
  tr_mpi_bcast(tr, head, sizeof head, "the step");
  tr->step = (long)head[0];
  tr->adamw_t = (long)head[1];
  tr->batch_rng.s = head[2];
  tr_mpi_bcast(tr, (char *)tr->state + m->param_offset, m->nparam * tr->esize, "the params");
  for (int i = 0; i < m->ntensors; i++) {
    const BpTensor *t = &m->tensors[i];
    if (t->kind == BP_STAT)
      tr_mpi_bcast(tr, (char *)tr->state + t->offset, t->numel * tr->esize, t->name);
  }
  if (o->adamw) {
    tr_mpi_bcast(tr, tr->mom_m, m->nparam * tr->esize, "the AdamW moments");
    tr_mpi_bcast(tr, tr->mom_v, m->nparam * tr->esize, "the AdamW moments");
  }
  if (!o->quiet)
    fprintf(stderr, "data parallel: %d ranks (%s), %d rows each, %d a step%s\n", tr_mpi.size,
            tr_mpi.c->what, tr->B, tr->B * tr_mpi.size,
            o->sync_bn ? "; batchnorm statistics over the ranks" : "");
}

/* Step rows: the global batch's size*B draws from the one stream, this
 * rank's the B from rank*B on (one process: the B draws as ever). */
static void tr_mpi_draw_rows(Tr *tr, const TrSplit *s) {
  int B = tr->B, r0 = tr_mpi.rank * B, nb = tr_mpi.size * B;
  for (int j = 0; j < nb; j++) {
    uint64_t v = bp_rng_next(&tr->batch_rng);
    if (j >= r0 && j < r0 + B)
      tr->idx[j - r0] = (size_t)(v % (uint64_t)s->n);
  }
}

/* After backward (this rank's rows): the gradients of the global batch's mean
 * loss, the same on every rank.  The model's loss is the mean over its rows
 * (sequences: over its c valid positions), so rank r's gradient weighs
 * c_r / sum(c) before the sum.  Returns the global batch's loss. */
static double tr_mpi_grads(Tr *tr, double loss) {
  if (tr_mpi.size == 1)
    return loss;
  const BpModel *m = tr->m;
  double c = tr->mode == TR_SEQ ? (double)tr_valid_count(tr) : 1;
  double lc[2] = {c * loss, c};
  tr_mpi_sum(tr, lc, 2, 1, "the loss");
  double w = lc[1] > 0 ? c / lc[1] : 0;
  char *g = (char *)tr->state + m->grad_offset;
  if (m->dtype == BP_F64) {
    for (size_t i = 0; i < m->nparam; i++)
      ((double *)g)[i] *= w;
  } else {
    float wf = (float)w;
    for (size_t i = 0; i < m->nparam; i++)
      ((float *)g)[i] *= wf;
  }
  tr_mpi_sum_as(tr, g, m->nparam, m->dtype == BP_F64, "the gradients", 0);
  return lc[1] > 0 ? lc[0] / lc[1] : loss;
}

static uint64_t tr_mpi_hash(uint64_t h, const void *p, size_t n) {
  const unsigned char *b = (const unsigned char *)p;
  size_t i = 0;
  if (((uintptr_t)b & 7) == 0)
    for (; i + 8 <= n; i += 8) {
      h = (h ^ *(const uint64_t *)(b + i)) * 0x100000001B3ull;
      h ^= h >> 29;
    }
  for (; i < n; i++)
    h = (h ^ b[i]) * 0x100000001B3ull;
  return h;
}

/* The ranks' params, statistics, step and batch stream must be the same: a
 * hash of them against rank 0's. */
static void tr_mpi_check_same(Tr *tr) {
  const BpModel *m = tr->m;
  uint64_t h = 0xCBF29CE484222325ull, head[2] = {(uint64_t)tr->step, tr->batch_rng.s};
  h = tr_mpi_hash(h, head, sizeof head);
  h = tr_mpi_hash(h, (char *)tr->state + m->param_offset, m->nparam * tr->esize);
  for (int i = 0; i < m->ntensors; i++) {
    const BpTensor *t = &m->tensors[i];
    if (t->kind == BP_STAT)
      h = tr_mpi_hash(h, (char *)tr->state + t->offset, t->numel * tr->esize);
  }
  uint64_t h0 = h;
  tr_mpi_bcast(tr, &h0, sizeof h0, "the params' hash");
  double differ = h0 != h;
  tr_mpi_sum(tr, &differ, 1, 1, "the params check");
  if (differ > 0)
    tr_fail(tr, "step %ld: the params differ between the ranks (%.0f of %d differ from rank "
            "0's): the ranks ran different options or code%s", tr->step, differ, tr_mpi.size,
            tr->o.save ? "; the last checkpoint is kept" : "");
}

/* After the optimiser step. */
static void tr_mpi_after_step(Tr *tr) {
  if (tr_mpi.size == 1)
    return;
  const BpModel *m = tr->m;
  if (tr->o.bn_momentum > 0 && !tr->o.sync_bn)   /* running statistics: their mean over the ranks
                                                  * (--sync-bn: the same on every rank already) */
    for (int i = 0; i < m->ntensors; i++) {
      const BpTensor *t = &m->tensors[i];
      if (t->kind != BP_STAT)
        continue;
      void *p = (char *)tr->state + t->offset;
      tr_mpi_sum(tr, p, t->numel, m->dtype == BP_F64, t->name);
      for (size_t k = 0; k < t->numel; k++) {
        if (m->dtype == BP_F64) ((double *)p)[k] /= tr_mpi.size;
        else ((float *)p)[k] /= (float)tr_mpi.size;
      }
    }
  if (tr->step % TR_MPI_CHECK_EVERY == 0 || tr->step == tr->o.steps)
    tr_mpi_check_same(tr);
}

/* ---- bpgen run's hooks: --mine (the learner's backward), --rng torch ---------- *
 * bpgen run calls bp_train_hooks before bp_train_main; the trainer written for
 * gcc never does, and runs as before.
 *
 * --mine: the learner's backward() (compiled by bpgen in its own libtcc state)
 * replaces the model's at every step.  tr_mine_fn runs it on the forward values
 * of the state, writes its param gradients into the state's, and at the check
 * steps (check != 0) also runs the generated backward on the same batch and
 * compares; a non-NULL result is the reason to stop.
 *
 * --rng torch: tr_torch_prog describes the params' initialisers (one
 * "KERNEL SEED2;" then "NAME GEN RPN" per ';': KERNEL avx2 or scalar (which of
 * ATen's normal kernels), GEN 'g' for torch.Generator().manual_seed(seed), 'G'
 * for torch's global generator after torch.manual_seed(SEED2); RPN tokens R randn, U rand in [-1, 1), N<number>, ~ neg,
 * S sqrt, + - * /); tr_torch_init draws them as torch.randn does on the CPU
 * and computes the expression as torch does (the tensor's dtype, the Python
 * float cast to it), and the minibatch rows are torch.randint(0, n, (B,),
 * generator=g) from the same generator, after the params. */
typedef const char *TrMineFn(void *ctx, void *state, long step, int check);
static TrMineFn *tr_mine_fn;
static void *tr_mine_ctx;
static const char *tr_torch_prog;

void bp_train_hooks(TrMineFn *mine, void *ctx, const char *torch_prog) {
  tr_mine_fn = mine;
  tr_mine_ctx = ctx;
  tr_torch_prog = torch_prog;
}

/* The backward pass of step i: the model's, or the learner's. */
static void tr_backward(Tr *tr, long i) {
  if (!tr_mine_fn) {
    tr->m->backward(tr->state);
    return;
  }
  const TrOpts *o = &tr->o;
  int check = i % o->print_every == 0 || i + 1 == o->steps ||
              (o->eval_every > 0 && (i + 1) % o->eval_every == 0);
  const char *why = tr_mine_fn(tr_mine_ctx, tr->state, i, check);
  if (why)
    tr_fail(tr, "%s", why);
}

/* A torch CPU generator: MT19937 (tr_mt_init, as torch's manual_seed) and the
 * cached second normal of at::normal_distribution<double>. */
typedef struct TrTorch {
  TrMt mt;
  int has_next;
  double next;
} TrTorch;
static TrTorch tr_torch_g, tr_torch_global;

static void tr_torch_seed(TrTorch *g, uint64_t seed) {
  tr_mt_init(&g->mt, (uint32_t)seed);   /* torch: the low 32 bits seed the engine */
  g->has_next = 0;
}

/* CPUGeneratorImpl::random64: two draws, the first the high half */
static uint64_t tr_torch_random64(TrTorch *g) {
  uint64_t hi = tr_mt_next(&g->mt);
  return hi << 32 | tr_mt_next(&g->mt);
}

/* uniform_real_distribution<float>(0, 1): 24 bits; <double>: 53 bits of random64 */
static float tr_torch_uniform_f(TrTorch *g) {
  return (float)(tr_mt_next(&g->mt) & 0xFFFFFFu) * (1.0f / 16777216.0f);
}
static double tr_torch_uniform_d(TrTorch *g) {
  return (double)(tr_torch_random64(g) & ((1ull << 53) - 1)) * (1.0 / 9007199254740992.0);
}

/* at::normal_distribution<double>(0, 1): Box-Muller on two doubles, the sine
 * kept for the next call */
static double tr_torch_normal_d(TrTorch *g) {
  if (g->has_next) {
    g->has_next = 0;
    return g->next;
  }
  double u1 = tr_torch_uniform_d(g), u2 = tr_torch_uniform_d(g);
  double r = sqrt(-2.0 * log(1.0 - u2)), theta = 2.0 * 3.14159265358979323846 * u1;
  g->next = r * sin(theta);
  g->has_next = 1;
  return r * cos(theta);
}

/* normal_fill_16 as ATen's scalar kernel (CPU capability DEFAULT or AVX512,
 * --rng torch-scalar): u1 = 1 - d[j], u2 = d[j+8], libm's logf, cosf, sinf */
static void tr_torch_fill16_f(float *d) {
  for (int j = 0; j < 8; j++) {
    float u1 = 1 - d[j], u2 = d[j + 8];
    float radius = sqrtf(-2 * logf(u1));
    float theta = (float)(2.0f * 3.14159265358979323846 * (double)u2);
    d[j] = radius * cosf(theta);
    d[j + 8] = radius * sinf(theta);
  }
}

/* normal_fill_16_AVX2 (CPU capability AVX2, --rng torch): the same transform
 * with avx_mathfun.h's log256_ps and sincos256_ps (Cephes polynomials, after
 * Julien Pommier's sse_mathfun), here one lane at a time in the same float
 * operations, so the same bits.  ATen is built with FMA for this kernel and
 * its compiler fuses each multiply whose one use is an add into an FMA: so
 * fmaf where the intrinsics read mul then add (checked against torch by
 * tools/torch_rng.py). */
static float tr_f(uint32_t b) { float f; memcpy(&f, &b, 4); return f; }
static uint32_t tr_b(float f) { uint32_t b; memcpy(&b, &f, 4); return b; }

static float tr_cephes_logf(float x) {   /* x > 0 here: u1 in (0, 1] */
  if (x < tr_f(0x00800000u))
    x = tr_f(0x00800000u);
  int32_t imm0 = (int32_t)(tr_b(x) >> 23);
  x = tr_f((tr_b(x) & ~0x7f800000u) | tr_b(0.5f));
  imm0 -= 0x7f;
  float e = (float)imm0;
  e = e + 1.0f;
  int mask = x < (float)0.707106781186547524;
  float tmp = mask ? x : 0.0f;
  x = x - 1.0f;
  e = e - (mask ? 1.0f : 0.0f);
  x = x + tmp;
  float z = x * x;
  static const double p[9] = {7.0376836292E-2, -1.1514610310E-1, 1.1676998740E-1, -1.2420140846E-1,
                              1.4249322787E-1, -1.6668057665E-1, 2.0000714765E-1, -2.4999993993E-1,
                              3.3333331174E-1};
  float y = (float)p[0];
  for (int k = 1; k < 9; k++)
    y = fmaf(y, x, (float)p[k]);
  y = y * x;
  y = fmaf(y, z, e * (float)-2.12194440e-4);
  y = fmaf(-z, 0.5f, y);
  return fmaf(e, 0.693359375f, x + y);
}

static void tr_cephes_sincosf(float xin, float *s, float *c) {
  uint32_t sign_sin = tr_b(xin) & 0x80000000u;
  float x = tr_f(tr_b(xin) & 0x7fffffffu);
  float y = x * (float)1.27323954473516;
  int32_t j = (int32_t)y;   /* truncation, as cvttps */
  j = (j + 1) & ~1;
  y = (float)j;
  uint32_t swap_sin = (uint32_t)(j & 4) << 29;
  int poly = (j & 2) == 0;
  x = fmaf(y, -0.78515625f, x);
  x = fmaf(y, (float)-2.4187564849853515625e-4, x);
  x = fmaf(y, (float)-3.77489497744594108e-8, x);
  uint32_t sign_cos = (uint32_t)(~(j - 2) & 4) << 29;
  sign_sin ^= swap_sin;
  float z = x * x;
  y = fmaf((float)2.443315711809948E-005, z, (float)-1.388731625493765E-003);
  y = fmaf(y, z, (float)4.166664568298827E-002);
  y = y * z;
  y = fmaf(y, z, -(z * 0.5f));
  y = y + 1.0f;
  float y2 = fmaf((float)-1.9515295891E-4, z, (float)8.3321608736E-3);
  y2 = fmaf(y2, z, (float)-1.6666654611E-1);
  y2 = y2 * z;
  y2 = fmaf(y2, x, x);
  float ysin2 = poly ? y2 : 0.0f, ysin1 = poly ? 0.0f : y;
  y2 = y2 - ysin2;
  y = y - ysin1;
  *s = tr_f(tr_b(ysin1 + ysin2) ^ sign_sin);
  *c = tr_f(tr_b(y + y2) ^ sign_cos);
}

static void tr_torch_fill16_avx2(float *d) {
  const float two_pi = (float)(2.0f * 3.14159265358979323846);
  for (int j = 0; j < 8; j++) {
    float u1 = 1.0f - d[j], u2 = d[j + 8];
    float radius = sqrtf(-2.0f * tr_cephes_logf(u1));
    float theta = two_pi * u2, sn, cs;
    tr_cephes_sincosf(theta, &sn, &cs);
    d[j] = radius * cs;
    d[j + 8] = radius * sn;
  }
}

static void tr_torch_fill16_d(double *d) {
  for (int j = 0; j < 8; j++) {
    double u1 = 1 - d[j], u2 = d[j + 8];
    double radius = sqrt(-2 * log(u1));
    double theta = 2.0f * 3.14159265358979323846 * u2;
    d[j] = radius * cos(theta);
    d[j + 8] = radius * sin(theta);
  }
}

/* torch.randn(n, generator=g) into x (floats when f32, else doubles): 16 or
 * more elements fill uniforms and transform them 16 at a time (the last
 * block, when n is not a multiple of 16, is the last 16 elements redrawn);
 * fewer are drawn one at a time from normal_distribution<double>. */
static int tr_torch_avx2 = 1;   /* --rng torch: ATen's AVX2 kernel; torch-scalar: 0 */

static void tr_torch_randn(TrTorch *g, void *x, size_t n, int f32) {
  void (*fill16)(float *) = tr_torch_avx2 ? tr_torch_fill16_avx2 : tr_torch_fill16_f;
  float *xf = (float *)x;
  double *xd = (double *)x;
  if (n < 16) {
    for (size_t i = 0; i < n; i++) {
      double v = tr_torch_normal_d(g);
      if (f32) xf[i] = (float)v; else xd[i] = v;
    }
    return;
  }
  for (size_t i = 0; i < n; i++) {
    if (f32) xf[i] = tr_torch_uniform_f(g); else xd[i] = tr_torch_uniform_d(g);
  }
  for (size_t i = 0; i + 16 <= n; i += 16) {
    if (f32) fill16(xf + i); else tr_torch_fill16_d(xd + i);
  }
  if (n % 16) {
    for (size_t i = n - 16; i < n; i++) {
      if (f32) xf[i] = tr_torch_uniform_f(g); else xd[i] = tr_torch_uniform_d(g);
    }
    if (f32) fill16(xf + n - 16); else tr_torch_fill16_d(xd + n - 16);
  }
}

/* torch.randint(0, n, (B,), generator=g) for n < 2^32: random() % n each.
 * BPGEN_TORCH_BATCHES=K prints the first K batches' rows to stderr (for
 * tools/torch_rng.py). */
static void tr_torch_randint(TrTorch *g, size_t *idx, int B, size_t n) {
  static long shown;
  const char *k = getenv("BPGEN_TORCH_BATCHES");
  for (int b = 0; b < B; b++)
    idx[b] = (size_t)(tr_mt_next(&g->mt) % (uint32_t)n);
  if (k && shown < atol(k)) {
    fprintf(stderr, "torch batch %ld:", shown++);
    for (int b = 0; b < B; b++)
      fprintf(stderr, " %lu", (unsigned long)idx[b]);
    fputc('\n', stderr);
  }
}

/* One value of an initialiser on the RPN stack: a Python float, or a tensor
 * of the model's dtype (x: n elements). */
typedef struct TrTv {
  double s;
  void *x;
} TrTv;

static void tr_torch_init(Tr *tr) {
  const BpModel *m = tr->m;
  int f32 = m->dtype == BP_F32;
  size_t es = f32 ? sizeof(float) : sizeof(double);
  const char *p = tr_torch_prog;
  /* "avx2 SEED2;" or "scalar SEED2;": the kernel, the global generator's seed */
  tr_torch_avx2 = strncmp(p, "avx2", 4) == 0;
  while (*p && *p != ' ')
    p++;
  tr_torch_seed(&tr_torch_g, tr->o.seed);
  tr_torch_seed(&tr_torch_global, strtoull(p, (char **)&p, 10));
  TrTv st[32];
  int sp = 0;
  while (*p) {
    char name[128];
    int len = 0;
    while (*p == ' ' || *p == ';')
      p++;
    if (!*p)
      break;
    while (*p && *p != ' ' && len < 127)
      name[len++] = *p++;
    name[len] = '\0';
    while (*p == ' ')
      p++;
    TrTorch *g = *p == 'G' ? &tr_torch_global : &tr_torch_g;
    if (*p)
      p++;
    const BpTensor *t = bp_find_tensor(m, name, BP_PARAM);
    if (!t)
      tr_fail(tr, "--rng torch: the model has no param %s", name);
    size_t n = t->numel;
    sp = 0;
    while (*p && *p != ';') {
      char c = *p++;
      if (c == ' ')
        continue;
      if (c == 'N') {
        char *e;
        st[sp].s = strtod(p, &e);
        st[sp++].x = NULL;
        p = e;
        continue;
      }
      if (c == 'R' || c == 'U') {
        void *x = tr_alloc(tr, n * es);
        if (c == 'R') {
          tr_torch_randn(g, x, n, f32);
        } else {   /* torch.rand(n) * 2 - 1 */
          for (size_t i = 0; i < n; i++) {
            if (f32) ((float *)x)[i] = tr_torch_uniform_f(g) * 2.0f - 1.0f;
            else ((double *)x)[i] = tr_torch_uniform_d(g) * 2.0 - 1.0;
          }
        }
        st[sp].x = x;
        st[sp++].s = 0;
        continue;
      }
      if (c == '~' || c == 'S') {
        TrTv *a = &st[sp - 1];
        if (!a->x) {
          a->s = c == '~' ? -a->s : sqrt(a->s);
          continue;
        }
        for (size_t i = 0; i < n; i++) {
          if (f32) { float v = ((float *)a->x)[i]; ((float *)a->x)[i] = c == '~' ? -v : sqrtf(v); }
          else { double v = ((double *)a->x)[i]; ((double *)a->x)[i] = c == '~' ? -v : sqrt(v); }
        }
        continue;
      }
      /* a binary operator: Python floats fold in double; a tensor's operand is
       * cast to its dtype; float / tensor is reciprocal(t) * float (torch's
       * __rdiv__) */
      TrTv *a = &st[sp - 2], *b = &st[sp - 1];
      sp--;
      if (!a->x && !b->x) {
        a->s = c == '+' ? a->s + b->s : c == '-' ? a->s - b->s : c == '*' ? a->s * b->s : a->s / b->s;
        continue;
      }
      void *out = a->x ? a->x : b->x;
      for (size_t i = 0; i < n; i++) {
        if (f32) {
          float x = a->x ? ((float *)a->x)[i] : (float)a->s, y = b->x ? ((float *)b->x)[i] : (float)b->s, r;
          if (c == '/' && !a->x) { float q = 1.0f / y; r = q * x; }
          else r = c == '+' ? x + y : c == '-' ? x - y : c == '*' ? x * y : x / y;
          ((float *)out)[i] = r;
        } else {
          double x = a->x ? ((double *)a->x)[i] : a->s, y = b->x ? ((double *)b->x)[i] : b->s, r;
          if (c == '/' && !a->x) { double q = 1.0 / y; r = q * x; }
          else r = c == '+' ? x + y : c == '-' ? x - y : c == '*' ? x * y : x / y;
          ((double *)out)[i] = r;
        }
      }
      if (a->x && b->x)
        free(b->x);
      a->x = out;
    }
    char *dst = (char *)tr->state + t->offset;
    if (sp == 1 && st[0].x) {
      memcpy(dst, st[0].x, n * es);
      free(st[0].x);
    } else if (sp == 1) {
      for (size_t i = 0; i < n; i++) {
        if (f32) ((float *)dst)[i] = (float)st[0].s; else ((double *)dst)[i] = st[0].s;
      }
    }
  }
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
      if (tr_torch_prog)   /* --rng torch: one process (refused under MPI) */
        tr_torch_randint(&tr_torch_g, tr->idx, tr->B, s->n);
      else
        tr_mpi_draw_rows(tr, s);
      tr_set_rows(tr, s, tr->idx);
    }
    int sync = tr->o.sync_bn && tr_mpi.size > 1;   /* the ranks' batch statistics */
    if (sync)
      tr_mpi.share = tr->mode == TR_SEQ ? (double)tr_valid_count(tr) : 1;
    tr_set_ranks(tr, sync);
    loss = m->forward(tr->state);
    tr_set_ranks(tr, 0);
    tr_check_loss(tr, loss);
    tr_set_ranks(tr, sync);
    tr_backward(tr, i);
    tr_set_ranks(tr, 0);
    tr_check_grads(tr);
    loss = tr_mpi_grads(tr, loss);
    if (o->clip > 0)
      tr_clip_grads(tr, o->clip);
    double lr = tr_lr_at(o, i);
    if (o->adamw)
      tr_adamw(tr, lr);
    else
      m->sgd_step(tr->state, lr);
    tr->step++;
    tr_mpi_after_step(tr);
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
  free(tr->st);
  free(tr->stnames);
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

/* ---- results as JSON (--json) ------------------------------------------------- */

static FILE *tr_json_out;        /* --json: where the JSON goes (tr_out is stderr meanwhile) */

/* "key": value at full precision (%.17g: the double read back is the same),
 * null when not finite. */
static void tr_json_num(FILE *f, const char *key, double v) {
  if (tr_finite(v))
    fprintf(f, ", \"%s\": %.17g", key, v);
  else
    fprintf(f, ", \"%s\": null", key);
}

/* A JSON string (the model's name and paths: escapes '"', '\\' and control bytes). */
static void tr_json_str(FILE *f, const char *key, const char *s) {
  fprintf(f, "%s\"%s\": \"", *key == '{' ? "{" : ", ", *key == '{' ? key + 1 : key);
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\')
      fprintf(f, "\\%c", c);
    else if (c < 32 || c == 127)
      fprintf(f, "\\u%04x", c);
    else
      fputc(c, f);
  }
  fputc('"', f);
}

/* --json: results to the JSON (on tr_out as it was), the text lines to stderr. */
static void tr_json_begin(Tr *tr) {
  if (!tr->o.json)
    return;
  tr_json_out = tr_out;
  tr_out = stderr;
}

static void tr_json_end(void) {
  if (tr_json_out)
    tr_out = tr_json_out;
  tr_json_out = NULL;
}

/* bpgen run --json: the losses the text lines round to 4 digits, in full; a
 * split without data is null.  Sequences call their held-out split test. */
static void tr_json_run(Tr *tr, double ltr, double ldev, double ltest) {
  FILE *f = tr_json_out;
  const BpModel *m = tr->m;
  tr_json_str(f, "{model", m->name);
  fprintf(f, ", \"dtype\": \"%s\", \"params\": %lu, \"steps\": %ld, \"seed\": %llu",
          m->dtype == BP_F64 ? "f64" : "f32", (unsigned long)m->nparam, tr->step,
          (unsigned long long)tr->o.seed);
  tr_json_num(f, "train_loss", ltr);
  if (tr->mode == TR_SEQ) {
    tr_json_num(f, "test_loss", ldev);
  } else {
    tr_json_num(f, "dev_loss", ldev);
    tr_json_num(f, "test_loss", ltest);
  }
  fputs("}\n", f);
  fflush(f);
}

/* ---- using a checkpoint: bpgen predict, bpgen sample ---------------------------- */

/* The vocabulary and seed a checkpoint was written with, before tr_load (which
 * checks the vocabulary against tr->itos): sets tr->itos, tr->nvocab and,
 * unless --seed was given, the seed (sampling then draws what the run drew). */
static void tr_ck_peek(Tr *tr, const char *path) {
  size_t len;
  tr_slurp(tr, path, &tr->ckbuf, &len);
  TrEntry e;
  NpyHeader h;
  char err[256];
  if (!tr_ck_find(tr, path, len, "vocab", &e))
    tr_fail(tr, "%s: checkpoint has no vocab (written by bpgen run --save?)", path);
  if (npy_header_parse(e.data, e.len, 1, &h, err, sizeof err) < 0)
    tr_fail(tr, "%s: %s: %s", path, e.name, err);
  if (h.type != NPY_U1 || h.rank != 1 || h.numel > 255)
    tr_fail(tr, "%s: vocab is not a |u1 vector of at most 255 bytes", path);
  tr->nvocab = (int)h.numel;
  memcpy(tr->itos, e.data + h.offset, h.numel);
  if (!tr->o.seed_set && tr_ck_find(tr, path, len, "seed", &e) &&
      npy_header_parse(e.data, e.len, 1, &h, err, sizeof err) == 0 && h.type == NPY_U8 &&
      h.numel == 1)
    memcpy(&tr->o.seed, e.data + h.offset, 8);
  free(tr->ckbuf);
  tr->ckbuf = NULL;
}

/* The model's state from the checkpoint, as training left it. */
static void tr_use_load(Tr *tr) {
  const BpModel *m = tr->m;
  tr_ck_peek(tr, tr->o.load);
  size_t ssize = (m->state_size + 63) / 64 * 64;
  tr->state = tr_alloc(tr, ssize);
  tr->idx = tr_alloc(tr, (size_t)(tr->B > 0 ? tr->B : 1) * sizeof(size_t));
  m->init(tr->state, tr->o.seed);
  int quiet = tr->o.quiet;
  tr->o.quiet = 1;   /* tr_load's notes are about continuing a run */
  tr_load(tr, tr->o.load);
  tr->o.quiet = quiet;
}

/* Writes a .npy file (version 1.0) of n bytes at data; "-": standard output. */
static void tr_npy_write(Tr *tr, const char *path, NpyType type, int rank, const long *dim,
                         const void *data, size_t n) {
  unsigned char head[NPY_MAXHEADER];
  size_t hlen = npy_header_text(head, sizeof head, type, rank, dim);
  int std = strcmp(path, "-") == 0;
  FILE *f = std ? stdout : fopen(path, "wb");
  if (!f)
    tr_fail(tr, "%s: cannot write: %s", path, strerror(errno));
  int bad = fwrite(head, 1, hlen, f) != hlen || fwrite(data, 1, n, f) != n;
  bad |= std ? fflush(f) != 0 : fclose(f) != 0;
  if (bad)
    tr_fail(tr, "%s: write error: %s", path, strerror(errno));
}

/* bpgen predict: the logits (or, --argmax, their classes along the last axis)
 * of every row of --data-x, in batches of B, the last one filled up with
 * copies of its first row and only the real rows kept; with --data-y, the
 * loss (exact mean over the rows, tr_split_loss) and the accuracy: the share
 * of positions whose largest logit is the target, when the second input is
 * int and holds one target per position of the logits (targets -1 left out). */
static void tr_predict(Tr *tr) {
  const BpModel *m = tr->m;
  const TrOpts *o = &tr->o;
  if (!tr->tlogits)
    tr_fail(tr, "model %s has no logits tensor (cross_entropy's input or one named logits) to "
            "predict", m->name);
  const BpTensor *l = tr->tlogits;
  size_t B = (size_t)tr->B;
  if (l->rank < 1 || l->numel % B != 0 || (size_t)l->dims[0] % B != 0)
    tr_fail(tr, "model %s: logits %s do not have the batch first", m->name, l->name);
  TrSplit *s = &tr->split[0];
  size_t N = s->n, per = l->numel / B;       /* logits per row */
  size_t K = (size_t)l->dims[l->rank - 1];   /* the class axis */
  size_t P = per / K;                        /* positions per row */
  const BpTensor *ty = tr->nin == 2 ? tr->tin[1] : NULL;
  int acc_ok = o->tfile[0][1] && ty && ty->dtype == BP_I32 && ty->numel / B == P;
  unsigned char *out = tr_alloc(tr, N * (o->argmax ? P * 8 : per * tr->esize));
  double hits = 0, counted = 0;
  for (size_t i = 0; i < N; i += B) {
    size_t k = N - i < B ? N - i : B;
    for (int in = 0; in < tr->nin; in++) {
      size_t rb = tr->rowbytes[in];
      unsigned char *dst = (unsigned char *)tr->state + tr->tin[in]->offset;
      for (size_t b = 0; b < B; b++) {
        if (s->td[in])
          memcpy(dst + b * rb, s->td[in] + (i + (b < k ? b : 0)) * rb, rb);
        else
          memset(dst + b * rb, 0, rb);   /* no --data-y: targets 0, the loss unused */
      }
    }
    m->forward_eval(tr->state);
    const int32_t *Y = ty ? (const int32_t *)((const char *)tr->state + ty->offset) : NULL;
    for (size_t b = 0; b < k; b++)
      for (size_t p = 0; p < P; p++) {
        size_t off = (b * P + p) * K, best = 0;
        for (size_t c = 1; c < K; c++)
          if (tr_get(tr, l, off + c) > tr_get(tr, l, off + best))
            best = c;
        if (o->argmax) {
          int64_t v = (int64_t)best;
          memcpy(out + ((i + b) * P + p) * 8, &v, 8);
        }
        if (acc_ok && Y[b * P + p] >= 0) {
          hits += (size_t)Y[b * P + p] == best;
          counted++;
        }
      }
    if (!o->argmax)
      memcpy(out + i * per * tr->esize, (const char *)tr->state + l->offset, k * per * tr->esize);
  }
  if (o->out) {
    long dim[NPY_MAXRANK];
    int rank = 0;
    dim[rank++] = (long)N * (l->dims[0] / (long)B);   /* [B*T, V] logits: N*T rows */
    for (int d = 1; d < l->rank - (o->argmax ? 1 : 0); d++)
      dim[rank++] = l->dims[d];
    NpyType t = o->argmax ? NPY_I8 : m->dtype == BP_F64 ? NPY_F8 : NPY_F4;
    tr_npy_write(tr, o->out, t, rank, dim, out, N * (o->argmax ? P * 8 : per * tr->esize));
  }
  free(out);
  double loss = o->tfile[0][1] ? tr_split_loss(tr, s) : NAN;
  double acc = counted > 0 ? hits / counted : NAN;
  if (o->json) {
    FILE *f = tr_json_out;
    tr_json_str(f, "{model", m->name);
    fprintf(f, ", \"rows\": %lu", (unsigned long)N);
    if (o->out)
      tr_json_str(f, "output", o->out);
    tr_json_num(f, "loss", loss);
    tr_json_num(f, "accuracy", acc);
    fprintf(f, ", \"correct\": %.0f, \"counted\": %.0f}\n", hits, counted);
    fflush(f);
  }
  if (o->tfile[0][1]) {
    fprintf(tr_out, "loss %.6f\n", loss);
    if (counted > 0)
      fprintf(tr_out, "accuracy %.6f (%.0f of %.0f)\n", acc, hits, counted);
    else
      fprintf(tr_out, "accuracy n/a (%s)\n", !ty || ty->dtype != BP_I32 ? "the targets are not "
              "classes" : "no target per position of the logits");
  } else if (!o->out) {
    fprintf(stderr, "note: no -o FILE.npy and no --data-y: nothing to show\n");
  }
  fflush(tr_out);
}

/* bpgen sample: words or tokens from a checkpoint, by the run's own samplers
 * (tr_sample, tr_sample_seq, tr_sample_stream).  The checkpoint's vocabulary
 * tells words from a stream: words have '.' first (their separator), a --text
 * stream its bytes in order (the smallest, '\n' in most texts, first), llm.c's
 * tokens none (ids are printed). */
static void tr_sample_ck(Tr *tr) {
  if (tr->mode != TR_CTX) {
    if (tr->nvocab > 0 && tr->itos[0] == '.')
      tr->mode = TR_SEQ;
    else {
      tr->mode = TR_STREAM;
      if (tr->nvocab > 0)
        tr->o.text = tr->o.load;   /* print bytes, not token ids */
    }
  }
  if (tr->nvocab > 0 && tr->nvocab != tr->V)
    tr_fail(tr, "%s: a vocabulary of %d but %s has V = %d: use -D V=%d", tr->o.load, tr->nvocab,
            tr->tlogits->name, tr->V, tr->nvocab);
  if (tr->mode == TR_CTX)
    tr_sample(tr);
  else if (tr->mode == TR_SEQ)
    tr_sample_seq(tr);
  else
    tr_sample_stream(tr);
}

/* a run's start, before its setjmp: the state cleared, output and error text reset */
static void tr_begin(Tr *tr, const BpModel *m) {
  memset(tr, 0, sizeof *tr);
  tr->m = m;
  if (!tr_out)
    tr_out = stdout;
  tr_errbuf[0] = '\0';
  tr->tty = isatty(2);
  tr_parsing = 0;
}

static int tr_use_main(const BpModel *m, int argc, char **argv, int cmd) {
  Tr trs;
  Tr *volatile tr = &trs;   /* volatile: used after longjmp */
  tr_begin(tr, m);
  tr->cmd = cmd;
  if (setjmp(tr->jb)) {
    fflush(tr_out);
    tr_json_end();
    tr_free(tr);
    return tr_parsing ? 2 : 1;
  }
  if (tr_parse(tr, argc, argv) == 2)
    return 0;
  tr_json_begin(tr);
  tr_find_tensors(tr);
  if (cmd == TR_PREDICT)
    tr_load_tensors(tr);
  tr_use_load(tr);
  if (cmd == TR_PREDICT)
    tr_predict(tr);
  else
    tr_sample_ck(tr);
  fflush(tr_out);
  tr_json_end();
  tr_free(tr);
  return 0;
}

int bp_predict_main(const BpModel *m, int argc, char **argv) {
  return tr_use_main(m, argc, argv, TR_PREDICT);
}

int bp_sample_main(const BpModel *m, int argc, char **argv) {
  return tr_use_main(m, argc, argv, TR_SAMPLE);
}

int bp_train_main(const BpModel *m, int argc, char **argv) {
  Tr trs;
  Tr *volatile tr = &trs;   /* volatile: used after longjmp */
  tr_begin(tr, m);
  if (setjmp(tr->jb)) {
    fflush(tr_out);
    tr_json_end();
    tr_free(tr);
    tr_mpi_end(1);
    return tr_parsing ? 2 : 1;   /* 2: a mistake on the command line */
  }
  tr_mpi_begin(tr);
  if (tr_parse(tr, argc, argv) == 2) {
    tr_mpi_end(0);
    return 0;
  }
  tr_mpi_roles(tr);
  tr_json_begin(tr);
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
  if (tr_torch_prog && tr_mpi.size > 1)
    tr_fail(tr, "--rng torch draws PyTorch's numbers in one process: not under MPI (%d ranks)", tr_mpi.size);
  if (tr_torch_prog)
    tr_torch_init(tr);
  if (m->set_lean && !tr_mine_fn)   /* the params' grads, loss and logits are all training reads */
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
  if (o->sync_bn && !m->set_ranks)
    tr_fail(tr, "--sync-bn: model %s has no batchnorm", m->name);
  if (o->sync_bn && !m->sync_bn)
    tr_fail(tr, "--sync-bn: model %s was generated without it (bpgen run --sync-bn, or bpgen SPEC "
            "--trainer --sync-bn)", m->name);
  if (o->sync_bn && tr_mine_fn)
    tr_fail(tr, "--sync-bn: your backward() does not sum batchnorm's column sums over the ranks");
  tr_mpi_start(tr);
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
  tr_mpi_report(tr, el);
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
  double ltest = tr->tensor && tr->split[2].n > 0 ? tr_split_loss(tr, &tr->split[2]) : NAN;
  if (tr_finite(ltest))
    fprintf(tr_out, "test loss %.4f\n", ltest);
  if (o->json)
    tr_json_run(tr, ltr, ldev, ltest);
  if (tr->mode == TR_CTX)
    tr_sample(tr);
  else if (tr->mode == TR_SEQ)
    tr_sample_seq(tr);
  else if (tr->mode == TR_STREAM)
    tr_sample_stream(tr);
  fflush(tr_out);
  tr_json_end();
  tr_free(tr);
  tr_mpi_end(0);
  return 0;
}
