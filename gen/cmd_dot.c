/* cmd_dot.c: `bpgen dot SPEC [--backward] -o graph.dot|.svg|.png` -- the graph
 * as Graphviz DOT, rendered through the packaged `dot` command when asked for
 * a picture.
 *
 * Consumes the forward graph (and, with --backward, the nodes grad_build()
 * appended); produces one DOT digraph.  Each node shows its name if any, its
 * op, its shape and its spec line.  Leaves get their own styles (inputs blue
 * boxes, params yellow boxes, constants bare numbers), fused ops a double
 * outline, backward nodes red with dashed grey edges from the forward values
 * they read.  The one idea for the backward part: a gradient that receives
 * several contributions (a value used more than once) is summed by a chain of
 * add nodes grad_build() makes for that value -- those are drawn as
 * "+= (fan-out)" boxes, so the accumulation the lecture does with += is seen.
 */
#include "bpgen.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static const char usage[] =
  "usage: bpgen dot SPEC [--backward] [-D NAME=INT]... [--expand] [-o FILE]\n"
  "\n"
  "Writes the graph of SPEC as Graphviz DOT: every node with its op, shape and\n"
  "spec line; inputs, params and constants styled apart; fused ops (softmax,\n"
  "cross_entropy, batchnorm, layernorm) with a double outline.\n"
  "  --backward   add the backward graph (red): each gradient node, dashed edges\n"
  "               from the forward values it reads, and '+= (fan-out)' boxes where\n"
  "               the gradients of a value used several times are summed\n"
  "  -o FILE      FILE.dot or - writes DOT (the default: standard output);\n"
  "               FILE.svg or FILE.png renders it with Graphviz's dot command\n"
  "               (Debian package graphviz)\n";

static bool is_fused(OpKind op) {
  return op == OP_cross_entropy || op == OP_batchnorm || op == OP_layernorm || op == OP_softmax;
}

static const char *num_str(double v) {
  if (v == (long)v && v > -1e9 && v < 1e9)
    return arena_printf("%ld", (long)v);
  return arena_printf("%g", v);
}

/* The label's lines are joined by "\n" as DOT writes a line break. */
static const char *node_label(Node *n, const char *gname, bool fanout) {
  const char *shape = shape_str(&n->shape);
  const char *type = n->type == TY_INT ? "int " : "";
  const char *from = n->fwd && n->fwd->name ? arena_printf(" (from %s)", n->fwd->name)
                     : n->fwd ? arena_printf(" (from %s)", optab[n->fwd->op].name) : "";
  switch (n->op) {
  case OP_input: return arena_printf("%s\\ninput %s%s\\nline %d", n->name, type, shape, n->line);
  case OP_param: return arena_printf("%s\\nparam %s\\nline %d", n->name, shape, n->line);
  case OP_const: return num_str(n->num);
  default: break;
  }
  if (fanout)
    return arena_printf("%s += (fan-out)\\nadd %s\\nline %d%s", gname, shape, n->line, from);
  const char *op = optab[n->op].name;
  if (n->op == OP_sum || n->op == OP_mean || n->op == OP_max || n->op == OP_softmax)
    op = arena_printf("%s axis=%d", op, n->axis);
  else if (n->op == OP_pow)
    op = arena_printf("pow ^%s", num_str(n->num));
  else if (n->op == OP_matmul && (n->transa || n->transb))
    op = arena_printf("matmul%s%s", n->transa ? " aT" : "", n->transb ? " bT" : "");
  else if (n->op == OP_batchnorm && n->unbiased)
    op = "batchnorm (unbiased var)";
  if (is_fused(n->op))
    op = arena_printf("%s [fused]", op);
  const char *name = n->name ? arena_printf("%s = ", n->name) : gname ? arena_printf("%s = ", gname) : "";
  return arena_printf("%s%s\\n%s\\nline %d%s", name, op, shape, n->line, n->is_backward ? from : "");
}

char *dot_graph(Graph *g, bool backward) {
  int nn = backward ? g->nnodes : g->nforward;
  /* names of gradients: dX for the first named value (or param) whose grad it is */
  const char **gname = arena_alloc(sizeof(char *) * (size_t)g->nnodes);
  bool *fanout = arena_alloc(sizeof(bool) * (size_t)g->nnodes);
  if (backward) {
    for (int i = 0; i < g->nforward; i++) {
      Node *n = g->nodes[i];
      if (!n->grad)
        continue;
      if (n->name && !gname[n->grad->id])
        gname[n->grad->id] = arena_printf("d%s", n->name);
      /* the left-deep chain of adds grad_build made to sum n's contributions */
      for (Node *c = n->grad; c && c->op == OP_add && c->is_backward && c->fwd == n; c = c->in[0]) {
        fanout[c->id] = true;
        if (!gname[c->id])
          gname[c->id] = n->name ? arena_printf("d%s", n->name) : arena_printf("d(%s)", optab[n->op].name);
      }
    }
  }

  Buf t = {0};
  const char *title = g->file && g->file->name ? g->file->name : "spec";
  buf_printf(&t, "digraph \"");
  for (const char *p = title; *p; p++)
    buf_printf(&t, *p == '"' || *p == '\\' ? "\\%c" : "%c", *p);
  buf_printf(&t, "\" {\n");
  buf_printf(&t, "  rankdir=TB;\n  node [fontname=\"Helvetica\", fontsize=10];\n"
          "  edge [fontname=\"Helvetica\", fontsize=9];\n");
  for (int i = 0; i < nn; i++) {
    Node *n = g->nodes[i];
    const char *style;
    if (n->op == OP_const)
      style = n->is_backward ? "shape=plaintext, fontcolor=\"#990000\"" : "shape=plaintext";
    else if (n->op == OP_input)
      style = "shape=box, style=filled, fillcolor=\"#cfe2f3\"";
    else if (n->op == OP_param)
      style = "shape=box, style=\"filled,bold\", fillcolor=\"#ffe599\"";
    else if (fanout[i])
      style = "shape=box, style=\"filled,rounded,bold\", color=\"#990000\", fillcolor=\"#ea9999\"";
    else if (n->is_backward)
      style = is_fused(n->fwd ? n->fwd->op : OP_const) && n->op != OP_add
                ? "shape=ellipse, peripheries=2, style=filled, color=\"#990000\", fillcolor=\"#f4cccc\""
                : "shape=ellipse, style=filled, color=\"#990000\", fillcolor=\"#f4cccc\"";
    else if (is_fused(n->op))
      style = "shape=ellipse, peripheries=2, style=filled, fillcolor=\"#d9ead3\"";
    else
      style = n->name ? "shape=ellipse, style=filled, fillcolor=\"#eeeeee\"" : "shape=ellipse";
    const char *label = node_label(n, gname[i], fanout[i]);
    if (backward && n->op == OP_const && g->loss && n == g->loss->grad)   /* where backward starts */
      label = arena_printf("d%s = 1\\n(seed)", g->loss->name ? g->loss->name : "loss");
    buf_printf(&t, "  n%d [label=\"%s\", %s];\n", n->id, label, style);
  }
  for (int i = 0; i < nn; i++) {
    Node *n = g->nodes[i];
    for (int k = 0; k < MAXIN && n->in[k]; k++) {
      Node *a = n->in[k];
      if (!n->is_backward)
        buf_printf(&t, "  n%d -> n%d;\n", a->id, n->id);
      else if (a->is_backward)
        buf_printf(&t, "  n%d -> n%d [color=\"#cc0000\"%s];\n", a->id, n->id,
            fanout[i] ? ", label=\"+=\"" : "");
      else   /* a forward value the backward pass reads */
        buf_printf(&t, "  n%d -> n%d [style=dashed, color=\"#888888\"];\n", a->id, n->id);
    }
  }
  buf_printf(&t, "}\n");
  char *s = buf_done(&t);
  return s;
}

static bool ends_with(const char *s, const char *suffix) {
  size_t a = strlen(s), b = strlen(suffix);
  return a >= b && strcmp(s + a - b, suffix) == 0;
}

/* The dot program on PATH (BPGEN_DOT overrides, for tests), or NULL. */
static const char *find_dot(void) {
  const char *env = getenv("BPGEN_DOT");
  if (env && *env)
    return access(env, X_OK) == 0 ? env : NULL;
  const char *path = getenv("PATH");
  if (!path)
    path = "/usr/bin:/bin";
  for (const char *p = path; *p;) {
    const char *e = strchr(p, ':');
    size_t n = e ? (size_t)(e - p) : strlen(p);
    const char *cand = arena_printf("%.*s/dot", (int)n, n ? p : ".");
    if (access(cand, X_OK) == 0)
      return cand;
    p += n + (e != NULL);
  }
  return NULL;
}

/* Pipes text into `dot -T<fmt> -o out`. */
static void render(const char *text, const char *fmt, const char *out) {
  const char *dot = find_dot();
  if (!dot)
    error_plain("rendering %s needs Graphviz's dot command, which is not installed:\n"
                "  install the Debian package graphviz (apt-get install graphviz), or write DOT with -o graph.dot",
                out);
  int fd[2];
  if (pipe(fd) != 0)
    error_plain("pipe: %s", strerror(errno));
  fflush(NULL);
  pid_t pid = fork();
  if (pid < 0)
    error_plain("fork: %s", strerror(errno));
  if (pid == 0) {
    dup2(fd[0], 0);
    close(fd[0]);
    close(fd[1]);
    const char *targ = arena_printf("-T%s", fmt);
    execl(dot, "dot", targ, "-o", out, (char *)NULL);
    fprintf(stderr, "bpgen: error: cannot run %s: %s\n", dot, strerror(errno));
    _exit(127);
  }
  close(fd[0]);
  size_t len = strlen(text), at = 0;
  while (at < len) {
    ssize_t w = write(fd[1], text + at, len - at);
    if (w <= 0)
      break;   /* dot died; its status says why */
    at += (size_t)w;
  }
  close(fd[1]);
  int st;
  while (waitpid(pid, &st, 0) < 0)
    if (errno != EINTR)
      error_plain("waitpid: %s", strerror(errno));
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
    error_plain("%s failed to render %s", dot, out);
}

int cmd_dot(int argc, char **argv) {
  Cli c;
  cli_init(&c, DT_F32);
  bool backward = false;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      fputs(usage, stdout);
      return 0;
    }
    if (strcmp(argv[i], "--backward") == 0)
      backward = true;
    else if (!cli_common(&c, argc, argv, &i))
      cli_unknown("dot", argv[i]);
  }
  const char *out = c.out ? c.out : "-";
  const char *fmt = ends_with(out, ".svg") ? "svg" : ends_with(out, ".png") ? "png" : NULL;
  if (!fmt && strcmp(out, "-") != 0 && !ends_with(out, ".dot") && !ends_with(out, ".gv"))
    error_usage("dot: -o %s: write FILE.dot, FILE.svg, FILE.png or - (standard output)", out);
  Graph *g = cli_load(&c);
  if (backward)
    grad_build(g);
  char *text = dot_graph(g, backward);
  if (fmt) {
    render(text, fmt, out);
    return 0;
  }
  if (strcmp(out, "-") == 0) {
    fputs(text, stdout);
    return 0;
  }
  write_text(out, text);
  return 0;
}
