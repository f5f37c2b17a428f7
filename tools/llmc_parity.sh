#!/bin/sh
# llmc_parity.sh: specs/gpt2.spec against llm.c's own train_gpt2.c, on one
# random-init checkpoint in llm.c's format and one fixed batch.
#
#   tools/llmc_parity.sh [-b BPGEN] [-l LLMC_DIR] [-o WORKDIR] [-D NAME=INT]...
#
# 1. a token file (llm.c's format, B*T+1 tokens below V: exactly one batch);
# 2. bpgen's own init (the spec's initialisers, --seed) exported by
#    `bpgen run --steps 0 --save init.bin` in llm.c's checkpoint format;
# 3. llm.c reads init.bin (gpt2_build_from_checkpoint) and writes its params
#    and the batch as .npy; `bpgen grad --dtype f32` runs on them; llm.c's
#    gpt2_forward/zero_grad/backward's loss, logits and every param gradient
#    are compared with bpgen's at test_gpt2.c's tolerances (1e-2 for the loss
#    and logits, 2e-2 absolute for each gradient element);
# 4. ten AdamW steps on that same batch on both sides: bpgen
#    `run --load init.bin --data-tokens tok.bin --optimizer adamw` (a token
#    file of exactly B*T+1 tokens is one window: every step sees the same
#    batch), llm.c's gpt2_update with test_gpt2.c's hyperparameters (lr 1e-4,
#    betas 0.9/0.999, eps 1e-8, weight decay 0.01); the two loss columns side
#    by side, failing when any differs by 1e-2 or more.
# llm.c is built as its Makefile builds it for the CPU: gcc -Ofast, with
# -fopenmp -DOMP when the compiler takes it.  Exit status 0 only when every
# comparison is within tolerance; 77 when llm.c's sources are not there.
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
bpgen=$here/bpgen
llmc=$here/../shared/ref/llm.c
work=
dims=
while [ $# -gt 0 ]; do
  case $1 in
    -b) bpgen=$2; shift 2 ;;
    -l) llmc=$2; shift 2 ;;
    -o) work=$2; shift 2 ;;
    -D) dims="$dims -D $2"; shift 2 ;;
    *) echo "usage: $0 [-b BPGEN] [-l LLMC_DIR] [-o WORKDIR] [-D NAME=INT]..." >&2; exit 2 ;;
  esac
done
STEPS=${STEPS:-10} LR=${LR:-1e-4} WD=${WD:-0.01} SEED=${SEED:-1337}
if [ ! -f "$llmc/train_gpt2.c" ]; then
  echo "llmc_parity: no llm.c sources in $llmc (train_gpt2.c)" >&2
  exit 77
fi
case $bpgen in /*) ;; *) bpgen=$(pwd)/$bpgen ;; esac
[ -n "$work" ] || work=$(mktemp -d "${TMPDIR:-/tmp}/llmc_parity.XXXXXX")
mkdir -p "$work/in" "$work/out"
spec=$here/specs/gpt2.spec

# the dims: the spec's unless -D says otherwise (B, T, V, ... read back from
# `bpgen check`'s listing would need a parser; ask the spec text instead)
dim() {
  v=$(printf '%s\n' $dims | sed -n "s/^$1=//p" | tail -1)
  [ -n "$v" ] || v=$(sed -n "s/^dim $1 *= *\([0-9]*\).*/\1/p" "$spec")
  echo "$v"
}
B=$(dim B) T=$(dim T) V=$(dim V)

# llm.c, as its Makefile builds it for the CPU (tools/llmc_build.sh)
drv=$work/llmc_parity
echo "llm.c built: $("$here/tools/llmc_build.sh" "$llmc" "$drv") (train_gpt2.c from $llmc)"

"$drv" tokens "$work/tok.bin" $((B * T + 1)) "$V" "$SEED"
"$bpgen" run "$spec" $dims --data-tokens "$work/tok.bin" --steps 0 --sample-len 0 --seed "$SEED" \
  --save "$work/init.bin" --quiet > /dev/null
echo "init.bin: bpgen's init (seed $SEED) in llm.c's format, dims$dims"

"$drv" export "$work/init.bin" "$work/tok.bin" "$B" "$T" "$work/in" > /dev/null
"$bpgen" grad "$spec" --dtype f32 $dims --in "$work/in" --out "$work/out" > "$work/grad.txt"
rc=0
"$drv" grad "$work/init.bin" "$work/tok.bin" "$B" "$T" "$work/out" > "$work/cmp.txt" || rc=1
sed -e '/^\[GPT-2\]/,/^num_parameters/d' -e '/^num_activations/d' "$work/cmp.txt"

"$bpgen" run "$spec" $dims --load "$work/init.bin" --data-tokens "$work/tok.bin" --optimizer adamw \
  --lr "$LR" --beta1 0.9 --beta2 0.999 --eps 1e-8 --weight-decay "$WD" --lr-schedule constant \
  --steps "$STEPS" --sample-len 0 --log "$work/bp.csv" --quiet > /dev/null
echo "$STEPS AdamW steps on the one batch (lr $LR, betas 0.9/0.999, eps 1e-8, weight decay $WD):"
"$drv" train "$work/init.bin" "$work/tok.bin" "$B" "$T" "$STEPS" "$LR" "$WD" "$work/bp.csv" \
  > "$work/train.txt" || rc=1
sed -e '/^\[GPT-2\]/,/^num_parameters/d' -e '/^num_activations/d' "$work/train.txt"
exit $rc
