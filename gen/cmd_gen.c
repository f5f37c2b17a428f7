/* cmd_gen.c: `bpgen SPEC -o model.c`: the model as a self-contained C99 file
 * for gcc, with its API header model.h written beside it (or, with
 * --trainer, the whole trainer program from templates/trainer.c).
 */
#include "bpgen.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char gen_usage[] =
  "usage: bpgen SPEC -o FILE.c [--dtype f32|f64] [--trainer] [--expand] [-D NAME=INT]... [--seed N]\n"
  "\n"
  "Writes the model as one self-contained C99 file (forward, backward, sgd step,\n"
  "inference forward, batchnorm calibration, a table of every tensor) and its API\n"
  "header FILE.h beside it.  `-o -` writes the C file to standard output only.\n"
  "  --dtype f32|f64  float type (default f32)\n"
  "  --trainer        write the complete trainer program instead (see bpgen run)\n"
  "  --expand         lower fused ops to primitives before differentiating\n"
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

/* FILE.c -> FILE.h; anything else gets .h appended. */
static const char *header_path(const char *out) {
  size_t n = strlen(out);
  if (n > 2 && strcmp(out + n - 2, ".c") == 0)
    return arena_printf("%.*s.h", (int)(n - 2), out);
  return arena_printf("%s.h", out);
}

int cmd_gen(int argc, char **argv) {
  Cli c;
  cli_init(&c, DT_F32);
  bool trainer = false;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      fputs(gen_usage, stdout);
      return 0;
    }
    if (strcmp(argv[i], "--trainer") == 0)
      trainer = true;
    else if (!cli_common(&c, argc, argv, &i))
      cli_unknown("bpgen", argv[i]);
  }
  if (!c.spec)
    error_plain("no spec file given (see bpgen --help)");
  if (!c.out)
    error_plain("no output file: use -o FILE.c (or -o - for standard output)");
  Graph *g = cli_load(&c);
  grad_build(g);
  EmitOptions opt = {c.dtype, stem_ident(c.spec), false, trainer};
  const char *text, *header = NULL;
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
    write_text(header_path(c.out), header);
  return 0;
}
