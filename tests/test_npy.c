/* test_npy.c: .npy round trips per dtype and rank, a version 2.0 header, and
 * one malformed file per failure with the message it must give. */
#include "tests.h"
#include "npy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char tmpdir[64];

static void setup(void) {
  snprintf(tmpdir, sizeof tmpdir, "/tmp/bpgen_npy_XXXXXX");
  if (!mkdtemp(tmpdir))
    ck_abort_msg("mkdtemp failed");
}

static void teardown(void) {
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
  if (system(cmd) != 0)
    fprintf(stderr, "could not remove %s\n", tmpdir);
}

static const char *tmp(const char *name) {
  return arena_printf("%s/%s", tmpdir, name);
}

static void write_bytes(const char *path, const void *buf, size_t len) {
  FILE *fp = fopen(path, "wb");
  ck_assert_ptr_nonnull(fp);
  ck_assert_uint_eq(fwrite(buf, 1, len, fp), len);
  fclose(fp);
}

/* A file with the given header dict (padded numpy-style) followed by data. */
static void write_npy_raw(const char *path, int major, const char *dict, const void *data,
                          size_t dlen) {
  unsigned char buf[1024];
  size_t pre = major == 1 ? 10 : 12, dl = strlen(dict);
  size_t total = pre + dl + 1, pad = (64 - total % 64) % 64, hlen = dl + pad + 1;
  memcpy(buf, "\x93NUMPY", 6);
  buf[6] = (unsigned char)major;
  buf[7] = 0;
  buf[8] = (unsigned char)(hlen & 0xff);
  buf[9] = (unsigned char)(hlen >> 8);
  if (major != 1)
    buf[10] = buf[11] = 0;
  memcpy(buf + pre, dict, dl);
  memset(buf + pre + dl, ' ', pad);
  buf[pre + dl + pad] = '\n';
  ck_assert_uint_le(pre + hlen + dlen, sizeof buf);
  memcpy(buf + pre + hlen, data, dlen);
  write_bytes(path, buf, pre + hlen + dlen);
}

/* ---- round trips ---------------------------------------------------------------- */

static const struct {
  NpyType type;
  int size;
  Shape shape;
} trips[] = {
  {NPY_F8, 8, {0, {0}}},          {NPY_F8, 8, {1, {5}}},     {NPY_F8, 8, {2, {3, 4}}},
  {NPY_F4, 4, {0, {0}}},          {NPY_F4, 4, {3, {2, 3, 4}}}, {NPY_I4, 4, {1, {7}}},
  {NPY_I8, 8, {2, {2, 2}}},       {NPY_U1, 1, {1, {9}}},     {NPY_F8, 8, {6, {1, 2, 1, 2, 1, 2}}},
  {NPY_F4, 4, {2, {0, 3}}},
};

START_TEST(round_trip) {
  NpyType t = trips[_i].type;
  const Shape *s = &trips[_i].shape;
  long n = shape_numel(s);
  size_t bytes = (size_t)trips[_i].size * (size_t)n;
  unsigned char *data = malloc(bytes + 1);
  for (size_t k = 0; k < bytes; k++)
    data[k] = (unsigned char)(k * 37 + 11);
  const char *path = tmp("a.npy");
  npy_write(path, t, s, data);
  Npy a;
  npy_read(path, &a);
  ck_assert_int_eq(a.type, t);
  ck_assert_msg(shape_eq(&a.shape, s), "shape %s, want %s", shape_str(&a.shape), shape_str(s));
  ck_assert_int_eq(a.numel, n);
  ck_assert_int_eq(memcmp(a.data, data, bytes), 0);
  npy_free(&a);
  /* the header is padded to 64 bytes, as numpy writes it */
  FILE *fp = fopen(path, "rb");
  fseek(fp, 0, SEEK_END);
  ck_assert_int_eq((ftell(fp) - (long)bytes) % 64, 0);
  fclose(fp);
  free(data);
}
END_TEST

START_TEST(float_conversions) {
  Shape s = {2, {2, 2}};
  double d[4] = {1.5, -2.25, 1e-3, 3.0}, back[4];
  const char *path = tmp("f.npy");
  npy_save_float(path, DT_F32, &s, d);
  npy_load_float(path, &s, back);
  for (int i = 0; i < 4; i++)
    ck_assert_double_eq(back[i], (double)(float)d[i]);
  npy_save_float(path, DT_F64, &s, d);
  npy_load_float(path, &s, back);
  for (int i = 0; i < 4; i++)
    ck_assert_double_eq(back[i], d[i]);
  int64_t i8[4] = {0, 5, 26, 3};
  int32_t iv[4];
  npy_write(path, NPY_I8, &s, i8);
  npy_load_int(path, &s, iv);
  for (int i = 0; i < 4; i++)
    ck_assert_int_eq(iv[i], (int32_t)i8[i]);
}
END_TEST

START_TEST(version2_header) {
  double d[3] = {1, 2, 3};
  const char *path = tmp("v2.npy");
  write_npy_raw(path, 2, "{'descr': '<f8', 'fortran_order': False, 'shape': (3,), }", d, sizeof d);
  Npy a;
  npy_read(path, &a);
  ck_assert_int_eq(a.type, NPY_F8);
  ck_assert_int_eq(a.shape.rank, 1);
  ck_assert_int_eq(a.shape.dim[0], 3);
  ck_assert_double_eq(((double *)a.data)[2], 3.0);
  npy_free(&a);
  /* double quotes and no trailing comma are fine too */
  write_npy_raw(path, 1, "{\"shape\": (1, 3), \"fortran_order\": False, \"descr\": \"<f8\"}", d,
                sizeof d);
  npy_read(path, &a);
  ck_assert_int_eq(a.shape.rank, 2);
  npy_free(&a);
}
END_TEST

/* Fortran-order data is read in C order: a (2, 3) array and a (2, 3, 2) one
 * whose values are their C-order positions, stored first axis fastest. */
START_TEST(fortran_order) {
  const char *path = tmp("f.npy");
  double f2[6];
  int32_t f3[12];
  for (int i = 0; i < 2; i++)
    for (int j = 0; j < 3; j++) {
      f2[i + 2 * j] = 3 * i + j;
      for (int k = 0; k < 2; k++)
        f3[i + 2 * j + 6 * k] = 6 * i + 2 * j + k;
    }
  write_npy_raw(path, 1, "{'descr': '<f8', 'fortran_order': True, 'shape': (2, 3), }", f2, sizeof f2);
  Shape s2 = {2, {2, 3}}, s3 = {3, {2, 3, 2}};
  double d[6];
  npy_load_float(path, &s2, d);
  for (int i = 0; i < 6; i++)
    ck_assert_double_eq(d[i], i);
  write_npy_raw(path, 3, "{'descr': '<i4', 'fortran_order': True, 'shape': (2, 3, 2), }", f3, sizeof f3);
  int32_t v[12];
  npy_load_int(path, &s3, v);
  for (int i = 0; i < 12; i++)
    ck_assert_int_eq(v[i], i);
}
END_TEST

static const char *catch_parse(const unsigned char *buf, size_t len) {
  static jmp_buf jb;
  Npy a = {0};
  if (setjmp(jb) == 0) {
    error_catch(&jb);
    npy_parse("h.npy", buf, len, &a);
    error_catch(NULL);
    npy_free(&a);
    return "";
  }
  const char *msg = arena_strndup(error_text(), strlen(error_text()));
  error_catch(NULL);
  return msg;
}

/* The header's bounds: under 4096 bytes, no NUL byte; <u8 only for the
 * trainer's checkpoints (npy_header_parse's u8). */
START_TEST(header_limits) {
  static unsigned char buf[5000];
  const char *dict = "{'descr': '<f8', 'fortran_order': False, 'shape': (), }";
  for (size_t hlen = 4094; hlen <= 4096; hlen++) {
    memset(buf, ' ', sizeof buf);
    memcpy(buf, "\x93NUMPY\x01\x00", 8);
    buf[8] = (unsigned char)(hlen & 0xFF);
    buf[9] = (unsigned char)(hlen >> 8);
    memcpy(buf + 10, dict, strlen(dict));
    buf[10 + hlen - 1] = '\n';
    const char *msg = catch_parse(buf, 10 + hlen + 8);
    if (hlen < 4096)
      ck_assert_msg(msg[0] == '\0', "%zu: %s", hlen, msg);
    else
      ck_assert_msg(strstr(msg, "h.npy: .npy header of 4096 bytes: too long"), "%s", msg);
  }
  buf[8] = 64;   /* a 64-byte header, its '8' of '<f8' a NUL */
  buf[9] = 0;
  buf[10 + 63] = '\n';
  ck_assert_str_eq(catch_parse(buf, 10 + 64 + 8), "");
  buf[10 + 13] = '\0';
  const char *msg = catch_parse(buf, 10 + 64 + 8);
  ck_assert_msg(strstr(msg, "h.npy: bad .npy header (a NUL byte)"), "%s", msg);
  unsigned char u8[128];
  size_t h = npy_header_text(u8, sizeof u8, NPY_U8, 0, NULL);
  memset(u8 + h, 0xFF, 8);
  NpyHeader hd;
  char err[128];
  ck_assert_int_eq(npy_header_parse(u8, h + 8, 1, &hd, err, sizeof err), 0);
  ck_assert(hd.type == NPY_U8 && hd.rank == 0 && hd.numel == 1 && hd.offset == h && h == 128 && hd.nbytes == 8);
  ck_assert_int_eq(npy_header_parse(u8, h + 8, 0, &hd, err, sizeof err), -1);
  ck_assert_str_eq(err, "dtype '<u8' is not supported: use '<f4', '<f8', '<i4', '<i8' or '|u1'");
}
END_TEST

/* ---- malformed files: each gives its message ------------------------------------------ */

typedef struct Bad {
  const char *what;
  int major;               /* 0: raw bytes below instead of a header */
  const char *dict;
  size_t dlen;             /* data bytes written (zeros) */
  const char *raw;
  size_t rawlen;
  const char *msg;
} Bad;

static const Bad bads[] = {
  {"bad magic", 0, NULL, 0, "\x93NUMPZ\x01\x00\x10\x00{}", 12, "not a .npy file (bad magic)"},
  {"empty file", 0, NULL, 0, "", 0, "bad magic"},
  {"short header", 0, NULL, 0, "\x93NUMPY\x01\x00\xff\x00{'descr'", 17, "truncated .npy header"},
  {"v2 cut", 0, NULL, 0, "\x93NUMPY\x02\x00\x10\x00", 10, "truncated .npy header"},
  {"version 9", 0, NULL, 0, "\x93NUMPY\x09\x00\x10\x00{}", 12, "unknown .npy version 9.0"},
  {"truncated data", 1, "{'descr': '<f8', 'fortran_order': False, 'shape': (3, 4), }", 40, NULL, 0,
   "truncated data: <f8 (3, 4) needs 96 bytes, the file has 40"},
  {"extra data", 1, "{'descr': '<f8', 'fortran_order': False, 'shape': (2,), }", 24, NULL, 0,
   "24 bytes of data where <f8 (2,) needs 16: 8 unexpected bytes after the data"},
  {"big-endian", 1, "{'descr': '>f8', 'fortran_order': False, 'shape': (2,), }", 16, NULL, 0,
   "big-endian data ('>f8') is not supported"},
  {"fortran maybe", 1, "{'descr': '<f8', 'fortran_order': Maybe, 'shape': (2, 2), }", 32, NULL, 0,
   "bad .npy header (fortran_order is neither True nor False)"},
  {"bad dtype", 1, "{'descr': '<c16', 'fortran_order': False, 'shape': (2,), }", 32, NULL, 0,
   "dtype '<c16' is not supported: use '<f4', '<f8', '<i4', '<i8' or '|u1'"},
  {"object dtype", 1, "{'descr': '|O', 'fortran_order': False, 'shape': (2,), }", 16, NULL, 0,
   "dtype '|O' is not supported"},
  {"missing shape", 1, "{'descr': '<f8', 'fortran_order': False, }", 0, NULL, 0, "'shape' is missing"},
  {"unknown key", 1, "{'descr': '<f8', 'fortran_order': False, 'shape': (), 'x': 1}", 8, NULL, 0,
   "unknown key 'x'"},
  {"bad shape", 1, "{'descr': '<f8', 'fortran_order': False, 'shape': (2, -1), }", 0, NULL, 0,
   "shape holds something other than whole numbers"},
  {"huge dim", 1, "{'descr': '<f8', 'fortran_order': False, 'shape': (99999999999,), }", 0, NULL,
   0, "too large"},
  {"huge array", 1, "{'descr': '<f8', 'fortran_order': False, 'shape': (2000000000, 2000000000), }",
   0, NULL, 0, "the array is too large"},
  {"rank 7", 1, "{'descr': '<f8', 'fortran_order': False, 'shape': (1,1,1,1,1,1,1), }", 8, NULL, 0,
   "more than 6 dimensions"},
  {"unterminated", 1, "{'descr': '<f8', 'fortran_order': False, 'shape': (), 'sha", 0, NULL, 0,
   "bad .npy header (unterminated string)"},
  {"unquoted descr", 1, "{'descr': f8, 'fortran_order': False, 'shape': (), }", 8, NULL, 0,
   "bad .npy header (expected a quoted string)"},
  {"not a dict", 1, "['descr']", 0, NULL, 0, "expected '{'"},
  /* the checks only one of the two former parsers made (bpgen's or the trainer's) */
  {"text after", 1, "{'descr': '<f8', 'fortran_order': False, 'shape': (), } x", 8, NULL, 0,
   "bad .npy header (text after the dict)"},
  {"u1 big", 1, "{'descr': '>u1', 'fortran_order': False, 'shape': (), }", 1, NULL, 0,
   "big-endian data ('>u1') is not supported; save it little-endian (astype('<u1'))"},
  {"native order", 1, "{'descr': '=f8', 'fortran_order': False, 'shape': (), }", 8, NULL, 0,
   "dtype '=f8' is not supported"},
  {"u8 data", 1, "{'descr': '<u8', 'fortran_order': False, 'shape': (), }", 8, NULL, 0,
   "dtype '<u8' is not supported"},
};

START_TEST(malformed) {
  const Bad *b = &bads[_i];
  const char *path = tmp("bad.npy");
  if (b->major) {
    static const unsigned char zeros[256];
    write_npy_raw(path, b->major, b->dict, zeros, b->dlen);
  } else {
    write_bytes(path, b->raw, b->rawlen);
  }
  static jmp_buf jb;
  Npy a = {0};
  if (setjmp(jb) == 0) {
    error_catch(&jb);
    npy_read(path, &a);
    error_catch(NULL);
    npy_free(&a);
    ck_abort_msg("%s: read without error", b->what);
  }
  const char *msg = arena_strndup(error_text(), strlen(error_text()));
  error_catch(NULL);   /* (disarming clears the report) */
  ck_assert_msg(strstr(msg, b->msg), "%s: message '%s' lacks '%s'", b->what, msg, b->msg);
  ck_assert_msg(strstr(msg, path), "%s: message '%s' does not name the file", b->what, msg);
}
END_TEST

static const char *catch_load(const char *path, const Shape *want, bool as_int) {
  static jmp_buf jb;
  double d[16];
  int32_t iv[16];
  if (setjmp(jb) == 0) {
    error_catch(&jb);
    if (as_int)
      npy_load_int(path, want, iv);
    else
      npy_load_float(path, want, d);
    error_catch(NULL);
    return "";
  }
  const char *msg = arena_strndup(error_text(), strlen(error_text()));
  error_catch(NULL);
  return msg;
}

START_TEST(load_mismatch) {
  Shape s = {2, {2, 3}}, want = {2, {3, 2}};
  double d[6] = {0};
  const char *path = tmp("m.npy");
  npy_write(path, NPY_F8, &s, d);
  const char *msg = catch_load(path, &want, false);
  ck_assert_msg(strstr(msg, "shape [2, 3] does not match the spec's [3, 2]") && strstr(msg, path),
                "got '%s'", msg);
  msg = catch_load(path, &s, true);
  ck_assert_msg(strstr(msg, "floats where integers are expected"), "got '%s'", msg);
  int32_t iv[6] = {0};
  npy_write(path, NPY_I4, &s, iv);
  msg = catch_load(path, &s, false);
  ck_assert_msg(strstr(msg, "integers where floats are expected"), "got '%s'", msg);
  int64_t big[6] = {0, 0, 1LL << 40, 0, 0, 0};
  npy_write(path, NPY_I8, &s, big);
  msg = catch_load(path, &s, true);
  ck_assert_msg(strstr(msg, "element 2 is 1099511627776"), "got '%s'", msg);
  msg = catch_load(tmp("nonexistent.npy"), &s, true);
  ck_assert_msg(strstr(msg, "cannot open") && strstr(msg, "nonexistent.npy"), "got '%s'", msg);
}
END_TEST

/* Every prefix of a good file is an error, never a crash. */
START_TEST(every_prefix) {
  Shape s = {2, {2, 3}};
  double d[6] = {1, 2, 3, 4, 5, 6};
  const char *path = tmp("p.npy");
  npy_write(path, NPY_F8, &s, d);
  FILE *fp = fopen(path, "rb");
  unsigned char buf[256];
  size_t len = fread(buf, 1, sizeof buf, fp);
  fclose(fp);
  for (size_t cut = 0; cut < len; cut++) {
    static jmp_buf jb;
    Npy a = {0};
    if (setjmp(jb) == 0) {
      error_catch(&jb);
      npy_parse("p.npy", buf, cut, &a);
      error_catch(NULL);
      npy_free(&a);
      ck_abort_msg("prefix of %zu bytes parsed", cut);
    }
    error_catch(NULL);
  }
}
END_TEST

/* Random byte changes to a good file: a result or an error, never a crash
 * (the suite runs under ASan/UBSan). */
START_TEST(mutations) {
  Shape s = {2, {3, 2}};
  int32_t v[6] = {1, 2, 3, 4, 5, 6};
  const char *path = tmp("m.npy");
  npy_write(path, NPY_I4, &s, v);
  FILE *fp = fopen(path, "rb");
  unsigned char good[256], buf[256];
  size_t len = fread(good, 1, sizeof good, fp);
  fclose(fp);
  uint64_t x = 88172645463325252ull;
  int ok = 0, bad = 0;
  for (int iter = 0; iter < 3000; iter++) {
    memcpy(buf, good, len);
    for (int m = 0; m < 1 + iter % 4; m++) {
      x ^= x << 13, x ^= x >> 7, x ^= x << 17;   /* xorshift64 */
      size_t at = (size_t)(x % 80);              /* mostly the header */
      buf[at] = (unsigned char)(x >> 32);
    }
    static jmp_buf jb;
    Npy a = {0};
    if (setjmp(jb) == 0) {
      error_catch(&jb);
      npy_parse("m.npy", buf, len, &a);
      error_catch(NULL);
      long size = a.type == NPY_U1 ? 1 : (a.type == NPY_F4 || a.type == NPY_I4) ? 4 : 8;
      ck_assert_int_le(a.numel * size, (long)len);
      npy_free(&a);
      ok++;
    } else {
      error_catch(NULL);
      bad++;
    }
  }
  ck_assert_int_gt(bad, 0);
  ck_assert_int_gt(ok, 0);
}
END_TEST

static Suite *make_suite(void) {
  Suite *s = suite_create("npy");
  TCase *tc = tcase_create("npy");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_loop_test(tc, round_trip, 0, (int)(sizeof trips / sizeof trips[0]));
  tcase_add_test(tc, float_conversions);
  tcase_add_test(tc, version2_header);
  tcase_add_test(tc, fortran_order);
  tcase_add_test(tc, header_limits);
  tcase_add_loop_test(tc, malformed, 0, (int)(sizeof bads / sizeof bads[0]));
  tcase_add_test(tc, load_mismatch);
  tcase_add_test(tc, every_prefix);
  tcase_add_test(tc, mutations);
  suite_add_tcase(s, tc);
  return s;
}
TESTS_REGISTER(make_suite)
