/* test_optable.c: the op table (gen/ops.h) is complete and is the one truth.
 *
 * The table walk names every missing piece: a stage that would find no entry
 * for an op is a test failure here, never a NULL call at run time.  The other
 * tests check that the stages really read the table: the parser's functions,
 * its attributes and folds, graph_add's attributes, expand's copy of them,
 * and the notation templates.
 */
#include "tests.h"
#include "ref.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- the table walk ------------------------------------------------------------ */

static bool elementwise(const OpInfo *o) {
  return o->shape == (ShapeFn *)shape_unary || o->shape == (ShapeFn *)shape_bcast;
}

static const char *label_L(void *ctx, Node *n) {
  (void)ctx;
  (void)n;
  return "L";
}

/* Fills op's math template on a made-up node (inputs with inputs of their
 * own, so %0.1 resolves); NULL when it fills, else the problem. */
static const char *math_problem(OpKind op, const char *math) {
  static Node leaf[MAXIN], in[MAXIN], n;
  memset(&n, 0, sizeof n);
  n.op = op;
  n.shape = (Shape){2, {4, 1}};
  for (int i = 0; i < MAXIN; i++) {
    leaf[i] = (Node){.op = OP_const, .shape = {1, {3}}};
    in[i] = (Node){.op = OP_batchnorm, .shape = {2, {4, 3}}, .in = {&leaf[0], &leaf[1], &leaf[2]}};
    n.in[i] = i < optab[op].arity ? &in[i] : NULL;
  }
  const char *err;
  for (int fwd = 0; fwd < 2; fwd++)
    if (!note_fill(math, &n, fwd, label_L, NULL, &err))
      return err;
  return NULL;
}

/* Every missing or misplaced entry of tab (laid out as optab), one per line;
 * "" when there is none.  ref(op) is the reference runtime's evaluator. */
static const char *table_problems(const OpInfo *tab, RefEvalFn *(*ref)(OpKind)) {
  Buf b = {0};
  for (int op = 0; op < OP_COUNT; op++) {
    const OpInfo *o = &tab[op];
    const char *name = o->name;
    bool leaf = o->level == LV_LEAF, bwd = o->level == LV_BWD, spec = !leaf && !bwd;
    if (!o->emit)
      buf_printf(&b, "%s: no emitter\n", name);
    if (!leaf && !o->shape)
      buf_printf(&b, "%s: no shape rule\n", name);
    if (leaf && o->shape)
      buf_printf(&b, "%s: a leaf with a shape rule\n", name);
    if (spec && !o->grad)
      buf_printf(&b, "%s: spec-level op without a grad rule\n", name);
    if (!spec && o->grad)
      buf_printf(&b, "%s: a grad rule on a leaf or backward-only op\n", name);
    if (spec && !ref((OpKind)op))
      buf_printf(&b, "%s: spec-level op without a reference evaluator (runtime/ref.c)\n", name);
    if (!spec && ref((OpKind)op))
      buf_printf(&b, "%s: a reference evaluator on a leaf or backward-only op\n", name);
    if (spec && elementwise(o) && !o->fold)
      buf_printf(&b, "%s: elementwise op without a fold function\n", name);
    if (!spec && o->fold)
      buf_printf(&b, "%s: a fold function on a leaf or backward-only op\n", name);
    if (o->fold && o->arity < 1)
      buf_printf(&b, "%s: a fold function without inputs\n", name);
    if (!leaf && !o->math)
      buf_printf(&b, "%s: no math notation\n", name);
    const char *merr;
    if (o->math && (merr = math_problem((OpKind)op, o->math)))
      buf_printf(&b, "%s: math \"%s\": %s\n", name, o->math, merr);
    if (o->remark && !spec)
      buf_printf(&b, "%s: a remark on an op no statement uses\n", name);
    if (spec && !o->sig)
      buf_printf(&b, "%s: spec-level op without a sig\n", name);
    if (bwd && o->sig)
      buf_printf(&b, "%s: a backward-only op with a sig\n", name);
    if (o->arity > MAXIN || o->arity < 0)
      buf_printf(&b, "%s: arity %d\n", name, o->arity);
    for (int k = 0; k < op; k++)
      if (strcmp(tab[k].name, name) == 0)
        buf_printf(&b, "%s: two rows\n", name);
  }
  return buf_done(&b);
}

START_TEST(test_table_complete) {
  const char *p = table_problems(optab, ref_evaluator);
  ck_assert_msg(!*p, "ops.h is incomplete:\n%s", p);
}
END_TEST

/* The walk's own test: each column left out of one row is reported. */
static RefEvalFn *ref_none_for_tanh(OpKind op) { return op == OP_tanh ? NULL : ref_evaluator(op); }

START_TEST(test_table_walk_catches) {
  static OpInfo tab[OP_COUNT];
  static const struct {
    const char *what, *want;
  } cases[] = {
      {"shape", "tanh: no shape rule"},
      {"grad", "tanh: spec-level op without a grad rule"},
      {"emit", "tanh: no emitter"},
      {"fold", "tanh: elementwise op without a fold function"},
      {"math", "tanh: no math notation"},
      {"badmath", "tanh: math \"tanh(%3)\": tanh has no input 3"},
      {"ref", "tanh: spec-level op without a reference evaluator"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    memcpy(tab, optab, sizeof tab);
    OpInfo *o = &tab[OP_tanh];
    const char *w = cases[i].what;
    if (!strcmp(w, "shape")) o->shape = NULL;
    if (!strcmp(w, "grad")) o->grad = NULL;
    if (!strcmp(w, "emit")) o->emit = NULL;
    if (!strcmp(w, "fold")) o->fold = NULL;
    if (!strcmp(w, "math")) o->math = NULL;
    if (!strcmp(w, "badmath")) o->math = "tanh(%3)";
    const char *p = table_problems(tab, strcmp(w, "ref") ? ref_evaluator : ref_none_for_tanh);
    ck_assert_msg(strstr(p, cases[i].want), "%s left out: got \"%s\"", w, p);
  }
}
END_TEST

/* Every function's sig parses; its attributes exist and their defaults are
 * values of their kind. */
START_TEST(test_sigs) {
  int nfn = 0;
  for (int op = 0; op < OP_COUNT; op++) {
    if (optab[op].level != LV_FN)
      continue;
    nfn++;
    const char *err;
    const OpSig *s = op_sig((OpKind)op, &err);
    ck_assert_msg(s, "sig of %s \"%s\": %s", optab[op].name, optab[op].sig, err);
    for (int i = 0; i < s->nattr; i++) {
      const char *d = s->attr[i].dflt;
      char *end;
      double v = strtod(d, &end);
      bool ok = false;
      switch (s->attr[i].kind) {
      case AK_AXIS: ok = !strcmp(d, "all") || !strcmp(d, "last") || (*d && !*end && v == floor(v)); break;
      case AK_NONNEG: ok = *d && !*end && v >= 0; break;
      case AK_BOOL: ok = !strcmp(d, "true") || !strcmp(d, "false"); break;
      case AK_INT: ok = *d && !*end && v == floor(v); break;
      }
      ck_assert_msg(ok, "%s: default of %s is '%s'", optab[op].name, s->attr[i].name, d);
    }
  }
  ck_assert_int_ge(nfn, 16);
  /* a few, spelt out */
  const OpSig *s = op_sig(OP_batchnorm, NULL);
  ck_assert_int_eq(s->ntensor, 3);
  ck_assert_int_eq(s->nattr, 2);
  ck_assert_int_eq(s->npositional, 0);
  ck_assert_str_eq(s->attr[0].name, "eps");
  ck_assert_str_eq(s->attr[1].dflt, "true");
  s = op_sig(OP_sum, NULL);
  ck_assert_int_eq(s->npositional, 1);
  ck_assert_str_eq(s->attr[0].dflt, "all");
  ck_assert(op_sig(OP_reshape, NULL)->shape_arg);
  const char *err;
  ck_assert_ptr_null(op_sig(OP_add, &err));   /* an operator: no sig to parse */
  ck_assert_ptr_nonnull(err);
}
END_TEST

/* ---- the parser reads the table ------------------------------------------------- */

static const char header[] =
    "dim N = 4\n"
    "dim K = 5\n"
    "input x : [N, K]\n"
    "input y : int[N]\n";

/* Every function of the table is a built-in name of the parser. */
START_TEST(test_functions_are_builtin) {
  for (int op = 0; op < OP_COUNT; op++) {
    if (optab[op].level != LV_FN)
      continue;
    const char *e = parse_error(arena_printf("%sdim %s = 3\nloss = sum(x)\n", header, optab[op].name));
    ck_assert_msg(strstr(e, "it is a built-in name"), "%s: %s", optab[op].name, e);
  }
  /* operators are not functions: their names are free */
  parse_text(arena_printf("%sadd = x * 2\nloss = sum(add)\n", header));
}
END_TEST

/* A unary function on a constant folds to its fold function's value. */
START_TEST(test_fold_unary) {
  int n = 0;
  for (int op = 0; op < OP_COUNT; op++) {
    if (optab[op].level != LV_FN || !optab[op].fold || optab[op].arity != 1)
      continue;
    Graph *g = parse_text(arena_printf("%sz = x * %s(0.7)\nloss = sum(z)\n", header, optab[op].name));
    Node *z = graph_find(g, "z");
    ck_assert_int_eq(z->op, OP_mul);
    ck_assert_int_eq(z->in[1]->op, OP_const);
    double want = optab[op].fold((double[]){0.7}, &(NodeAttr){0});
    ck_assert_msg(z->in[1]->num == want, "%s(0.7) = %g, fold says %g", optab[op].name, z->in[1]->num, want);
    n++;
  }
  ck_assert_int_ge(n, 6);
}
END_TEST

/* A function without a fold makes a node of its constant argument: no NULL
 * call (the crash `gelu(1)` had when parse.c's fold table missed it). */
START_TEST(test_no_fold_makes_node) {
  Graph *g = parse_text(arena_printf("%sz = x * softmax(x)[y] * sum(2)\nloss = sum(z)\n", header));
  Node *z = graph_find(g, "z");
  ck_assert_int_eq(z->in[1]->op, OP_sum);
  ck_assert_int_eq(z->in[1]->in[0]->op, OP_const);
}
END_TEST

/* Attribute defaults and given values, from the sig. */
START_TEST(test_attr_values) {
  Graph *g = parse_text(arena_printf("%sa = sum(x)\nb = mean(x, 1)\nc = softmax(x)\nd = softmax(x, axis=-2)\n"
                                     "loss = sum(a) + sum(b) + sum(c) + sum(d)\n", header));
  ck_assert_int_eq(graph_find(g, "a")->axis, -1);
  ck_assert_int_eq(graph_find(g, "a")->shape.rank, 0);
  ck_assert_int_eq(graph_find(g, "b")->axis, 1);
  ck_assert_str_eq(shape_str(&graph_find(g, "b")->shape), "[4, 1]");
  ck_assert_int_eq(graph_find(g, "c")->axis, 1);   /* last */
  ck_assert_int_eq(graph_find(g, "d")->axis, 0);
}
END_TEST

/* ---- graph_add takes the attributes; expand copies all of them -------------------- */

START_TEST(test_graph_add_attrs) {
  Graph *g = parse_text(arena_printf("%sloss = sum(x)\n", header));
  Node *x = graph_find(g, "x");
  /* the shape rule sees the axis: the node is made with it */
  Node *s = graph_add(g, OP_max, x->tok, x, NULL, NULL, NULL, &(NodeAttr){.axis = 0});
  ck_assert_str_eq(shape_str(&s->shape), "[1, 5]");
  Node *m = graph_add(g, OP_matmul, x->tok, x, x, NULL, NULL, &(NodeAttr){.transa = true});
  ck_assert_str_eq(shape_str(&m->shape), "[5, 5]");
  ck_assert(m->transa && !m->transb);
  Node *c = graph_const(g, x->tok, 2.5);
  ck_assert(c->num == 2.5 && c->shape.rank == 0 && c->type == TY_FLOAT);
}
END_TEST

START_TEST(test_expand_copies_attrs) {
  Graph *g = parse_text(arena_printf("%sparam g : [K] ~ randn * 0.5\nparam W : [K, K] ~ randn\n"
                                     "p = x ^ 3\nm = max(p, 0)\ns = sum(x, axis=1)\n"
                                     "q = matmul(x, W)\n"
                                     "loss = sum(layernorm(m + s + q, g, g, eps=0.5))\n", header));
  Graph *e = expand_fused(g);
  static const char *const names[] = {"g", "p", "m", "s", "q"};
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
    Node *n = graph_find(g, names[i]), *m = graph_find(e, names[i]);
    ck_assert_msg(memcmp(&n->at, &m->at, sizeof n->at) == 0, "%s: attributes differ after expand", names[i]);
  }
  ck_assert(graph_find(e, "p")->num == 3 && graph_find(e, "s")->axis == 1);
}
END_TEST

/* ---- notation ------------------------------------------------------------------- */

static const char *label_name(void *ctx, Node *n) {
  (void)ctx;
  return n->name;
}

START_TEST(test_notation) {
  Graph *g = parse_text(arena_printf("%sa = x - x * 2\nloss = sum(a ^ 2)\n", header));
  Node *a = graph_find(g, "a");
  a->in[1]->name = "x ⊙ 2";
  a->in[0]->name = "u + v";   /* labels are the caller's */
  const char *err;
  ck_assert_str_eq(note_math(a, true, label_name, NULL), "(u + v) − (x ⊙ 2)");
  ck_assert_str_eq(note_math(a, false, label_name, NULL), "u + v − (x ⊙ 2)");
  Node *p = g->loss->in[0];
  p->in[0]->name = "a";
  ck_assert_str_eq(note_math(p, true, label_name, NULL), "a^2");
  ck_assert_str_eq(note_math(p, false, label_name, NULL), "a²");
  ck_assert_str_eq(note_fill("%{f %0|d %0}", p, true, label_name, NULL, &err), "f a");
  ck_assert_ptr_null(note_fill("%Q", p, true, label_name, NULL, &err));
  ck_assert_str_eq(err, "unknown escape '%Q'");
  ck_assert_ptr_null(note_fill("%1", p, true, label_name, NULL, &err));
  ck_assert_str_eq(err, "pow has no input 1");
}
END_TEST

static Suite *make_suite(void) {
  Suite *s = suite_create("optable");
  TCase *tc = tcase_create("optable");
  tcase_add_test(tc, test_table_complete);
  tcase_add_test(tc, test_table_walk_catches);
  tcase_add_test(tc, test_sigs);
  tcase_add_test(tc, test_functions_are_builtin);
  tcase_add_test(tc, test_fold_unary);
  tcase_add_test(tc, test_no_fold_makes_node);
  tcase_add_test(tc, test_attr_values);
  tcase_add_test(tc, test_graph_add_attrs);
  tcase_add_test(tc, test_expand_copies_attrs);
  tcase_add_test(tc, test_notation);
  suite_add_tcase(s, tc);
  return s;
}

TESTS_REGISTER(make_suite)
