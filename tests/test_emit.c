/* test_emit.c: the emitted C as text and as a translation unit: every spec in
 * specs/ compiles warning-free with gcc and clang -std=c99 -O2 -Wall -Wextra
 * -Werror and with tcc, model and trainer, in f32 and f64, and the header from
 * a user's C and C++ file; each build's gradients pass the check; the gcc
 * build agrees with the in-memory build; blocks carry #line and the lecture's
 * math; no globals.
 */
#include "tests.h"
#include "bp_runtime.h"
#define BP_KERNELS_DECLARE_ONLY
#include "kernels.h"

#include <dirent.h>
#include <dlfcn.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char tmpdir[4096];

static void setup(void) {
  snprintf(tmpdir, sizeof tmpdir, "%s", tests_tmpdir("emit"));
}

static void teardown(void) {
  if (system(arena_printf("rm -rf '%s'", tmpdir)) != 0)
    fprintf(stderr, "could not remove %s\n", tmpdir);
}

/* Runs a shell command; fails with its output when it exits nonzero. */
static void run(const char *cmd) {
  char *full = arena_printf("( %s ) > %s/out.txt 2>&1", cmd, tmpdir);
  if (system(full) != 0) {
    SrcFile *f = read_src(arena_printf("%s/out.txt", tmpdir));
    ck_abort_msg("%s\n%.3000s", cmd, f->text);
  }
}

static Graph *load_spec(const char *path) {
  Graph *g = parse_spec(read_src(path), NULL, 0);
  grad_build(g);
  return g;
}

static const char *emit(Graph *g, DType dt, const char *prefix, bool jit, char **header) {
  EmitOptions opt = {dt, prefix, jit, false, false};
  return emit_c(g, &opt, header);
}


static const char gcc_flags[] = "gcc -std=c99 -O2 -Wall -Wextra -Werror";

/* The model of a gcc-built shared object (model_model) against the reference
 * runtime, all its gradients (lean off); `what` names it in a failure. */
static void check_so(Graph *g, const char *path, const char *what) {
  void *so = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  ck_assert_msg(so != NULL, "dlopen: %s", dlerror());
  const BpModel *m = dlsym(so, "model_model");
  ck_assert(m != NULL && m->set_lean != NULL);
  void *st = calloc(1, m->state_size);
  char *buf = NULL;
  size_t len = 0;
  FILE *out = open_memstream(&buf, &len);
  int nfail = check_model(g, m, st, false, 2147483647u, 0, out);
  fclose(out);
  ck_assert_msg(nfail == 0, "the build of %s:\n%s", what, buf);
  free(buf);
  free(st);
  dlclose(so);
}

/* The compilers the emitted C is promised to build with, warnings as errors;
 * each builds every emitted file: the model with -O2 (its build runs), the
 * trainer as the README builds it (no -O). */
static const struct {
  const char *name, *cc;
  bool cxx;   /* g++ links its objects (tcc's want tcc's own libtcc1.a) */
} compilers[] = {
  {"gcc", "gcc -std=c99 -Wall -Wextra -Werror", true},
  {"clang", "clang -std=c99 -Wall -Wextra -Werror", true},
  {"tcc", "tcc -Wall -Werror", false},   /* no __thread, no atomics: the kernels' one-thread path */
};

/* every spec, f32 and f64, with compiler _i: the file alone, a user's C file
 * and a C++ file (g++) with the header, the gcc build's gradients against the
 * reference runtime (the in-memory build runs gcc-compiled kernels where the
 * file has its own loops: this covers the loops a learner reads), and the
 * trainer program (--trainer) */
START_TEST(every_compiler_builds_every_spec) {
  const char *name = compilers[_i].name, *cc = compilers[_i].cc;
  const char *paths[64];
  int n = spec_paths(paths, 64);
  ck_assert_int_gt(n, 0);
  write_text(arena_printf("%s/user.c", tmpdir),
             "#include \"model.h\"\n#include <stdlib.h>\n"
             "int main(void) {\n  model_state *s = calloc(1, sizeof *s);\n  model_init(s, 1);\n"
             "  double l = model_forward(s);\n  model_backward(s);\n  model_sgd_step(s, 0.1);\n"
             "  l += model_model.forward(s);\n  free(s);\n  return l == l ? 0 : 1;\n}\n");
  /* C++ calls the C functions by their C names (extern "C" in the header) */
  write_text(arena_printf("%s/user.cpp", tmpdir),
             "#include \"model.h\"\n#include <cstdlib>\n"
             "int main() {\n  model_state *s = static_cast<model_state *>(std::calloc(1, sizeof *s));\n"
             "  model_init(s, 1);\n  double l = model_forward(s);\n  model_backward(s);\n"
             "  l += model_model.forward(s);\n  std::free(s);\n  return l == l ? 0 : 1;\n}\n");
  for (int i = 0; i < n; i++)
    for (int dt = 0; dt < 2; dt++) {
      const char *what = arena_printf("%s (%s, %s)", paths[i], dt ? "f64" : "f32", name);
      char *header;
      DimOverride ovr[8];
      int novr = spec_small_dims(paths[i], ovr);
      Graph *g = load_spec_with(paths[i], ovr, novr);
      grad_build(g);
      const char *src = emit(g, (DType)dt, "model", false, &header);
      write_text(arena_printf("%s/model.c", tmpdir), src);
      write_text(arena_printf("%s/model.h", tmpdir), header);
      /* ... and no thread-local array (kernels.h "scratch"): .tbss of a few bytes at most */
      run(arena_printf("cd %s && %s -O2 -fPIC -c model.c && %s -c user.c && %s -o user user.o model.o -lm -lpthread"
                       " && ./user && %s -shared -o model%d.so model.o -lm -lpthread"
                       " && size -A model.o | awk '$1 == \".tbss\" && $2 > 64 {print; bad = 1} END {exit bad}'",
                       tmpdir, cc, cc, cc, cc, i * 2 + dt));
      if (compilers[_i].cxx)
        run(arena_printf("cd %s && g++ -Wall -Wextra -Werror -c user.cpp -o usercc.o"
                         " && g++ -o usercc usercc.o model.o -lm -lpthread && ./usercc", tmpdir));
      check_so(g, arena_printf("%s/model%d.so", tmpdir, i * 2 + dt), what);
      EmitOptions topt = {(DType)dt, "model", false, true, false};
      write_text(arena_printf("%s/train.c", tmpdir), trainer_source(g, &topt));
      run(arena_printf("cd %s && %s -o train train.c -lm -lpthread", tmpdir, cc));
    }
}
END_TEST

/* a layer big enough for bp_bnlayer (plan_layers), inline in the file, with
 * compiler _i: it builds warning-free and its gradients (all written: lean off)
 * pass the check, f32 and f64; H = 300 ends in a partial block of columns */
START_TEST(every_compiler_builds_a_layer) {
  DimOverride ovr[2] = {{"B", 256, false}, {"H", 300, false}};
  for (int dt = 0; dt < 2; dt++) {
    Graph *g = parse_spec(read_src(arena_printf("%s/makemore.spec", specs_dir())), ovr, 2);
    grad_build(g);
    const char *src = emit(g, (DType)dt, "model", false, NULL);
    ck_assert_msg(strstr(src, "\n  bp_bnlayer_fwd_f") && strstr(src, "\n  bp_bnlayer_bwd_f"), "no layer call");
    write_text(arena_printf("%s/layer.c", tmpdir), src);
    /* f32: the AVX-512/AVX2 kernels where there are */
    const char *arch = !dt && strcmp(compilers[_i].name, "tcc") != 0 ? "-march=native" : "";
    run(arena_printf("cd %s && %s -O2 %s -fPIC -shared -o layer%d.so layer.c -lm -lpthread", tmpdir,
                     compilers[_i].cc, arch, dt));
    check_so(g, arena_printf("%s/layer%d.so", tmpdir, dt),
             arena_printf("the layer (%s, %s)", dt ? "f64" : "f32", compilers[_i].name));
  }
}
END_TEST

/* the gcc build and the in-memory build give the same loss and gradients
 * (f64: the kernels may block sums differently, so to rounding) */
START_TEST(gcc_build_agrees_with_jit) {
  const char *path = arena_printf("%s/makemore.spec", specs_dir());
  Graph *g = load_spec(path);
  char *header;
  write_text(arena_printf("%s/model.c", tmpdir), emit(g, DT_F64, "model", false, &header));
  write_text(arena_printf("%s/model.h", tmpdir), header);
  write_text(arena_printf("%s/user.c", tmpdir),
             "#include \"model.h\"\n#include <stdio.h>\n#include <stdlib.h>\n"
             "int main(void) {\n  model_state *s = calloc(1, sizeof *s);\n  model_init(s, 5);\n"
             "  for (int i = 0; i < 96; i++) s->X[i] = (i * 11) % 27;\n"
             "  for (int i = 0; i < 32; i++) s->Y[i] = (i * 3) % 27;\n"
             "  printf(\"%.17g\\n\", model_forward(s));\n  model_backward(s);\n"
             "  for (int i = 0; i < 1920; i++) printf(\"%.17g\\n\", s->dW1[i]);\n  free(s);\n  return 0;\n}\n");
  run(arena_printf("cd %s && %s -o user user.c model.c -lm && ./user > vals.txt", tmpdir, gcc_flags));
  Jit *j = jit_compile(emit(g, DT_F64, "model", true, NULL), path);
  const BpModel *m = jit_symbol(j, "model_model");
  ck_assert(m != NULL);
  char *st = calloc(1, m->state_size);
  const BpTensor *X = NULL, *Y = NULL, *dW1 = NULL;
  for (int i = 0; i < m->ntensors; i++) {
    const char *nm = m->tensors[i].name;
    if (!strcmp(nm, "X"))
      X = &m->tensors[i];
    if (!strcmp(nm, "Y"))
      Y = &m->tensors[i];
    if (!strcmp(nm, "dW1"))
      dW1 = &m->tensors[i];
  }
  ck_assert(X && Y && dW1);
  m->init(st, 5);
  for (int i = 0; i < 96; i++)
    ((int32_t *)(st + X->offset))[i] = (i * 11) % 27;
  for (int i = 0; i < 32; i++)
    ((int32_t *)(st + Y->offset))[i] = (i * 3) % 27;
  double loss = m->forward(st);
  m->backward(st);
  FILE *f = fopen(arena_printf("%s/vals.txt", tmpdir), "r");
  ck_assert(f != NULL);
  double v, maxd = 0;
  ck_assert(fscanf(f, "%lf", &v) == 1);
  ck_assert_msg(fabs(v - loss) <= 1e-12, "loss gcc %.17g jit %.17g", v, loss);
  for (int i = 0; i < 1920; i++) {
    ck_assert(fscanf(f, "%lf", &v) == 1);
    double d = fabs(v - ((double *)(st + dW1->offset))[i]);
    maxd = d > maxd ? d : maxd;
  }
  fclose(f);
  ck_assert_msg(maxd <= 1e-12, "dW1 gcc vs jit: maxdiff %g", maxd);
  free(st);
  jit_free(j);
}
END_TEST

/* gpt2.spec with T = 40 (attention's blocks of 32 and a partial one): the
 * schedule folds the scaling into the causal softmax and its backward, makes
 * q·kᵀ and datt in the softmax's (backward's) memory and runs the per-head
 * products by blocks; the gcc file built with the kernels' flags gives the
 * in-memory build's loss and gradients bit for bit, lean (datt not made: its
 * lower triangle made in ds's rows) the same params' grads, 2 threads too */
static const BpTensor *find_t(const BpModel *m, const char *name) {
  const BpTensor *t = bp_find_tensor(m, name, -1);
  ck_assert_msg(t != NULL, "no tensor %s", name);
  return t;
}
static double gpt2_step(const BpModel *m, char *st, int lean, int threads) {
  m->init(st, 7);
  int32_t *X = (int32_t *)(st + find_t(m, "X")->offset), *Y = (int32_t *)(st + find_t(m, "Y")->offset);
  for (int i = 0; i < 3 * 40; i++)
    X[i] = (i * 7 + i / 3) % 11, Y[i] = (i * 5 + 1) % 11;
  m->set_lean(st, lean);
  bp_set_threads(threads);
  double l = m->forward(st);
  m->backward(st);
  bp_set_threads(1);
  return l;
}
START_TEST(attention_builds_agree) {
  DimOverride ovr[] = {{"B", 3, false}, {"T", 40, false}, {"maxT", 40, false}, {"V", 11, false},
                       {"Vp", 16, false}, {"L", 2, false}, {"NH", 3, false}, {"C", 12, false}};
  Graph *g = load_spec_with(arena_printf("%s/gpt2.spec", specs_dir()), ovr, 8);
  grad_build(g);
  const char *p = plan_text(g);
  ck_assert_msg(strstr(p, "{SCORES att_0 ") && strstr(p, " datt_0}") && strstr(p, "{SCORES_BWD ") &&
                strstr(p, "{GEMM_TRI_A ") && strstr(p, "{SWAP_SLICE q_0 ") &&
                strstr(p, "{CAT_PARTS dqkv_1 dq_1^T dk_1^T dv_1^T}") && strstr(p, "{LN_BWD_ADD dx_0 ") &&
                strstr(p, "{ADD_LN t"), "%s", p);
  const char *src = emit(g, DT_F32, "model", false, NULL), *jsrc = emit(g, DT_F32, "model", true, NULL);
  for (int k = 0; k < 2; k++) {
    const char *t = k ? jsrc : src;
    ck_assert(strstr(t, "\n  bp_causal_scores_f32(") && strstr(t, "\n  bp_causal_scores_bwd_f32(") &&
              strstr(t, "s->lean ? NULL : s->datt_0, ") && strstr(t, "\n  bp_gemm_batch_f32(") &&
              strstr(t, ", 2, 0);") &&
              !strstr(t, "exp(x[j] - m)"));
  }
  write_text(arena_printf("%s/attn.c", tmpdir), src);
  run(arena_printf("cd %s && gcc -std=c99 -O3 -march=native -ffp-contract=off -fno-math-errno -fPIC -shared "
                   "-o attn.so attn.c -lm -lpthread", tmpdir));
  void *so = dlopen(arena_printf("%s/attn.so", tmpdir), RTLD_NOW | RTLD_LOCAL);
  ck_assert_msg(so != NULL, "dlopen: %s", dlerror());
  const BpModel *mg = dlsym(so, "model_model");
  Jit *j = jit_compile(jsrc, "gpt2.spec");
  const BpModel *mj = jit_symbol(j, "model_model");
  ck_assert(mg && mj && mg->state_size == mj->state_size);
  char *a = calloc(1, mj->state_size), *b = calloc(1, mj->state_size);
  size_t gbytes = (size_t)mj->nparam * 4;
  double la = gpt2_step(mg, a, 0, 1), lb = gpt2_step(mj, b, 0, 1);
  ck_assert_msg(la == lb, "loss gcc %.9g jit %.9g", la, lb);
  ck_assert_msg(memcmp(a + mg->grad_offset, b + mj->grad_offset, gbytes) == 0, "gcc and jit grads differ");
  const BpTensor *datt = find_t(mj, "datt_0");
  ck_assert(memcmp(a + datt->offset, b + datt->offset, (size_t)datt->numel * 4) == 0);
  for (int k = 0; k < 2; k++) {   /* lean; 2 threads */
    double lc = gpt2_step(mj, a, !k, k ? 2 : 1);
    ck_assert_msg(lc == lb, "%s: loss %.9g vs %.9g", k ? "threads" : "lean", lc, lb);
    ck_assert_msg(memcmp(a + mj->grad_offset, b + mj->grad_offset, gbytes) == 0, "%s: grads differ",
                  k ? "2 threads" : "lean");
  }
  free(a), free(b);
  jit_free(j);
  dlclose(so);
}
END_TEST

/* the backward pass reads like the lecture's, in the notation of ops.h (the
 * math column `bpgen explain` prints too) */
START_TEST(comments_and_line_directives) {
  const char *path = arena_printf("%s/makemore.spec", specs_dir());
  const char *src = emit(load_spec(path), DT_F32, "makemore", false, NULL);
  static const char *const want[] = {
    "/* dW2 = hᵀ · dlogits",
    "/* dh = dlogits · W2ᵀ",
    "/* dhpreact = (1 − h²) ⊙ dh",
    "(from line 24: logits  = h @ W2 + b2)",
    "/* dlogits = (softmax(logits) − onehot(Y)) / 32",
    "/* dC = onehot(X)ᵀ · demb   (scatter-add)",
    "/* dhprebn = bngain·rstd/32 · (32·dhpreact − Σ_b dhpreact − 32/31·x̂ ⊙ Σ_b(dhpreact ⊙ x̂))",
    "/* loss = cross_entropy(logits, Y) = −(1/n) Σ_i log softmax(logits)[i, Y[i]], n = #(Y ≠ -100)",
    "#line 23 \"",
    "bp_gemm_bias_f32(32, 64, 30, s->embcat, 0, s->W1, 0,",
    "double makemore_forward(makemore_state *s)",
    "void makemore_backward(makemore_state *s)",
    "const BpModel makemore_model = {",
  };
  for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
    ck_assert_msg(strstr(src, want[i]) != NULL, "emitted code lacks \"%s\"", want[i]);
  /* the backward pass never reads the gradient of a param it has not written */
  const char *bwd = strstr(src, "void makemore_backward");
  ck_assert(bwd != NULL);
  ck_assert(strstr(bwd, "s->dW1[") == NULL || strstr(bwd, "dW1 = ") < strstr(bwd, "s->dW1["));
}
END_TEST

/* a reshape is no copy: makemore's MLP gathers its embeddings straight into
 * emb, and the backward's reshapes of emb and demb read them in place (2 MB
 * each, 13% of a step when copied) */
START_TEST(reshape_shares_memory) {
  const char *src = emit(load_spec(arena_printf("%s/makemore_mlp.spec", specs_dir())), DT_F32, "mm", true, NULL);
  ck_assert_msg(strstr(src, "(the same memory)") != NULL, "no shared reshape");
  ck_assert_msg(strstr(src, "memcpy(s->") == NULL, "a copy is left:\n%.300s", strstr(src, "memcpy(s->"));
  ck_assert_msg(strstr(src, "s->emb))") || strstr(src, ", s->emb)"), "the gather does not write emb");
}
END_TEST

/* gpt2.spec's stacked params: each W[l] is a view of its block of W (no
 * copy in forward), each layer's dW[l] is written into its block of dW (the
 * joins of backward copy nothing); q, a slice across rows of qkv, is read in
 * place by its swap (plan_heads) */
START_TEST(stacked_params_in_place) {
  DimOverride ovr[2] = {{"L", 3, false}, {"C", 12, false}};
  Graph *g = load_spec_with(arena_printf("%s/gpt2.spec", specs_dir()), ovr, 2);
  grad_build(g);
  const char *src = emit(g, DT_F32, "g", false, NULL);   /* the file: its blocks carry comments */
  ck_assert_msg(strstr(src, "= qkvw[1:2]  (a view of its block: no copy)"), "qkvw[1] is copied");
  const char *d = strstr(src, "/* dqkvw = [");
  ck_assert_msg(d && strstr(d, "(both parts written in place: no copy)") < strchr(d, '\n'),
                "dqkvw is copied together:\n%.200s", d ? d : "(none)");
  ck_assert_msg(strstr(src, "/* q_0 = (qkv_0[..., 0:12] viewed as [4, 64, 4, 3])ᵀ  (axes 1 and 2 swapped, the "
                            "columns read in place: no slice of their own)"),
                "q is not swapped straight out of qkv");
  for (int jit = 0; jit < 2; jit++) {   /* both builds read and write the blocks in place */
    const char *s = emit(g, DT_F32, "g", jit, NULL);
    ck_assert_msg(strstr(s, "(s->qkvw + 432)"), "the layer-1 product does not read qkvw's block in place");
    ck_assert_msg(strstr(s, "(s->dqkvw + 432)"), "layer 1's dqkvw is not written into its block");
  }
}
END_TEST

/* f64 uses double math; the JIT file holds only kernel prototypes */
START_TEST(dtype_and_jit_variant) {
  const char *path = arena_printf("%s/makemore.spec", specs_dir());
  Graph *g = load_spec(path);
  const char *d = emit(g, DT_F64, "m", false, NULL), *f = emit(g, DT_F32, "m", true, NULL);
  ck_assert(strstr(d, "typedef double real;") && strstr(d, "bp_gemm_f64("));
  ck_assert(strstr(f, "typedef float real;") && strstr(f, "bp_gemm_f32("));
  /* h = tanh(hpreact) runs in batchnorm's output pass (plan_fusion) */
  ck_assert(strstr(d, "s->hpreact_xhat, s->hpreact, s->h, s->hpreact_sums);") &&
            strstr(f, "s->hpreact_xhat, s->hpreact, s->h, s->hpreact_sums);"));
  ck_assert(strstr(d, "bp_bn_fwd_f64(32, 64,") && strstr(f, "bp_bn_fwd_f32(32, 64,"));
  /* hprebn = embcat @ W1 + b1: one gemm with the bias, no product temporary */
  ck_assert(strstr(f, "bp_gemm_bias_f32(32, 64, 30, s->embcat, 0, s->W1, 0, s->b1, s->hprebn);"));
  ck_assert(strstr(f, "#define BP_KERNELS_DECLARE_ONLY") != NULL);
  /* both stand alone: the kernels' per-type bodies are pasted in, twice, not included */
  ck_assert(strstr(d, "#include \"") == NULL && strstr(f, "#include \"") == NULL);
  const char *body = strstr(d, "/* kernels_gemm.h:");
  ck_assert(body != NULL && strstr(body + 1, "/* kernels_gemm.h:") != NULL);
  ck_assert(strstr(d, "#define BP_S f32\n") && strstr(d, "#define BP_S f64\n"));
  /* the trainer, for gcc and for libtcc, too: runtime/npy_parse.h pasted in, framed by #line */
  for (int jit = 0; jit < 2; jit++) {
    EmitOptions topt = {DT_F32, "m", jit, false, false};
    const char *t = trainer_source(g, &topt);
    ck_assert_msg(strstr(t, "#include \"") == NULL, "the trainer includes a project file");
    const char *np = strstr(t, "#line 1 \"runtime/npy_parse.h\"\n/* npy_parse.h:");
    ck_assert_msg(np && strstr(np, "static inline int npy_header_parse("), "npy_parse.h not pasted");
    ck_assert(strstr(np, "#endif\n#line ") && strstr(np, " \"templates/trainer.c\"\n"));
  }
}
END_TEST

/* arrays of 8 MB or more (not params, not grads of params) start 64-byte aligned,
 * for the kernels' streaming stores; params and their grads stay contiguous */
START_TEST(big_arrays_aligned) {
  DimOverride ovr[2] = {{"H", 4096, false}, {"B", 1024, false}};
  Graph *g = parse_spec(read_src(arena_printf("%s/makemore.spec", specs_dir())), ovr, 2);
  grad_build(g);
  char *h = NULL;
  emit(g, DT_F32, "m", false, &h);
  static const char *aligned[] = {"hprebn[4194304] __attribute__((aligned(64)));",
                                  "dh[4194304] __attribute__((aligned(64)));",
                                  "hpreact_xhat[4194304] __attribute__((aligned(64)));"};
  for (int i = 0; i < 3; i++)
    ck_assert_msg(strstr(h, aligned[i]) != NULL, "no %s", aligned[i]);
  static const char *packed[] = {"  float W1[122880];", "  float dW1[122880];", "  float W2[110592];",
                                 "  float logits[27648];"};
  for (int i = 0; i < 4; i++)
    ck_assert_msg(strstr(h, packed[i]) != NULL, "no %s", packed[i]);
  /* the lecture's sizes: nothing aligned */
  Graph *g2 = load_spec(arena_printf("%s/makemore.spec", specs_dir()));
  emit(g2, DT_F32, "m", false, &h);
  ck_assert(strstr(h, "__attribute__((aligned") == NULL);
}
END_TEST

/* no globals: the model's symbols are functions and read-only tables (the
 * kernels' own buffers and thread count are the process's, not a model's) */
START_TEST(no_mutable_globals) {
  const char *path = arena_printf("%s/makemore.spec", specs_dir());
  write_text(arena_printf("%s/model.c", tmpdir), emit(load_spec(path), DT_F32, "model", false, NULL));
  /* objdump -t: a model_* symbol in .data or .bss would be mutable state */
  run(arena_printf("cd %s && %s -fno-pic -c model.c && objdump -t model.o | "
                   "awk '$NF ~ /^model_/ && ($(NF-2) == \".data\" || $(NF-2) == \".bss\") {print; bad=1} END {exit bad}'",
                   tmpdir, gcc_flags));
}
END_TEST

/* Issue 16: the kernels keep no thread-local arrays (their scratch is in the
 * state; a pool worker's is its own), so model.o has no .tbss beyond a pointer
 * or two, at -O0 and -O2; a thread with a 256 KiB stack runs a training step
 * (with 1.2 MiB of thread-local buffers pthread_create refused it: EINVAL); and
 * four threads with their own states, started together, each give the loss of
 * the main thread, bit for bit.  A layer big enough for the general gemm path
 * (packing into the scratch) and bp_bnlayer, with -march=native (the AVX-512
 * small path's B^T where there is AVX-512). */
START_TEST(threads_small_stack_no_tls) {
  DimOverride ovr[2] = {{"B", 256, false}, {"H", 300, false}};
  Graph *g = parse_spec(read_src(arena_printf("%s/makemore.spec", specs_dir())), ovr, 2);
  grad_build(g);
  char *header;
  write_text(arena_printf("%s/model.c", tmpdir), emit(g, DT_F32, "model", false, &header));
  write_text(arena_printf("%s/model.h", tmpdir), header);
  ck_assert_msg(strstr(header, "#define BPGEN_MODEL_SCRATCH_BYTES ") != NULL, "the header states no scratch size");
  write_text(arena_printf("%s/user.c", tmpdir),
             "#include \"model.h\"\n#include <pthread.h>\n#include <stdio.h>\n#include <stdlib.h>\n"
             "#include <string.h>\n"
             "static double steps(void) {\n"
             "  model_state *s = calloc(1, sizeof *s);\n  if (!s) return -1;\n  model_init(s, 7);\n"
             "  double l = 0;\n"
             "  for (int k = 0; k < 3; k++) {\n"
             "    for (size_t i = 0; i < sizeof s->X / sizeof s->X[0]; i++) s->X[i] = (int)((i * 11 + k) % 27);\n"
             "    for (size_t i = 0; i < sizeof s->Y / sizeof s->Y[0]; i++) s->Y[i] = (int)((i * 3 + k) % 27);\n"
             "    l = model_forward(s);\n    model_backward(s);\n    model_sgd_step(s, 0.1);\n  }\n"
             "  free(s);\n  return l;\n}\n"
             "static void *job(void *p) { *(double *)p = steps(); return NULL; }\n"
             "int main(void) {\n"
             "  if (sizeof(model_state) < BPGEN_MODEL_SCRATCH_BYTES) return puts(\"scratch not in the state\"), 1;\n"
             "  double ref = steps(), l[4];\n  pthread_t th[4];\n  pthread_attr_t a;\n"
             "  pthread_attr_init(&a);\n  pthread_attr_setstacksize(&a, 256 << 10);\n"
             "  for (int i = 0; i < 4; i++)\n"
             "    if (pthread_create(&th[i], &a, job, &l[i]) != 0) return puts(\"pthread_create failed\"), 1;\n"
             "  for (int i = 0; i < 4; i++) pthread_join(th[i], NULL);\n"
             "  for (int i = 0; i < 4; i++)\n"
             "    if (memcmp(&l[i], &ref, sizeof ref) != 0)\n"
             "      return printf(\"thread %d: loss %.17g, main thread %.17g\\n\", i, l[i], ref), 1;\n"
             "  printf(\"loss %.17g\\n\", ref);\n  return ref > 0 && ref < 10 ? 0 : 1;\n}\n");
  const char *tbss = "size -A model.o | awk '$1 == \".tbss\" && $2 > 64 {print; bad = 1} END {exit bad}'";
  run(arena_printf("cd %s && gcc -std=c99 -O0 -c model.c && %s", tmpdir, tbss));
  run(arena_printf("cd %s && gcc -std=c99 -O2 -march=native -Wall -Wextra -Werror -c model.c && %s && "
                   "gcc -std=c99 -O2 -c user.c && gcc -o user user.o model.o -lm -lpthread && ./user",
                   tmpdir, tbss));
}
END_TEST

/* the threads of this process (/proc/self/task) */
static int count_threads(void) {
  DIR *d = opendir("/proc/self/task");
  int n = 0;
  ck_assert(d != NULL);
  for (struct dirent *de; (de = readdir(d));)
    n += de->d_name[0] != '.';
  closedir(d);
  return n;
}
/* A model's kernel workers run the model's own code: unloading it (dlclose)
 * stops and joins them first, rather than leaving them asleep in code that is
 * no longer mapped. */
START_TEST(workers_stop_on_dlclose) {
  DimOverride ovr[] = {{"B", 256, false}, {"H", 512, false}};
  Graph *g = load_spec_with(arena_printf("%s/makemore.spec", specs_dir()), ovr, 2);
  write_text(arena_printf("%s/w.c", tmpdir), emit(g, DT_F32, "model", false, NULL));
  run(arena_printf("cd %s && gcc -std=c99 -O1 -fPIC -shared -o w.so w.c -lm -lpthread", tmpdir));
  int before = count_threads();
  void *so = dlopen(arena_printf("%s/w.so", tmpdir), RTLD_NOW | RTLD_LOCAL);
  ck_assert_msg(so != NULL, "dlopen: %s", dlerror());
  const BpModel *m = dlsym(so, "model_model");
  void (*set_threads)(int) = (void (*)(int))dlsym(so, "model_set_threads");
  ck_assert(m && set_threads);
  void *st = calloc(1, m->state_size);
  set_threads(3);
  m->forward(st);   /* [256, 30] x [30, 512]: big enough to be shared */
  m->backward(st);
  ck_assert_int_eq(count_threads(), before + 2);
  free(st);
  dlclose(so);
  ck_assert_int_eq(count_threads(), before);
}
END_TEST

static Suite *make_suite(void) {
  Suite *s = suite_create("emit");
  TCase *tc = tcase_create("emit");
  tcase_set_tags(tc, "slow"); /* scripts/test.sh runs the "slow" cases beside the rest */
  tcase_set_timeout(tc, 120);
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_loop_test(tc, every_compiler_builds_every_spec, 0, (int)(sizeof compilers / sizeof compilers[0]));
  tcase_add_test(tc, gcc_build_agrees_with_jit);
  tcase_add_loop_test(tc, every_compiler_builds_a_layer, 0, (int)(sizeof compilers / sizeof compilers[0]));
  tcase_add_test(tc, comments_and_line_directives);
  tcase_add_test(tc, attention_builds_agree);
  tcase_add_test(tc, reshape_shares_memory);
  tcase_add_test(tc, stacked_params_in_place);
  tcase_add_test(tc, dtype_and_jit_variant);
  tcase_add_test(tc, no_mutable_globals);
  tcase_add_test(tc, big_arrays_aligned);
  tcase_add_test(tc, threads_small_stack_no_tls);
  tcase_add_test(tc, workers_stop_on_dlclose);
  suite_add_tcase(s, tc);
  return s;
}
TESTS_REGISTER(make_suite)
