#!/bin/sh
# bench/mpi_bench.sh: data-parallel training over MPI (issue 17), `make bench`
# (bench/run.sh calls it when mpirun is installed).  Not a test.
#
#   bench/mpi_bench.sh [-b BPGEN] [--steps-scale X]
#
# For specs/gpt2.spec (its dims: L4 C128 NH4, T 64; a character stream) and
# specs/makemore.spec (H 200, the lecture's; words), the same global batch
# (gpt2: 8 rows, makemore: 32) three ways, one after the other:
#   1 rank of 1 thread (batch G), 1 rank of 2 threads (--threads 2, batch G),
#   2 ranks of 1 thread (mpirun -np 2 --bind-to none, batch G/2 each);
# each the training time bpgen itself measures (--comm-stats prints it: no
# compile or start-up), as ms per step.  The 2-rank runs' --comm-stats also
# give the gradient allreduce's size per step (bytes) and its mean time as
# rank 0 saw it (which includes waiting for the slower rank).  The
# load average (uptime) is printed before and after: the host may be shared.
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
bpgen=$here/bpgen
scale=1
while [ $# -gt 0 ]; do
  case "$1" in
    -b) bpgen=$2; shift ;;
    --steps-scale) scale=$2; shift ;;
    *) echo "usage: bench/mpi_bench.sh [-b BPGEN] [--steps-scale X]" >&2; exit 2 ;;
  esac
  shift
done
if ! command -v mpirun >/dev/null 2>&1; then
  echo "mpi_bench: no mpirun (apt-get install openmpi-bin libopenmpi-dev); skipped" >&2
  exit 77
fi
MPI="mpirun --oversubscribe --bind-to none"
[ "$(id -u)" -eq 0 ] && MPI="$MPI --allow-run-as-root"
d=$(mktemp -d /tmp/bpgen_mpi_bench.XXXXXX)
trap 'rm -rf "$d"' EXIT

# data: lowercase words (the system dictionary when there, else the README's
# words), and the same as a character stream for gpt2
if [ -r /usr/share/dict/american-english ]; then
  grep -x '[a-z]*' /usr/share/dict/american-english | head -n 30000 >"$d/words.txt"
else
  tr -cs 'a-z' '\n' <"$here/README.md" | grep -x '[a-z][a-z]*' >"$d/words.txt"
fi
tr '\n' ' ' <"$d/words.txt" | head -c 2000000 >"$d/text.txt"

steps() { awk -v n="$1" -v s="$scale" 'BEGIN { v = int(n * s); print v < 2 ? 2 : v }'; }
# ms per step: --comm-stats's "training X s" of file $1 over $2 steps
msstep() { awk -v n="$2" '/^allreduce over/ { for (i = 1; i < NF; i++) if ($i == "training") printf "%.3f", 1000 * $(i + 1) / n }' "$1"; }

echo "load before: $(uptime | sed 's/.*load average: //')"
printf '| spec | global batch | 1 rank, 1 thread ms/step | 1 rank, 2 threads | 2 ranks of 1 thread | speed-up, 2 ranks vs 1 rank of 1 thread | gradient bytes/step | allreduce ms (rank 0) |\n'
printf '|---|---|---|---|---|---|---|---|\n'
for cfg in gpt2 makemore; do
  if [ "$cfg" = gpt2 ]; then
    G=8 n=$(steps 40)
    run="$bpgen run $here/specs/gpt2.spec --text $d/text.txt --optimizer adamw --lr 1e-4 --sample-len 0 --eval-batches 1"
  else
    G=32 n=$(steps 4000)
    run="$bpgen run $here/specs/makemore.spec -D H=200 --data $d/words.txt --samples 0"
  fi
  H=$((G / 2))
  # shellcheck disable=SC2086
  $run -D B=$G --steps "$n" --comm-stats >"$d/one.out" 2>&1
  # shellcheck disable=SC2086
  $run -D B=$G --steps "$n" --threads 2 --comm-stats >"$d/two.out" 2>&1
  # shellcheck disable=SC2086
  $MPI -np 2 $run -D B=$H --steps "$n" --comm-stats >"$d/mpi.out" 2>&1
  a=$(msstep "$d/one.out" "$n") b=$(msstep "$d/two.out" "$n") c=$(msstep "$d/mpi.out" "$n")
  gb=$(awk '$1 == "gradients" { print $4 }' "$d/mpi.out")
  gt=$(awk '$1 == "gradients" { print $7 }' "$d/mpi.out")
  ratio=$(awk -v a="$a" -v c="$c" 'BEGIN { if (c > 0) printf "%.2f×", a / c; else print "n/a" }')
  printf '| %s | %d (%d steps) | %s | %s | %s | %s | %s | %s |\n' "$cfg" "$G" "$n" "${a:-n/a}" \
    "${b:-n/a}" "${c:-n/a}" "$ratio" "${gb:-n/a}" "${gt:-n/a}"
  for f in one two mpi; do
    grep -q '^allreduce over' "$d/$f.out" || { echo "mpi_bench: the $cfg run ($f) failed:" >&2; tail -5 "$d/$f.out" >&2; }
  done
done
echo "load after: $(uptime | sed 's/.*load average: //')"
echo "(commands: $MPI -np 2 bpgen run SPEC -D B=G/2 --comm-stats, against bpgen run SPEC -D B=G [--threads 2])"
