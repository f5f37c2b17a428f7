/* The op table: the only list of ops in bpgen.
 *
 * Included several times under different OP() definitions: bpgen.h builds the
 * OpKind enum and the prototypes of every function a row names, graph.c the
 * optab[] array, runtime/ref.c its table of evaluators.  Adding an op is one
 * row here plus the functions it names: a misspelt or missing function is a
 * build error, and tests/test_optable.c fails when a column an op needs is
 * empty (a spec-level op without a grad rule, ref evaluator or math, an
 * elementwise op without a fold, a signature that does not parse, ...).
 *
 *   name    spec-level name of the op (OP_<name> in C)
 *   arity   number of tensor inputs (Node.in[0..arity-1])
 *   level   LV_LEAF  input, param, const: made by declarations, no rules
 *           LV_FN    called as a function in a spec: name(...) below
 *           LV_OPER  written with an operator (+ - * / ^ @ [ ] unary -)
 *           LV_BWD   backward-only: made by grad.c, never by the parser
 *   sig     the spec syntax.  For LV_FN the parser reads it: tensors first,
 *           then attributes `name=default`; attributes after `*` must be given
 *           by keyword, the others may also follow the tensors positionally;
 *           `[shape]` is a bracketed shape (reshape).  Attribute names are the
 *           ATTR rows below.  Documentation only for the other levels.
 *   shape   void shape_fn(Node *n): sets n->shape and n->type from the inputs
 *           and attributes, or calls error_tok(n->tok, ...) for a user error
 *           (shape.c; the backward-only ops' rules live in grad.c)
 *   grad    void grad_fn(Graph *g, Node *n, Node *dout, Node **din): fills
 *           din[0..arity-1] with backward nodes, NULL meaning "no gradient"
 *           (grad.c); no_grad: the op is not differentiated (leaves, LV_BWD)
 *   emit    void emit_fn(Emit *e, Node *n): writes the C for one node (emit.c)
 *   ref     RefTensor *ref_fn(Ref *r, const Node *n, RefTensor *const *in): the
 *           reference runtime's evaluator, written independently of grad and
 *           emit (runtime/ref.c); no_ref for leaves and LV_BWD
 *   fold    double fold_fn(const double *in, const NodeAttr *at): the value on
 *           constant inputs, so `tanh(1)` is a number (parse.c); no_fold: a
 *           constant input becomes a const node.  Every elementwise op
 *           (shape_unary, shape_bcast) needs one.
 *   math    the op's notation, a template over its inputs' labels, printed by
 *           `bpgen explain` (and meant for emit.c's block comments):
 *             %0 %1 %2   label of input k          %P0  ... in ( ) unless atomic
 *             %F0        %P0 in a forward expression, %0 in a derivative
 *             %0.1       label of input 1 of input 0 (a fused op's gain)
 *             %n         the num attribute        %x   the axis: b j k ... or all
 *             %R         a slice's or pad's index along its axis: [:, start:end]
 *             %E         exponent: ^n forward; ² (n = 2) or ^(n) in a derivative
 *             %T0 %T1    ᵀ when transa / transb   %s   the result's shape
 *             %S0        Σ over the axes input 0 has and the result has not
 *             %N0        dim 0 of input 0 (a batchnorm's rows)   %U0  N/(N−1)· if input 0 is unbiased
 *             %M2        " · label" unless input 2 is the constant 1
 *             %k0        n·(label) when num ≠ 1, else the label
 *             %{A|B}     A in a forward expression, B in a derivative
 *   remark  what `bpgen explain` adds under a statement using the op, or NULL
 *
 * Attribute use per op is documented on the right; Node fields are in bpgen.h.
 */

/* ---- attributes: ATTR(name, kind, field) ----------------------------------- *
 * The keyword arguments a spec-level op may take (its sig names them), the
 * kind the parser checks, and the Node field the value goes to:
 *   AK_AXIS    a constant axis of input 0, -rank..rank-1, stored >= 0;
 *              defaults: an integer, `all` (-1: every axis), `last` (rank - 1)
 *   AK_NONNEG  a constant >= 0           AK_BOOL  true or false
 *   AK_INT     a whole constant of either sign */
#ifdef ATTR
ATTR(axis,     AK_AXIS,   axis)
ATTR(dim0,     AK_AXIS,   axis)
ATTR(dim1,     AK_AXIS,   axis2)
ATTR(ignore,   AK_INT,    ignore)
ATTR(size,     AK_NONNEG, num)
ATTR(fill,     AK_INT,    fill)
ATTR(eps,      AK_NONNEG, num)
ATTR(unbiased, AK_BOOL,   unbiased)
#endif

#ifdef OP
/* ---- leaves ---------------------------------------------------------------- */
/*  name          arity level    sig                                       shape            grad     emit            ref      fold     math  remark */
OP(input,         0,    LV_LEAF, "input NAME : int? [shape]",              no_shape,        no_grad, emit_input,     no_ref,  no_fold, NULL, NULL)  /* name; type int or float; shape declared */
OP(param,         0,    LV_LEAF, "param NAME : [shape] ~ init",            no_shape,        no_grad, emit_param,     no_ref,  no_fold, NULL, NULL)  /* name; init = InitExpr; shape declared */
OP(const,         0,    LV_LEAF, "NUM",                                    no_shape,        no_grad, emit_const,     no_ref,  no_fold, "%n", NULL)  /* num; rank-0 float scalar */

/* ---- forward ops (spec level) ---------------------------------------------- */
OP(gather,        2,    LV_OPER, "C[X]",                                   shape_gather,    grad_gather,  emit_gather,  ref_gather,  no_fold,
   "%P0[%1]",
   "As a loop: for every position p of %1: %d0[%1[p]] += %do[p] (rows hit twice add).\n"
   "The same as a matmul with one-hot rows: %d0 = onehot(%1)ᵀ · %do.")
   /* in0 float [V,...], in1 int [...] -> [X..., C[1:]...] */
OP(reshape,       1,    LV_FN,   "reshape(x, [shape])",                    shape_reshape,   grad_reshape, emit_reshape, ref_reshape, no_fold, "%{reshape(%0)|%0 viewed as %s}", NULL)
   /* target shape given to graph_add; numel must match */
OP(transpose,     1,    LV_FN,   "transpose(x, dim0=0, dim1=1)",           shape_transpose, grad_transpose, emit_transpose, ref_transpose, no_fold,
   "%P0ᵀ", NULL)
   /* axes axis and axis2 swapped (torch.transpose(x, dim0, dim1)) */
OP(slice,         1,    LV_OPER, "x[i, a:b, :]",                           shape_slice,     grad_slice,   emit_slice,   ref_slice,   no_fold,
   "%P0%R", NULL)
   /* axis, start; n->shape is x's with axis cut to [start, start + len): one axis of an
    * index; the parser chains them and drops the axes an integer selects with a reshape */
OP(concat,        2,    LV_FN,   "concat(a, b, axis=last)",                shape_concat,    grad_concat,  emit_concat,  ref_concat,  no_fold,
   "[%0, %1]_%x",
   "a and b side by side along axis; their other axes broadcast (a [1, H] start state\n"
   "beside a [B, E] input gives [B, E + H]).  The gradient splits dy back at the seam.")
   /* a [..., A, ...], b [..., Bn, ...] -> [..., A + Bn, ...] along axis; other axes broadcast */
OP(context,       1,    LV_FN,   "context(X, size=1, fill=0)",             shape_context,   grad_context, emit_context, ref_context, no_fold,
   "context(%0)", "Position t holds the tokens at t, t−1, ..., t−size+1, `fill` before the first: makemore's MLP.")
   /* X int [..., T] -> int [..., T, size]: out[..., t, k] = X[..., t − k], fill when t − k < 0 */
OP(causal_softmax, 1,   LV_FN,   "causal_softmax(x)",                      shape_causal_square, grad_causal_softmax, emit_causal_softmax, ref_causal_softmax, no_fold,
   "causal_softmax(%0)", "Row i of the last two axes: softmax over columns 0..i, 0 after (attention's causal mask).")
   /* x [..., T, T]: softmax along the last axis over j <= i, 0 for j > i; backward: softmax_bwd */
OP(causal_mean,   1,    LV_FN,   "causal_mean(x)",                         shape_causal,    grad_causal_mean, emit_causal_mean, ref_causal_mean, no_fold,
   "causal_mean(%0)", "Position t averages positions 0..t (makemore's causal bag of words).")
   /* x [..., T, C]: y[..., t, :] = mean over s <= t of x[..., s, :] */
OP(matmul,        2,    LV_FN,   "matmul(a, b)",                           shape_matmul,    grad_matmul,  emit_matmul,  ref_matmul,  no_fold, "%P0%T0 · %P1%T1", NULL)
   /* a @ b; 2-D, or batched over leading dims; transa/transb transpose the last two axes */
OP(add,           2,    LV_OPER, "a + b",                                  shape_bcast,     grad_add,     emit_add,     ref_add,     fold_add, "%F0 + %F1", NULL)
   /* broadcasting as NumPy */
OP(sub,           2,    LV_OPER, "a - b",                                  shape_bcast,     grad_sub,     emit_sub,     ref_sub,     fold_sub, "%F0 − %P1", NULL)
OP(mul,           2,    LV_OPER, "a * b",                                  shape_bcast,     grad_mul,     emit_mul,     ref_mul,     fold_mul, "%P0 ⊙ %P1", NULL)
OP(div,           2,    LV_OPER, "a / b",                                  shape_bcast,     grad_div,     emit_div,     ref_div,     fold_div, "%P0 / %P1", NULL)
OP(pow,           1,    LV_OPER, "x ^ p",                                  shape_unary,     grad_pow,     emit_pow,     ref_pow,     fold_pow, "%P0%E", NULL)
   /* x ^ num (constant exponent) */
OP(neg,           1,    LV_OPER, "-x",                                     shape_unary,     grad_neg,     emit_neg,     ref_neg,     fold_neg, "−%P0", NULL)
OP(exp,           1,    LV_FN,   "exp(x)",                                 shape_unary,     grad_exp,     emit_exp,     ref_exp,     fold_exp, "exp(%0)", NULL)
OP(log,           1,    LV_FN,   "log(x)",                                 shape_unary,     grad_log,     emit_log,     ref_log,     fold_log, "log(%0)", NULL)
OP(tanh,          1,    LV_FN,   "tanh(x)",                                shape_unary,     grad_tanh,    emit_tanh,    ref_tanh,    fold_tanh, "tanh(%0)", NULL)
OP(relu,          1,    LV_FN,   "relu(x)",                                shape_unary,     grad_relu,    emit_relu,    ref_relu,    fold_relu, "relu(%0)", NULL)
OP(sigmoid,       1,    LV_FN,   "sigmoid(x)",                             shape_unary,     grad_sigmoid, emit_sigmoid, ref_sigmoid, fold_sigmoid, "sigmoid(%0)", NULL)
OP(sqrt,          1,    LV_FN,   "sqrt(x)",                                shape_unary,     grad_sqrt,    emit_sqrt,    ref_sqrt,    fold_sqrt, "sqrt(%0)", NULL)
OP(gelu,          1,    LV_FN,   "gelu(x)",                                shape_unary,     grad_gelu,    emit_gelu,    ref_gelu,    fold_gelu, "gelu(%0)",
   "GELU in GPT-2's tanh form: ½x(1 + tanh(√(2/π)(x + 0.044715x³))).")
OP(sum,           1,    LV_FN,   "sum(x, axis=all)",                       shape_reduce,    grad_sum,     emit_sum,     ref_sum,     no_fold, "sum_%x(%0)", NULL)
   /* axis (reduced axis kept as 1) or axis=-1: all -> rank 0 */
OP(mean,          1,    LV_FN,   "mean(x, axis=all)",                      shape_reduce,    grad_mean,    emit_mean,    ref_mean,    no_fold, "mean_%x(%0)", NULL)
   /* as sum */
OP(max,           1,    LV_FN,   "max(x, axis=all)",                       shape_reduce,    grad_max,     emit_max,     ref_max,     no_fold, "max_%x(%0)",
   "Only the largest entry of each slice moved the max; the others did not affect it,\n"
   "so their gradient is 0 (on ties the first index gets it, as in PyTorch).")
   /* as sum; gradient to the first arg-max */
OP(pick,          2,    LV_FN,   "pick(x, Y)",                             shape_pick,      grad_pick,    emit_pick,    ref_pick,    no_fold, "%P0[·, %1]", NULL)
   /* x [N,K], Y int [N] -> [N]: x[i, Y[i]] */
OP(softmax,       1,    LV_FN,   "softmax(x, axis=last)",                  shape_softmax,   grad_softmax, emit_softmax, ref_softmax, no_fold, "softmax(%0)", NULL)
   /* along axis (>= 0) */
OP(cross_entropy, 2,    LV_FN,   "cross_entropy(logits, Y, *, ignore=-100)", shape_xent,      grad_cross_entropy, emit_cross_entropy, ref_cross_entropy, no_fold,
   "cross_entropy(%0, %1)",
   "Exercise 2: softmax minus one-hot, over the batch size; each row sums to 0.")
   /* logits [N,K], Y int [N] -> scalar, mean over rows */
OP(batchnorm,     3,    LV_FN,   "batchnorm(x, gain, bias, *, eps=1e-5, unbiased=true)",
                                                                           shape_batchnorm, grad_batchnorm, emit_batchnorm, ref_batchnorm, no_fold,
   "batchnorm(%0, %1, %2)",
   "n/(n−1) is Bessel's correction coming back through the unbiased variance.\n"
   "This is the training-mode gradient (batch statistics, which depend on x);\n"
   "at eval the statistics are fixed numbers and dx = gain·rstd ⊙ dy.")
   /* x [N,D], gain [1,D] or [D], bias same; num = eps; unbiased */
OP(layernorm,     3,    LV_FN,   "layernorm(x, gain, bias, *, eps=1e-5)",  shape_layernorm, grad_layernorm, emit_layernorm, ref_layernorm, no_fold,
   "layernorm(%0, %1, %2)", NULL)
   /* x [...,D], gain [D], bias [D]; num = eps; over last axis, 1/D variance */

/* ---- backward-only ops (created by grad.c, never by the parser) ------------- */
/*  name          arity level   sig   shape           grad     emit              ref     fold     math */
OP(sumto,         1,    LV_BWD, NULL, shape_given,    no_grad, emit_sumto,       no_ref, no_fold, "%S0 %P0", NULL)
   /* sum dy down to n->shape (undo broadcasting) */
OP(expand,        1,    LV_BWD, NULL, shape_given,    no_grad, emit_expand,      no_ref, no_fold, "%k0 broadcast to %s", NULL)
   /* broadcast dy up to n->shape; num = scale (1 = none) */
OP(tanh_bwd,      2,    LV_BWD, NULL, shape_bwd_same, no_grad, emit_tanh_bwd,    no_ref, no_fold, "(1 − %0²) ⊙ %P1", NULL)
   /* in0 = t (tanh output), in1 = dy: (1 - t*t) * dy */
OP(relu_bwd,      2,    LV_BWD, NULL, shape_bwd_same, no_grad, emit_relu_bwd,    no_ref, no_fold, "[%0 > 0] ⊙ %P1", NULL)
   /* in0 = y (relu output), in1 = dy: y > 0 ? dy : 0 */
OP(sigmoid_bwd,   2,    LV_BWD, NULL, shape_bwd_same, no_grad, emit_sigmoid_bwd, no_ref, no_fold, "%0 ⊙ (1 − %0) ⊙ %P1", NULL)
OP(causal_mean_bwd, 1,  LV_BWD, NULL, shape_unary,    no_grad, emit_causal_mean_bwd, no_ref, no_fold,
   "Σ_{t ≥ s} %P0[t] / (t + 1)", NULL)
   /* in0 = dy [..., T, C]: dx[..., s, :] = sum over t >= s of dy[..., t, :] / (t + 1) */
OP(gelu_bwd,      2,    LV_BWD, NULL, shape_bwd_same, no_grad, emit_gelu_bwd,    no_ref, no_fold,
   "(½(1 + t) + ½%0(1 − t²)·√(2/π)(1 + 3·0.044715·%0²)) ⊙ %P1,  t = tanh(√(2/π)(%0 + 0.044715·%0³))", NULL)
   /* in0 = x (gelu's input), in1 = dy: gelu'(x) ⊙ dy in one pass */
   /* in0 = s (sigmoid output), in1 = dy: s*(1-s)*dy */
OP(pad,           1,    LV_BWD, NULL, shape_given,    no_grad, emit_pad,         no_ref, no_fold, "%0 at %R of zeros %s", NULL)
   /* in0 = dy of a slice: zeros shaped n->shape with dy at [start, start + len) along axis */
OP(max_bwd,       2,    LV_BWD, NULL, shape_bwd_same, no_grad, emit_max_bwd,     no_ref, no_fold, "onehot(argmax_%x %0) ⊙ %P1", NULL)
   /* in0 = x, in1 = dy (reduced shape); axis: dy to the first arg-max */
OP(pick_bwd,      2,    LV_BWD, NULL, shape_given,    no_grad, emit_pick_bwd,    no_ref, no_fold, "onehot(%0) ⊙ %P1", NULL)
   /* in0 = Y, in1 = dy [N]: zeros [N,K] with dy[i] at (i, Y[i]) */
OP(gather_bwd,    2,    LV_BWD, NULL, shape_given,    no_grad, emit_gather_bwd,  no_ref, no_fold, "onehot(%0)ᵀ · %P1   (scatter-add)", NULL)
   /* in0 = X, in1 = dy: scatter-add rows of dy into zeros(n->shape) */
OP(softmax_bwd,   2,    LV_BWD, NULL, shape_bwd_same, no_grad, emit_softmax_bwd, no_ref, no_fold, "%0 ⊙ (%1 − Σ_%x %P1 ⊙ %0)", NULL)
   /* in0 = y (softmax output), in1 = dy; axis: y*(dy - sum(dy*y)) */
OP(xent_bwd,      3,    LV_BWD, NULL, shape_xent_bwd, no_grad, emit_xent_bwd,    no_ref, no_fold, "(softmax(%0) − onehot(%1)) / %N0%M2", NULL)
   /* in0 = logits, in1 = Y, in2 = dloss (scalar): (softmax - onehot)/N * dloss */
OP(bn_bwd_x,      2,    LV_BWD, NULL, shape_bn_bwd_x, no_grad, emit_bn_bwd_x,    no_ref, no_fold,
   "%0.1·rstd/%N0 · (%N0·%1 − Σ_b %1 − %U0x̂ ⊙ Σ_b(%1 ⊙ x̂))", NULL)
   /* in0 = batchnorm node, in1 = dy: closed form dx (uses the node's saved stats) */
OP(bn_bwd_gain,   2,    LV_BWD, NULL, shape_given,    no_grad, emit_bn_bwd_gain, no_ref, no_fold, "Σ_b %P1 ⊙ x̂", NULL)
   /* in0 = batchnorm node, in1 = dy: sum_b dy * xhat, shaped as gain */
OP(ln_bwd_x,      2,    LV_BWD, NULL, shape_bn_bwd_x, no_grad, emit_ln_bwd_x,    no_ref, no_fold,
   "rstd ⊙ (g − mean_j g − x̂ ⊙ mean_j(g ⊙ x̂)),  g = %0.1 ⊙ %P1", NULL)
   /* in0 = layernorm node, in1 = dy: closed form dx */
OP(ln_bwd_gain,   2,    LV_BWD, NULL, shape_given,    no_grad, emit_ln_bwd_gain, no_ref, no_fold, "Σ_rows %P1 ⊙ x̂", NULL)
   /* in0 = layernorm node, in1 = dy: sum over rows of dy * xhat */
#endif
