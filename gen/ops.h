/* The op table: the only list of ops in bpgen.
 *
 * Included several times under different OP() definitions (bpgen.h builds the
 * OpKind enum and the prototypes, graph.c the optab[] array).  Adding an op is
 * one line here plus the functions it names: the compiler points at whatever
 * is missing.
 *
 *   name    spec-level name of the op (OP_<name> in C)
 *   arity   number of inputs (Node.in[0..arity-1])
 *   shape   void shape_fn(Node *n): sets n->shape and n->type from the inputs,
 *           or calls error_tok(n->tok, ...) for a user error (shape.c; the
 *           backward-only ops' rules live in grad.c)
 *   grad    void grad_fn(Graph *g, Node *n, Node *dout, Node **din): fills
 *           din[0..arity-1] with backward nodes, NULL meaning "no gradient"
 *           (grad.c); NULL in this column: the op is not differentiable
 *           (leaves, backward-only ops)
 *   emit    void emit_fn(Emit *e, Node *n): writes the C for one node (emit.c)
 *
 * Attribute use per op is documented on the right; Node fields are in bpgen.h.
 * The reference runtime (runtime/ref.c) is written independently and does not
 * use the grad or emit columns.
 */

/* ---- leaves ---------------------------------------------------------------- */
/*  name          arity shape            grad             emit */
OP(input,         0,    NULL,            NULL,            emit_input)      /* name; type int or float; shape declared */
OP(param,         0,    NULL,            NULL,            emit_param)      /* name; init = InitExpr; shape declared */
OP(const,         0,    NULL,            NULL,            emit_const)      /* num; rank-0 float scalar */

/* ---- forward ops (spec level) ---------------------------------------------- */
OP(gather,        2,    shape_gather,    grad_gather,     emit_gather)     /* C[X]: in0 float [V,...], in1 int [...] -> [X..., C[1:]...] */
OP(reshape,       1,    shape_reshape,   grad_reshape,    emit_reshape)    /* target shape in n->shape (set by parser); numel must match */
OP(matmul,        2,    shape_matmul,    grad_matmul,     emit_matmul)     /* a @ b; 2-D, or batched over leading dims; transa/transb transpose the last two axes */
OP(add,           2,    shape_bcast,     grad_add,        emit_add)        /* broadcasting as NumPy */
OP(sub,           2,    shape_bcast,     grad_sub,        emit_sub)
OP(mul,           2,    shape_bcast,     grad_mul,        emit_mul)
OP(div,           2,    shape_bcast,     grad_div,        emit_div)
OP(pow,           1,    shape_unary,     grad_pow,        emit_pow)        /* x ^ num (constant exponent) */
OP(neg,           1,    shape_unary,     grad_neg,        emit_neg)
OP(exp,           1,    shape_unary,     grad_exp,        emit_exp)
OP(log,           1,    shape_unary,     grad_log,        emit_log)
OP(tanh,          1,    shape_unary,     grad_tanh,       emit_tanh)
OP(relu,          1,    shape_unary,     grad_relu,       emit_relu)
OP(sigmoid,       1,    shape_unary,     grad_sigmoid,    emit_sigmoid)
OP(sqrt,          1,    shape_unary,     grad_sqrt,       emit_sqrt)
OP(sum,           1,    shape_reduce,    grad_sum,        emit_sum)        /* axis (reduced axis kept as 1) or axis=-1: all -> rank 0 */
OP(mean,          1,    shape_reduce,    grad_mean,       emit_mean)       /* as sum */
OP(max,           1,    shape_reduce,    grad_max,        emit_max)        /* as sum; gradient to the first arg-max */
OP(pick,          2,    shape_pick,      grad_pick,       emit_pick)       /* x [N,K], Y int [N] -> [N]: x[i, Y[i]] */
OP(softmax,       1,    shape_softmax,   grad_softmax,    emit_softmax)    /* along axis (>= 0, normalised by the parser) */
OP(cross_entropy, 2,    shape_xent,      grad_cross_entropy, emit_cross_entropy) /* logits [N,K], Y int [N] -> scalar, mean over rows */
OP(batchnorm,     3,    shape_batchnorm, grad_batchnorm,  emit_batchnorm)  /* x [N,D], gain [1,D] or [D], bias same; num = eps; unbiased */
OP(layernorm,     3,    shape_layernorm, grad_layernorm,  emit_layernorm)  /* x [...,D], gain [D], bias [D]; num = eps; over last axis, 1/D variance */

/* ---- backward-only ops (created by grad.c, never by the parser) ------------- */
OP(sumto,         1,    shape_given,     NULL,            emit_sumto)      /* sum dy down to n->shape (undo broadcasting) */
OP(expand,        1,    shape_given,     NULL,            emit_expand)     /* broadcast dy up to n->shape; num = scale (1 = none) */
OP(tanh_bwd,      2,    shape_bwd_same,  NULL,            emit_tanh_bwd)   /* in0 = t (tanh output), in1 = dy: (1 - t*t) * dy */
OP(relu_bwd,      2,    shape_bwd_same,  NULL,            emit_relu_bwd)   /* in0 = y (relu output), in1 = dy: y > 0 ? dy : 0 */
OP(sigmoid_bwd,   2,    shape_bwd_same,  NULL,            emit_sigmoid_bwd)/* in0 = s (sigmoid output), in1 = dy: s*(1-s)*dy */
OP(max_bwd,       2,    shape_bwd_same,  NULL,            emit_max_bwd)    /* in0 = x, in1 = dy (reduced shape); axis: dy to the first arg-max */
OP(pick_bwd,      2,    shape_given,     NULL,            emit_pick_bwd)   /* in0 = Y, in1 = dy [N]: zeros [N,K] with dy[i] at (i, Y[i]) */
OP(gather_bwd,    2,    shape_given,     NULL,            emit_gather_bwd) /* in0 = X, in1 = dy: scatter-add rows of dy into zeros(n->shape) */
OP(softmax_bwd,   2,    shape_bwd_same,  NULL,            emit_softmax_bwd)/* in0 = y (softmax output), in1 = dy; axis: y*(dy - sum(dy*y)) */
OP(xent_bwd,      3,    shape_xent_bwd,  NULL,            emit_xent_bwd)   /* in0 = logits, in1 = Y, in2 = dloss (scalar): (softmax - onehot)/N * dloss */
OP(bn_bwd_x,      2,    shape_bn_bwd_x,  NULL,            emit_bn_bwd_x)   /* in0 = batchnorm node, in1 = dy: closed form dx (uses the node's saved stats) */
OP(bn_bwd_gain,   2,    shape_given,     NULL,            emit_bn_bwd_gain)/* in0 = batchnorm node, in1 = dy: sum_b dy * xhat, shaped as gain */
OP(ln_bwd_x,      2,    shape_bn_bwd_x,  NULL,            emit_ln_bwd_x)   /* in0 = layernorm node, in1 = dy: closed form dx */
OP(ln_bwd_gain,   2,    shape_given,     NULL,            emit_ln_bwd_gain)/* in0 = layernorm node, in1 = dy: sum over rows of dy * xhat */
