/* backend.h: the types the back end's three passes share (QBE's passes
 * around a small printer):
 *
 *   plan.c    Graph (after grad_build)  -> Plan: the step lists of the training
 *             forward, the inference forward and the backward, each step one
 *             node or a fused group (gemm+bias, batchnorm+tanh, batchnorm
 *             backward, a layer by column blocks)
 *   layout.c  Graph + Plan -> the state struct's fields: which member holds
 *             which node, names mangled once (no spec name reaches C as a
 *             keyword, a macro or another tensor's name)
 *   emit.c    Plan + fields -> C text, one printer per step kind
 *
 * Only these three files include it; bpgen.h holds what the rest of bpgen sees.
 */
#ifndef BPGEN_BACKEND_H
#define BPGEN_BACKEND_H

#include "bpgen.h"

/* ---- plan.c ------------------------------------------------------------------ */

/* Batchnorm backward fused into one kernel call (bp_bn_bwd): the nodes that
 * read the same dy and the batchnorm's saved x̂, emitted together at the first
 * of them. */
typedef struct BnGroup {
  Node *bn;              /* the forward batchnorm */
  Node *dy;              /* gradient of its output */
  Node *tanh;            /* dy itself when it is a tanh_bwd: computed in the same pass */
  Node *x;               /* bn_bwd_x: dx */
  Node *gain;            /* bn_bwd_gain of the same dy, or NULL */
  Node *bias;            /* sumto of dy down to [D] (the bias grad), or NULL */
  Node *xsum;            /* sumto of dx down to [D] (the bias grad of what fed x), or NULL */
} BnGroup;

/* A batchnorm layer between two linear maps, run by column blocks
 * (bp_bnlayer_fwd/bwd of kernels.h):
 *   z = A·W1 (+ b1);  y = batchnorm(z, gain, bias);  h = tanh(y);  out = h·W2 (+ b2)
 * and its backward from dout down to dA, dW1, db1, dgain, dbias, dW2. */
typedef struct Layer {
  Node *z, *mm1, *b1, *bn, *t, *out, *mm2, *b2;   /* forward; b1, b2 may be NULL */
  Node *dout, *dt, *dW2, *dA, *dW1;               /* backward; dA may be NULL */
  BnGroup *bg;                                    /* its tanh, x (dz), gain, bias, xsum (db1) */
  long N, K, D, V;
  int dc, groups;                                 /* columns per block, groups of blocks */
  const char *ws;                                 /* the workspace member (layout.c) */
} Layer;

/* A concat along the last axis whose parts are written straight into its
 * columns (plan_heads): a part that is a swap of two adjacent axes (an
 * attention head's gradient, [B, NH, T, HS] swapped to [B, T, NH, HS]) is
 * swapped into place with the concat's row stride, any other part copied; a
 * concat only this one reads is flattened into it.  Neither the swaps nor the
 * inner concats are made. */
typedef struct CatPart {
  Node *x;               /* what is written: the swap's input, or the part itself */
  Node *swap;            /* the transpose not made (x its input), or NULL */
  long col, w;           /* columns [col, col + w) of the concat's rows */
} CatPart;
typedef struct CatParts {
  int n;
  CatPart *p;
} CatParts;

typedef enum {
  ST_NODE,        /* node by its op's printer (ops.h's emit column) */
  ST_GEMM_BIAS,   /* node = an add, aux = the matmul whose bias row it adds: one gemm from the bias */
  ST_BN_TANH,     /* node = a batchnorm, aux = the tanh of its output, in the same pass */
  ST_BN_BWD,      /* bg: a batchnorm backward group, node = its first member */
  ST_LAYER_FWD,   /* ly: the layer's forward, node = its output */
  ST_LAYER_BWD,   /* ly: the layer's backward, node = its first backward node */
  ST_CAUSAL_SOFTMAX,  /* node = a causal_softmax, aux = the x·c or x/c it reads: the factor in the kernel */
  ST_SOFTMAX_BWD_SCALED, /* node = y·c or y/c, aux = the causal softmax_bwd y it scales: one kernel */
  ST_GEMM_LOWER,  /* node = a matmul [.., T, T] whose readers read only its lower triangle (j <= i) */
  ST_GEMM_TRI_A,  /* node = a matmul whose first operand is 0 above its diagonal (a causal softmax) */
  ST_SWAP_SLICE,  /* node = a swap of two adjacent axes, aux = the last-axis slice it reads through
                   * (not made): the swap reads the slice's columns of its input in place */
  ST_CAT_PARTS,   /* node = a concat along the last axis, cat = its parts, written in place */
  ST_LN_BWD_ADD,  /* node = an add, aux = the layernorm dx (not made) it adds: one kernel pass */
  ST_ADD_LN,      /* node = a layernorm, aux = the add it normalises, made in the same pass */
  ST_SCORES,      /* node = a causal softmax, prod = the tri-1 product it reads (not stored), aux =
                   * the x·c between them or NULL: the product made in node's memory */
  ST_SCORES_BWD,  /* node = a causal softmax_bwd or its y·c, aux = the softmax_bwd, prod = the tri-1
                   * product its dy is (stored only when full): made in node's memory */
} StepKind;

typedef struct Step {
  StepKind kind;
  Node *node;            /* the node the step stands at (its place in the order) */
  Node *aux;
  BnGroup *bg;
  Layer *ly;
  double scale;          /* ST_CAUSAL_SOFTMAX, ST_SOFTMAX_BWD_SCALED, ST_SCORES(_BWD): the folded
                          * factor c or 1/c (1: none) */
  bool full;             /* ST_GEMM_LOWER, ST_SCORES_BWD: the product is a tensor the user sees:
                          * written, the upper triangle too, unless lean */
  CatParts *cat;         /* ST_CAT_PARTS */
  Node *prod;            /* ST_SCORES, ST_SCORES_BWD */
} Step;

typedef struct Schedule {
  Step *steps;
  int n;
} Schedule;

typedef struct Plan {
  Schedule train;        /* training forward: batch statistics, layer calls */
  Schedule eval;         /* inference forward (and calibration): node by node */
  Schedule backward;
  bool *no_field;        /* per node id: a matmul only a gemm+bias step reads, or a scaling a
                          * causal softmax kernel folded in: never stored */
  bool *inlayer;         /* per node id: a tensor only a layer's kernels see */
  Layer **layers;        /* every layer call */
  int nlayers;
} Plan;

/* g has been through grad_build; layers: fuse batchnorm layers (bp_bnlayer_*; not under --sync-bn) */
Plan *plan_build(Graph *g, bool layers);
/* t (a float transpose) swaps two adjacent axes of its input, seen as [A, n1,
 * n2, C] (A, C the products of the axes before and after): its sizes */
bool swap_dims(Node *t, long *A, long *n1, long *n2, long *C);

/* ---- layout.c ------------------------------------------------------------------ */

typedef struct Field {
  const char *cname;     /* struct member */
  const char *tname;     /* name in the tensor table, or NULL (scratch) */
  int kind;              /* BpKind, or -1 for scratch */
  int elem;              /* 0 real, 1 int32, 2 double */
  Shape shape;
  int line;
  const char *note;      /* comment beside the member */
  const char *grad;      /* param: the member of its grad */
  bool unwritten;        /* grad nothing flows into: backward zeroes it */
} Field;

typedef struct Copy {   /* end of backward: dst field = value of node src */
  const char *dst;
  Node *src;
} Copy;

/* The state struct and where each node's value lives. */
typedef struct Layout {
  const char **buf;      /* per node id: member holding the node's value */
  const char **label;    /* per node id: name used in comments */
  const char **save;     /* per node id (batchnorm, layernorm, cross_entropy): base of saved members */
  const char **save2;    /* per node id (cross_entropy): its safe-targets member */
  Field *fields;
  int nfields, capf;
  StrMap names;          /* every member's name (and the saved ones claimed ahead) */
  Copy *copies;
  int ncopies;
} Layout;

Layout *layout_build(Graph *g, Plan *p);
/* the node fed to cross_entropy (the trainer samples from it), or NULL */
Node *layout_logits(Graph *g);

/* ---- small shared helpers ---------------------------------------------------------- */
static inline bool is_float(const Node *n) { return n->type == TY_FLOAT; }
static inline long numel(const Node *n) { return shape_numel(&n->shape); }
/* a batchnorm's input as [rows, cols]: the statistics run down the rows (every
 * axis but the last) */
static inline long bn_cols(const Node *bn) { return bn->shape.dim[bn->shape.rank - 1]; }
static inline long bn_rows(const Node *bn) { return numel(bn) / (bn_cols(bn) ? bn_cols(bn) : 1); }

#endif
