/* kernels_attn.h: the sequence models' row kernels (GELU and its derivative,
 * layernorm forward and backward, the causal softmax and a softmax's backward
 * along the last axis, the swap of two axes) for one float type.  kernels.h
 * includes it twice, with BP_S defined as f32, then f64: T is float or double,
 * BP_(name) is name_f32 or name_f64, BP_P_(name) name_f32_ or name_f64_.
 *
 * Except GELU's, each kernel performs exactly the arithmetic of the loop
 * gen/emit.c writes into the gcc file for its op (the same operations in the
 * same order, the same double accumulators, libm's exp), so that the libtcc
 * build, which calls them, gives the bits of that loop compiled without
 * contraction.  Sums that run along a row are computed for 8 rows at once,
 * each row's sum still in index order: 8 independent chains in place of one
 * (the adds' latency, not their count, bounded the row-at-a-time loop).
 * GELU's tanh is the vector one of bp_tanh (f32; libm's tanh for f64): the gcc
 * file calls these two kernels too (with libm's tanhf, GELU took half of the
 * transformer's step).
 * Not a header of its own: it needs the definitions section of kernels.h. */
#define T BP_(BP_REAL)

/* y = ½x(1 + tanh(c(x + a x³))), c = √(2/π), a = 0.044715 */
static void BP_(bp_gelu_rng)(size_t lo, size_t hi, const T *x, T *y) {
  if (BP_P_(bp_gelu_vec)(lo, hi, x, NULL, y)) return;
  const T c = (T)0.79788456080286535588, a = (T)0.044715, half = (T)0.5;
  for (size_t i = lo; i < hi; i++) {
    T v = x[i];
    y[i] = half * v * (1 + BP_(BP_TANH)(c * (v + a * v * v * v)));
  }
}
/* dx = (½(1 + t) + ½x(1 − t²)·c(1 + 3a x²)) dy, t = tanh(c(x + a x³)) */
static void BP_(bp_gelu_bwd_rng)(size_t lo, size_t hi, const T *x, const T *dy, T *dx) {
  if (BP_P_(bp_gelu_vec)(lo, hi, x, dy, dx)) return;
  const T c = (T)0.79788456080286535588, a = (T)0.044715, a3 = (T)(3 * 0.044715), half = (T)0.5;
  for (size_t i = lo; i < hi; i++) {
    T v = x[i], t = BP_(BP_TANH)(c * (v + a * v * v * v));
    dx[i] = (half * (1 + t) + half * v * (1 - t * t) * c * (1 + a3 * v * v)) * dy[i];
  }
}
typedef struct {
  int bwd;
  size_t n;
  const T *x, *dy;
  T *y;
} BP_(BpGelu);
static void BP_(bp_gelu_job)(void *arg, int t, int nt) {
  const BP_(BpGelu) *j = (const BP_(BpGelu) *)arg;
  long lo, hi;
  bp_split_((long)j->n, 64, t, nt, &lo, &hi);
  if (j->bwd) BP_(bp_gelu_bwd_rng)((size_t)lo, (size_t)hi, j->x, j->dy, j->y);
  else BP_(bp_gelu_rng)((size_t)lo, (size_t)hi, j->x, j->y);
}
BP_KERNEL void BP_(bp_gelu)(size_t n, const T *x, T *y) {
  if (bp_nthreads_ > 1 && n >= BP_PAR_MIN) {
    BP_(BpGelu) j = {0, n, x, NULL, y};
    bp_parallel(BP_(bp_gelu_job), &j, bp_nthreads_);
  } else BP_(bp_gelu_rng)(0, n, x, y);
}
BP_KERNEL void BP_(bp_gelu_bwd)(size_t n, const T *x, const T *dy, T *dx) {
  if (bp_nthreads_ > 1 && n >= BP_PAR_MIN) {
    BP_(BpGelu) j = {1, n, x, dy, dx};
    bp_parallel(BP_(bp_gelu_job), &j, bp_nthreads_);
  } else BP_(bp_gelu_bwd_rng)(0, n, x, dy, dx);
}

/* Layernorm of x [R, D] over its rows (emit_layernorm's loop): mean = Σx/D
 * (in double, rounded to T), var = Σ(x − mean)²/D in double, rstd =
 * 1/sqrt(var + eps) rounded to T and saved per row, x̂ = (x − mean)·rstd
 * saved, out = gain ⊙ x̂ + bias. */
BP_KERNEL void BP_(bp_layernorm)(int R, int D, const T *x, const T *gain, const T *bias,
                                 double eps, T *rstd, T *xhat, T *out) {
  for (int r0 = 0; r0 < R; r0 += 8) {
    int nb = R - r0 < 8 ? R - r0 : 8;
    const T *row = x + (size_t)r0 * D;
    double s[8] = {0}, ss[8] = {0};
    T mean[8], rs[8];
    if (nb == 8) {
      for (int j = 0; j < D; j++)
        for (int k = 0; k < 8; k++) s[k] += row[(size_t)k * D + j];
    } else {
      for (int j = 0; j < D; j++)
        for (int k = 0; k < nb; k++) s[k] += row[(size_t)k * D + j];
    }
    for (int k = 0; k < nb; k++) mean[k] = (T)(s[k] / D);
    if (nb == 8) {
      for (int j = 0; j < D; j++)
        for (int k = 0; k < 8; k++) {
          T d = row[(size_t)k * D + j] - mean[k];
          ss[k] += (double)d * d;
        }
    } else {
      for (int j = 0; j < D; j++)
        for (int k = 0; k < nb; k++) {
          T d = row[(size_t)k * D + j] - mean[k];
          ss[k] += (double)d * d;
        }
    }
    for (int k = 0; k < nb; k++) {
      rs[k] = (T)(1.0 / sqrt(ss[k] / D + eps));
      rstd[r0 + k] = rs[k];
      const T *xr = row + (size_t)k * D;
      T *xh = xhat + (size_t)(r0 + k) * D, *o = out + (size_t)(r0 + k) * D;
      for (int j = 0; j < D; j++) {
        T v = (xr[j] - mean[k]) * rs[k];
        xh[j] = v;
        o[j] = gain[j] * v + bias[j];
      }
    }
  }
}
/* Its dx from dy [R, D] (emit_ln_bwd_x's loop): per row, with dx̂ = gain ⊙ dy
 * in double, m1 = mean dx̂, m2 = mean dx̂ ⊙ x̂, dx = rstd (dx̂ − m1 − x̂ m2). */
BP_KERNEL void BP_(bp_ln_bwd_x)(int R, int D, const T *xhat, const T *dy, const T *gain,
                                const T *rstd, T *dx) {
  for (int r0 = 0; r0 < R; r0 += 8) {
    int nb = R - r0 < 8 ? R - r0 : 8;
    const T *xh = xhat + (size_t)r0 * D, *g = dy + (size_t)r0 * D;
    double m1[8] = {0}, m2[8] = {0};
    if (nb == 8) {
      for (int j = 0; j < D; j++)
        for (int k = 0; k < 8; k++) {
          double d = (double)gain[j] * g[(size_t)k * D + j];
          m1[k] += d;
          m2[k] += d * xh[(size_t)k * D + j];
        }
    } else {
      for (int j = 0; j < D; j++)
        for (int k = 0; k < nb; k++) {
          double d = (double)gain[j] * g[(size_t)k * D + j];
          m1[k] += d;
          m2[k] += d * xh[(size_t)k * D + j];
        }
    }
    for (int k = 0; k < nb; k++) {
      double a = m1[k] / D, b = m2[k] / D;
      const T *xk = xh + (size_t)k * D, *gk = g + (size_t)k * D;
      T *o = dx + (size_t)(r0 + k) * D;
      for (int j = 0; j < D; j++) o[j] = (T)(rstd[r0 + k] * ((double)gain[j] * gk[j] - a - xk[j] * b));
    }
  }
}
/* dgain[j] = Σ_r dy[r, j] x̂[r, j], each column summed in row order in double
 * (emit_ln_bwd_gain's loop), 256 columns at a time */
BP_KERNEL void BP_(bp_ln_bwd_gain)(int R, int D, const T *dy, const T *xhat, T *dgain) {
  for (int j0 = 0; j0 < D; j0 += 256) {
    int w = D - j0 < 256 ? D - j0 : 256;
    double acc[256];
    for (int j = 0; j < w; j++) acc[j] = 0;
    for (int r = 0; r < R; r++) {
      const T *a = dy + (size_t)r * D + j0, *b = xhat + (size_t)r * D + j0;
      for (int j = 0; j < w; j++) acc[j] += (double)a[j] * b[j];
    }
    for (int j = 0; j < w; j++) dgain[j0 + j] = (T)acc[j];
  }
}

/* The causal softmax of rows of T (emit_causal_softmax's loop): rows [n, L],
 * row r is position i = r mod L of its [L, L] block: softmax over columns
 * 0..i in double (libm exp), 0 after.  Each exp once (the loop computes it
 * twice: the same value). */
BP_KERNEL void BP_(bp_causal_softmax)(int n, int L, const T *x, T *y) {
  double e[256];
  for (long r = 0; r < n; r++) {
    long i = r % L;
    const T *xr = x + (size_t)r * L;
    T *yr = y + (size_t)r * L;
    double m = xr[0], sum = 0;
    for (long j = 1; j <= i; j++) m = xr[j] > m ? xr[j] : m;
    if (i < 256) {
      for (long j = 0; j <= i; j++) sum += e[j] = exp(xr[j] - m);
      for (long j = 0; j <= i; j++) yr[j] = (T)(e[j] / sum);
    } else {
      for (long j = 0; j <= i; j++) sum += exp(xr[j] - m);
      for (long j = 0; j <= i; j++) yr[j] = (T)(exp(xr[j] - m) / sum);
    }
    for (long j = i + 1; j < L; j++) yr[j] = 0;
  }
}
/* A softmax's backward along rows of L (emit_softmax_bwd's loop, the axis
 * last): dot = Σ dy y in double, dx = y (dy − dot). */
BP_KERNEL void BP_(bp_softmax_bwd)(int n, int L, const T *y, const T *dy, T *dx) {
  for (int r0 = 0; r0 < n; r0 += 8) {
    int nb = n - r0 < 8 ? n - r0 : 8;
    const T *yr = y + (size_t)r0 * L, *gr = dy + (size_t)r0 * L;
    double dot[8] = {0};
    if (nb == 8) {
      for (int j = 0; j < L; j++)
        for (int k = 0; k < 8; k++) dot[k] += (double)gr[(size_t)k * L + j] * yr[(size_t)k * L + j];
    } else {
      for (int j = 0; j < L; j++)
        for (int k = 0; k < nb; k++) dot[k] += (double)gr[(size_t)k * L + j] * yr[(size_t)k * L + j];
    }
    for (int k = 0; k < nb; k++) {
      T d = (T)dot[k];
      const T *yk = yr + (size_t)k * L, *gk = gr + (size_t)k * L;
      T *o = dx + (size_t)(r0 + k) * L;
      for (int j = 0; j < L; j++) o[j] = yk[j] * (gk[j] - d);
    }
  }
}

/* y = x with two axes swapped, x viewed as [A, n1, B, n2, C] (the swapped
 * axes n1 and n2), y as [A, n2, B, n1, C]: a copy */
BP_KERNEL void BP_(bp_swap_axes)(long A, long n1, long B, long n2, long C, const T *x, T *y) {
  for (long a = 0; a < A; a++)
    for (long j = 0; j < n2; j++)
      for (long b = 0; b < B; b++) {
        T *yo = y + (((a * n2 + j) * B + b) * n1) * C;
        const T *xo = x + ((a * n1 * B + b) * n2 + j) * C;
        if (C == 1)
          for (long i = 0; i < n1; i++) yo[i] = xo[i * B * n2];
        else
          for (long i = 0; i < n1; i++)
            for (long c = 0; c < C; c++) yo[i * C + c] = xo[i * B * n2 * C + c];
      }
}

#undef T
