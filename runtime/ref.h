/* ref.h: the reference runtime -- a tensor interpreter with reverse-mode
 * autograd over primitive local derivatives (a tape).
 *
 * It runs the forward part of a Graph (nodes[0 .. nforward-1]) and is the
 * yardstick generated code is diffed against, so it shares nothing with the
 * generator's derivative rules (grad.c): every op, fused ones included
 * (softmax, cross_entropy, batchnorm, layernorm), is evaluated by composing
 * primitives (add, mul, exp, sum, max, pow, ...) on the tape, and backward is
 * the chain rule over those primitives only.
 *
 * Values are kept as double.  In f32 mode every primitive's output (and each
 * gradient it produces) is rounded to float, so results follow float32
 * arithmetic closely (not bit for bit: reductions accumulate in double).
 *
 * Usage:
 *   Ref *r = ref_new(g, DT_F64);
 *   ref_init_params(r, seed);            // or write params via ref_data()
 *   memcpy(ref_idata(r, X), ...);        // int inputs; float ones via ref_data()
 *   double loss = ref_forward(r);
 *   ref_backward(r);
 *   double *dW = ref_grad(r, W);
 *   ref_free(r);
 * Leaf buffers (inputs, params) live as long as the Ref; values and gradients
 * of other nodes are valid until the next ref_forward().
 *
 * Bad indices (gather, pick, cross_entropy) are user errors: error_plain()
 * names the int tensor, the position and the value.
 */
#ifndef REF_H
#define REF_H

#include "bpgen.h"
#include "bp_runtime.h"

typedef struct Ref Ref;
typedef struct RefTensor RefTensor;   /* a value on the tape (ref.c) */

/* The evaluators the ref column of gen/ops.h names: one per forward op, given
 * the node (its attributes) and its inputs' values (ref.c). */
typedef RefTensor *RefEvalFn(Ref *r, const Node *n, RefTensor *const *in);
/* The evaluator of op (NULL for leaves and backward-only ops): the table ref.c
 * runs, so a test can check that every forward op has one. */
RefEvalFn *ref_evaluator(OpKind op);

Ref *ref_new(Graph *g, DType dtype);
/* Params from their initialisers, exactly as bp_runtime.h says: one BpRng
 * seeded with seed; params in graph order, elements in C order, each element
 * evaluating node->init left to right (each randn one bp_randn); the result
 * rounded to the dtype. */
void ref_init_params(Ref *r, uint64_t seed);
double *ref_data(Ref *r, Node *n);     /* float node: n->shape elements (leaves: writable) */
int32_t *ref_idata(Ref *r, Node *n);   /* int input: n->shape elements, writable */
double ref_forward(Ref *r);            /* runs the forward graph; returns the loss */
void ref_backward(Ref *r);             /* d(loss)/d(x) for every float forward node */
double *ref_grad(Ref *r, Node *n);     /* after ref_backward: zeros when nothing flows */
void ref_free(Ref *r);

/* Rounds v to the Ref's dtype (identity for f64). */
double ref_round(const Ref *r, double v);

/* Random inputs, as `bpgen grad --random-inputs` makes them (also for other
 * tools that need "the same random inputs"): */
/* Bound on an int input's values: the smallest dim it indexes (rows of a
 * gather, classes of a pick or cross_entropy); 0 when it indexes nothing. */
long ref_index_limit(Graph *g, Node *x);
/* Fills dst (int32_t[] for int inputs, double[] for float ones; n->shape
 * elements, C order) from rng: ints uniform in 0..limit-1 (all 0 when the
 * limit is 0), floats bp_randn. */
void ref_draw_input(Graph *g, Node *n, BpRng *rng, void *dst);
/* The generator for inputs: seeded with seed ^ REF_INPUT_SEED_MIX, so inputs
 * and params (seeded with seed) draw different streams. */
#define REF_INPUT_SEED_MIX 0x6A09E667F3BCC908ull
/* Every input of r's graph, in graph order, from one generator seeded as above
 * (float values rounded to the dtype). */
void ref_random_inputs(Ref *r, uint64_t seed);

#endif
