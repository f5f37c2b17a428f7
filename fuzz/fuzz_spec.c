/* fuzz_spec.c: libFuzzer target for the front end (lexer, parser, shapes) and
 * the generator behind it (derivative rules, emission).
 *
 * Any byte sequence is a spec: it must parse or end in a user error caught
 * through error_catch(), never crash, hang or read out of bounds; a spec that
 * parses must also differentiate and emit C without tripping an internal
 * check (die() aborts, which libFuzzer reports).  The bytes
 * are copied with a NUL sentinel after them (as read_src does), and len is
 * the truth, so NUL bytes inside are seen.  Run with `make fuzz`.
 */
#include "bpgen.h"

#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static jmp_buf jb;
  SrcFile *f = arena_alloc(sizeof *f);
  char *text = arena_alloc(size + 1);
  if (size)
    memcpy(text, data, size);
  f->name = "fuzz.spec";
  f->text = text;
  f->len = size;
  if (setjmp(jb) == 0) {
    error_catch(&jb);
    DimOverride ovr[] = {{"B", 7, false}};
    Graph *g = parse_spec(f, ovr, 1);
    if (!g->loss || g->loss->shape.rank != 0 || g->nforward != g->nnodes)
      __builtin_trap();
    grad_build(g);
    EmitOptions opt = {DT_F32, "fuzz", true, false};
    if (!emit_c(g, &opt, NULL))
      __builtin_trap();
  }
  error_catch(NULL);
  arena_reset();
  return 0;
}
