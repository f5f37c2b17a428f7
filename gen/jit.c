/* jit.c: C source -> function pointers, compiled in memory by libtcc.
 *
 * The source is what emit_c() writes with for_jit set: the kernels of
 * runtime/kernels.h appear there as prototypes only, and their definitions
 * (compiled ahead of time by gcc into bpgen, runtime/kernels.c, once per CPU
 * level on x86-64: those of the level in use) are handed to tcc with
 * tcc_add_symbol -- tcc does not optimise, so the heavy loops must come from
 * gcc.  tcc's messages point at the spec through the #line
 * directives the emitter writes.
 */
#include "bpgen.h"

#include <libtcc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BP_KERNELS_DECLARE_ONLY
#include "kernels.h"
/* the JIT's own loops, compiled by gcc with the kernels' flags in runtime/kernels.c */
#define BPM_KERNELS_DECLARE_ONLY
#include "../templates/model_kernels.h"
#include "kernels_cpu.h"

struct Jit {
  TCCState *s;
};

typedef struct Msgs {
  char *text;
  size_t len;
} Msgs;

static void on_error(void *opaque, const char *msg) {
  Msgs *m = opaque;
  size_t n = strlen(msg);
  char *t = xmalloc(m->len + n + 2);
  if (m->text)
    memcpy(t, m->text, m->len);
  memcpy(t + m->len, msg, n);
  t[m->len + n] = '\n';
  t[m->len + n + 1] = '\0';
  free(m->text);
  m->text = t;
  m->len += n + 1;
}

Jit *jit_try_compile(const char *src, const JitOptions *o, const char **errors) {
  TCCState *s = tcc_new();
  if (!s)
    die("tcc_new failed");
  Msgs msgs = {0};
  tcc_set_error_func(s, &msgs, on_error);
  tcc_set_output_type(s, TCC_OUTPUT_MEMORY);
  tcc_set_options(s, o && o->options ? o->options : "-std=c99");
  if (o && o->include_dir)
    tcc_add_include_path(s, o->include_dir);
  /* the kernels of the CPU level in use (runtime/kernels_cpu.c), in list order */
  const void *const *k = bp_cpu_kernels();
  int nk = 0;
#define ADD(name) tcc_add_symbol(s, #name, k[nk++]);
  BP_KERNEL_LIST(ADD)
  BPM_KERNEL_LIST(ADD)
#undef ADD
  for (int i = 0; o && i < o->nsymbols; i++)
    tcc_add_symbol(s, o->symbols[i].name, o->symbols[i].addr);
  int rc = tcc_compile_string(s, src);
  if (rc == 0)
    tcc_add_library(s, "m");
  if (rc == 0)
    rc = tcc_relocate(s, TCC_RELOCATE_AUTO);
  char *text = arena_strndup(msgs.text ? msgs.text : "", msgs.len);
  free(msgs.text);
  *errors = text;
  if (rc < 0) {
    tcc_delete(s);
    return NULL;
  }
  Jit *j = xcalloc(1, sizeof *j);
  j->s = s;
  return j;
}

Jit *jit_compile(const char *src, const char *srcname) {
  const char *msgs;
  Jit *j = jit_try_compile(src, NULL, &msgs);
  if (!j)
    error_plain("compiling %s in memory failed:\n%s", srcname ? srcname : "generated code", msgs);
  fputs(msgs, stderr);   /* warnings only */
  return j;
}

void *jit_symbol(Jit *j, const char *name) { return tcc_get_symbol(j->s, name); }

void jit_free(Jit *j) {
  if (!j)
    return;
  tcc_delete(j->s);
  free(j);
}
