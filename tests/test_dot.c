/* test_dot.c: `bpgen dot` -- the DOT text holds the nodes and edges it should
 * (styled leaves, fused ops, backward nodes, fan-out sums), and Graphviz
 * renders it to SVG. */
#include "tests.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static Graph *load(const char *file) {
  return parse_spec(read_src(arena_printf("%s/%s", specs_dir(), file)), NULL, 0);
}

/* Every line of DOT that contains all of the given fragments: at least one. */
static bool has_line(const char *dot, const char *a, const char *b) {
  for (const char *p = dot; *p;) {
    const char *e = strchr(p, '\n');
    size_t n = e ? (size_t)(e - p) : strlen(p);
    char *line = arena_strndup(p, n);
    if (strstr(line, a) && (!b || strstr(line, b)))
      return true;
    p += n + (e != NULL);
  }
  return false;
}

static int count(const char *s, const char *sub) {
  int k = 0;
  for (const char *p = s; (p = strstr(p, sub)); p += strlen(sub))
    k++;
  return k;
}

/* one forward fact a line: a fragment and a second fragment on the same line */
static const struct { const char *spec, *a, *b; } fwd_lines[] = {
  {"makemore.spec", "[label=\"X\\ninput int [32, 3]\\nline 8\"", "fillcolor=\"#cfe2f3\""},
  {"makemore.spec", "[label=\"C\\nparam [27, 10]\\nline 11\"", "fillcolor=\"#ffe599\""},
  {"makemore.spec", "hpreact = batchnorm (unbiased var) [fused]\\n[32, 64]\\nline 22", "peripheries=2"},
  {"makemore.spec", "loss = cross_entropy [fused]\\n[]\\nline 25", "peripheries=2"},
  {"makemore.spec", "emb = gather\\n[32, 3, 10]\\nline 19", NULL},
  {"makemore_granular.spec", "bnvar = div\\n[1, 64]", NULL},
  {"makemore_granular.spec", "logit_maxes = max axis=1\\n[32, 1]", NULL},
  {"makemore_granular.spec", "bndiff2 = pow ^2", NULL},
  {"makemore_granular.spec", "[label=\"31\", shape=plaintext]", NULL},
  {"mlp_relu.spec", "hn = layernorm [fused]", "peripheries=2"},
  {"mlp_relu.spec", "probs = softmax axis=1 [fused]", NULL},
};

START_TEST(test_dot_forward) {
  Graph *g = load(fwd_lines[_i].spec);
  char *dot = dot_graph(g, false);
  ck_assert_msg(has_line(dot, fwd_lines[_i].a, fwd_lines[_i].b), "no line with '%s' and '%s' in:\n%.600s",
                fwd_lines[_i].a, fwd_lines[_i].b ? fwd_lines[_i].b : "", dot);
  ck_assert_msg(strncmp(dot, "digraph ", 8) == 0 && dot[strlen(dot) - 2] == '}', "not one digraph");
  ck_assert_msg(!strstr(dot, "#990000"), "backward styling without --backward");
}
END_TEST

/* every forward edge in[k] -> n is there */
START_TEST(test_dot_edges) {
  Graph *g = load("makemore.spec");
  char *dot = dot_graph(g, false);
  int edges = 0;
  for (int i = 0; i < g->nforward; i++)
    for (int k = 0; k < MAXIN && g->nodes[i]->in[k]; k++) {
      const char *e = arena_printf("  n%d -> n%d;\n", g->nodes[i]->in[k]->id, i);
      ck_assert_msg(strstr(dot, e), "edge %s missing", e);
      edges++;
    }
  ck_assert_int_eq(count(dot, " -> "), edges);
  ck_assert_int_eq(count(dot, "[label="), g->nforward);
}
END_TEST

/* The granular spec: four values are used twice (counts, logits, bndiff,
 * hprebn), so four fan-out sums, each with two "+=" edges. */
static const char *const fanouts[] = {"dcounts += (fan-out)", "dlogits += (fan-out)",
                                      "dbndiff += (fan-out)", "dhprebn += (fan-out)"};

START_TEST(test_dot_backward) {
  Graph *g = load("makemore_granular.spec");
  grad_build(g);
  char *dot = dot_graph(g, true);
  for (size_t i = 0; i < sizeof fanouts / sizeof fanouts[0]; i++)
    ck_assert_msg(has_line(dot, fanouts[i], "shape=box"), "no '%s'", fanouts[i]);
  ck_assert_int_eq(count(dot, "(fan-out)"), 4);
  ck_assert_int_eq(count(dot, "label=\"+=\""), 8);
  ck_assert_int_eq(count(dot, "[label="), g->nnodes);
  ck_assert_msg(has_line(dot, "dlogprobs = pick_bwd\\n[32, 27]", "#f4cccc"), "dlogprobs node");
  ck_assert_msg(has_line(dot, "dC = gather_bwd\\n[27, 10]", NULL), "dC node");
  /* backward reads forward values: dashed edges from forward nodes */
  Node *h = graph_find(g, "h");
  ck_assert_msg(strstr(dot, arena_printf("  n%d -> ", h->id)) &&
                has_line(dot, arena_printf("n%d -> ", h->id), "style=dashed"),
                "no dashed edge from h (tanh's backward reads it)");
}
END_TEST

START_TEST(test_dot_fused_backward) {
  Graph *g = load("makemore.spec");
  grad_build(g);
  char *dot = dot_graph(g, true);
  ck_assert_msg(has_line(dot, "dhprebn = bn_bwd_x", "peripheries=2"), "fused bn backward");
  ck_assert_msg(has_line(dot, "dlogits = xent_bwd", "peripheries=2"), "fused xent backward");
  ck_assert_int_eq(count(dot, "(fan-out)"), 0);
}
END_TEST

/* Renders through the command line, as a learner would. */
START_TEST(test_dot_svg) {
  const char *bpgen = getenv("BPGEN");
  if (!bpgen)
    bpgen = "./bpgen";
  if (access(bpgen, X_OK) != 0 || access("/usr/bin/dot", X_OK) != 0)
    ck_abort_msg("needs %s and Graphviz (/usr/bin/dot)", bpgen);
  const char *tmpl = tests_tmpdir("dot");
  const char *svg = arena_printf("%s/g.svg", tmpl);
  const char *cmd = arena_printf("%s dot %s/makemore_granular.spec --backward -o %s", bpgen,
                                 specs_dir(), svg);
  ck_assert_int_eq(system(cmd), 0);
  FILE *f = fopen(svg, "r");
  ck_assert_ptr_nonnull(f);
  char buf[4096];
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  buf[n] = 0;
  fclose(f);
  unlink(svg);
  rmdir(tmpl);
  ck_assert_msg(strstr(buf, "<svg"), "not SVG:\n%.300s", buf);
}
END_TEST

static Suite *make_suite(void) {
  Suite *s = suite_create("dot");
  TCase *tc = tcase_create("dot");
  tcase_add_loop_test(tc, test_dot_forward, 0, (int)(sizeof fwd_lines / sizeof fwd_lines[0]));
  tcase_add_test(tc, test_dot_edges);
  tcase_add_test(tc, test_dot_backward);
  tcase_add_test(tc, test_dot_fused_backward);
  tcase_add_test(tc, test_dot_svg);
  suite_add_tcase(s, tc);
  return s;
}
TESTS_REGISTER(make_suite)
