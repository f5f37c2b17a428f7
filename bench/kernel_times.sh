#!/bin/sh
# bench/kernel_times.sh: where a training step's time goes, per kernel call.
#   bench/kernel_times.sh SPEC [REPS] [-D NAME=INT]...
# Emits SPEC for gcc (bpgen SPEC -o), wraps every kernel call (a line starting
# with bp_) of forward, backward and sgd_step in a timer, builds it with
# gcc -O3 -march=native and bench/kernel_times.c, and prints µs per step for
# each call.  Loops the emitter writes inline (gathers, copies) are not timed
# separately: "whole step" minus "kernel calls" is their share.  Not a test.
set -eu
cd "$(dirname "$0")/.."
[ $# -ge 1 ] || { echo "usage: bench/kernel_times.sh SPEC [REPS] [-D NAME=INT]..." >&2; exit 2; }
spec=$1
shift
reps=1000
case "${1:-}" in [0-9]*) reps=$1; shift ;; esac
out=build/kernel_times
mkdir -p "$out"
make -s bpgen
./bpgen "$spec" "$@" -o "$out/model.c"
prefix=$(sed -n 's/^extern const BpModel \(.*\)_model;$/\1/p' "$out/model.c" | head -1)
awk -v p="$prefix" '
  BEGIN { print "#include <time.h>"
          print "static double kt_now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t);"
          print "  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec; }"
          print "double kt_times[256];"; n = 0 }
  $0 ~ "^(double|void) " p "_(forward|backward|sgd_step)\\(.*\\) \\{$" { infn = 1 }
  infn && /^  (s->[a-z_0-9]+\[0\] = .*)?bp_[a-z_0-9]+\(/ && n < 256 {
    match($0, /bp_[a-z_0-9]+/)
    name[n] = substr($0, RSTART, RLENGTH) " #" n
    print "  { double kt0 = kt_now();"; print; print "  kt_times[" n "] += kt_now() - kt0; }"
    n++; next }
  /^}/ { infn = 0 }
  { print }
  END { printf "const char *kt_names[] = {"
        for (i = 0; i < n; i++) printf "%s\"%s\"", (i ? ", " : ""), name[i]
        print "};"; print "int kt_count = " n ";" }' "$out/model.c" >"$out/timed.c"
gcc -O3 -march=native -Iruntime -DMODEL="${prefix}_model" -o "$out/run" "$out/timed.c" bench/kernel_times.c -lm -lpthread
"$out/run" "$reps"
