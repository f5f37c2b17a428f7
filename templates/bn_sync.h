/* bn_sync.h: batchnorm over the ranks of a data-parallel run (issue 17),
 * pasted by emit.c into every model with a batchnorm after `typedef real`:
 * plain loops that gcc and tcc both compile (the JIT runs them unoptimised:
 * they serve --sync-bn and the calibration's merge, not speed).
 *
 * Synchronised batch statistics (SyncBatchNorm; models generated with
 * --sync-bn): with N ranks of n rows each, a batchnorm's mean and variance are
 * over all N·n rows, the variance's Bessel divisor N·n − 1, as one process of
 * N·n rows computes them.  The forward sums the columns, adds the sums over the
 * ranks (r->sum), takes the mean, then sums the squared deviations from it and
 * adds those: two passes, two sums of D doubles.  The backward's two column
 * sums of the closed form, s1 = Σ dy and s2 = Σ dy·x̂, are added over the ranks
 * the same way (weighed by each rank's share of the loss: BpRanks.sum), so dx
 * is the global batch's.  dgain = s2 and dbias = s1 stay this rank's: the
 * trainer sums the params' gradients as ever.  r NULL: this process's rows
 * alone, the ordinary batchnorm. */
#include <stdlib.h>

#if defined(__GNUC__)
#define BP_SYNC_FN static __attribute__((unused))
#else
#define BP_SYNC_FN static
#endif

/* training forward of x [n,D]: mean, rstd [D] saved, xhat = (x − mean)·rstd,
 * out = gain·xhat + bias (all [n,D]); acc: 2·D doubles of scratch */
BP_SYNC_FN void bp_bn_sync_fwd(const BpRanks *r, int n, int D, const real *x, const real *gain,
                               const real *bias, double eps, int unbiased, real *mean, real *rstd,
                               real *xhat, real *out, double *acc) {
  double *m = acc, *s2 = acc + D;
  double nt = (double)n * (r ? r->size : 1);   /* the rows over all ranks */
  for (int j = 0; j < D; j++) m[j] = 0, s2[j] = 0;
  for (long i = 0; i < n; i++)
    for (int j = 0; j < D; j++) m[j] += x[i * D + j];
  if (r) r->sum(r->ctx, m, (size_t)D, 0);
  for (int j = 0; j < D; j++) m[j] /= nt;
  for (long i = 0; i < n; i++)
    for (int j = 0; j < D; j++) {
      double d = x[i * D + j] - m[j];
      s2[j] += d * d;
    }
  if (r) r->sum(r->ctx, s2, (size_t)D, 0);
  double div = unbiased ? nt - 1 : nt;
  for (int j = 0; j < D; j++) {
    double v = div > 0 ? s2[j] / div : 0;
    mean[j] = (real)m[j];
    rstd[j] = (real)(1.0 / sqrt(v + eps));
  }
  for (long i = 0; i < n; i++)
    for (int j = 0; j < D; j++) {
      real v = (x[i * D + j] - mean[j]) * rstd[j];
      xhat[i * D + j] = v;
      out[i * D + j] = gain[j] * v + bias[j];
    }
}

/* its backward (bp_bn_bwd's contract, every sum over all ranks' rows): t, dt
 * (may be NULL): dy = (1 − t²)·dt written first, else dy read; s1 = Σ dy, s2 =
 * Σ dy·xhat per column; dbias = s1, dgain = s2 (this rank's, when not NULL);
 * dx = gain·rstd/N (N dy − S1 − c·xhat·S2) with S1, S2 summed over the ranks,
 * N all their rows, c = N/(N−1) when unbiased; dxsum = Σ dx (this rank's). */
BP_SYNC_FN void bp_bn_sync_bwd(const BpRanks *r, int n, int D, const real *t, const real *dt,
                               real *dy, const real *xhat, const real *gain, const real *rstd,
                               int unbiased, real *dgain, real *dbias, real *dx, real *dxsum,
                               double *acc) {
  double *s1 = acc, *s2 = acc + D;
  double nt = (double)n * (r ? r->size : 1);
  double c = unbiased && nt > 1 ? nt / (nt - 1) : 1.0;
  for (int j = 0; j < D; j++) s1[j] = 0, s2[j] = 0;
  for (long i = 0; i < n; i++)
    for (int j = 0; j < D; j++) {
      long o = i * D + j;
      if (t) dy[o] = (1 - t[o] * t[o]) * dt[o];
      s1[j] += dy[o];
      s2[j] += (double)dy[o] * xhat[o];
    }
  for (int j = 0; j < D; j++) {
    if (dgain) dgain[j] = (real)s2[j];
    if (dbias) dbias[j] = (real)s1[j];
  }
  if (r) r->sum(r->ctx, acc, 2 * (size_t)D, 1);
  for (int j = 0; j < D; j++) {
    double k = (double)gain[j] * rstd[j] / nt;
    real ka = (real)(k * nt), kb = (real)(s1[j] * k), kc = (real)(s2[j] * k * c);
    double sx = 0;
    for (long i = 0; i < n; i++) {
      long o = i * D + j;
      real v = ka * dy[o] - kb - kc * xhat[o];
      dx[o] = v;
      sx += v;
    }
    if (dxsum) dxsum[j] = (real)sx;
  }
}

/* Calibration over the ranks: each rank has merged its share of the rows into
 * cnt[0], mean[D], m2[D] (Chan et al.); the ranks' sums are gathered (each
 * rank's in its own slot, the others zero, added over the ranks: exact) and
 * merged in rank order, so every rank gets the same bits, and for a fixed
 * number of ranks the same every run. */
BP_SYNC_FN void bp_bn_calib_merge(const BpRanks *r, int D, double *cnt, double *mean,
                                  double *m2) {
  if (!r || r->size < 2) return;
  size_t w = 1 + 2 * (size_t)D;
  double *all = (double *)calloc((size_t)r->size * w, sizeof(double));
  if (!all) abort();
  double *mine = all + (size_t)r->rank * w;
  mine[0] = cnt[0];
  memcpy(mine + 1, mean, (size_t)D * sizeof(double));
  memcpy(mine + 1 + D, m2, (size_t)D * sizeof(double));
  r->sum(r->ctx, all, (size_t)r->size * w, 0);
  double na = all[0];
  memcpy(mean, all + 1, (size_t)D * sizeof(double));
  memcpy(m2, all + 1 + D, (size_t)D * sizeof(double));
  for (int k = 1; k < r->size; k++) {
    const double *o = all + (size_t)k * w;
    double nb = o[0], nab = na + nb;
    if (nb <= 0) continue;
    for (int j = 0; j < D; j++) {
      double delta = o[1 + j] - mean[j];
      mean[j] += delta * nb / nab;
      m2[j] += o[1 + D + j] + delta * delta * na * nb / nab;
    }
    na = nab;
  }
  cnt[0] = na;
  free(all);
}
