/* llmc_ckpt.h: llm.c's GPT-2 checkpoint format (train_gpt2.c's
 * gpt2_build_from_checkpoint, train_gpt2.py's write_model), for bpgen's host
 * side (gen/cmd_run.c reads the dims before compiling the spec) and for the
 * trainer (templates/trainer.c reads and writes the params; scripts/embed.sh
 * pastes this file into it, so an emitted trainer stands alone).  Plain C99,
 * static functions, no bpgen header: errors come back as -1 and a message.
 *
 * A file is a header of 256 little-endian int32 -- 20240326 (the magic), 3
 * (the version: fp32 params), maxT, V, L, NH, C, Vp, the rest 0 -- then the 16
 * params as little-endian fp32, each in C order, one after another in the
 * order of llmc_params, with no padding, and nothing after them.  Per-layer
 * params are stacked on a leading axis L; weights are stored (out, in).
 */
#ifndef LLMC_CKPT_H
#define LLMC_CKPT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

enum {
  LLMC_MAGIC = 20240326,
  LLMC_VERSION = 3,
  LLMC_HEADER_BYTES = 256 * 4,
  LLMC_NDIMS = 6,          /* maxT V L NH C Vp: header ints 2..7 */
  LLMC_NPARAMS = 16,
};
enum { LLMC_maxT, LLMC_V, LLMC_L, LLMC_NH, LLMC_C, LLMC_Vp };

static const char *const llmc_dim_names[LLMC_NDIMS] = {"maxT", "V", "L", "NH", "C", "Vp"};

/* The params in file order.  A shape is up to three factors, each a product
 * k * dim (dim -1: none): wte [Vp, C], qkvw [L, 3C, C], ... */
static const struct LlmcParam {
  const char *name;
  int rank;
  struct { int k, dim; } ax[3];   /* (no double braces: trainer.c is a template) */
} llmc_params[LLMC_NPARAMS] = {
  {"wte",      2, { {1, LLMC_Vp},   {1, LLMC_C}, {0, -1} } },
  {"wpe",      2, { {1, LLMC_maxT}, {1, LLMC_C}, {0, -1} } },
  {"ln1w",     2, { {1, LLMC_L},    {1, LLMC_C}, {0, -1} } },
  {"ln1b",     2, { {1, LLMC_L},    {1, LLMC_C}, {0, -1} } },
  {"qkvw",     3, { {1, LLMC_L},    {3, LLMC_C}, {1, LLMC_C} } },
  {"qkvb",     2, { {1, LLMC_L},    {3, LLMC_C}, {0, -1} } },
  {"attprojw", 3, { {1, LLMC_L},    {1, LLMC_C}, {1, LLMC_C} } },
  {"attprojb", 2, { {1, LLMC_L},    {1, LLMC_C}, {0, -1} } },
  {"ln2w",     2, { {1, LLMC_L},    {1, LLMC_C}, {0, -1} } },
  {"ln2b",     2, { {1, LLMC_L},    {1, LLMC_C}, {0, -1} } },
  {"fcw",      3, { {1, LLMC_L},    {4, LLMC_C}, {1, LLMC_C} } },
  {"fcb",      2, { {1, LLMC_L},    {4, LLMC_C}, {0, -1} } },
  {"fcprojw",  3, { {1, LLMC_L},    {1, LLMC_C}, {4, LLMC_C} } },
  {"fcprojb",  2, { {1, LLMC_L},    {1, LLMC_C}, {0, -1} } },
  {"lnfw",     1, { {1, LLMC_C},    {0, -1},     {0, -1} } },
  {"lnfb",     1, { {1, LLMC_C},    {0, -1},     {0, -1} } },
};

typedef struct LlmcHeader {
  long dim[LLMC_NDIMS];            /* maxT V L NH C Vp */
  long shape[LLMC_NPARAMS][3];     /* each param's shape (llmc_params[i].rank axes) */
  size_t numel[LLMC_NPARAMS];
  size_t nparam;                   /* all params' elements together */
} LlmcHeader;

static inline uint32_t llmc_get32(const unsigned char *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline void llmc_put32(unsigned char *p, uint32_t v) {
  p[0] = v & 0xFF; p[1] = (v >> 8) & 0xFF; p[2] = (v >> 16) & 0xFF; p[3] = (v >> 24) & 0xFF;
}

/* Whether the first len bytes of a file start with the checkpoint magic. */
static inline int llmc_is_checkpoint(const unsigned char *buf, size_t len) {
  return len >= 4 && (int32_t)llmc_get32(buf) == LLMC_MAGIC;
}

/* Each param's shape and size from the six dims (all positive), refusing
 * sizes past 2^40 elements (no overflow, whatever the dims). */
static inline int llmc_shapes(LlmcHeader *h, char *err, size_t cap) {
  const double limit = 1099511627776.0;   /* 2^40 */
  double total = 0;
  for (int i = 0; i < LLMC_NPARAMS; i++) {
    double n = 1;
    for (int a = 0; a < llmc_params[i].rank; a++) {
      long d = llmc_params[i].ax[a].k * h->dim[llmc_params[i].ax[a].dim];
      h->shape[i][a] = d;
      n *= (double)d;
    }
    total += n;
    if (total > limit) {
      snprintf(err, cap, "the header's dims make more than 2^40 params (maxT %ld, V %ld, L %ld, "
               "NH %ld, C %ld, Vp %ld)", h->dim[0], h->dim[1], h->dim[2], h->dim[3], h->dim[4],
               h->dim[5]);
      return -1;
    }
    h->numel[i] = (size_t)n;
  }
  h->nparam = (size_t)total;
  return 0;
}

/* Parses and checks the header in buf (the first len bytes of a file of
 * fsize bytes): magic, version, the six dims positive (below 2^31), C a
 * multiple of NH, V at most Vp, and the file exactly the header and the
 * params the dims make.  Returns 0, or -1 with a message in err. */
static inline int llmc_header_parse(const unsigned char *buf, size_t len, unsigned long long fsize,
                                    LlmcHeader *h, char *err, size_t cap) {
  memset(h, 0, sizeof *h);
  if (len < 4 || (int32_t)llmc_get32(buf) != LLMC_MAGIC) {
    snprintf(err, cap, "not an llm.c checkpoint (its header starts with %d)", LLMC_MAGIC);
    return -1;
  }
  if (len < LLMC_HEADER_BYTES) {
    snprintf(err, cap, "truncated llm.c checkpoint: %lu bytes, its header alone is %d (256 int32)",
             (unsigned long)len, LLMC_HEADER_BYTES);
    return -1;
  }
  long version = (int32_t)llmc_get32(buf + 4);
  if (version != LLMC_VERSION) {
    snprintf(err, cap, "llm.c checkpoint version %ld: only version %d (fp32 params) is read%s",
             version, LLMC_VERSION, version == 5 ? " (5 is bf16)" : "");
    return -1;
  }
  for (int d = 0; d < LLMC_NDIMS; d++) {
    h->dim[d] = (int32_t)llmc_get32(buf + 8 + 4 * d);
    if (h->dim[d] <= 0) {
      snprintf(err, cap, "the header's %s (int %d) is %ld: every dim must be positive",
               llmc_dim_names[d], d + 2, h->dim[d]);
      return -1;
    }
  }
  if (h->dim[LLMC_C] % h->dim[LLMC_NH] != 0) {
    snprintf(err, cap, "the header's C = %ld is not a multiple of NH = %ld", h->dim[LLMC_C],
             h->dim[LLMC_NH]);
    return -1;
  }
  if (h->dim[LLMC_V] > h->dim[LLMC_Vp]) {
    snprintf(err, cap, "the header's V = %ld is more than the padded Vp = %ld", h->dim[LLMC_V],
             h->dim[LLMC_Vp]);
    return -1;
  }
  if (llmc_shapes(h, err, cap) < 0)
    return -1;
  unsigned long long want = LLMC_HEADER_BYTES + 4ull * h->nparam;
  if (fsize != want) {
    snprintf(err, cap, "%s: the header's dims (maxT %ld, V %ld, L %ld, NH %ld, C %ld, Vp %ld) make "
             "%lu params, %llu bytes with the header, but the file has %llu bytes",
             fsize < want ? "truncated llm.c checkpoint" : "llm.c checkpoint with extra bytes",
             h->dim[0], h->dim[1], h->dim[2], h->dim[3], h->dim[4], h->dim[5],
             (unsigned long)h->nparam, want, fsize);
    return -1;
  }
  return 0;
}

/* The 1024-byte header for these dims. */
static inline void llmc_header_write(unsigned char *out, const long dim[LLMC_NDIMS]) {
  memset(out, 0, LLMC_HEADER_BYTES);
  llmc_put32(out, LLMC_MAGIC);
  llmc_put32(out + 4, LLMC_VERSION);
  for (int d = 0; d < LLMC_NDIMS; d++)
    llmc_put32(out + 8 + 4 * d, (uint32_t)dim[d]);
}

#endif
