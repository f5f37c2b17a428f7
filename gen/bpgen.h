/* bpgen.h: the types every stage of the generator shares, one section per .c.
 *
 * The pipeline:  spec text -> Token list (lex.re) -> Graph of Nodes with shapes
 * (parse.c builds nodes through graph.c, which runs each op's shape rule from
 * ops.h as the node is made) -> backward nodes appended to the same Graph
 * (grad.c) -> C source (emit.c) -> function pointers (jit.c).  The reference
 * runtime (runtime/ref.h) interprets the forward part of a Graph on its own.
 *
 * Memory: everything the generator makes comes from one arena (arena.c) and is
 * freed at once with arena_reset(); no stage frees single objects.
 */
#ifndef BPGEN_H
#define BPGEN_H

#include <stdarg.h>
#include <stdio.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>

#ifndef __GNUC__
#define __attribute__(x)
#endif
#define NORETURN __attribute__((noreturn))
#define PRINTF(f, a) __attribute__((format(printf, f, a)))

enum { MAXRANK = 6, MAXIN = 4 };

typedef struct SrcFile SrcFile;
typedef struct Token Token;
typedef struct Node Node;
typedef struct Graph Graph;
typedef struct Emit Emit;

/* ---- arena.c ---------------------------------------------------------------- */
void *arena_alloc(size_t n);                  /* zeroed; exits on failure */
char *arena_strndup(const char *s, size_t n);
char *arena_printf(const char *fmt, ...) PRINTF(1, 2);
void arena_reset(void);                       /* frees everything at once */
/* Growable text (malloc'd while it grows): buf_printf appends; buf_done returns
 * an arena copy and frees the buffer.  Start from Buf b = {0}. */
typedef struct Buf {
  char *p;
  size_t len, cap;
} Buf;
void buf_vprintf(Buf *b, const char *fmt, va_list ap);
void buf_printf(Buf *b, const char *fmt, ...) PRINTF(2, 3);
char *buf_done(Buf *b);
/* A map from strings to pointers (keys are kept, not copied; both in the
 * arena).  Start from StrMap m = {0}; get returns NULL for a missing key. */
typedef struct StrMap {
  const char **keys;
  void **vals;
  size_t cap, n;
} StrMap;
void *strmap_get(const StrMap *m, const char *key, size_t len);
void strmap_put(StrMap *m, const char *key, void *val);
void *xmalloc(size_t n);                      /* malloc or die with context */
void *xcalloc(size_t n, size_t size);

/* ---- error.c ---------------------------------------------------------------- */
/* User errors print "file:line:col: error: msg", the source line and a caret
 * under the offending text, then exit(1) -- unless a catcher is armed with
 * error_catch(), in which case the formatted report is kept in error_text()
 * and control returns through the jmp_buf (tests and the fuzz target use it). */
struct SrcFile {
  const char *name;    /* as given on the command line */
  const char *text;    /* whole contents, NUL-terminated */
  size_t len;
};
NORETURN void error_tok(const Token *tok, const char *fmt, ...) PRINTF(2, 3);
NORETURN void error_at(const SrcFile *f, const char *loc, const char *fmt, ...) PRINTF(3, 4);
NORETURN void error_plain(const char *fmt, ...) PRINTF(1, 2);   /* "bpgen: error: ..." no location */
NORETURN void error_usage(const char *fmt, ...) PRINTF(1, 2);   /* the same, exit status 2 */
NORETURN void die_at(const char *file, int line, const char *fmt, ...) PRINTF(3, 4);
#define die(...) die_at(__FILE__, __LINE__, __VA_ARGS__)
#define unreachable() die_at(__FILE__, __LINE__, "unreachable")
void error_catch(jmp_buf *jb);                /* NULL disarms */
const char *error_text(void);                 /* last caught report ("" if none) */
SrcFile *read_src(const char *path);
void write_text(const char *path, const char *text);   /* error_plain on failure */          /* error_plain on failure; "-" = stdin */
SrcFile *src_from_string(const char *name, const char *text);

/* ---- lex.re ----------------------------------------------------------------- */
typedef enum {
  TK_IDENT,    /* names and keywords (dim, input, param, int, ...) */
  TK_NUM,      /* number literal: Token.num */
  TK_PUNCT,    /* operators and punctuation: = + - * / @ ^ ( ) [ ] , : ~ */
  TK_NEWLINE,  /* end of a statement line */
  TK_EOF,
} TokenKind;

struct Token {
  TokenKind kind;
  Token *next;
  const char *loc;     /* start in file->text */
  int len;
  int line, col;       /* 1-based; col counts bytes */
  const SrcFile *file;
  double num;          /* TK_NUM */
  bool is_int;         /* TK_NUM written without '.', exponent */
};
Token *lex_file(const SrcFile *f);           /* list ending in TK_EOF */
bool tok_is(const Token *t, const char *s);  /* punct or ident equal to s */

/* ---- ops.h / graph.c ---------------------------------------------------------- */
typedef enum {
#define OP(name, ar, lv, sig, sh, gr, em, rf, fo, ma, re) OP_##name,
#include "ops.h"
#undef OP
  OP_COUNT
} OpKind;

typedef enum { LV_LEAF, LV_FN, LV_OPER, LV_BWD } OpLevel;   /* see ops.h */

typedef enum {
#define ATTR(name, kind, field) AT_##name,
#include "ops.h"
#undef ATTR
  AT_COUNT
} AttrName;
typedef enum { AK_AXIS, AK_NONNEG, AK_BOOL, AK_INT } AttrKind;

typedef struct InitExpr InitExpr;

/* The attributes a node carries besides its inputs and shape.  One list: the
 * fields of NodeAttr and of Node (where they are read as n->axis, ...) are the
 * same, and n->at is all of them at once (graph_add fills it, expand copies it). */
#define NODE_ATTR_FIELDS                                                          \
  double num;            /* const value, pow exponent, eps, expand scale */      \
  int axis;              /* reductions, softmax, max_bwd: >= 0, or -1 for "all" */ \
  int axis2;             /* transpose: the axis swapped with axis */              \
  int ignore;            /* cross_entropy: the target value left out of the mean */ \
  int fill;              /* context: the token before the first position */       \
  int start;             /* slice, pad: the first index along axis */             \
  bool unbiased;         /* batchnorm: 1/(n-1) variance (the lecture's) */        \
  bool transa, transb;   /* matmul: use a^T / b^T (last two axes) */              \
  InitExpr *init;        /* param */
typedef struct NodeAttr {
  NODE_ATTR_FIELDS
} NodeAttr;

typedef void ShapeFn(Node *n);
typedef void GradFn(Graph *g, Node *n, Node *dout, Node **din);
typedef void EmitFn(Emit *e, Node *n);
typedef double FoldFn(const double *in, const NodeAttr *at);

typedef struct OpInfo {
  const char *name;
  int arity;
  OpLevel level;
  const char *sig;       /* spec syntax; parsed for LV_FN (op_sig) */
  ShapeFn *shape;
  GradFn *grad;
  EmitFn *emit;
  FoldFn *fold;
  const char *math;      /* notation template (note_math) */
  const char *remark;    /* explain's paragraph, or NULL */
} OpInfo;
extern const OpInfo optab[OP_COUNT];

/* The functions the table names (shape.c, grad.c, emit.c, parse.c).  The
 * no_* entries of ops.h are declared here too, then defined to NULL, so every
 * later include of ops.h reads them as "none". */
#define OP(name, ar, lv, sig, sh, gr, em, rf, fo, ma, re) ShapeFn sh; GradFn gr; EmitFn em; FoldFn fo;
#include "ops.h"
#undef OP
#define no_shape NULL
#define no_grad NULL
#define no_fold NULL

/* An LV_FN op's sig, parsed: tensors, then attributes (the first npositional
 * of which may be given positionally after the tensors). */
enum { MAXATTR = 4 };
typedef struct OpSig {
  int ntensor;
  bool shape_arg;        /* reshape's [shape] follows the tensors */
  int nattr, npositional;
  struct {
    const char *name;
    AttrName at;
    AttrKind kind;
    const char *dflt;    /* default, as written in the sig */
  } attr[MAXATTR];
} OpSig;
/* The parsed sig of an LV_FN op; NULL (and *err set) when it does not parse. */
const OpSig *op_sig(OpKind op, const char **err);
const char *attr_name(AttrName a);
AttrKind attr_kind(AttrName a);

typedef enum { TY_FLOAT, TY_INT } ElemType;

typedef struct Shape {
  int rank;              /* 0 = scalar */
  int dim[MAXRANK];
} Shape;

/* A param initialiser, evaluated once per element: randn draws a fresh N(0,1)
 * value at each occurrence (see bp_randn in runtime/bp_runtime.h). */
typedef enum { INIT_NUM, INIT_RANDN, INIT_UNIFORM, INIT_ADD, INIT_SUB, INIT_MUL, INIT_DIV, INIT_NEG, INIT_SQRT } InitKind;
struct InitExpr {
  InitKind kind;
  double num;            /* INIT_NUM (dims, numbers, zeros = 0, ones = 1 fold here) */
  InitExpr *a, *b;
};

struct Node {
  OpKind op;
  int id;                /* index in Graph.nodes (topological order) */
  Node *in[MAXIN];
  Shape shape;
  ElemType type;
  const char *name;      /* spec name: input, param or named statement; else NULL */
  Token *tok;            /* representative token, for errors and #line */
  int line;              /* spec line (tok->line; kept for backward nodes too) */

  /* attributes; which ones an op uses is written beside it in ops.h */
  union {
    NodeAttr at;
    struct {
      NODE_ATTR_FIELDS
    };
  };

  /* filled by grad.c */
  bool is_backward;      /* made by grad.c */
  Node *grad;            /* dL/d(this node), the summed gradient, or NULL */
  Node *fwd;             /* backward node: the forward node whose rule made it */
};

typedef struct Dim {
  const char *name;
  long value;
  Token *tok;
} Dim;

typedef struct DimOverride {   /* -D NAME=INT */
  const char *name;
  long value;
  bool used;                   /* set by the parser; unused overrides are an error */
} DimOverride;

/* One gradient contribution: user's rule sent val to d(user->in[arg]).  Kept by
 * grad_build (pruned contributions dropped) for `bpgen explain`. */
typedef struct GradEdge {
  Node *user;
  int arg;
  Node *val;
} GradEdge;

struct Graph {
  Node **nodes;          /* topological order; forward nodes first */
  int nnodes, cap;
  int nforward;          /* nodes[0..nforward-1] are the forward graph */
  Node *loss;            /* the scalar named "loss" */
  Dim *dims;
  int ndims;
  const SrcFile *file;
  GradEdge *edges;       /* grad_build's contributions, in the order made */
  int nedges, capedges;
};

Graph *new_graph(const SrcFile *f);
/* Appends a node with its attributes (at: NULL = all zero) and runs its shape
 * rule (user errors point at tok).  For ops whose shape is given (reshape,
 * sumto, expand, ...), pass it in `given`. */
Node *graph_add(Graph *g, OpKind op, Token *tok, Node *a, Node *b, Node *c, const Shape *given,
                const NodeAttr *at);
Node *graph_const(Graph *g, Token *tok, double v);    /* rank-0 float const */
Node *graph_concat(Graph *g, Token *tok, Node **v, int n, int axis);   /* v[0..n-1] joined along axis */
Node *graph_find(Graph *g, const char *name);          /* by spec name, or NULL */
long shape_numel(const Shape *s);
bool shape_eq(const Shape *a, const Shape *b);
char *shape_str(const Shape *s);                       /* "[32, 64]" in the arena */

/* ---- notation.c: the math column of ops.h --------------------------------------- */
/* The label of a node used in a formula (a name, a number, an expression). */
typedef const char *NoteLabel(void *ctx, Node *n);
/* n's math: optab[n->op].math with its inputs labelled by label(ctx, input);
 * forward: n is part of a forward expression, else a term of a derivative
 * (see %F and %E in ops.h).  Arena string. */
char *note_math(Node *n, bool forward, NoteLabel *label, void *ctx);
/* The same for a template of one's own (tests); NULL and *err on a bad one. */
char *note_fill(const char *tmpl, Node *n, bool forward, NoteLabel *label, void *ctx, const char **err);
const char *note_num(double v);          /* 3, 0.25, 1.64872 */
const char *note_paren(const char *s);   /* (s) unless s has no space outside brackets */
const char *note_axis(int axis);         /* b j k l m n, or all for -1 */

/* ---- parse.c ------------------------------------------------------------------ */
/* Parses a spec into its forward graph, with shapes inferred.  Overrides replace
 * the value of a dim (later dims and every shape re-infer from it); an override
 * naming no dim is an error. */
Graph *parse_spec(const SrcFile *f, DimOverride *ovr, int novr);

/* ---- shape.c: forward shape rules (the shape column of ops.h) ------------------- */
bool shape_broadcast(const Shape *a, const Shape *b, Shape *out);  /* false if incompatible */

/* ---- grad.c: derivative rules and backward shape rules (ops.h) ---------------- */
/* Appends the backward graph: afterwards every param and every named float
 * intermediate has ->grad.  Nodes no wanted gradient depends on are not made. */
void grad_build(Graph *g);
extern int grad_perturb;      /* test hook: nonzero perturbs one rule (tests only) */
/* grad_perturb = OP_x + 1 multiplies the first gradient op x's rule hands back
 * by 1.001, so `bpgen check` must fail: the check's own test. */

/* ---- expand.c ----------------------------------------------------------------- */
/* Lowers fused ops (cross_entropy, softmax, batchnorm, layernorm) into their
 * primitive decomposition; returns a new forward graph with the same names. */
Graph *expand_fused(Graph *g);

/* ---- template.c ---------------------------------------------------------------- */
/* Text of a file embedded at build time: "templates/NAME" or "runtime/NAME.h". */
const char *embedded_text(const char *name);
/* Copy of text with every {{key}} replaced by its value (arena string); a hole
 * without a value is an internal error. */
char *template_fill(const char *text, const char *const *keys, const char *const *vals, int n);

/* ---- emit.c ------------------------------------------------------------------- */
typedef enum { DT_F32, DT_F64 } DType;
typedef struct EmitOptions {
  DType dtype;
  const char *prefix;     /* C identifier prefix for the model's symbols */
  bool for_jit;           /* kernels are linked in by jit.c, not written inline */
  bool trainer;           /* append templates/trainer.c */
  bool sync_bn;           /* batchnorm statistics over the ranks (templates/bn_sync.h); no fused layers */
} EmitOptions;
/* Returns the whole C translation unit (model, and the header text in *header
 * when header != NULL) as arena strings.  Run grad_build(g) first: nodes after
 * g->nforward become backward(); a forward-only graph gets an empty one. */
char *emit_c(Graph *g, const EmitOptions *opt, char **header);
/* plan.c: the schedule of g (after grad_build) as text, one line per step list
 * ("train: ...", "eval: ...", "backward: ..."): a step is a node's name (t<id>
 * when unnamed), or {KIND node members...} for a fused group. */
char *plan_text(Graph *g);
/* True for a name the emitted C cannot use as a member as it is (a keyword, a
 * macro of its headers, a leading '_'): emit renames such members. */
bool emit_reserved_name(const char *s);

/* ---- jit.c -------------------------------------------------------------------- */
struct BpModel;
typedef struct Jit Jit;
/* Compiles C source in memory with libtcc; kernels are added as symbols.  On a
 * compile error, prints tcc's messages (which point at the spec via #line) and
 * exits 1.  The result does not point into the arena. */
Jit *jit_compile(const char *src, const char *srcname);
typedef struct JitSymbol { const char *name; const void *addr; } JitSymbol;
typedef struct JitOptions {
  const char *options;          /* tcc options (default "-std=c99") */
  const char *include_dir;      /* extra #include "..." directory, or NULL */
  const JitSymbol *symbols;     /* extra symbols the code may call */
  int nsymbols;
} JitOptions;
/* Like jit_compile, but on a compile error returns NULL instead of exiting;
 * either way *errors holds tcc's messages (warnings too; arena string). */
Jit *jit_try_compile(const char *src, const JitOptions *o, const char **errors);
void *jit_symbol(Jit *j, const char *name);   /* NULL when not defined */
void jit_free(Jit *j);
/* cmd_check.c: generated gradients of gg (compiled with the JIT; gg has been
 * through grad_build) against the reference runtime on the forward graph gf
 * (gf == gg, or the graph gg was expanded from); prints the cmp table to out
 * and returns the number of tensors out of tolerance (tol <= 0: the dtype's
 * default, 1e-4 for f32, 1e-9 for f64). */
int check_graphs(Graph *gf, Graph *gg, DType dt, uint64_t seed, double tol, FILE *out);
/* The same for a model already built (state: m->state_size zeroed bytes);
 * expanded only labels the table. */
int check_model(Graph *gf, const struct BpModel *m, void *state, bool expanded, uint64_t seed, double tol,
                FILE *out);

/* ---- compare.c ----------------------------------------------------------------- */
bool allclose_elem(double a, double b);              /* |a-b| <= 1e-8 + 1e-5|b| (torch.allclose) */
double ulp_distance(DType dt, double a, double b);   /* units in the last place, in dt; inf for NaN */

/* ---- cli.c: options every command shares; cmd_*.c: one file per command ---- */
typedef struct Cli {
  const char *spec;       /* the positional spec path */
  const char *out;        /* -o FILE */
  DType dtype;            /* --dtype f32|f64 */
  bool dtype_set;
  uint64_t seed;          /* --seed N; default 2147483647, the lecture's */
  DimOverride ovr[64];    /* -D NAME=INT */
  int novr;
  bool expand;            /* --expand: lower fused ops before differentiating */
} Cli;
void cli_init(Cli *c, DType default_dtype);
/* argv with every "--opt=value" made the two arguments "--opt" "value"
 * (*argc updated; argv itself when there is none). */
char **cli_split_eq(int *argc, char **argv);
/* If argv[*i] is a shared option (-o, --dtype, --seed, -D, --expand) or the
 * spec path, consumes it (and its value) and returns true. */
bool cli_common(Cli *c, int argc, char **argv, int *i);
const char *cli_value(int argc, char **argv, int *i);   /* the option's value, or error */
long cli_long(const char *opt, const char *s, long lo, long hi);
double cli_double(const char *opt, const char *s);
NORETURN void cli_unknown(const char *cmd, const char *arg);
/* Reads and parses c->spec (error if none given); applies --expand. */
Graph *cli_load(Cli *c);

/* ---- cmd_dot.c, cmd_ninja.c: the learner's kit -------------------------------- */
/* DOT text of g's forward graph (backward: g has been through grad_build, and
 * its backward nodes are drawn too); arena string. */
char *dot_graph(Graph *g, bool backward);
/* The C declarations a learner's backward pass programs against (arena string). */
char *ninja_header(Graph *g, DType dt);
typedef struct NinjaOpts {
  DType dtype;
  uint64_t seed;
  bool use_ref;          /* values and reference gradients from runtime/ref.c */
  double tol;            /* <= 0: 1e-5 (f32), 1e-9 (f64); plus 10 x the rounding noise */
} NinjaOpts;
/* Compiles the learner's file (path for messages, text its contents) after the
 * header, runs its backward() on one batch of g (a forward graph; the generated
 * side runs grad_build on it) and prints the judgement table to out.  Returns
 * the number of wrong gradients; a compile error, a crash, a time-out or an
 * out-of-bounds access that faults is error_plain. */
int ninja_run(Graph *g, const NinjaOpts *o, const char *path, const char *text, FILE *out);

int cmd_gen(int argc, char **argv);      /* bpgen SPEC -o model.c */
int cmd_grad(int argc, char **argv);     /* bpgen grad */
int cmd_check(int argc, char **argv);    /* bpgen check */
int cmd_explain(int argc, char **argv);  /* bpgen explain */
int cmd_run(int argc, char **argv);      /* bpgen run */
int cmd_plot(int argc, char **argv);     /* bpgen plot */
int cmd_ninja(int argc, char **argv);    /* bpgen ninja */
int cmd_dot(int argc, char **argv);      /* bpgen dot */
int cmd_report(int argc, char **argv);   /* bpgen report */
/* cmd_explain.c: what `bpgen explain` prints for g (after grad_build), to out. */
void explain_print(Graph *g, FILE *out);
/* cmd_report.c: the self-contained HTML page of `bpgen report` for c's spec
 * (mine: a learner's backward file, or NULL); arena string. */
char *report_html(Cli *c, const char *mine);

/* ---- cmd_run.c ------------------------------------------------------------------ */
/* The model (emit_c with opt, trainer off) followed by templates/trainer.c, which
 * defines int bp_train_main(const BpModel *, int argc, char **argv); when
 * !opt->for_jit, also a main() calling it with <prefix>_model: the file that
 * `bpgen SPEC --trainer -o train.c` writes (build: gcc -O2 train.c -lm). */
char *trainer_source(Graph *g, const EmitOptions *opt);
/* Compiles g (grad_build is run) with the trainer in memory and returns what
 * its entry point (bp_train_main, bp_predict_main, bp_sample_main) returns
 * for targv. */
int run_trainer(Cli *c, Graph *g, const char *entry, int targc, char **targv);
/* A usage error when the .npy file at path, fed to g's k-th input, has
 * another shape after the example axis; names the -D that would fit. */
void run_check_npy(Cli *c, Graph *g, int k, const char *path);
const char *spec_prefix(const char *spec);   /* the model's C name from its path */
int cmd_predict(int argc, char **argv);  /* bpgen predict (cmd_predict.c) */
int cmd_sample(int argc, char **argv);   /* bpgen sample (cmd_predict.c) */

#endif
