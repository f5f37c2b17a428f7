/* kernels_ew.h: the elementwise kernels, row and column sums, softmax,
 * cross-entropy and the optimiser updates for one float type.  kernels.h
 * includes it twice, with BP_S defined as f32, then f64: T is float or double,
 * BP_(name) is name_f32 or name_f64, BP_P_(name) name_f32_ or name_f64_
 * (BP_(BP_TANH), BP_(BP_EXP), BP_(BP_SQRT) the type's scalar functions).
 * Not a header of its own: it needs the definitions section of kernels.h. */
#define T BP_(BP_REAL)

static void BP_(bp_tanh_rng)(size_t lo, size_t hi, const T *x, T *y) {
  BP_(BP_TANH_RNG)(lo, hi, x, y, BP_(BP_TANH));
}
static void BP_(bp_tanh_bwd_rng)(size_t lo, size_t hi, const T *t, const T *dy,
                                 T *dx, int accumulate) {
  for (size_t i = lo; i < hi; i++) {
    T d = (1 - t[i] * t[i]) * dy[i];
    dx[i] = accumulate ? dx[i] + d : d;
  }
}
/* y[d] (+)= sum_n X[n,d] for columns [d0, d1), rows in order */
static void BP_(bp_colsum_rng)(int N, int D, int d0, int d1, const T *X, T *y,
                               int accumulate) {
  if (BP_P_(bp_colsum_vec)(N, D, d0, d1, X, y, accumulate)) return;
  if (!accumulate) memset(y + d0, 0, (size_t)(d1 - d0) * sizeof(T));
  for (int n = 0; n < N; n++)
    for (int d = d0; d < d1; d++) y[d] += X[(size_t)n * D + d];
}
static void BP_(bp_ew_job)(void *arg, int t, int nt) {
  const BpEw_ *j = (const BpEw_ *)arg;
  long lo, hi;
  if (j->op == 2) {
    bp_split_(j->D, 16, t, nt, &lo, &hi);
    if (lo < hi)
      BP_(bp_colsum_rng)(j->N, j->D, (int)lo, (int)hi, (const T *)j->a, (T *)j->y, j->acc);
    return;
  }
  bp_split_((long)j->n, 64, t, nt, &lo, &hi);
  if (j->op == 0) BP_(bp_tanh_rng)(lo, hi, (const T *)j->a, (T *)j->y);
  else BP_(bp_tanh_bwd_rng)(lo, hi, (const T *)j->a, (const T *)j->b, (T *)j->y, j->acc);
}
BP_KERNEL void BP_(bp_tanh)(size_t n, const T *x, T *y) {
  if (bp_nthreads_ > 1 && n >= BP_PAR_MIN) {
    BpEw_ j = {0, n, 0, 0, x, NULL, y, 0};
    bp_parallel(BP_(bp_ew_job), &j, bp_nthreads_);
  } else BP_(bp_tanh_rng)(0, n, x, y);
}
BP_KERNEL void BP_(bp_tanh_bwd)(size_t n, const T *t, const T *dy, T *dx,
                                int accumulate) {
  if (bp_nthreads_ > 1 && n >= BP_PAR_MIN) {
    BpEw_ j = {1, n, 0, 0, t, dy, dx, accumulate};
    bp_parallel(BP_(bp_ew_job), &j, bp_nthreads_);
  } else BP_(bp_tanh_bwd_rng)(0, n, t, dy, dx, accumulate);
}
BP_KERNEL void BP_(bp_exp)(size_t n, const T *x, T *y) {
  for (size_t i = 0; i < n; i++) y[i] = BP_(BP_EXP)(x[i]);
}
BP_KERNEL void BP_(bp_colsum)(int N, int D, const T *X, T *y, int accumulate) {
  /* a pass of 4 x BP_PAR_MIN: a bias gradient of [512, 128] took 1.5x as long on 2 threads */
  if (bp_nthreads_ > 1 && (long)N * D >= 4L * BP_PAR_MIN && D >= 32) {
    BpEw_ j = {2, 0, N, D, X, NULL, y, accumulate};
    bp_parallel(BP_(bp_ew_job), &j, bp_nthreads_);
  } else BP_(bp_colsum_rng)(N, D, 0, D, X, y, accumulate);
}
BP_KERNEL void BP_(bp_rowsum)(int N, int D, const T *X, T *y, int accumulate) {
  for (int n = 0; n < N; n++) {
    T s = 0;
    for (int d = 0; d < D; d++) s += X[(size_t)n * D + d];
    y[n] = accumulate ? y[n] + s : s;
  }
}
BP_KERNEL void BP_(bp_softmax)(int N, int K, const T *x, T *y) {
  double unused;
  if (BP_P_(bp_xent_vec)(N, K, x, NULL, y, &unused)) return; /* the same probs */
  for (int n = 0; n < N; n++) {
    const T *xr = x + (size_t)n * K;
    T *yr = y + (size_t)n * K;
    T mx = xr[0], s = 0;
    for (int k = 1; k < K; k++) mx = xr[k] > mx ? xr[k] : mx;
    for (int k = 0; k < K; k++) { yr[k] = BP_(BP_EXP)(xr[k] - mx); s += yr[k]; }
    T inv = 1 / s;
    for (int k = 0; k < K; k++) yr[k] *= inv;
  }
}
BP_KERNEL double BP_(bp_xent_fwd)(int N, int K, const T *logits, const int32_t *Y,
                                  T *probs) {
  double loss = 0;
  if (BP_P_(bp_xent_vec)(N, K, logits, Y, probs, &loss)) return loss / N;
  for (int n = 0; n < N; n++) {
    const T *xr = logits + (size_t)n * K;
    T mx = xr[0], s = 0;
    for (int k = 1; k < K; k++) mx = xr[k] > mx ? xr[k] : mx;
    for (int k = 0; k < K; k++) {
      T e = BP_(BP_EXP)(xr[k] - mx);
      s += e;
      if (probs) probs[(size_t)n * K + k] = e;
    }
    if (probs) {
      T inv = 1 / s;
      for (int k = 0; k < K; k++) probs[(size_t)n * K + k] *= inv;
    }
    loss += log((double)s) - (double)(xr[Y[n]] - mx);
  }
  return loss / N;
}
BP_KERNEL void BP_(bp_xent_bwd)(int N, int K, const T *probs, const int32_t *Y,
                                double dloss, T *dlogits, int accumulate) {
  T sc = (T)(dloss / N);
  for (int n = 0; n < N; n++)
    for (int k = 0; k < K; k++) {
      size_t i = (size_t)n * K + k;
      T d = (probs[i] - (k == Y[n] ? (T)1 : (T)0)) * sc;
      dlogits[i] = accumulate ? dlogits[i] + d : d;
    }
}
BP_KERNEL void BP_(bp_sgd)(size_t n, T *p, const T *g, double lr) {
  T l = (T)lr;
  for (size_t i = 0; i < n; i++) p[i] -= l * g[i];
}
BP_KERNEL void BP_(bp_adamw)(size_t n, T *p, const T *g, T *m, T *v, double lr,
                             double b1, double b2, double eps, double wd, int t) {
  T c1 = (T)(1.0 / (1.0 - pow(b1, t))), c2 = (T)(1.0 / (1.0 - pow(b2, t)));
  T l = (T)lr, B1 = (T)b1, B2 = (T)b2, E = (T)eps, W = (T)wd;
  for (size_t i = 0; i < n; i++) {
    T mi = B1 * m[i] + (1 - B1) * g[i];
    T vi = B2 * v[i] + (1 - B2) * g[i] * g[i];
    m[i] = mi;
    v[i] = vi;
    p[i] -= l * ((mi * c1) / (BP_(BP_SQRT)(vi * c2) + E) + W * p[i]);
  }
}
/* AdamW in torch.optim.AdamW's order (the trainer's update, templates/trainer.c):
 *   p *= decay;  m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g²;
 *   p += (-step m) / (sqrt(v) / c2 + eps)
 * decay = 1 - lr wd, step = lr / (1 - b1^t), c2 = sqrt(1 - b2^t), all in T.
 * One vector of elements at a time, the last few through a zero-padded copy:
 * every element takes the same instructions, so a run split anywhere (a call
 * per param or one over all) gives the same bits; and no libm sqrt call (a
 * file built without -fno-math-errno leaves a scalar loop calling sqrtf). */
static inline void BP_P_(bp_adamw_torch_v)(T *p, const T *g, T *m, T *v, const BP_(BP_V) *k) {
  BP_(BP_V) gi = BP_(BP_LOAD)(g);
  BP_(BP_V) mi = BP_(BP_ADD)(BP_(BP_MUL)(k[0], BP_(BP_LOAD)(m)), BP_(BP_MUL)(k[1], gi));
  BP_(BP_V) vi = BP_(BP_ADD)(BP_(BP_MUL)(k[2], BP_(BP_LOAD)(v)), BP_(BP_MUL)(BP_(BP_MUL)(k[3], gi), gi));
  BP_(BP_STORE)(m, mi);
  BP_(BP_STORE)(v, vi);
  BP_(BP_V) pi = BP_(BP_MUL)(BP_(BP_LOAD)(p), k[4]);
  BP_(BP_V) den = BP_(BP_ADD)(BP_(BP_DIV)(BP_(BP_VSQRT)(vi), k[6]), k[7]);
  BP_(BP_STORE)(p, BP_(BP_ADD)(pi, BP_(BP_DIV)(BP_(BP_MUL)(k[5], mi), den)));
}
typedef struct {
  T *p, *m, *v;
  const T *g;
  T b1, b2, eps, decay, step, c2;
} BP_(BpAdamw);
/* elements [lo, hi): lo a multiple of the vector width */
static void BP_(bp_adamw_torch_rng)(void *arg, long lo, long hi) {
  const BP_(BpAdamw) *J = (const BP_(BpAdamw) *)arg;
  enum { VN = BP_(BP_VN) };
  const BP_(BP_V) k[8] = {BP_(BP_SET1)(J->b1),    BP_(BP_SET1)(1 - J->b1), BP_(BP_SET1)(J->b2),
                          BP_(BP_SET1)(1 - J->b2), BP_(BP_SET1)(J->decay),  BP_(BP_SET1)(-J->step),
                          BP_(BP_SET1)(J->c2),     BP_(BP_SET1)(J->eps)};
  T *p = J->p + lo, *m = J->m + lo, *v = J->v + lo;
  const T *g = J->g + lo;
  size_t n = (size_t)(hi - lo), i = 0;
  for (; i + VN <= n; i += VN) BP_P_(bp_adamw_torch_v)(p + i, g + i, m + i, v + i, k);
  if (i < n) {
    T tp[VN] = {0}, tg[VN] = {0}, tm[VN] = {0}, tv[VN] = {0};
    size_t r = n - i;
    memcpy(tp, p + i, r * sizeof(T)), memcpy(tg, g + i, r * sizeof(T));
    memcpy(tm, m + i, r * sizeof(T)), memcpy(tv, v + i, r * sizeof(T));
    BP_P_(bp_adamw_torch_v)(tp, tg, tm, tv, k);
    memcpy(p + i, tp, r * sizeof(T)), memcpy(m + i, tm, r * sizeof(T)), memcpy(v + i, tv, r * sizeof(T));
  }
}
BP_KERNEL void BP_(bp_adamw_torch)(size_t n, T *p, const T *g, T *m, T *v, T b1, T b2,
                                   T eps, T decay, T step, T c2) {
  BP_(BpAdamw) j = {p, m, v, g, b1, b2, eps, decay, step, c2};
  bp_par_range_(BP_(bp_adamw_torch_rng), &j, (long)n, 64, (double)n);
}

#undef T
