#!/bin/sh
# bench/run.sh: the performance benchmark of issue 5 (`make bench`).  Not a test.
#
# Measures, in one run: bp_gemm_f32 (runtime/kernels.c, gcc -O3 -march=native)
# against OpenBLAS cblas_sgemm on one thread (the roofline, native kernel:
# OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE are unset for it) on the matmul shapes
# of the lecture MLP's training step and on square sizes; PyTorch eager with
# autograd (bench/torch_step.py, 1 thread) per full training step; then prints
# a table per config.  Options: --quick (shorter timing), --threads N.
#
# Needs libopenblas-dev for the roofline (installed here when root, bench only:
# bpgen never links it); without it the OpenBLAS columns are empty.
set -eu
cd "$(dirname "$0")/.."
quick=""
threads=1
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=--quick ;;
    --threads) threads=$2; shift ;;
    *) echo "usage: bench/run.sh [--quick] [--threads N]" >&2; exit 2 ;;
  esac
  shift
done

KFLAGS=${KFLAGS:-"-O3 -march=native"}
out=build/bench
mkdir -p "$out"

# ---- OpenBLAS (bench only) ----------------------------------------------------
blas=""
if ! dpkg-query -W -f='${Status}' libopenblas-dev 2>/dev/null | grep -q "install ok installed"; then
  if [ "$(id -u)" -eq 0 ]; then
    echo "bench: installing libopenblas-dev (for the roofline only)" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends libopenblas-dev >&2 ||
      { apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends libopenblas-dev >&2; } || true
  else
    echo "bench: no libopenblas-dev (as root: apt-get install libopenblas-dev); no roofline" >&2
  fi
fi
if dpkg-query -W -f='${Status}' libopenblas-dev 2>/dev/null | grep -q "install ok installed"; then
  blas="-DHAVE_OPENBLAS -lopenblas"
fi

# shellcheck disable=SC2086
gcc -std=c11 -D_GNU_SOURCE -Iruntime $KFLAGS -o "$out/gemm" bench/gemm.c runtime/kernels.c $blas -lpthread -lm

echo "== machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores; $(grep -o -w 'avx2\|fma\|avx512f' /proc/cpuinfo | sort -u | tr '\n' ' ')"
echo "== OpenBLAS runs with OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset (they were: '${OPENBLAS_CORETYPE:-}' '${OPENBLAS_L2_SIZE:-}')"
echo "== bp_gemm_f32 vs OpenBLAS sgemm ($threads thread(s)): $out/gemm $quick --threads $threads"
env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OPENBLAS_NUM_THREADS="$threads" \
  "$out/gemm" $quick --threads "$threads" 2>"$out/gemm.summary"

# ---- PyTorch -------------------------------------------------------------------
: >"$out/torch.txt"
if [ -x /usr/bin/python3 ]; then
  echo "== PyTorch eager + autograd, 1 thread: /usr/bin/python3 bench/torch_step.py"
  reps=5
  [ -n "$quick" ] && reps=3
  env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 \
    /usr/bin/python3 bench/torch_step.py --reps "$reps" >"$out/torch.txt" || true
  cat "$out/torch.txt"
fi

# ---- emitted models --------------------------------------------------------------
# TODO(emit): when gen/emit.c and gen/jit.c land, time per full training step for
# each config: (a) `bpgen specs/makemore.spec -o` built with gcc -O3 -march=native
# (and gcc's compile time for it), (b) the in-memory libtcc build, (c) the reference
# runtime; `bpgen run` start to first finished step; peak RSS.  Write them as
# "gcc H B us", "tcc H B us", "ref H B us" lines to $out/models.txt.
: >"$out/models.txt"

# ---- table ---------------------------------------------------------------------
roof=$(awk '/^#roofline/ {print $2}' "$out/gemm.summary")
echo
echo "| config (V=27, T=3, E=10) | PyTorch µs/step | bp_gemm matmuls µs/step | matmul GFLOP/s | OpenBLAS same shapes GFLOP/s | % of roofline (${roof:-n/a} GFLOP/s) |"
echo "|---|---|---|---|---|---|"
awk -v roof="${roof:-0}" '
  FILENAME ~ /torch/ && $1 == "torch" { split($2, h, "="); split($3, b, "="); torch[h[2] " " b[2]] = $4 }
  FILENAME ~ /summary/ && $1 == "#step" {
    key = $2 " " $3
    t = (key in torch) ? torch[key] : "n/a"
    pct = roof > 0 ? sprintf("%.0f%%", 100 * $5 / roof) : "n/a"
    printf "| H=%s, B=%s | %s | %.1f | %.1f | %.1f | %s |\n", $2, $3, t, $4, $5, $6, pct
  }' "$out/torch.txt" "$out/gemm.summary"
echo
echo "(emitted-model columns -- gcc build, libtcc build, reference runtime, time to first step -- TODO: need gen/emit.c)"
