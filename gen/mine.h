/* mine.h: the learner's backward() in training (`bpgen run --mine FILE.c`).
 *
 * cmd_ninja.c compiles the learner's file as `bpgen ninja --mine` does (the
 * header, GRAD arrays bound to guarded buffers); cmd_run.c hands mine_hook to
 * the trainer (templates/trainer.c, bp_train_hooks), which calls it in place
 * of the model's backward at every step, and runs the training through
 * mine_train: in a child process, so a crash or a hang in the learner's code
 * is reported with the array and the step, not suffered. */
#ifndef BPGEN_MINE_H
#define BPGEN_MINE_H

#include "bpgen.h"
#include "bp_runtime.h"

typedef struct Mine Mine;

typedef struct MineOpts {
  DType dtype;
  double tol;            /* 0: 1e-5 for f32, 1e-9 for f64, as ninja */
} MineOpts;

/* Compiles the learner's file (path, its text) against the spec's graph and
 * the compiled model m; exits with an error when it does not compile, has no
 * backward(), declares a gradient with the wrong shape, or fills not every
 * param's gradient. */
Mine *mine_load(Graph *g, const MineOpts *o, const BpModel *m, const char *path, const char *text);

/* The trainer's hook: the learner's backward on the forward values in state,
 * its param gradients written into state's; at a check step also the model's
 * backward on the same batch, compared.  Returns NULL, or why to stop. */
const char *mine_hook(void *mine, void *state, long step, int check);

/* Runs train(m, argc, argv) in a child process, watching backward(): a crash
 * names the array and the step, more than 10 s in one backward() is a hang.
 * Returns train's status, or 1 after such an error. */
int mine_train(Mine *mi, int (*train)(const void *m, int argc, char **argv), const BpModel *m,
               int argc, char **argv);

void mine_free(Mine *mi);

#endif
