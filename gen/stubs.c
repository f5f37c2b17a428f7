/* stubs.c: TEMPORARY weak stand-ins so the tree links while the stages are
 * being written in parallel.  Every real definition overrides these; the file
 * is deleted once all stages exist. */
#include "bpgen.h"
#include <stdio.h>
#define W __attribute__((weak))
W void shape_batchnorm(Node *n) { (void)n; die("shape_batchnorm not written yet"); }
W void shape_bcast(Node *n) { (void)n; die("shape_bcast not written yet"); }
W void shape_bn_bwd_x(Node *n) { (void)n; die("shape_bn_bwd_x not written yet"); }
W void shape_bwd_same(Node *n) { (void)n; die("shape_bwd_same not written yet"); }
W void shape_gather(Node *n) { (void)n; die("shape_gather not written yet"); }
W void shape_given(Node *n) { (void)n; die("shape_given not written yet"); }
W void shape_layernorm(Node *n) { (void)n; die("shape_layernorm not written yet"); }
W void shape_matmul(Node *n) { (void)n; die("shape_matmul not written yet"); }
W void shape_pick(Node *n) { (void)n; die("shape_pick not written yet"); }
W void shape_reduce(Node *n) { (void)n; die("shape_reduce not written yet"); }
W void shape_reshape(Node *n) { (void)n; die("shape_reshape not written yet"); }
W void shape_softmax(Node *n) { (void)n; die("shape_softmax not written yet"); }
W void shape_unary(Node *n) { (void)n; die("shape_unary not written yet"); }
W void shape_xent(Node *n) { (void)n; die("shape_xent not written yet"); }
W void shape_xent_bwd(Node *n) { (void)n; die("shape_xent_bwd not written yet"); }
W void grad_add(Graph *g, Node *n, Node *dout, Node **din) { (void)g; (void)n; (void)dout; (void)din; die("grad_add not written yet"); }
W void grad_batchnorm(Graph *g, Node *n, Node *dout, Node **din) { (void)g; (void)n; (void)dout; (void)din; die("grad_batchnorm not written yet"); }
W void grad_cross_entropy(Graph *g, Node *n, Node *dout, Node **din) { (void)g; (void)n; (void)dout; (void)din; die("grad_cross_entropy not written yet"); }
W void grad_div(Graph *g, Node *n, Node *dout, Node **din) { (void)g; (void)n; (void)dout; (void)din; die("grad_div not written yet"); }
W void grad_exp(Graph *g, Node *n, Node *dout, Node **din) { (void)g; (void)n; (void)dout; (void)din; die("grad_exp not written yet"); }
W void grad_gather(Graph *g, Node *n, Node *dout, Node **din) { (void)g; (void)n; (void)dout; (void)din; die("grad_gather not written yet"); }
W void grad_layernorm(Graph *g, Node *n, Node *dout, Node **din) { (void)g; (void)n; (void)dout; (void)din; die("grad_layernorm not written yet"); }
W void grad_log(Graph *g, Node *n, Node *dout, Node **din) { (void)g; (void)n; (void)dout; (void)din; die("grad_log not written yet"); }
W void grad_matmul(Graph *g, Node *n, Node *dout, Node **din) { (void)g; (void)n; (void)dout; (void)din; die("grad_matmul not written yet"); }
W void grad_max(Graph *g, Node *n, Node *dout, Node **din) { (void)g; (void)n; (void)dout; (void)din; die("grad_max not written yet"); }
W void grad_mean(Graph *g, Node *n, Node *dout, Node **din) { (void)g; (void)n; (void)dout; (void)din; die("grad_mean not written yet"); }
W void grad_mul(Graph *g, Node *n, Node *dout, Node **din) { (void)g; (void)n; (void)dout; (void)din; die("grad_mul not written yet"); }
W void grad_neg(Graph *g, Node *n, Node *dout, Node **din) { (void)g; (void)n; (void)dout; (void)din; die("grad_neg not written yet"); }
W void grad_pick(Graph *g, Node *n, Node *dout, Node **din) { (void)g; (void)n; (void)dout; (void)din; die("grad_pick not written yet"); }
W void grad_pow(Graph *g, Node *n, Node *dout, Node **din) { (void)g; (void)n; (void)dout; (void)din; die("grad_pow not written yet"); }
W void grad_relu(Graph *g, Node *n, Node *dout, Node **din) { (void)g; (void)n; (void)dout; (void)din; die("grad_relu not written yet"); }
W void grad_reshape(Graph *g, Node *n, Node *dout, Node **din) { (void)g; (void)n; (void)dout; (void)din; die("grad_reshape not written yet"); }
W void grad_sigmoid(Graph *g, Node *n, Node *dout, Node **din) { (void)g; (void)n; (void)dout; (void)din; die("grad_sigmoid not written yet"); }
W void grad_softmax(Graph *g, Node *n, Node *dout, Node **din) { (void)g; (void)n; (void)dout; (void)din; die("grad_softmax not written yet"); }
W void grad_sqrt(Graph *g, Node *n, Node *dout, Node **din) { (void)g; (void)n; (void)dout; (void)din; die("grad_sqrt not written yet"); }
W void grad_sub(Graph *g, Node *n, Node *dout, Node **din) { (void)g; (void)n; (void)dout; (void)din; die("grad_sub not written yet"); }
W void grad_sum(Graph *g, Node *n, Node *dout, Node **din) { (void)g; (void)n; (void)dout; (void)din; die("grad_sum not written yet"); }
W void grad_tanh(Graph *g, Node *n, Node *dout, Node **din) { (void)g; (void)n; (void)dout; (void)din; die("grad_tanh not written yet"); }
W void emit_add(Emit *e, Node *n) { (void)e; (void)n; die("emit_add not written yet"); }
W void emit_batchnorm(Emit *e, Node *n) { (void)e; (void)n; die("emit_batchnorm not written yet"); }
W void emit_bn_bwd_gain(Emit *e, Node *n) { (void)e; (void)n; die("emit_bn_bwd_gain not written yet"); }
W void emit_bn_bwd_x(Emit *e, Node *n) { (void)e; (void)n; die("emit_bn_bwd_x not written yet"); }
W void emit_const(Emit *e, Node *n) { (void)e; (void)n; die("emit_const not written yet"); }
W void emit_cross_entropy(Emit *e, Node *n) { (void)e; (void)n; die("emit_cross_entropy not written yet"); }
W void emit_div(Emit *e, Node *n) { (void)e; (void)n; die("emit_div not written yet"); }
W void emit_exp(Emit *e, Node *n) { (void)e; (void)n; die("emit_exp not written yet"); }
W void emit_expand(Emit *e, Node *n) { (void)e; (void)n; die("emit_expand not written yet"); }
W void emit_gather(Emit *e, Node *n) { (void)e; (void)n; die("emit_gather not written yet"); }
W void emit_gather_bwd(Emit *e, Node *n) { (void)e; (void)n; die("emit_gather_bwd not written yet"); }
W void emit_input(Emit *e, Node *n) { (void)e; (void)n; die("emit_input not written yet"); }
W void emit_layernorm(Emit *e, Node *n) { (void)e; (void)n; die("emit_layernorm not written yet"); }
W void emit_ln_bwd_gain(Emit *e, Node *n) { (void)e; (void)n; die("emit_ln_bwd_gain not written yet"); }
W void emit_ln_bwd_x(Emit *e, Node *n) { (void)e; (void)n; die("emit_ln_bwd_x not written yet"); }
W void emit_log(Emit *e, Node *n) { (void)e; (void)n; die("emit_log not written yet"); }
W void emit_matmul(Emit *e, Node *n) { (void)e; (void)n; die("emit_matmul not written yet"); }
W void emit_max(Emit *e, Node *n) { (void)e; (void)n; die("emit_max not written yet"); }
W void emit_max_bwd(Emit *e, Node *n) { (void)e; (void)n; die("emit_max_bwd not written yet"); }
W void emit_mean(Emit *e, Node *n) { (void)e; (void)n; die("emit_mean not written yet"); }
W void emit_mul(Emit *e, Node *n) { (void)e; (void)n; die("emit_mul not written yet"); }
W void emit_neg(Emit *e, Node *n) { (void)e; (void)n; die("emit_neg not written yet"); }
W void emit_param(Emit *e, Node *n) { (void)e; (void)n; die("emit_param not written yet"); }
W void emit_pick(Emit *e, Node *n) { (void)e; (void)n; die("emit_pick not written yet"); }
W void emit_pick_bwd(Emit *e, Node *n) { (void)e; (void)n; die("emit_pick_bwd not written yet"); }
W void emit_pow(Emit *e, Node *n) { (void)e; (void)n; die("emit_pow not written yet"); }
W void emit_relu(Emit *e, Node *n) { (void)e; (void)n; die("emit_relu not written yet"); }
W void emit_relu_bwd(Emit *e, Node *n) { (void)e; (void)n; die("emit_relu_bwd not written yet"); }
W void emit_reshape(Emit *e, Node *n) { (void)e; (void)n; die("emit_reshape not written yet"); }
W void emit_sigmoid(Emit *e, Node *n) { (void)e; (void)n; die("emit_sigmoid not written yet"); }
W void emit_sigmoid_bwd(Emit *e, Node *n) { (void)e; (void)n; die("emit_sigmoid_bwd not written yet"); }
W void emit_softmax(Emit *e, Node *n) { (void)e; (void)n; die("emit_softmax not written yet"); }
W void emit_softmax_bwd(Emit *e, Node *n) { (void)e; (void)n; die("emit_softmax_bwd not written yet"); }
W void emit_sqrt(Emit *e, Node *n) { (void)e; (void)n; die("emit_sqrt not written yet"); }
W void emit_sub(Emit *e, Node *n) { (void)e; (void)n; die("emit_sub not written yet"); }
W void emit_sum(Emit *e, Node *n) { (void)e; (void)n; die("emit_sum not written yet"); }
W void emit_sumto(Emit *e, Node *n) { (void)e; (void)n; die("emit_sumto not written yet"); }
W void emit_tanh(Emit *e, Node *n) { (void)e; (void)n; die("emit_tanh not written yet"); }
W void emit_tanh_bwd(Emit *e, Node *n) { (void)e; (void)n; die("emit_tanh_bwd not written yet"); }
W void emit_xent_bwd(Emit *e, Node *n) { (void)e; (void)n; die("emit_xent_bwd not written yet"); }
W int grad_perturb;
W Token *lex_file(const SrcFile *f) { (void)f; die("lex_file not written yet"); }
W bool tok_is(const Token *t, const char *s) { (void)t; (void)s; die("tok_is not written yet"); }
W Graph *parse_spec(const SrcFile *f, DimOverride *o, int n) { (void)f; (void)o; (void)n; die("parse_spec not written yet"); }
W bool shape_broadcast(const Shape *a, const Shape *b, Shape *o) { (void)a; (void)b; (void)o; die("shape_broadcast not written yet"); }
W void grad_build(Graph *g) { (void)g; die("grad_build not written yet"); }
W Graph *expand_fused(Graph *g) { (void)g; die("expand_fused not written yet"); }
W char *emit_c(Graph *g, const EmitOptions *o, char **h) { (void)g; (void)o; (void)h; die("emit_c not written yet"); }
W Jit *jit_compile(const char *s, const char *n) { (void)s; (void)n; die("jit_compile not written yet"); }
W void *jit_symbol(Jit *j, const char *n) { (void)j; (void)n; die("jit_symbol not written yet"); }
W void jit_free(Jit *j) { (void)j; }
W int cmd_gen(int argc, char **argv) { (void)argc; (void)argv; error_plain("'gen' is not built yet"); }
W int cmd_grad(int argc, char **argv) { (void)argc; (void)argv; error_plain("'grad' is not built yet"); }
W int cmd_check(int argc, char **argv) { (void)argc; (void)argv; error_plain("'check' is not built yet"); }
W int cmd_explain(int argc, char **argv) { (void)argc; (void)argv; error_plain("'explain' is not built yet"); }
W int cmd_run(int argc, char **argv) { (void)argc; (void)argv; error_plain("'run' is not built yet"); }
W int cmd_plot(int argc, char **argv) { (void)argc; (void)argv; error_plain("'plot' is not built yet"); }
W int cmd_ninja(int argc, char **argv) { (void)argc; (void)argv; error_plain("'ninja' is not built yet"); }
W int cmd_dot(int argc, char **argv) { (void)argc; (void)argv; error_plain("'dot' is not built yet"); }
