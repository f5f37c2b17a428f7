/* bench/alloc_count.h: the bench harnesses' allocation count.  Included once
 * into a harness program (it defines malloc, calloc and realloc over glibc's):
 * while `counting` is set, every call adds one to `nalloc` -- how bench/step.c
 * and bench/seq_step.c show that a step allocates nothing.  Bench only. */
#ifndef BENCH_ALLOC_COUNT_H
#define BENCH_ALLOC_COUNT_H
#include <stddef.h>

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
static volatile long nalloc;
static volatile int counting;
void *malloc(size_t n) {
  if (counting) nalloc++;
  return __libc_malloc(n);
}
void *calloc(size_t n, size_t m) {
  if (counting) nalloc++;
  return __libc_calloc(n, m);
}
void *realloc(void *p, size_t n) {
  if (counting) nalloc++;
  return __libc_realloc(p, n);
}
#endif
