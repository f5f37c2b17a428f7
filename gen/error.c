/* error.c: reporting user errors at a place in the spec, and reading files.
 *
 * A report is "file:line:col: error: message", then the source line and a
 * caret under the offending text (chibicc's verror_at, with a column).  By
 * default it goes to stderr and the process exits 1; with a catcher armed
 * (error_catch) the report is kept for error_text() and control jumps back,
 * which is how the tests and the fuzz target survive bad specs.
 */
#include "bpgen.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static jmp_buf *catcher;
static char report[4096];
static int exit_status = 1;   /* 2 for a usage error (error_usage) */

void error_catch(jmp_buf *jb) {
  catcher = jb;
  if (jb)              /* disarming keeps the last report for error_text() */
    report[0] = '\0';
}

const char *error_text(void) { return report; }

NORETURN static void finish(void) {
  if (catcher)
    longjmp(*catcher, 1);
  fputs(report, stderr);
  exit(exit_status);
}

static size_t append(size_t at, const char *fmt, ...) PRINTF(2, 3);
static size_t append(size_t at, const char *fmt, ...) {
  if (at >= sizeof report)
    return at;
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(report + at, sizeof report - at, fmt, ap);
  va_end(ap);
  at += n > 0 ? (size_t)n : 0;
  return at < sizeof report ? at : sizeof report - 1;
}

NORETURN static void verror_at(const SrcFile *f, const char *loc, const char *fmt, va_list ap) {
  exit_status = 1;
  /* find the line holding loc */
  const char *start = f->text, *end = f->text + f->len;
  if (loc < start) loc = start;
  if (loc > end) loc = end;
  const char *line = loc;
  while (line > start && line[-1] != '\n')
    line--;
  const char *eol = loc;
  while (eol < end && *eol != '\n' && *eol != '\r')
    eol++;
  int lineno = 1;
  for (const char *p = start; p < line; p++)
    if (*p == '\n')
      lineno++;
  int col = (int)(loc - line) + 1;

  size_t at = append(0, "%s:%d:%d: error: ", f->name, lineno, col);
  if (at < sizeof report) {
    int n = vsnprintf(report + at, sizeof report - at, fmt, ap);
    at += n > 0 ? (size_t)n : 0;
    if (at >= sizeof report) at = sizeof report - 1;
  }
  /* the source line, with control characters shown as spaces and invalid
   * UTF-8 as '?', so the caret lands under the right column (one column per
   * character); a long line is shown as a window around the column */
  int width = (int)(eol - line), from = 0;
  if (col - 1 > 150)
    from = col - 1 - 100;
  if (width - from > 200)
    width = from + 200;
  at = append(at, "\n  %s", from ? "..." : "");
  int caret = from ? 3 : 0;
  for (int i = from; i < width;) {
    unsigned char c = (unsigned char)line[i];
    int len = c < 0x80 ? 1 : c >= 0xC2 && c <= 0xDF ? 2 : c >= 0xE0 && c <= 0xEF ? 3
              : c >= 0xF0 && c <= 0xF4 ? 4 : 0;
    for (int k = 1; k < len; k++)
      if (i + k >= width || ((unsigned char)line[i + k] & 0xC0) != 0x80)
        len = 0;
    if (i < col - 1)
      caret++;
    if (len == 0) {
      at = append(at, "?");
      i++;
    } else if (len == 1) {
      at = append(at, "%c", (c < 32 || c == 127) ? ' ' : c);
      i++;
    } else {
      at = append(at, "%.*s", len, line + i);
      i += len;
    }
  }
  at = append(at, "\n  %*s^\n", caret, "");
  finish();
}

void error_at(const SrcFile *f, const char *loc, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  verror_at(f, loc, fmt, ap);
}

void error_tok(const Token *tok, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  verror_at(tok->file, tok->loc, fmt, ap);
}

NORETURN static void verror_plain(int status, const char *fmt, va_list ap) {
  exit_status = status;
  size_t at = append(0, "bpgen: error: ");
  if (at < sizeof report) {
    int n = vsnprintf(report + at, sizeof report - at, fmt, ap);
    at += n > 0 ? (size_t)n : 0;
    if (at >= sizeof report) at = sizeof report - 2;
  }
  append(at, "\n");
  finish();
}

void error_plain(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  verror_plain(1, fmt, ap);
}

/* A mistake on the command line (unknown option, missing or bad value, a
 * required option absent): exit status 2, as getopt-based tools use. */
void error_usage(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  verror_plain(2, fmt, ap);
}

void die_at(const char *file, int line, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "bpgen: internal error at %s:%d: ", file, line);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  abort();
}

SrcFile *src_from_string(const char *name, const char *text) {
  SrcFile *f = arena_alloc(sizeof *f);
  f->name = arena_strndup(name, strlen(name));
  f->len = strlen(text);
  f->text = arena_strndup(text, f->len);
  return f;
}

SrcFile *read_src(const char *path) {
  FILE *fp = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
  if (!fp)
    error_plain("cannot open %s: %s", path, strerror(errno));
  size_t cap = 4096, len = 0;
  char *buf = xmalloc(cap);
  for (;;) {
    size_t n = fread(buf + len, 1, cap - len - 1, fp);
    len += n;
    if (n == 0)
      break;
    if (cap - len - 1 == 0) {
      cap *= 2;
      char *nb = realloc(buf, cap);
      if (!nb) { free(buf); error_plain("%s: file too large", path); }
      buf = nb;
    }
  }
  int bad = ferror(fp);
  int err = errno;
  if (fp != stdin)
    fclose(fp);
  if (bad) {
    free(buf);
    error_plain("cannot read %s: %s", path, strerror(err));
  }
  buf[len] = '\0';
  SrcFile *f = arena_alloc(sizeof *f);
  f->name = arena_strndup(path, strlen(path));
  f->text = arena_strndup(buf, len);   /* NUL bytes inside are kept: len is the truth */
  f->len = len;
  free(buf);
  return f;
}

void write_text(const char *path, const char *text) {
  FILE *f = fopen(path, "wb");
  if (!f)
    error_plain("cannot write %s: %s", path, strerror(errno));
  size_t n = strlen(text);
  if (fwrite(text, 1, n, f) != n || fclose(f) != 0)
    error_plain("cannot write %s: %s", path, strerror(errno));
}
