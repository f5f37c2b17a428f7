#!/bin/sh
# driver.sh: runs the bpgen command line, one case a line.
#   usage: tests/driver.sh path/to/bpgen
# A case is:  t NAME STATUS PATTERN CMD ARGS...
# it passes when CMD exits with STATUS and its stdout+stderr matches the
# extended regular expression PATTERN ('' matches anything).  Files the cases
# need are made below with printf (no numpy).  The last line is
# "driver: N passed, N failed"; the exit status is non-zero on any failure.
set -u
BPGEN=${1:?usage: tests/driver.sh path/to/bpgen}
case $BPGEN in /*) ;; *) BPGEN=$(pwd)/$BPGEN ;; esac
SPECS=${BPGEN_SPECS:-specs}
T=$(mktemp -d /tmp/bpgen_driver.XXXXXX)
trap 'rm -rf "$T"' EXIT
pass=0 fail=0

t() {
  name=$1 want=$2 pat=$3
  shift 3
  "$@" >"$T/log" 2>&1
  got=$?
  if [ "$got" -eq "$want" ] && { [ -z "$pat" ] || grep -Eq -- "$pat" "$T/log"; }; then
    pass=$((pass + 1))
  else
    fail=$((fail + 1))
    echo "FAIL: $name: status $got (want $want), pattern '$pat'; output:"
    sed 's/^/  | /' "$T/log" | head -20
  fi
}

# npy FILE DESCR SHAPE DATA-PRINTF: a version 1.0 .npy file, header padded to
# 64 bytes as numpy does; SHAPE as Python writes it, e.g. "(3,)" or "(2, 3)".
npy() {
  dict="{'descr': '$2', 'fortran_order': False, 'shape': $3, }"
  len=$(( ${#dict} + 1 ))
  total=$(( (10 + len + 63) / 64 * 64 ))
  hlen=$(( total - 10 ))
  pad=$(( hlen - len ))
  {
    printf '\223NUMPY\001\000'
    printf "\\$(printf %03o $((hlen % 256)))\\$(printf %03o $((hlen / 256)))"
    printf '%s%*s\n' "$dict" "$pad" ''
    printf "$4"
  } >"$1"
}

# ---- bpgen grad ---------------------------------------------------------------------
M=$SPECS/makemore.spec
t "grad --help"             0 "usage: bpgen grad SPEC --in DIR --out DIR" $BPGEN grad --help
t "grad random inputs"      0 "^W1 +\[30, 64\]"      $BPGEN grad $M --random-inputs --out "$T/o1"
t "grad wrote loss"         0 ""                     test -s "$T/o1/loss.npy"
t "grad wrote dW1"          0 ""                     test -s "$T/o1/W1.grad.npy"
t "grad wrote dhpreact"     0 ""                     test -s "$T/o1/hpreact.grad.npy"
t "grad wrote inputs"       0 ""                     test -s "$T/o1/X.npy"
t "loss is f8 rank 0"       0 "'<f8'.*'shape': \(\)" head -c 128 "$T/o1/loss.npy"
$BPGEN grad $M --random-inputs --out "$T/o1" 2>/dev/null | grep '^loss [0-9-]' >"$T/loss1"
t "grad --in repeats"       0 "$(cat "$T/loss1")"    $BPGEN grad $M --in "$T/o1" --out "$T/o2"
t "grad --ref same"         0 "$(cat "$T/loss1")"    $BPGEN grad $M --ref --in "$T/o1" --out "$T/o2"
t "grad granular spec"     0 "^loss [0-9]"       $BPGEN grad $SPECS/makemore_granular.spec --in "$T/o1" --out "$T/o3"
t "grad f32 writes f4"      0 ""                     $BPGEN grad $M --dtype f32 --random-inputs --out "$T/o4"
t "f32 loss is <f4"         0 "'<f4'"                head -c 128 "$T/o4/loss.npy"
t "grad -D B=5"             0 "^hprebn +\[5, 64\]"   $BPGEN grad $M -D B=5 --random-inputs --out "$T/o5"
t "grad --expand same loss" 0 "^loss $(cut -c6-17 "$T/loss1")" $BPGEN grad $M --expand --in "$T/o1" --out "$T/o2"
for spec in "$SPECS"/*.spec; do
  t "grad $(basename "$spec")" 0 "^loss [0-9]"  $BPGEN grad "$spec" --random-inputs --out "$T/all"
done
$BPGEN grad $M --seed 7 --random-inputs --out "$T/o6" 2>/dev/null | grep '^loss [0-9-]' >"$T/loss6"
t "other seed, other loss"  1 ""                     cmp -s "$T/loss1" "$T/loss6"

mkdir -p "$T/in"
npy "$T/in/X.npy" '<i4' '(32, 3)' "$(printf '%0384d' 0 | sed 's/0/\\000/g')"
npy "$T/in/Y.npy" '<i8' '(32,)' "$(printf '%0256d' 0 | sed 's/0/\\000/g')"
t "grad printf inputs"      0 "^loss [0-9]"       $BPGEN grad $M --in "$T/in" --out "$T/o7"

mkdir -p "$T/short"
cp "$T/in/X.npy" "$T/short/"
npy "$T/short/Y.npy" '<i4' '(3,)' '\000\000\000\000\000\000\000\000\000\000\000\000'
t "wrong shape names file"  1 "short/Y.npy: shape \[3\] does not match the spec's \[32\]" \
  $BPGEN grad $M --in "$T/short" --out "$T/o8"

mkdir -p "$T/magic"
cp "$T/in/Y.npy" "$T/magic/"
printf 'PK\003\004 not numpy' >"$T/magic/X.npy"
t "bad magic names file"    1 "magic/X.npy: not a .npy file \(bad magic\)" \
  $BPGEN grad $M --in "$T/magic" --out "$T/o9"

mkdir -p "$T/big"
cp "$T/in/X.npy" "$T/big/"
npy "$T/big/Y.npy" '>i4' '(32,)' "$(printf '%0128d' 0 | sed 's/0/\\000/g')"
t "big-endian names file"   1 "big/Y.npy: big-endian data \('>i4'\) is not supported" \
  $BPGEN grad $M --in "$T/big" --out "$T/o10"

mkdir -p "$T/trunc"
cp "$T/in/Y.npy" "$T/trunc/"
npy "$T/trunc/X.npy" '<i4' '(32, 3)' '\000\000\000\000'
t "truncated names file"    1 "trunc/X.npy: truncated data" $BPGEN grad $M --in "$T/trunc" --out "$T/o11"

mkdir -p "$T/range"
cp "$T/in/X.npy" "$T/range/"
npy "$T/range/Y.npy" '<i8' '(32,)' "\\143$(printf '%0255d' 0 | sed 's/0/\\000/g')"
t "index out of range"      1 "range/Y.npy: element 0 is 99, outside 0\.\.26" \
  $BPGEN grad $M --in "$T/range" --out "$T/o12"

mkdir -p "$T/ftype"
cp "$T/in/Y.npy" "$T/ftype/"
npy "$T/ftype/X.npy" '<f8' '(32, 3)' "$(printf '%0768d' 0 | sed 's/0/\\000/g')"
t "float for int input"     1 "ftype/X.npy: holds <f8 floats where integers are expected" \
  $BPGEN grad $M --in "$T/ftype" --out "$T/o13"

mkdir -p "$T/empty"
t "missing input"           1 "input 'X' needs .*empty/X.npy \(shape \[32, 3\]\)" \
  $BPGEN grad $M --in "$T/empty" --out "$T/o14"
t "no --out"                2 "--out DIR is required" $BPGEN grad $M --in "$T/in"
t "no --in"                 2 "--in DIR is required"  $BPGEN grad $M --out "$T/o15"
# ---- bpgen check / explain / SPEC -o -------------------------------------------------
# the specs of more than 50,000 params at small odd sizes (their full sizes are
# compared with PyTorch below, and trained in the README's runs)
small_dims() {
  case $(basename "$1") in
    transformer.spec) echo "-D B=3 -D T=5 -D C=12 -D NH=3" ;;
    wavenet.spec) echo "-D B=7 -D E=5 -D H=11" ;;
    makemore_mlp.spec) echo "-D B=3 -D T=5 -D C=12 -D C2=6" ;;
    rnn.spec|gru.spec) echo "-D B=3 -D T=5 -D E=5 -D H=7" ;;
    gpt2.spec) echo "-D B=3 -D T=5 -D maxT=7 -D V=11 -D Vp=16 -D L=2 -D NH=3 -D C=12" ;;
  esac
}
for spec in "$SPECS"/*.spec; do
  for dt in f32 f64; do
    t "check $(basename "$spec") $dt" 0 "^ok: loss and [0-9]+ gradients within tolerance" \
      $BPGEN check "$spec" --dtype $dt $(small_dims "$spec")
  done
done
# attention heads read out of one projection by their swaps and their gradients
# swapped into its gradient's columns (plan.c's plan_heads), at odd sizes, two
# columns off, beside parts copied as they are
for dt in f32 f64; do
  t "check heads.spec $dt" 0 "^ok: loss and [0-9]+ gradients within tolerance" \
    $BPGEN check "${BPGEN_FIXTURES:-tests/fixtures}/heads.spec" --dtype $dt
done
# attention's scores made in the softmax's memory, unscaled and of a named
# product (datt then written too)
for dt in f32 f64; do
  t "check scores.spec $dt" 0 "^ok: loss and 12 gradients within tolerance" \
    $BPGEN check "${BPGEN_FIXTURES:-tests/fixtures}/scores.spec" --dtype $dt
done
# every spec, the sequence models' loops and slices included: explain, dot and
# ninja's header (a learner doing the attention backward by hand starts there)
for spec in "$SPECS"/*.spec; do
  b=$(basename "$spec")
  t "explain $b"        0 "^ *[0-9]+ +loss +=" $BPGEN explain "$spec" $(small_dims "$spec")
  t "dot --backward $b" 0 "^digraph "          sh -c '"$1" dot "$2" --backward -o "$3" $4 && cat "$3"' \
    _ "$BPGEN" "$spec" "$T/all.dot" "$(small_dims "$spec")"
  t "ninja --header $b" 0 "^#ifndef BPGEN_NINJA_H" $BPGEN ninja "$spec" --header $(small_dims "$spec")
done
t "check table columns"     0 "^name +\| shape +\| exact \| approximate \| maxdiff +\| max ULPs \| fd \(f64\)" \
  $BPGEN check $M
t "check --expand odd"      0 "generated \(f64, expanded\)" $BPGEN check $M --expand --dtype f64 -D B=7 -D H=13 -D T=4
t "check broken rule"       1 "^FAIL: [0-9]+ of 15 tensors out of tolerance" env BPGEN_PERTURB=tanh $BPGEN check $M
t "explain lecture"         0 "dW2 \+= hᵀ · dlogits" $BPGEN explain $M
t "gen to stdout"           0 "^#line [0-9]+ \"" $BPGEN $M -o -
t "gen writes .c and .h"    0 ""                     $BPGEN $M -o "$T/m.c"
t "gen header beside"       0 "extern const BpModel makemore_model" cat "$T/m.h"
t "gen compiles -Werror"    0 ""  gcc -std=c99 -O2 -Wall -Wextra -Werror -c "$T/m.c" -o "$T/m.o"
t "unknown command"         2 "'frob' is neither a command nor a spec file" $BPGEN frob
t "no arguments"            2 "^usage: bpgen SPEC -o model.c" $BPGEN
t "--version"               0 "^bpgen [0-9]+\.[0-9]+\.[0-9]+$" $BPGEN --version
t "--help is the truth"     0 "ninja SPEC --mine FILE.c" $BPGEN --help
printf 'dim B = 3\nx = B \303\274\n' >"$T/u.spec"
t "caret under UTF-8"       1 "^        \^" $BPGEN explain "$T/u.spec"
t "unknown option"          2 "unknown option '--frobnicate'" $BPGEN grad $M --frobnicate
t "no spec"                 2 "no spec file given"    $BPGEN grad --in "$T/in" --out "$T/o16"
t "out is a file"           1 "o1/loss.npy is not a directory" \
  $BPGEN grad $M --in "$T/in" --out "$T/o1/loss.npy"

# ---- bpgen dot ----------------------------------------------------------------------
G=$SPECS/makemore_granular.spec
t "dot --help"              0 "usage: bpgen dot SPEC" $BPGEN dot --help
t "dot forward to stdout"   0 "hpreact = batchnorm .*\[fused\]" $BPGEN dot $M
t "dot backward fan-out"    0 "dhprebn \+= \(fan-out\)" $BPGEN dot $G --backward -o -
t "dot writes .dot"         0 ""                     $BPGEN dot $M --backward -o "$T/g.dot"
t "dot file is DOT"         0 "^digraph "            head -1 "$T/g.dot"
t "dot renders svg"         0 ""                     $BPGEN dot $G --backward -o "$T/g.svg"
t "svg is svg"              0 "<svg"                 cat "$T/g.svg"
t "dot renders png"         0 ""                     $BPGEN dot $M -o "$T/g.png"
t "png is png"              0 "PNG"                  head -c 8 "$T/g.png"
t "dot -D B=5"              0 "X.ninput int \[5, 3\]" $BPGEN dot $M -D B=5
t "dot bad extension"       2 "write FILE.dot, FILE.svg, FILE.png or -" $BPGEN dot $M -o "$T/g.txt"
t "dot without graphviz"    1 "Debian package graphviz \\(apt-get install graphviz\\)" \
  env BPGEN_DOT=/nonexistent/dot $BPGEN dot $M -o "$T/h.svg"

# ---- bpgen ninja (--ref: runs before and after the emitter lands) -----------------------
F=${BPGEN_FIXTURES:-tests/fixtures}
t "ninja --help"            0 "usage: bpgen ninja SPEC --mine FILE.c" $BPGEN ninja --help
t "ninja --header"          0 "BP_OK_dlogits = 1, +/\* GRAD\(dlogits, B, V\); \*/" $BPGEN ninja $M --header
t "ninja ex2 right"         0 "^dlogits \| True     \| (True|False) \| True " \
  $BPGEN ninja $M --ref --mine $F/ninja_ex2_ok.c
t "ninja keepdim"           1 "declared dbnmeani \[64\] but it is \[1, 64\]: a missing keepdim" \
  $BPGEN ninja $G --ref --mine $F/ninja_ex1_keepdim.c
t "ninja off-by-one"        1 "dbndiff2 is the first wrong gradient" \
  $BPGEN ninja $G --ref --mine $F/ninja_ex1_offbyone.c
t "ninja compile error"     1 "ninja_ex2_syntax.c:9: error: 'logit' undeclared" \
  $BPGEN ninja $M --ref --mine $F/ninja_ex2_syntax.c
t "ninja starter ex2"       0 "not filled yet: dlogits" $BPGEN ninja $M --ref --mine exercises/ex2_dlogits.c
t "ninja starter ex1"       0 "not filled yet: dlogprobs" $BPGEN ninja $G --ref --mine exercises/ex1_backward.c
t "ninja starter ex3"       0 "not filled yet: dhprebn" $BPGEN ninja $G --ref --mine exercises/ex3_dhprebn.c
t "ninja generated ref"     0 "reference: bpgen's generated backward" $BPGEN ninja $M --mine $F/ninja_ex2_ok.c
t "ninja generated ex1"     0 "all filled gradients are right" $BPGEN ninja $G --mine $F/ninja_ex1_ok.c
t "ninja generated wrong"   1 "dbndiff2 is the first wrong gradient" $BPGEN ninja $G --mine $F/ninja_ex1_offbyone.c
t "ninja needs a mode"      2 "give either --header or --mine FILE.c" $BPGEN ninja $M

# ---- bpgen run / plot (the trainer) ----------------------------------------------
W=${BPGEN_TESTS:-tests}/fixtures/words10.txt
case $W in /*) ;; *) W=$(pwd)/$W ;; esac
# ---- CPU levels of bpgen's own kernels (issue 16) ----------------------------------
# every level this CPU runs: check against the reference runtime (a layer big enough
# for packed gemm and bp_bnlayer), and a short run whose losses are the default
# level's within float rounding (the levels' kernels differ in FMA and vector width)
t "--version names the level" 0 "^kernels: [a-z0-9]+ \(.*this CPU runs: " $BPGEN --version
levels=$($BPGEN --version | sed -n 's/.*this CPU runs: \([a-z0-9 ]*\);.*/\1/p')
t "levels listed"           0 "" test -n "$levels"
json_loss() { sed -n 's/.*"train_loss": \([-0-9.e]*\), "dev_loss": \([-0-9.e]*\),.*/\1 \2/p' "$1"; }
$BPGEN run $M -D H=40 --data "$W" --steps 40 --samples 0 --quiet --json >"$T/cpu_def" 2>&1
for l in $levels; do
  t "BPGEN_CPU=$l in use"   0 "^kernels: $l \(" env BPGEN_CPU=$l $BPGEN --version
  t "BPGEN_CPU=$l check"    0 "^ok: loss and [0-9]+ gradients within tolerance" \
    env BPGEN_CPU=$l $BPGEN check $M -D B=256 -D H=300
  env BPGEN_CPU=$l $BPGEN run $M -D H=40 --data "$W" --steps 40 --samples 0 --quiet --json >"$T/cpu_$l" 2>&1
  t "BPGEN_CPU=$l loss = default's" 0 "" awk -v a="$(json_loss "$T/cpu_def")" -v b="$(json_loss "$T/cpu_$l")" \
    'BEGIN { split(a, x, " "); split(b, y, " "); if (x[1] == "" || y[1] == "") exit 1;
             for (i = 1; i <= 2; i++) { d = x[i] - y[i]; if (d < 0) d = -d; if (d > 1e-5 * x[i]) exit 1 } }'
done
t "BPGEN_CPU not a level"   1 "^bpgen: error: BPGEN_CPU=sse9: not a level of this build" env BPGEN_CPU=sse9 $BPGEN --version
# the baseline build holds no AVX (ymm, zmm, VEX FMA): it runs on any x86-64; the
# avx512 build does (the guard can fail)
KO=$(dirname "$BPGEN")/runtime   # build/san/bpgen: build/san/runtime; ./bpgen: build/runtime
[ -f "$KO/kernels-baseline.o" ] || KO=$(dirname "$BPGEN")/build/runtime
if [ -f "$KO/kernels-baseline.o" ]; then
  t "baseline kernels: no AVX" 1 "" sh -c "objdump -d '$KO/kernels-baseline.o' | grep -Eq '%[yz]mm|vfmadd'"
  t "avx512 kernels: AVX-512"  0 "" sh -c "objdump -d '$KO/kernels-avx512.o' | grep -q '%zmm'"
else
  echo "driver: no kernels-baseline.o beside $BPGEN (not x86-64): one plain build of the kernels"
fi
t "run --help"              0 "usage: bpgen run SPEC --data FILE" $BPGEN run --help
t "run without data"        2 "run: no data: give --data FILE" $BPGEN run $M
t "run without spec"        2 "run: no spec file given"   $BPGEN run --data "$W"
t "run -o"                  2 "writes no model file.*--trainer -o train.c" $BPGEN run $M --data "$W" -o x.c
t "run unknown option"      2 "run: unknown option '--frob'" $BPGEN run $M --data "$W" --frob
t "gen unknown option, one prefix" 2 "^bpgen: error: unknown option '--frob' \(see bpgen --help\)" $BPGEN $M --frob
t "run missing value"       2 "--steps needs a value"     $BPGEN run $M --data "$W" --steps
t "plot --help"             0 "usage: bpgen plot LOG.csv" $BPGEN plot --help
printf 'step,loss,dev_loss\n0,3.1,\n1,x,\n' >"$T/bad.csv"
t "plot bad row"            1 "bad.csv:3: expected step,loss\[,dev_loss\], got '1,x,'" $BPGEN plot "$T/bad.csv" -o "$T/p.png"
t "plot bad extension"      2 "must end in .png, .svg or .pdf" $BPGEN plot "$T/bad.csv" -o "$T/p.jpg"
t "plot missing log"        1 "nolog.csv"                 $BPGEN plot "$T/nolog.csv" -o "$T/p.png"
printf 'step,loss,dev_loss\n' >"$T/empty.csv"
t "plot empty log"          1 "empty.csv: no loss rows"   $BPGEN plot "$T/empty.csv" -o "$T/p.png"
printf 'abc\nab c\n' >"$T/space.txt"
t "run bad character"     1 "space.txt:2: byte 0x20 \(a space\) in a word" \
  $BPGEN run $M --data "$T/space.txt" --steps 1
: >"$T/empty.txt"
t "run empty data"        1 "empty.txt: no words"       $BPGEN run $M --data "$T/empty.txt" --steps 1
t "run sets V from data"  0 "note: V = 6 from .*words10.txt \(the spec says 27\)" \
  $BPGEN run $M -D H=8 -D B=4 --data "$W" --steps 50 --log "$T/run.csv" --samples 2
t "run prints losses"     0 "train loss [0-9.]+" \
  $BPGEN run $M -D H=8 -D B=4 --data "$W" --steps 50 --samples 2 --quiet
t "run V mismatch"        1 "vocabulary of 6 .* use -D V=6" \
  $BPGEN run $M -D V=27 -D H=8 --data "$W" --steps 1
t "plot run log"          0 "wrote .*loss.png"          $BPGEN plot "$T/run.csv" -o "$T/loss.png"
t "plot wrote png"        0 ""                          test -s "$T/loss.png"
# the lecture's split (Python's random.seed(42); random.shuffle(words)), when
# the lecture's data set is beside the checkout (CI has ../shared)
NAMES=${BPGEN_NAMES:-../shared/data/names.txt}
if [ -f "$NAMES" ]; then
  t "run: the lecture's split" 0 "examples train 182625, dev 22655, test 22866" \
    $BPGEN run $M --data "$NAMES" --steps 0 --samples 0 --quiet
fi
t "trainer file"          0 ""  $BPGEN $M -D V=6 -D H=8 -D B=4 --trainer -o "$T/train.c"
t "trainer builds"        0 ""  gcc -O1 -o "$T/train" "$T/train.c" -lm -lpthread
t "trainer runs"          0 "train loss [0-9.]+" "$T/train" --data "$W" --steps 50 --samples 2 --quiet
$BPGEN run $M -D H=8 -D B=4 --data "$W" --steps 50 --samples 2 --quiet --threads 1 >"$T/th1" 2>&1
t "run --threads 2 same bits" 0 "" sh -c "$BPGEN run $M -D H=8 -D B=4 --data '$W' --steps 50 --samples 2 --quiet --threads 2 2>&1 | cmp -s - '$T/th1'"
t "trainer file --threads"  0 "train loss [0-9.]+" "$T/train" --data "$W" --steps 50 --samples 2 --quiet --threads 2
t "--threads range"         2 "--threads: 65 is more than 64" $BPGEN run $M --data "$W" --threads 65
# a GPT-2 big enough that the kernels share out rows (layernorm, its dx, the swap of
# two axes, the residual adds: [512, 256]), AdamW's 855,808 params and the
# attention's 8 heads of 128 x 128 x 128 between 2 threads: the bits of 1 thread
G2T="-D B=4 -D T=128 -D maxT=128 -D C=256 -D NH=2 -D L=1 -D V=79 -D Vp=128"
G2A="--text $SPECS/gpt2.spec --steps 3 --sample-len 0 --json --quiet --eval-batches 2 --optimizer adamw"
$BPGEN run $SPECS/gpt2.spec $G2T $G2A --threads 1 >"$T/g2th1" 2>&1
t "gpt2 run --threads 2 same bits" 0 "" sh -c "grep -q train_loss '$T/g2th1' && $BPGEN run $SPECS/gpt2.spec $G2T $G2A --threads 2 2>&1 | cmp - '$T/g2th1'"
$BPGEN $SPECS/gpt2.spec $G2T --trainer -o "$T/g2train.c" && gcc -O2 -o "$T/g2train" "$T/g2train.c" -lm -lpthread
"$T/g2train" $G2A --threads 1 >"$T/g2tr1" 2>&1
t "gpt2 trainer --threads 2 same bits" 0 "" sh -c "grep -q train_loss '$T/g2tr1' && '$T/g2train' $G2A --threads 2 2>&1 | cmp - '$T/g2tr1'"
# and one small enough that the threads split its products from 1 MFLOP, the small
# path's row blocks, GELU and layernorm from 8192 elements (gpt2_bench's L2 C64)
G2S="-D B=4 -D T=32 -D maxT=32 -D C=64 -D NH=4 -D L=2 -D V=79 -D Vp=96"
$BPGEN run $SPECS/gpt2.spec $G2S $G2A --threads 1 >"$T/g2s1" 2>&1
t "gpt2 L2 C64 run --threads 2 same bits" 0 "" sh -c "grep -q train_loss '$T/g2s1' && $BPGEN run $SPECS/gpt2.spec $G2S $G2A --threads 2 2>&1 | cmp - '$T/g2s1'"
# bpgen run --help and the trainer's own --help list the same options
"$T/train" --help 2>&1 | grep -oE '^  --[a-z0-9-]+' | sort -u >"$T/opts.train"
t "run and trainer options agree" 0 "" sh -c "$BPGEN run --help | sed '/^run.s own options:/,/^\$/d' | grep -oE '^  --[a-z0-9-]+' | sort -u | cmp -s - '$T/opts.train'"

# ---- bpgen run on tensor data (.npy) ---------------------------------------------
# makemore (V = 6) on int tensors: X (12, 3) contexts, Y (12,) classes
X12=$(i=0; while [ $i -lt 12 ]; do printf '\\000\\000\\000\\000\\%03o\\000\\000\\000\\%03o\\000\\000\\000' $((i % 6)) $(((i + 1) % 6)); i=$((i + 1)); done)
Y12=$(i=0; while [ $i -lt 12 ]; do printf '\\%03o\\000\\000\\000' $(((i + 2) % 6)); i=$((i + 1)); done)
npy "$T/tx.npy" '<i4' '(12, 3)' "$X12"
npy "$T/ty.npy" '<i4' '(12,)' "$Y12"
npy "$T/tybad.npy" '<i4' '(12,)' "\\011\\000\\000\\000$(printf '%044d' 0 | sed 's/0/\\000/g')"
npy "$T/tx2.npy" '<i4' '(6, 2)' "$(printf '%048d' 0 | sed 's/0/\\000/g')"
MT="$BPGEN run $M -D V=6 -D H=8 -D B=4 --steps 200 --lr 0.5 --quiet"
t "run tensors"           0 "data: tensors; examples train 12, dev 12, test 0" \
  $MT --data-x "$T/tx.npy" --data-y "$T/ty.npy" --dev-x "$T/tx.npy" --dev-y "$T/ty.npy"
t "run tensors learn"     0 "train loss 0\.[0-4]" \
  $MT --data-x "$T/tx.npy" --data-y "$T/ty.npy"
t "run tensors no V note" 0 "^train loss" $MT --data-x "$T/tx.npy" --data-y "$T/ty.npy"
t "run tensor label"      1 "tybad.npy: row 0: class 9 is out of range 0\.\.5" \
  $MT --data-x "$T/tx.npy" --data-y "$T/tybad.npy"
t "run tensor shape"      2 "tx2.npy: shape \(6, 2\) does not match input X \(4, 3\): expected \(N, 3\)" \
  $MT --data-x "$T/tx2.npy" --data-y "$T/ty.npy"
t "run tensor no y"       1 "has two inputs \(X, Y\): give --data-y too" $MT --data-x "$T/tx.npy"
t "run tensor and words"  2 "not both" $MT --data "$W" --data-x "$T/tx.npy"
t "run tensor samples"    0 "note: --samples ignored" \
  $MT --data-x "$T/tx.npy" --data-y "$T/ty.npy" --samples 3
printf 'hello' >"$T/junk.npy"
t "run tensor bad magic"  1 "junk.npy: not a .npy file \(bad magic\)" \
  $MT --data-x "$T/junk.npy" --data-y "$T/ty.npy"
t "run --help tensors"    0 "--data-x X.npy" $BPGEN run --help

# ---- issue 10: names reaching gnuplot, logs a log axis cannot show, the -D limit ----
NL=$(printf '\nx'); NL=${NL%x}
printf 'step,loss,dev_loss\n0,3.1,\n1,2.5,2.6\n' >"$T/ok.csv"
mkdir -p "$T/inj"
t "plot -o newline runs nothing" 0 "wrote" \
  sh -c 'cd "$1" && exec "$2" plot ../ok.csv -o "$3"' sh "$T/inj" "$BPGEN" "c${NL}system(\"id > X\")${NL}.png"
t "plot -o newline: no command ran" 0 "" test ! -e "$T/inj/X"
t "plot -o newline: that file is the png" 0 "PNG" sh -c 'head -c 4 "$1"' sh "$T/inj/c${NL}system(\"id > X\")${NL}.png"
t "plot -o pipe runs nothing" 0 "" sh -c 'cd "$1" && "$2" plot ../ok.csv -o "|touch Y.png" && test ! -e Y.png && test -s "|touch Y.png"' sh "$T/inj" "$BPGEN"
cp "$T/ok.csv" "$T/inj/a${NL}system(\"id > Z\")${NL}.csv"
t "plot log name runs nothing" 0 "" sh -c 'cd "$1" && "$2" plot "$3" -o t.png && test ! -e Z && test -s t.png' sh "$T/inj" "$BPGEN" "a${NL}system(\"id > Z\")${NL}.csv"
printf 'step,loss,dev_loss\n0,0,\n1,-0.5,\n' >"$T/neg.csv"
t "plot loss 0"             1 "neg.csv:2: loss 0: the plot draws log10 of the loss, which needs a positive finite number" \
  $BPGEN plot "$T/neg.csv" -o "$T/neg.png"
t "plot loss 0: no png"     0 "" test ! -e "$T/neg.png"
printf 'step,loss,dev_loss\n0,3.1,-2\n' >"$T/negdev.csv"
t "plot dev loss < 0"       1 "negdev.csv:2: dev loss -2: the plot draws log10" $BPGEN plot "$T/negdev.csv" -o "$T/neg.png"
mkdir -p "$T/fakebin"
printf '#!/bin/sh\ncat >/dev/null\necho "line 3: all points y value undefined!" >&2\nexit 1\n' >"$T/fakebin/gnuplot"
chmod +x "$T/fakebin/gnuplot"
t "plot gnuplot fails"      1 "bpgen: error: plot: gnuplot failed drawing .*fail.png: line 3: all points" \
  env PATH="$T/fakebin:$PATH" $BPGEN plot "$T/ok.csv" -o "$T/fail.png"
t "plot gnuplot fails: no png" 0 "" test ! -e "$T/fail.png"
# -D: what the code accepts is what the README says
DMAX=$($BPGEN check $M -D B=99999999999 2>&1 | sed -n 's/.*whole number from 1 to \([0-9]*\).*/\1/p')
t "-D limit in the README"  0 "" sh -c 'test -n "$1" && grep -F -- "-D NAME=INT" "$2" | grep -qF "from 1 to $1"' sh "$DMAX" \
  "${BPGEN_README:-README.md}"
t "-D at the limit is read" 1 "shape \[1073741824, 3\] has more than 2147483647 elements" $BPGEN check $M -D B=$DMAX

# ---- issue 10 items 3 and 10: bpgen ninja's one rule, guarded buffers, time limit ---------
G=$SPECS/makemore_granular.spec
t "ninja one rule"          1 "dhprebn is the first wrong gradient" \
  $BPGEN ninja $G -D B=1024 --mine $F/ninja_ex3_nobessel.c
t "ninja dC[X - 1]"         1 "backward\(\) wrote before the start of dC: dC\[-1\]\[0\]" \
  $BPGEN ninja $G --mine $F/ninja_ex1_dc_minus1.c
t "ninja j <= V"            1 "backward\(\) read past the end of logits: logits\[32\]\[0\] \(or logits\[31\]\[27\]\)" \
  $BPGEN ninja $SPECS/makemore.spec --mine $F/ninja_ex2_le.c
t "ninja no ZERO(dC)"       1 "\`\+=\` into dC without zeroing it first\?" \
  $BPGEN ninja $G --mine $F/ninja_ex1_nozero.c
# bpgen killed while backward() spins (SIGALRM ignored, alarm(0)): the child goes with it
ninja_orphan() {
  $BPGEN ninja $SPECS/makemore.spec --mine $F/ninja_alarm.c >/dev/null 2>&1 &
  bp=$! child=
  for _ in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do
    child=$(pgrep -P $bp | head -1)
    [ -n "$child" ] && break
    sleep 0.2
  done
  sleep 0.3
  kill -9 $bp
  wait $bp 2>/dev/null
  [ -n "$child" ] || { echo "no child seen"; return 1; }
  for _ in 1 2 3 4 5 6 7 8 9 10; do
    st=$(awk '{print $3}' /proc/$child/stat 2>/dev/null)
    case $st in '' | Z | X) echo "the child is gone"; return 0 ;; esac
    sleep 0.1
  done
  kill -9 $child   # the test's own leftover
  echo "the child $child outlived bpgen (state $st)"
  return 1
}
t "ninja child dies with bpgen" 0 "the child is gone" ninja_orphan

# ---- issue 10 (fix-trainer): NaN blame, checkpoints, --save lock, log on resume ----
# (a section of its own, to merge easily)
MQ="$BPGEN run $M -D H=8 -D B=4 --data $W --quiet"
# a NaN from a value, labels in range: the first non-finite tensor is named (item 4)
printf 'dim B = 4\ndim F = 2\ndim K = 3\ninput X : [B, F]\ninput Y : int[B]\nparam W : [F, K] ~ ones\nloss = cross_entropy(log(X @ W), Y)\n' >"$T/neg.spec"
npy "$T/nx.npy" '<f4' '(4, 2)' '\000\000\200\077\000\000\000\300\000\000\000\100\000\000\200\077\000\000\200\077\000\000\200\077\000\000\100\100\000\000\000\000'
npy "$T/ny.npy" '<i4' '(4,)' '\000\000\000\000\001\000\000\000\002\000\000\000\000\000\000\000'
t "NaN names the tensor"  1 "nx.npy, .*ny.npy: row 0: the model's loss is -?nan for this example at initialisation; first non-finite tensor: logits \(spec line 7\)" \
  $BPGEN run "$T/neg.spec" --data-x "$T/nx.npy" --data-y "$T/ny.npy" --steps 3
# no checkpoint of non-finite params (item 5)
t "no NaN checkpoint"     1 "step 1: C holds a non-finite value \(spec line 11; .*no checkpoint written; .*p\.npz does not exist yet" \
  $MQ --lr 1e39 --save "$T/p.npz" --save-every 1
t "no NaN checkpoint file" 1 "" test -e "$T/p.npz"
# a second run saving to the same file is refused (item 12)
$MQ --steps 1000000000 --save "$T/same.npz" --save-every 100000 >/dev/null 2>&1 &
LP=$!
i=0; while [ ! -s "$T/same.npz.lock" ] && [ $i -lt 200 ]; do sleep 0.1; i=$((i + 1)); done
t "second --save refused" 1 "--save .*same\.npz: another run is writing this checkpoint \(process $LP holds" \
  $MQ --steps 10 --save "$T/same.npz"
kill -9 $LP; wait $LP 2>/dev/null
# kill -9, then --resume: the log is cut back to the checkpoint, no row lost, no
# torn line; it equals an uninterrupted run's (item 13); stale temporaries go
$MQ --steps 1000000000 --decay-at 1000000000 --save "$T/k.npz" --save-every 500 --log "$T/k.csv" >/dev/null 2>&1 &
KP=$!
i=0; while [ ! -e "$T/k.npz" ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
sleep 0.3
kill -9 $KP; wait $KP 2>/dev/null
: >"$T/k.npz.tmp99999999"
N=$($MQ --steps 0 --decay-at 1000000000 --save "$T/k.npz" --resume --log "$T/k.csv" --samples 0 2>/dev/null |
    sed -n 's/^loaded .* at step \([0-9]*\)$/\1/p')
$MQ --steps "${N:-1}" --decay-at 1000000000 --log "$T/r.csv" --samples 0 >/dev/null 2>&1
t "log after kill -9 and --resume" 0 "" cmp "$T/k.csv" "$T/r.csv"
t "log has the checkpoint's rows" 0 "^$((${N:-1} - 1)),"  tail -1 "$T/k.csv"
t "plot the resumed log"  0 "wrote "     $BPGEN plot "$T/k.csv" -o "$T/k.png"
t "stale temporary removed" 1 ""         test -e "$T/k.npz.tmp99999999"
t "lock file removed"     1 ""           test -e "$T/k.npz.lock"
# --load and --save checked before training (item 14)
t "--load a directory"    1 "error: .*: is a directory, not a checkpoint file \(\.npz\)" $MQ --load "$T" --steps 1
t "--save dir missing, at once" 1 "--save .*nodir/c\.npz: cannot create files in .*nodir: No such file or directory" \
  $MQ --steps 200000 --save "$T/nodir/c.npz"
mkfifo "$T/fifo"
t "--save a FIFO refused" 1 "--save .*fifo: is a FIFO: a checkpoint is written beside it and renamed over it" \
  $MQ --steps 10 --save "$T/fifo"
t "the FIFO is left"      0 ""           test -p "$T/fifo"
t "--save a directory"    1 "--save .*: is a directory: a checkpoint" $MQ --steps 10 --save "$T"
# the train suite keeps its scratch files in $TMPDIR and removes them
CHECK=${BPGEN_CHECK:-$(dirname "$BPGEN")/check_bpgen}
if [ -x "$CHECK" ]; then
  mkdir -p "$T/scratch"
  t "train suite uses TMPDIR" 0 "100%: Checks: 1, Failures: 0" \
    env TMPDIR="$T/scratch" CK_RUN_SUITE=train CK_RUN_CASE=tmpdir "$CHECK"
  t "train suite leaves nothing" 0 "" sh -c '[ -z "$(ls -A "$1")" ]' sh "$T/scratch"
fi

# ---- issue 13 (trainer side): optimiser, schedule, clipping, sequence data, sampling ----
# AdamW + --clip + the cosine schedule against torch.optim.AdamW in f64 (1e-10),
# when PyTorch is installed (tools/torch_adamw.py exits 2 without it)
PY=/usr/bin/python3
if [ -x "$PY" ] && "$PY" -c 'import torch, numpy' 2>/dev/null; then
  t "AdamW, clip, cosine = PyTorch" 0 "torch_adamw: ok" \
    "$PY" tools/torch_adamw.py --bpgen "$BPGEN" --spec-dir "$SPECS"
  # issue 12: the sequence-era specs' gradients against PyTorch autograd in f64
  t "wavenet = PyTorch (part 5 sizes)" 0 "torch_models: ok" \
    "$PY" tools/torch_models.py wavenet --bpgen "$BPGEN" --spec-dir "$SPECS"
  t "wavenet = PyTorch (odd sizes)" 0 "torch_models: ok" \
    "$PY" tools/torch_models.py wavenet --bpgen "$BPGEN" --spec-dir "$SPECS" -D B=5 -D E=7 -D H=11
  t "wavenet = PyTorch (reference)" 0 "torch_models: ok" \
    "$PY" tools/torch_models.py wavenet --bpgen "$BPGEN" --spec-dir "$SPECS" --ref -D B=3 -D E=5 -D H=9
  t "rnn = PyTorch (makemore's sizes)" 0 "torch_models: ok" \
    "$PY" tools/torch_models.py rnn --bpgen "$BPGEN" --spec-dir "$SPECS"
  t "gru = PyTorch (odd sizes)" 0 "torch_models: ok" \
    "$PY" tools/torch_models.py gru --bpgen "$BPGEN" --spec-dir "$SPECS" -D B=5 -D T=7 -D E=9 -D H=11
  t "gru = PyTorch (reference)" 0 "torch_models: ok" \
    "$PY" tools/torch_models.py gru --bpgen "$BPGEN" --spec-dir "$SPECS" --ref -D B=3 -D T=4 -D E=5 -D H=6
  t "gpt2 = PyTorch (its own sizes)" 0 "torch_models: ok" \
    "$PY" tools/torch_models.py gpt2 --bpgen "$BPGEN" --spec-dir "$SPECS"
  t "gpt2 = PyTorch (odd sizes)" 0 "torch_models: ok" \
    "$PY" tools/torch_models.py gpt2 --bpgen "$BPGEN" --spec-dir "$SPECS" -D B=3 -D T=5 -D maxT=7 -D V=11 -D Vp=16 -D L=2 -D NH=3 -D C=12
  t "gpt2 = PyTorch (reference)" 0 "torch_models: ok" \
    "$PY" tools/torch_models.py gpt2 --bpgen "$BPGEN" --spec-dir "$SPECS" --ref -D B=2 -D T=3 -D maxT=5 -D V=7 -D Vp=9 -D L=2 -D NH=2 -D C=6
  t "bigram (ignored targets) = PyTorch" 0 "torch_models: ok" \
    "$PY" tools/torch_models.py bigram --bpgen "$BPGEN" --spec-dir "$SPECS"
  t "bigram = PyTorch (odd, reference)" 0 "torch_models: ok" \
    "$PY" tools/torch_models.py bigram --bpgen "$BPGEN" --spec-dir "$SPECS" --ref -D B=5 -D T=7 -D V=11
  t "bow = PyTorch" 0 "torch_models: ok" "$PY" tools/torch_models.py bow --bpgen "$BPGEN" --spec-dir "$SPECS"
  t "transformer = PyTorch" 0 "torch_models: ok" \
    "$PY" tools/torch_models.py transformer --bpgen "$BPGEN" --spec-dir "$SPECS"
  t "transformer = PyTorch (odd, reference)" 0 "torch_models: ok" \
    "$PY" tools/torch_models.py transformer --bpgen "$BPGEN" --spec-dir "$SPECS" --ref -D B=2 -D T=5 -D C=12 -D NH=3 -D V=7
  t "makemore mlp = PyTorch" 0 "torch_models: ok" \
    "$PY" tools/torch_models.py makemore_mlp --bpgen "$BPGEN" --spec-dir "$SPECS"
  t "makemore mlp = PyTorch (odd, reference)" 0 "torch_models: ok" \
    "$PY" tools/torch_models.py makemore_mlp --bpgen "$BPGEN" --spec-dir "$SPECS" --ref -D B=3 -D T=5 -D C=4 -D C2=6 -D V=7
  t "bow = PyTorch (odd, reference)" 0 "torch_models: ok" \
    "$PY" tools/torch_models.py bow --bpgen "$BPGEN" --spec-dir "$SPECS" --ref -D B=3 -D T=5 -D C=7 -D C2=6 -D V=9
else
  echo "driver: skipped the PyTorch comparisons (no torch for $PY); the train suite checks the same formulas in C"
fi
t "run --help lists --clip" 0 "--clip X" $BPGEN run --help
t "run --bn-stats bad" 2 "--bn-stats: 'moving' is neither calibrate nor running" $BPGEN run $SPECS/makemore.spec --data "$W" --bn-stats moving
t "run --bn-momentum bad" 2 "--bn-momentum: 2 is not in \(0, 1\]" $BPGEN run $SPECS/makemore.spec --data "$W" --bn-stats running --bn-momentum 2
t "run --bn-stats running, no batchnorm" 1 "--bn-stats running: the model has no batchnorm" \
  $BPGEN run $SPECS/bigram.spec --data "$W" --bn-stats running --steps 1
t "run --lr-schedule bad" 2 "--lr-schedule: 'linear' is not step, cosine or constant" \
  $MQ --steps 5 --lr-schedule linear
t "run --clip --warmup cosine" 0 "train loss" \
  $MQ --steps 50 --optimizer adamw --clip 1 --lr-schedule cosine --warmup 5 --samples 0
# streams through `bpgen run`: a context model is refused with the file named;
# llm.c token files are checked (the model check comes first, so a stream
# spec's errors are in the train suite's fake-model tests)
printf 'hello\nworld\n' >"$T/h.txt"
t "run --text on a context model" 1 "a token stream \(--text\) needs inputs X, Y : int\[B,T\]" \
  $BPGEN run $M -D H=8 -D B=4 --text "$T/h.txt" --quiet
t "run --val-tokens alone" 2 "--val-tokens needs --data-tokens" \
  $BPGEN run $M -D H=8 -D B=4 --data $W --val-tokens "$T/h.txt" --quiet
t "run --text and --data" 2 "not both" \
  $BPGEN run $M -D H=8 -D B=4 --data $W --text "$T/h.txt" --quiet
t "run --help lists --data-tokens" 0 "--data-tokens F.bin" $BPGEN run --help

# ---- learner's kit II (issue 15): division by a constant 0, dot's seed, report ----------
G=$SPECS/makemore_granular.spec
t "B=1: located division by zero" 1 "makemore_granular.spec:25:34: error: division by zero" \
  $BPGEN check $G -D B=1
t "B=1: caret at the division" 1 "^ {35}\^$" $BPGEN check $G -D B=1
t "B=1: no table of NaN"   0 ""          sh -c '! "$1" check "$2" -D B=1 2>&1 | grep -q "|"' sh $BPGEN $G
t "B=2: still fine"        0 "ok: loss and 27 gradients" $BPGEN check $G -D B=2
t "dot labels the seed"    0 'label="dloss = 1\\n\(seed\)' $BPGEN dot $M --backward
t "report --help"         0 "usage: bpgen report SPEC \[--mine FILE.c\]" $BPGEN report --help
t "report needs -o"        2 "error: report: give -o report.html" $BPGEN report $M
t "report writes a page"   0 "" $BPGEN report $G --mine tests/fixtures/ninja_ex1_offbyone.c -o "$T/r.html"
PY=${PYTHON:-python3}
t "report page parses, holds every tensor" 0 "ok: parses, nothing from outside, 31 tensor names" \
  $PY tools/html_check.py "$T/r.html" $G dbndiff2 dC
t "report page has the learner's hint" 0 "" grep -q "hint: yours is the right dbndiff2" "$T/r.html"
t "report of makemore.spec parses" 0 "ok: parses" sh -c '"$1" report "$2" -o "$3" && "$4" tools/html_check.py "$3" "$2"' \
  sh $BPGEN $M "$T/r2.html" $PY
# ---- end of learner's kit II --------------------------------------------------------------

# ---- issue 16 (install): --prefix, the header's name, reproducible output, make install ----
G=$T/i16
mkdir -p "$G"
# --prefix: a C identifier, refused otherwise; two prefixes link into one program
t "gen --prefix not C"      2 "bpgen: error: --prefix: 'a-b' is not a C identifier" $BPGEN $M --prefix a-b -o "$G/x.c"
t "gen --prefix digit"      2 "--prefix: '9a' is not a C identifier" $BPGEN $M --prefix 9a -o "$G/x.c"
t "gen --prefix empty"      2 "--prefix: '' is not a C identifier" $BPGEN $M --prefix '' -o "$G/x.c"
t "gen --prefix reserved"   2 "--prefix: '__m' starts with '__'.*reserved" $BPGEN $M --prefix __m -o "$G/x.c"
t "gen --prefix no value"   2 "--prefix needs a value" $BPGEN $M -o "$G/x.c" --prefix
t "gen --prefix wrote nothing" 1 "" test -e "$G/x.c"
t "gen --prefix mm_a"       0 "" $BPGEN $M --prefix mm_a -o "$G/mm_a.c"
t "gen --prefix mm_b"       0 "" $BPGEN $M --prefix mm_b -D H=16 -o "$G/mm_b.c"
t "--prefix names the API"  0 "^double mm_a_forward\(mm_a_state \*s\);" cat "$G/mm_a.h"
cat >"$G/two.c" <<'EOF2'
#include <stdio.h>
#include <stdlib.h>
#include "mm_a.h"
#include "mm_b.h"
int main(void) {
  mm_a_state *a = aligned_alloc(64, (sizeof *a + 63) / 64 * 64);
  mm_b_state *b = aligned_alloc(64, (sizeof *b + 63) / 64 * 64);
  if (!a || !b) return 2;
  mm_a_init(a, 1), mm_b_init(b, 1);
  printf("%s %s %d\n", mm_a_model.name, mm_b_model.name, (int)(sizeof *a != sizeof *b));
  return 0;
}
EOF2
t "two prefixes link"       0 "" gcc -std=c11 -O1 -Wall -Werror -o "$G/two" "$G/two.c" "$G/mm_a.c" "$G/mm_b.c" -lm -lpthread
t "two prefixes run"        0 "^mm_a mm_b 1$" "$G/two"
# the header beside the C file: the extension replaced, whatever it is
t "gen -o model.cc"         0 "" $BPGEN $M -o "$G/model.cc"
t "model.cc -> model.h"     0 "^double makemore_forward" cat "$G/model.h"
t "no model.cc.h"           1 "" test -e "$G/model.cc.h"
mkdir -p "$G/d.v1"
t "gen -o d.v1/model"       0 "" $BPGEN $M -o "$G/d.v1/model"
t "d.v1/model -> model.h"   0 "" test -s "$G/d.v1/model.h"
t "gen -o model.h refused"  2 "bpgen: error: -o .*model2.h: the API header would be the same file" \
  $BPGEN $M -o "$G/model2.h"
# the spec path as given: byte-identical output from the same command, and from
# two directories with the same relative path; no absolute path in it
mkdir -p "$G/w1/specs" "$G/w2/specs"
cp $M "$G/w1/specs/m.spec" && cp $M "$G/w2/specs/m.spec"
(cd "$G/w1" && $BPGEN specs/m.spec -o out.c && mv out.c first.c && mv out.h first.h && $BPGEN specs/m.spec -o out.c)
(cd "$G/w2" && $BPGEN specs/m.spec -o out.c)
t "same command, same .c"   0 "" cmp "$G/w1/first.c" "$G/w1/out.c"
t "same command, same .h"   0 "" cmp "$G/w1/first.h" "$G/w1/out.h"
t "other directory, same .c" 0 "" cmp "$G/w1/out.c" "$G/w2/out.c"
t "other directory, same .h" 0 "" cmp "$G/w1/out.h" "$G/w2/out.h"
t "#line names the spec as given" 0 '^#line [0-9]+ "specs/m.spec"$' cat "$G/w1/out.c"
t "no absolute path in the .c" 1 "" grep -F "$G" "$G/w1/out.c" "$G/w1/out.h"
# the alignment model.h and README state: _Alignof(state) is 64 exactly when a
# field is aligned(64) (8 MB or more), else at most 8 (malloc's 16 suffice)
t "gen a model with 8 MB fields" 0 "" $BPGEN $M -D H=1024 -D B=2048 -o "$G/big.c"
t "8 MB fields are aligned(64)" 0 "__attribute__\(\(aligned\(64\)\)\)" cat "$G/big.h"
t "small model has none"    1 "" grep -F "__attribute__((aligned(64)))" "$G/model.h"
printf '#include "big.h"\n_Static_assert(_Alignof(makemore_state) == 64, "64");\n' >"$G/al64.c"
printf '#include "model.h"\n_Static_assert(_Alignof(makemore_state) <= 8, "8");\n' >"$G/al8.c"
t "big state: _Alignof 64"  0 "" gcc -std=c11 -fsyntax-only -I"$G" "$G/al64.c"
t "small state: _Alignof <= 8" 0 "" gcc -std=c11 -fsyntax-only -I"$G" "$G/al8.c"
# bpgen's kernels check the address before a streaming store: a state 16 bytes
# off 64 (what malloc may give) runs and gives the bits of an aligned one
cat >"$G/off.c" <<'EOF2'
#include <stdio.h>
#include <stdlib.h>
#include "big.h"
int main(int argc, char **argv) {
  size_t off = (size_t)atoi(argv[1]);
  char *raw = aligned_alloc(64, (sizeof(makemore_state) + 64 + 63) / 64 * 64);
  if (!raw) return 2;
  makemore_state *s = (makemore_state *)(raw + off);
  makemore_init(s, 7);
  for (int i = 0; i < 2048 * 3; i++) s->X[i] = (i * 7) % 27;
  for (int i = 0; i < 2048; i++) s->Y[i] = (i * 5) % 27;
  double l0 = makemore_forward(s);
  makemore_backward(s);
  makemore_sgd_step(s, 0.1);
  double l1 = makemore_forward(s), sum = 0;
  for (size_t i = 0; i < sizeof s->h / sizeof s->h[0]; i++) sum += s->h[i];
  printf("%a %a %a\n", l0, l1, sum);
  return 0;
}
EOF2
t "build big model"         0 "" gcc -std=gnu11 -O3 -march=native -o "$G/off" "$G/off.c" "$G/big.c" -lm -lpthread
"$G/off" 0 >"$G/off0" 2>&1
"$G/off" 16 >"$G/off16" 2>&1
t "aligned state runs"      0 "^-?0x1" cat "$G/off0"
t "state 16 bytes off 64: same bits" 0 "" cmp "$G/off0" "$G/off16"
t "model.h states it"       0 "_Alignof\(makemore_state\): 64 when a field below is aligned\(64\)" cat "$G/model.h"
# make install / uninstall into a staging directory (a nested make: the outer
# one's jobserver is not ours)
ROOT=$(cd "$(dirname "$0")/.." && pwd)
D=$G/stage
mk() { env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL make -s -C "$ROOT" "$@"; }
silent() {  # silent CMD...: CMD succeeds and prints nothing (what it printed is shown)
  "$@" >"$G/silent" 2>&1 || return 1
  [ ! -s "$G/silent" ] || { cat "$G/silent"; return 1; }
}
t "make install"            0 "" mk install DESTDIR="$D" PREFIX=/usr
for f in bin/bpgen include/bpgen/bp_runtime.h share/man/man1/bpgen.1 \
         share/bash-completion/completions/bpgen share/doc/bpgen/README.md; do
  t "installed $f"          0 "" test -s "$D/usr/$f"
done
t "installed bpgen runs"    0 "^usage: bpgen SPEC -o" "$D/usr/bin/bpgen" --help
t "installed bpgen runs check" 0 "^ok: loss and" "$D/usr/bin/bpgen" check $M -D H=8
# the ABI header: a program includes it, then a model's header (the same guard)
printf '#include <bpgen/bp_runtime.h>\n#include "mm_a.h"\nconst BpModel *m = &mm_a_model;\n' >"$G/abi.c"
t "bp_runtime.h from PREFIX/include" 0 "" gcc -std=c99 -Wall -Werror -fsyntax-only -I"$D/usr/include" -I"$G" "$G/abi.c"
MAN1=$D/usr/share/man/man1/bpgen.1
t "man page renders, no warnings" 0 "" silent sh -c "MANWIDTH=80 man --warnings -l '$MAN1' 2>&1 >'$G/man.txt'"
t "man page rendered"       0 "--prefix NAME" cat "$G/man.txt"
# every option a --help text lists is in the man page, in its command's section
help_opts() { "$@" --help 2>&1 | grep -oE '(^|[^A-Za-z0-9-])--?[A-Za-z][A-Za-z0-9-]*' | sed -E 's/^[^-]//' | sort -u; }
man_part() {  # the roff source of the sections whose heading holds $1, escapes removed
  awk -v h="$1" '/^\.S[HS] /{ on = index($0, h) > 0 } on' "$MAN1" | sed -e 's/\\f[BIRP]//g' -e 's/\\-/-/g' -e 's/\\&//g'
}
missing_in() {  # missing_in TEXTFILE OPTION...: the options TEXTFILE lacks
  f=$1; shift; miss=
  for o in "$@"; do grep -qE -- "(^|[^A-Za-z0-9-])$o([^A-Za-z0-9-]|\$)" "$f" || miss="$miss $o"; done
  echo "$miss"
}
sed -e 's/\\f[BIRP]//g' -e 's/\\-/-/g' -e 's/\\&//g' "$MAN1" >"$G/man.all"
t "man has bpgen --help's options" 0 "^ *$" missing_in "$G/man.all" $(help_opts $BPGEN)
man_part '.SS "bpgen SPEC ' >"$G/man.gen"
t "man has SPEC -o's options" 0 "^ *$" missing_in "$G/man.gen" $(help_opts $BPGEN $M)
for c in grad check explain run plot ninja dot; do
  man_part ".SS \"bpgen $c " >"$G/man.$c"
  t "man has a $c section"  0 "" test -s "$G/man.$c"
  t "man has $c's options"  0 "^ *$" missing_in "$G/man.$c" $(help_opts $BPGEN $c)
done
# bash completion: each command's options (the long ones and -D/-o its --help
# lists; the other single-dash words of the texts are gcc's), the values, specs
if command -v bash >/dev/null; then
  comp() {  # comp WORD...: what the installed completion offers for the last word
    bash -c '. "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _bpgen; printf "%s\n" "${COMPREPLY[@]}"' \
      comp "$D/usr/share/bash-completion/completions/bpgen" "$@"
  }
  long_opts() {  # without the other commands' options a text names (`bpgen run --log`)
    "$@" --help 2>&1 | sed -E 's/bpgen [a-z]+ --[a-z-]+//g' | grep -oE '(^|[^A-Za-z0-9-])--?[A-Za-z][A-Za-z0-9-]*' |
      sed -E 's/^[^-]//' | grep -E '^(--|-D$|-o$)' | sort -u
  }
  comp bpgen "$M" - >"$G/comp.gen"
  t "completion has SPEC -o's options" 0 "^ *$" missing_in "$G/comp.gen" $(long_opts $BPGEN $M)
  for c in grad check explain run plot ninja dot; do
    comp bpgen $c - >"$G/comp.$c"
    t "completion has $c's options" 0 "^ *$" missing_in "$G/comp.$c" $(long_opts $BPGEN $c)
  done
  t "completion: commands"   0 "^check$" comp bpgen ch
  t "completion: a spec"     0 "^$SPECS/makemore.spec$" comp bpgen "$SPECS/makem"
  t "completion: run's spec" 0 "^$SPECS/makemore.spec$" comp bpgen run "$SPECS/makem"
  t "completion: --dtype"    0 "^f64$" comp bpgen check "$M" --dtype f
  t "completion: --optimizer" 0 "^adamw$" comp bpgen run "$M" --optimizer a
fi
t "make uninstall"          0 "" mk uninstall DESTDIR="$D" PREFIX=/usr
t "uninstall leaves no file" 0 "" silent find "$D" ! -type d
t "uninstall leaves no bpgen dir" 0 "" silent find "$D" -name '*bpgen*'
# ---- end of issue 16 (install) ---------------------------------------------------------

# ---- issue 16 (embed): .safetensors, weights-only loads, --save's extension ------------
# (a section of its own, to merge easily; numpy/python only where said)
ME="$BPGEN run $M -D H=8 -D B=4 --data $W --samples 0"
# stf FILE JSON [DATA-PRINTF]: a .safetensors file: the JSON's length (8 bytes,
# little-endian), the JSON, the data
stf() {
  n=${#2}
  { printf "\\$(printf %03o $((n % 256)))\\$(printf %03o $((n / 256)))\\000\\000\\000\\000\\000\\000"
    printf '%s' "$2"; printf "${3:-}"; } >"$1"
}
t "safetensors save"        0 "train loss" $ME --steps 7 --optimizer adamw --save "$T/e.safetensors"
t "npz save, same run"      0 "train loss" $ME --steps 7 --optimizer adamw --save "$T/e.npz"
t "safetensors header"      0 '"__metadata__":\{"format":"pt"\},"step":\{"dtype":"I64","shape":\[\],"data_offsets":\[0,8\]\}' \
  head -c 200 "$T/e.safetensors"
t "safetensors has adamw.v" 0 '"adamw.v.bnbias":\{"dtype":"F32","shape":\[1,8\]' head -c 4000 "$T/e.safetensors"
$ME --steps 12 --optimizer adamw --load "$T/e.safetensors" --quiet 2>&1 | grep -v "^loaded" >"$T/e1.out"
$ME --steps 12 --optimizer adamw --load "$T/e.npz" --quiet 2>&1 | grep -v "^loaded" >"$T/e2.out"
t "resume from safetensors = from npz" 0 "" cmp "$T/e1.out" "$T/e2.out"
t "resumed at step 7"       0 "loaded .*e.safetensors at step 7" $ME --steps 8 --load "$T/e.safetensors"
$ME --steps 7 --optimizer adamw --load "$T/e.safetensors" --save "$T/e2.safetensors" --quiet >/dev/null 2>&1
t "safetensors round trip, same bytes" 0 "" cmp "$T/e.safetensors" "$T/e2.safetensors"
t "--save FILE.zip refused" 1 "^bpgen: error: --save .*x\.zip: unknown checkpoint format: name it FILE\.npz \(numpy's\) or FILE\.safetensors" \
  $ME --steps 1 --save "$T/x.zip"
t "--save FILE refused"     1 "--save .*/noext: unknown checkpoint format" $ME --steps 1 --save "$T/noext"
t "nothing written"         1 "" test -e "$T/x.zip"
t "--save .SafeTensors"     0 "" $ME --steps 1 --save "$T/x.SafeTensors" --quiet
# malformed files: one message naming the file (and the tensor), never a crash
F='{"C":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}'
stf "$T/m1.safetensors" "$F" '\0\0\0\0\0\0\0'
t "st: data truncated"      1 "m1.safetensors: tensor C: data_offsets \[0, 8\] are not within the 7 bytes of data" $ME --load "$T/m1.safetensors"
printf '\377\0\0\0\0\0\0\0{}' >"$T/m2.safetensors"
t "st: header length past the end" 1 "m2.safetensors: not a safetensors file: its header length is 255 bytes but 2 follow" $ME --load "$T/m2.safetensors"
stf "$T/m3.safetensors" '{"C":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}' '\0\0\0\0\0\0\0\0'
t "st: JSON not closed"     1 "m3.safetensors: not a safetensors file: its JSON header expects ',' or '\}' after a tensor \(at byte 53 of 53\)" $ME --load "$T/m3.safetensors"
stf "$T/m4.safetensors" '{"C":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"D":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}' '\0\0\0\0\0\0\0\0\0\0\0\0'
t "st: overlap"             1 "m4.safetensors: tensors C and D overlap \(bytes \[0, 8\) and \[4, 12\)\)" $ME --load "$T/m4.safetensors"
stf "$T/m5.safetensors" '{"C":{"dtype":"F33","shape":[2],"data_offsets":[0,8]}}' '\0\0\0\0\0\0\0\0'
t "st: unknown dtype"       1 "m5.safetensors: tensor C has dtype \"F33\", not one of safetensors'" $ME --load "$T/m5.safetensors"
stf "$T/m6.safetensors" '{"C":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}' '\0\0\0\0\0\0\0\0'
t "st: size vs shape"       1 "m6.safetensors: tensor C: data_offsets \[0, 8\] hold 8 bytes, but F32 of its shape take 12" $ME --load "$T/m6.safetensors"
stf "$T/m7.safetensors" '{"C":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}' '\0\0\0\0\0\0\0\0'
t "st: shape vs the spec"   1 "m7.safetensors: C is F32 \(2,\) but this model wants F32 \(6, 10\)" $ME --load "$T/m7.safetensors"
stf "$T/m8.safetensors" '{"fc.weight":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}' '\0\0\0\0\0\0\0\0'
t "st: param missing"       1 "m8.safetensors: has no tensor C, which this model's spec declares \(the file holds: fc.weight\)" $ME --load "$T/m8.safetensors"
stf "$T/m9.safetensors" '{"C":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"C":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}' '\0\0\0\0\0\0\0\0'
t "st: name twice"          1 "m9.safetensors: tensor C appears twice in the header" $ME --load "$T/m9.safetensors"
stf "$T/m10.safetensors" '{"C":{"dtype":"F16","shape":[6,10],"data_offsets":[0,120]}}' "$(printf '%0120d' 0 | sed 's/0/\\0/g')"
t "st: dtype vs the spec"   1 "m10.safetensors: C is F16 \(6, 10\) but this model wants F32 \(6, 10\)" $ME --load "$T/m10.safetensors"
stf "$T/m11.safetensors" '{"C":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}}' '\0\0\0\0\0\0\0\0'
t "st: negative dim"        1 "m11.safetensors: not a safetensors file: its JSON header has a shape or offset that is not a non-negative integer" $ME --load "$T/m11.safetensors"
stf "$T/m12.safetensors" "{\"__metadata__\":{\"a\":$(printf '%070d' 0 | sed 's/0/[/g')}}"
t "st: nesting bounded"     1 "m12.safetensors: not a safetensors file: its JSON header nests too deep" $ME --load "$T/m12.safetensors"
stf "$T/m13.safetensors" '{"C":{"dtype":"F32","shape":[2]}}'
t "st: no data_offsets"     1 "m13.safetensors: tensor C has no data_offsets" $ME --load "$T/m13.safetensors"
stf "$T/m14.safetensors" '{"C":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}}' '\0\0\0\0\0\0\0\0'
t "st: begin after end"     1 "m14.safetensors: tensor C: data_offsets \[8, 0\] are not within" $ME --load "$T/m14.safetensors"
stf "$T/m15.safetensors" '{"C\u00e9\ud83d\ude00":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}} x' '\0\0\0\0'
t "st: bytes after the JSON" 1 "m15.safetensors: not a safetensors file: its JSON header has more after its closing '\}'" $ME --load "$T/m15.safetensors"
stf "$T/m16.safetensors" '{"C":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}, "\ud83d":{}}' '\0\0\0\0'
t "st: lone surrogate"      1 "m16.safetensors: not a safetensors file: its JSON header has a lone surrogate" $ME --load "$T/m16.safetensors"
printf '\0\0\0\0\0' >"$T/m17.safetensors"
t "st: 5 bytes"             1 "m17.safetensors: not a checkpoint \(5 bytes; a .safetensors file starts with an 8-byte header length\)" $ME --load "$T/m17.safetensors"
# every prefix of a good file, and a byte flipped anywhere in its header: an error, no crash
hl=$(head -c 1 "$T/e.safetensors" | od -An -tu1 | tr -d ' ')
crash=0
for n in 0 1 7 8 9 50 $((hl / 2)) $((hl + 7)) $((hl + 8)) $((hl + 100)); do
  head -c $n "$T/e.safetensors" >"$T/cut.safetensors"
  $ME --steps 7 --optimizer adamw --load "$T/cut.safetensors" >"$T/cut.out" 2>&1
  rc=$?
  [ $rc -eq 1 ] && grep -q "^bpgen: error: .*cut.safetensors" "$T/cut.out" || { crash=1; echo "cut $n: status $rc"; cat "$T/cut.out"; }
done
t "st: every cut is an error" 0 "" test $crash -eq 0
# weights only: a file without "step" sets the params (the spec's names) and starts at step 0
if command -v python3 >/dev/null && python3 -c 'import json, struct' 2>/dev/null; then
  python3 - "$T/py.safetensors" <<'PYEOF'
import json, struct, sys
# makemore -D H=8 on words10 (V = 6): plain json + struct, no safetensors package
shapes = {"C": [6, 10], "W1": [30, 8], "b1": [8], "W2": [8, 6], "b2": [6], "bngain": [1, 8], "bnbias": [1, 8]}
head, data = {"__metadata__": {"format": "pt"}}, b""
for i, (k, s) in enumerate(shapes.items()):
    n = 1
    for d in s:
        n *= d
    vals = [((7 * j + 3 * i) % 11 - 5) / 8 for j in range(n)]   # exact in f32
    b = struct.pack("<%df" % n, *vals)
    head[k] = {"dtype": "F32", "shape": s, "data_offsets": [len(data), len(data) + len(b)]}
    data += b
head["num_batches_tracked"] = {"dtype": "I64", "shape": [], "data_offsets": [len(data), len(data) + 8]}
data += struct.pack("<q", 5)
j = json.dumps(head).encode()
open(sys.argv[1], "wb").write(struct.pack("<Q", len(j)) + j + data)
PYEOF
  t "python-written safetensors loads" 0 "note: .*py.safetensors holds weights only \(no step, RNG or optimizer state\): training starts from them at step 0" \
    $ME --steps 0 --load "$T/py.safetensors" --save "$T/py2.safetensors"
  t "its params, bit for bit" 0 "^same$" python3 -c '
import json, struct, sys
def read(p):
    b = open(p, "rb").read(); n = struct.unpack("<Q", b[:8])[0]; h = json.loads(b[8:8 + n])
    return {k: b[8 + n + v["data_offsets"][0]:8 + n + v["data_offsets"][1]] for k, v in h.items() if k != "__metadata__"}
a, b = read(sys.argv[1]), read(sys.argv[2])
ps = ["C", "W1", "b1", "W2", "b2", "bngain", "bnbias"]
print("same" if all(a[k] == b[k] for k in ps) and int(struct.unpack("<q", b["step"])[0]) == 0 else "differ")' \
    "$T/py.safetensors" "$T/py2.safetensors"
  $ME --steps 0 --load "$T/py.safetensors" --quiet >"$T/w1.out" 2>&1
  $ME --steps 0 --quiet >"$T/w0.out" 2>&1
  t "weights change the loss" 1 "" cmp -s "$T/w1.out" "$T/w0.out"
  t "and train from there"    0 "loaded .*py.safetensors at step 0" $ME --steps 5 --load "$T/py.safetensors"
else
  echo "driver: skipped the python-written safetensors cases (no python3)"
fi
if /usr/bin/python3 -c 'import numpy' 2>/dev/null; then
  # numpy.savez of the params in float64 (numpy's default) into an f32 model; as float32
  /usr/bin/python3 -c '
import numpy as np, sys
z = np.load(sys.argv[1])
ps = ["C", "W1", "b1", "W2", "b2", "bngain", "bnbias"]
np.savez(sys.argv[2], **{k: z[k].astype(np.float64) for k in ps})
np.savez(sys.argv[3], **{k: z[k] for k in ps})' "$T/e.npz" "$T/w64.npz" "$T/w32.npz"
  $ME --steps 7 --load "$T/e.npz" --quiet 2>&1 | grep loss >"$T/wf.out"
  t "np.savez f64 weights"  0 "$(head -1 "$T/wf.out")" $ME --steps 0 --load "$T/w64.npz"
  t "np.savez f32 weights"  0 "$(head -1 "$T/wf.out")" $ME --steps 0 --load "$T/w32.npz"
  t "np.savez shape vs the spec" 1 "w32.npz: C.npy is <f4 \(6, 10\) but this model wants <f4 \(6, 11\)" \
    $ME -D E=11 --steps 0 --load "$T/w32.npz"
  /usr/bin/python3 -c '
import numpy as np, sys
z = np.load(sys.argv[1]); np.savez(sys.argv[2], **{k: z[k] for k in z.files if k != "C"})' "$T/w32.npz" "$T/wnoc.npz"
  t "np.savez without C"    1 "wnoc.npz: has no tensor C, which this model's spec declares \(the file holds: W1, b1, W2, b2, bngain, bnbias\)" \
    $ME --steps 0 --load "$T/wnoc.npz"
else
  echo "driver: skipped the numpy.savez weights cases (/usr/bin/python3 has no numpy)"
fi
# the API's AdamW step and thread count: <prefix>_adamw_step against the trainer's own
# tr_adamw (both in the --trainer file) on two states from one seed, five steps
if command -v gcc >/dev/null; then
  cat >"$T/adamw_h.c" <<'CEOF'
#define main trainer_main
#include "adamw_tr.c"
#undef main
int main(void) {
  const BpModel *m = &am_model;
  am_state *a = aligned_alloc(64, (sizeof *a + 63) / 64 * 64), *b = aligned_alloc(64, (sizeof *b + 63) / 64 * 64);
  memset(a, 0, sizeof *a), memset(b, 0, sizeof *b);
  am_init(a, 42), am_init(b, 42);
  am_set_threads(2);
  if (bp_get_threads() != 2) return printf("set_threads: %d threads\n", bp_get_threads()), 1;
  real *p0 = malloc(m->nparam * sizeof(real)), *mm = calloc(m->nparam, sizeof(real)), *vv = calloc(m->nparam, sizeof(real));
  memcpy(p0, (char *)a + m->param_offset, m->nparam * sizeof(real));
  Tr tr;
  memset(&tr, 0, sizeof tr);
  tr.m = m, tr.state = a, tr.esize = sizeof(real);
  tr.o.beta1 = 0.9, tr.o.beta2 = 0.99, tr.o.eps = 1e-8, tr.o.wd = 0.01;
  tr.mom_m = calloc(m->nparam, sizeof(real)), tr.mom_v = calloc(m->nparam, sizeof(real));
  BpRng r;
  bp_rng_seed(&r, 7);
  for (int step = 1; step <= 5; step++) {
    for (size_t i = 0; i < sizeof a->X / sizeof a->X[0]; i++) a->X[i] = b->X[i] = (int32_t)(bp_rng_next(&r) % 6);
    for (size_t i = 0; i < sizeof a->Y / sizeof a->Y[0]; i++) a->Y[i] = b->Y[i] = (int32_t)(bp_rng_next(&r) % 6);
    am_forward(a), am_forward(b);
    am_backward(a), am_backward(b);
    tr_adamw(&tr, 0.01);
    am_adamw_step(b, mm, vv, step, 0.01, 0.9, 0.99, 1e-8, 0.01);
  }
  const real *pa = (const real *)((char *)a + m->param_offset), *pb = (const real *)((char *)b + m->param_offset);
  double md = 0;
  size_t moved = 0;
  for (size_t i = 0; i < m->nparam; i++) {
    double d = fabs((double)pa[i] - pb[i]), dm = fabs((double)((real *)tr.mom_m)[i] - mm[i]),
           dv = fabs((double)((real *)tr.mom_v)[i] - vv[i]);
    md = d > md ? d : md, md = dm > md ? dm : md, md = dv > md ? dv : md;
    moved += pa[i] != p0[i];
  }
  printf("%zu params, %zu moved, max difference %g\n", m->nparam, moved, md);
  return !(md == 0 && moved > m->nparam / 2);
}
CEOF
  for dt in f32 f64; do
    $BPGEN $M -D H=8 -D B=4 -D V=6 --dtype $dt --prefix am --trainer -o "$T/adamw_tr.c" &&
      gcc -O2 -o "$T/adamw_h" "$T/adamw_h.c" -lm -lpthread >"$T/adamw_cc.log" 2>&1
    t "adamw_step = tr_adamw ($dt)" 0 "^378 params, 3[0-9][0-9] moved, max difference 0$" "$T/adamw_h"
  done
  t "model.h declares adamw_step" 0 "^void am_adamw_step\(am_state \*s, float \*m, float \*v, long t, double lr," \
    sh -c "$BPGEN $M --prefix am -o $T/am.c && cat $T/am.h"
  t "model.h says the moments' count" 0 "m and v hold 4137 elements each" cat "$T/am.h"
  t "model.h says the moments' bytes" 0 "am_model.nparam; 33096 bytes for the two" cat "$T/am.h"
  t "model.h declares set_threads" 0 "^void am_set_threads\(int n\);" cat "$T/am.h"
fi
# the Python entry point: bpgen SPEC --shared -o model.so, python/bpgen_model.py (ctypes +
# numpy) against the reference runtime (bpgen grad --ref) on the same params and inputs
t "--shared needs -o FILE"  2 "^bpgen: error: --shared builds a library: give -o FILE.so" $BPGEN $M --shared -o -
t "--shared or --trainer"   2 "^bpgen: error: --shared and --trainer: give one" $BPGEN $M --shared --trainer -o "$T/x.so"
t "--shared, no compiler"   1 "^bpgen: error: --shared: no-such-cc failed building .*x.so \(exit status 127\)" \
  env CC=no-such-cc $BPGEN $M --shared -o "$T/x.so"
PYDIR=$(cd "$(dirname "$0")/../python" && pwd)
if /usr/bin/python3 -c 'import numpy' 2>/dev/null && command -v cc >/dev/null; then
  for dt in f64 f32; do
    t "--shared builds ($dt)" 0 "" $BPGEN $M -D H=8 -D B=5 --dtype $dt --prefix mm_$dt --shared -o "$T/mm_$dt.so"
    rm -rf "$T/pin" "$T/pout"
    mkdir -p "$T/pin"
    cat >"$T/pytest.py" <<'PYEOF'
import subprocess, sys
import numpy as np
pydir, so, bpgen, spec, d, out, dt = sys.argv[1:8]
sys.path.insert(0, pydir)
from bpgen_model import Model
m = Model(so, seed=5)
f64 = dt == "f64"
assert m.dtype == (np.float64 if f64 else np.float32), m.dtype
assert sorted(m.params) == sorted(["C", "W1", "b1", "W2", "b2", "bngain", "bnbias"]), sorted(m.params)
assert m.params["W1"].shape == (30, 8) and m.inputs["X"].shape == (5, 3), m.params["W1"].shape
rng = np.random.RandomState(1)
m.inputs["X"][...] = rng.randint(0, 27, size=(5, 3))
m.inputs["Y"][...] = rng.randint(0, 27, size=5)
m.params["W1"][...] += 0.5 * rng.randn(30, 8)          # through the view: the model must see it
for n, a in list(m.params.items()) + list(m.inputs.items()):
    np.save(f"{d}/{n}.npy", a.astype(np.float64) if a.dtype != np.int32 else a)
m.set_threads(2)
loss = m.forward()
m.backward()
subprocess.run([bpgen, "grad", spec, "-D", "H=8", "-D", "B=5", "--dtype", "f64", "--ref", "--in", d,
                "--out", out], check=True, stdout=subprocess.DEVNULL)
ref = float(np.load(f"{out}/loss.npy"))
tol = 1e-12 if f64 else 2e-5
worst = 0.0
assert abs(loss - ref) <= tol * abs(ref), (loss, ref)
refs = {n: np.load(f"{out}/{n}.grad.npy") for n in m.params}
top = max(np.max(np.abs(g)) for g in refs.values())
for n, g in refs.items():   # relative to the tensor's scale, at least 1% of the largest (db1 is 0)
    err = np.max(np.abs(m.grads[n] - g)) / max(np.max(np.abs(g)), 0.01 * top)
    worst = max(worst, err)
    assert err <= (1e-9 if f64 else 1e-3), (n, err)
assert np.max(np.abs(m.grads["W1"])) > 0
# step: sgd is params -= lr * grads; adamw is torch's first update
p0, g0 = m.params["W2"].copy(), m.grads["W2"].copy()
m.step(0.1)
assert np.array_equal(m.params["W2"], (p0 - np.asarray(0.1, p0.dtype) * g0).astype(p0.dtype)) if f64 else \
    np.allclose(m.params["W2"], p0 - 0.1 * g0, rtol=1e-6, atol=1e-7)
m.forward(); m.backward()
p0, g = m.params["b2"].astype(np.float64), m.grads["b2"].astype(np.float64)
m.step(1e-2, "adamw", betas=(0.9, 0.99), eps=1e-8, weight_decay=0.1)
mm, vv = 0.1 * g, 0.01 * g * g
want = p0 * (1 - 1e-2 * 0.1) - 1e-2 / 0.1 * mm / (np.sqrt(vv) / np.sqrt(0.01) + 1e-8)
err = np.max(np.abs(m.params["b2"] - want))
assert err <= (1e-15 if f64 else 1e-6), err
print(f"python {dt}: loss {loss:.12g} = reference {ref:.12g}; {len(m.params)} grads within {worst:.1e}")
PYEOF
    t "python: loss, grads, step vs --ref ($dt)" 0 "^python $dt: loss .* = reference .*; 7 grads within" \
      /usr/bin/python3 "$T/pytest.py" "$PYDIR" "$T/mm_$dt.so" "$BPGEN" "$M" "$T/pin" "$T/pout" $dt
  done
  t "python: not a bpgen library" 1 "not a library built by .bpgen SPEC --shared" /usr/bin/python3 -c '
import sys; sys.path.insert(0, sys.argv[1]); from bpgen_model import Model; Model(sys.argv[2])' "$PYDIR" \
    libm.so.6
else
  echo "driver: skipped the Python module cases (/usr/bin/python3 cannot import numpy, or no cc)"
fi
# ---- end of issue 16 (embed) ------------------------------------------------------------

# ---- data-parallel training over MPI (issue 17) ---------------------------------------
# When mpirun is installed (the set-up installs openmpi-bin): N ranks of batch
# B train on the rows one process of batch N*B does, so the losses agree to
# rounding (the gradient sums run in another order): f64 tightly, f32 to its
# rounding; the same N repeats bit for bit; only rank 0 prints, logs and
# saves.  Open MPI's own allocations are never freed: LeakSanitizer is off in
# the ranks (only there).
if command -v mpirun >/dev/null 2>&1; then
  MPI="env ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0 mpirun --oversubscribe -x ASAN_OPTIONS"
  [ "$(id -u)" -eq 0 ] && MPI="$MPI --allow-run-as-root"
  # close A.csv B.csv TOL: the logs have the same steps, losses within TOL
  close() {
    awk -F, -v tol="$3" 'NR == FNR { l[FNR] = $2; d[FNR] = $3; n = FNR; next }
      { if (FNR > n) { print "more rows in " FILENAME; bad = 1; exit }
        x = $2 - l[FNR]; x = x < 0 ? -x : x; if (x > m) m = x
        if (($3 == "") != (d[FNR] == "")) { print "dev loss only in one, row " FNR; bad = 1 }
        if ($3 != "") { y = $3 - d[FNR]; y = y < 0 ? -y : y; if (y > m) m = y }
        rows = FNR }
      END { if (!bad && rows != n) { print "fewer rows in " FILENAME; bad = 1 }
            printf "max |diff| %g over %d rows (tolerance %g)\n", m, rows, tol
            exit bad || m > tol || rows < 2 }' "$1" "$2"
  }
  # the lecture's MLP without batchnorm (batch statistics are per rank)
  printf '%s\n' 'dim B = 4' 'dim T = 3' 'dim V = 27' 'dim E = 6' 'dim H = 16' \
    'input X : int[B, T]' 'input Y : int[B]' 'param C : [V, E] ~ randn' \
    'param W1 : [T*E, H] ~ randn / sqrt(T*E)' 'param b1 : [H] ~ randn * 0.1' \
    'param W2 : [H, V] ~ randn * 0.1' 'param b2 : [V] ~ zeros' \
    'h = tanh(reshape(C[X], [B, T*E]) @ W1 + b1)' 'logits = h @ W2 + b2' \
    'loss = cross_entropy(logits, Y)' >"$T/dp.spec"
  DP0="$BPGEN run $T/dp.spec --data $W --steps 200 --lr-schedule constant --eval-every 50 --samples 3"
  DP="$DP0 --quiet"
  $DP -D B=6 --dtype f64 --log "$T/dp1.csv" >"$T/dp1.out" 2>&1
  t "mpi: 2 ranks train"            0 "train loss" \
    $MPI -np 2 $DP -D B=3 --dtype f64 --log "$T/dp2.csv" --print-every 1000 --save "$T/dp2.npz"
  t "mpi: 2 ranks = 1 of batch 2B (f64)" 0 "max" close "$T/dp1.csv" "$T/dp2.csv" 1e-12
  t "mpi: 3 ranks = 1 of batch 3B (f64)" 0 "" \
    $MPI -np 3 $DP -D B=2 --dtype f64 --log "$T/dp3.csv"
  t "mpi: 3 ranks losses"           0 "max" close "$T/dp1.csv" "$T/dp3.csv" 1e-12
  $MPI -np 2 $DP -D B=3 --dtype f64 >"$T/dp2.out" 2>&1
  grep -v '^model:' "$T/dp1.out" >"$T/dpo1"
  grep -v '^model:' "$T/dp2.out" >"$T/dpo2"
  t "mpi: results as 1 process"     0 "" cmp "$T/dpo1" "$T/dpo2"
  t "mpi: rank 0 alone prints"      0 "^1$" sh -c "grep -c '^train loss' '$T/dp2.out'"
  $MPI -np 2 $DP -D B=3 --dtype f64 --log "$T/dp2b.csv" >/dev/null 2>&1
  t "mpi: 2 ranks repeat bit for bit" 0 "" cmp "$T/dp2.csv" "$T/dp2b.csv"
  $DP -D B=6 --log "$T/dp1f.csv" >/dev/null 2>&1
  t "mpi: 2 ranks say so"           0 "data parallel: 2 ranks \(Open MPI.*\), 3 rows each, 6 a step" \
    $MPI -np 2 $DP0 -D B=3 --log "$T/dp2f.csv"
  t "mpi: 2 ranks = 1 of batch 2B (f32)" 0 "max" close "$T/dp1f.csv" "$T/dp2f.csv" 2e-6
  # sequences (each rank's gradient weighs its valid positions) and a token stream
  SQ="$BPGEN run $SPECS/bigram.spec --dtype f64 --data $W --steps 60 --lr 1 --eval-every 30 --quiet"
  $SQ -D B=4 --log "$T/sq1.csv" >/dev/null 2>&1
  $MPI -np 2 $SQ -D B=2 --log "$T/sq2.csv" >/dev/null 2>&1
  t "mpi: sequences, 2 ranks = 1"   0 "max" close "$T/sq1.csv" "$T/sq2.csv" 1e-12
  head -c 3000 "$ROOT/README.md" >"$T/dp.txt"
  ST="$BPGEN run $SPECS/bigram.spec --dtype f64 --text $T/dp.txt -D T=8 --steps 60 --lr 1 --eval-every 30 --quiet --optimizer adamw --clip 1"
  $ST -D B=6 --log "$T/st1.csv" >/dev/null 2>&1
  $MPI -np 3 $ST -D B=2 --log "$T/st3.csv" >/dev/null 2>&1
  t "mpi: token stream, 3 ranks = 1" 0 "max" close "$T/st1.csv" "$T/st3.csv" 1e-12
  # --resume under MPI: rank 0 reads the checkpoint, every rank continues from it
  $MPI -np 2 $DP -D B=3 --dtype f64 --steps 100 --save "$T/dpr.npz" --log "$T/dpr.csv" >/dev/null 2>&1
  t "mpi: --resume"                 0 "loaded .*dpr.npz at step 100" \
    $MPI -np 2 $DP -D B=3 --dtype f64 --save "$T/dpr.npz" --resume --log "$T/dpr.csv"
  t "mpi: resumed = straight run"   0 "" cmp "$T/dp2.csv" "$T/dpr.csv"
  # ranks that drift apart (rank 1 runs another --lr) are caught at step 100
  t "mpi: params differ"            1 "rank [01] of 2: step 100: the params differ between the ranks" \
    $MPI -np 1 $DP -D B=3 : -np 1 $DP -D B=3 --lr 0.05
  t "mpi: options differ"           1 "rank 1 of 2: --steps is 150 here but 200 on rank 0" \
    $MPI -np 1 $DP -D B=3 : -np 1 $DP -D B=3 --steps 150
  # a rank killed mid-run: mpirun ends the others and names it; the last
  # checkpoint (rank 0's, written atomically) loads
  $MPI -np 2 $BPGEN run "$T/dp.spec" --data "$W" -D B=3 --steps 1000000000 --save "$T/dpk.npz" \
    --save-every 200 --quiet >"$T/dpk.out" 2>&1 &
  mpid=$!
  i=0
  while [ ! -s "$T/dpk.npz" ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
  victim=$(ps -o pid= --ppid $mpid | tail -n 1)
  [ -n "$victim" ] && kill -9 $victim
  i=0
  while kill -0 $mpid 2>/dev/null && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
  if kill -0 $mpid 2>/dev/null; then kill $mpid; echo "mpirun hung" >>"$T/dpk.out"; fi
  wait $mpid
  echo "status $?" >>"$T/dpk.out"
  t "mpi: a killed rank ends the job" 0 "exited on signal 9" cat "$T/dpk.out"
  t "mpi: ... with a failure status" 1 "" grep -q "status 0$" "$T/dpk.out"
  t "mpi: ... the checkpoint loads"  0 "loaded .*dpk.npz at step [1-9]" \
    $BPGEN run "$T/dp.spec" --data "$W" -D B=6 --load "$T/dpk.npz" --steps 0 --samples 0
  # the --trainer program: with mpicc -DBP_MPI the same as 1 process; built
  # without MPI it refuses to run as one of several ranks
  $BPGEN "$T/dp.spec" -D V=6 -D B=3 --dtype f64 --trainer -o "$T/dpt.c"
  $BPGEN "$T/dp.spec" -D V=6 -D B=6 --dtype f64 --trainer -o "$T/dpt1.c"
  TA="--data $W --steps 200 --lr-schedule constant --eval-every 50 --samples 3 --quiet"
  t "mpi: trainer builds with mpicc" 0 "" mpicc -O1 -DBP_MPI -o "$T/dpt" "$T/dpt.c" -lm -lpthread
  t "mpi: 1-process trainer builds" 0 "" gcc -O1 -o "$T/dpt1" "$T/dpt1.c" -lm -lpthread
  "$T/dpt1" $TA --log "$T/dpt1.csv" >/dev/null 2>&1
  t "mpi: trainer, 2 ranks"         0 "train loss" $MPI -np 2 "$T/dpt" $TA --log "$T/dpt2.csv"
  t "mpi: trainer, 2 ranks = 1"     0 "max" close "$T/dpt1.csv" "$T/dpt2.csv" 1e-12
  t "mpi: trainer without MPI refuses" 1 "built without MPI: each rank would train alone" \
    $MPI -np 2 "$T/dpt1" $TA
  # --sync-bn (SyncBatchNorm): a batchnorm's batch mean and variance over all
  # N*B rows, so N ranks of batch B train as one process of batch N*B does
  # (without --sync-bn: each rank's own statistics, which differ); the lecture's
  # spec and a chain of batchnorms (tests/fixtures/bnchain.spec), the dev
  # losses after the split calibration included
  BC=${BPGEN_FIXTURES:-tests/fixtures}/bnchain.spec
  for sp in "$SPECS/makemore.spec" "$BC"; do
    nm=$(basename "$sp" .spec)
    SB="$BPGEN run $sp --data $W --steps 40 --lr-schedule constant --eval-every 10 --samples 3 --quiet --dtype f64"
    $SB -D B=6 --log "$T/sb1.csv" >"$T/sb1.out" 2>&1
    $MPI -np 2 $SB -D B=3 --sync-bn --log "$T/sb2.csv" >"$T/sb2.out" 2>&1
    t "mpi: --sync-bn, $nm, 2 ranks = 1 of batch 2B (f64)" 0 "max" close "$T/sb1.csv" "$T/sb2.csv" 1e-12
    $MPI -np 3 $SB -D B=2 --sync-bn --log "$T/sb3.csv" >/dev/null 2>&1
    t "mpi: --sync-bn, $nm, 3 ranks = 1 of batch 3B (f64)" 0 "max" close "$T/sb1.csv" "$T/sb3.csv" 1e-12
    grep -v '^model:' "$T/sb1.out" >"$T/sbo1"
    grep -v '^model:' "$T/sb2.out" >"$T/sbo2"
    t "mpi: --sync-bn, $nm, results as 1 process" 0 "" cmp "$T/sbo1" "$T/sbo2"
    $MPI -np 2 $SB -D B=3 --log "$T/sbp.csv" >/dev/null 2>&1
    t "mpi: $nm without --sync-bn: per-rank statistics differ" 1 "max" close "$T/sb1.csv" "$T/sbp.csv" 1e-3
  done
  SB="$BPGEN run $SPECS/makemore.spec --data $W --steps 40 --lr-schedule constant --eval-every 10 --samples 0 --quiet"
  $SB -D B=6 --log "$T/sf1.csv" >/dev/null 2>&1
  $MPI -np 2 $SB -D B=3 --sync-bn --log "$T/sf2.csv" >/dev/null 2>&1
  t "mpi: --sync-bn, 2 ranks = 1 of batch 2B (f32)" 0 "max" close "$T/sf1.csv" "$T/sf2.csv" 2e-6
  # a batch one process runs as a fused batchnorm layer (bp_bnlayer_*, N*D >=
  # 65536): --sync-bn runs it node by node
  SB="$BPGEN run $SPECS/makemore.spec --data $W --steps 4 --lr-schedule constant --samples 0 --quiet --dtype f64 -D H=128"
  $SB -D B=512 --log "$T/sl1.csv" >/dev/null 2>&1
  $MPI -np 2 $SB -D B=256 --sync-bn --log "$T/sl2.csv" >/dev/null 2>&1
  t "mpi: --sync-bn, a fused layer's batch (f64)" 0 "max" close "$T/sl1.csv" "$T/sl2.csv" 1e-12
  # the calibration is split over the ranks: each batchnorm's sums merged once
  # (bnchain: 4 batchnorms, one calibration), and the dev loss that follows is
  # one process's (the logs above)
  t "mpi: calibration split over the ranks" 0 "batchnorm +4 calls" \
    $MPI -np 2 $BPGEN run "$BC" --data "$W" -D B=3 --steps 3 --samples 0 --comm-stats
  t "mpi: --comm-stats: the gradients' allreduce" 0 "gradients +3 calls +4328 bytes each" \
    $MPI -np 2 $BPGEN run "$BC" --data "$W" -D B=3 --steps 3 --samples 0 --comm-stats
  # the --trainer program generated with --sync-bn, built with mpicc
  $BPGEN "$BC" -D V=6 -D B=3 --dtype f64 --trainer --sync-bn -o "$T/sbt.c"
  $BPGEN "$BC" -D V=6 -D B=6 --dtype f64 --trainer -o "$T/sbt1.c"
  TS="--data $W --steps 40 --lr-schedule constant --eval-every 10 --samples 0 --quiet"
  t "mpi: --sync-bn trainer builds with mpicc" 0 "" mpicc -O1 -DBP_MPI -o "$T/sbt" "$T/sbt.c" -lm -lpthread
  t "mpi: bnchain trainer builds" 0 "" gcc -O1 -o "$T/sbt1" "$T/sbt1.c" -lm -lpthread
  "$T/sbt1" $TS --log "$T/sbt1.csv" >/dev/null 2>&1
  $MPI -np 2 "$T/sbt" $TS --sync-bn --log "$T/sbt2.csv" >/dev/null 2>&1
  t "mpi: --sync-bn trainer, 2 ranks = 1" 0 "max" close "$T/sbt1.csv" "$T/sbt2.csv" 1e-12
  t "mpi: --sync-bn needs a model made for it" 1 "model bnchain was generated without it" \
    "$T/sbt1" $TS --sync-bn
  t "mpi: --sync-bn without batchnorm" 1 "--sync-bn: model dp has no batchnorm" \
    $BPGEN run "$T/dp.spec" --data "$W" --steps 1 --sync-bn
  t "mpi: --sync-bn and --mine" 1 "--sync-bn and --mine" \
    $BPGEN run "$SPECS/makemore.spec" --data "$W" --steps 1 --sync-bn --mine /dev/null
fi
# ---- end of issue 17 (MPI) -----------------------------------------------------------

# ---- issue 15 (learner's kit II: run --mine, --rng torch, explain, dot) -----------------
W=${BPGEN_TESTS:-tests}/fixtures/words10.txt
case $W in /*) ;; *) W=$(pwd)/$W ;; esac
F=${BPGEN_FIXTURES:-tests/fixtures}
G=$SPECS/makemore_granular.spec
L="$T/learn"
mkdir -p "$L"
# run --mine with a right backward: the losses of the generated trainer, to
# float rounding (the learner's loops sum in another order than bpgen's
# kernels): within 1e-5 of the loss in f32, 1e-12 in f64; the loss lines equal
lossdiff() {  # lossdiff A.csv B.csv: the largest |loss A - loss B| / loss A over the steps
  awk -F, 'FNR == 1 { next } NR == FNR { a[$1] = $2; next }
    { d = $2 - a[$1]; if (d < 0) d = -d; d /= a[$1]; if (d > m) m = d; n++ }
    END { printf "%d steps, max relative difference %g\n", n, m }' "$1" "$2"
}
for dt in f32 f64; do
  $BPGEN run $G --dtype $dt --data "$W" --steps 300 --print-every 50 --samples 0 \
    --log "$L/gen_$dt.csv" >"$L/gen_$dt.out" 2>&1
  t "run --mine right $dt"  0 "train loss" $BPGEN run $G --dtype $dt --data "$W" --steps 300 \
    --print-every 50 --samples 0 --mine $F/ninja_ex1_ok.c --log "$L/mine_$dt.csv"
  cp "$T/log" "$L/mine_$dt.out"
  lossdiff "$L/gen_$dt.csv" "$L/mine_$dt.csv" >"$L/diff_$dt"
  grep -E '^ +[0-9]+/ +[0-9]+: |^(train|dev) loss' "$L/gen_$dt.out" >"$L/lines_gen_$dt"
  grep -E '^ +[0-9]+/ +[0-9]+: |^(train|dev) loss' "$L/mine_$dt.out" >"$L/lines_mine_$dt"
  t "run --mine $dt: same loss lines" 0 "" cmp "$L/lines_gen_$dt" "$L/lines_mine_$dt"
  t "run --mine $dt: 300 losses compared" 0 "^300 steps" cat "$L/diff_$dt"
done
t "run --mine f32: losses within 1e-5" 0 "" awk '{ exit !($NF <= 1e-5) }' "$L/diff_f32"
t "run --mine f64: losses within 1e-12" 0 "" awk '{ exit !($NF <= 1e-12) }' "$L/diff_f64"
t "run --mine lines printed" 0 "" test -s "$L/lines_mine_f32"
# the lecture's Exercise 4 on the fused spec (a batchnorm op: calibrated for the
# evaluation, as the lecture does): the learner's whole backward trains as
# bpgen's does, loss lines and final losses equal
$BPGEN run $M --data "$W" --steps 300 --print-every 50 --samples 0 --log "$L/gen4.csv" >"$L/gen4.out" 2>&1
t "run --mine exercise 4"   0 "train loss" $BPGEN run $M --data "$W" --steps 300 --print-every 50 --samples 0 \
  --mine $F/ninja_ex4_ok.c --log "$L/mine4.csv"
cp "$T/log" "$L/mine4.out"
lossdiff "$L/gen4.csv" "$L/mine4.csv" >"$L/diff4"
grep -E '^ +[0-9]+/ +[0-9]+: |^(train|dev) loss' "$L/gen4.out" >"$L/lines_gen4"
grep -E '^ +[0-9]+/ +[0-9]+: |^(train|dev) loss' "$L/mine4.out" >"$L/lines_mine4"
t "run --mine exercise 4: same lines" 0 "" cmp "$L/lines_gen4" "$L/lines_mine4"
t "run --mine exercise 4: within 1e-5" 0 "^300 steps" awk '$NF <= 1e-5' "$L/diff4"
# wrong ones stop at step 0, naming the tensor, its line and the hint
t "run --mine wrong stops"  1 "step 0: your backward\(\) left the tolerance.*dbndiff2 is the first wrong" \
  $BPGEN run $G --data "$W" --steps 300 --samples 0 --mine $F/ninja_ex1_offbyone.c
t "run --mine wrong: hint"  1 "hint: yours is the right dbndiff2 × \(B − 1\)/B" \
  $BPGEN run $G --data "$W" --steps 300 --samples 0 --mine $F/ninja_ex1_offbyone.c
t "run --mine wrong: line"  1 "ninja_ex1_offbyone.c:[0-9]+: dbndiff2" \
  $BPGEN run $G --data "$W" --steps 300 --samples 0 --mine $F/ninja_ex1_offbyone.c
t "run --mine wrong: no training after" 0 "^stopped$" sh -c "if $BPGEN run $G --data '$W' --steps 300 \
  --samples 0 --mine $F/ninja_ex1_offbyone.c >'$L/w.out' 2>&1; then echo ran; elif grep -Eq '^ +50/|^train loss' \
  '$L/w.out'; then echo trained; else echo stopped; fi"
t "run --mine += without ZERO" 1 "\+=. into dC without zeroing it first" \
  $BPGEN run $G --data "$W" --steps 300 --samples 0 --mine $F/ninja_ex1_nozero.c
t "run --mine keepdim"      1 "you declared dbnmeani \[64\] but it is \[1, 64\]" \
  $BPGEN run $G --data "$W" --steps 300 --samples 0 --mine $F/ninja_ex1_keepdim.c
t "run --mine must fill params" 1 "must fill the gradient of every param; it declares no dC, dW1" \
  $BPGEN run $G --data "$W" --steps 300 --samples 0 --mine $F/ninja_ex2_ok.c
# a crash names the array and the step; a hang is stopped after 10 s, at its step
sed 's/dC\[X\[i\]\[t\]\]\[e\] +=/dC[X[i][t] + 5 * V][e] +=/' $F/ninja_ex1_ok.c >"$L/oob.c"
t "run --mine out of bounds" 1 "oob.c: backward\(\) read past the end of dC.*\(at step 0\)" \
  $BPGEN run $G --data "$W" --steps 300 --samples 0 --mine "$L/oob.c"
sed 's/^void backward(void) {/void backward(void) { static int calls; if (++calls > 5) for (;;) {}/' \
  $F/ninja_ex1_ok.c >"$L/hang.c"
t "run --mine hang"         1 "hang.c: backward\(\) did not return within 10 seconds.*\(at step 4\)" \
  $BPGEN run $G --data "$W" --steps 300 --samples 0 --mine "$L/hang.c"
t "run --tol without --mine" 1 "run: --tol is --mine's tolerance" $BPGEN run $G --data "$W" --tol 1e-3
# --rng torch: params and batches bit for bit against PyTorch (tools/torch_rng.py,
# each of ATen's two normal kernels), when torch imports; H = 7 takes the small
# tensors' path (normal_distribution<double>, its cached second normal)
t "run --rng bad"           1 "run: --rng frob: give torch or torch-scalar" $BPGEN run $G --data "$W" --rng frob
t "run --torch-global alone" 1 "run: --torch-global needs --rng torch" $BPGEN run $G --data "$W" --torch-global bngain
t "run --torch-global no param" 1 "the spec has no param 'frob'" \
  $BPGEN run $G --data "$W" --rng torch --torch-global bngain,frob
t "run --rng torch --resume" 1 "does not continue a checkpoint" $BPGEN run $G --data "$W" --rng torch --resume
$BPGEN run $G --data "$W" --rng torch --steps 3 --samples 0 --quiet --save "$L/a.npz" >/dev/null 2>&1
$BPGEN run $G --data "$W" --steps 3 --samples 0 --quiet --save "$L/b.npz" >/dev/null 2>&1
t "run --rng torch draws other params" 1 "" cmp -s "$L/a.npz" "$L/b.npz"
TR=${BPGEN_TOOLS:-tools}/torch_rng.py
if [ -x "$TR" ]; then
  "$TR" --bpgen "$BPGEN" --spec $G --data "$W" >"$L/rng.out" 2>&1
  case $? in
    2) echo "driver: skipped: --rng torch against PyTorch ($(tail -1 "$L/rng.out"))" ;;
    *) t "torch_rng H=64 bit for bit" 0 "torch_rng: all equal" cat "$L/rng.out"
       t "torch_rng H=7 one generator" 0 "torch_rng: all equal" \
         "$TR" --bpgen "$BPGEN" --spec $G --data "$W" -H 7 --same-generator ;;
  esac
fi
# explain: gather's remark in the spec's own names, constants as fractions;
# --expand names the pieces as the lecture does
printf 'dim B = 32\ndim V = 27\ndim D = 5\ninput tok : int[B]\ninput Y : int[B]\nparam Emb : [V, D] ~ randn\nparam W : [D, V] ~ randn * 0.1\ne = Emb[tok]\nv = sum(e ^ 2, 0) * (1 / (B - 1)) @ W\nlogits = e @ W + v\nloss = cross_entropy(logits, Y)\n' >"$L/names.spec"
t "explain gather in the spec's names" 0 "As a loop: for every position p of tok: dEmb\[tok\[p\]\] \+= de\[p\]" \
  $BPGEN explain "$L/names.spec"
t "explain gather one-hot in its names" 0 "dEmb = onehot\(tok\)ᵀ · de\." $BPGEN explain "$L/names.spec"
t "explain 1/31"             0 "1/31·d\(sum_b" $BPGEN explain "$L/names.spec"
t "explain 1/32"             0 "\+= 1/32·d\(mean_all" $BPGEN explain $G
t "explain --expand bnvar_inv" 0 "dbnvar_inv +\+= Σ_b \(dbnraw ⊙ bndiff\)" $BPGEN explain $SPECS/makemore.spec --expand
t "explain --expand counts_sum_inv" 0 "dcounts_sum_inv +\+= Σ_j \(dprobs ⊙ counts\)" \
  $BPGEN explain $SPECS/makemore.spec --expand
t "explain --expand: no t<id>" 1 "" sh -c "$BPGEN explain $SPECS/makemore.spec --expand | grep -E '[ (]t[0-9]+'"
# run: a bigram with X : int[B] (a context of one token); errors name the input
printf 'dim B = 32\ndim V = 27\ninput X : int[B]\ninput Y : int[B]\nparam W : [V, V] ~ randn\nlogits = W[X]\nloss = cross_entropy(logits, Y)\n' >"$L/bigram1.spec"
t "run bigram X : int[B]"   0 "train loss [0-9.]+" $BPGEN run "$L/bigram1.spec" --data "$W" --steps 50 --samples 2
t "run bigram context 1"    0 "batch 32, context 1" $BPGEN run "$L/bigram1.spec" --data "$W" --steps 5 --samples 0
printf 'dim B = 32\ndim V = 27\ninput X : int[B]\ninput Y : int[B]\ninput Z : int[B]\nparam W : [V, V] ~ randn\nlogits = W[X] + 0 * W[Z]\nloss = cross_entropy(logits, Y)\n' >"$L/three.spec"
t "run names the extra input" 1 "input Z is int\[32\]: the words trainer feeds" $BPGEN run "$L/three.spec" --data "$W"
printf 'dim B = 32\ndim V = 27\ninput X : int[B]\nparam W : [V, V] ~ randn\nlogits = W[X]\nloss = cross_entropy(logits, X)\n' >"$L/one.spec"
t "run one input"           1 "model one has one input: the words trainer needs two int inputs" \
  $BPGEN run "$L/one.spec" --data "$W"
# ---- end of issue 15 -------------------------------------------------------------------

# ---- issue 16: command line, predict, sample (helper "cli") --------------------------
C=$T/cli
mkdir -p "$C"
NPT="$(cd "$(dirname "$0")" && pwd)/npytool.py"
HAVE_PY=false
command -v python3 >/dev/null && HAVE_PY=true
# --opt=value is --opt value, for bpgen's options and the trainer's
$BPGEN check $M -D H=8 --seed 7 >"$C/seed_sp" 2>&1
t "--seed=7 is --seed 7"     0 "" sh -c "$BPGEN check $M -D H=8 --seed=7 2>&1 | cmp -s - '$C/seed_sp'"
t "-D then --dtype=f64"      0 "check .*\(f64\)" $BPGEN check $M -D H=8 --dtype=f64
t "run --steps=3 --data=W"   0 "^train loss" $BPGEN run $M -D H=8 --data=$W --steps=3 --samples=0 --quiet
t "a flag given a value"     2 "^bpgen: error: run: --quiet takes no value \('--quiet=1'" \
  $BPGEN run $M -D H=8 --data $W --quiet=1
t "gen --prefix=NAME"        0 "" $BPGEN $M --prefix=mm -o "$C/mm.c"
t "--prefix= took the name"  0 "mm_forward" cat "$C/mm.h"
$BPGEN $M -D H=8 -D V=6 --trainer -o "$C/train.c" &&
  gcc -std=c99 -O1 -o "$C/train" "$C/train.c" -lm -lpthread 2>"$C/gcc.log"
t "gcc trainer: --steps=3"   0 "^train loss" "$C/train" --data="$W" --steps=3 --samples=2 --quiet
t "gcc trainer: --quiet=1"   2 "^bpgen: error: --quiet takes no value" "$C/train" --data "$W" --quiet=1
# usage errors exit 2 with one "bpgen: error:" prefix; failures exit 1
one_prefix() {  # one_prefix STATUS CMD...: CMD exits STATUS and prints exactly one error line
  op_want=$1; shift
  "$@" >"$C/out" 2>&1
  op_st=$?
  op_n=$(grep -c 'error:' "$C/out")
  op_p=$(grep -c '^bpgen: error: ' "$C/out")
  [ "$op_st" -eq "$op_want" ] && [ "$op_n" -eq 1 ] && [ "$op_p" -eq 1 ] ||
    { cat "$C/out"; echo "status $op_st"; return 1; }
}
t "unknown option: 2"        0 "" one_prefix 2 $BPGEN check $M --frob
t "missing value: 2"         0 "" one_prefix 2 $BPGEN check $M --tol
t "bad value: 2"             0 "" one_prefix 2 $BPGEN check $M --tol abc
t "bad -D: 2"                0 "" one_prefix 2 $BPGEN check $M -D H
t "trainer bad value: 2"     0 "" one_prefix 2 $BPGEN run $M -D H=8 --data $W --steps 1x
t "trainer unknown value: 2" 0 "" one_prefix 2 $BPGEN run $M -D H=8 --data $W --optimizer sgdd
t "gcc trainer unknown: 2"   0 "" one_prefix 2 "$C/train" --data "$W" --frob 1
t "gcc trainer no value: 2"  0 "" one_prefix 2 "$C/train" --data "$W" --steps
t "no arguments: 2"          2 "^usage: bpgen" $BPGEN
t "missing data file: 1"     0 "" one_prefix 1 $BPGEN run $M -D H=8 --data "$C/nonexistent.txt"
t "spec error: 1"            1 "error: " $BPGEN check "$C/nonexistent.spec"
t "predict without --load: 2" 0 "" one_prefix 2 $BPGEN predict $SPECS/classify.spec --data-x x.npy
t "sample unknown option: 2" 0 "" one_prefix 2 $BPGEN sample $M --load x.npz --argmax
# a data file whose shape does not fit names the -D that would
npy "$C/x20.npy" '<f4' '(2, 20)' "$(printf '%0160d' 0 | sed 's/0/\\000/g')"
t "shape mismatch: try -D F=20" 2 "x20.npy: shape \(2, 20\) does not match input X \(32, 2\): expected \(N, 2\) for N examples; try -D F=20$" \
  $BPGEN run $SPECS/classify.spec --data-x "$C/x20.npy"
t "predict: try -D F=20"     2 "try -D F=20$" \
  $BPGEN predict $SPECS/classify.spec --load "$C/none.npz" --data-x "$C/x20.npy"
t "-D F=20 then fits"        1 "no such file|cannot open" \
  $BPGEN predict $SPECS/classify.spec -D F=20 --load "$C/none.npz" --data-x "$C/x20.npy"
npy "$C/x3d.npy" '<f4' '(2, 4, 3)' "$(printf '%096d' 0 | sed 's/0/\\000/g')"
t "no single dim fits: no hint" 2 "does not match input x \(16, 2, 8\): expected \(N, 2, 8\) for N examples$" \
  $BPGEN run $SPECS/mlp_relu.spec --data-x "$C/x3d.npy" --data-y "$C/x3d.npy"
# sample: a word model's checkpoint gives the run's own words, deterministic
# for a seed, only characters of the vocabulary
$BPGEN run $M -D H=8 --data $W --steps 200 --samples 6 --save "$C/m.npz" --quiet 2>/dev/null |
  sed -n '/^dev loss/,$p' | sed 1d >"$C/run_words"
t "run printed 6 words"      0 "" test "$(wc -l <"$C/run_words")" -eq 6
$BPGEN sample $M -D H=8 --load "$C/m.npz" -n 6 >"$C/s1" 2>/dev/null
t "sample = the run's words" 0 "" cmp "$C/run_words" "$C/s1"
$BPGEN sample $M -D H=8 --load="$C/m.npz" -n 6 --seed=5 >"$C/s2" 2>/dev/null
$BPGEN sample $M -D H=8 --load "$C/m.npz" -n 6 --seed 5 >"$C/s3" 2>/dev/null
t "sample: same seed, same words" 0 "" cmp "$C/s2" "$C/s3"
t "sample: other seed, other words" 1 "" cmp -s "$C/s1" "$C/s2"
vocab=$(tr -d '\n' <"$W" | fold -w1 | sort -u | tr -d '\n')
t "sample: vocabulary only"  1 "" grep -vE "^[$vocab]+(\.|\.\.\.)$" "$C/s2"
t "sample: 6 words"          0 "" test "$(wc -l <"$C/s2")" -eq 6
TD="-D B=3 -D T=8 -D C=12 -D NH=3"
$BPGEN run $SPECS/transformer.spec $TD --data $W --steps 30 --samples 4 --save "$C/t.npz" --quiet 2>/dev/null |
  sed -n '/^test loss/,$p' | sed 1d >"$C/run_seq"
t "sequences: sample = run"  0 "" sh -c "$BPGEN sample $SPECS/transformer.spec $TD --load '$C/t.npz' -n 4 2>/dev/null | cmp -s - '$C/run_seq'"
t "sequences: 4 words"       0 "" test "$(wc -l <"$C/run_seq")" -eq 4
for i in 1 2 3 4 5 6; do printf 'hello world\nthe cat sat on the mat\n'; done >"$C/h.txt"
$BPGEN run $SPECS/transformer.spec $TD --text "$C/h.txt" --steps 30 --sample-len 40 --save "$C/s.npz" --quiet \
  2>/dev/null | sed -n '/^sample:/,$p' >"$C/run_text"
t "stream: sample = run"     0 "" sh -c "$BPGEN sample $SPECS/transformer.spec $TD --load '$C/s.npz' -n 40 2>/dev/null | cmp -s - '$C/run_text'"
sed 1d "$C/run_text" >"$C/run_text1"
t "stream: 40 bytes sampled" 0 "" test "$(wc -c <"$C/run_text1")" -eq 41   # and the final newline
t "stream: the text's bytes only" 1 "" grep -q '[^helo wrdtcasmn]' "$C/run_text1"
t "sample: V from the checkpoint" 0 "note: V = 6 from .*m.npz" $BPGEN sample $M -D H=8 --load "$C/m.npz" -n 1
if $HAVE_PY; then
  # predict: 45 rows (not a multiple of B = 32) in f64; the logits against
  # the reference runtime on the checkpoint's params, rows 0..31 and 13..44
  python3 "$NPT" blobs 300 2 3 "$C/X.npy" "$C/Y.npy"
  python3 "$NPT" rows "$C/X.npy" 0 45 "$C/X45.npy"
  python3 "$NPT" rows "$C/Y.npy" 0 45 "$C/Y45.npy"
  CL=$SPECS/classify.spec
  t "classify trains (f64)"  0 "^train loss" $BPGEN run $CL --dtype f64 --data-x "$C/X.npy" --data-y "$C/Y.npy" \
    --steps 300 --quiet --save "$C/c.npz"
  t "predict 45 rows"        0 "^loss [0-9.]+$" $BPGEN predict $CL --dtype f64 --load "$C/c.npz" \
    --data-x "$C/X45.npy" --data-y "$C/Y45.npy" -o "$C/p45.npy"
  for r in 0 13; do
    mkdir -p "$C/in$r"
    python3 "$NPT" unzip "$C/c.npz" "$C/in$r"
    python3 "$NPT" rows "$C/X45.npy" $r 32 "$C/in$r/X.npy"
    python3 "$NPT" rows "$C/Y45.npy" $r 32 "$C/in$r/Y.npy"
    $BPGEN grad $CL --ref --dtype f64 --in "$C/in$r" --out "$C/ref$r" >/dev/null
    t "predict = reference, rows $r.." 0 "max rel diff" python3 "$NPT" close "$C/p45.npy" "$C/ref$r/logits.npy" $r 1e-12
  done
  t "predict wrote 45 rows"  0 "'shape': \(45, 3\)" head -c 128 "$C/p45.npy"
  # loss and accuracy against a cross-entropy computed in Python from the logits
  $BPGEN predict $CL --dtype f64 --load "$C/c.npz" --data-x "$C/X45.npy" --data-y "$C/Y45.npy" 2>&1 |
    sed -nE 's/^loss ([0-9.]+)$/loss \1/p; s/^accuracy ([0-9.]+) .*/accuracy \1/p' | paste -sd' ' >"$C/pl"
  t "predict loss, accuracy = python" 0 "" sh -c "python3 '$NPT' ce '$C/p45.npy' '$C/Y45.npy' | cmp -s - '$C/pl'"
  t "predict --argmax"       0 "agrees" sh -c "$BPGEN predict $CL --dtype=f64 --load '$C/c.npz' --data-x '$C/X45.npy' \
    --argmax -o '$C/a45.npy' && python3 '$NPT' argmax '$C/p45.npy' '$C/a45.npy'"
  t "predict -o - = -o FILE" 0 "" sh -c "$BPGEN predict $CL --dtype f64 --load '$C/c.npz' --data-x '$C/X45.npy' \
    -o - 2>/dev/null | cmp -s - '$C/p45.npy'"
  t "predict --data-x -"     0 "" sh -c "$BPGEN predict $CL --dtype f64 --load '$C/c.npz' --data-x - \
    -o '$C/stdin.npy' <'$C/X45.npy' && cmp '$C/stdin.npy' '$C/p45.npy'"
  t "predict 1 row"          0 "'shape': \(1, 3\)" sh -c "python3 '$NPT' rows '$C/X.npy' 7 1 '$C/X1.npy' &&
    $BPGEN predict $CL --dtype f64 --load '$C/c.npz' --data-x '$C/X1.npy' -o '$C/p1.npy' && head -c 128 '$C/p1.npy'"
  t "predict 1 row = row 7"  0 "max rel diff" python3 "$NPT" close "$C/p45.npy" "$C/p1.npy" 7 1e-12
  # --json: one object on stdout at full precision, agreeing with the text
  jq_() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(sys.argv[2] % tuple(d[k] for k in sys.argv[3:]))' "$@"; }
  $BPGEN predict $CL --dtype f64 --load "$C/c.npz" --data-x "$C/X45.npy" --data-y "$C/Y45.npy" --json \
    >"$C/pj" 2>"$C/pt"
  t "predict --json parses"  0 "^45$" jq_ "$C/pj" "%d" rows
  jq_ "$C/pj" "loss %.6f accuracy %.6f" loss accuracy >"$C/pjt"
  t "predict --json = text"  0 "" cmp "$C/pjt" "$C/pl"
  t "predict --json %.17g"   0 "\"loss\": [0-9]\.[0-9]{15,}" cat "$C/pj"
  $BPGEN run $CL --dtype f64 --data-x "$C/X.npy" --data-y "$C/Y.npy" --dev-x "$C/X45.npy" --dev-y "$C/Y45.npy" \
    --steps 50 --quiet --json >"$C/rj" 2>"$C/rt"
  t "run --json parses"      0 "^50 classify$" jq_ "$C/rj" "%d %s" steps model
  grep -E '^(train|dev) loss' "$C/rt" | paste -sd' ' >"$C/rtt"
  jq_ "$C/rj" "train loss %.4f dev loss %.4f" train_loss dev_loss >"$C/rjt"
  t "run --json = text"      0 "" cmp "$C/rjt" "$C/rtt"
  t "run --json: no test split" 0 "^None$" jq_ "$C/rj" "%s" test_loss
  $BPGEN check $M -D H=8 --json >"$C/cj" 2>"$C/ct"
  t "check --json parses"    0 "^True 0$" jq_ "$C/cj" "%s %d" pass failed
  grep '^loss: generated' "$C/ct" >"$C/ctt"
  python3 -c 'import json,sys; d=json.load(open(sys.argv[1]))["loss"]; print("loss: generated %.9g, reference %.9g" % (d["generated"], d["reference"]))' \
    "$C/cj" >"$C/cjt"
  t "check --json = text"    0 "" cmp "$C/cjt" "$C/ctt"
  python3 -c 'import json,sys; print("\n".join(g["name"] for g in json.load(open(sys.argv[1]))["gradients"]))' "$C/cj" >"$C/cjn"
  sed -nE 's/^(d[A-Za-z0-9_.]+) +\|.*/\1/p' "$C/ct" >"$C/ctn"
  t "check --json rows = table" 0 "" cmp "$C/cjn" "$C/ctn"
fi
# man page and completion know predict and sample
MANSRC=$(cd "$(dirname "$0")/.." && pwd)/doc/bpgen.1
for c in predict sample; do
  awk -v h=".SS \"bpgen $c " '/^\.S[HS] /{ on = index($0, h) > 0 } on' "$MANSRC" |
    sed -e 's/\\f[BIRP]//g' -e 's/\\-/-/g' -e 's/\\&//g' >"$C/man.$c"
  t "man has $c's options"   0 "^ *$" missing_in "$C/man.$c" $(help_opts $BPGEN $c)
done
if command -v bash >/dev/null; then
  COMPSRC=$(cd "$(dirname "$0")/.." && pwd)/completion/bpgen.bash
  ccomp() { bash -c '. "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _bpgen; printf "%s\n" "${COMPREPLY[@]}"' comp "$COMPSRC" "$@"; }
  for c in predict sample check run; do
    ccomp bpgen $c - >"$C/comp.$c"
    t "completion has $c's options" 0 "^ *$" missing_in "$C/comp.$c" $(long_opts $BPGEN $c)
  done
fi
# ---- end of issue 16 (command line, predict, sample) ----------------------------------
# ---- issue 12/13: llm.c's GPT-2 checkpoints and parity ---------------------------------
L=$T/llmc
mkdir -p "$L"
G2=$SPECS/gpt2.spec
le32() { printf "\\$(printf %03o $(($1 & 255)))\\$(printf %03o $((($1 >> 8) & 255)))\\$(printf %03o $((($1 >> 16) & 255)))\\$(printf %03o $((($1 >> 24) & 255)))"; }
# patch FILE OFFSET INT32: overwrite one little-endian int32 in place
patch32() { le32 "$3" | dd of="$1" bs=1 seek="$2" conv=notrunc 2>/dev/null; }
{ le32 20240520; le32 1; le32 17; head -c 1012 /dev/zero; i=0
  while [ $i -lt 17 ]; do printf "\\$(printf %03o $((i % 11)))\\000"; i=$((i + 1)); done; } >"$L/tok.bin"
GD="-D B=2 -D T=8 -D maxT=8 -D V=11 -D Vp=16 -D L=1 -D NH=2 -D C=16"
t "llmc: --save .bin"       0 "^train loss" $BPGEN run $G2 $GD --data-tokens "$L/tok.bin" --steps 0 --sample-len 0 --save "$L/a.bin"
# 1024 + 4 * (Vp C + maxT C + L (12 C^2 + 13 C) + 2 C) = 1024 + 4 * 3696
t "llmc: file size"         0 "^15808$" wc -c <"$L/a.bin"
t "llmc: header 0-3"        0 "^ *20240326 +3 +8 +11$" od -A n -t d4 -N 16 "$L/a.bin"
t "llmc: header 4-7"        0 "^ *1 +2 +16 +16$" od -A n -t d4 -j 16 -N 16 "$L/a.bin"
t "llmc: header rest 0"     0 "" sh -c 'tail -c +33 "$1" | head -c 992 | cmp -s -n 992 - /dev/zero' sh "$L/a.bin"
t "llmc: --load sets dims"  0 "model: gpt2, 3696 parameters" $BPGEN run $G2 -D B=2 -D T=8 --data-tokens "$L/tok.bin" --steps 1 --sample-len 0 --load "$L/a.bin"
t "llmc: --load note"       0 "a.bin: llm.c's checkpoint: params only \(3696\)" $BPGEN run $G2 -D B=2 -D T=8 --data-tokens "$L/tok.bin" --steps 1 --sample-len 0 --load "$L/a.bin"
$BPGEN run $G2 -D B=2 -D T=8 --seed 5 --data-tokens "$L/tok.bin" --steps 0 --sample-len 0 --load "$L/a.bin" --save "$L/b.bin" >/dev/null 2>&1
t "llmc: load+save same bytes" 0 "" cmp "$L/a.bin" "$L/b.bin"
t "llmc: -D disagrees"      1 "bpgen: error: .*a.bin: the checkpoint has C = 16 but -D C=32 was given" $BPGEN run $G2 -D C=32 --data-tokens "$L/tok.bin" --load "$L/a.bin"
t "llmc: -D agrees"         0 "^train loss" $BPGEN run $G2 $GD --data-tokens "$L/tok.bin" --steps 0 --sample-len 0 --load "$L/a.bin"
head -c 100 "$L/a.bin" >"$L/short.bin"
t "llmc: truncated header"  1 "short.bin: truncated llm.c checkpoint: 100 bytes, its header alone is 1024" $BPGEN run $G2 -D B=2 -D T=8 --data-tokens "$L/tok.bin" --load "$L/short.bin"
head -c 15000 "$L/a.bin" >"$L/cut.bin"
t "llmc: truncated params"  1 "cut.bin: truncated llm.c checkpoint: the header's dims \(maxT 8, V 11, L 1, NH 2, C 16, Vp 16\) make 3696 params, 15808 bytes with the header, but the file has 15000 bytes" $BPGEN run $G2 -D B=2 -D T=8 --data-tokens "$L/tok.bin" --load "$L/cut.bin"
{ cat "$L/a.bin"; printf x; } >"$L/long.bin"
t "llmc: extra bytes"       1 "long.bin: llm.c checkpoint with extra bytes" $BPGEN run $G2 -D B=2 -D T=8 --data-tokens "$L/tok.bin" --load "$L/long.bin"
cp "$L/a.bin" "$L/v5.bin"; patch32 "$L/v5.bin" 4 5
t "llmc: version 5"         1 "v5.bin: llm.c checkpoint version 5: only version 3 \(fp32 params\) is read" $BPGEN run $G2 -D B=2 -D T=8 --data-tokens "$L/tok.bin" --load "$L/v5.bin"
cp "$L/a.bin" "$L/neg.bin"; patch32 "$L/neg.bin" 24 -16
t "llmc: negative C"        1 "neg.bin: the header's C \(int 6\) is -16: every dim must be positive" $BPGEN run $G2 -D B=2 -D T=8 --data-tokens "$L/tok.bin" --load "$L/neg.bin"
cp "$L/a.bin" "$L/big.bin"; patch32 "$L/big.bin" 16 2147483647
t "llmc: huge L"            1 "big.bin: the header's dims make more than 2\^40 params" $BPGEN run $G2 -D B=2 -D T=8 --data-tokens "$L/tok.bin" --load "$L/big.bin"
cp "$L/a.bin" "$L/nan.bin"; patch32 "$L/nan.bin" 1028 2143289344
t "llmc: NaN param"         1 "nan.bin: wte holds a non-finite value \(element 1\)" $BPGEN run $G2 -D B=2 -D T=8 --data-tokens "$L/tok.bin" --load "$L/nan.bin"
head -c 2 "$L/a.bin" >"$L/two.bin"
t "llmc: 2 bytes: not llm.c" 1 "two.bin: not a checkpoint" $BPGEN run $G2 -D B=2 -D T=8 --data-tokens "$L/tok.bin" --load "$L/two.bin"
t "llmc: token file as model" 1 "tok.bin: not a checkpoint" $BPGEN run $G2 -D B=2 -D T=8 --data-tokens "$L/tok.bin" --load "$L/tok.bin"
t "llmc: other model loads"  1 "a.bin: wte is \(16, 16\) in the checkpoint.s layout but \(11, 16\) in model transformer" $BPGEN run $SPECS/transformer.spec -D B=2 -D T=8 --data-tokens "$L/tok.bin" --load "$L/a.bin"
t "llmc: other model saves"  1 "x.bin: model transformer has no dim maxT, which llm.c's header needs" $BPGEN run $SPECS/transformer.spec -D B=2 -D T=8 -D V=11 --data-tokens "$L/tok.bin" --save "$L/x.bin"
t "llmc: nothing trained"   1 "" test -e "$L/x.bin"
t "llmc: --help says .bin"  0 "FILE.bin: llm.c's GPT-2 checkpoint" $BPGEN run --help
# parity with llm.c's own train_gpt2.c (tools/llmc_parity.sh), when its sources are here
R=$(cd "$(dirname "$0")/.." && pwd)
if [ -f "$R/../shared/ref/llm.c/train_gpt2.c" ]; then
  t "llmc parity (gradients, 10 AdamW steps)" 0 "losses: OK" \
    "$R/tools/llmc_parity.sh" -b "$BPGEN" -o "$L/parity" -D L=2 -D C=64 -D B=2 -D T=32
  t "llmc parity: gradients"  0 "gradients: OK" cat "$L/parity/cmp.txt"
  t "llmc parity: 10 steps"   0 "^ +9 +[0-9.]+ +[0-9.]+ " cat "$L/parity/train.txt"
  # the comparison can fail: a gradient set to 0.1 (|dqkvb| < 0.01 here), a loss to 9.99
  patch32 "$L/parity/out/qkvb.grad.npy" 128 1036831949   # 0.1f, the first element
  t "llmc parity: a wrong gradient fails" 1 "dqkvb .*NOT OK \(2e-2\)" "$L/parity/llmc_parity" grad \
    "$L/parity/init.bin" "$L/parity/tok.bin" 2 32 "$L/parity/out"
  sed '3s/^\([0-9]*\),\([0-9.]*\)/\1,9.99/' "$L/parity/bp.csv" >"$L/parity/bad.csv"
  t "llmc parity: a wrong loss fails" 1 "^ +1 .*NOT OK" "$L/parity/llmc_parity" train \
    "$L/parity/init.bin" "$L/parity/tok.bin" 2 32 10 1e-4 0.01 "$L/parity/bad.csv"
else
  echo "driver: skipping llm.c parity: no $R/../shared/ref/llm.c/train_gpt2.c"
fi
# ---- end of issue 12/13 (llm.c) ---------------------------------------------------------

echo "driver: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
