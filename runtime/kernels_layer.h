/* kernels_layer.h: bp_bnlayer_fwd/bwd, a batchnorm layer between two linear
 * maps by column blocks, for one float type.  kernels.h includes it twice,
 * with BP_S defined as f32, then f64: T is float or double, BP_(name) is
 * name_f32 or name_f64, BP_P_(name) name_f32_ or name_f64_.
 * Not a header of its own: it needs the definitions section of kernels.h. */
#define T BP_(BP_REAL)

typedef struct {
  int N, K, D, V, dc, groups;
  const T *A, *W1, *b1, *gain, *bias, *W2, *b2, *dout;
  double eps, div, c;
  T *mean, *rstd, *z, *y, *h, *ws, *out;
  const T *rstd_in;
  T *dA, *dW1, *db1, *dgain, *dbias, *dW2, *dh, *dy, *dz;
} BP_(BpLayer);
typedef struct {
  T *xh;                /* the layer's blocked x̂ (all blocks) */
  T *z, *y, *x, *h;     /* [N,dc] each: z/dh, y/dy, dz, h */
  T *wb, *dwb;          /* [K,dc]: W1's columns of the block, their gradient */
  T *p, *q;             /* the group's partial out [N,V] and dA [N,K] */
  double *acc;          /* 6 dc */
} BP_(BpLayerWs);
static T *BP_(bp_carve)(T **p, size_t n) {
  T *r = *p;
  *p += (n + 15) / 16 * 16;
  return r;
}
static BP_(BpLayerWs) BP_(bp_layer_ws)(const BP_(BpLayer) *L, int g) {
  BP_(BpLayerWs) w;
  size_t N = (size_t)L->N, dc = (size_t)L->dc;
  T *p = (T *)(((uintptr_t)L->ws + 63) & ~(uintptr_t)63);
  w.xh = BP_(bp_carve)(&p, N * L->D);
  p += (size_t)g * ((BP_BNLAYER_GROUP(L->N, L->K, L->V, L->dc) + 15) / 16 * 16);
  w.z = BP_(bp_carve)(&p, N * dc), w.y = BP_(bp_carve)(&p, N * dc);
  w.x = BP_(bp_carve)(&p, N * dc), w.h = BP_(bp_carve)(&p, N * dc);
  w.wb = BP_(bp_carve)(&p, (size_t)L->K * dc), w.dwb = BP_(bp_carve)(&p, (size_t)L->K * dc);
  w.p = BP_(bp_carve)(&p, N * L->V), w.q = BP_(bp_carve)(&p, N * L->K);
  w.acc = (double *)(void *)p;
  return w;
}
/* dst[i, j0 + j] = src[i, j] (src [N,w], dst [N,D]); and back */
static void BP_(bp_put_cols)(int N, int w, const T *src, int D, int j0, T *dst) {
  for (int i = 0; i < N; i++)
    memcpy(dst + (size_t)i * D + j0, src + (size_t)i * w, (size_t)w * sizeof(T));
}
static void BP_(bp_get_cols)(int N, int w, const T *src, int D, int j0, T *dst) {
  for (int i = 0; i < N; i++)
    memcpy(dst + (size_t)i * w, src + (size_t)i * D + j0, (size_t)w * sizeof(T));
}
/* h = tanh(gain x̂ + bias) of a block (where the few-column kernels do not run) */
static void BP_(bp_layer_h)(int N, int w, const T *xh, const T *ga, const T *be, T *h) {
  for (int i = 0; i < N; i++)
    for (int j = 0; j < w; j++)
      h[(size_t)i * w + j] = ga[j] * xh[(size_t)i * w + j] + be[j];
  BP_(bp_tanh_rng)(0, (size_t)N * w, h, h);
}
/* blocks of group g: z, batchnorm (x̂ to memory, h in cache), out += h.W2 */
static void BP_(bp_layer_fwd_group)(const BP_(BpLayer) *L, int g) {
  const int N = L->N, K = L->K, D = L->D, V = L->V, nb = (D + L->dc - 1) / L->dc;
  BP_(BpLayerWs) w = BP_(bp_layer_ws)(L, g);
  int b0 = (int)((long)nb * g / L->groups), b1 = (int)((long)nb * (g + 1) / L->groups);
  T *out = L->groups == 1 ? NULL : w.p; /* one group: straight into out */
  for (int b = b0; b < b1; b++) {
    int j0 = b * L->dc, wd = D - j0 < L->dc ? D - j0 : L->dc;
    T *xh = w.xh + (size_t)j0 * N;
    const T *w2 = L->W2 + (size_t)j0 * V;
    BP_(bp_get_cols)(K, wd, L->W1, D, j0, w.wb);
    if (L->b1) BP_(bp_gemm_bias)(N, wd, K, L->A, 0, w.wb, 0, L->b1 + j0, w.z);
    else BP_(bp_gemm)(N, wd, K, L->A, 0, w.wb, 0, w.z, 0);
    int ok = 1;
    for (int c = 0; c < wd && ok; c += 64)
      ok = BP_P_(bp_blk_bn_fwd)(N, wd - c < 64 ? wd - c : 64, wd, w.z + c, L->gain + j0 + c,
                                  L->bias + j0 + c, L->eps, L->div, L->mean + j0 + c,
                                  L->rstd + j0 + c, xh + c, L->y ? w.y + c : NULL, NULL,
                                  w.h + c);
    if (!ok) {
      BP_(BpBnF) f = {N, wd, w.z, L->gain + j0, L->bias + j0, NULL, NULL, L->eps, L->div,
                       L->mean + j0, L->rstd + j0, xh, w.y, NULL, w.acc};
      BP_(bp_bn_fwd_cols)(&f, 0, wd);
      BP_(bp_layer_h)(N, wd, xh, L->gain + j0, L->bias + j0, w.h);
    }
    if (out) BP_(bp_gemm)(N, V, wd, w.h, 0, w2, 0, out, b > b0);
    else if (b == b0 && L->b2) BP_(bp_gemm_bias)(N, V, wd, w.h, 0, w2, 0, L->b2, L->out);
    else BP_(bp_gemm)(N, V, wd, w.h, 0, w2, 0, L->out, b > b0);
    if (L->z) BP_(bp_put_cols)(N, wd, w.z, D, j0, L->z);
    if (L->y) BP_(bp_put_cols)(N, wd, w.y, D, j0, L->y);
    if (L->h) BP_(bp_put_cols)(N, wd, w.h, D, j0, L->h);
  }
}
/* blocks of group g: dh, h again from x̂ and the batchnorm backward, dW2, dW1,
 * dA += dz.W1ᵀ */
static void BP_(bp_layer_bwd_group)(const BP_(BpLayer) *L, int g) {
  const int N = L->N, K = L->K, D = L->D, V = L->V, nb = (D + L->dc - 1) / L->dc;
  BP_(BpLayerWs) w = BP_(bp_layer_ws)(L, g);
  int b0 = (int)((long)nb * g / L->groups), b1 = (int)((long)nb * (g + 1) / L->groups);
  T *dA = L->groups == 1 ? L->dA : L->dA ? w.q : NULL;
  for (int b = b0; b < b1; b++) {
    int j0 = b * L->dc, wd = D - j0 < L->dc ? D - j0 : L->dc;
    const T *xh = w.xh + (size_t)j0 * N, *w2 = L->W2 + (size_t)j0 * V;
    T *dg = L->dgain ? L->dgain + j0 : NULL, *dbb = L->dbias ? L->dbias + j0 : NULL;
    T *db1 = L->db1 ? L->db1 + j0 : NULL;
    BP_(bp_gemm)(N, wd, V, L->dout, 0, w2, 1, w.z, 0); /* dh */
    int ok = 1;
    for (int c = 0; c < wd && ok; c += 64)
      ok = BP_P_(bp_blk_bn_bwd)(N, wd - c < 64 ? wd - c : 64, wd, w.h + c, w.z + c, xh + c,
                                  L->gain + j0 + c, L->bias + j0 + c, L->rstd_in + j0 + c,
                                  L->c, dg ? dg + c : NULL, dbb ? dbb + c : NULL,
                                  L->dy ? w.y + c : NULL, w.x + c, db1 ? db1 + c : NULL);
    if (!ok) {
      BP_(bp_layer_h)(N, wd, xh, L->gain + j0, L->bias + j0, w.h);
      BP_(BpBnB) f = {N, wd, w.h, w.z, w.y, xh, L->gain + j0, L->rstd_in + j0, L->c,
                       dg, dbb, w.x, db1, w.acc};
      BP_(bp_bn_bwd_cols)(&f, 0, wd);
    }
    BP_(bp_gemm)(wd, V, N, w.h, 1, L->dout, 0, L->dW2 + (size_t)j0 * V, 0);
    BP_(bp_gemm)(K, wd, N, L->A, 1, w.x, 0, w.dwb, 0);
    BP_(bp_put_cols)(K, wd, w.dwb, D, j0, L->dW1);
    if (dA) {
      BP_(bp_get_cols)(K, wd, L->W1, D, j0, w.wb);
      BP_(bp_gemm)(N, K, wd, w.x, 0, w.wb, 1, dA, b > b0);
    }
    if (L->dh) BP_(bp_put_cols)(N, wd, w.z, D, j0, L->dh);
    if (L->dy) BP_(bp_put_cols)(N, wd, w.y, D, j0, L->dy);
    if (L->dz) BP_(bp_put_cols)(N, wd, w.x, D, j0, L->dz);
  }
}
static void BP_(bp_layer_job)(void *arg, int t, int nt) {
  const BP_(BpLayer) *L = (const BP_(BpLayer) *)arg;
  int g0 = (int)((long)L->groups * t / nt), g1 = (int)((long)L->groups * (t + 1) / nt);
  int was = bp_serial_;
  bp_serial_ = 1;
  for (int g = g0; g < g1; g++) {
    if (L->dout) BP_(bp_layer_bwd_group)(L, g);
    else BP_(bp_layer_fwd_group)(L, g);
  }
  bp_serial_ = was;
}
static void BP_(bp_layer_run)(BP_(BpLayer) *L) {
  int nt = bp_serial_ ? 1 : bp_nthreads_;
  if (nt > L->groups) nt = L->groups;
  if (nt > 1) bp_parallel(BP_(bp_layer_job), L, nt);
  else BP_(bp_layer_job)(L, 0, 1);
}
/* the groups' partial sums, in group order, onto start (bias row or NULL): each
 * element is ((start + p0) + p1) + ... whatever the thread count */
static void BP_(bp_layer_sum)(const BP_(BpLayer) *L, int which, const T *start, T *dst) {
  int cols = which ? L->K : L->V;
  size_t n = (size_t)L->N * cols;
  for (int r = 0; r < L->N; r++)
    for (int j = 0; j < cols; j++) dst[(size_t)r * cols + j] = start ? start[j] : 0;
  for (int g = 0; g < L->groups; g++) {
    BP_(BpLayerWs) w = BP_(bp_layer_ws)(L, g);
    const T *part = which ? w.q : w.p;
    for (size_t i = 0; i < n; i++) dst[i] += part[i];
  }
}
BP_KERNEL void BP_(bp_bnlayer_fwd)(int N, int K, int D, int V, int dc, int groups,
                                   const T *A, const T *W1, const T *b1, const T *gain,
                                   const T *bias, double eps, double div, const T *W2,
                                   const T *b2, T *mean, T *rstd, T *out, T *z, T *y,
                                   T *h, T *ws) {
  if (N <= 0 || D <= 0 || V <= 0) return;
  int nb = (D + dc - 1) / dc;
  BP_(BpLayer) L = {0};
  L.N = N, L.K = K, L.D = D, L.V = V, L.dc = dc, L.groups = groups < nb ? groups : nb;
  L.A = A, L.W1 = W1, L.b1 = b1, L.gain = gain, L.bias = bias, L.W2 = W2, L.b2 = b2;
  L.eps = eps, L.div = div, L.mean = mean, L.rstd = rstd, L.z = z, L.y = y, L.h = h;
  L.ws = ws, L.out = out;
  BP_(bp_layer_run)(&L);
  if (L.groups > 1) BP_(bp_layer_sum)(&L, 0, b2, out);
}
BP_KERNEL void BP_(bp_bnlayer_bwd)(int N, int K, int D, int V, int dc, int groups,
                                   const T *A, const T *W1, const T *gain, const T *bias,
                                   const T *rstd, double c, const T *W2, const T *dout,
                                   T *dA, T *dW1,
                                   T *db1, T *dgain, T *dbias, T *dW2, T *dh, T *dy,
                                   T *dz, T *ws) {
  if (N <= 0 || D <= 0 || V <= 0) return;
  int nb = (D + dc - 1) / dc;
  BP_(BpLayer) L = {0};
  L.N = N, L.K = K, L.D = D, L.V = V, L.dc = dc, L.groups = groups < nb ? groups : nb;
  L.A = A, L.W1 = W1, L.gain = gain, L.bias = bias, L.rstd_in = rstd, L.c = c, L.W2 = W2;
  L.dout = dout;
  L.dA = dA, L.dW1 = dW1, L.db1 = db1, L.dgain = dgain, L.dbias = dbias, L.dW2 = dW2;
  L.dh = dh, L.dy = dy, L.dz = dz, L.ws = ws;
  BP_(bp_layer_run)(&L);
  if (L.groups > 1 && dA) BP_(bp_layer_sum)(&L, 1, NULL, dA);
}

#undef T
