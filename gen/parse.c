/* parse.c: Token list -> forward Graph (recursive descent).
 *
 * A spec is a list of lines: dim, input and param declarations, and
 * statements `NAME = expr`.  Three small expression languages share one
 * precedence ladder: dim expressions (exact integer arithmetic, for dims and
 * shapes), initialisers (an InitExpr tree for params) and tensor expressions.
 * A tensor expression evaluates to a Val: either a compile-time constant
 * (numbers, dims, and operators over them, folded here) or a graph node.  A
 * constant becomes an OP_const node only when it meets a tensor, so
 * `1/(B-1)` is one node (the fold column of ops.h).  Functions, their
 * tensors and attributes come from the op table (op_sig).  Nodes are made only
 * through graph_add(), which runs each op's shape rule at once, so errors point
 * at the operator.
 *
 * Newlines end statements, except inside ( ) or [ ], where the cursor skips
 * them (`nest` counts the open brackets).  Every recursion goes through a
 * depth check, so no input can exhaust the stack.
 *
 * Repetition is unrolled here: `for l in L` ... `end` parses its body L times
 * with l bound to 0, 1, ..., L-1 (a constant, usable wherever a dim is).  A
 * statement in a body may assign a name again (the carried state of an RNN,
 * a transformer's residual stream): each iteration's tensor is named NAME_l
 * (NAME_l_m in nested loops), and NAME means the latest one from then on.
 * `stack(NAME, axis)` gathers the values NAME took in its loop.  Per-layer
 * params are stacked ([L, ...], as llm.c stores them) and indexed with W[l];
 * a param used in every iteration is shared, and its gradient sums the uses.
 */
#include "bpgen.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { MAXDEPTH = 200, MAXARGS = 8, MAXLOOPS = 8, MAXNODES = 200000 };

typedef enum { SYM_DIM, SYM_INPUT, SYM_PARAM, SYM_STMT, SYM_LOOPVAR, SYM_DONE } SymKind;
/* SYM_LOOPVAR: a loop's variable (value: this iteration's); SYM_DONE: one
 * whose loop has ended */

typedef struct Sym {
  const char *name;
  Token *tok;            /* where it was defined */
  SymKind kind;
  Node *node;            /* input, param, statement */
  long value;            /* dim, loop variable */
  bool in_loop;          /* a statement in a loop body (its name NAME_i) */
} Sym;

/* The values a name took in the iterations of one run of a loop (stack()). */
typedef struct LoopVals {
  int loop;              /* the run of a loop they belong to (loop_runs) */
  Token *for_tok;
  Node **v;              /* v[i]: the value at the end of iteration i */
  int n, cap;
} LoopVals;

/* A tensor expression's value: a constant (n == NULL) or a node. */
typedef struct Val {
  Node *n;
  double c;
  Token *tok;            /* representative token */
} Val;

static Graph *g;
static Token *tok;       /* the cursor */
static int nest;         /* open ( and [: newlines are skipped inside */
static int depth;        /* expression recursion depth */
static Sym *syms;
static int nsyms, symcap;
static StrMap symidx;    /* name -> index in syms, plus 1 */
static DimOverride *ovrs;
static int novrs;
static int nloops;                 /* loops open around the cursor */
static struct {                   /* the loops open around the cursor, outermost first */
  int run;                         /* which run of a loop statement (numbered) */
  int iter;                        /* its iteration */
  Token *tok;                      /* its 'for' */
} loops[MAXLOOPS];
static int loop_runs;
static StrMap loopvals;            /* base name -> LoopVals */

/* the keywords; the functions are the LV_FN rows of ops.h */
static const char *const keywords[] = {
    "dim", "input", "param", "int", "randn", "uniform", "zeros", "ones", "true", "false",
    "for", "in", "end", "stack",
};

/* ---- the cursor ------------------------------------------------------------ */

static Token *peek(void) {
  if (nest > 0)
    while (tok->kind == TK_NEWLINE)
      tok = tok->next;
  return tok;
}

static Token *next(void) {
  Token *t = peek();
  if (t->kind != TK_EOF)
    tok = t->next;
  return t;
}

static bool at(const char *s) { return tok_is(peek(), s); }

static bool consume(const char *s) {
  if (!at(s))
    return false;
  next();
  return true;
}

static const char *describe(Token *t) {
  switch (t->kind) {
  case TK_NEWLINE: return "end of line";
  case TK_EOF: return "end of file";
  default: return arena_printf("'%.*s'", t->len, t->loc);
  }
}

static void expect(const char *s, const char *what) {
  if (!consume(s))
    error_tok(peek(), "expected '%s' %s, got %s", s, what, describe(peek()));
}

/* The closing bracket of `open`; the error names where it opened. */
static void expect_close(Token *open, const char *close) {
  if (!at(close))
    error_tok(peek(), "expected '%s' to close '%.*s' at %d:%d, got %s", close, open->len, open->loc,
              open->line, open->col, describe(peek()));
  nest--;
  next();
}

static Token *open_bracket(const char *s) {
  Token *t = peek();
  expect(s, "here");
  nest++;
  return t;
}

static Token *expect_ident(const char *what) {
  Token *t = peek();
  if (t->kind != TK_IDENT)
    error_tok(t, "expected %s, got %s", what, describe(t));
  return next();
}

static void enter(Token *t) {
  if (++depth > MAXDEPTH)
    error_tok(t, "expression nested too deeply (more than %d levels)", MAXDEPTH);
}

static char *tok_str(Token *t) { return arena_strndup(t->loc, (size_t)t->len); }

/* ---- names ---------------------------------------------------------------- */

static Sym *find_name(const char *s, size_t len) {
  intptr_t i = (intptr_t)strmap_get(&symidx, s, len);
  return i ? &syms[i - 1] : NULL;
}

static Sym *find_sym(Token *t) { return find_name(t->loc, (size_t)t->len); }

/* the LV_FN op called t, or OP_COUNT */
static OpKind function_op(Token *t) {
  int op = 0;
  while (op < OP_COUNT && !(optab[op].level == LV_FN && tok_is(t, optab[op].name)))
    op++;
  return (OpKind)op;
}

static bool is_function(Token *t) { return function_op(t) != OP_COUNT; }

static bool is_builtin(Token *t) {
  for (size_t i = 0; i < sizeof keywords / sizeof keywords[0]; i++)
    if (tok_is(t, keywords[i]))
      return true;
  return is_function(t);
}

/* a name of a tensor (not a dim or a loop variable, live or ended) */
static bool is_tensor(const Sym *s) { return s && (s->kind == SYM_INPUT || s->kind == SYM_PARAM || s->kind == SYM_STMT); }

/* Defines `name` (its text `str`: the token's, or a loop statement's NAME_l).
 * rebind: a loop statement, which may assign a name a statement holds. */
static Sym *define_as(Token *name, const char *str, SymKind kind, bool rebind) {
  size_t len = strlen(str);
  if (is_builtin(name))
    error_tok(name, "'%.*s' redefined: it is a built-in name", name->len, name->loc);
  Sym *old = find_name(str, len);
  if (old && old->kind != SYM_DONE) {
    if (rebind && old->in_loop && old->tok != name)
      error_tok(name, "'%.*s' is assigned twice in one iteration (line %d and here): give one of them another name",
                name->len, name->loc, old->tok->line);
    if (rebind)
      error_tok(name, "'%.*s' in this iteration is called '%s', which is already defined at line %d: rename one "
                "of them", name->len, name->loc, str, old->tok->line);
    error_tok(name, "'%s' redefined (first defined at line %d)", str, old->tok->line);
  }
  if (rebind) {
    Sym *base = find_sym(name);
    if (base && base->kind != SYM_STMT && base->kind != SYM_DONE)
      error_tok(name, "'%.*s' is %s (line %d); a loop may assign again only names that statements define",
                name->len, name->loc,
                base->kind == SYM_DIM ? "a dim" : base->kind == SYM_INPUT ? "an input" :
                base->kind == SYM_PARAM ? "a param" : "a loop variable", base->tok->line);
  }
  /* the gradient of tensor x is called dx everywhere (the emitted d-fields,
   * the tensor table, x.grad.npy): no tensor may take that name */
  if (kind != SYM_DIM && kind != SYM_LOOPVAR) {
    Sym *of = len > 1 && str[0] == 'd' ? find_name(str + 1, len - 1) : NULL;
    if (is_tensor(of))
      error_tok(name, "'%s' is the name of the gradient of '%s' (line %d): rename one of them", str, of->name,
                of->tok->line);
    Sym *grad = find_name(arena_printf("d%s", str), len + 1);
    if (is_tensor(grad))
      error_tok(name, "the gradient of '%s' would be called '%s', a tensor already defined at line %d: "
                "rename one of them", str, grad->name, grad->tok->line);
  }
  if (nsyms == symcap) {
    symcap = symcap ? 2 * symcap : 32;
    Sym *ns = arena_alloc(sizeof *ns * (size_t)symcap);
    if (nsyms)
      memcpy(ns, syms, sizeof *ns * (size_t)nsyms);
    syms = ns;
  }
  Sym *s = &syms[nsyms++];
  s->name = arena_strndup(str, len);
  s->tok = name;
  s->kind = kind;
  strmap_put(&symidx, s->name, (void *)(intptr_t)nsyms);
  s->in_loop = rebind;
  if (rebind)   /* NAME means this iteration's tensor from now on */
    strmap_put(&symidx, tok_str(name), (void *)(intptr_t)nsyms);
  return s;
}

static Sym *define(Token *name, SymKind kind) { return define_as(name, tok_str(name), kind, false); }

/* ---- dim expressions: exact integer arithmetic ----------------------------- */

static long dim_expr(void);

static void dim_check(Token *t, bool ok) {
  if (!ok)
    error_tok(t, "dim expression overflows");
}

/* dim_primary = NUM | DIMNAME | "(" dim_expr ")" | "-" dim_primary */
static long dim_primary(void) {
  Token *t = peek();
  enter(t);
  long v;
  if (consume("-")) {
    long x = dim_primary();
    dim_check(t, !__builtin_sub_overflow(0L, x, &v));
  } else if (at("(")) {
    Token *open = open_bracket("(");
    v = dim_expr();
    expect_close(open, ")");
  } else if (t->kind == TK_NUM) {
    next();
    if (!t->is_int)
      error_tok(t, "dims are whole numbers, got %.*s", t->len, t->loc);
    if (t->num > (double)INT_MAX)
      error_tok(t, "dim value %.*s is too large", t->len, t->loc);
    v = (long)t->num;
  } else if (t->kind == TK_IDENT) {
    next();
    Sym *s = find_sym(t);
    if (!s)
      error_tok(t, "unknown dim '%.*s'", t->len, t->loc);
    if (s->kind == SYM_DONE)
      error_tok(t, "'%.*s' is the variable of the loop at line %d, which has ended", t->len, t->loc, s->tok->line);
    if (s->kind != SYM_DIM && s->kind != SYM_LOOPVAR)
      error_tok(t, "'%.*s' is not a dim", t->len, t->loc);
    v = s->value;
  } else {
    error_tok(t, "expected a dim expression, got %s", describe(t));
  }
  depth--;
  return v;
}

/* dim_term = dim_primary (("*" | "/") dim_primary)* */
static long dim_term(void) {
  long v = dim_primary();
  for (;;) {
    Token *op = peek();
    if (consume("*")) {
      long r = dim_primary();
      dim_check(op, !__builtin_mul_overflow(v, r, &v));
    } else if (consume("/")) {
      long r = dim_primary();
      if (r == 0)
        error_tok(op, "dim expression divides by zero");
      if (v % r != 0)
        error_tok(op, "dim expression %ld / %ld is not a whole number", v, r);
      v /= r;
    } else {
      return v;
    }
  }
}

/* dim_expr = dim_term (("+" | "-") dim_term)* */
static long dim_expr(void) {
  long v = dim_term();
  for (;;) {
    Token *op = peek();
    if (consume("+")) {
      long r = dim_term();
      dim_check(op, !__builtin_add_overflow(v, r, &v));
    } else if (consume("-")) {
      long r = dim_term();
      dim_check(op, !__builtin_sub_overflow(v, r, &v));
    } else {
      return v;
    }
  }
}

/* A dim expression whose value must be a positive int. */
static long dim_value(void) {
  Token *t = peek();
  long v = dim_expr();
  if (v <= 0 || v > INT_MAX)
    error_tok(t, "a dim must be a positive integer, got %ld", v);
  return v;
}

/* shape = "[" (dim_value ("," dim_value)*)? "]"
 * In reshape, one entry may be the literal -1: inferred from numel (at *infer). */
static Shape parse_shape(int *infer) {
  Shape s = {0};
  Token *open = open_bracket("[");
  if (infer)
    *infer = -1;
  if (!at("]")) {
    do {
      Token *t = peek();
      if (s.rank == MAXRANK)
        error_tok(t, "more than %d axes", MAXRANK);
      if (infer && *infer < 0 && tok_is(t, "-") && t->next->kind == TK_NUM && t->next->is_int &&
          t->next->num == 1 && (tok_is(t->next->next, ",") || tok_is(t->next->next, "]"))) {
        next();
        next();
        *infer = s.rank;
        s.dim[s.rank++] = 1;
        continue;
      }
      s.dim[s.rank++] = (int)dim_value();
    } while (consume(","));
  }
  expect_close(open, "]");
  long numel = 1;
  for (int i = 0; i < s.rank; i++)
    if (__builtin_mul_overflow(numel, (long)s.dim[i], &numel) || numel > INT_MAX)
      error_tok(open, "shape %s has more than %d elements", shape_str(&s), INT_MAX);
  return s;
}

/* ---- initialisers ------------------------------------------------------------- */

static InitExpr *init_expr(void);

static InitExpr *new_init(InitKind kind, double num, InitExpr *a, InitExpr *b) {
  InitExpr *e = arena_alloc(sizeof *e);
  e->kind = kind;
  e->num = num;
  e->a = a;
  e->b = b;
  return e;
}

/* Folds an operator over two numbers; e's kind says which. */
static InitExpr *fold_init(Token *t, InitExpr *e) {
  InitExpr *a = e->a, *b = e->b;
  if (a->kind != INIT_NUM || (b && b->kind != INIT_NUM))
    return e;
  double v;
  switch (e->kind) {
  case INIT_ADD: v = a->num + b->num; break;
  case INIT_SUB: v = a->num - b->num; break;
  case INIT_MUL: v = a->num * b->num; break;
  case INIT_DIV: v = a->num / b->num; break;
  case INIT_NEG: v = -a->num; break;
  case INIT_SQRT: v = sqrt(a->num); break;
  default: unreachable();
  }
  if (!isfinite(v))
    error_tok(t, "initialiser constant is not a finite number");
  return new_init(INIT_NUM, v, NULL, NULL);
}

/* init_primary = NUM | DIMNAME | "randn" | "uniform" | "zeros" | "ones"
 *              | "sqrt" "(" init_expr ")" | "(" init_expr ")" | "-" init_primary */
static InitExpr *init_primary(void) {
  Token *t = peek();
  enter(t);
  InitExpr *e;
  if (consume("-")) {
    e = fold_init(t, new_init(INIT_NEG, 0, init_primary(), NULL));
  } else if (at("(")) {
    Token *open = open_bracket("(");
    e = init_expr();
    expect_close(open, ")");
  } else if (t->kind == TK_NUM) {
    next();
    e = new_init(INIT_NUM, t->num, NULL, NULL);
  } else if (consume("randn")) {
    e = new_init(INIT_RANDN, 0, NULL, NULL);
  } else if (consume("uniform")) {   /* U(-1, 1): PyTorch's Linear is uniform / sqrt(fan_in) */
    e = new_init(INIT_UNIFORM, 0, NULL, NULL);
  } else if (consume("zeros")) {
    e = new_init(INIT_NUM, 0, NULL, NULL);
  } else if (consume("ones")) {
    e = new_init(INIT_NUM, 1, NULL, NULL);
  } else if (consume("sqrt")) {
    Token *open = open_bracket("(");
    e = fold_init(t, new_init(INIT_SQRT, 0, init_expr(), NULL));
    expect_close(open, ")");
  } else if (t->kind == TK_IDENT) {
    next();
    Sym *s = find_sym(t);
    if (!s || s->kind != SYM_DIM)
      error_tok(t, "%s '%.*s' in an initialiser (use randn, zeros, ones, numbers, dims, sqrt)",
                s ? "cannot use" : "unknown name", t->len, t->loc);
    e = new_init(INIT_NUM, (double)s->value, NULL, NULL);
  } else {
    error_tok(t, "expected an initialiser, got %s", describe(t));
  }
  depth--;
  return e;
}

/* init_term = init_primary (("*" | "/") init_primary)* */
static InitExpr *init_term(void) {
  InitExpr *e = init_primary();
  for (;;) {
    Token *op = peek();
    if (consume("*"))
      e = fold_init(op, new_init(INIT_MUL, 0, e, init_primary()));
    else if (consume("/"))
      e = fold_init(op, new_init(INIT_DIV, 0, e, init_primary()));
    else
      return e;
  }
}

/* init_expr = init_term (("+" | "-") init_term)* */
static InitExpr *init_expr(void) {
  InitExpr *e = init_term();
  for (;;) {
    Token *op = peek();
    if (consume("+"))
      e = fold_init(op, new_init(INIT_ADD, 0, e, init_term()));
    else if (consume("-"))
      e = fold_init(op, new_init(INIT_SUB, 0, e, init_term()));
    else
      return e;
  }
}

/* ---- tensor expressions -------------------------------------------------------- */

static Val expr(void);

static Val constant(double c, Token *t) {
  if (!isfinite(c))
    error_tok(t, "constant expression is not a finite number");
  return (Val){.c = c, .tok = t};
}

static Val node_val(Node *n) { return (Val){.n = n, .tok = n->tok}; }

/* The value as a node: a constant becomes an OP_const scalar. */
static Node *to_node(Val v) {
  if (v.n)
    return v.n;
  return graph_const(g, v.tok, v.c);
}

static Node *add_op(OpKind op, Token *t, Node *a, Node *b, Node *c, const Shape *given, const NodeAttr *at) {
  return graph_add(g, op, t, a, b, c, given, at);
}

/* ---- constant folding: the fold column of ops.h ---------------------------------- */

double fold_add(const double *x, const NodeAttr *at) { (void)at; return x[0] + x[1]; }
double fold_sub(const double *x, const NodeAttr *at) { (void)at; return x[0] - x[1]; }
double fold_mul(const double *x, const NodeAttr *at) { (void)at; return x[0] * x[1]; }
double fold_div(const double *x, const NodeAttr *at) { (void)at; return x[0] / x[1]; }
double fold_pow(const double *x, const NodeAttr *at) { return pow(x[0], at->num); }
double fold_neg(const double *x, const NodeAttr *at) { (void)at; return -x[0]; }
double fold_exp(const double *x, const NodeAttr *at) { (void)at; return exp(x[0]); }
double fold_log(const double *x, const NodeAttr *at) { (void)at; return log(x[0]); }
double fold_tanh(const double *x, const NodeAttr *at) { (void)at; return tanh(x[0]); }
double fold_relu(const double *x, const NodeAttr *at) { (void)at; return x[0] > 0 ? x[0] : 0; }
double fold_sigmoid(const double *x, const NodeAttr *at) { (void)at; return 1 / (1 + exp(-x[0])); }
double fold_sqrt(const double *x, const NodeAttr *at) { (void)at; return sqrt(x[0]); }
double fold_gelu(const double *x, const NodeAttr *at) {
  (void)at;
  return 0.5 * x[0] * (1 + tanh(0.79788456080286535588 * (x[0] + 0.044715 * x[0] * x[0] * x[0])));
}

/* op over vals: a constant when every input is one and the op folds, else a node */
static Val apply(OpKind op, Token *t, const Val *in, const Shape *given, const NodeAttr *at) {
  int n = optab[op].arity;
  bool all_const = optab[op].fold != NULL;
  double c[MAXIN];
  for (int i = 0; i < n; i++) {
    all_const &= !in[i].n;
    c[i] = in[i].c;
  }
  if (all_const)
    return constant(optab[op].fold(c, at ? at : &(NodeAttr){0}), t);
  Node *x[MAXIN] = {0};
  for (int i = 0; i < n; i++)   /* in order: a constant becomes a node here */
    x[i] = to_node(in[i]);
  return node_val(add_op(op, t, x[0], x[1], x[2], given, at));
}

/* a OP b, folded when both are constants */
static Val binary(OpKind op, Token *t, Val a, Val b) {
  /* x / 0: every element Inf or NaN, e.g. Bessel's / (B - 1) at -D B=1 */
  if (op == OP_div && !b.n && b.c == 0)
    error_tok(t, "division by zero: the divisor is a constant that is 0 here%s",
              novrs ? " (with the dims given by -D)" : "");
  return apply(op, t, (Val[]){a, b}, NULL, NULL);
}

static double const_of(Val v, const char *what) {
  if (v.n)
    error_tok(v.tok, "%s must be a constant", what);
  return v.c;
}

static int axis_of(Val v, Node *x) {
  double a = const_of(v, "the axis");
  int rank = x->shape.rank;
  if (a != floor(a) || a < -rank || a >= rank)
    error_tok(v.tok, "axis %g out of range for %s (rank %d)", a, shape_str(&x->shape), rank);
  return a < 0 ? (int)a + rank : (int)a;
}

typedef struct Arg {
  Token *name;           /* keyword, or NULL */
  Token *start;
  Val v;
  int flag;              /* true/false given: 1/0; else -1 */
} Arg;

/* args = "(" (arg ("," arg)*)? ")"     arg = (IDENT "=")? (expr | "true" | "false") */
static int parse_args(Token *open, Arg *args, Token **close) {
  int n = 0;
  if (!at(")")) {
    do {
      Token *t = peek();
      if (n == MAXARGS)
        error_tok(t, "too many arguments");
      Arg *a = &args[n++];
      *a = (Arg){.flag = -1};
      if (t->kind == TK_IDENT && tok_is(t->next, "=")) {
        a->name = next();
        next();
      }
      a->start = peek();
      if (consume("true"))
        a->flag = 1;
      else if (consume("false"))
        a->flag = 0;
      else
        a->v = expr();
    } while (consume(","));
  }
  *close = peek();
  expect_close(open, ")");
  return n;
}

/* true/false are the values of the AK_BOOL attributes only */
static bool bool_attr(Token *name) {
  for (int a = 0; a < AT_COUNT; a++)
    if (attr_kind((AttrName)a) == AK_BOOL && name && tok_is(name, attr_name((AttrName)a)))
      return true;
  return false;
}

/* Splits args into the sig's positional tensors and its attributes;
 * kwargs[i] is the argument given for sig->attr[i], or NULL. */
static void check_args(Token *fn, Token *close, Arg *args, int n, const OpSig *sig, Arg **kwargs) {
  int pos = 0, npos = sig->ntensor, nopt = sig->npositional;
  for (int i = 0; i < sig->nattr; i++)
    kwargs[i] = NULL;
  for (int i = 0; i < n; i++) {
    Arg *a = &args[i];
    if (!a->name) {
      if (i > pos)
        error_tok(a->start, "positional argument after a keyword argument");
      if (pos == npos + nopt)
        error_tok(a->start, "%.*s takes %d argument%s, got %d", fn->len, fn->loc, npos,
                  npos == 1 ? "" : "s", n);
      /* an optional positional is the first keyword */
      if (pos >= npos)
        kwargs[pos - npos] = a;
      pos++;
      continue;
    }
    int k = 0;
    while (k < sig->nattr && !tok_is(a->name, sig->attr[k].name))
      k++;
    if (k == sig->nattr)
      error_tok(a->name, "%.*s has no argument '%.*s'", fn->len, fn->loc, a->name->len,
                a->name->loc);
    if (kwargs[k])
      error_tok(a->name, "argument '%s' given twice", sig->attr[k].name);
    kwargs[k] = a;
  }
  if (pos < npos)
    error_tok(close, "%.*s takes %d argument%s, got %d", fn->len, fn->loc, npos,
              npos == 1 ? "" : "s", pos);
  for (int i = 0; i < n; i++)
    if (args[i].flag >= 0 && !bool_attr(args[i].name)) {
      Buf names = {0};
      for (int at = 0; at < AT_COUNT; at++)
        if (attr_kind((AttrName)at) == AK_BOOL)
          buf_printf(&names, "%s'%s'", names.len ? " or " : "", attr_name((AttrName)at));
      error_tok(args[i].start, "true/false is only for %s", buf_done(&names));
    }
  for (int i = 0; i < n; i++)
    if (bool_attr(args[i].name) && args[i].flag < 0)
      error_tok(args[i].start, "%.*s must be true or false", args[i].name->len, args[i].name->loc);
}

/* The value of attribute i of sig: the argument given (checked for its kind)
 * or the default.  x is input 0, which an axis refers to. */
static double attr_value(const OpSig *sig, int i, Arg *given, Node *x) {
  AttrKind kind = sig->attr[i].kind;
  const char *d = sig->attr[i].dflt;
  if (!given) {
    if (kind == AK_BOOL)
      return strcmp(d, "true") == 0;
    if (kind == AK_AXIS && strcmp(d, "all") == 0)
      return -1;
    if (kind == AK_AXIS && strcmp(d, "last") == 0)
      return x->shape.rank - 1;
    return strtod(d, NULL);
  }
  switch (kind) {
  case AK_AXIS: return axis_of(given->v, x);
  case AK_BOOL: return given->flag == 1;
  case AK_INT: {
    double v = const_of(given->v, sig->attr[i].name);
    if (v != floor(v) || v < INT_MIN || v > INT_MAX)
      error_tok(given->start, "%s must be a whole number, got %g", sig->attr[i].name, v);
    return v;
  }
  case AK_NONNEG: {
    double v = const_of(given->v, sig->attr[i].name);
    if (v < 0)
      error_tok(given->start, "%s must not be negative, got %g", sig->attr[i].name, v);
    return v;
  }
  }
  unreachable();
}

/* Stores an attribute's value in the Node field its ATTR row names. */
static void set_attr(NodeAttr *at, AttrName a, double v) {
  switch (a) {
#define ATTR(name, kind, field) case AT_##name: at->field = v; break;
#include "ops.h"
#undef ATTR
  default: unreachable();
  }
}

static Val reshape_call(Token *fn);

/* call = FUNC args   (the function's sig in ops.h says which arguments it takes) */
static Val call(Token *fn, OpKind op) {
  const char *err;
  const OpSig *sig = op_sig(op, &err);
  if (!sig)
    die("ops.h: sig of %s: %s", optab[op].name, err);
  if (sig->shape_arg)
    return reshape_call(fn);
  Arg args[MAXARGS];
  Token *open = open_bracket("("), *close;
  int n = parse_args(open, args, &close);   /* missing arguments are reported at ')' */
  Arg *kw[MAXATTR];
  check_args(fn, close, args, n, sig, kw);

  Val in[MAXIN] = {0};
  for (int i = 0; i < sig->ntensor; i++)
    in[i] = args[i].v;
  if (sig->nattr == 0)
    return apply(op, fn, in, NULL, NULL);
  /* attributes refer to the tensors (an axis to input 0's rank): nodes first */
  for (int i = 0; i < sig->ntensor; i++)
    in[i] = node_val(to_node(in[i]));
  NodeAttr at = {0};
  for (int i = 0; i < sig->nattr; i++)
    set_attr(&at, sig->attr[i].at, attr_value(sig, i, kw[i], in[0].n));
  return apply(op, fn, in, NULL, &at);
}

/* reshape(x, [dims]) parses its own arguments, as a shape is no expression:
 * reshape = "reshape" "(" expr "," shape ")" */
static Val reshape_call(Token *fn) {
  Token *open = open_bracket("(");
  Node *x = to_node(expr());
  expect(",", "after reshape's first argument");
  int infer;
  Token *shtok = peek();
  if (!at("["))
    error_tok(shtok, "reshape needs a shape in brackets, got %s", describe(shtok));
  Shape s = parse_shape(&infer);
  if (infer >= 0) {
    long rest = shape_numel(&s), all = shape_numel(&x->shape);
    if (all % rest != 0)
      error_tok(shtok, "reshape: cannot infer -1: %s has %ld elements, not a multiple of %ld",
                shape_str(&x->shape), all, rest);
    s.dim[infer] = (int)(all / rest);
  }
  expect_close(open, ")");
  return node_val(add_op(OP_reshape, fn, x, NULL, NULL, &s, NULL));
}

/* stack = "stack" "(" NAME ("," ("axis" "=")? expr)? ")"
 * The values NAME took in the iterations of its loop, each given a new axis
 * of 1 at `axis`, joined along it (graph_concat). */
static Val stack_call(Token *fn) {
  Token *open = open_bracket("(");
  Token *name = expect_ident("the name of a tensor a loop assigns");
  LoopVals *lv = strmap_get(&loopvals, name->loc, (size_t)name->len);
  if (!lv)
    error_tok(name, "stack: '%.*s' is not assigned in a for loop", name->len, name->loc);
  for (int i = 0; i < nloops; i++)
    if (loops[i].run == lv->loop)
      error_tok(name, "stack: the loop at line %d that assigns '%.*s' has not ended", lv->for_tok->line, name->len,
                name->loc);
  for (int i = 0; i < lv->n; i++)
    if (!lv->v[i])
      error_tok(name, "stack: '%.*s' is not assigned in iteration %d of the loop at line %d", name->len, name->loc,
                i, lv->for_tok->line);
  const Shape *s0 = &lv->v[0]->shape;
  long axis = 0;
  if (consume(",")) {
    if (tok_is(peek(), "axis") && tok_is(peek()->next, "=")) {
      next();
      next();
    }
    Val a = expr();
    double c = const_of(a, "the axis");
    if (c != floor(c) || c < -(s0->rank + 1) || c > s0->rank)
      error_tok(a.tok, "stack: axis %g out of range for %s (a new axis goes at 0..%d)", c, shape_str(s0), s0->rank);
    axis = c < 0 ? (long)c + s0->rank + 1 : (long)c;
  }
  expect_close(open, ")");
  if (s0->rank == MAXRANK)
    error_tok(fn, "stack: %s already has %d axes", shape_str(s0), MAXRANK);
  Node **parts = arena_alloc(sizeof *parts * (size_t)lv->n);
  for (int i = 0; i < lv->n; i++) {
    Node *x = lv->v[i];
    if (!shape_eq(&x->shape, s0))
      error_tok(name, "stack: '%.*s' is %s in iteration %d but %s in iteration 0", name->len, name->loc,
                shape_str(&x->shape), i, shape_str(s0));
    Shape s = {.rank = s0->rank + 1};
    for (int d = 0, k = 0; d < s.rank; d++)
      s.dim[d] = d == axis ? 1 : s0->dim[k++];
    parts[i] = add_op(OP_reshape, fn, x, NULL, NULL, &s, NULL);
  }
  return node_val(graph_concat(g, fn, parts, lv->n, (int)axis));
}

/* primary = NUM | NAME | FUNC args | "reshape" "(" expr "," shape ")" | "(" expr ")" */
static Val primary(void) {
  Token *t = peek();
  if (t->kind == TK_NUM) {
    next();
    return constant(t->num, t);
  }
  if (at("(")) {
    Token *open = open_bracket("(");
    Val v = expr();
    expect_close(open, ")");
    return v;
  }
  if (t->kind != TK_IDENT)
    error_tok(t, "expected an expression, got %s%s", describe(t),
              t->kind == TK_NEWLINE ? " (a statement continues on the next line only inside ( ) or [ ])"
                                    : "");
  next();
  if (tok_is(t, "stack") && tok_is(peek(), "("))
    return stack_call(t);
  if (tok_is(peek(), "(")) {
    OpKind op = function_op(t);
    if (op == OP_COUNT)
      error_tok(t, "unknown function '%.*s'", t->len, t->loc);
    return call(t, op);
  }
  Sym *s = find_sym(t);
  if (!s) {
    if (is_builtin(t))
      error_tok(t, "'%.*s' cannot be used as a value here", t->len, t->loc);
    error_tok(t, "unknown name '%.*s'", t->len, t->loc);
  }
  if (s->kind == SYM_DONE)
    error_tok(t, "'%.*s' is the variable of the loop at line %d, which has ended", t->len, t->loc, s->tok->line);
  if (s->kind == SYM_DIM || s->kind == SYM_LOOPVAR)
    return constant((double)s->value, t);
  if (!s->node)
    error_tok(t, "'%s' is used in its own definition", s->name);
  return (Val){.n = s->node, .tok = t};
}

/* One entry of an index: `i`, `a:b`, `a:`, `:b` or `:` (bounds constants,
 * negative ones counted from the end, as Python's). */
typedef struct IndexEntry {
  Token *tok;
  Val lo, hi;
  bool range, has_lo, has_hi;
} IndexEntry;

static long index_bound(Val v, long dim, bool is_end, const char *what) {
  double c = const_of(v, what);
  if (c != floor(c))
    error_tok(v.tok, "an index must be a whole number, got %g", c);
  long i = (long)c < 0 ? (long)c + dim : (long)c;
  if (i < 0 || i > dim || (!is_end && i == dim))
    error_tok(v.tok, "index %g is out of range for an axis of %ld (%s)", c, dim,
              is_end ? "an end may be 0..the length, or negative from the end" : "0..length-1, or negative from the end");
  return i;
}

/* x[e0, e1, ...]: one slice per cut axis (the op table's slice), then a
 * reshape dropping the axes a single index selects. */
static Val index_expr(Token *open, Val v, IndexEntry *ent, int nent) {
  Node *x = to_node(v);
  if (nent > x->shape.rank)
    error_tok(ent[x->shape.rank].tok, "too many indices: %s has %d axes", shape_str(&x->shape), x->shape.rank);
  Shape out = {0};
  for (int d = 0; d < nent; d++) {
    IndexEntry *e = &ent[d];
    long dim = x->shape.dim[d], lo = 0, hi = dim;
    if (!e->range) {
      lo = index_bound(e->lo, dim, false, "an index");
      hi = lo + 1;
    } else {
      if (e->has_lo)
        lo = index_bound(e->lo, dim, false, "the start of a range");
      if (e->has_hi)
        hi = index_bound(e->hi, dim, true, "the end of a range");
      if (hi <= lo)
        error_tok(e->tok, "empty range %ld:%ld (the end must come after the start)", lo, hi);
    }
    if (lo != 0 || hi != dim) {
      Shape s = x->shape;
      s.dim[d] = (int)(hi - lo);
      x = add_op(OP_slice, e->tok, x, NULL, NULL, &s, &(NodeAttr){.axis = d, .start = (int)lo});
    }
    if (e->range)
      out.dim[out.rank++] = x->shape.dim[d];
  }
  for (int d = nent; d < x->shape.rank; d++)
    out.dim[out.rank++] = x->shape.dim[d];
  if (out.rank != x->shape.rank)
    x = add_op(OP_reshape, open, x, NULL, NULL, &out, NULL);
  return node_val(x);
}

/* postfix = primary ("[" index "]")*
 * index = expr (a tensor: gather rows)  |  entry ("," entry)*
 * entry = expr | expr? ":" expr?        (constants: slicing) */
static Val postfix(void) {
  Val v = primary();
  while (at("[")) {
    Token *open = open_bracket("[");
    IndexEntry ent[MAXRANK + 1];
    int n = 0;
    do {
      if (n == MAXRANK + 1)
        error_tok(peek(), "too many indices (at most %d axes)", MAXRANK);
      IndexEntry *e = &ent[n++];
      *e = (IndexEntry){.tok = peek()};
      if (!at(":") && !at(",") && !at("]")) {
        e->lo = expr();
        e->has_lo = true;
      }
      if (consume(":")) {
        e->range = true;
        if (!at(",") && !at("]")) {
          e->hi = expr();
          e->has_hi = true;
        }
      } else if (!e->has_lo) {
        error_tok(e->tok, "expected an index, a range a:b or ':', got %s", describe(e->tok));
      }
    } while (consume(","));
    expect_close(open, "]");
    if (n == 1 && !ent[0].range && ent[0].lo.n)   /* a tensor of indices: rows of the table */
      v = node_val(add_op(OP_gather, open, to_node(v), ent[0].lo.n, NULL, NULL, NULL));
    else {
      for (int i = 0; i < n; i++)
        if ((ent[i].has_lo && ent[i].lo.n) || (ent[i].has_hi && ent[i].hi.n))
          error_tok(ent[i].tok, "a slice's bounds must be constants (a tensor of indices is a gather: C[X], alone in "
                    "the brackets)");
      v = index_expr(open, v, ent, n);
    }
  }
  return v;
}

static Val unary(void);

/* power = postfix ("^" unary)?      (right associative; the exponent a constant) */
static Val power(void) {
  Val v = postfix();
  Token *op = peek();
  if (!consume("^"))
    return v;
  Val e = unary();
  double p = const_of(e, "the exponent of ^");
  return apply(OP_pow, op, &v, NULL, &(NodeAttr){.num = p});
}

/* unary = "-" unary | power */
static Val unary(void) {
  Token *t = peek();
  enter(t);
  Val v;
  if (consume("-")) {
    v = unary();
    v = apply(OP_neg, t, &v, NULL, NULL);
  } else {
    v = power();
  }
  depth--;
  return v;
}

/* a @ b, and a @ transpose(w) as one matmul reading w transposed (llm.c's
 * weights are stored (out, in): a layer is x·Wᵀ): the transpose just made for
 * this product, unnamed and swapping b's last two axes, is taken back. */
static Node *matmul_op(Token *op, Node *a, Node *b) {
  int r = b->shape.rank;
  bool tb = b->op == OP_transpose && !b->name && g->nnodes > 0 && g->nodes[g->nnodes - 1] == b && r >= 2 &&
            ((b->axis == r - 2 && b->axis2 == r - 1) || (b->axis == r - 1 && b->axis2 == r - 2));
  if (tb) {
    g->nnodes--;
    b = b->in[0];
  }
  return add_op(OP_matmul, op, a, b, NULL, NULL, &(NodeAttr){.transb = tb});
}

/* term = unary (("*" | "/" | "@") unary)* */
static Val term(void) {
  Val v = unary();
  for (;;) {
    Token *op = peek();
    if (consume("*"))
      v = binary(OP_mul, op, v, unary());
    else if (consume("/"))
      v = binary(OP_div, op, v, unary());
    else if (consume("@"))
      v = node_val(matmul_op(op, to_node(v), to_node(unary())));
    else
      return v;
  }
}

/* expr = term (("+" | "-") term)* */
static Val expr(void) {
  Val v = term();
  for (;;) {
    Token *op = peek();
    if (consume("+"))
      v = binary(OP_add, op, v, term());
    else if (consume("-"))
      v = binary(OP_sub, op, v, term());
    else
      return v;
  }
}

/* ---- lines -------------------------------------------------------------------- */

/* dim = "dim" NAME "=" dim_value */
static void dim_decl(void) {
  Token *name = expect_ident("a dim name after 'dim'");
  Sym *s = define(name, SYM_DIM);
  expect("=", "after the dim name");
  s->value = dim_value();
  for (int i = 0; i < novrs; i++)
    if (strcmp(ovrs[i].name, s->name) == 0) {
      if (ovrs[i].value <= 0 || ovrs[i].value > INT_MAX)
        error_plain("-D %s=%ld: a dim must be a positive integer", ovrs[i].name, ovrs[i].value);
      s->value = ovrs[i].value;
      ovrs[i].used = true;
    }
  Dim *d = arena_alloc(sizeof *d * (size_t)(g->ndims + 1));
  if (g->ndims)
    memcpy(d, g->dims, sizeof *d * (size_t)g->ndims);
  d[g->ndims++] = (Dim){.name = s->name, .value = s->value, .tok = name};
  g->dims = d;
}

/* input = "input" NAME ":" "int"? shape */
static void input_decl(void) {
  Token *name = expect_ident("an input name after 'input'");
  Sym *s = define(name, SYM_INPUT);
  expect(":", "after the input name");
  bool is_int = consume("int");
  Shape sh = parse_shape(NULL);
  s->node = add_op(OP_input, name, NULL, NULL, NULL, &sh, NULL);
  s->node->name = s->name;
  s->node->type = is_int ? TY_INT : TY_FLOAT;
}

/* param = "param" NAME ":" shape "~" init_expr */
static void param_decl(void) {
  Token *name = expect_ident("a param name after 'param'");
  Sym *s = define(name, SYM_PARAM);
  expect(":", "after the param name");
  if (at("int"))
    error_tok(peek(), "params are float tensors");
  Shape sh = parse_shape(NULL);
  expect("~", "and an initialiser after the param's shape (e.g. ~ randn * 0.1)");
  InitExpr *init = init_expr();
  s->node = add_op(OP_param, name, NULL, NULL, NULL, &sh, &(NodeAttr){.init = init});
  s->node->name = s->name;
}

/* Records v as base's value in this iteration of the innermost loop. */
static void record_loop_value(Token *name, Node *v) {
  const char *base = tok_str(name);
  LoopVals *lv = strmap_get(&loopvals, base, strlen(base));
  if (!lv) {
    lv = arena_alloc(sizeof *lv);
    strmap_put(&loopvals, base, lv);
  }
  int run = loops[nloops - 1].run, it = loops[nloops - 1].iter;
  if (lv->loop != run) {
    lv->loop = run;
    lv->for_tok = loops[nloops - 1].tok;
    lv->n = 0;
  }
  if (it >= lv->cap) {
    int cap = it + 16;
    Node **nv = arena_alloc(sizeof *nv * (size_t)cap);
    if (lv->n)
      memcpy(nv, lv->v, sizeof *nv * (size_t)lv->n);
    lv->v = nv;
    lv->cap = cap;
  }
  while (lv->n <= it)
    lv->v[lv->n++] = NULL;
  lv->v[it] = v;
}

/* stmt = NAME "=" expr
 * A name given to a tensor another name holds is a second name for it (`h =
 * start` before an RNN's loop).  In a loop body the expression is read first
 * (it may use the name's previous value), then NAME_i names the result. */
static void stmt(Token *name) {
  Sym *s = nloops ? NULL : define(name, SYM_STMT);
  next();   /* = */
  Val v = expr();
  if (!v.n)
    error_tok(name, "'%.*s' is a constant (%g); use it inline or make it a dim", name->len, name->loc, v.c);
  if (nloops) {
    Buf full = {0};
    buf_printf(&full, "%.*s", name->len, name->loc);
    for (int i = 0; i < nloops; i++)
      buf_printf(&full, "_%d", loops[i].iter);
    s = define_as(name, buf_done(&full), SYM_STMT, true);
    record_loop_value(name, v.n);
  }
  if (!v.n->name)
    v.n->name = s->name;
  s->node = v.n;
}

static void line(void);

/* The `end` closing the loop whose body starts at t. */
static Token *loop_end(Token *for_tok, Token *t) {
  int open = 1;
  for (bool at_start = true; t->kind != TK_EOF; t = t->next) {
    if (at_start && tok_is(t, "for"))
      open++;
    if (at_start && tok_is(t, "end") && --open == 0)
      return t;
    at_start = t->kind == TK_NEWLINE;
  }
  error_tok(for_tok, "'for' without a matching 'end'");
}

/* loop = "for" NAME "in" dim_value NEWLINE line* "end"
 * The body is parsed once per iteration, NAME bound to 0, 1, ... */
static void for_loop(Token *for_tok) {
  if (nloops == MAXLOOPS)
    error_tok(for_tok, "loops nested more than %d deep", MAXLOOPS);
  Token *var = expect_ident("a loop variable after 'for'");
  if (!consume("in"))
    error_tok(peek(), "expected 'in' after the loop variable, got %s", describe(peek()));
  Token *count_tok = peek();
  long n = dim_expr();
  if (n <= 0 || n > INT_MAX)
    error_tok(count_tok, "a loop runs a positive number of times, got %ld", n);
  if (tok->kind != TK_NEWLINE)
    error_tok(tok, "expected end of line after 'for %.*s in ...', got %s", var->len, var->loc, describe(tok));
  next();
  Token *body = tok, *end = loop_end(for_tok, body);
  int lv = (int)(define(var, SYM_LOOPVAR) - syms);   /* an index: syms grows as the body defines names */
  int k = nloops++;
  loops[k].run = ++loop_runs;
  loops[k].tok = for_tok;
  for (long i = 0; i < n; i++) {
    syms[lv].value = i;
    loops[k].iter = (int)i;
    tok = body;
    while (tok != end)
      line();
    if (g->nnodes > MAXNODES)
      error_tok(for_tok, "the loop makes more than %d nodes (iteration %ld of %ld)", MAXNODES, i + 1, n);
  }
  nloops--;
  syms[lv].kind = SYM_DONE;
  next();   /* end */
}

/* line = (dim | input | param | loop | stmt)? NEWLINE */
static void line(void) {
  Token *t = next();
  if (nloops && (tok_is(t, "dim") || tok_is(t, "input") || tok_is(t, "param")))
    error_tok(t, "declarations go before the loop (a param per iteration is one param with a leading axis, "
              "indexed W[l])");
  if (tok_is(t, "dim"))
    dim_decl();
  else if (tok_is(t, "input"))
    input_decl();
  else if (tok_is(t, "param"))
    param_decl();
  else if (tok_is(t, "for"))
    for_loop(t);
  else if (tok_is(t, "end"))
    error_tok(t, "'end' without a 'for'");
  else if (t->kind == TK_IDENT && tok_is(peek(), "="))
    stmt(t);
  else if (t->kind == TK_IDENT)
    error_tok(peek(), "expected '=' after '%.*s' (statements are NAME = expression), got %s",
              t->len, t->loc, describe(peek()));
  else
    error_tok(t, "expected a declaration or a statement, got %s", describe(t));
  if (tok->kind != TK_NEWLINE)
    error_tok(tok, "expected end of line, got %s", describe(tok));
  next();
}

/* spec = (line? NEWLINE)* EOF      line = dim | input | param | stmt */
Graph *parse_spec(const SrcFile *f, DimOverride *ovr, int novr) {
  g = new_graph(f);
  tok = lex_file(f);
  nest = depth = 0;
  syms = NULL;
  nsyms = symcap = 0;
  symidx = (StrMap){0};
  ovrs = ovr;
  novrs = novr;
  nloops = loop_runs = 0;
  loopvals = (StrMap){0};
  if (tok->kind == TK_EOF)
    error_at(f, f->text, "empty spec");

  while (tok->kind != TK_EOF)
    line();

  for (int i = 0; i < novr; i++)
    if (!ovr[i].used)
      error_plain("-D %s: no dim named %s", ovr[i].name, ovr[i].name);
  Token *eof = tok;
  Sym *s = find_name("loss", 4);
  if (s && s->kind != SYM_DONE) {
    if (s->kind != SYM_STMT)
      error_tok(s->tok, "'loss' must be computed by a statement");
    if (s->node->shape.rank != 0)
      error_tok(s->tok, "the loss must be a scalar, got %s", shape_str(&s->node->shape));
    g->loss = s->node;
  }
  if (!g->loss)
    error_tok(eof, "no `loss` statement");
  g->nforward = g->nnodes;
  return g;
}
