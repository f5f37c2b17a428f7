/* test_llmc.c: llm.c's GPT-2 checkpoint format (runtime/llmc_ckpt.h): the
 * header reader on a good file and on one malformed header per check (the
 * message each must give), on random bytes (no crash, and a header accepted
 * only with the size its dims make); then the trainer (specs/gpt2.spec at tiny
 * dims, compiled in memory) writing a checkpoint, reading it back bit for bit,
 * and refusing one built for other dims or holding a NaN. */
#include "tests.h"
#include "bp_runtime.h"
#include "llmc_ckpt.h"

#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A header for these dims (maxT V L NH C Vp). */
static void header(unsigned char *h, long maxT, long V, long L, long NH, long C, long Vp) {
  long dim[LLMC_NDIMS] = {maxT, V, L, NH, C, Vp};
  llmc_header_write(h, dim);
}

/* GPT-2's param count, written out independently of llmc_params:
 * wte, wpe, then per layer 12C^2 weights and 13C biases and gains, then lnf. */
static unsigned long long gpt2_params(long maxT, long L, long C, long Vp) {
  return (unsigned long long)(Vp * C + maxT * C + L * (12 * C * C + 13 * C) + 2 * C);
}

START_TEST(t_header_ok) {
  unsigned char h[LLMC_HEADER_BYTES];
  header(h, 64, 65, 2, 4, 64, 96);
  unsigned long long n = gpt2_params(64, 2, 64, 96);
  ck_assert_uint_eq(n, 110336);   /* what `bpgen run` prints for gpt2.spec -D L=2 -D C=64 */
  LlmcHeader hd;
  char err[512] = "";
  ck_assert_int_eq(llmc_header_parse(h, sizeof h, 1024 + 4 * n, &hd, err, sizeof err), 0);
  ck_assert_uint_eq(hd.nparam, n);
  long want[LLMC_NDIMS] = {64, 65, 2, 4, 64, 96};
  for (int d = 0; d < LLMC_NDIMS; d++)
    ck_assert_int_eq(hd.dim[d], want[d]);
  ck_assert_str_eq(llmc_params[4].name, "qkvw");
  ck_assert_int_eq(hd.shape[4][0], 2);
  ck_assert_int_eq(hd.shape[4][1], 192);
  ck_assert_int_eq(hd.shape[4][2], 64);
  ck_assert_str_eq(llmc_params[12].name, "fcprojw");
  ck_assert_int_eq(hd.shape[12][1], 64);
  ck_assert_int_eq(hd.shape[12][2], 256);
  ck_assert_uint_eq(hd.numel[0], 96 * 64);
  ck_assert(llmc_is_checkpoint(h, 4));
  ck_assert(!llmc_is_checkpoint(h, 3));
}
END_TEST

/* One malformed header per check: the int to overwrite (or -1), its value,
 * the file size's difference from the right one, the bytes given, the
 * message. */
static const struct {
  int at;
  int32_t value;
  long dsize;
  size_t len;
  const char *msg;
} bad[] = {
  {0, 20240520, 0, 1024, "not an llm.c checkpoint (its header starts with 20240326)"},
  {0, 0, 0, 1024, "not an llm.c checkpoint"},
  {-1, 0, 0, 3, "not an llm.c checkpoint"},
  {-1, 0, 0, 100, "truncated llm.c checkpoint: 100 bytes, its header alone is 1024"},
  {-1, 0, 0, 1023, "truncated llm.c checkpoint: 1023 bytes"},
  {1, 5, 0, 1024, "llm.c checkpoint version 5: only version 3 (fp32 params) is read (5 is bf16)"},
  {1, 1, 0, 1024, "llm.c checkpoint version 1: only version 3"},
  {2, 0, 0, 1024, "the header's maxT (int 2) is 0: every dim must be positive"},
  {3, -1, 0, 1024, "the header's V (int 3) is -1"},
  {4, 0, 0, 1024, "the header's L (int 4) is 0"},
  {5, -7, 0, 1024, "the header's NH (int 5) is -7"},
  {6, INT32_MIN, 0, 1024, "the header's C (int 6) is -2147483648"},
  {7, 0, 0, 1024, "the header's Vp (int 7) is 0"},
  {5, 3, 0, 1024, "the header's C = 64 is not a multiple of NH = 3"},
  {3, 97, 0, 1024, "the header's V = 97 is more than the padded Vp = 96"},
  {6, INT32_MAX - 63, 0, 1024, "more than 2^40 params"},
  {4, 1 << 30, 0, 1024, "more than 2^40 params"},
  {-1, 0, -4, 1024, "truncated llm.c checkpoint: the header's dims (maxT 64, V 65, L 2, NH 4, "
                    "C 64, Vp 96) make 110336 params, 442368 bytes with the header, but the file "
                    "has 442364 bytes"},
  {-1, 0, -442368 + 1024, 1024, "truncated llm.c checkpoint: the header's dims"},
  {-1, 0, 1, 1024, "llm.c checkpoint with extra bytes: the header's dims (maxT 64, V 65, L 2, "
                   "NH 4, C 64, Vp 96) make 110336 params, 442368 bytes with the header, but the "
                   "file has 442369 bytes"},
};

START_TEST(t_header_bad) {
  unsigned char h[LLMC_HEADER_BYTES];
  header(h, 64, 65, 2, 4, 64, 96);
  if (bad[_i].at >= 0)
    llmc_put32(h + 4 * bad[_i].at, (uint32_t)bad[_i].value);
  LlmcHeader hd;
  char err[512] = "";
  long long size = 1024 + 4 * 110336LL + bad[_i].dsize;
  ck_assert_int_eq(llmc_header_parse(h, bad[_i].len, (unsigned long long)size, &hd, err,
                                     sizeof err), -1);
  ck_assert_msg(strstr(err, bad[_i].msg), "case %d: got '%s', want '%s'", _i, err, bad[_i].msg);
}
END_TEST

/* Random headers (the magic and version right half the time, small dims
 * often) and random sizes: the reader returns, and accepts only a file
 * exactly as long as its dims make it. */
START_TEST(t_header_garbage) {
  BpRng r;
  bp_rng_seed(&r, 12345);
  unsigned char h[LLMC_HEADER_BYTES + 8];
  int accepted = 0;
  for (int it = 0; it < 20000; it++) {
    for (size_t k = 0; k < sizeof h; k++)
      h[k] = (unsigned char)bp_rng_next(&r);
    if (it & 1) {
      llmc_put32(h, LLMC_MAGIC);
      llmc_put32(h + 4, LLMC_VERSION);
    }
    if (it & 2) {   /* small dims, mostly consistent (NH divides C, V <= Vp) */
      long d[LLMC_NDIMS];
      for (int k = 0; k < LLMC_NDIMS; k++)
        d[k] = (long)(bp_rng_next(&r) % 9);
      d[LLMC_C] = d[LLMC_NH] * (long)(bp_rng_next(&r) % 4);
      d[LLMC_Vp] = d[LLMC_V] + (long)(bp_rng_next(&r) % 3) - 1;
      for (int k = 0; k < LLMC_NDIMS; k++)
        llmc_put32(h + 8 + 4 * k, (uint32_t)d[k]);
    }
    size_t len = bp_rng_next(&r) % 4 ? LLMC_HEADER_BYTES : (size_t)(bp_rng_next(&r) % (sizeof h + 1));
    LlmcHeader hd;
    char err[512];
    unsigned long long size = bp_rng_next(&r) % 4 == 0 ? bp_rng_next(&r) : bp_rng_next(&r) % 100000;
    int rc = llmc_header_parse(h, len, size, &hd, err, sizeof err);
    if (rc == 0) {
      accepted++;
      ck_assert_uint_eq(size, 1024 + 4ull * hd.nparam);
    } else {
      ck_assert_int_eq(rc, -1);
      ck_assert(strlen(err) > 10);
    }
    /* the same header with the size its dims make is accepted when the rest is right */
    if (rc < 0 && len >= LLMC_HEADER_BYTES && llmc_is_checkpoint(h, len) &&
        strstr(err, "the header's dims") && strstr(err, "bytes with the header")) {
      ck_assert_int_eq(llmc_header_parse(h, len, 1024 + 4ull * hd.nparam, &hd, err, sizeof err), 0);
      accepted++;
    }
  }
  ck_assert_int_gt(accepted, 100);   /* the loop reached the size check */
}
END_TEST

/* ---- the trainer ------------------------------------------------------------------ */

static const char *dir;

/* An llm.c token file of n tokens, token i = i % v. */
static const char *tokens(int n, int v) {
  const char *p = arena_printf("%s/tok.bin", dir);
  FILE *f = fopen(p, "wb");
  ck_assert_ptr_nonnull(f);
  unsigned char h[1024] = {0};
  llmc_put32(h, 20240520);
  llmc_put32(h + 4, 1);
  llmc_put32(h + 8, (uint32_t)n);
  fwrite(h, 1, sizeof h, f);
  for (int i = 0; i < n; i++) {
    unsigned char b[2] = {(unsigned char)(i % v), 0};
    fwrite(b, 1, 2, f);
  }
  fclose(f);
  return p;
}

typedef int TrainMain(const BpModel *m, int argc, char **argv);

/* bp_train_main of gpt2.spec at tiny dims (L layers) with the args after
 * --data-tokens TOK --steps 0 --sample-len 0 --quiet (up to six, NULL
 * ending them); its stderr into *err. */
static int train(int L, const char **err, ...) {
  DimOverride ovr[] = {{"B", 2, false}, {"T", 4, false}, {"maxT", 6, false}, {"V", 5, false},
                       {"Vp", 8, false}, {"L", L, false}, {"NH", 2, false}, {"C", 4, false}};
  Graph *g = load_spec_with(arena_printf("%s/gpt2.spec", specs_dir()), ovr, 8);
  grad_build(g);
  EmitOptions opt = {DT_F32, "gpt2", true, false, false};
  Jit *j = jit_compile(trainer_source(g, &opt), "gpt2.spec");
  TrainMain *fn = (TrainMain *)jit_symbol(j, "bp_train_main");
  const BpModel *m = jit_symbol(j, "gpt2_model");
  ck_assert(fn && m);
  char *argv[16] = {"train", "--data-tokens", (char *)tokens(9, 5), "--steps", "0",
                    "--sample-len", "0", "--quiet"};
  int argc = 8;
  va_list ap;
  va_start(ap, err);
  for (char *a; argc < 14 && (a = va_arg(ap, char *)); )
    argv[argc++] = a;
  va_end(ap);
  argv[argc] = NULL;
  const char *errpath = arena_printf("%s/stderr", dir);
  fflush(stderr);
  int saved = dup(2), fd = open(errpath, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  dup2(fd, 2);
  close(fd);
  int rc = fn(m, argc, argv);
  fflush(stderr);
  dup2(saved, 2);
  close(saved);
  jit_free(j);
  *err = read_src(errpath)->text;
  return rc;
}

static SrcFile *file(const char *name) {
  return read_src(arena_printf("%s/%s", dir, name));
}

START_TEST(t_trainer_roundtrip) {
  dir = tests_tmpdir("llmc");
  const char *err;
  const char *a = arena_printf("%s/a.bin", dir), *b = arena_printf("%s/b.bin", dir);
  ck_assert_int_eq(train(1, &err, "--save", a, NULL), 0);
  SrcFile *fa = file("a.bin");
  unsigned long long n = gpt2_params(6, 1, 4, 8);
  ck_assert_uint_eq(fa->len, 1024 + 4 * n);
  LlmcHeader h;
  char msg[512];
  ck_assert_int_eq(llmc_header_parse((const unsigned char *)fa->text, fa->len, fa->len, &h, msg,
                                     sizeof msg), 0);
  long want[LLMC_NDIMS] = {6, 5, 1, 2, 4, 8};
  for (int d = 0; d < LLMC_NDIMS; d++)
    ck_assert_int_eq(h.dim[d], want[d]);
  /* ln1w is ones, ln1b zeros (the spec's initialisers), at their offsets */
  size_t off = 1024 + 4 * (8 * 4 + 6 * 4);
  float one, zero;
  memcpy(&one, fa->text + off, 4);
  memcpy(&zero, fa->text + off + 16, 4);
  ck_assert(one == 1.0f && zero == 0.0f);

  /* read back under another seed (another init) and written again: the same bytes */
  ck_assert_int_eq(train(1, &err, "--seed", "99", "--load", a, "--save", b, NULL), 0);
  SrcFile *fb = file("b.bin");
  ck_assert_uint_eq(fb->len, fa->len);
  ck_assert(memcmp(fa->text, fb->text, fa->len) == 0);
}
END_TEST

START_TEST(t_trainer_refuses) {
  dir = tests_tmpdir("llmc");
  const char *err;
  const char *a = arena_printf("%s/a.bin", dir);
  ck_assert_int_eq(train(1, &err, "--save", a, NULL), 0);
  /* a trainer built with L = 2 (a --trainer program: no host to set the dims) */
  ck_assert_int_eq(train(2, &err, "--load", a, NULL), 1);
  ck_assert_msg(strstr(err, "a.bin: the checkpoint has L = 1 but model gpt2 was built with L = 2"),
                "%s", err);
  /* a NaN in a param */
  SrcFile *fa = file("a.bin");
  unsigned char *buf = malloc(fa->len);
  memcpy(buf, fa->text, fa->len);
  llmc_put32(buf + 1024 + 4 * 3, 0x7fc00000u);
  const char *nan = arena_printf("%s/nan.bin", dir);
  FILE *f = fopen(nan, "wb");
  fwrite(buf, 1, fa->len, f);
  fclose(f);
  ck_assert_int_eq(train(1, &err, "--load", nan, NULL), 1);
  ck_assert_msg(strstr(err, "nan.bin: wte holds a non-finite value (element 3)"), "%s", err);
  /* truncated by one param: the trainer's own check (no host here) */
  f = fopen(nan, "wb");
  fwrite(fa->text, 1, fa->len - 4, f);
  fclose(f);
  ck_assert_int_eq(train(1, &err, "--load", nan, NULL), 1);
  ck_assert_msg(strstr(err, "nan.bin: truncated llm.c checkpoint: the header's dims"), "%s", err);
  free(buf);
}
END_TEST

static Suite *make_suite(void) {
  Suite *s = suite_create("llmc");
  TCase *tc = tcase_create("header");
  tcase_add_test(tc, t_header_ok);
  tcase_add_loop_test(tc, t_header_bad, 0, (int)(sizeof bad / sizeof bad[0]));
  tcase_add_test(tc, t_header_garbage);
  suite_add_tcase(s, tc);
  tc = tcase_create("trainer");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, t_trainer_roundtrip);
  tcase_add_test(tc, t_trainer_refuses);
  suite_add_tcase(s, tc);
  return s;
}
TESTS_REGISTER(make_suite)
