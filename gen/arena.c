/* arena.c: the generator's one allocator.
 *
 * Every object the generator makes (tokens, nodes, strings, emitted text) is
 * carved from large zeroed chunks that are freed together by arena_reset().
 * Nothing is freed singly, so stages never worry about ownership; long-lived
 * results (JIT code, model state) use xmalloc and are freed by their owners.
 */
#include "bpgen.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct Chunk Chunk;
struct Chunk {
  Chunk *next;
  size_t used, cap;
  _Alignas(16) unsigned char data[];
};

static Chunk *chunks;

void *xmalloc(size_t n) {
  void *p = malloc(n ? n : 1);
  if (!p) {
    fprintf(stderr, "bpgen: out of memory (%zu bytes)\n", n);
    exit(1);
  }
  return p;
}

void *xcalloc(size_t n, size_t size) {
  void *p = calloc(n ? n : 1, size ? size : 1);
  if (!p) {
    fprintf(stderr, "bpgen: out of memory (%zu x %zu bytes)\n", n, size);
    exit(1);
  }
  return p;
}

void *arena_alloc(size_t n) {
  n = (n + 15) & ~(size_t)15;
  if (!chunks || chunks->cap - chunks->used < n) {
    size_t cap = n > (1u << 20) ? n : (1u << 20);
    Chunk *c = xmalloc(sizeof(Chunk) + cap);
    c->next = chunks;
    c->used = 0;
    c->cap = cap;
    chunks = c;
  }
  void *p = chunks->data + chunks->used;
  chunks->used += n;
  memset(p, 0, n);
  return p;
}

char *arena_strndup(const char *s, size_t n) {
  char *p = arena_alloc(n + 1);
  memcpy(p, s, n);
  p[n] = '\0';
  return p;
}

char *arena_printf(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  char *p = arena_alloc((size_t)n + 1);
  va_start(ap, fmt);
  vsnprintf(p, (size_t)n + 1, fmt, ap);
  va_end(ap);
  return p;
}

void buf_vprintf(Buf *b, const char *fmt, va_list ap) {
  va_list aq;
  va_copy(aq, ap);
  int n = vsnprintf(NULL, 0, fmt, aq);
  va_end(aq);
  if (b->len + (size_t)n + 1 > b->cap) {
    size_t cap = (b->len + (size_t)n + 1) * 2;
    char *p = xmalloc(cap);
    if (b->p)
      memcpy(p, b->p, b->len);
    free(b->p);
    b->p = p;
    b->cap = cap;
  }
  vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
  b->len += (size_t)n;
}

void buf_printf(Buf *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  buf_vprintf(b, fmt, ap);
  va_end(ap);
}

char *buf_done(Buf *b) {
  char *s = arena_strndup(b->p ? b->p : "", b->len);
  free(b->p);
  memset(b, 0, sizeof *b);
  return s;
}

void arena_reset(void) {
  while (chunks) {
    Chunk *next = chunks->next;
    free(chunks);
    chunks = next;
  }
}

/* ---- string map: open addressing, FNV-1a, arena storage ---------------------- */

static uint64_t str_hash(const char *s, size_t len) {
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < len; i++)
    h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
  return h;
}

void *strmap_get(const StrMap *m, const char *key, size_t len) {
  if (!m->cap)
    return NULL;
  for (size_t i = str_hash(key, len) & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
    if (!m->keys[i])
      return NULL;
    if (strlen(m->keys[i]) == len && memcmp(m->keys[i], key, len) == 0)
      return m->vals[i];
  }
}

void strmap_put(StrMap *m, const char *key, void *val) {
  if (2 * (m->n + 1) > m->cap) {   /* at most half full */
    StrMap big = {arena_alloc(sizeof(char *) * (m->cap ? 2 * m->cap : 64)),
                  arena_alloc(sizeof(void *) * (m->cap ? 2 * m->cap : 64)), m->cap ? 2 * m->cap : 64, 0};
    for (size_t i = 0; i < m->cap; i++)
      if (m->keys[i])
        strmap_put(&big, m->keys[i], m->vals[i]);
    *m = big;
  }
  size_t len = strlen(key);
  for (size_t i = str_hash(key, len) & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
    if (!m->keys[i]) {
      m->keys[i] = key;
      m->vals[i] = val;
      m->n++;
      return;
    }
    if (strcmp(m->keys[i], key) == 0) {
      m->vals[i] = val;
      return;
    }
  }
}
