/* cmd_predict.c: `bpgen predict` and `bpgen sample`: a trained model used
 * without training.  Both compile the spec with the trainer in memory, as
 * `bpgen run` does (run_trainer), and call the trainer's other entry points,
 * bp_predict_main and bp_sample_main (templates/trainer.c), which load the
 * checkpoint and reuse the run's own evaluation and samplers.
 *
 * The spec must describe the model the checkpoint was trained as (the same
 * -D); V is taken from the checkpoint's vocabulary when the spec has a dim V
 * and no -D V= is given, as run takes it from the data.
 */
#include "bpgen.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "npy_parse.h"

static const char predict_usage[] =
  "usage: bpgen predict SPEC --load CK.npz --data-x X.npy [--data-y Y.npy] [-o OUT.npy]\n"
  "                     [--argmax] [--json] [-D NAME=INT]... [--dtype f32|f64]\n"
  "\n"
  "The model's logits for every row of X.npy (any number of rows: the last batch\n"
  "is filled up and only the real rows are kept), from the params and batchnorm\n"
  "statistics of a checkpoint written by `bpgen run --save`.  Inputs are fed as\n"
  "run feeds tensor data: the first from --data-x, the second from --data-y\n"
  "(zeros when not given).  SPEC, -D and --dtype must be the training run's.\n"
  "  --load CK.npz    the checkpoint (required)\n"
  "  --data-x X.npy   the rows to predict (- for standard input)\n"
  "  --data-y Y.npy   targets: prints the loss (the model's, averaged over the\n"
  "                   rows) and the accuracy (argmax of the logits = target)\n"
  "  -o OUT.npy       writes the logits, shape (N, ...) (- for standard output)\n"
  "  --argmax         writes the classes (argmax over the last axis, int64) instead\n"
  "  --json           loss and accuracy as one JSON object on standard output\n"
  "  --threads N      threads of the heavy kernels\n";

static const char sample_usage[] =
  "usage: bpgen sample SPEC --load CK.npz [-n N] [--seed N] [--temperature X] [--top-k K]\n"
  "                    [-D NAME=INT]... [--dtype f32|f64]\n"
  "\n"
  "Samples from a character model trained by `bpgen run --save`: N words (the\n"
  "lecture's contexts and makemore's sequences) or N tokens (a model trained on\n"
  "a token stream).  Without --seed the run's seed is used, so the words\n"
  "are the ones the run printed after training.  SPEC, -D and --dtype must be\n"
  "the training run's.\n"
  "  --load CK.npz    the checkpoint (required)\n"
  "  -n N             words, or tokens of a stream (default 20 words, 200 tokens)\n"
  "  --seed N         samples are drawn with seed N+10, as run's\n"
  "  --temperature X  logits / X (default 1)\n"
  "  --top-k K        only the K most likely tokens (default 0: all)\n"
  "  --threads N      threads of the heavy kernels\n";

/* The length of the vocab entry of checkpoint path (an uncompressed .npz), or
 * -1 when it cannot be read (the trainer then says why). */
static long ck_vocab_len(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f)
    return -1;
  long n = -1;
  unsigned char *b = NULL;
  if (fseek(f, 0, SEEK_END) == 0) {
    long len = ftell(f);
    if (len >= 22 && len < (1L << 34) && fseek(f, 0, SEEK_SET) == 0) {
      b = xmalloc((size_t)len);
      if (fread(b, 1, (size_t)len, f) != (size_t)len)
        len = 0;
      /* the central directory: 46-byte entries, then the name */
      const unsigned char *end = len >= 22 ? b + len - 22 : b;
      #define U16(p) ((size_t)(p)[0] | (size_t)(p)[1] << 8)
      #define U32(p) (U16(p) | U16((p) + 2) << 16)
      if (len >= 22 && U32(end) == 0x06054b50u) {
        size_t cnt = U16(end + 10), cdoff = U32(end + 16), p = cdoff;
        for (size_t i = 0; i < cnt && p + 46 <= (size_t)len && U32(b + p) == 0x02014b50u; i++) {
          size_t nl = U16(b + p + 28), xl = U16(b + p + 30), cl = U16(b + p + 32);
          size_t lo = U32(b + p + 42), sz = U32(b + p + 20);
          if (nl == 9 && p + 46 + 9 <= (size_t)len && memcmp(b + p + 46, "vocab.npy", 9) == 0 &&
              lo + 30 <= (size_t)len) {
            size_t d = lo + 30 + U16(b + lo + 26) + U16(b + lo + 28);
            NpyHeader h;
            char err[256];
            if (d <= (size_t)len && sz <= (size_t)len - d &&
                npy_header_parse(b + d, sz, 1, &h, err, sizeof err) == 0 && h.rank == 1)
              n = h.dim[0];
            break;
          }
          p += 46 + nl + xl + cl;
        }
      }
      #undef U16
      #undef U32
    }
  }
  fclose(f);
  free(b);
  return n;
}

/* Shared by both commands: the options (bpgen's own to c, the rest passed to
 * the trainer), then the spec with V from the checkpoint. */
static int use_main(int argc, char **argv, const char *cmd, const char *usage, const char *entry) {
  static const char *const valued[] = {
    "--load", "--data-x", "--data-y", "--threads", "--temperature", "--top-k", "-n",
  };
  static const char *const flags[] = {"--argmax", "--json", "--quiet"};
  bool predict = strcmp(cmd, "predict") == 0;
  Cli c;
  cli_init(&c, DT_F32);
  char **targv = arena_alloc(sizeof(char *) * (size_t)(argc + 4));
  int targc = 0;
  targv[targc++] = arena_printf("bpgen %s", cmd);
  const char *load = NULL, *tfile[2] = {NULL, NULL};
  bool seed = false;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      fputs(usage, stdout);
      return 0;
    }
    bool ok = false;
    for (size_t k = 0; k < sizeof flags / sizeof flags[0] && !ok; k++)
      if (strcmp(a, flags[k]) == 0 && (predict || k == 2))
        ok = true, targv[targc++] = argv[i];
    for (size_t k = 0; k < sizeof valued / sizeof valued[0] && !ok; k++) {
      bool mine = k < 1 || (predict ? k < 4 : k == 3 || k > 3);
      if (strcmp(a, valued[k]) == 0 && mine) {
        const char *v = cli_value(argc, argv, &i);
        targv[targc++] = (char *)a;
        targv[targc++] = (char *)v;
        if (k == 0)
          load = v;
        if (k == 1 || k == 2)
          tfile[k - 1] = v;
        ok = true;
      }
    }
    if (ok)
      continue;
    if (predict && strcmp(a, "-o") == 0) {
      targv[targc++] = "-o";
      targv[targc++] = (char *)cli_value(argc, argv, &i);
      continue;
    }
    seed |= strcmp(a, "--seed") == 0;
    if (!cli_common(&c, argc, argv, &i) || c.out)
      cli_unknown(cmd, a);
  }
  if (!c.spec)
    error_usage("%s: no spec file given (see bpgen %s --help)", cmd, cmd);
  if (!load)
    error_usage("%s: no checkpoint: give --load FILE.npz (written by bpgen run --save)", cmd);
  if (predict && !tfile[0])
    error_usage("predict: no data: give --data-x X.npy (the model's first input)");
  if (seed) {
    targv[targc++] = "--seed";
    targv[targc++] = arena_printf("%llu", (unsigned long long)c.seed);
  }
  targv[targc] = NULL;
  bool user_v = false;
  for (int k = 0; k < c.novr; k++)
    user_v |= strcmp(c.ovr[k].name, "V") == 0;
  Graph *g = cli_load(&c);
  long v = user_v ? -1 : ck_vocab_len(load);
  for (int k = 0; k < g->ndims && v > 0; k++) {
    if (strcmp(g->dims[k].name, "V") != 0 || g->dims[k].value == v)
      continue;
    fprintf(stderr, "note: V = %ld from %s (the spec says %ld)\n", v, load, g->dims[k].value);
    c.ovr[c.novr++] = (DimOverride){"V", v, false};
    for (int j = 0; j < c.novr; j++)
      c.ovr[j].used = false;
    g = cli_load(&c);
    break;
  }
  for (int k = 0; k < 2; k++)
    if (tfile[k])
      run_check_npy(&c, g, k, tfile[k]);
  return run_trainer(&c, g, entry, targc, targv);
}

int cmd_predict(int argc, char **argv) {
  return use_main(argc, argv, "predict", predict_usage, "bp_predict_main");
}

int cmd_sample(int argc, char **argv) {
  return use_main(argc, argv, "sample", sample_usage, "bp_sample_main");
}
