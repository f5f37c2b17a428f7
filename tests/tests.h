/* tests.h: what every Check suite of bpgen shares.
 *
 * A test file defines `static Suite *make_suite(void)` and registers it with
 * TESTS_REGISTER(make_suite); check_main.c runs every registered suite, so
 * adding a file adds its tests without touching a list.
 */
#ifndef TESTS_H
#define TESTS_H

#include <check.h>
#include "bpgen.h"

void tests_register(Suite *(*make)(void));
#define TESTS_REGISTER(fn) \
  __attribute__((constructor)) static void register_##fn(void) { tests_register(fn); }

/* Parses spec text (file name "test.spec"); a user error fails the test with
 * the report. */
Graph *parse_text(const char *text);
/* Parses spec text expecting a user error; returns the report ("" when the
 * spec parsed without error). */
const char *parse_error(const char *text);
/* The "line:col" of a report's first line, e.g. "3:14", in the arena. */
const char *error_pos(const char *report);

/* A new empty directory for a test's files, under the suite's scratch
 * directory ($TMPDIR, which check_main.c points at a directory of its own and
 * removes when the suites end, failed tests or not); arena string. */
const char *tests_tmpdir(const char *prefix);

/* Overrides (into ovr, at most 8) that run a big spec at small odd sizes: the
 * spec's dims among B, T, H, E, C, C2 and NH set small, T only where the spec
 * takes it (wavenet needs its 8); none for a spec of at most 50,000 params
 * (it runs at its own sizes).  Returns how many. */
int spec_small_dims(const char *path, DimOverride *ovr);
/* Whether spec text parses with these dim overrides (no error). */
bool parses_with(const char *name, const char *text, DimOverride *ovr, int novr);
/* Parses the spec at path with those overrides (grad_build not run). */
Graph *load_spec_with(const char *path, DimOverride *ovr, int novr);

/* Directory of the source tree's specs (BPGEN_SPECS or "specs"). */
const char *specs_dir(void);
/* The paths of the .spec files there (at most max); fails the test if none. */
int spec_paths(const char **paths, int max);

#endif
