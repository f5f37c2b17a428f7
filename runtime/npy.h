/* npy.h: NumPy .npy files, the exchange format of `bpgen grad`.
 *
 * Reads format versions 1.0, 2.0 and 3.0 with little-endian '<f8' '<f4' '<i4'
 * '<i8' or '|u1' data, in C or Fortran order (Fortran data is reordered to C
 * order); writes version 1.0.  Anything else (big-endian, another dtype, a bad
 * magic or header, truncated or extra data, rank above MAXRANK) is a user
 * error through error_plain() that names the file and the problem.  The header
 * is read by npy_parse.h, which the emitted trainer shares: bounded and safe
 * on any bytes.
 */
#ifndef NPY_H
#define NPY_H

#include "bpgen.h"
#include "npy_parse.h"

typedef struct Npy {
  NpyType type;
  Shape shape;
  long numel;
  void *data;            /* numel elements of type (malloc'd; npy_free) */
} Npy;

/* Reads path into *out (data malloc'd; free with npy_free). */
void npy_read(const char *path, Npy *out);
/* Parses a whole file held in memory; name is used in messages. */
void npy_parse(const char *name, const unsigned char *buf, size_t len, Npy *out);
void npy_free(Npy *a);
/* Writes a version 1.0 file; data holds numel(shape) elements of type t. */
void npy_write(const char *path, NpyType t, const Shape *shape, const void *data);

/* Convenience for callers that keep doubles / int32s: read path, check its
 * shape equals want (error naming the file, its shape and the expected one),
 * convert into dst.  npy_load_float accepts f8 and f4; npy_load_int accepts
 * i4, i8 (each value must fit in int32) and u1. */
void npy_load_float(const char *path, const Shape *want, double *dst);
void npy_load_int(const char *path, const Shape *want, int32_t *dst);
/* Writes doubles as f8 (DT_F64) or f4 (DT_F32). */
void npy_save_float(const char *path, DType dt, const Shape *shape, const double *src);

#endif
