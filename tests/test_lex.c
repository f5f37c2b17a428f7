/* test_lex.c: the lexer's tokens (kind, text, value, position) and errors. */
#include "tests.h"

#include <stdio.h>
#include <string.h>

static jmp_buf jb;

/* Lexes len bytes of text; NULL on a lexer error (report in error_text()). */
static Token *lex_bytes(const char *text, size_t len) {
  SrcFile *f = arena_alloc(sizeof *f);
  char *buf = arena_alloc(len + 1);
  memcpy(buf, text, len);
  f->name = "test.spec";
  f->text = buf;
  f->len = len;
  if (setjmp(jb)) {
    error_catch(NULL);
    return NULL;
  }
  error_catch(&jb);
  Token *t = lex_file(f);
  error_catch(NULL);
  return t;
}

/* A compact picture of a token list: "I:dim@1:1 N:32=32i P:= L E", kinds
 * I(dent) N(um) P(unct) L (newline) E(of); positions for idents. */
static const char *picture(Token *t) {
  static char buf[1024];
  size_t at = 0;
  for (; t; t = t->next) {
    char one[128];
    switch (t->kind) {
    case TK_IDENT: snprintf(one, sizeof one, "I:%.*s@%d:%d", t->len, t->loc, t->line, t->col); break;
    case TK_NUM: snprintf(one, sizeof one, "N:%.*s=%g%s", t->len, t->loc, t->num, t->is_int ? "i" : ""); break;
    case TK_PUNCT: snprintf(one, sizeof one, "P:%.*s", t->len, t->loc); break;
    case TK_NEWLINE: snprintf(one, sizeof one, "L"); break;
    case TK_EOF: snprintf(one, sizeof one, "E@%d:%d", t->line, t->col); break;
    }
    at += (size_t)snprintf(buf + at, sizeof buf - at, "%s%s", at ? " " : "", one);
  }
  return buf;
}

static const struct { const char *in, *want; } good[] = {
    {"", "E@1:1"},
    {"# only a comment\n\n   \n", "E@4:1"},
    {"dim B = 32", "I:dim@1:1 I:B@1:5 P:= N:32=32i L E@1:11"},
    {"dim B = 32\n", "I:dim@1:1 I:B@1:5 P:= N:32=32i L E@2:1"},
    {"a\r\nb\r\n", "I:a@1:1 L I:b@2:1 L E@3:1"},
    {"a # c\n\n# d\n\n  b", "I:a@1:1 L I:b@5:3 L E@5:4"},
    {"\n\na", "I:a@3:1 L E@3:2"},
    {"=+-*/@^()[],:~", "P:= P:+ P:- P:* P:/ P:@ P:^ P:( P:) P:[ P:] P:, P:: P:~ L E@1:15"},
    {"1e-5 0.5 .5 3. 2E+3 007", "N:1e-5=1e-05 N:0.5=0.5 N:.5=0.5 N:3.=3 N:2E+3=2000 N:007=7i L E@1:24"},
    {"x^-0.5", "I:x@1:1 P:^ P:- N:0.5=0.5 L E@1:7"},
    {"_a1 b_2\tc", "I:_a1@1:1 I:b_2@1:5 I:c@1:9 L E@1:10"},
    {"C[X]", "I:C@1:1 P:[ I:X@1:3 P:] L E@1:5"},
    {"a\rb", "I:a@1:1 I:b@1:3 L E@1:4"},
};

START_TEST(test_good) {
  Token *t = lex_bytes(good[_i].in, strlen(good[_i].in));
  ck_assert_msg(t, "%s: %s", good[_i].in, error_text());
  ck_assert_str_eq(picture(t), good[_i].want);
}
END_TEST

static const struct { const char *in; size_t len; const char *msg, *pos; } bad[] = {
    {"a = $", 5, "unexpected character '$'", "1:5"},
    {"a\n  b = \x01", 9, "unexpected character '\\x01'", "2:7"},
    {"x = \xc3\xa9", 6, "unexpected character '\\xC3'", "1:5"},
    {"dim B = 1e", 10, "bad number '1e'", "1:9"},
    {"y = 1.2.3", 9, "bad number '1.2.3'", "1:5"},
    {"y = 12abc", 9, "bad number '12abc'", "1:5"},
    {"y = 1e+", 7, "bad number '1e+'", "1:5"},
    {"y = 0x1f", 8, "bad number '0x1f'", "1:5"},
    {"y = 1e999", 9, "number too large", "1:5"},
    {"a\0b", 3, "NUL byte", "1:2"},
    {"# c\0\n", 5, "NUL byte", "1:4"},
    {"a\0", 2, "NUL byte", "1:2"},
    {"a = .", 5, "unexpected character '.'", "1:5"},
};

START_TEST(test_bad) {
  Token *t = lex_bytes(bad[_i].in, bad[_i].len);
  ck_assert_msg(!t, "%s: no error", bad[_i].in);
  const char *rep = error_text();
  ck_assert_msg(strstr(rep, bad[_i].msg), "want '%s' in:\n%s", bad[_i].msg, rep);
  ck_assert_str_eq(error_pos(rep), bad[_i].pos);
}
END_TEST

START_TEST(test_tok_is) {
  Token *t = lex_bytes("dim (7", 6);
  ck_assert(tok_is(t, "dim"));
  ck_assert(!tok_is(t, "di"));
  ck_assert(!tok_is(t, "dims"));
  ck_assert(tok_is(t->next, "("));
  ck_assert(!tok_is(t->next->next, "7"));   /* numbers are not punct or ident */
  ck_assert(!tok_is(t->next->next->next, ""));
}
END_TEST

static Suite *make_suite(void) {
  Suite *s = suite_create("lex");
  TCase *tc = tcase_create("lex");
  tcase_add_loop_test(tc, test_good, 0, (int)(sizeof good / sizeof good[0]));
  tcase_add_loop_test(tc, test_bad, 0, (int)(sizeof bad / sizeof bad[0]));
  tcase_add_test(tc, test_tok_is);
  suite_add_tcase(s, tc);
  return s;
}
TESTS_REGISTER(make_suite)
