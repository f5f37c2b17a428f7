/* main.c: the bpgen command line -- dispatch only; each command lives in its
 * own cmd_*.c file. */
#include "bpgen.h"
#include "kernels_cpu.h"

#define BPGEN_VERSION "0.1.0"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

static const char usage[] =
  "usage: bpgen SPEC -o model.c [--dtype f32|f64] [--trainer] [--expand] [-D NAME=INT]...\n"
  "       bpgen COMMAND [options]\n"
  "\n"
  "Turns a model description (SPEC) into straight-line C for its forward pass,\n"
  "backward pass and training step, and runs it in memory through libtcc.\n"
  "\n"
  "commands:\n"
  "  SPEC -o FILE.c   write the model as C99 (FILE.h beside it holds the API);\n"
  "                   --trainer writes the complete trainer program instead\n"
  "  grad SPEC --in DIR --out DIR\n"
  "                   forward + backward on DIR/<name>.npy inputs and params;\n"
  "                   writes loss.npy, <name>.npy, <name>.grad.npy (--ref: the\n"
  "                   reference runtime instead of generated code)\n"
  "  check SPEC       the lecture's cmp table: generated gradients against the\n"
  "                   reference runtime, for every param and named tensor\n"
  "  explain SPEC     each forward line and the backward lines derived from it\n"
  "  run SPEC --data FILE\n"
  "                   compile a trainer in memory, train, evaluate, sample\n"
  "  run SPEC --data-x X.npy --data-y Y.npy\n"
  "                   the same on tensor data (.npy), for models that are not\n"
  "                   character models\n"
  "  predict SPEC --load CK.npz --data-x X.npy [-o OUT.npy] [--argmax]\n"
  "                   logits or classes of a trained model (--data-y: loss, accuracy)\n"
  "  sample SPEC --load CK.npz [-n N]\n"
  "                   words (or tokens) from a trained character model\n"
  "  plot LOG.csv -o loss.png\n"
  "                   the loss curve of a --log file (needs gnuplot)\n"
  "  ninja SPEC --mine FILE.c | --header\n"
  "                   judge your own hand-written backward pass\n"
  "  dot SPEC [--backward] -o graph.dot|.svg|.png\n"
  "                   the graph as Graphviz DOT\n"
  "  report SPEC [--mine FILE.c] -o report.html\n"
  "                   one HTML page: graph, lines, check table, your verdicts\n"
  "\n"
  "shared options:\n"
  "  -D NAME=INT      override a dim; every shape re-infers from it\n"
  "  --dtype f32|f64  float type of generated code (default f32)\n"
  "  --seed N         seed for initialisation and data (default 2147483647)\n"
  "  --expand         lower fused ops to primitives before differentiating\n"
  "An option's value follows it or an '=' (--seed 7, --seed=7); `-` names standard\n"
  "input or output where a file is read or written.  Exit status: 0 success, 1\n"
  "failure, 2 a mistake on the command line.\n"
  "\n"
  "`bpgen COMMAND --help` lists a command's own options, `bpgen --version` the\n"
  "version.  The spec language is described in README.md.\n";

typedef struct Command {
  const char *name;
  int (*fn)(int argc, char **argv);
} Command;

static const Command commands[] = {
  {"grad", cmd_grad},   {"check", cmd_check}, {"explain", cmd_explain},
  {"run", cmd_run},     {"plot", cmd_plot},   {"ninja", cmd_ninja},
  {"dot", cmd_dot},     {"report", cmd_report}, {"predict", cmd_predict},
  {"sample", cmd_sample},
};

int main(int argc, char **argv) {
  if (argc < 2) {
    fputs(usage, stderr);
    return 2;
  }
  argv = cli_split_eq(&argc, argv);
  if (strcmp(argv[1], "--version") == 0) {
    puts("bpgen " BPGEN_VERSION);
    /* bpgen's own kernels: the CPU level in use (runtime/kernels_cpu.c) */
    printf("kernels: %s (%s); this CPU runs: %s; BPGEN_CPU chooses\n", bp_cpu_level(), bp_cpu_level_what(),
           bp_cpu_levels());
    return 0;
  }
  if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0) {
    fputs(usage, stdout);
    return 0;
  }
  for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
    if (strcmp(argv[1], commands[i].name) == 0)
      return commands[i].fn(argc - 1, argv + 1);
  /* not a command: a spec path, unless it cannot be one */
  const char *a = argv[1];
  if (a[0] != '-' && !strchr(a, '.') && !strchr(a, '/') && access(a, F_OK) != 0) {
    fprintf(stderr, "bpgen: error: '%s' is neither a command nor a spec file (see bpgen --help)\n", a);
    return 2;
  }
  return cmd_gen(argc, argv);
}
