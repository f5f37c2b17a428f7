#!/bin/sh
# bench/gpt2_bench.sh: specs/gpt2.spec's training step (forward + backward +
# AdamW) against llm.c's train_gpt2.c and PyTorch eager, issue 14's configs.
# Not a test; bench/run.sh calls it (`make bench`).
#
#   bench/gpt2_bench.sh [--large] [--threads "1 2"] [--torch-blas DIR] [-b BPGEN] [-l LLMC_DIR] [-o WORKDIR]
#
# Configs: L2 C64 NH4 (B 4, T 32; V 27 / Vp 32) and L4 C128 NH4 (B 8, T 64;
# V 65 / Vp 96); --large adds L6 C384 NH6 (B 4, T 256; V 65 / Vp 96), slow.
# For each config, one after the other (the host has 2 cores, maybe shared):
# 1. a token file of exactly one batch (B*T+1 tokens below V) and bpgen's init
#    in llm.c's checkpoint format (`bpgen run --steps 0 --save init.bin`), as
#    tools/llmc_parity.sh makes them;
# 2. the loss check: the first step's loss of every side on that checkpoint
#    and batch (bpgen's libtcc and gcc builds from their --log, llm.c's, and
#    PyTorch's) must be within 1e-2 of llm.c's, else the config is not timed
#    and the script fails;
# 3. per step, median: llm.c (tools/llmc_parity.c `time`, built as llm.c's
#    Makefile builds it: gcc -Ofast, -march=native and -fopenmp -DOMP when
#    the compiler takes them (its CFLAGS_COND and OpenMP check; note that
#    tools/llmc_parity.sh leaves -march=native out); OMP_NUM_THREADS), PyTorch
#    eager float32 (bench/torch_gpt2_step.py, torch.set_num_threads) and
#    bpgen: `bpgen run --load init.bin --data-tokens tok.bin --optimizer adamw
#    --threads K` (libtcc, in memory) and the `bpgen SPEC --trainer` program
#    built with gcc -O3 -march=native (the gcc file), each timed as the wall
#    time of a run of 2+N steps minus that of a run of 2 steps, divided by N
#    (removes start-up and compile); the median of 3 such pairs.  bpgen's
#    column is thus a mean over N steps, llm.c's and PyTorch's a median of
#    single steps;
# 4. memory, 1 thread: bpgen's state (the model's state_size, from
#    build/bench/seq_step --info, plus AdamW's two moments) and the peak RSS
#    (/usr/bin/time %M) of an N-step run of each bpgen build and of PyTorch's
#    timed run (3 + N steps; interpreter and torch included).
# PyTorch's speed is its BLAS's: Debian's torch calls libblas.so.3, which is
# the reference BLAS (libblas3, ~6 GFLOP/s) unless OpenBLAS is installed (as
# bench/run.sh installs it as root); --torch-blas DIR puts DIR (holding an
# OpenBLAS libblas.so.3, e.g. `dpkg -x` of libopenblas0-pthread) first on
# PyTorch's LD_LIBRARY_PATH only.  The library it loaded is printed.
# Prints one table: config, threads, the four ms/step and the ratios
# (PyTorch / bpgen and llm.c / bpgen, for each bpgen build), and the load
# (uptime) before and after; then the memory table.  Exit 77 when llm.c's sources or torch are not
# there, 1 when a loss check fails.
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
bpgen=$here/bpgen
llmc=$here/../shared/ref/llm.c
work=
large=
threads="1 2"
tblas=
while [ $# -gt 0 ]; do
  case $1 in
    --large) large=1; shift ;;
    --threads) threads=$2; shift 2 ;;
    --torch-blas) tblas=$2; shift 2 ;;
    -b) bpgen=$2; shift 2 ;;
    -l) llmc=$2; shift 2 ;;
    -o) work=$2; shift 2 ;;
    *) echo "usage: $0 [--large] [--threads \"1 2\"] [--torch-blas DIR] [-b BPGEN] [-l LLMC_DIR] [-o WORKDIR]" >&2; exit 2 ;;
  esac
done
if [ ! -f "$llmc/train_gpt2.c" ]; then
  echo "gpt2_bench: skipped: no llm.c sources in $llmc (train_gpt2.c)" >&2
  exit 77
fi
if ! /usr/bin/python3 -c "import torch, numpy" 2>/dev/null; then
  echo "gpt2_bench: skipped: no torch for /usr/bin/python3" >&2
  exit 77
fi
case $bpgen in /*) ;; *) bpgen=$(pwd)/$bpgen ;; esac
[ -n "$work" ] || work=$(mktemp -d "${TMPDIR:-/tmp}/gpt2_bench.XXXXXX")
mkdir -p "$work"
spec=$here/specs/gpt2.spec
SEED=1337
load0=$(uptime)

# llm.c, as its Makefile builds it for the CPU (tools/llmc_build.sh)
drv=$work/llmc_parity
llmc_cmd=$("$here/tools/llmc_build.sh" "$llmc" "$drv")
echo "llm.c built: $llmc_cmd (train_gpt2.c from $llmc, unmodified, TESTING)"

# PyTorch: K threads (torch and its BLAS), OpenBLAS's own kernel choice; at
# K > 1 torch's OpenMP threads wait passively, else their spinning takes the
# cores from OpenBLAS's threads (measured here: 160 ms against 41 ms at L4 C128)
# (tprefix: a command to run it under, /usr/bin/time for its peak RSS)
tprefix=
torch_step() {
  tk=$1
  shift
  wait=ACTIVE
  [ "$tk" -gt 1 ] && wait=PASSIVE
  $tprefix env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OMP_NUM_THREADS="$tk" OPENBLAS_NUM_THREADS="$tk" OMP_WAIT_POLICY=$wait \
    LD_LIBRARY_PATH="${tblas:+$tblas:}${LD_LIBRARY_PATH:-}" \
    /usr/bin/python3 "$here/bench/torch_gpt2_step.py" "$@" --threads "$tk"
}

ms_now() { echo $(($(date +%s%N) / 1000000)); }
median() { sort -n | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'; }

# bpgen_step NAME N K CMD...: ms per step of CMD (a bpgen trainer), the median
# over 3 pairs of (2+N steps) - (2 steps), K threads
bpgen_step() {
  bs=$1 n=$2 th=$3
  shift 3
  for _ in 1 2 3; do
    t0=$(ms_now)
    "$@" --steps 2 --threads "$th" >/dev/null 2>"$work/$bs.err"
    t1=$(ms_now)
    "$@" --steps $((2 + n)) --threads "$th" >/dev/null 2>"$work/$bs.err"
    t2=$(ms_now)
    echo "$t0 $t1 $t2" | awk -v n="$n" '{printf "%.3f\n", (($3 - $2) - ($2 - $1)) / n}'
  done | median
}

rows=$work/rows.txt
: >"$rows"
mem=$work/mem.txt
: >"$mem"
make -s -C "$here" build/bench/seq_step >&2
rc=0
configs="L=2,C=64,NH=4,B=4,T=32,V=27,Vp=32,N=200 L=4,C=128,NH=4,B=8,T=64,V=65,Vp=96,N=30"
[ -n "$large" ] && configs="$configs L=6,C=384,NH=6,B=4,T=256,V=65,Vp=96,N=5"
for cf in $configs; do
  eval "$(echo "$cf" | tr ',' ' ')"
  name="L$L C$C NH$NH ($B, $T; $V/$Vp)"
  dims="-D L=$L -D C=$C -D NH=$NH -D B=$B -D T=$T -D maxT=$T -D V=$V -D Vp=$Vp"
  d=$work/L${L}C$C
  mkdir -p "$d"
  "$drv" tokens "$d/tok.bin" $((B * T + 1)) "$V" "$SEED"
  # shellcheck disable=SC2086
  "$bpgen" run "$spec" $dims --data-tokens "$d/tok.bin" --steps 0 --sample-len 0 --seed "$SEED" \
    --save "$d/init.bin" --quiet >/dev/null
  # shellcheck disable=SC2086
  "$bpgen" "$spec" $dims --trainer -o "$d/train.c"
  gcc -O3 -march=native -o "$d/train" "$d/train.c" -lm -lpthread
  run_tcc="$bpgen run $spec $dims"
  run_gcc="$d/train"
  common="--load $d/init.bin --data-tokens $d/tok.bin --optimizer adamw --lr 1e-4 --beta1 0.9 --beta2 0.999
    --eps 1e-8 --weight-decay 0.01 --lr-schedule constant --sample-len 0 --quiet"

  # the loss check: first step, same checkpoint and batch
  # shellcheck disable=SC2086
  $run_tcc $common --steps 1 --log "$d/tcc.csv" >/dev/null
  # shellcheck disable=SC2086
  $run_gcc $common --steps 1 --log "$d/gcc.csv" >/dev/null
  l_tcc=$(awk -F, 'NR == 2 {print $2}' "$d/tcc.csv")
  l_gcc=$(awk -F, 'NR == 2 {print $2}' "$d/gcc.csv")
  OMP_NUM_THREADS=1 "$drv" time "$d/init.bin" "$d/tok.bin" "$B" "$T" 1 >"$d/llmc1.txt"
  l_llmc=$(awk '$1 == "loss0" {print $2}' "$d/llmc1.txt")
  torch_step 1 "$d/init.bin" "$d/tok.bin" "$B" "$T" --steps 1 --warmup 0 >"$d/torch1.txt"
  torch_blas=$(awk '$1 == "blas" {print $2}' "$d/torch1.txt")
  l_torch=$(awk '$1 == "loss0" {print $2}' "$d/torch1.txt")
  ok=$(awk -v a="$l_llmc" -v b="$l_tcc" -v c="$l_gcc" -v t="$l_torch" 'function ab(x) {return x < 0 ? -x : x}
    BEGIN {print (a != "" && b != "" && c != "" && t != "" && ab(b - a) < 1e-2 && ab(c - a) < 1e-2 && ab(t - a) < 1e-2) ? "ok" : "NOT OK"}')
  echo "$name: first-step loss llm.c $l_llmc, bpgen libtcc $l_tcc, bpgen gcc $l_gcc, PyTorch $l_torch: $ok (1e-2)"
  if [ "$ok" != ok ]; then
    rc=1
    continue
  fi

  for k in $threads; do
    [ "$k" -le "$(nproc)" ] || continue
    OMP_NUM_THREADS=$k "$drv" time "$d/init.bin" "$d/tok.bin" "$B" "$T" "$N" >"$d/llmc.txt"
    t_llmc=$(awk '$1 == "ms" {print $2}' "$d/llmc.txt")
    torch_step "$k" "$d/init.bin" "$d/tok.bin" "$B" "$T" --steps "$N" >"$d/torch.txt"
    t_torch=$(awk '$1 == "ms" {print $2}' "$d/torch.txt")
    # shellcheck disable=SC2086
    t_tcc=$(bpgen_step tcc "$N" "$k" $run_tcc $common)
    # shellcheck disable=SC2086
    t_gcc=$(bpgen_step gcc "$N" "$k" $run_gcc $common)
    echo "$name|$k|$t_tcc|$t_gcc|$t_llmc|$t_torch" >>"$rows"
  done

  # memory, 1 thread: bpgen's state, and the peak RSS of N steps of each side
  # shellcheck disable=SC2086
  state=$("$here/build/bench/seq_step" "$spec" $dims --optimizer adamw --info |
    awk '$1 == "state" {s = $2} $1 == "moments" {m = $2} END {print s + m}')
  # shellcheck disable=SC2086
  /usr/bin/time -f %M -o "$d/rss_tcc.txt" $run_tcc $common --steps "$N" --threads 1 >/dev/null
  # shellcheck disable=SC2086
  /usr/bin/time -f %M -o "$d/rss_gcc.txt" $run_gcc $common --steps "$N" --threads 1 >/dev/null
  tprefix="/usr/bin/time -f %M -o $d/rss_torch.txt"
  torch_step 1 "$d/init.bin" "$d/tok.bin" "$B" "$T" --steps "$N" >/dev/null
  tprefix=
  echo "$name|$N|$state|$(tail -1 "$d/rss_tcc.txt")|$(tail -1 "$d/rss_gcc.txt")|$(tail -1 "$d/rss_torch.txt")" >>"$mem"
done

echo
echo "GPT-2 (specs/gpt2.spec), forward + backward + AdamW, ms per step; load before: ${load0#*load}"
echo "| config (B, T; V/Vp) | threads | bpgen libtcc | bpgen gcc file | llm.c train_gpt2.c | PyTorch eager | PyTorch / libtcc | PyTorch / gcc | llm.c / libtcc | llm.c / gcc |"
echo "|---|---|---|---|---|---|---|---|---|---|"
awk -F'|' '{printf "| %s | %s | %.2f | %.2f | %.2f | %.2f | %.2f× | %.2f× | %.2f× | %.2f× |\n",
  $1, $2, $3, $4, $5, $6, $6 / $3, $6 / $4, $5 / $3, $5 / $4}' "$rows"
echo "PyTorch $(/usr/bin/python3 -c 'import torch; print(torch.__version__)'), float32, its BLAS: ${torch_blas:-?}"
case ${torch_blas:-} in
  */blas/libblas.so*) echo "gpt2_bench: warning: PyTorch ran on the reference BLAS (libblas3): its column is not PyTorch at its best (--torch-blas DIR, or install libopenblas0)" >&2 ;;
esac
echo
echo "GPT-2 memory, 1 thread: bpgen's state (state_size + AdamW moments) and peak RSS (/usr/bin/time %M) of N training steps"
echo "| config (B, T; V/Vp) | steps | bpgen state | peak RSS bpgen run (libtcc) | peak RSS gcc trainer | peak RSS PyTorch |"
echo "|---|---|---|---|---|---|"
awk -F'|' '{printf "| %s | %s | %.2f MB | %.1f MB | %.1f MB | %.1f MB |\n", $1, $2, $3 / 1e6, $4 / 1024, $5 / 1024, $6 / 1024}' "$mem"
echo "load after: $(uptime | sed 's/.*load/load/')"
echo "(bpgen: median of 3 x [(2+N)-step run - 2-step run] / N; llm.c, PyTorch: median of N timed steps after warm-up; work dir $work)"
exit $rc
