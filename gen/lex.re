/* lex.re: spec text -> Token list (re2c turns this file into gen/lex.c).
 *
 * The scanner runs over the whole file held in memory.  SrcFile.len is the
 * truth, not the first NUL: the file is followed by a NUL sentinel, and re2c's
 * bounds-checked sentinel mode (re2c:eof) tells the sentinel at text[len] from
 * a NUL byte inside the file, which is an error.  Numbers are scanned twice
 * over: the longest well-formed number, and the longest run of number-ish
 * characters; when the second is longer (`1e`, `1.2.3`, `12abc`) the number is
 * bad.  Blank and comment-only lines fold into the previous TK_NEWLINE, and the
 * list always ends "... TK_NEWLINE TK_EOF" when it holds any token at all.
 */
#include "bpgen.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct Lexer {
  const SrcFile *f;
  const char *line_start;
  int line;
  Token head, *last;
} Lexer;

static Token *add(Lexer *lx, TokenKind kind, const char *start, const char *end) {
  Token *t = arena_alloc(sizeof *t);
  t->kind = kind;
  t->loc = start;
  t->len = (int)(end - start);
  t->line = lx->line;
  t->col = (int)(start - lx->line_start) + 1;
  t->file = lx->f;
  lx->last->next = t;
  lx->last = t;
  return t;
}

/* A newline token, unless the list is empty or already ends in one. */
static void add_newline(Lexer *lx, const char *start, const char *end) {
  if (lx->last != &lx->head && lx->last->kind != TK_NEWLINE)
    add(lx, TK_NEWLINE, start, end);
}

static void add_number(Lexer *lx, const char *start, const char *end) {
  char *s = arena_strndup(start, (size_t)(end - start));
  Token *t = add(lx, TK_NUM, start, end);
  t->num = strtod(s, NULL);
  t->is_int = strpbrk(s, ".eE") == NULL;
  if (!isfinite(t->num))
    error_at(lx->f, start, "number too large: %s", s);
}

Token *lex_file(const SrcFile *f) {
  Lexer lx = {.f = f, .line_start = f->text, .line = 1};
  lx.last = &lx.head;
  const char *YYCURSOR = f->text, *YYLIMIT = f->text + f->len;
  for (;;) {
    const char *start = YYCURSOR;
    /*!re2c
      re2c:define:YYCTYPE = "unsigned char";
      re2c:yyfill:enable = 0;
      re2c:eof = 0;
      re2c:flags:utf-8 = 0;

      digits = [0-9]+;
      exp    = [eE] [+-]? digits;
      number = digits ("." [0-9]*)? exp? | "." digits exp?;
      numish = ([0-9] | "." [0-9]) ([0-9a-zA-Z_.] | [eE] [+-])*;
      ident  = [a-zA-Z_] [a-zA-Z0-9_]*;

      $                      { break; }
      [ \t\r]+               { continue; }
      "#" [^\n\r\x00]*       { continue; }
      "\r"? "\n"             { add_newline(&lx, start, YYCURSOR);
                               lx.line++;
                               lx.line_start = YYCURSOR;
                               continue; }
      number                 { add_number(&lx, start, YYCURSOR); continue; }
      numish                 { error_at(f, start, "bad number '%.*s'", (int)(YYCURSOR - start), start); }
      ident                  { add(&lx, TK_IDENT, start, YYCURSOR); continue; }
      [-=+*/@^()[\],:~]      { add(&lx, TK_PUNCT, start, YYCURSOR); continue; }
      "\x00"                 { error_at(f, start, "NUL byte in the file"); }
      *                      { unsigned char c = (unsigned char)*start;
                               if (c > 32 && c < 127)
                                 error_at(f, start, "unexpected character '%c'", c);
                               error_at(f, start, "unexpected character '\\x%02X'", c); }
    */
  }
  add_newline(&lx, YYLIMIT, YYLIMIT);
  add(&lx, TK_EOF, YYLIMIT, YYLIMIT);
  return lx.head.next;
}

bool tok_is(const Token *t, const char *s) {
  if (t->kind != TK_PUNCT && t->kind != TK_IDENT)
    return false;
  size_t n = strlen(s);
  return (size_t)t->len == n && memcmp(t->loc, s, n) == 0;
}
