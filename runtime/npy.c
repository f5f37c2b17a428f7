/* npy.c: reading and writing NumPy .npy files (see npy.h).
 *
 * The header is read and written by npy_parse.h (shared with the emitted
 * trainer, so both accept the same files and give the same messages); this
 * file adds the file I/O, bpgen's error reporting and the conversions.
 */
#include "npy.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void npy_free(Npy *a) {
  free(a->data);
  a->data = NULL;
}

_Static_assert((int)NPY_MAXRANK <= (int)MAXRANK, "a .npy shape fits a Shape");

/* ---- reading --------------------------------------------------------------------- */

void npy_parse(const char *name, const unsigned char *buf, size_t len, Npy *out) {
  memset(out, 0, sizeof *out);
  NpyHeader h;
  char err[256];
  if (npy_header_parse(buf, len, 0, &h, err, sizeof err) < 0)
    error_plain("%s: %s", name, err);
  out->type = h.type;
  out->shape.rank = h.rank;
  for (int i = 0; i < h.rank; i++)
    out->shape.dim[i] = (int)h.dim[i];
  out->numel = (long)h.numel;
  out->data = xmalloc(h.nbytes ? h.nbytes : 1);
  if (h.fortran)
    npy_to_c_order(out->data, buf + h.offset, &h);
  else
    memcpy(out->data, buf + h.offset, h.nbytes);
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
  long dim[MAXRANK];
  for (int i = 0; i < shape->rank; i++)
    dim[i] = shape->dim[i];
  unsigned char head[NPY_MAXHEADER];
  size_t hlen = npy_header_text(head, sizeof head, t, shape->rank, dim);
  FILE *fp = fopen(path, "wb");
  if (!fp)
    error_plain("cannot write %s: %s", path, strerror(errno));
  fwrite(head, 1, hlen, fp);
  fwrite(data, (size_t)npy_dtypes[t].size, (size_t)shape_numel(shape), fp);
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
                npy_dtypes[t].descr);
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
                  npy_dtypes[t].descr);
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
