#!/bin/sh
# bench/run.sh: the performance benchmark of issue 5 (`make bench`).  Not a test.
#
# Measures, in one run: bp_gemm_f32 (runtime/kernels.c, gcc -O3 -march=native)
# against OpenBLAS cblas_sgemm on one thread (the roofline, native kernel:
# OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE are unset for it) on the matmul shapes
# of the lecture MLP's training step and on square sizes; PyTorch eager with
# autograd (bench/torch_step.py, 1 thread) per full training step; the emitted
# model per step, gcc and libtcc builds and the reference runtime
# (bench/step.c); `bpgen run` to its first step and its peak RSS; then prints
# one table; then gpt2.spec against llm.c and PyTorch (bench/gpt2_bench.sh,
# issue 14; skipped without ../shared/ref/llm.c or torch); then wavenet.spec
# and transformer.spec against PyTorch, with peak memory (bench/seq_bench.sh;
# TORCH_BLAS=DIR: an OpenBLAS libblas.so.3 for PyTorch).  Options: --quick
# (shorter timing; GPT-2 on 1 thread only), --threads N, --gpt2-large (GPT-2's
# third config too, L6 C384: slow).
#
# Needs libopenblas-dev for the roofline (installed here when root, bench only:
# bpgen never links it); without it the OpenBLAS columns are empty.
set -eu
cd "$(dirname "$0")/.."
quick=""
threads=1
gpt2_large=""
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=--quick ;;
    --threads) threads=$2; shift ;;
    --gpt2-large) gpt2_large=--large ;;
    *) echo "usage: bench/run.sh [--quick] [--threads N] [--gpt2-large]" >&2; exit 2 ;;
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
  "$out/gemm" $quick --threads "$threads" 2>"$out/gemm.summary" | tee "$out/gemm.out"

# ---- PyTorch -------------------------------------------------------------------
: >"$out/torch.txt"
if [ -x /usr/bin/python3 ]; then
  echo "== PyTorch eager + autograd, 1 thread: /usr/bin/python3 bench/torch_step.py"
  reps=5
  [ -n "$quick" ] && reps=3
  # PyTorch at its best, as issue 5 measured it: jemalloc that keeps the memory
  # it got (with glibc malloc the large configs fault pages in every step)
  jem=/usr/lib/x86_64-linux-gnu/libjemalloc.so.2
  if [ ! -e "$jem" ] && [ "$(id -u)" -eq 0 ]; then
    echo "bench: installing libjemalloc2 (for PyTorch only)" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends libjemalloc2 >&2 || true
  fi
  pre=""
  if [ -e "$jem" ]; then
    pre="LD_PRELOAD=$jem MALLOC_CONF=retain:true,dirty_decay_ms:-1,muzzy_decay_ms:-1"
    echo "== (PyTorch with $pre)"
  fi
  # shellcheck disable=SC2086
  env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE $pre OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 \
    /usr/bin/python3 bench/torch_step.py --reps "$reps" >"$out/torch.txt" || true
  cat "$out/torch.txt"
fi

# ---- emitted models --------------------------------------------------------------
# µs per full training step of the emitted model: (a) gcc -O3 -march=native build,
# (b) the in-memory libtcc build, (c) the reference runtime; gcc's compile time;
# allocations during steps; thread bits (build/bench/step, bench/step.c).
make -s build/bench/step >&2
echo "== emitted models, $threads thread(s): build/bench/step specs/makemore.spec $quick --threads $threads"
build/bench/step specs/makemore.spec $quick --threads "$threads" >"$out/models.txt"
: >"$out/models2.txt"
if [ "$(nproc)" -ge 2 ] && [ "$threads" -eq 1 ]; then
  echo "== 1 -> 2 threads, large configs: build/bench/step specs/makemore.spec $quick --no-ref --threads 2 --config 1024,256 --config 4096,1024"
  build/bench/step specs/makemore.spec $quick --no-ref --threads 2 --config 1024,256 --config 4096,1024 >"$out/models2.txt"
fi

# ---- bpgen run: start to first finished step, peak RSS ------------------------------
runline=""
# the lecture's alphabet: lowercase ASCII words of the system dictionary (V = 27)
words=""
if [ -r /usr/share/dict/american-english ]; then
  words=$out/words.txt
  grep -x '[a-z]*' /usr/share/dict/american-english >"$words" || words=""
fi
if [ -n "$words" ] && ./bpgen run --help 2>&1 | grep -q -- "--steps"; then
  ./bpgen run specs/makemore.spec --data "$words" --steps 1 --samples 0 --quiet >/dev/null 2>"$out/run.err" ||
    { echo "bench: bpgen run failed:" >&2; cat "$out/run.err" >&2; words=""; }
fi
if [ -n "$words" ]; then
  cmd="./bpgen run specs/makemore.spec --data $words --steps 1 --samples 0 --quiet"
  best=""
  for _ in 1 2 3 4 5; do
    t0=$(date +%s%N)
    BPGEN_STEP_CLOCK=1 $cmd >/dev/null 2>"$out/run.err" || true
    t1=$(awk '/^first step done:/ {print $4}' "$out/run.err")
    [ -n "$t1" ] || continue
    ms=$(( (t1 - t0) / 1000000 ))
    if [ -z "$best" ] || [ "$ms" -lt "$best" ]; then best=$ms; fi
  done
  runline="bpgen run, process start to the end of the first training step (best of 5): ${best:-n/a} ms  [BPGEN_STEP_CLOCK=1 $cmd]"
  t0=$(date +%s%N)
  /usr/bin/time -f "%M" -o "$out/rss.txt" ./bpgen run specs/makemore.spec --data "$words" -D H=200 --steps 200000 >"$out/train200.txt" 2>&1 ||
    echo "bench: the 200000-step run failed (see $out/train200.txt)" >&2
  train_s=$(( ($(date +%s%N) - t0) / 1000000 ))
  rss=$(tail -1 "$out/rss.txt")
fi

# ---- table ---------------------------------------------------------------------
roof=$(awk '/^#roofline/ {print $2}' "$out/gemm.summary")
echo
echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores; $(head -1 "$out/gemm.out" 2>/dev/null)"
echo "roofline: best OpenBLAS square sgemm, 1 thread: ${roof:-n/a} GFLOP/s"
echo
echo "| config (V=27, T=3, E=10) | PyTorch µs/step | gcc build µs/step | PyTorch / gcc | libtcc µs/step | tcc / gcc | reference runtime µs/step | step matmul GFLOP/s (gcc) | % of roofline | gcc -O3 compile ms |"
echo "|---|---|---|---|---|---|---|---|---|---|"
awk -v roof="${roof:-0}" '
  FILENAME ~ /torch/ && $1 == "torch" { split($2, h, "="); split($3, b, "="); torch[h[2] " " b[2]] = $4; next }
  FILENAME ~ /models/ { v[$1 " " $2 " " $3] = $4; if ($1 == "gcc") order[n++] = $2 " " $3 }
  END {
    for (i = 0; i < n; i++) {
      k = order[i]; split(k, hb, " ")
      g = v["gcc " k]; t = v["tcc " k]; r = v["ref " k]; fl = v["flop " k]
      py = (k in torch) ? torch[k] : "n/a"
      ratio = (k in torch) ? sprintf("%.1f×", torch[k] / g) : "n/a"
      gf = fl / g * 1000
      pct = roof > 0 ? sprintf("%.0f%%", 100 * gf / roof) : "n/a"
      printf "| H=%s, B=%s | %s | %.1f | %s | %.1f | %.2f | %s | %.1f | %s | %s |\n", hb[1], hb[2], py, g, ratio, t, t / g, (r == "" ? "n/a" : r), gf, pct, v["cc " k]
    }
  }' "$out/torch.txt" "$out/models.txt"
echo
awk '$1 == "allocs" { printf "allocations in 20 steps (gcc + tcc builds), H=%s B=%s: %s\n", $2, $3, $4 }
     $1 == "bits" { printf "gcc build, N threads vs 1 thread after 3 steps, H=%s B=%s: %s bits\n", $2, $3, $4 }' "$out/models.txt"
if [ -s "$out/models2.txt" ]; then
  awk 'FILENAME ~ /models.txt/ && $1 ~ /^(gcc|tcc)$/ { one[$1 " " $2 " " $3] = $4; next }
       FILENAME ~ /models2/ && $1 ~ /^(gcc|tcc)$/ && (($1 " " $2 " " $3) in one) {
         k = $1 " " $2 " " $3
         printf "1 -> 2 threads, %s build, H=%s B=%s: %.1f -> %.1f us/step (%.2fx)\n", $1, $2, $3, one[k], $4, one[k] / $4 }' \
    "$out/models.txt" "$out/models2.txt"
  awk '$1 == "bits" { printf "2 threads vs 1 thread, H=%s B=%s: %s bits\n", $2, $3, $4 }' "$out/models2.txt"
fi
[ -n "$runline" ] && echo "$runline"
[ -n "${rss:-}" ] && echo "Exercise 4 training, 200000 steps, H=200, 1 thread: $train_s ms wall; peak RSS $rss kB  [./bpgen run specs/makemore.spec --data $words -D H=200 --steps 200000]"
awk '$1 == "tcccompile" { printf "libtcc compile of the model, H=%s B=%s: %s ms\n", $2, $3, $4 }' "$out/models.txt" | head -1

# ---- makemore's transformer (issues 13, 14): forward + backward per step, both builds,
# CPU time (bench/jit_times.c; `build/bench/jit_times SPEC` alone prints each block) ----
make -s build/bench/jit_times >&2
for b in "" --gcc; do
  build/bench/jit_times specs/transformer.spec --reps 50 $b | head -1
done

# ---- GPT-2 (issue 14): gpt2.spec's step against llm.c's train_gpt2.c and PyTorch eager,
# after a first-step loss check on the same checkpoint and batch (bench/gpt2_bench.sh) ----
echo
if [ ! -f ../shared/ref/llm.c/train_gpt2.c ]; then
  echo "bench: GPT-2 against llm.c and PyTorch skipped: no ../shared/ref/llm.c/train_gpt2.c"
elif ! /usr/bin/python3 -c "import torch" 2>/dev/null; then
  echo "bench: GPT-2 against llm.c and PyTorch skipped: no torch for /usr/bin/python3"
else
  gpt2_threads="1 2"
  [ -n "$quick" ] && gpt2_threads=1
  echo "== GPT-2: bench/gpt2_bench.sh --threads \"$gpt2_threads\" $gpt2_large"
  # shellcheck disable=SC2086
  bench/gpt2_bench.sh --threads "$gpt2_threads" $gpt2_large -o "$out/gpt2" || echo "bench: gpt2_bench.sh failed" >&2
fi

# ---- data parallel over MPI (issue 17): 1 rank of 1 and 2 threads against 2 ranks,
# the same global batch, and the gradient allreduce's size and time (bench/mpi_bench.sh) ----
echo
if command -v mpirun >/dev/null 2>&1; then
  echo "== MPI: bench/mpi_bench.sh"
  bench/mpi_bench.sh || echo "bench: mpi_bench.sh failed" >&2
else
  echo "bench: MPI skipped: no mpirun (the set-up installs openmpi-bin)"
fi

# ---- the sequence models (issue 14): wavenet.spec and makemore's transformer
# against PyTorch eager, first two losses checked, peak memory beside PyTorch's
# (bench/seq_bench.sh; TORCH_BLAS=DIR puts an OpenBLAS libblas.so.3 first for
# PyTorch alone, as gpt2_bench.sh's --torch-blas) ----
echo
if ! /usr/bin/python3 -c "import torch" 2>/dev/null; then
  echo "bench: the sequence models against PyTorch skipped: no torch for /usr/bin/python3"
else
  seq_rounds=3
  [ -n "$quick" ] && seq_rounds=1
  echo "== sequence models: bench/seq_bench.sh --rounds $seq_rounds ${TORCH_BLAS:+--torch-blas $TORCH_BLAS}"
  bench/seq_bench.sh --rounds "$seq_rounds" ${TORCH_BLAS:+--torch-blas "$TORCH_BLAS"} -o "$out/seq" ||
    echo "bench: seq_bench.sh failed" >&2
fi
