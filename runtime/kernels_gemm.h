/* kernels_gemm.h: bp_gemm and its micro-kernels (kernels.h's "gemm" section
 * tells the scheme) for one float type.  kernels.h includes it twice, with
 * BP_S defined as f32, then f64: T is float or double, BP_(name) is name_f32
 * or name_f64 (BP_(BP_V) the vector type, BP_(BP_LOAD) its load, ...).
 * Not a header of its own: it needs the definitions section of kernels.h. */
#define T BP_(BP_REAL)

enum { BP_(BP_NR) = BP_NRV * BP_(BP_VN) };
/* tile[mr, NR] = pa[kc, mr]^T-panel . pb[kc, NR]; then c = tile or c += tile */
static inline __attribute__((always_inline)) void BP_(bp_ukr)(
    const int mr, int kc, const T *pa, long as, long ak, const T *pb, long ldb, T *c,
    long ldc, int add, const T *bias, int bt, int nt) {
  BP_(BP_V) acc[BP_MR][BP_NRV];
  /* the sums start at zero or at the bias: bias[0..NR) across (bt = 0), or one
   * bias[i] per row (bt = 1, the transposed product) */
  BP_UNROLL(16) for (int i = 0; i < mr; i++)
    BP_UNROLL(4) for (int v = 0; v < BP_NRV; v++)
      acc[i][v] = !bias ? BP_(BP_ZERO)() : bt ? BP_(BP_SET1)(bias[i])
                : BP_(BP_LOAD)(bias + v * BP_(BP_VN));
  for (int k = 0; k < kc; k++) {
    BP_(BP_V) b[BP_NRV];
    BP_UNROLL(4) for (int v = 0; v < BP_NRV; v++)
      b[v] = BP_(BP_LOAD)(pb + (long)k * ldb + v * BP_(BP_VN));
    BP_UNROLL(16) for (int i = 0; i < mr; i++) {
      BP_(BP_V) a = BP_(BP_SET1)(pa[(long)k * ak + (as ? i * as : i)]);
      BP_UNROLL(4) for (int v = 0; v < BP_NRV; v++)
        acc[i][v] = BP_(BP_FMA)(a, b[v], acc[i][v]);
    }
  }
  BP_UNROLL(16) for (int i = 0; i < mr; i++)
    BP_UNROLL(4) for (int v = 0; v < BP_NRV; v++) {
      T *p = c + i * ldc + v * BP_(BP_VN);
      BP_(BP_V) r = acc[i][v];
      if (add) r = BP_(BP_ADD)(BP_(BP_LOAD)(p), r);
      if (nt) BP_(BP_STREAM)(p, r);
      else BP_(BP_STORE)(p, r);
    }
}
/* A(i,k) = pa[i*as + k*ak] (as = 0: packed, pa[k*mr + i]); B(k,j) = pb[k*ldb + j] */
static void BP_(bp_ukr_any)(int mr, int kc, const T *pa, long as, long ak, const T *pb,
                            long ldb, T *c, long ldc, int add, const T *bias, int bt,
                            int nt) {
  switch (mr) { BP_MR_LIST(BP_UKR_CASE, BP_S) default: break; }
}
/* dst[k*dld + i] = src[i*ld + k] for i < n, 0 for n <= i < w, k < kc: the packing
 * of an operand whose k runs along its rows */
static void BP_(bp_pack_tr)(int n, int w, int kc, const T *src, long ld, T *dst, long dld) {
#if defined(__AVX512F__)
  if (sizeof(T) == sizeof(float)) {
    for (int i0 = 0; i0 < w; i0 += 16) {
      int ni = n - i0 < 0 ? 0 : n - i0 > 16 ? 16 : n - i0;
      bp_pack_tr16_f32_(ni, w - i0 < 16 ? w - i0 : 16, kc, (const float *)src + (long)i0 * ld, ld,
                        (float *)dst + i0, dld);
    }
    return;
  }
#endif
  for (int i = 0; i < w; i++)
    for (int k = 0; k < kc; k++) dst[(long)k * dld + i] = i < n ? src[(long)i * ld + k] : 0;
}
/* dst[0..n) = src[0..n), n <= BP_MR */
static inline void BP_(bp_copy_short)(int n, const T *src, T *dst) {
#if defined(__AVX512F__)
  if (sizeof(T) == sizeof(float)) {
    __mmask16 m = (__mmask16)((1u << n) - 1);
    _mm512_mask_storeu_ps((float *)dst, m, _mm512_maskz_loadu_ps(m, (const float *)src));
    return;
  }
#endif
  for (int i = 0; i < n; i++) dst[i] = src[i];
}
/* C(i,j) = c[i*rsc + j*csc], op(A)(i,k) = a[i*ars + k*acs], op(B)(k,j) = b[k*brs + j*bcs] */
typedef struct {
  int M, N, K, acc, npanels, pbase, pextra, packa, packb;
  int kb;                 /* k block: K cut into nearly equal blocks of at most BP_KC */
  const T *a; long ars, acs;
  const T *b; long brs, bcs;
  T *c; long rsc, csc;
  int nt;                 /* C written once, far beyond the caches: streaming stores
                           * (64-byte aligned rows, one k block) */
  const T *bias; int bt;  /* C = bias + product: bias along C's rows (bt = 0) or
                           * columns of the computed (transposed) product */
} BP_(BpGemm);
static int BP_(bp_gemm_panel)(const BP_(BpGemm) *g, int p) { /* first row of panel p */
  return p * g->pbase + (p < g->pextra ? p : g->pextra);
}
/* rows of panels [p0,p1), columns [n0,n1) of C */
static void BP_(bp_gemm_part)(const BP_(BpGemm) *g, int p0, int p1, int n0, int n1) {
  T *bufa = BP_SCRATCH(PACKA, T), *bufb = BP_SCRATCH(PACKB, T); /* this thread's (kernels.h) */
  T tile[BP_MR * BP_(BP_NR)] __attribute__((aligned(64)));
  T bpad[BP_(BP_NR)];
  const int NR = BP_(BP_NR);
  for (int jc = n0; jc < n1; jc += BP_NC) {
    int nc = n1 - jc < BP_NC ? n1 - jc : BP_NC;
    for (int pc = 0; pc < g->K; pc += g->kb) {
      int kc = g->K - pc < g->kb ? g->K - pc : g->kb;
      int add = g->acc || pc > 0;
      const T *bias = pc == 0 ? g->bias : NULL;
      /* pack op(B)[pc:pc+kc, jc:jc+nc] as panels of NR columns, zero padded; rows of
       * op(B) contiguous: row by row, each read once from end to end (a panel at a
       * time would walk kc rows a page or more apart) */
      if (g->packb && g->bcs == 1) {
        for (int k = 0; k < kc; k++) {
          const T *s = g->b + (long)(pc + k) * g->brs + jc;
          int jr = 0;
          for (; jr + NR <= nc; jr += NR)
            memcpy(bufb + (long)jr * kc + (long)k * NR, s + jr, NR * sizeof(T));
          if (jr < nc) {
            T *d = bufb + (long)jr * kc + (long)k * NR;
            for (int j = 0; j < NR; j++) d[j] = jr + j < nc ? s[jr + j] : 0;
          }
        }
      }
      for (int jr = 0; jr < nc && !(g->packb && g->bcs == 1); jr += NR) {
        int nr = nc - jr < NR ? nc - jr : NR;
        T *pb = bufb + (long)jr * kc;
        if (!g->packb && nr == NR) continue; /* read in place */
        const T *src = g->b + (long)pc * g->brs + (long)(jc + jr) * g->bcs;
        if (g->bcs == 1) {
          for (int k = 0; k < kc; k++) {
            const T *s = src + (long)k * g->brs;
            T *d = pb + (long)k * NR;
            for (int j = 0; j < nr; j++) d[j] = s[j];
            for (int j = nr; j < NR; j++) d[j] = 0;
          }
        } else if (g->brs == 1) {
          BP_(bp_pack_tr)(nr, NR, kc, src, g->bcs, pb, NR);
        } else {
          for (int j = 0; j < NR; j++)
            for (int k = 0; k < kc; k++)
              pb[(long)k * NR + j] = j < nr ? src[(long)j * g->bcs + (long)k * g->brs] : 0;
        }
      }
      for (int ip = p0; ip < p1; ip += BP_MCP) {
        int ipe = p1 - ip < BP_MCP ? p1 : ip + BP_MCP;
        /* pack op(A) panels ip..ipe-1, rows [pc, pc+kc), k-major */
        T *pa = bufa;
        if (g->packa && g->acs != 1 && g->ars == 1) {
          /* A^T stored: op(A)'s columns are rows of memory, read each from end to
           * end across all the panels (a panel at a time would read 12 floats of
           * a row, then jump a row ahead) */
          int i00 = BP_(bp_gemm_panel)(g, ip);
          for (int k = 0; k < kc; k++) {
            const T *s = g->a + (long)(pc + k) * g->acs + i00;
            T *d = bufa;
            for (int p = ip; p < ipe; p++) {
              int i0 = BP_(bp_gemm_panel)(g, p), mr = BP_(bp_gemm_panel)(g, p + 1) - i0;
              BP_(bp_copy_short)(mr, s + (i0 - i00), d + (long)k * mr);
              d += (long)mr * kc;
            }
          }
        }
        for (int p = ip; p < ipe && g->packa && !(g->acs != 1 && g->ars == 1); p++) {
          int i0 = BP_(bp_gemm_panel)(g, p), mr = BP_(bp_gemm_panel)(g, p + 1) - i0;
          const T *src = g->a + (long)i0 * g->ars + (long)pc * g->acs;
          if (g->acs == 1) {
            BP_(bp_pack_tr)(mr, mr, kc, src, g->ars, pa, mr);
          } else {
            for (int k = 0; k < kc; k++)
              for (int i = 0; i < mr; i++)
                pa[(long)k * mr + i] = src[(long)k * g->acs + (long)i * g->ars];
          }
          pa += (long)mr * kc;
        }
        for (int jr = 0; jr < nc; jr += NR) {
          int nr = nc - jr < NR ? nc - jr : NR;
          const T *pb = bufb + (long)jr * kc;
          long ldb = NR;
          if (!g->packb && nr == NR)
            pb = g->b + (long)pc * g->brs + (jc + jr), ldb = g->brs;
          pa = bufa;
          for (int p = ip; p < ipe; p++) {
            int i0 = BP_(bp_gemm_panel)(g, p), mr = BP_(bp_gemm_panel)(g, p + 1) - i0;
            T *c = g->c + (long)i0 * g->rsc + (long)(jc + jr) * g->csc;
            const T *a = g->packa ? pa : g->a + (long)i0 * g->ars + (long)pc * g->acs;
            long as = g->packa ? 0 : g->ars, ak = g->packa ? mr : g->acs;
            const T *bs = NULL;
            if (bias && g->bt) bs = bias + i0;
            else if (bias && nr == NR) bs = bias + jc + jr;
            else if (bias) { /* the last panel: the bias padded to NR */
              for (int j = 0; j < NR; j++) bpad[j] = j < nr ? bias[jc + jr + j] : 0;
              bs = bpad;
            }
            if (nr == NR && g->csc == 1) {
              /* the next tile's lines of C, for writing: they come in while this
               * tile's sums run, not when it is stored (in a training step a
               * product's C is cold: +4-5% on 512x512x128, bench/gemm_cold.c) */
              if (!g->nt) {
                int pn = p + 1 < ipe ? p + 1 : ip;
                long in = BP_(bp_gemm_panel)(g, pn), mn = BP_(bp_gemm_panel)(g, pn + 1) - in;
                const T *cn = g->c + in * g->rsc + (jc + jr + (p + 1 < ipe ? 0 : NR));
                if (p + 1 < ipe || jr + NR < nc)
                  for (long i = 0; i < mn; i++)
                    for (int l = 0; l < NR * (int)sizeof(T); l += 64)
                      BP_PREFETCHW((const char *)(cn + i * g->rsc) + l);
              }
              BP_(bp_ukr_any)(mr, kc, a, as, ak, pb, ldb, c, g->rsc, add, bs, g->bt, g->nt);
            } else {
              BP_(bp_ukr_any)(mr, kc, a, as, ak, pb, ldb, tile, NR, 0, bs, g->bt, 0);
              for (int i = 0; i < mr; i++)
                for (int j = 0; j < nr; j++) {
                  T *q = c + (long)i * g->rsc + (long)j * g->csc;
                  *q = add ? *q + tile[i * NR + j] : tile[i * NR + j];
                }
            }
            pa += (long)mr * kc;
          }
        }
      }
    }
  }
}
static void BP_(bp_gemm_job)(void *arg, int t, int nt);
/* the general path; bias (may be NULL, then with accumulate = 0): C = bias + product */
static void BP_(bp_gemm_gen)(int M, int N, int K, const T *A, int transa, const T *B,
                             int transb, T *C, int accumulate, const T *bias) {
  BP_(BpGemm) g;
  long ars = transa ? 1 : K, acs = transa ? M : 1;
  long brs = transb ? 1 : N, bcs = transb ? K : 1;
  const long NR = BP_(BP_NR);
  /* in FMA lanes: padded work either way, plus ~32 per element packed with a
   * stride, plus the tiles stored element by element, per k block: the last
   * column panel's (~32 each), the transposed product's every element (~48 the
   * first block, ~512 each further one: measured on Zen 4, x.W^T [256,512] K=128
   * ran at 70% transposed, A^T.B [1024,27] K=256 at 120%, [4096,27] K=1024 at 67%) */
  int nkb = (K + BP_KC - 1) / BP_KC;
  double wn = (double)M * ((N + NR - 1) / NR * NR) * K + (bcs != 1 ? 32.0 * K * N : 0)
              + 32.0 * nkb * M * (N % NR);
  double wt = (double)N * ((M + NR - 1) / NR * NR) * K + (ars != 1 ? 32.0 * K * M : 0)
              + (48.0 + 512.0 * (nkb - 1)) * M * N;
  g.K = K, g.acc = accumulate, g.bias = bias, g.bt = wt < wn;
  g.kb = (K + nkb - 1) / nkb;
  g.nt = BP_(BP_HAVE_STREAM) && !g.bt && !accumulate && K <= BP_KC
         && (double)M * N * sizeof(T) >= 8e6 && N % BP_(BP_NR) == 0
         && (uintptr_t)C % 64 == 0;
  if (wt < wn) { /* C^T[N,M] = op(B)^T op(A)^T */
    g.M = N, g.N = M;
    g.a = B, g.ars = bcs, g.acs = brs;
    g.b = A, g.brs = acs, g.bcs = ars;
    g.c = C, g.rsc = 1, g.csc = N;
  } else {
    g.M = M, g.N = N;
    g.a = A, g.ars = ars, g.acs = acs;
    g.b = B, g.brs = brs, g.bcs = bcs;
    g.c = C, g.rsc = N, g.csc = 1;
  }
  g.npanels = (g.M + BP_MR - 1) / BP_MR;
  /* few column panels: packing A would not pay, read it in place */
  g.packa = (g.N + NR - 1) / NR > 4;
  /* few row panels and rows of B contiguous: read B in place too -- unless long K
   * walks rows far apart (a page per k: packing is cheaper than the TLB misses) */
  g.packb = !(g.npanels <= 4 && g.bcs == 1 && (g.K <= BP_KC || g.brs * (long)sizeof(T) < 2048));
  g.pbase = g.M / g.npanels, g.pextra = g.M % g.npanels;
  int nt = bp_serial_ ? 1 : bp_nthreads_;
  /* from ~1 MFLOP (~10 us on one core) a second thread pays: [128,64] x [64,192]
   * took 30 us on one, 16-17 on two (scratch driver, operands written by the
   * caller just before) */
  if (nt > 1 && 2.0 * M * N * K >= 1e6) bp_parallel(BP_(bp_gemm_job), &g, nt);
  else BP_(bp_gemm_part)(&g, 0, g.npanels, 0, g.N);
  if (g.nt) BP_SFENCE();
}
BP_KERNEL void BP_(bp_gemm)(int M, int N, int K, const T *A, int transa, const T *B,
                            int transb, T *C, int accumulate) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0) {
    if (!accumulate) memset(C, 0, (size_t)M * N * sizeof(T));
    return;
  }
  if (BP_(bp_gemm_small)(M, N, K, A, transa, B, transb, C, accumulate, NULL)) return;
  BP_(bp_gemm_gen)(M, N, K, A, transa, B, transb, C, accumulate, NULL);
}
/* thread t of nt: a contiguous share of row panels, or of NR column panels */
static void BP_(bp_gemm_job)(void *arg, int t, int nt) {
  const BP_(BpGemm) *g = (const BP_(BpGemm) *)arg;
  int ncp = (g->N + BP_(BP_NR) - 1) / BP_(BP_NR);
  if (g->npanels >= ncp) {
    int p0 = (int)((long)g->npanels * t / nt), p1 = (int)((long)g->npanels * (t + 1) / nt);
    if (p0 < p1) BP_(bp_gemm_part)(g, p0, p1, 0, g->N);
  } else {
    int c0 = (int)((long)ncp * t / nt) * BP_(BP_NR);
    int c1 = (int)((long)ncp * (t + 1) / nt) * BP_(BP_NR);
    if (c1 > g->N) c1 = g->N;
    if (c0 < c1) BP_(bp_gemm_part)(g, 0, g->npanels, c0, c1);
  }
}

#undef T
