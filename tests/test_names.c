/* test_names.c: no spec name reaches the emitted C as something else.
 *
 * A spec may call its tensors anything the lexer takes: after the members the
 * emitter makes itself (t3, hp_sums, hp_xhat, bn9, lean, bad_index), after C
 * keywords and after the macros of the headers the emitted file includes
 * (NAN, NULL, unix, errno, M_PI).  Each must still be its own tensor: the
 * in-memory build and the gcc build pass the check against the reference
 * runtime, the table holds each name once, and a tensor's gradient name dx
 * is never a spec name (the parser refuses it with a located error).
 */
#include "tests.h"
#include "bp_runtime.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dlfcn.h>
#include <sys/stat.h>
#include <unistd.h>

/* Two batchnorms: hp (named, beside tensors named after its saved members)
 * and an unnamed one (beside bn<id> and t<id> names). */
static const char adversary[] =
  "dim B = 6\ndim D = 5\n"
  "input X : [B, D]\n"
  "param NAN : [D, D] ~ randn * 0.5\n"
  "param INFINITY : [1, D] ~ randn * 0.1 + 1\n"
  "param NULL : [1, D] ~ randn * 0.1\n"
  "param unix : [D, D] ~ randn * 0.5\n"
  "param __FILE__ : [D] ~ randn * 0.1\n"
  "param _Alignas : [D] ~ randn * 0.1\n"
  "hp = batchnorm(X @ NAN, INFINITY, NULL, eps=1e-5)\n"
  "hp_sums = tanh(hp) + __FILE__\n"
  "hp_xhat = hp_sums * 2\n"
  "hp_cal_m2 = hp_xhat @ unix\n"
  "hp_run_mean = batchnorm(hp_cal_m2, INFINITY, NULL, eps=1e-5)\n"
  "lean = tanh(hp_run_mean) + _Alignas\n"
  "bad_index = lean * hp_sums\n"
  "calib_pass = sigmoid(bad_index)\n"
  "t3 = calib_pass * 3\n"
  "bn11 = t3 - hp_xhat\n"
  "M_PI = bn11 * bn11\n"
  "errno = sum(M_PI, 1)\n"
  "SIZE_MAX = errno + 1\n"
  "BP_KERNEL = log(SIZE_MAX)\n"
  "real = mean(BP_KERNEL)\n"
  "loss = real * 1\n";

static Graph *adversary_graph(void) {
  Graph *g = parse_text(adversary);
  grad_build(g);
  return g;
}

START_TEST(names_check_in_memory) {
  for (int dt = 0; dt < 2; dt++) {
    Graph *g = adversary_graph();
    char *buf = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&buf, &len);
    int nfail = check_graphs(g, g, (DType)dt, 7, 0, out);
    fclose(out);
    ck_assert_msg(nfail == 0, "%s", buf);
    /* every spec tensor and its gradient is in the table, and each gradient row
     * names a spec tensor whose name does not start the next row */
    ck_assert_msg(strstr(buf, "\ndhp_sums ") && strstr(buf, "\ndNAN ") && strstr(buf, "\ndbad_index "), "%s", buf);
    free(buf);
  }
}
END_TEST

/* the gcc build: warning-free, and the same check on its gradients; its table
 * holds every name once with the shape of the spec's tensor */
START_TEST(names_gcc_build) {
  const char *dir = tests_tmpdir("names");
  for (int dt = 0; dt < 2; dt++) {
    Graph *g = adversary_graph();
    EmitOptions opt = {(DType)dt, "model", false, false, false};
    char *header;
    const char *src = emit_c(g, &opt, &header);
    write_text(arena_printf("%s/model.c", dir), src);
    write_text(arena_printf("%s/model.h", dir), header);
    const char *cmd = arena_printf("cd %s && gcc -std=c99 -O1 -Wall -Wextra -Werror -fPIC -shared -o m%d.so model.c "
                                   "-lm -lpthread > out.txt 2>&1", dir, dt);
    if (system(cmd) != 0)
      ck_abort_msg("%s\n%s", cmd, read_src(arena_printf("%s/out.txt", dir))->text);
    void *so = dlopen(arena_printf("%s/m%d.so", dir, dt), RTLD_NOW | RTLD_LOCAL);
    ck_assert_msg(so != NULL, "dlopen: %s", dlerror());
    const BpModel *m = dlsym(so, "model_model");
    ck_assert(m != NULL);
    for (int i = 0; i < m->ntensors; i++) {
      for (int j = 0; j < i; j++)
        ck_assert_msg(strcmp(m->tensors[i].name, m->tensors[j].name) != 0, "%s twice", m->tensors[i].name);
      Node *n = graph_find(g, m->tensors[i].name);
      if (n && m->tensors[i].kind != BP_STAT)
        ck_assert_msg(m->tensors[i].numel == (size_t)shape_numel(&n->shape), "%s: %zu elements, spec %ld",
                      m->tensors[i].name, m->tensors[i].numel, shape_numel(&n->shape));
    }
    void *st = calloc(1, m->state_size);
    char *buf = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&buf, &len);
    int nfail = check_model(g, m, st, false, 7, 0, out);
    fclose(out);
    ck_assert_msg(nfail == 0, "%s", buf);
    free(buf);
    free(st);
    dlclose(so);
  }
  ck_assert_int_eq(system(arena_printf("rm -rf %s", dir)), 0);
}
END_TEST

/* the gradient of x is dx: a tensor may not take that name, in either order */
START_TEST(gradient_names_refused) {
  static const struct {
    const char *spec, *pos, *msg;
  } cases[] = {
    {"dim N = 4\ninput X : [N]\nparam W : [N] ~ randn\nh = tanh(X * W)\ndh = h * W\nloss = sum(dh)\n", "5:1",
     "'dh' is the name of the gradient of 'h' (line 4)"},
    {"dim N = 4\ninput X : [N]\nparam W : [N] ~ randn\ndh = tanh(X * W)\nh = dh * W\nloss = sum(h)\n", "5:1",
     "the gradient of 'h' would be called 'dh', a tensor already defined at line 4"},
    {"dim N = 4\ninput X : [N]\nparam dW : [N] ~ randn\nparam W : [N] ~ randn\nloss = sum(X * W * dW)\n", "4:7",
     "the gradient of 'W' would be called 'dW'"},
    {"dim N = 4\ninput d : [N]\nparam dd : [N] ~ randn\nloss = sum(d * dd)\n", "3:7",
     "'dd' is the name of the gradient of 'd'"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    const char *r = parse_error(cases[i].spec);
    ck_assert_msg(strstr(r, cases[i].msg) != NULL, "case %zu: %s", i, r);
    ck_assert_str_eq(error_pos(r), cases[i].pos);
  }
  /* a dim is no tensor: dN beside N is fine, and so is a d-name of nothing */
  parse_text("dim N = 4\ndim dN = 2\ninput X : [N]\nparam dW2 : [N] ~ randn\nloss = sum(X * dW2)\n");
}
END_TEST

/* Every macro the emitted files see under gcc, clang and tcc (those present)
 * is one emit_reserved_name knows: a new header in the emitted C with macros
 * of its own fails here until scripts/c_names.sh lists it. */
START_TEST(macros_of_emitted_files_are_reserved) {
  const char *dir = tests_tmpdir("macros");
  const char *paths[64];
  int n = spec_paths(paths, 64), checked = 0;
  for (int i = 0; i < n; i++)
    for (int jit = 0; jit < 2; jit++) {
      Graph *g = parse_spec(read_src(paths[i]), NULL, 0);
      grad_build(g);
      EmitOptions opt = {DT_F32, "model", jit, false, false};
      write_text(arena_printf("%s/m.c", dir), jit ? trainer_source(g, &opt) : emit_c(g, &opt, NULL));
      static const char *const ccs[] = {"gcc -std=c99", "gcc -std=gnu11 -march=native", "clang -std=c99",
                                        "tcc"};
      for (size_t c = 0; c < sizeof ccs / sizeof ccs[0]; c++) {
        const char *cc = ccs[c];
        if (system(arena_printf("command -v %.*s >/dev/null", (int)strcspn(cc, " "), cc)) != 0)
          continue;
        const char *cmd = arena_printf("cd %s && %s -dM -E m.c 2>/dev/null | sed -n 's/^#define \\([A-Za-z][A-Za-z0-9_]*\\).*/\\1/p'"
                                       " > names.txt", dir, cc);
        ck_assert_int_eq(system(cmd), 0);
        SrcFile *f = read_src(arena_printf("%s/names.txt", dir));
        for (const char *p = f->text; *p;) {
          size_t l = strcspn(p, "\n");
          const char *name = arena_strndup(p, l);
          ck_assert_msg(emit_reserved_name(name), "%s (%s, %s): macro %s is not reserved", paths[i], cc,
                        jit ? "trainer" : "model", name);
          checked++;
          p += l + (p[l] != 0);
        }
      }
    }
  ck_assert_int_gt(checked, 100);
  ck_assert_int_eq(system(arena_printf("rm -rf %s", dir)), 0);
}
END_TEST

/* A spec's path reaches the emitted C in comments and #line strings: a path
 * that closes a comment, or ends a string through a trigraph, stays text
 * (the file builds warning-free and defines no symbol from the path). */
START_TEST(paths_stay_text) {
  const char *dir = tests_tmpdir("paths");
  static const char *const names[] = {"a*/ int injected_by_path; /*x.spec", "q?\?/\" int injected_by_path; //.spec",
                                      "nl\nint injected_by_path;\n.spec", "back\\\" int injected_by_path; \".spec"};
  const char *spec = read_src(arena_printf("%s/makemore.spec", specs_dir()))->text;
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
    const char *sub = arena_printf("%s/d%zu", dir, i);
    ck_assert_int_eq(mkdir(sub, 0700), 0);
    const char *path = arena_printf("%s/%s", sub, names[i]);
    char *slash = strrchr(names[i], '/');   /* names with '/' need their directories */
    if (slash) {
      char *d = arena_printf("%s/%.*s", sub, (int)(slash - names[i]), names[i]);
      ck_assert_int_eq(system(arena_printf("mkdir -p '%s'", d)), 0);
    }
    write_text(path, spec);
    Graph *g = parse_spec(read_src(path), NULL, 0);
    grad_build(g);
    EmitOptions opt = {DT_F32, "model", false, false, false};
    char *header;
    write_text(arena_printf("%s/model.c", sub), emit_c(g, &opt, &header));
    write_text(arena_printf("%s/model.h", sub), header);
    const char *cmd = arena_printf("cd %s && gcc -std=c99 -Wall -Wextra -Werror -c model.c > out.txt 2>&1 && "
                                   "! nm model.o | grep -q injected", sub);
    if (system(cmd) != 0)
      ck_abort_msg("path %s: %s", names[i], read_src(arena_printf("%s/out.txt", sub))->text);
  }
  ck_assert_int_eq(system(arena_printf("rm -rf %s", dir)), 0);
}
END_TEST

/* The generator stays near-linear in the spec: one line of 4,000 terms gives
 * C a small multiple of the spec's size (every backward comment used to quote
 * the whole line: 198 MB), and 3,000 statements emit in a bounded size too. */
START_TEST(output_linear_in_spec) {
  Buf b = {0};
  buf_printf(&b, "dim N = 3\ninput X : [N]\nparam W : [N] ~ randn\nloss = sum(X * W");
  for (int i = 0; i < 4000; i++)
    buf_printf(&b, " + X * W");
  buf_printf(&b, ")\n");
  char *spec = buf_done(&b);
  Graph *g = parse_text(spec);
  grad_build(g);
  EmitOptions opt = {DT_F32, "model", true, false, false};
  size_t out = strlen(emit_c(g, &opt, NULL)), in = strlen(spec);
  ck_assert_msg(out < 400 * in, "%zu bytes of C from %zu bytes of spec", out, in);

  Buf c = {0};
  buf_printf(&c, "dim N = 3\ninput X : [N]\nparam W : [N] ~ randn\nt0 = X * W\n");
  for (int i = 1; i < 3000; i++)
    buf_printf(&c, "t%d = tanh(t%d) * W\n", i, i - 1);
  buf_printf(&c, "loss = sum(t2999)\n");
  spec = buf_done(&c);
  g = parse_text(spec);
  grad_build(g);
  out = strlen(emit_c(g, &opt, NULL)), in = strlen(spec);
  ck_assert_msg(out < 400 * in, "%zu bytes of C from %zu bytes of spec", out, in);
}
END_TEST

static Suite *make_suite(void) {
  Suite *s = suite_create("names");
  TCase *tc = tcase_create("names");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, names_check_in_memory);
  tcase_add_test(tc, names_gcc_build);
  tcase_add_test(tc, gradient_names_refused);
  tcase_add_test(tc, macros_of_emitted_files_are_reserved);
  tcase_add_test(tc, output_linear_in_spec);
  tcase_add_test(tc, paths_stay_text);
  suite_add_tcase(s, tc);
  return s;
}

TESTS_REGISTER(make_suite)
