/* npy.c: reading and writing NumPy .npy files (see npy.h).
 *
 * A file is the magic "\x93NUMPY", a version (major, minor), the header length
 * (2 bytes little-endian in 1.0, 4 bytes in 2.0/3.0), then a Python dict
 * literal such as {'descr': '<f8', 'fortran_order': False, 'shape': (3, 4), }
 * padded with spaces and a newline, then the raw data.  The dict is parsed by
 * a small bounded scanner that accepts exactly those three keys, so any bytes
 * give either a result or one clear error.
 */
#include "npy.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct {
  const char *descr;
  int size;
} types[] = {
  [NPY_F8] = {"<f8", 8}, [NPY_F4] = {"<f4", 4}, [NPY_I4] = {"<i4", 4},
  [NPY_I8] = {"<i8", 8}, [NPY_U1] = {"|u1", 1},
};

const char *npy_descr(NpyType t) { return types[t].descr; }

void npy_free(Npy *a) {
  free(a->data);
  a->data = NULL;
}

/* ---- the header dict ------------------------------------------------------------ */

typedef struct Scan {
  const char *name;
  const char *p, *end;
} Scan;

static void skip_ws(Scan *s) {
  while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r'))
    s->p++;
}

NORETURN static void bad_header(Scan *s, const char *what) {
  error_plain("%s: bad .npy header: %s", s->name, what);
}

static bool accept(Scan *s, char c) {
  skip_ws(s);
  if (s->p < s->end && *s->p == c) {
    s->p++;
    return true;
  }
  return false;
}

static void expect(Scan *s, char c, const char *what) {
  if (!accept(s, c))
    bad_header(s, what);
}

/* string = '...' | "..." (no escapes: numpy's keys and descrs have none) */
static void scan_string(Scan *s, char *buf, size_t cap) {
  skip_ws(s);
  if (s->p >= s->end || (*s->p != '\'' && *s->p != '"'))
    bad_header(s, "expected a quoted string");
  char q = *s->p++;
  size_t n = 0;
  while (s->p < s->end && *s->p != q) {
    if (n + 1 < cap)
      buf[n] = *s->p;
    n++;
    s->p++;
  }
  if (s->p >= s->end)
    bad_header(s, "unterminated string");
  s->p++;
  if (n + 1 > cap)
    n = cap - 1;   /* too long for any key or descr we know: kept cut, rejected later */
  buf[n] = '\0';
}

/* shape = '(' [int {',' int} [',']] ')' */
static void scan_shape(Scan *s, Shape *shape) {
  expect(s, '(', "expected '(' for the shape");
  shape->rank = 0;
  for (;;) {
    if (accept(s, ')'))
      return;
    skip_ws(s);
    if (s->p >= s->end || *s->p < '0' || *s->p > '9')
      bad_header(s, "shape holds something other than whole numbers");
    long v = 0;
    while (s->p < s->end && *s->p >= '0' && *s->p <= '9') {
      v = v * 10 + (*s->p++ - '0');
      if (v > (1L << 31) - 1)
        error_plain("%s: a dimension of the array is too large", s->name);
    }
    if (shape->rank == MAXRANK)
      error_plain("%s: the array has more than %d dimensions", s->name, MAXRANK);
    shape->dim[shape->rank++] = (int)v;
    if (accept(s, ')'))
      return;
    expect(s, ',', "expected ',' or ')' in the shape");
  }
}

static void parse_dict(Scan *s, NpyType *type, Shape *shape) {
  bool have_descr = false, have_order = false, have_shape = false;
  char key[32], val[32];
  expect(s, '{', "expected '{'");
  while (!accept(s, '}')) {
    scan_string(s, key, sizeof key);
    expect(s, ':', "expected ':' after a key");
    if (strcmp(key, "descr") == 0) {
      scan_string(s, val, sizeof val);
      int t = -1;
      for (int i = 0; i < (int)(sizeof types / sizeof types[0]); i++)
        if (strcmp(val, types[i].descr) == 0)
          t = i;
      if (t < 0 && strcmp(val, "<u1") == 0)
        t = NPY_U1;
      if (t < 0 && val[0] == '>')
        error_plain("%s: big-endian data ('%s') is not supported; store it little-endian", s->name,
                    val);
      if (t < 0)
        error_plain("%s: unsupported dtype '%s' (expected <f8, <f4, <i4, <i8 or |u1)", s->name,
                    val);
      *type = (NpyType)t;
      have_descr = true;
    } else if (strcmp(key, "fortran_order") == 0) {
      skip_ws(s);
      if ((size_t)(s->end - s->p) >= 5 && memcmp(s->p, "False", 5) == 0) {
        s->p += 5;
      } else if ((size_t)(s->end - s->p) >= 4 && memcmp(s->p, "True", 4) == 0) {
        error_plain("%s: Fortran-order arrays are not supported; save it in C order", s->name);
      } else {
        bad_header(s, "fortran_order is neither True nor False");
      }
      have_order = true;
    } else if (strcmp(key, "shape") == 0) {
      scan_shape(s, shape);
      have_shape = true;
    } else {
      error_plain("%s: bad .npy header: unknown key '%s'", s->name, key);
    }
    if (!accept(s, ',')) {
      expect(s, '}', "expected ',' or '}'");
      break;
    }
  }
  if (!have_descr || !have_order || !have_shape)
    error_plain("%s: bad .npy header: missing '%s'", s->name,
                !have_descr ? "descr" : !have_order ? "fortran_order" : "shape");
}

/* ---- reading --------------------------------------------------------------------- */

void npy_parse(const char *name, const unsigned char *buf, size_t len, Npy *out) {
  memset(out, 0, sizeof *out);
  if (len < 10 || memcmp(buf, "\x93NUMPY", 6) != 0)
    error_plain("%s: not a .npy file (bad magic)", name);
  int major = buf[6];
  size_t hlen, start;
  if (major == 1) {
    hlen = (size_t)buf[8] | (size_t)buf[9] << 8;
    start = 10;
  } else if (major == 2 || major == 3) {
    if (len < 12)
      error_plain("%s: truncated .npy header", name);
    hlen = (size_t)buf[8] | (size_t)buf[9] << 8 | (size_t)buf[10] << 16 | (size_t)buf[11] << 24;
    start = 12;
  } else {
    error_plain("%s: unsupported .npy format version %d.%d", name, major, buf[7]);
  }
  if (hlen > len - start)
    error_plain("%s: truncated .npy header (%zu bytes announced, %zu present)", name, hlen,
                len - start);
  Scan s = {name, (const char *)buf + start, (const char *)buf + start + hlen};
  parse_dict(&s, &out->type, &out->shape);
  skip_ws(&s);
  if (s.p != s.end)
    bad_header(&s, "text after the dict");

  size_t size = (size_t)types[out->type].size, numel = 1;
  for (int i = 0; i < out->shape.rank; i++) {
    size_t d = (size_t)out->shape.dim[i];
    if (d && numel > ((size_t)1 << 48) / d)   /* keeps numel * size far from overflow */
      error_plain("%s: the array is too large", name);
    numel *= d;
  }
  size_t have = len - start - hlen, want = numel * size;
  if (have < want)
    error_plain("%s: truncated data: %s %s needs %zu bytes, the file has %zu", name,
                types[out->type].descr, shape_str(&out->shape), want, have);
  if (have > want)
    error_plain("%s: %zu unexpected bytes after the data of %s %s", name, have - want,
                types[out->type].descr, shape_str(&out->shape));
  out->numel = (long)numel;
  out->data = xmalloc(want ? want : 1);
  memcpy(out->data, buf + start + hlen, want);
}

void npy_read(const char *path, Npy *out) {
  FILE *fp = fopen(path, "rb");
  if (!fp)
    error_plain("cannot open %s: %s", path, strerror(errno));
  size_t cap = 1 << 16, len = 0;
  unsigned char *buf = xmalloc(cap);
  for (;;) {
    size_t n = fread(buf + len, 1, cap - len, fp);
    len += n;
    if (n == 0)
      break;
    if (len == cap) {
      cap *= 2;
      unsigned char *nb = realloc(buf, cap);
      if (!nb) {
        free(buf);
        fclose(fp);
        error_plain("%s: file too large", path);
      }
      buf = nb;
    }
  }
  int bad = ferror(fp), err = errno;
  fclose(fp);
  if (bad) {
    free(buf);
    error_plain("cannot read %s: %s", path, strerror(err));
  }
  /* a parse error leaves through error_plain (exit, or longjmp to a catcher):
   * buf stays reachable from `pending` and is freed by the next call */
  static unsigned char *pending;
  free(pending);
  pending = buf;
  npy_parse(path, buf, len, out);
  free(pending);
  pending = NULL;
}

/* ---- writing ---------------------------------------------------------------------- */

void npy_write(const char *path, NpyType t, const Shape *shape, const void *data) {
  char dict[256];
  int at = snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': (",
                    types[t].descr);
  for (int i = 0; i < shape->rank; i++)
    at += snprintf(dict + at, sizeof dict - (size_t)at, "%d,%s", shape->dim[i],
                   i + 1 < shape->rank ? " " : "");
  if (shape->rank > 1)
    at--;   /* (2, 3) not (2, 3,); a 1-tuple keeps its comma: (5,) */
  at += snprintf(dict + at, sizeof dict - (size_t)at, "), }");
  /* pad with spaces so that magic + version + length + dict + '\n' is a
   * multiple of 64, as numpy does */
  int total = 10 + at + 1;
  int pad = (64 - total % 64) % 64;
  int hlen = at + pad + 1;
  FILE *fp = fopen(path, "wb");
  if (!fp)
    error_plain("cannot write %s: %s", path, strerror(errno));
  unsigned char pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (unsigned char)(hlen & 0xff),
                           (unsigned char)(hlen >> 8)};
  fwrite(pre, 1, sizeof pre, fp);
  fwrite(dict, 1, (size_t)at, fp);
  for (int i = 0; i < pad; i++)
    fputc(' ', fp);
  fputc('\n', fp);
  size_t n = (size_t)shape_numel(shape);
  fwrite(data, (size_t)types[t].size, n, fp);
  int bad = ferror(fp);
  if (fclose(fp) != 0 || bad)
    error_plain("cannot write %s: %s", path, strerror(errno));
}

/* ---- conversions -------------------------------------------------------------------- */

static void load_checked(const char *path, const Shape *want, Npy *a) {
  npy_read(path, a);
  if (!shape_eq(&a->shape, want)) {
    Shape got = a->shape;
    npy_free(a);
    error_plain("%s: shape %s does not match the spec's %s", path, shape_str(&got),
                shape_str(want));
  }
}

void npy_load_float(const char *path, const Shape *want, double *dst) {
  Npy a;
  load_checked(path, want, &a);
  if (a.type == NPY_F8) {
    memcpy(dst, a.data, sizeof(double) * (size_t)a.numel);
  } else if (a.type == NPY_F4) {
    const float *f = a.data;
    for (long i = 0; i < a.numel; i++)
      dst[i] = f[i];
  } else {
    NpyType t = a.type;
    npy_free(&a);
    error_plain("%s: holds %s integers where floats are expected (<f8 or <f4)", path,
                types[t].descr);
  }
  npy_free(&a);
}

void npy_load_int(const char *path, const Shape *want, int32_t *dst) {
  Npy a;
  load_checked(path, want, &a);
  for (long i = 0; i < a.numel; i++) {
    int64_t v;
    switch (a.type) {
    case NPY_I4: { int32_t x; memcpy(&x, (char *)a.data + 4 * i, 4); v = x; break; }
    case NPY_I8: { int64_t x; memcpy(&x, (char *)a.data + 8 * i, 8); v = x; break; }
    case NPY_U1: v = ((unsigned char *)a.data)[i]; break;
    default: {
      NpyType t = a.type;
      npy_free(&a);
      error_plain("%s: holds %s floats where integers are expected (<i4, <i8 or |u1)", path,
                  types[t].descr);
    }
    }
    if (v < INT32_MIN || v > INT32_MAX) {
      npy_free(&a);
      error_plain("%s: element %ld is %lld, too large for an index", path, i, (long long)v);
    }
    dst[i] = (int32_t)v;
  }
  npy_free(&a);
}

void npy_save_float(const char *path, DType dt, const Shape *shape, const double *src) {
  long n = shape_numel(shape);
  if (dt == DT_F64) {
    npy_write(path, NPY_F8, shape, src);
    return;
  }
  float *f = xmalloc(sizeof(float) * (size_t)(n ? n : 1));
  for (long i = 0; i < n; i++)
    f[i] = (float)src[i];
  npy_write(path, NPY_F4, shape, f);
  free(f);
}
