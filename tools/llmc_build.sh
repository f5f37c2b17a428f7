#!/bin/sh
# tools/llmc_build.sh LLMC_DIR OUT: builds tools/llmc_parity.c (which includes
# llm.c's train_gpt2.c from LLMC_DIR, unmodified, with TESTING) into OUT as
# llm.c's Makefile builds it for the CPU: -Ofast, then -march=native
# (CFLAGS_COND) and -fopenmp -DOMP when the compiler takes them.  Prints the
# command's flags.  Used by tools/llmc_parity.sh and bench/gpt2_bench.sh.
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
llmc=$1 out=$2
probe=$(mktemp -d "${TMPDIR:-/tmp}/llmc_flags.XXXXXX")
echo 'int main(void){return 0;}' >"$probe/flag.c"
flags="-Ofast -Wno-unused-result"
for f in -march=native -fopenmp; do
  ${CC:-gcc} $f -o "$probe/flag" "$probe/flag.c" 2>/dev/null && flags="$flags $f"
done
rm -rf "$probe"
case $flags in *-fopenmp*) flags="$flags -DOMP" ;; esac
# shellcheck disable=SC2086
${CC:-gcc} $flags -I"$llmc" -I"$here/runtime" -o "$out" "$here/tools/llmc_parity.c" -lm
echo "${CC:-gcc} $flags"
