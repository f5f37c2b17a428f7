/* kernels_bpm.h: the in-memory build's own loops (templates/model_kernels.h
 * declares them) for one float type, compiled by gcc into bpgen.
 * runtime/kernels.c includes it twice, with BP_S defined as f32, then f64: T
 * is float or double, BP_(name) is name_f32 or name_f64 (kernels.h). */
#include <string.h>
#include <math.h>

#define T BP_(BP_REAL)

typedef struct {
  int op, rank;
  const int *dims, *sa, *sb;
  const T *a, *b;
  T *out;
} BP_(BpmBcast);
/* the index at[0..rank-1) of row o of dims' leading axes */
static void BP_(bpm_row_index)(int rank, const int *dims, long o, int *at) {
  for (int d = rank - 2; d >= 0; d--)
    at[d] = (int)(o % dims[d]), o /= dims[d];
}
/* rows [lo, hi) of the output (its last axis a row) */
static void BP_(bpm_bcast_rng)(void *arg, long lo, long hi) {
  const BP_(BpmBcast) *J = (const BP_(BpmBcast) *)arg;
  const int op = J->op, rank = J->rank, *dims = J->dims, *sa = J->sa, *sb = J->sb;
  const T *a = J->a, *b = J->b;
  int at[8] = {0};
  long n = rank ? dims[rank - 1] : 1;
  int la = rank ? sa[rank - 1] : 0, lb = rank ? sb[rank - 1] : 0;
  T *out = J->out + lo * n;
  BP_(bpm_row_index)(rank, dims, lo, at);
  for (long o = lo; o < hi; o++, out += n) {
    long ia = 0, ib = 0;
    for (int d = 0; d + 1 < rank; d++)
      ia += (long)at[d] * sa[d], ib += (long)at[d] * sb[d];
    const T *pa = a + ia, *pb = b + ib;
    switch (op * 4 + (la != 0) * 2 + (lb != 0)) {
    case 0: for (long i = 0; i < n; i++) out[i] = pa[0] + pb[0]; break;
    case 1: for (long i = 0; i < n; i++) out[i] = pa[0] + pb[i]; break;
    case 2: for (long i = 0; i < n; i++) out[i] = pa[i] + pb[0]; break;
    case 3: for (long i = 0; i < n; i++) out[i] = pa[i] + pb[i]; break;
    case 4: for (long i = 0; i < n; i++) out[i] = pa[0] - pb[0]; break;
    case 5: for (long i = 0; i < n; i++) out[i] = pa[0] - pb[i]; break;
    case 6: for (long i = 0; i < n; i++) out[i] = pa[i] - pb[0]; break;
    case 7: for (long i = 0; i < n; i++) out[i] = pa[i] - pb[i]; break;
    case 8: for (long i = 0; i < n; i++) out[i] = pa[0] * pb[0]; break;
    case 9: for (long i = 0; i < n; i++) out[i] = pa[0] * pb[i]; break;
    case 10: for (long i = 0; i < n; i++) out[i] = pa[i] * pb[0]; break;
    case 11: for (long i = 0; i < n; i++) out[i] = pa[i] * pb[i]; break;
    case 12: for (long i = 0; i < n; i++) out[i] = pa[0] / pb[0]; break;
    case 13: for (long i = 0; i < n; i++) out[i] = pa[0] / pb[i]; break;
    case 14: for (long i = 0; i < n; i++) out[i] = pa[i] / pb[0]; break;
    default: for (long i = 0; i < n; i++) out[i] = pa[i] / pb[i]; break;
    }
    for (int d = rank - 2; d >= 0 && ++at[d] == dims[d]; d--)
      at[d] = 0;
  }
}
/* rows of the output on the kernels' threads when big (kernels.h): each
 * element computed whole by one thread */
void BP_(bpm_bcast)(int op, int rank, const int *dims, const T *a, const int *sa,
                    const T *b, const int *sb, T *out) {
  BP_(BpmBcast) j = {op, rank, dims, sa, sb, a, b, out};
  long outer = 1, n = rank ? dims[rank - 1] : 1;
  for (int d = 0; d + 1 < rank; d++)
    outer *= dims[d];
  bp_par_range_(BP_(bpm_bcast_rng), &j, outer, 1, (double)outer * n);
}
void BP_(bpm_expand)(int rank, const int *dims, const T *a, const int *sa, T scale,
                     T *out) {
  int at[8] = {0};
  long outer = 1, n = rank ? dims[rank - 1] : 1;
  int la = rank ? sa[rank - 1] : 0;
  for (int d = 0; d + 1 < rank; d++)
    outer *= dims[d];
  for (long o = 0; o < outer; o++, out += n) {
    long ia = 0;
    for (int d = 0; d + 1 < rank; d++)
      ia += (long)at[d] * sa[d];
    for (long i = 0; i < n; i++)
      out[i] = scale == 1 ? a[ia + i * la] : scale * a[ia + i * la];
    for (int d = rank - 2; d >= 0 && ++at[d] == dims[d]; d--)
      at[d] = 0;
  }
}
/* out[at·so] = a[at·sa] for every index at of dims (element strides per dim;
 * sa 0 where a is broadcast): a part of a concat written at its place */
static void BP_(bpm_copy_rng)(void *arg, long lo, long hi) {
  const BP_(BpmBcast) *J = (const BP_(BpmBcast) *)arg;
  const int rank = J->rank, *dims = J->dims, *sa = J->sa, *so = J->sb;
  const T *a = J->a;
  T *out = J->out;
  int at[8] = {0};
  long n = rank ? dims[rank - 1] : 1;
  int la = rank ? sa[rank - 1] : 0, lo1 = rank ? so[rank - 1] : 0;
  BP_(bpm_row_index)(rank, dims, lo, at);
  for (long o = lo; o < hi; o++) {
    long ia = 0, io = 0;
    for (int d = 0; d + 1 < rank; d++)
      ia += (long)at[d] * sa[d], io += (long)at[d] * so[d];
    if (la == 1 && lo1 == 1)
      memcpy(out + io, a + ia, sizeof(T) * (size_t)n);
    else
      for (long i = 0; i < n; i++)
        out[io + i * lo1] = a[ia + i * la];
    for (int d = rank - 2; d >= 0 && ++at[d] == dims[d]; d--)
      at[d] = 0;
  }
}
void BP_(bpm_copy)(int rank, const int *dims, const T *a, const int *sa, T *out, const int *so) {
  BP_(BpmBcast) j = {0, rank, dims, sa, so, a, NULL, out};
  long outer = 1, n = rank ? dims[rank - 1] : 1;
  for (int d = 0; d + 1 < rank; d++)
    outer *= dims[d];
  bp_par_range_(BP_(bpm_copy_rng), &j, outer, 1, (double)outer * n);
}
void BP_(bpm_bn_bwd_gain)(int N, int D, const T *restrict dy,
                          const T *restrict xhat, double *restrict acc,
                          T *restrict out) {
  memset(acc, 0, sizeof(double) * (size_t)D);
  for (int i = 0; i < N; i++)
    for (int j = 0; j < D; j++)
      acc[j] += (double)dy[(size_t)i * D + j] * xhat[(size_t)i * D + j];
  for (int j = 0; j < D; j++)
    out[j] = (T)acc[j];
}
/* per column, in row order: bm = mean of the m rows, b2 = sum (x - bm)^2; blocks of 256
 * columns, row-major walks (the same sums as a column at a time) */
void BP_(bpm_bn_calib)(int m, int D, const T *restrict x, double *restrict n,
                       double *restrict mean, double *restrict m2) {
  if (m <= 0)
    return;
  double na = n[0], nt = na + m;
  for (int j0 = 0; j0 < D; j0 += 256) {
    int w = D - j0 < 256 ? D - j0 : 256;
    double bm[256], b2[256];
    for (int j = 0; j < w; j++)
      bm[j] = 0, b2[j] = 0;
    for (int i = 0; i < m; i++)
      for (int j = 0; j < w; j++)
        bm[j] += x[(size_t)i * D + j0 + j];
    for (int j = 0; j < w; j++)
      bm[j] /= m;
    for (int i = 0; i < m; i++)
      for (int j = 0; j < w; j++) {
        double d = x[(size_t)i * D + j0 + j] - bm[j];
        b2[j] += d * d;
      }
    for (int j = 0; j < w; j++) {
      double delta = bm[j] - mean[j0 + j];
      mean[j0 + j] += delta * m / nt;
      m2[j0 + j] += b2[j] + delta * delta * na * m / nt;
    }
  }
  n[0] = nt;
}
int BP_(bpm_gather)(int n, int R, int rows, const T *table, const int32_t *idx,
                    T *out) {
  int bad = 0;
  for (int i = 0; i < n; i++) {
    int32_t ix = idx[i];
    if (ix < 0 || ix >= rows) {
      bad++;
      memset(out + (size_t)i * R, 0, sizeof(T) * (size_t)R);
    } else {
      memcpy(out + (size_t)i * R, table + (size_t)ix * R, sizeof(T) * (size_t)R);
    }
  }
  return bad;
}
void BP_(bpm_gather_bwd)(int n, int R, int rows, const int32_t *idx, const T *dy,
                         T *out) {
  memset(out, 0, sizeof(T) * (size_t)rows * (size_t)R);
  for (int i = 0; i < n; i++) {
    int32_t ix = idx[i];
    if (ix < 0 || ix >= rows)
      continue;
    for (int r = 0; r < R; r++)
      out[(size_t)ix * R + r] += dy[(size_t)i * R + r];
  }
}

#undef T
