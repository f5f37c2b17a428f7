/* check_main.c: runs every registered Check suite; exit status = failures.
 * CK_RUN_SUITE / CK_RUN_CASE select a part, as usual with Check. */
#include "tests.h"

#include <dirent.h>
#include <ftw.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The sanitizer build's defaults.  The emitted models the tests dlopen keep
 * per-thread variables (their threads' scratch), so the process holds dynamic
 * TLS blocks; LeakSanitizer's exit scan guesses a block's layout from its
 * address (google/sanitizers #1322: a block 16 bytes into a page is taken for
 * glibc 2.19's) and, when the guess is wrong, its tracer dies on signal 11
 * after the case has passed.  Not intercepting __tls_get_addr is the known
 * remedy; the leak check still covers the heap, the stacks and static TLS. */
const char *__asan_default_options(void);
const char *__asan_default_options(void) { return "intercept_tls_get_addr=0"; }

static Suite *(*makers[64])(void);
static int nmakers;

void tests_register(Suite *(*make)(void)) {
  if (nmakers == (int)(sizeof makers / sizeof makers[0])) {
    fprintf(stderr, "too many suites\n");
    exit(2);
  }
  makers[nmakers++] = make;
}

static jmp_buf jb;

Graph *parse_text(const char *text) {
  if (setjmp(jb)) {
    error_catch(NULL);
    ck_abort_msg("unexpected spec error:\n%s", error_text());
  }
  error_catch(&jb);
  Graph *g = parse_spec(src_from_string("test.spec", text), NULL, 0);
  error_catch(NULL);
  return g;
}

const char *parse_error(const char *text) {
  static char keep[4096];
  if (setjmp(jb)) {
    error_catch(NULL);
    snprintf(keep, sizeof keep, "%s", error_text());
    return keep;
  }
  error_catch(&jb);
  parse_spec(src_from_string("test.spec", text), NULL, 0);
  error_catch(NULL);
  return "";
}

const char *error_pos(const char *report) {
  /* "file:LINE:COL: error: ..." */
  const char *p = strchr(report, ':');
  if (!p)
    return "";
  const char *q = strstr(p + 1, ": error");
  if (!q)
    return "";
  return arena_strndup(p + 1, (size_t)(q - p - 1));
}

const char *tests_tmpdir(const char *prefix) {
  const char *t = getenv("TMPDIR");
  char *d = arena_printf("%s/%s_XXXXXX", t && t[0] ? t : "/tmp", prefix);
  ck_assert_msg(mkdtemp(d) != NULL, "mkdtemp %s", d);
  return d;
}

bool parses_with(const char *name, const char *text, DimOverride *ovr, int novr) {
  static jmp_buf pj;
  for (int k = 0; k < novr; k++)
    ovr[k].used = false;
  if (setjmp(pj)) {
    error_catch(NULL);
    return false;
  }
  error_catch(&pj);
  parse_spec(src_from_string(name, text), ovr, novr);
  error_catch(NULL);
  return true;
}

int spec_small_dims(const char *path, DimOverride *ovr) {
  Graph *g = parse_spec(read_src(path), NULL, 0);
  long nparam = 0;
  for (int i = 0; i < g->nforward; i++)
    if (g->nodes[i]->op == OP_param)
      nparam += shape_numel(&g->nodes[i]->shape);
  if (nparam <= 50000 && g->nnodes <= 100)   /* big, or unrolled loops (rnn, gru) */
    return 0;
  static const struct { const char *name; long v; } small[] = {
    {"B", 3}, {"H", 11}, {"E", 5}, {"C", 12}, {"C2", 6}, {"NH", 3}, {"L", 2}, {"T", 5}};
  int n = 0;
  for (size_t k = 0; k < sizeof small / sizeof small[0]; k++)
    for (int d = 0; d < g->ndims; d++)
      if (strcmp(g->dims[d].name, small[k].name) == 0)
        ovr[n++] = (DimOverride){small[k].name, small[k].v, false};
  const char *text = read_src(path)->text;
  while (n > 0 && !parses_with(path, text, ovr, n))   /* T last: dropped first */
    n--;
  return n;
}

Graph *load_spec_with(const char *path, DimOverride *ovr, int novr) {
  for (int k = 0; k < novr; k++)
    ovr[k].used = false;
  return parse_spec(read_src(path), ovr, novr);
}

const char *specs_dir(void) {
  const char *d = getenv("BPGEN_SPECS");
  return d ? d : "specs";
}

int spec_paths(const char **paths, int max) {
  DIR *d = opendir(specs_dir());
  ck_assert_msg(d != NULL, "cannot open %s", specs_dir());
  int n = 0;
  struct dirent *de;
  while ((de = readdir(d)) && n < max) {
    size_t l = strlen(de->d_name);
    if (l > 5 && strcmp(de->d_name + l - 5, ".spec") == 0)
      paths[n++] = arena_printf("%s/%s", specs_dir(), de->d_name);
  }
  closedir(d);
  ck_assert_msg(n > 0, "no specs in %s", specs_dir());
  return n;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
  (void)st, (void)flag, (void)ftw;
  return remove(path);
}

int main(void) {
  if (nmakers == 0) {
    fprintf(stderr, "no suites registered\n");
    return 1;
  }
  /* one scratch directory for every test's files, removed at the end (a test
   * that fails mid-way leaves its files there, not in the system's) */
  const char *t = getenv("TMPDIR");
  char *scratch = arena_printf("%s/bpgen-tests-XXXXXX", t && t[0] ? t : "/tmp");
  if (!mkdtemp(scratch)) {
    perror(scratch);
    return 1;
  }
  setenv("TMPDIR", scratch, 1);
  SRunner *sr = srunner_create(makers[0]());
  for (int i = 1; i < nmakers; i++)
    srunner_add_suite(sr, makers[i]());
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  nftw(scratch, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
  return failed == 0 ? 0 : 1;
}
