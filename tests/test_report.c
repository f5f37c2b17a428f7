/* test_report.c: `bpgen report` writes one self-contained HTML page: the graph
 * as inline SVG, every tensor of the spec, the lines and the cmp table,
 * nothing loaded from outside, balanced tables; with --mine the learner's
 * verdicts and hints, and a file that does not compile shown, not fatal.
 * (tools/html_check.py parses the page with a real HTML parser in driver.sh;
 * `make report-check` renders it in headless Chromium.) */
#include "tests.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *fixture(const char *name) {
  const char *d = getenv("BPGEN_FIXTURES");
  return arena_printf("%s/%s", d ? d : "tests/fixtures", name);
}

static char *page(const char *spec, const char *mine) {
  Cli c;
  cli_init(&c, DT_F32);
  c.spec = arena_printf("%s/%s", specs_dir(), spec);
  return report_html(&c, mine);
}

static int count(const char *s, const char *sub) {
  int n = 0;
  for (const char *p = strstr(s, sub); p; p = strstr(p + 1, sub))
    n++;
  return n;
}

static const char *const specs[] = {"makemore.spec", "makemore_granular.spec"};

START_TEST(test_report_page) {
  char *h = page(specs[_i], NULL);
  ck_assert_msg(strncmp(h, "<!DOCTYPE html>\n<html", 21) == 0, "not an HTML page:\n%.200s", h);
  ck_assert_msg(count(h, "<svg") == 1 && count(h, "</svg>") == 1, "no inline SVG graph");
  ck_assert_msg(!strstr(h, "<?xml") && !strstr(h, "<!DOCTYPE svg"), "the SVG's prolog is left in the page");
  ck_assert_msg(strstr(h, "<table class=\"explain\">") && strstr(h, "<table class=\"cmp\">"), "a table missing");
  ck_assert_int_eq(count(h, "<table"), count(h, "</table>"));
  ck_assert_int_eq(count(h, "<tr"), count(h, "</tr>"));
  ck_assert_int_eq(count(h, "<section"), count(h, "</section>"));
  ck_assert_msg(!strstr(h, "<link") && !strstr(h, " src=") && !strstr(h, "@import"), "loads from outside");
  ck_assert_int_eq(count(h, "<script"), 1);
  /* every tensor: a row in the lines table or the graph's data */
  Graph *g = parse_spec(read_src(arena_printf("%s/%s", specs_dir(), specs[_i])), NULL, 0);
  for (int i = 0; i < g->nforward; i++) {
    Node *n = g->nodes[i];
    if (n->name)
      ck_assert_msg(strstr(h, arena_printf(">%s: ", n->name)) || strstr(h, arena_printf(" %s ", n->name)) ||
                    strstr(h, arena_printf("\"%s: ", n->name)), "%s: no %s on the page", specs[_i], n->name);
  }
  /* a gradient of the cmp table, coloured by its verdict */
  ck_assert_msg(strstr(h, "<tr class=\"approx\" data-name=\"dW1\">"), "no dW1 row");
  ck_assert_msg(strstr(h, "data-lhs=\"dW2\""), "no backward line writing dW2");
}
END_TEST

START_TEST(test_report_mine) {
  char *h = page("makemore.spec", fixture("ninja_ex2_times_b.c"));
  ck_assert_msg(strstr(h, "<table class=\"mine\">"), "no table of the learner's verdicts");
  ck_assert_msg(strstr(h, "<tr class=\"wrong\" data-name=\"dlogits\">"), "dlogits not wrong");
  ck_assert_msg(strstr(h, "hint: yours is the right dlogits × B (= 32): a missing / B?"), "no hint");
  /* the backward line writing dlogits takes the learner's verdict */
  ck_assert_msg(strstr(h, "<div class=\"bl wrong\" data-lhs=\"dlogits\">"), "line not coloured by the verdict");
  h = page("makemore.spec", fixture("ninja_ex2_syntax.c"));
  ck_assert_msg(strstr(h, "ninja_ex2_syntax.c:9: error: &#39;logit&#39; undeclared") ||
                strstr(h, "ninja_ex2_syntax.c:9: error: 'logit' undeclared"), "no compile error on the page");
  ck_assert_msg(strstr(h, "<table class=\"cmp\">"), "the page stopped at the error");
}
END_TEST

/* without Graphviz the page says so and keeps the rest */
START_TEST(test_report_no_dot) {
  setenv("BPGEN_DOT", "/nonexistent/dot", 1);
  char *h = page("makemore.spec", NULL);
  unsetenv("BPGEN_DOT");
  ck_assert_msg(!strstr(h, "<svg") && strstr(h, "needs Graphviz's dot command"), "no note:\n%.3000s", h);
  ck_assert_msg(strstr(h, "<table class=\"cmp\">"), "no cmp table");
}
END_TEST

static Suite *make_suite(void) {
  Suite *s = suite_create("report");
  TCase *tc = tcase_create("report");
  tcase_set_timeout(tc, 60);
  tcase_add_loop_test(tc, test_report_page, 0, (int)(sizeof specs / sizeof specs[0]));
  tcase_add_test(tc, test_report_mine);
  tcase_add_test(tc, test_report_no_dot);
  suite_add_tcase(s, tc);
  return s;
}
TESTS_REGISTER(make_suite)
