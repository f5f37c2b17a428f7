/* kernels_bn.h: the fused passes (bias add into the product, batchnorm forward
 * and backward) for one float type.  kernels.h includes it twice, with BP_S
 * defined as f32, then f64: T is float or double, BP_(name) is name_f32 or
 * name_f64, BP_P_(name) name_f32_ or name_f64_.
 * Not a header of its own: it needs the definitions section of kernels.h. */
#define T BP_(BP_REAL)

BP_KERNEL void BP_(bp_gemm_bias)(int M, int N, int K, const T *A, int transa,
                                 const T *B, int transb, const T *bias, T *C) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0) {
    for (long i = 0; i < M; i++) memcpy(C + i * N, bias, (size_t)N * sizeof(T));
    return;
  }
  if (BP_(bp_gemm_small)(M, N, K, A, transa, B, transb, C, 0, bias)) return;
  /* the tiles' sums start at the bias: no pass over C for the add */
  BP_(bp_gemm_gen)(M, N, K, A, transa, B, transb, C, 0, bias);
}
typedef struct {
  int N, D;
  const T *x, *gain, *bias, *run_mean, *run_var;
  double eps, div;
  T *mean, *rstd, *xhat, *out, *act;
  double *acc;
} BP_(BpBnF);
/* Row loops as functions with restrict parameters (what gcc vectorises on);
 * rows i.. i+3 are r[j], r[D + j], ... */
static inline void BP_(bp_bn_st4)(int w, long D, const T *restrict r, const T *restrict k,
                                  double *restrict s1, double *restrict s2) {
  for (int j = 0; j < w; j++) { /* partial sums of 4 in T, then double */
    T d0 = r[j] - k[j], d1 = r[D + j] - k[j], d2 = r[2 * D + j] - k[j], d3 = r[3 * D + j] - k[j];
    s1[j] += (double)((d0 + d1) + (d2 + d3));
    s2[j] += (double)((d0 * d0 + d1 * d1) + (d2 * d2 + d3 * d3));
  }
}
static inline void BP_(bp_bn_out)(int w, const T *restrict r, const T *restrict mu,
                                  const T *restrict rs, const T *restrict ga,
                                  const T *restrict be, T *restrict xh, T *restrict y) {
  for (int j = 0; j < w; j++) {
    T v = (r[j] - mu[j]) * rs[j];
    xh[j] = v, y[j] = ga[j] * v + be[j];
  }
}
/* columns [j0, j1), every row walked in memory order */
static void BP_(bp_bn_fwd_cols)(const BP_(BpBnF) *p, int j0, int j1) {
  const int N = p->N, D = p->D, w = j1 - j0;
  double *s1 = p->acc + j0, *s2 = p->acc + D + j0;
  T *mean = p->mean + j0, *rstd = p->rstd + j0;
  if (BP_P_(bp_bn_fwd_small)(N, D, w, p->x + j0, p->gain + j0, p->bias + j0,
                               p->run_mean ? p->run_mean + j0 : NULL,
                               p->run_var ? p->run_var + j0 : NULL, p->eps, p->div,
                               mean, rstd, p->xhat + j0, p->out + j0,
                               p->act ? p->act + j0 : NULL))
    return;
  if (p->run_mean) {
    for (int j = 0; j < w; j++) {
      mean[j] = p->run_mean[j0 + j];
      rstd[j] = (T)(1.0 / sqrt((double)p->run_var[j0 + j] + p->eps));
    }
  } else { /* shifted sums, K = x[0,j]: var = (S2 - S1^2/N)/div, S = sums of x - K */
    const T *sh = p->x + j0;
    for (int j = 0; j < w; j++) s1[j] = 0, s2[j] = 0;
    int i = 0;
    for (; i + 4 <= N; i += 4) /* 4 rows per visit of the sums */
      BP_(bp_bn_st4)(w, D, p->x + (size_t)i * D + j0, sh, s1, s2);
    for (; i < N; i++) {
      const T *r = p->x + (size_t)i * D + j0;
      for (int j = 0; j < w; j++) {
        double d = (double)r[j] - (double)sh[j];
        s1[j] += d, s2[j] += d * d;
      }
    }
    int j = BP_P_(bp_bn_fin)(w, N, p->div, p->eps, s1, s2, sh, mean, rstd);
    for (; j < w; j++) {
      double m = s1[j] / N, v = (s2[j] - s1[j] * m) / p->div;
      mean[j] = (T)(sh[j] + m);
      rstd[j] = (T)(1.0 / sqrt((v > 0 ? v : 0) + p->eps));
    }
  }
  /* arrays far beyond the caches: x̂ and out (read again only in backward, or
   * never) go straight to memory, no read for ownership */
  int nt = (double)N * D * sizeof(T) >= 8e6;
  if (BP_P_(bp_bn_rows_vec)(N, D, w, p->x + j0, mean, rstd, p->gain + j0, p->bias + j0,
                              p->xhat + j0, p->out + j0, p->act ? p->act + j0 : NULL, nt))
    return;
  for (int i = 0; i < N; i++) {
    size_t o = (size_t)i * D + j0;
    BP_(bp_bn_out)(w, p->x + o, mean, rstd, p->gain + j0, p->bias + j0, p->xhat + o, p->out + o);
    if (p->act && w < D) BP_(bp_tanh_rng)(0, (size_t)w, p->out + o, p->act + o);
  }
  /* all columns: one contiguous tanh (short rows would each end in a partial vector) */
  if (p->act && w == D) BP_(bp_tanh_rng)(0, (size_t)N * D, p->out, p->act);
}
static void BP_(bp_bn_fwd_job)(void *arg, int t, int nt) {
  const BP_(BpBnF) *p = (const BP_(BpBnF) *)arg;
  long lo, hi;
  bp_split_(p->D, 16, t, nt, &lo, &hi);
  if (lo < hi) BP_(bp_bn_fwd_cols)(p, (int)lo, (int)hi);
}
BP_KERNEL void BP_(bp_bn_fwd)(int N, int D, const T *x, const T *gain, const T *bias,
                              double eps, double div, const T *run_mean,
                              const T *run_var, T *mean, T *rstd, T *xhat, T *out,
                              T *act, double *acc) {
  BP_(BpBnF) p = {N, D, x, gain, bias, run_mean, run_var, eps, div,
                   mean, rstd, xhat, out, act, acc};
  if (N <= 0 || D <= 0) return;
  if (bp_nthreads_ > 1 && (long)N * D >= BP_PAR_MIN && D >= 32)
    bp_parallel(BP_(bp_bn_fwd_job), &p, bp_nthreads_);
  else BP_(bp_bn_fwd_cols)(&p, 0, D);
}
typedef struct {
  int N, D;
  const T *t, *dt;
  T *dy;
  const T *xhat, *gain, *rstd;
  double c;
  T *dgain, *dbias, *dx, *dxsum;
  double *acc;
} BP_(BpBnB);
/* 2 rows: dy = (1 - t^2) dt written, its sums (partial sums of 2 in T, then double) */
static inline void BP_(bp_bn_dy2)(int w, long D, const T *restrict t, const T *restrict dt,
                                  const T *restrict xh, T *restrict dy,
                                  double *restrict s1, double *restrict s2) {
  for (int j = 0; j < w; j++) {
    T da = (1 - t[j] * t[j]) * dt[j], db = (1 - t[D + j] * t[D + j]) * dt[D + j];
    dy[j] = da, dy[D + j] = db;
    s1[j] += (double)(da + db);
    s2[j] += (double)(da * xh[j] + db * xh[D + j]);
  }
}
static inline void BP_(bp_bn_sum2)(int w, long D, const T *restrict dy, const T *restrict xh,
                                   double *restrict s1, double *restrict s2) {
  for (int j = 0; j < w; j++) {
    s1[j] += (double)(dy[j] + dy[D + j]);
    s2[j] += (double)(dy[j] * xh[j] + dy[D + j] * xh[D + j]);
  }
}
static inline void BP_(bp_bn_dx2)(int w, long D, const T *restrict dy, const T *restrict xh,
                                  const T *restrict ka, const T *restrict kb,
                                  const T *restrict kc, T *restrict dx, double *restrict sx) {
  for (int j = 0; j < w; j++) {
    T va = ka[j] * dy[j] - kb[j] - kc[j] * xh[j];
    T vb = ka[j] * dy[D + j] - kb[j] - kc[j] * xh[D + j];
    dx[j] = va, dx[D + j] = vb;
    sx[j] += (double)(va + vb);
  }
}
static void BP_(bp_bn_bwd_cols)(const BP_(BpBnB) *p, int j0, int j1) {
  const int N = p->N, D = p->D, w = j1 - j0;
  double *s1 = p->acc + j0, *s2 = p->acc + D + j0, *sx = p->acc + 2 * (size_t)D + j0;
  if (BP_P_(bp_bn_bwd_small)(N, D, w, p->t ? p->t + j0 : NULL, p->dt ? p->dt + j0 : NULL,
                               p->dy + j0, p->xhat + j0, p->gain + j0, p->rstd + j0,
                               p->c, p->dgain ? p->dgain + j0 : NULL,
                               p->dbias ? p->dbias + j0 : NULL, p->dx + j0,
                               p->dxsum ? p->dxsum + j0 : NULL))
    return;
  /* the per-column coefficients of dx, in T (so the dx pass runs in T) */
  T *ka = (T *)(p->acc + 3 * (size_t)D) + j0;
  T *kb = (T *)(p->acc + 4 * (size_t)D) + j0;
  T *kc = (T *)(p->acc + 5 * (size_t)D) + j0;
  for (int j = 0; j < w; j++) s1[j] = 0, s2[j] = 0, sx[j] = 0;
  int i = 0;
  for (; i + 2 <= N; i += 2) { /* dy = (1 - t^2) dt first, 2 rows per visit of the sums */
    size_t o = (size_t)i * D + j0;
    if (p->t) BP_(bp_bn_dy2)(w, D, p->t + o, p->dt + o, p->xhat + o, p->dy + o, s1, s2);
    else BP_(bp_bn_sum2)(w, D, p->dy + o, p->xhat + o, s1, s2);
  }
  for (; i < N; i++) {
    size_t o = (size_t)i * D + j0;
    const T *xh = p->xhat + o;
    T *dy = p->dy + o;
    if (p->t)
      for (int j = 0; j < w; j++) dy[j] = (1 - p->t[o + j] * p->t[o + j]) * p->dt[o + j];
    for (int j = 0; j < w; j++) s1[j] += dy[j], s2[j] += (double)dy[j] * xh[j];
  }
  /* dx = k (N dy - s1 - c xhat s2), k = gain rstd / N: as ka dy - kb - kc xhat */
  for (int j = 0; j < w; j++) {
    if (p->dgain) p->dgain[j0 + j] = (T)s2[j];
    if (p->dbias) p->dbias[j0 + j] = (T)s1[j];
    double k = (double)p->gain[j0 + j] * p->rstd[j0 + j] / N;
    ka[j] = (T)(k * N), kb[j] = (T)(s1[j] * k), kc[j] = (T)(s2[j] * k * p->c);
  }
  for (i = 0; i + 2 <= N; i += 2) {
    size_t o = (size_t)i * D + j0;
    BP_(bp_bn_dx2)(w, D, p->dy + o, p->xhat + o, ka, kb, kc, p->dx + o, sx);
  }
  for (; i < N; i++) {
    size_t o = (size_t)i * D + j0;
    for (int j = 0; j < w; j++) {
      T v = ka[j] * p->dy[o + j] - kb[j] - kc[j] * p->xhat[o + j];
      p->dx[o + j] = v;
      sx[j] += v;
    }
  }
  if (p->dxsum)
    for (int j = 0; j < w; j++) p->dxsum[j0 + j] = (T)sx[j];
}
static void BP_(bp_bn_bwd_job)(void *arg, int t, int nt) {
  const BP_(BpBnB) *p = (const BP_(BpBnB) *)arg;
  long lo, hi;
  bp_split_(p->D, 16, t, nt, &lo, &hi);
  if (lo < hi) BP_(bp_bn_bwd_cols)(p, (int)lo, (int)hi);
}
BP_KERNEL void BP_(bp_bn_bwd)(int N, int D, const T *t, const T *dt, T *dy,
                              const T *xhat, const T *gain, const T *rstd, double c,
                              T *dgain, T *dbias, T *dx, T *dxsum, double *acc) {
  BP_(BpBnB) p = {N, D, t, dt, dy, xhat, gain, rstd, c, dgain, dbias, dx, dxsum, acc};
  if (N <= 0 || D <= 0) return;
  if (bp_nthreads_ > 1 && (long)N * D >= BP_PAR_MIN && D >= 32)
    bp_parallel(BP_(bp_bn_bwd_job), &p, bp_nthreads_);
  else BP_(bp_bn_bwd_cols)(&p, 0, D);
}

#undef T
