/* cli.c: the options every bpgen command shares, and loading the spec.
 *
 * Each command (cmd_*.c) walks its own argv, offering each argument to
 * cli_common() first; what is left is the command's own option or a mistake.
 * Before that, main() hands argv to cli_split_eq, which makes `--opt=value`
 * the two arguments `--opt` `value`, so every command takes both spellings;
 * a value that came from such a split and is not consumed as a value is
 * reported as "--opt takes no value".  Command-line mistakes exit with
 * status 2 (error_usage), failures with 1.
 */
#include "bpgen.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void cli_init(Cli *c, DType default_dtype) {
  memset(c, 0, sizeof *c);
  c->dtype = default_dtype;
  c->seed = 2147483647u;   /* the lecture's torch.Generator().manual_seed */
}

/* The values that cli_split_eq cut off "--opt=value", and their options. */
static const char **split_val, **split_opt;
static int nsplit;

char **cli_split_eq(int *argc, char **argv) {
  int n = 0;
  for (int i = 0; i < *argc; i++)
    n += strncmp(argv[i], "--", 2) == 0 && argv[i][2] && argv[i][2] != '=' && strchr(argv[i], '=');
  if (n == 0)
    return argv;
  char **out = arena_alloc(sizeof(char *) * (size_t)(*argc + n + 1));
  split_val = arena_alloc(sizeof(char *) * (size_t)n);
  split_opt = arena_alloc(sizeof(char *) * (size_t)n);
  int k = 0;
  for (int i = 0; i < *argc; i++) {
    const char *a = argv[i], *eq = strchr(a, '=');
    if (strncmp(a, "--", 2) != 0 || !a[2] || a[2] == '=' || !eq) {
      out[k++] = argv[i];
      continue;
    }
    out[k++] = arena_strndup(a, (size_t)(eq - a));
    out[k++] = (char *)eq + 1;
    split_val[nsplit] = eq + 1;
    split_opt[nsplit++] = out[k - 2];
  }
  out[k] = NULL;
  *argc = k;
  return out;
}

/* The option whose "--opt=value" gave the argument a, or NULL. */
static const char *split_from(const char *a) {
  for (int k = 0; k < nsplit; k++)
    if (split_val[k] == a)
      return split_opt[k];
  return NULL;
}

const char *cli_value(int argc, char **argv, int *i) {
  if (*i + 1 >= argc)
    error_usage("%s needs a value (see bpgen --help)", argv[*i]);
  return argv[++*i];
}

long cli_long(const char *opt, const char *s, long lo, long hi) {
  char *end;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (errno || end == s || *end || v < lo || v > hi)
    error_usage("%s: '%s' is not a whole number from %ld to %ld", opt, s, lo, hi);
  return v;
}

double cli_double(const char *opt, const char *s) {
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  if (errno || end == s || *end || v != v)
    error_usage("%s: '%s' is not a number", opt, s);
  return v;
}

void cli_unknown(const char *cmd, const char *arg) {
  /* "bpgen: error: check: ...", but not "bpgen: error: bpgen: ..." */
  const char *who = strcmp(cmd, "bpgen") == 0 ? "" : arena_printf("%s: ", cmd);
  const char *help = strcmp(cmd, "bpgen") == 0 ? "bpgen --help" : arena_printf("bpgen %s --help", cmd);
  const char *opt = split_from(arg);
  if (opt)
    error_usage("%s%s takes no value ('%s=%s'; see %s)", who, opt, opt, arg, help);
  if (arg[0] == '-')
    error_usage("%sunknown option '%s' (see %s)", who, arg, help);
  error_usage("%sunexpected argument '%s' (see %s)", who, arg, help);
}

static void add_override(Cli *c, const char *def) {
  const char *eq = strchr(def, '=');
  if (!eq || eq == def)
    error_usage("-D wants NAME=INT, got '%s'", def);
  if (c->novr == (int)(sizeof c->ovr / sizeof c->ovr[0]))
    error_usage("too many -D options");
  DimOverride *o = &c->ovr[c->novr++];
  o->name = arena_strndup(def, (size_t)(eq - def));
  o->value = cli_long("-D", eq + 1, 1, 1L << 30);
}

bool cli_common(Cli *c, int argc, char **argv, int *i) {
  const char *a = argv[*i];
  if (strcmp(a, "-o") == 0) {
    c->out = cli_value(argc, argv, i);
  } else if (strcmp(a, "--dtype") == 0) {
    const char *v = cli_value(argc, argv, i);
    if (strcmp(v, "f32") == 0)
      c->dtype = DT_F32;
    else if (strcmp(v, "f64") == 0)
      c->dtype = DT_F64;
    else
      error_usage("--dtype: '%s' is neither f32 nor f64", v);
    c->dtype_set = true;
  } else if (strcmp(a, "--seed") == 0) {
    const char *v = cli_value(argc, argv, i);
    char *end;
    errno = 0;
    unsigned long long s = strtoull(v, &end, 10);
    if (errno || end == v || *end || v[0] == '-')
      error_usage("--seed: '%s' is not a non-negative whole number", v);
    c->seed = s;
  } else if (strcmp(a, "-D") == 0) {
    add_override(c, cli_value(argc, argv, i));
  } else if (strncmp(a, "-D", 2) == 0 && a[2]) {
    add_override(c, a + 2);
  } else if (strcmp(a, "--expand") == 0) {
    c->expand = true;
  } else if ((a[0] != '-' || strcmp(a, "-") == 0) && !split_from(a)) {
    if (c->spec)
      return false;
    c->spec = a;
  } else {
    return false;
  }
  return true;
}

Graph *cli_load(Cli *c) {
  if (!c->spec)
    error_usage("no spec file given (see bpgen --help)");
  SrcFile *f = read_src(c->spec);
  Graph *g = parse_spec(f, c->ovr, c->novr);
  if (c->expand)
    g = expand_fused(g);
  return g;
}
