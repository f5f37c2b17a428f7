/* kernels_attn.h: the sequence models' row kernels (GELU and its derivative,
 * layernorm forward and backward, the causal softmax and a softmax's backward
 * along the last axis, the swap of two axes) for one float type.  kernels.h
 * includes it twice, with BP_S defined as f32, then f64: T is float or double,
 * BP_(name) is name_f32 or name_f64, BP_P_(name) name_f32_ or name_f64_.
 *
 * Both builds call every kernel here but bp_softmax_bwd, which the libtcc build
 * calls in place of the loop gen/emit.c writes into the gcc file for a
 * softmax's backward (the same operations in the same order, the same double
 * accumulator), so that both builds give the same bits.  Row sums (layernorm,
 * its dx, the causal softmax) run in lanes whose order the code fixes, so the
 * bits do not depend on the CPU level's vector width either; tests/
 * test_kernels.c writes layernorm's arithmetic out and compares bits.  GELU's
 * tanh is the vector one of bp_tanh (f32; libm's tanh for f64): with libm's
 * tanhf, GELU took half of the transformer's step.  Kernels that split work
 * between threads give each thread whole rows (or elements), so the bits do
 * not depend on the thread count.
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
/* the threads share the elements (bp_par_range_, parts cut at multiples of 64)
 * from BP_PAR_MIN / BP_PAR_HEAVY of them */
typedef struct {
  const T *x, *dy;
  T *y;
} BP_(BpGelu);
static void BP_(bp_gelu_part)(void *arg, long lo, long hi) {
  const BP_(BpGelu) *j = (const BP_(BpGelu) *)arg;
  if (j->dy) BP_(bp_gelu_bwd_rng)((size_t)lo, (size_t)hi, j->x, j->dy, j->y);
  else BP_(bp_gelu_rng)((size_t)lo, (size_t)hi, j->x, j->y);
}
BP_KERNEL void BP_(bp_gelu)(size_t n, const T *x, T *y) {
  BP_(BpGelu) j = {x, NULL, y};
  bp_par_range_(BP_(bp_gelu_part), &j, (long)n, 64, (double)n * BP_PAR_HEAVY);
}
BP_KERNEL void BP_(bp_gelu_bwd)(size_t n, const T *x, const T *dy, T *dx) {
  BP_(BpGelu) j = {x, dy, dx};
  bp_par_range_(BP_(bp_gelu_part), &j, (long)n, 64, (double)n * BP_PAR_HEAVY);
}

/* Layernorm of x [R, D] over its rows: mean = Σx/D (in double, rounded to
 * T), var = Σ(x − mean)²/D in double, rstd = 1/sqrt(var + eps) rounded to T
 * and saved per row, x̂ = (x − mean)·rstd saved, out = gain ⊙ x̂ + bias; the
 * sums in bp_lane_sum16_'s order.  With x2 (not NULL) the rows normalised are
 * x + x2 in T, written to sum as they are made: a residual's add in the
 * layernorm's pass, the bits of the two passes. */
typedef struct {
  int D;
  const T *x, *dy, *gain, *bias;
  double eps;
  T *rstd, *xhat, *out, *sum;
} BP_(BpLn);
/* rows [lo, hi) */
static void BP_(bp_layernorm_rng)(void *arg, long lo, long hi) {
  enum { W = BP_ROW_LANES };
  const BP_(BpLn) *J = (const BP_(BpLn) *)arg;
  const int D = J->D, body = D / W * W;
  const T *gain = J->gain, *bias = J->bias;
  if (BP_P_(bp_ln_fwd_vec)(lo, hi, D, J->x, J->dy, J->sum, gain, bias, J->eps, J->rstd, J->xhat, J->out))
    return;
  for (long r = lo; r < hi; r++) {
    const T *xr = J->x + (size_t)r * D;
    if (J->dy) {   /* x + x2 */
      const T *x2 = J->dy + (size_t)r * D;
      T *sr = J->sum + (size_t)r * D;
      for (int j = 0; j < D; j++) sr[j] = xr[j] + x2[j];
      xr = sr;
    }
    double a[W] = {0};
    for (int j = 0; j < body; j += W)
      for (int k = 0; k < W; k++) a[k] += xr[j + k];
    for (int j = body; j < D; j++) a[j - body] += xr[j];
    T mean = (T)(bp_lane_sum16_(a) / D);
    for (int k = 0; k < W; k++) a[k] = 0;
    for (int j = 0; j < body; j += W)
      for (int k = 0; k < W; k++) {
        T d = xr[j + k] - mean;
        a[k] += (double)d * d;
      }
    for (int j = body; j < D; j++) {
      T d = xr[j] - mean;
      a[j - body] += (double)d * d;
    }
    T rs = (T)(1.0 / sqrt(bp_lane_sum16_(a) / D + J->eps));
    J->rstd[r] = rs;
    T *xh = J->xhat + (size_t)r * D, *o = J->out + (size_t)r * D;
    for (int j = 0; j < D; j++) {
      T v = (xr[j] - mean) * rs;
      xh[j] = v;
      o[j] = gain[j] * v + bias[j];
    }
  }
}
BP_KERNEL void BP_(bp_layernorm)(int R, int D, const T *x, const T *x2, T *sum, const T *gain, const T *bias,
                                 double eps, T *rstd, T *xhat, T *out) {
  BP_(BpLn) j = {D, x, x2, gain, bias, eps, rstd, xhat, out, sum};
  bp_par_range_(BP_(bp_layernorm_rng), &j, R, 8, (double)R * D * BP_PAR_HEAVY);
}
/* Its dx from dy [R, D]: per row, with dx̂ = gain ⊙ dy in double, m1 = mean
 * dx̂, m2 = mean dx̂ ⊙ x̂ (both in bp_lane_sum16_'s order), dx = rstd (dx̂ − m1
 * − x̂ m2) rounded to T; with add (not NULL), add + dx in T: a residual's
 * gradient and the layernorm's in one pass, the bits of the two passes. */
static void BP_(bp_ln_bwd_x_rng)(void *arg, long lo, long hi) {
  enum { W = BP_ROW_LANES };
  const BP_(BpLn) *J = (const BP_(BpLn) *)arg;
  const int D = J->D, body = D / W * W;
  const T *gain = J->gain;
  if (BP_P_(bp_ln_bwd_vec)(lo, hi, D, J->xhat, J->dy, gain, J->rstd, J->x, J->out)) return;
  for (long r = lo; r < hi; r++) {
    const T *xh = J->xhat + (size_t)r * D, *g = J->dy + (size_t)r * D;
    double a1[W] = {0}, a2[W] = {0};
    for (int j = 0; j < body; j += W)
      for (int k = 0; k < W; k++) {
        double d = (double)gain[j + k] * g[j + k];
        a1[k] += d;
        a2[k] += d * xh[j + k];
      }
    for (int j = body; j < D; j++) {
      double d = (double)gain[j] * g[j];
      a1[j - body] += d;
      a2[j - body] += d * xh[j];
    }
    double a = bp_lane_sum16_(a1) / D, b = bp_lane_sum16_(a2) / D, rs = J->rstd[r];
    T *o = J->out + (size_t)r * D;
    const T *ad = J->x ? J->x + (size_t)r * D : NULL;
    for (int j = 0; j < D; j++) o[j] = (T)(rs * ((double)gain[j] * g[j] - a - xh[j] * b));
    if (ad)
      for (int j = 0; j < D; j++) o[j] = ad[j] + o[j];
  }
}
BP_KERNEL void BP_(bp_ln_bwd_x)(int R, int D, const T *xhat, const T *dy, const T *gain,
                                const T *rstd, const T *add, T *dx) {
  BP_(BpLn) j = {D, add, dy, gain, NULL, 0, (T *)rstd, (T *)xhat, dx, NULL};
  bp_par_range_(BP_(bp_ln_bwd_x_rng), &j, R, 8, (double)R * D * BP_PAR_HEAVY);
}
/* dgain[j] = Σ_r dy[r, j] x̂[r, j], each column summed in row order in double
 * (both builds call it), 256 columns at a time; the threads share the columns
 * (each still summed whole by one, in the same order), from the size at which
 * bp_colsum splits: gpt2 L6 C384's [1024, 384] took ~0.33 ms on one */
typedef struct {
  int R, D;
  const T *dy, *xhat;
  T *dgain;
} BP_(BpLnGain);
static void BP_(bp_ln_bwd_gain_rng)(void *arg, long c0, long c1) {
  const BP_(BpLnGain) *g = (const BP_(BpLnGain) *)arg;
  for (long j0 = c0; j0 < c1; j0 += 256) {
    int w = c1 - j0 < 256 ? (int)(c1 - j0) : 256;
    double acc[256];
    for (int j = 0; j < w; j++) acc[j] = 0;
    for (int r = 0; r < g->R; r++) {
      const T *a = g->dy + (size_t)r * g->D + j0, *b = g->xhat + (size_t)r * g->D + j0;
      for (int j = 0; j < w; j++) acc[j] += (double)a[j] * b[j];
    }
    for (int j = 0; j < w; j++) g->dgain[j0 + j] = (T)acc[j];
  }
}
BP_KERNEL void BP_(bp_ln_bwd_gain)(int R, int D, const T *dy, const T *xhat, T *dgain) {
  BP_(BpLnGain) g = {R, D, dy, xhat, dgain};
  if (D >= 32) bp_par_range_(BP_(bp_ln_bwd_gain_rng), &g, D, 16, (double)R * D / 4);
  else BP_(bp_ln_bwd_gain_rng)(&g, 0, D);
}

/* The causal softmax of rows [n, L], row r being position i = r mod L of its
 * [L, L] block: y = softmax over columns 0..i of v = scale·x (a preceding
 * `/ sqrt(hs)` folded in: one pass fewer over [n, L]), 0 after.  Only the
 * i + 1 unmasked entries are read.  f32: exp by bp_expf_ (within 2 ulp) in
 * float, f64: libm's exp; the sum in double either way, in bp_lane_sum16_'s
 * order, y = e · (1/sum).  Both builds call it (the gcc file pastes it in). */
static void BP_(bp_causal_softmax_rows)(long r0, long r1, int L, T s, const T *x, T *y) {
  enum { W = BP_ROW_LANES };
  if (BP_P_(bp_csm_vec)(r0, r1, L, s, x, y)) return;
  for (long r = r0; r < r1; r++) {
    long len = r % L + 1, body = len / W * W;
    const T *xr = x + (size_t)r * L;
    T *yr = y + (size_t)r * L, m = xr[0] * s;
    for (long j = 1; j < len; j++) m = xr[j] * s > m ? xr[j] * s : m;
    double a[W] = {0};
    for (long j = 0; j < body; j += W)
      for (int k = 0; k < W; k++) a[k] += yr[j + k] = BP_(BP_EXP)(xr[j + k] * s - m);
    for (long j = body; j < len; j++) a[j - body] += yr[j] = BP_(BP_EXP)(xr[j] * s - m);
    double inv = 1 / bp_lane_sum16_(a);
    for (long j = 0; j < len; j++) yr[j] = (T)(yr[j] * inv);
    for (long j = len; j < L; j++) yr[j] = 0;
  }
}
/* Its backward, with the same fold: dx = scale · y ⊙ (dy − Σ_{j≤i} dy y) over
 * the unmasked columns (the dot in double, in bp_lane_sum16_'s order), 0 after
 * (y is 0 there: those dx are 0); dy is read only where j ≤ i. */
static void BP_(bp_causal_softmax_bwd_rows)(long r0, long r1, int L, T s, const T *y, const T *dy, T *dx) {
  enum { W = BP_ROW_LANES };
  if (BP_P_(bp_csm_bwd_vec)(r0, r1, L, s, y, dy, dx)) return;
  for (long r = r0; r < r1; r++) {
    long len = r % L + 1, body = len / W * W;
    const T *yr = y + (size_t)r * L, *gr = dy + (size_t)r * L;
    T *o = dx + (size_t)r * L;
    double a[W] = {0};
    for (long j = 0; j < body; j += W)
      for (int k = 0; k < W; k++) a[k] += (double)gr[j + k] * yr[j + k];
    for (long j = body; j < len; j++) a[j - body] += (double)gr[j] * yr[j];
    T d = (T)bp_lane_sum16_(a);
    for (long j = 0; j < len; j++) o[j] = yr[j] * (gr[j] - d) * s;
    for (long j = len; j < L; j++) o[j] = 0;
  }
}
typedef struct {
  int bwd, L;
  long n;
  T s;
  const T *x, *dy;
  T *y;
} BP_(BpCausal);
static void BP_(bp_causal_job)(void *arg, int t, int nt) {
  const BP_(BpCausal) *j = (const BP_(BpCausal) *)arg;
  long lo, hi;
  bp_split_(j->n, j->L, t, nt, &lo, &hi);   /* whole [L, L] blocks: the same work each */
  if (j->bwd) BP_(bp_causal_softmax_bwd_rows)(lo, hi, j->L, j->s, j->x, j->dy, j->y);
  else BP_(bp_causal_softmax_rows)(lo, hi, j->L, j->s, j->x, j->y);
}
BP_KERNEL void BP_(bp_causal_softmax)(int n, int L, double scale, const T *x, T *y) {
  BP_(BpCausal) j = {0, L, n, (T)scale, x, NULL, y};
  if (bp_nthreads_ > 1 && (long)n * L >= BP_PAR_MIN) bp_parallel(BP_(bp_causal_job), &j, bp_nthreads_);
  else BP_(bp_causal_softmax_rows)(0, n, L, (T)scale, x, y);
}
BP_KERNEL void BP_(bp_causal_softmax_bwd)(int n, int L, double scale, const T *y, const T *dy, T *dx) {
  BP_(BpCausal) j = {1, L, n, (T)scale, y, dy, dx};
  if (bp_nthreads_ > 1 && (long)n * L >= BP_PAR_MIN) bp_parallel(BP_(bp_causal_job), &j, bp_nthreads_);
  else BP_(bp_causal_softmax_bwd_rows)(0, n, L, (T)scale, y, dy, dx);
}
/* C [M,N] = op(A)·op(B) for attention's per-head products, one triangle
 * skipped, by blocks of BP_CB rows of C, each block a bp_gemm call (or a few:
 * BP_CPACK bounds a block's packed operand):
 *   tri 1, A as is, B transposed, M == N (q·kᵀ, dy·vᵀ): only C's lower
 *     triangle (j <= i) is wanted.  A block of rows [i0, i1) is computed for
 *     columns [0, i1) only, into a buffer, then copied into C; full = 1 makes
 *     the columns after i1 too (by separate calls: the lower entries have the
 *     same bits either way), full = 0 leaves those unwritten (the blocks
 *     right of the diagonal's).
 *   tri 2, B as is, M == K: A [M,M] is 0 above its diagonal (a causal softmax
 *     or its gradient).  A block of C rows reads only the part of A that can
 *     be nonzero: A[i0:i1, 0:i1] (A as is: C = A·B) or rows i0.. of A's
 *     columns i0:i1 (transa: C = Aᵀ·B), packed, with the rows of B it meets.
 *     Only exact zeros are left out; the other terms keep their order.
 * Any other case is one plain bp_gemm.  f32 with AVX-512 takes
 * bp_causal_small_f32 (kernels.h) first: the same cases in the small path's
 * tiles, each element one chain over k. */
/* BP_CB, BP_CPACK: in the interface section of kernels.h (the scratch's size) */
BP_KERNEL void BP_(bp_gemm_causal)(int M, int N, int K, const T *A, int transa, const T *B, int transb, T *C,
                                   int tri, int full) {
  if (BP_(bp_causal_small)(M, N, K, A, transa, B, transb, C, tri, full)) return;
  T *w = BP_SCRATCH(CAUSAL, T); /* this thread's (kernels.h "scratch") */
  const int step = BP_CPACK / BP_CB;
  if (tri == 1 && M == N && !transa && transb) {
    for (int i0 = 0; i0 < M; i0 += BP_CB) {
      int mb = M - i0 < BP_CB ? M - i0 : BP_CB, i1 = i0 + mb;
      for (int part = 0; part < 1 + (full != 0); part++)   /* columns [0, i1), then [i1, N) */
        for (int c0 = part ? i1 : 0, ce = part ? N : i1; c0 < ce; c0 += step) {
          int nc = ce - c0 < step ? ce - c0 : step;
          if (nc == N) { /* whole rows (T <= BP_CB): straight into C, the same call */
            BP_(bp_gemm)(mb, nc, K, A + (size_t)i0 * K, 0, B, 1, C + (size_t)i0 * N, 0);
            continue;
          }
          BP_(bp_gemm)(mb, nc, K, A + (size_t)i0 * K, 0, B + (size_t)c0 * K, 1, w, 0);
          for (int r = 0; r < mb; r++) memcpy(C + (size_t)(i0 + r) * N + c0, w + (size_t)r * nc, sizeof(T) * (size_t)nc);
        }
    }
    return;
  }
  if (tri == 2 && M == K && !transb) {
    for (int i0 = 0; i0 < M; i0 += BP_CB) {
      int mb = M - i0 < BP_CB ? M - i0 : BP_CB, i1 = i0 + mb;
      /* the k that can meet a nonzero: [0, i1) for A, [i0, K) for Aᵀ */
      for (int k0 = transa ? i0 : 0, ke = transa ? K : i1; k0 < ke; k0 += step) {
        int kc = ke - k0 < step ? ke - k0 : step;
        const T *a = w;   /* the block as it is stored when it is whole rows of A, else packed */
        if (!transa && kc == K)
          a = A + (size_t)i0 * K;
        else if (transa && mb == M)
          a = A + (size_t)k0 * M;
        else if (!transa)
          for (int r = 0; r < mb; r++) memcpy(w + (size_t)r * kc, A + (size_t)(i0 + r) * K + k0, sizeof(T) * (size_t)kc);
        else
          for (int k = 0; k < kc; k++) memcpy(w + (size_t)k * mb, A + (size_t)(k0 + k) * M + i0, sizeof(T) * (size_t)mb);
        BP_(bp_gemm)(mb, N, kc, a, transa, B + (size_t)k0 * N, 0, C + (size_t)i0 * N, k0 != (transa ? i0 : 0));
      }
    }
    return;
  }
  BP_(bp_gemm)(M, N, K, A, transa, B, transb, C, 0);
}
/* nb products of one shape, operands and results one after another (A: M·K
 * elements each, B: K·N, C: M·N): bp_gemm (tri 0) or bp_gemm_causal (tri 1,
 * 2; full as there) each.  The attention's per-head products are each too
 * small for bp_gemm to split between threads; here the threads take shares of
 * the products instead (bp_heads_, kernels.h). */
typedef struct {
  int nb, M, N, K, transa, transb, tri, full;
  const T *A, *B;
  T *C;
} BP_(BpGemmBatch);
static void BP_(bp_gemm_batch_rng)(const void *arg, int b0, int b1) {
  const BP_(BpGemmBatch) *g = (const BP_(BpGemmBatch) *)arg;
  size_t sa = (size_t)g->M * g->K, sb = (size_t)g->K * g->N, sc = (size_t)g->M * g->N;
  for (int b = b0; b < b1; b++) {
    if (g->tri)
      BP_(bp_gemm_causal)(g->M, g->N, g->K, g->A + b * sa, g->transa, g->B + b * sb, g->transb,
                          g->C + b * sc, g->tri, g->full);
    else
      BP_(bp_gemm)(g->M, g->N, g->K, g->A + b * sa, g->transa, g->B + b * sb, g->transb,
                   g->C + b * sc, 0);
  }
}
BP_KERNEL void BP_(bp_gemm_batch)(int nb, int M, int N, int K, const T *A, int transa, const T *B,
                                  int transb, T *C, int tri, int full) {
  BP_(BpGemmBatch) g = {nb, M, N, K, transa, transb, tri, full, A, B, C};
  bp_heads_(BP_(bp_gemm_batch_rng), &g, nb, 2.0 * M * N * K);
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

/* The causal attention's scores and their gradient, per head, each product
 * made in the memory its softmax (or softmax backward) then works through in
 * place, so that the product has no [T, T] tensor of its own (written once,
 * not twice, per head; both builds call them):
 *   bp_causal_scores      att = causal_softmax(scale · q·kᵀ)
 *   bp_causal_scores_bwd  datt = dy·vᵀ, ds = scale · att ⊙ (datt − Σ_l datt ⊙ att);
 *                         datt NULL: its lower triangle made in ds's rows;
 *                         else all of it into datt (a tensor the user sees)
 * nb heads one after another in each operand (q, k, dy, v [T, D]; att, ds,
 * datt [T, T]).  Each head has the bits of bp_gemm_causal (tri 1) then
 * bp_causal_softmax(_bwd) on it, the heads shared as bp_heads_ shares them. */
typedef struct {
  int nb, L, D;
  T s;
  const T *a, *b, *att;
  T *datt, *out;
} BP_(BpScores);
static void BP_(bp_scores_rng)(const void *arg, int h0, int h1) {
  const BP_(BpScores) *g = (const BP_(BpScores) *)arg;
  size_t sd = (size_t)g->L * g->D, st = (size_t)g->L * g->L;
  for (int h = h0; h < h1; h++) {
    long r0 = (long)h * g->L, r1 = r0 + g->L;
    T *o = g->out + h * st, *d = g->datt ? g->datt + h * st : o;
    BP_(bp_gemm_causal)(g->L, g->L, g->D, g->a + h * sd, 0, g->b + h * sd, 1, d, 1, g->datt != NULL);
    if (g->att)
      BP_(bp_causal_softmax_bwd_rows)(r0, r1, g->L, g->s, g->att, g->datt ? g->datt : g->out, g->out);
    else
      BP_(bp_causal_softmax_rows)(r0, r1, g->L, g->s, g->out, g->out);
  }
}
BP_KERNEL void BP_(bp_causal_scores)(int nb, int L, int D, const T *q, const T *k, double scale, T *att) {
  BP_(BpScores) g = {nb, L, D, (T)scale, q, k, NULL, NULL, att};
  bp_heads_(BP_(bp_scores_rng), &g, nb, 2.0 * L * L * D);
}
BP_KERNEL void BP_(bp_causal_scores_bwd)(int nb, int L, int D, const T *dy, const T *v, const T *att,
                                         double scale, T *datt, T *ds) {
  BP_(BpScores) g = {nb, L, D, (T)scale, dy, v, att, datt, ds};
  bp_heads_(BP_(bp_scores_rng), &g, nb, 2.0 * L * L * D);
}

/* The swap of two axes, x [A, n1, B, n2, C] -> y [A, n2, B, n1, C], with x's
 * rows (a, i, b) xs elements apart and y's rows (a, j, b) ys apart (n2·C and
 * n1·C when both are whole tensors; more when x is a slice of a wider one or y
 * a part of a wider concat: the attention's heads read out of qkv, dq, dk, dv
 * written into dqkv) */
typedef struct {
  long A, n1, B, n2, C, xs, ys;
  const T *x;
  T *y;
} BP_(BpSwap);
/* (a, j) pairs [lo, hi), a * n2 + j */
static void BP_(bp_swap_axes_rng)(void *arg, long lo, long hi) {
  const BP_(BpSwap) *J = (const BP_(BpSwap) *)arg;
  const long n1 = J->n1, B = J->B, n2 = J->n2, C = J->C, xs = J->xs, ys = J->ys;
  for (long aj = lo; aj < hi; aj++) {
    long a = aj / n2, j = aj % n2;
    for (long b = 0; b < B; b++) {
      T *yo = J->y + ((a * n2 + j) * B + b) * ys;
      const T *xo = J->x + (a * n1 * B + b) * xs + j * C;
      if (C == 1)
        for (long i = 0; i < n1; i++) yo[i] = xo[i * B * xs];
      else
        for (long i = 0; i < n1; i++)
          for (long c = 0; c < C; c++) yo[i * C + c] = xo[i * B * xs + c];
    }
  }
}
BP_KERNEL void BP_(bp_swap_axes)(long A, long n1, long B, long n2, long C, const T *x, long xs, T *y, long ys) {
  BP_(BpSwap) j = {A, n1, B, n2, C, xs, ys, x, y};
  bp_par_range_(BP_(bp_swap_axes_rng), &j, A * n2, 1, (double)A * n1 * B * n2 * C);
}
typedef struct {
  long run, sstride, dstride;
  const T *src;
  T *dst;
} BP_(BpRows);
static void BP_(bp_copy_rows_rng)(void *arg, long lo, long hi) {
  const BP_(BpRows) *J = (const BP_(BpRows) *)arg;
  for (long o = lo; o < hi; o++)
    memcpy(J->dst + o * J->dstride, J->src + o * J->sstride, sizeof(T) * (size_t)J->run);
}
BP_KERNEL void BP_(bp_copy_rows)(long rows, long run, const T *src, long sstride, T *dst, long dstride) {
  BP_(BpRows) j = {run, sstride, dstride, src, dst};
  bp_par_range_(BP_(bp_copy_rows_rng), &j, rows, 1, (double)rows * run);
}
/* bp_cat_parts (kernels.h): rows [lo, hi) of y, each written whole */
typedef struct {
  long W;
  int n;
  const long *geo;
  const T *const *src;
  T *y;
} BP_(BpCatParts);
static void BP_(bp_cat_parts_rng)(void *arg, long lo, long hi) {
  const BP_(BpCatParts) *J = (const BP_(BpCatParts) *)arg;
  for (long r = lo; r < hi; r++) {
    T *yr = J->y + r * J->W;
    for (int p = 0; p < J->n; p++) {
      const long *g = J->geo + 5 * p;
      long n1 = g[1], n2 = g[2], C = g[3], xs = g[4], a = r / n2, j = r % n2;
      const T *x = J->src[p] + a * n1 * xs + j * C;
      for (long i = 0; i < n1; i++) memcpy(yr + g[0] + i * C, x + i * xs, sizeof(T) * (size_t)C);
    }
  }
}
BP_KERNEL void BP_(bp_cat_parts)(long rows, long W, int n, const long *geo, const T *const *src, T *y) {
  BP_(BpCatParts) j = {W, n, geo, src, y};
  bp_par_range_(BP_(bp_cat_parts_rng), &j, rows, 1, (double)rows * W);
}

#undef T
