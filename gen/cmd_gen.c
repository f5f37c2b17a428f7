/* cmd_gen.c: `bpgen SPEC -o model.c`: the model as a self-contained C99 file
 * for gcc, with its API header model.h written beside it (or, with
 * --trainer, the whole trainer program from templates/trainer.c; with
 * --shared, a shared library built from the model by the system's compiler,
 * which python/bpgen_model.py loads through ctypes).
 */
#include "bpgen.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static const char gen_usage[] =
  "usage: bpgen SPEC -o FILE.c [--dtype f32|f64] [--trainer] [--expand] [--prefix NAME]\n"
  "                  [-D NAME=INT]... [--seed N]\n"
  "       bpgen SPEC --shared -o FILE.so [--dtype f32|f64] ...\n"
  "\n"
  "Writes the model as one self-contained C99 file (forward, backward, sgd step,\n"
  "inference forward, batchnorm calibration, a table of every tensor) and its API\n"
  "header beside it: FILE.h for -o FILE.c, FILE.cc or any other extension (-o FILE\n"
  "without one: FILE.h).  `-o -` writes the C file to standard output only.  The\n"
  "spec path in #line and comments is SPEC as given: the same command from the same\n"
  "directory writes the same bytes.\n"
  "  --dtype f32|f64  float type (default f32)\n"
  "  --trainer        write the complete trainer program instead (see bpgen run)\n"
  "  --sync-bn        batchnorm's batch statistics over the ranks of an MPI run\n"
  "                   (the trainer's --sync-bn; see bpgen run)\n"
  "  --shared         build a shared library instead, with $CC (default cc) -O2\n"
  "                   -shared -fPIC: python/bpgen_model.py loads it (ctypes + numpy)\n"
  "  --expand         lower fused ops to primitives before differentiating\n"
  "  --prefix NAME    prefix of every exported symbol, NAME_state, NAME_forward, ...\n"
  "                   (a C identifier; default: the spec's file name without its\n"
  "                   extension, other characters made '_')\n"
  "  -D NAME=INT      override a dim\n"
  "Build: gcc -std=c99 -O2 -c FILE.c; the kernels are inline; link with -lm -lpthread.\n";

/* The spec's file stem as a C identifier: "specs/makemore.spec" -> makemore. */
static const char *stem_ident(const char *path) {
  const char *base = strrchr(path, '/');
  base = base ? base + 1 : path;
  const char *dot = strrchr(base, '.');
  size_t n = dot && dot != base ? (size_t)(dot - base) : strlen(base);
  char *s = arena_strndup(base, n);
  for (char *c = s; *c; c++)
    if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || *c == '_' || (*c >= '0' && *c <= '9')))
      *c = '_';
  if (!*s || strcmp(s, "-") == 0 || strcmp(s, "_") == 0)
    return "model";
  if (*s >= '0' && *s <= '9')
    return arena_printf("m_%s", s);
  return s;
}

/* The header beside the C file: its extension, whatever it is, replaced by
 * .h (model.c, model.cc, model.inc -> model.h); a file name without one
 * (model, dir.d/model, .hidden) gets .h appended. */
static const char *header_path(const char *out) {
  const char *base = strrchr(out, '/');
  base = base ? base + 1 : out;
  const char *dot = strrchr(base, '.');
  size_t n = dot && dot != base ? (size_t)(dot - out) : strlen(out);
  return arena_printf("%.*s.h", (int)n, out);
}

/* --prefix: a C identifier that no symbol built from it makes reserved (C99
 * 7.1.3: no leading "__" or "_" plus a capital); bounded so that every name
 * stays far within what linkers and C compilers take. */
static const char *check_prefix(const char *s) {
  size_t n = strlen(s);
  bool ok = n > 0 && n <= 64 && !(*s >= '0' && *s <= '9');
  for (const char *c = s; ok && *c; c++)
    ok = (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || *c == '_' || (*c >= '0' && *c <= '9');
  if (!ok)
    error_usage("--prefix: '%s' is not a C identifier (letters, digits and '_', not starting with a digit, "
                "at most 64 characters)", s);
  if (s[0] == '_' && (s[1] == '_' || (s[1] >= 'A' && s[1] <= 'Z')))
    error_usage("--prefix: '%s' starts with '__' or '_' and a capital: such names are reserved to the C "
                "implementation", s);
  return s;
}

/* --shared: the names python/bpgen_model.py looks up, the same in every
 * library (a library is opened on its own, RTLD_LOCAL): the prefix of the
 * model's API functions, the state's size and the tensor table. */
static const char *shared_shim(const char *p) {
  return arena_printf(
    "\n/* --shared: entry points for ctypes (python/bpgen_model.py) */\n"
    "int bpgen_abi_version(void) { return 1; }\n"
    "const char *bpgen_prefix(void) { return \"%s\"; }\n"
    "size_t bpgen_state_size(void) { return sizeof(%s_state); }\n"
    "size_t bpgen_nparam(void) { return %s_model.nparam; }\n"
    "int bpgen_dtype(void) { return %s_model.dtype; }\n"
    "int bpgen_ntensors(void) { return %s_model.ntensors; }\n"
    "/* tensor i: its name; kind, dtype, rank, dims[BP_MAXRANK] and byte offset into the pointers */\n"
    "const char *bpgen_tensor(int i, int *kind, int *dtype, int *rank, int *dims, size_t *offset) {\n"
    "  if (i < 0 || i >= %s_model.ntensors) return 0;\n"
    "  const BpTensor *t = &%s_model.tensors[i];\n"
    "  *kind = t->kind, *dtype = t->dtype, *rank = t->rank, *offset = t->offset;\n"
    "  for (int k = 0; k < BP_MAXRANK; k++) dims[k] = t->dims[k];\n"
    "  return t->name;\n"
    "}\n", p, p, p, p, p, p, p);
}

/* Compiles the C text into the shared library out with $CC (one word; default
 * cc), from a temporary directory removed afterwards.  The compiler's own
 * messages go to stderr. */
static void build_shared(const char *out, const char *text) {
  const char *tmp = getenv("TMPDIR");
  char *dir = (char *)arena_printf("%s/bpgen-shared-XXXXXX", tmp && *tmp ? tmp : "/tmp");
  if (!mkdtemp(dir))
    error_plain("--shared: cannot make a temporary directory %s: %s", dir, strerror(errno));
  const char *src = arena_printf("%s/model.c", dir);
  FILE *f = fopen(src, "w");
  bool ok = f && fputs(text, f) >= 0;
  ok = f && fclose(f) == 0 && ok;
  const char *cc = getenv("CC");
  if (!cc || !*cc)
    cc = "cc";
  int status = -1;
  if (ok) {
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
      execlp(cc, cc, "-O2", "-shared", "-fPIC", "-o", out, src, "-lm", "-lpthread", (char *)NULL);
      fprintf(stderr, "bpgen: error: --shared: cannot run %s: %s\n", cc, strerror(errno));
      _exit(127);
    }
    if (pid < 0 || waitpid(pid, &status, 0) != pid)
      status = -1;
  }
  remove(src);
  rmdir(dir);
  if (!ok)
    error_plain("--shared: cannot write %s", src);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    error_plain("--shared: %s failed building %s (%s %d)", cc, out,
                WIFEXITED(status) ? "exit status" : "signal", WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
}

int cmd_gen(int argc, char **argv) {
  Cli c;
  cli_init(&c, DT_F32);
  bool trainer = false, shared = false, sync_bn = false;
  const char *prefix = NULL;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      fputs(gen_usage, stdout);
      return 0;
    }
    if (strcmp(argv[i], "--trainer") == 0)
      trainer = true;
    else if (strcmp(argv[i], "--shared") == 0)
      shared = true;
    else if (strcmp(argv[i], "--sync-bn") == 0)
      sync_bn = true;
    else if (strcmp(argv[i], "--prefix") == 0)
      prefix = check_prefix(cli_value(argc, argv, &i));
    else if (!cli_common(&c, argc, argv, &i))
      cli_unknown("bpgen", argv[i]);
  }
  if (!c.spec)
    error_usage("no spec file given (see bpgen --help)");
  if (!c.out)
    error_usage("no output file: use -o FILE.c (or -o - for standard output)");
  if (shared && trainer)
    error_usage("--shared and --trainer: give one (a library of the model, or the trainer program)");
  if (shared && strcmp(c.out, "-") == 0)
    error_usage("--shared builds a library: give -o FILE.so");
  const char *hpath = NULL;
  if (!trainer && !shared && strcmp(c.out, "-") != 0) {
    hpath = header_path(c.out);
    if (strcmp(hpath, c.out) == 0)
      error_usage("-o %s: the API header would be the same file; name the C file FILE.c", c.out);
  }
  Graph *g = cli_load(&c);
  grad_build(g);
  EmitOptions opt = {c.dtype, prefix ? prefix : stem_ident(c.spec), false, trainer, sync_bn};
  const char *text, *header = NULL;
  const char *pfx = opt.prefix;
  if (shared) {
    build_shared(c.out, arena_printf("%s%s", emit_c(g, &opt, NULL), shared_shim(pfx)));
    return 0;
  }
  if (trainer)
    text = trainer_source(g, &opt);
  else
    text = emit_c(g, &opt, (char **)&header);
  if (strcmp(c.out, "-") == 0) {
    fputs(text, stdout);
    return fflush(stdout) == 0 ? 0 : 1;
  }
  write_text(c.out, text);
  if (header)
    write_text(hpath, header);
  return 0;
}
