/* test_cpu.c: the CPU level of bpgen's own kernels (runtime/kernels_cpu.c).
 * The choice BPGEN_CPU is given to: the best level by default, a lower one on
 * request, a higher one than the CPU runs or no level at all refused with a
 * message.  The level in use is one of those the CPU runs, and its kernels are
 * the ones a call by name reaches (x86-64: the trampolines jump to the chosen
 * table) and jit.c hands to tcc. */
#include "tests.h"
#include "kernels_cpu.h"

#include <stdlib.h>
#include <string.h>

#define BP_KERNELS_DECLARE_ONLY
#include "kernels.h"

START_TEST(pick_levels) {
  char err[256] = "";
  if (strcmp(bp_cpu_level(), "generic") == 0) { /* one plain build */
    ck_assert_int_eq(bp_cpu_pick(NULL, 0, err, sizeof err), 0);
    ck_assert_int_eq(bp_cpu_pick("avx2", 0, err, sizeof err), -1);
    ck_assert_msg(strstr(err, "BPGEN_CPU=avx2: not a level of this build (its levels: generic)"), "%s", err);
    return;
  }
  ck_assert_int_eq(bp_cpu_pick(NULL, 2, err, sizeof err), 2);
  ck_assert_int_eq(bp_cpu_pick("", 1, err, sizeof err), 1);
  ck_assert_int_eq(bp_cpu_pick("baseline", 2, err, sizeof err), 0);
  ck_assert_int_eq(bp_cpu_pick("avx2", 2, err, sizeof err), 1);
  ck_assert_int_eq(bp_cpu_pick("avx512", 2, err, sizeof err), 2);
  /* a CPU without AVX-512 (best: avx2) refuses avx512; one without AVX2 refuses avx2 */
  ck_assert_int_eq(bp_cpu_pick("avx512", 1, err, sizeof err), -1);
  ck_assert_msg(strstr(err, "BPGEN_CPU=avx512: this CPU lacks x86-64-v4: AVX-512"), "%s", err);
  ck_assert_int_eq(bp_cpu_pick("avx2", 0, err, sizeof err), -1);
  ck_assert_msg(strstr(err, "BPGEN_CPU=avx2: this CPU lacks x86-64-v3: AVX2, FMA"), "%s", err);
  ck_assert_int_eq(bp_cpu_pick("AVX2", 2, err, sizeof err), -1);
  ck_assert_msg(strstr(err, "not a level of this build (its levels: baseline, avx2, avx512)"), "%s", err);
}
END_TEST

/* the level in use is the last the CPU runs (BPGEN_CPU unset) or BPGEN_CPU's */
START_TEST(level_in_use) {
  const char *runs = bp_cpu_levels(), *want = getenv("BPGEN_CPU");
  const char *last = strrchr(runs, ' ') ? strrchr(runs, ' ') + 1 : runs;
  ck_assert_msg(strstr(runs, bp_cpu_level()) != NULL, "%s not among %s", bp_cpu_level(), runs);
  ck_assert_str_eq(bp_cpu_level(), want && *want ? want : last);
}
END_TEST

/* a kernel called by name runs the chosen level's code: the same bits as
 * calling the table's address (jit.c's), for a product that takes the
 * packed path (scratch of this thread) */
START_TEST(by_name_is_chosen) {
  enum { M = 40, N = 50, K = 700 };
  static float a[M * K], b[K * N], c1[M * N], c2[M * N];
  static unsigned char scratch[BP_WS_BYTES(4)];
  void *prev = bp_scratch_use(scratch);
  for (int i = 0; i < M * K; i++) a[i] = (float)((i * 7919L) % 1000) / 997.0f - 0.5f;
  for (int i = 0; i < K * N; i++) b[i] = (float)((i * 104729L) % 1000) / 991.0f - 0.5f;
  const void *const *k = bp_cpu_kernels();
  int n = 0;
  const void *gemm = NULL;
#define FIND(name) if (strcmp(#name, "bp_gemm_f32") == 0) gemm = k[n]; n++;
  BP_KERNEL_LIST(FIND)
#undef FIND
  ck_assert_ptr_nonnull(gemm);
  bp_gemm_f32(M, N, K, a, 0, b, 0, c1, 0);
  ((void (*)(int, int, int, const float *, int, const float *, int, float *, int))gemm)(M, N, K, a, 0, b, 0, c2, 0);
  ck_assert(memcmp(c1, c2, sizeof c1) == 0);
  bp_scratch_use(prev);
}
END_TEST

static Suite *make_suite(void) {
  Suite *s = suite_create("cpu");
  TCase *tc = tcase_create("cpu");
  tcase_add_test(tc, pick_levels);
  tcase_add_test(tc, level_in_use);
  tcase_add_test(tc, by_name_is_chosen);
  suite_add_tcase(s, tc);
  return s;
}
TESTS_REGISTER(make_suite)
