/* npy_parse.h: the .npy header, for bpgen (runtime/npy.c) and for the trainer
 * (templates/trainer.c, which scripts/embed.sh pastes this file into: an
 * emitted trainer stands alone).  Plain C99, static functions, no bpgen
 * header: errors come back as -1 and a message, never an exit.
 *
 * A file is the magic "\x93NUMPY", a version (major, minor), the header length
 * (2 bytes little-endian in 1.0, 4 bytes in 2.0/3.0), then a Python dict
 * literal such as {'descr': '<f8', 'fortran_order': False, 'shape': (3, 4), }
 * padded with spaces and a newline, then the raw data.  The dict is read by a
 * small scanner bounded by the header's end that accepts exactly those three
 * keys, so any bytes give either a header or one clear message.
 */
#ifndef NPY_PARSE_H
#define NPY_PARSE_H

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

enum { NPY_MAXRANK = 6, NPY_MAXHEADER = 4096 };

/* the element types read and written: data files take F8..U1; checkpoints
 * also hold U8 (RNG states) */
typedef enum { NPY_F8, NPY_F4, NPY_I4, NPY_I8, NPY_U1, NPY_U8, NPY_NTYPES } NpyType;

static const struct NpyDtype {
  const char *descr;
  int size;                /* bytes per element */
} npy_dtypes[NPY_NTYPES] = {
  [NPY_F8] = {"<f8", 8}, [NPY_F4] = {"<f4", 4}, [NPY_I4] = {"<i4", 4},
  [NPY_I8] = {"<i8", 8}, [NPY_U1] = {"|u1", 1}, [NPY_U8] = {"<u8", 8},
};

typedef struct NpyHeader {
  NpyType type;
  int fortran;             /* data in Fortran order: npy_to_c_order reorders it */
  int rank;                /* 0: a scalar */
  long dim[NPY_MAXRANK];
  size_t numel;
  size_t offset;           /* where the data starts in the file */
  size_t nbytes;           /* numel * the type's size: exactly the bytes after the header */
} NpyHeader;

/* A shape as numpy prints it, into buf: (), (5,), (3, 4). */
static inline const char *npy_shape_text(char *buf, size_t cap, int rank, const long *dim) {
  size_t n = (size_t)snprintf(buf, cap, "(");
  for (int i = 0; i < rank && n < cap; i++)
    n += (size_t)snprintf(buf + n, cap - n, "%ld%s", dim[i],
                          rank == 1 ? "," : i + 1 < rank ? ", " : "");
  if (n < cap)
    snprintf(buf + n, cap - n, ")");
  return buf;
}

/* The header a version 1.0 file of type t and this shape starts with (magic,
 * version, length, dict, spaces, '\n'), as numpy writes it: its length, a
 * multiple of 64.  cap must hold 128 + 24 bytes per axis. */
static inline size_t npy_header_text(unsigned char *buf, size_t cap, NpyType t, int rank,
                                     const long *dim) {
  char shape[160];
  int at = snprintf((char *)buf + 10, cap - 10, "{'descr': '%s', 'fortran_order': False, 'shape': %s, }",
                    npy_dtypes[t].descr, npy_shape_text(shape, sizeof shape, rank, dim));
  size_t total = ((size_t)at + 11 + 63) / 64 * 64, hlen = total - 10;
  memcpy(buf, "\x93NUMPY\x01\x00", 8);
  buf[8] = (unsigned char)(hlen & 0xFF);
  buf[9] = (unsigned char)(hlen >> 8);
  memset(buf + 10 + at, ' ', total - 11 - (size_t)at);
  buf[total - 1] = '\n';
  return total;
}

typedef struct NpyScan {
  const char *p, *end;
  char *err;
  size_t cap;
} NpyScan;

static inline int npy_fail(NpyScan *s, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(s->err, s->cap, fmt, ap);
  va_end(ap);
  return -1;
}

static inline void npy_skip_ws(NpyScan *s) {
  while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r'))
    s->p++;
}

static inline int npy_accept(NpyScan *s, char c) {
  npy_skip_ws(s);
  if (s->p < s->end && *s->p == c) {
    s->p++;
    return 1;
  }
  return 0;
}

/* string = '...' | "..." (no escapes: numpy's keys and descrs have none); a
 * string too long for buf is kept cut, and rejected by the caller */
static inline int npy_scan_string(NpyScan *s, char *buf, size_t cap) {
  npy_skip_ws(s);
  if (s->p >= s->end || (*s->p != '\'' && *s->p != '"'))
    return npy_fail(s, "bad .npy header (expected a quoted string)");
  char q = *s->p++;
  size_t n = 0;
  for (; s->p < s->end && *s->p != q; s->p++, n++)
    if (n + 1 < cap)
      buf[n] = *s->p;
  if (s->p >= s->end)
    return npy_fail(s, "bad .npy header (unterminated string)");
  s->p++;
  buf[n + 1 < cap ? n : cap - 1] = '\0';
  return 0;
}

/* shape = '(' [int {',' int} [',']] ')' */
static inline int npy_scan_shape(NpyScan *s, NpyHeader *h) {
  if (!npy_accept(s, '('))
    return npy_fail(s, "bad .npy header (shape is not a tuple)");
  h->rank = 0;
  while (!npy_accept(s, ')')) {
    if (s->p >= s->end || *s->p < '0' || *s->p > '9')
      return npy_fail(s, "bad .npy header (shape holds something other than whole numbers)");
    long v = 0;
    while (s->p < s->end && *s->p >= '0' && *s->p <= '9') {
      v = v * 10 + (*s->p++ - '0');
      if (v > 2147483647L)
        return npy_fail(s, "a dimension of the array is too large (above 2^31-1)");
    }
    if (h->rank == NPY_MAXRANK)
      return npy_fail(s, "the array has more than %d dimensions", NPY_MAXRANK);
    h->dim[h->rank++] = v;
    if (npy_accept(s, ')'))
      break;
    if (!npy_accept(s, ','))
      return npy_fail(s, "bad .npy header (expected ',' or ')' in the shape)");
  }
  return 0;
}

/* descr = one of npy_dtypes' (or '<u1'); U8 only when u8 is set */
static inline int npy_scan_descr(NpyScan *s, NpyHeader *h, int u8) {
  char val[32];
  if (npy_scan_string(s, val, sizeof val) < 0)
    return -1;
  for (int t = 0; t < NPY_NTYPES; t++)
    if (strcmp(val, npy_dtypes[t].descr) == 0 && (t != NPY_U8 || u8)) {
      h->type = (NpyType)t;
      return 0;
    }
  if (strcmp(val, "<u1") == 0) {
    h->type = NPY_U1;
    return 0;
  }
  if (val[0] == '>')
    return npy_fail(s, "big-endian data ('%s') is not supported; save it little-endian "
                    "(astype('<%s'))", val, val + 1);
  return npy_fail(s, "dtype '%s' is not supported: use '<f4', '<f8', '<i4', '<i8' or '|u1'", val);
}

static inline int npy_scan_dict(NpyScan *s, NpyHeader *h, int u8) {
  int have_descr = 0, have_order = 0, have_shape = 0;
  char key[32];
  if (!npy_accept(s, '{'))
    return npy_fail(s, "bad .npy header (expected '{')");
  while (!npy_accept(s, '}')) {
    if (npy_scan_string(s, key, sizeof key) < 0)
      return -1;
    if (!npy_accept(s, ':'))
      return npy_fail(s, "bad .npy header (expected ':' after '%s')", key);
    if (strcmp(key, "descr") == 0) {
      if (npy_scan_descr(s, h, u8) < 0)
        return -1;
      have_descr = 1;
    } else if (strcmp(key, "fortran_order") == 0) {
      npy_skip_ws(s);
      size_t left = (size_t)(s->end - s->p);
      h->fortran = left >= 4 && memcmp(s->p, "True", 4) == 0;
      if (!h->fortran && !(left >= 5 && memcmp(s->p, "False", 5) == 0))
        return npy_fail(s, "bad .npy header (fortran_order is neither True nor False)");
      s->p += h->fortran ? 4 : 5;
      have_order = 1;
    } else if (strcmp(key, "shape") == 0) {
      if (npy_scan_shape(s, h) < 0)
        return -1;
      have_shape = 1;
    } else {
      return npy_fail(s, "bad .npy header (unknown key '%s')", key);
    }
    if (!npy_accept(s, ',')) {
      if (!npy_accept(s, '}'))
        return npy_fail(s, "bad .npy header (expected ',' or '}')");
      break;
    }
  }
  if (!have_descr || !have_order || !have_shape)
    return npy_fail(s, "bad .npy header (needs descr, fortran_order and shape): '%s' is missing",
                    !have_descr ? "descr" : !have_order ? "fortran_order" : "shape");
  npy_skip_ws(s);
  if (s->p != s->end)
    return npy_fail(s, "bad .npy header (text after the dict)");
  return 0;
}

/* Reads the header of the len bytes of a .npy file at b into *h and checks
 * that exactly h->nbytes of data follow it.  Returns 0, or -1 with a message
 * in err (cap bytes) for the caller to prefix with the file's name.  u8: the
 * type <u8 is accepted too. */
static inline int npy_header_parse(const unsigned char *b, size_t len, int u8, NpyHeader *h,
                                   char *err, size_t cap) {
  NpyScan s = {NULL, NULL, err, cap};
  memset(h, 0, sizeof *h);
  if (len < 10 || memcmp(b, "\x93NUMPY", 6) != 0)
    return npy_fail(&s, "not a .npy file (bad magic)");
  size_t hlen = (size_t)b[8] | (size_t)b[9] << 8;
  h->offset = 10;
  if (b[6] == 2 || b[6] == 3) {
    if (len < 12)
      return npy_fail(&s, "truncated .npy header");
    hlen |= (size_t)b[10] << 16 | (size_t)b[11] << 24;
    h->offset = 12;
  } else if (b[6] != 1) {
    return npy_fail(&s, "unknown .npy version %d.%d", b[6], b[7]);
  }
  if (hlen > len - h->offset)
    return npy_fail(&s, "truncated .npy header (%lu bytes announced, %lu present)",
                    (unsigned long)hlen, (unsigned long)(len - h->offset));
  if (hlen >= NPY_MAXHEADER)   /* numpy writes a few hundred bytes at most */
    return npy_fail(&s, ".npy header of %lu bytes: too long", (unsigned long)hlen);
  if (memchr(b + h->offset, '\0', hlen))
    return npy_fail(&s, "bad .npy header (a NUL byte)");
  s.p = (const char *)b + h->offset;
  s.end = s.p + hlen;
  if (npy_scan_dict(&s, h, u8) < 0)
    return -1;
  h->offset += hlen;
  h->numel = 1;
  for (int i = 0; i < h->rank; i++) {
    size_t d = (size_t)h->dim[i];
    if (d && h->numel > ((size_t)1 << 48) / d)   /* keeps numel * size far from overflow */
      return npy_fail(&s, "the array is too large");
    h->numel *= d;
  }
  h->nbytes = h->numel * (size_t)npy_dtypes[h->type].size;
  size_t have = len - h->offset;
  char shape[160];
  npy_shape_text(shape, sizeof shape, h->rank, h->dim);
  if (have < h->nbytes)
    return npy_fail(&s, "truncated data: %s %s needs %lu bytes, the file has %lu",
                    npy_dtypes[h->type].descr, shape, (unsigned long)h->nbytes, (unsigned long)have);
  if (have > h->nbytes)
    return npy_fail(&s, "%lu bytes of data where %s %s needs %lu: %lu unexpected bytes after the data",
                    (unsigned long)have, npy_dtypes[h->type].descr, shape,
                    (unsigned long)h->nbytes, (unsigned long)(have - h->nbytes));
  return 0;
}

/* Copies the h->nbytes of Fortran-order data at src into dst in C order (the
 * last axis fastest).  A Fortran array of shape (d0, .., dn) holds, in C
 * order, its transpose of shape (dn, .., d0). */
static inline void npy_to_c_order(void *dst, const void *src, const NpyHeader *h) {
  size_t size = (size_t)npy_dtypes[h->type].size, idx[NPY_MAXRANK] = {0};
  for (size_t i = 0; i < h->numel; i++) {
    size_t f = 0;   /* idx's offset in Fortran order: the first axis fastest */
    for (int k = h->rank - 1; k >= 0; k--)
      f = f * (size_t)h->dim[k] + idx[k];
    memcpy((char *)dst + i * size, (const char *)src + f * size, size);
    for (int k = h->rank - 1; k >= 0 && ++idx[k] == (size_t)h->dim[k]; k--)
      idx[k] = 0;
  }
}

#endif
