#!/bin/sh
# bench/seq_bench.sh: the sequence models' training step against PyTorch eager
# (issue 14): specs/wavenet.spec at makemore part 5's sizes (B 32, T 8, E 24,
# H 128; SGD at lr 0.1, as part 5) and specs/transformer.spec at makemore.py's
# defaults (B 32, T 16, C 64, NH 4, 4 layers; AdamW lr 5e-4, betas 0.9/0.99,
# eps 1e-8, weight decay 0.01, as makemore).  Not a test; bench/run.sh calls
# it (`make bench`).
#
#   bench/seq_bench.sh [--rounds R] [--mem-steps S] [--torch-blas DIR] [-o WORKDIR]
#
# For each model:
# 1. the loss check: build/bench/seq_step (bench/seq_step.c) writes bpgen's
#    init params and one batch (--save DIR) and prints the loss before and
#    after one optimiser step of both builds; bench/torch_seq_step.py computes
#    the same two losses in PyTorch float32 from DIR; all within 1e-4 of
#    PyTorch's, else the model is not timed and the script fails;
# 2. R rounds (default 3), one after the other: seq_step (the gcc file built
#    with gcc -O3 -march=native and the libtcc build, interleaved, median of
#    11 rounds), then PyTorch (median of 200 single steps after 10 of
#    warm-up), 1 thread each (torch.set_num_threads(1), OpenBLAS and OMP at
#    1); the table has the median of the R medians of each, in the process's
#    CPU time (the host is shared), and a line the same in wall time;
# 3. memory: bpgen's state (the model's state_size, plus AdamW's two moments)
#    and the peak RSS (/usr/bin/time %M) of a training process of S steps
#    (default 210, as many as PyTorch's timed run): `bpgen run` (libtcc: the
#    generator, the compile and the trainer in one process) and the trainer
#    `bpgen SPEC --trainer` built with gcc, both on makemore's names
#    (../shared/data/names.txt, else the system dictionary's words), against
#    PyTorch's ru_maxrss at the end of its timed run (interpreter and torch
#    included; one batch, no data set); and that no step allocates (seq_step
#    counts malloc/calloc/realloc over 10 steps of each build).
# PyTorch's speed is its BLAS's: Debian's torch calls libblas.so.3, the
# reference BLAS unless OpenBLAS is installed; --torch-blas DIR puts DIR (an
# OpenBLAS libblas.so.3, e.g. `dpkg -x` of libopenblas0-pthread) first on
# PyTorch's LD_LIBRARY_PATH only, as bench/gpt2_bench.sh does.  The library it
# loaded is printed.  Exit 77 when torch is not there, 1 when a loss check fails.
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
work=
rounds=3
mem_steps=210
tblas=
while [ $# -gt 0 ]; do
  case $1 in
    --rounds) rounds=$2; shift 2 ;;
    --mem-steps) mem_steps=$2; shift 2 ;;
    --torch-blas) tblas=$2; shift 2 ;;
    -o) work=$2; shift 2 ;;
    *) echo "usage: $0 [--rounds R] [--mem-steps S] [--torch-blas DIR] [-o WORKDIR]" >&2; exit 2 ;;
  esac
done
if ! /usr/bin/python3 -c "import torch, numpy" 2>/dev/null; then
  echo "seq_bench: skipped: no torch for /usr/bin/python3" >&2
  exit 77
fi
[ -n "$work" ] || work=$(mktemp -d "${TMPDIR:-/tmp}/seq_bench.XXXXXX")
mkdir -p "$work"
case $work in /*) ;; *) work=$(pwd)/$work ;; esac
cd "$here"
make -s bpgen build/bench/seq_step >&2
load0=$(uptime | sed 's/.*load/load/')

words=$here/../shared/data/names.txt
if [ ! -r "$words" ]; then
  words=$work/words.txt
  grep -x '[a-z]\{1,15\}' /usr/share/dict/american-english >"$words"
fi

torch_run() {
  env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 \
    LD_LIBRARY_PATH="${tblas:+$tblas:}${LD_LIBRARY_PATH:-}" \
    /usr/bin/python3 "$here/bench/torch_seq_step.py" "$@" --threads 1
}
median() { sort -g | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'; }
kb() { tail -1 "$1"; }

rows=$work/rows.txt
: >"$rows"
: >"$work/wall_lines.txt"
rc=0
for model in wavenet transformer; do
  spec=specs/$model.spec
  d=$work/$model
  mkdir -p "$d"
  if [ $model = wavenet ]; then
    opt="--optimizer sgd --lr 0.1"
    topt="--lr 0.1 --lr-schedule constant"
  else
    opt="--optimizer adamw --lr 5e-4 --beta1 0.9 --beta2 0.99 --eps 1e-8 --weight-decay 0.01"
    topt="$opt --lr-schedule constant"
  fi
  # 1. the loss check
  # shellcheck disable=SC2086
  build/bench/seq_step $spec $opt --rounds 1 --round-ms 1 --save "$d/init" >"$d/check.txt"
  torch_run $model "$d/init" --steps 1 --warmup 2 >"$d/torch_check.txt"
  tblas_used=$(awk '$1 == "blas" {print $2}' "$d/torch_check.txt")
  check=$(awk 'FNR == NR && /^loss/ {b[$1 " " $2] = $3; next}
    /^loss/ {t[$1] = $2}
    END {
      ok = 1
      for (k in b) { split(k, kk, " "); e = b[k] - t[kk[1]]; if (e < 0) e = -e; if (!(kk[1] in t) || e > 1e-4) ok = 0 }
      printf "%s: loss0 bpgen gcc %s, libtcc %s, PyTorch %s; after one update gcc %s, libtcc %s, PyTorch %s: %s (1e-4)",
        FILENAME, b["loss0 gcc"], b["loss0 tcc"], t["loss0"], b["loss1 gcc"], b["loss1 tcc"], t["loss1"], ok ? "ok" : "NOT OK"
    }' "$d/check.txt" "$d/torch_check.txt")
  echo "$model: ${check#*: }"
  case $check in *"NOT OK") rc=1; continue ;; esac

  # 2. timing, R rounds
  : >"$d/gcc.txt"
  : >"$d/tcc.txt"
  : >"$d/torch.txt"
  : >"$d/wall.txt"
  r=0
  while [ $r -lt "$rounds" ]; do
    # shellcheck disable=SC2086
    build/bench/seq_step $spec $opt >"$d/step.txt"
    awk '$1 == "ms" && $2 == "gcc" {print $3}' "$d/step.txt" >>"$d/gcc.txt"
    awk '$1 == "ms" && $2 == "tcc" {print $3}' "$d/step.txt" >>"$d/tcc.txt"
    torch_run $model "$d/init" --steps $((mem_steps - 10)) --warmup 10 >"$d/torch_run.txt"
    awk '$1 == "ms" {print $2}' "$d/torch_run.txt" >>"$d/torch.txt"
    awk '$1 == "wall" {printf "%s%s", sep, ($2 == "gcc" || $2 == "tcc") ? $3 : $2; sep = " "} END {print ""}' \
      "$d/step.txt" "$d/torch_run.txt" >>"$d/wall.txt"
    r=$((r + 1))
  done
  t_gcc=$(median <"$d/gcc.txt")
  t_tcc=$(median <"$d/tcc.txt")
  t_torch=$(median <"$d/torch.txt")
  allocs=$(awk '$1 == "allocs" {print $2}' "$d/step.txt")
  state=$(awk '$1 == "state" {s = $2} $1 == "moments" {m = $2} END {print s + m}' "$d/step.txt")
  torch_rss=$(awk '$1 == "maxrss_kb" {print $2}' "$d/torch_run.txt")

  # 3. peak RSS of S training steps: bpgen run (libtcc) and the gcc-built trainer
  # shellcheck disable=SC2086
  ./bpgen $spec --trainer -o "$d/train.c"
  gcc -O3 -march=native -o "$d/train" "$d/train.c" -lm -lpthread
  # shellcheck disable=SC2086
  /usr/bin/time -f %M -o "$d/rss_tcc.txt" ./bpgen run $spec --data "$words" $topt --steps "$mem_steps" \
    --samples 0 --quiet >/dev/null
  # shellcheck disable=SC2086
  /usr/bin/time -f %M -o "$d/rss_gcc.txt" "$d/train" --data "$words" $topt --steps "$mem_steps" \
    --samples 0 --quiet >/dev/null
  w_tcc=$(awk '{print $2}' "$d/wall.txt" | median)
  w_gcc=$(awk '{print $1}' "$d/wall.txt" | median)
  w_torch=$(awk '{print $3}' "$d/wall.txt" | median)
  echo "$model: wall time, ms per step: bpgen libtcc $w_tcc, gcc file $w_gcc, PyTorch $w_torch" >>"$work/wall_lines.txt"
  echo "$model|$t_tcc|$t_gcc|$t_torch|$state|$(kb "$d/rss_tcc.txt")|$(kb "$d/rss_gcc.txt")|$torch_rss|$allocs" >>"$rows"
done

echo
echo "Sequence models, forward + backward + optimiser, ms of CPU time per step, 1 thread; load before: $load0"
echo "| spec (config; optimiser) | bpgen libtcc | bpgen gcc file | PyTorch eager | PyTorch / libtcc | PyTorch / gcc | target | bpgen state | peak RSS bpgen run (libtcc) | peak RSS gcc trainer | peak RSS PyTorch | allocations in 10 steps |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|"
awk -F'|' '{
  cfg = $1 == "wavenet" ? "wavenet (B 32, T 8, E 24, H 128; SGD)" : "transformer (B 32, T 16, C 64, NH 4, L 4; AdamW)"
  tgt = $1 == "wavenet" ? "≥ 10×" : "≥ 4×"
  printf "| %s | %.3f | %.3f | %.3f | %.2f× | %.2f× | %s | %.2f MB | %.1f MB | %.1f MB | %.1f MB | %s |\n",
    cfg, $2, $3, $4, $4 / $2, $4 / $3, tgt, $5 / 1e6, $6 / 1024, $7 / 1024, $8 / 1024, $9 }' "$rows"
cat "$work/wall_lines.txt"
echo "PyTorch $(/usr/bin/python3 -c 'import torch; print(torch.__version__)'), float32, its BLAS: ${tblas_used:-?}"
case ${tblas_used:-} in
  */blas/libblas.so*) echo "seq_bench: warning: PyTorch ran on the reference BLAS (libblas3): its column is not PyTorch at its best (--torch-blas DIR, or install libopenblas0)" >&2 ;;
esac
echo "load after: $(uptime | sed 's/.*load/load/')"
echo "(median of $rounds rounds, CPU time; bpgen: each round the median of 11 interleaved rounds, build/bench/seq_step; PyTorch: the median of $((mem_steps - 10)) timed single steps; peak RSS: $mem_steps training steps; state: state_size + optimiser moments; work dir $work)"
exit $rc
