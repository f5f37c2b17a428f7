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
t "no --out"                1 "--out DIR is required" $BPGEN grad $M --in "$T/in"
t "no --in"                 1 "--in DIR is required"  $BPGEN grad $M --out "$T/o15"
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
t "check table columns"     0 "^name +\| shape +\| exact \| approximate \| maxdiff +\| max ULPs \| fd \(f64\)" \
  $BPGEN check $M
t "check --expand odd"      0 "generated \(f64, expanded\)" $BPGEN check $M --expand --dtype f64 -D B=7 -D H=13 -D T=4
t "check broken rule"       1 "^FAIL: [0-9]+ of 15 tensors out of tolerance" env BPGEN_PERTURB=tanh $BPGEN check $M
t "explain lecture"         0 "dW2 \+= hᵀ · dlogits" $BPGEN explain $M
t "gen to stdout"           0 "^#line [0-9]+ \"" $BPGEN $M -o -
t "gen writes .c and .h"    0 ""                     $BPGEN $M -o "$T/m.c"
t "gen header beside"       0 "extern const BpModel makemore_model" cat "$T/m.h"
t "gen compiles -Werror"    0 ""  gcc -std=c99 -O2 -Wall -Wextra -Werror -c "$T/m.c" -o "$T/m.o"
t "unknown command"         1 "'frob' is neither a command nor a spec file" $BPGEN frob
t "no arguments"            1 "^usage: bpgen SPEC -o model.c" $BPGEN
t "--version"               0 "^bpgen [0-9]+\.[0-9]+\.[0-9]+$" $BPGEN --version
t "--help is the truth"     0 "ninja SPEC --mine FILE.c" $BPGEN --help
printf 'dim B = 3\nx = B \303\274\n' >"$T/u.spec"
t "caret under UTF-8"       1 "^        \^" $BPGEN explain "$T/u.spec"
t "unknown option"          1 "unknown option '--frobnicate'" $BPGEN grad $M --frobnicate
t "no spec"                 1 "no spec file given"    $BPGEN grad --in "$T/in" --out "$T/o16"
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
t "dot bad extension"       1 "write FILE.dot, FILE.svg, FILE.png or -" $BPGEN dot $M -o "$T/g.txt"
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
t "ninja needs a mode"      1 "give either --header or --mine FILE.c" $BPGEN ninja $M

# ---- bpgen run / plot (the trainer) ----------------------------------------------
W=${BPGEN_TESTS:-tests}/fixtures/words10.txt
case $W in /*) ;; *) W=$(pwd)/$W ;; esac
t "run --help"              0 "usage: bpgen run SPEC --data FILE" $BPGEN run --help
t "run without data"        1 "run: no data: give --data FILE" $BPGEN run $M
t "run without spec"        1 "run: no spec file given"   $BPGEN run --data "$W"
t "run -o"                  1 "writes no model file.*--trainer -o train.c" $BPGEN run $M --data "$W" -o x.c
t "run unknown option"      1 "run: unknown option '--frob'" $BPGEN run $M --data "$W" --frob
t "gen unknown option, one prefix" 1 "^bpgen: error: unknown option '--frob' \(see bpgen --help\)" $BPGEN $M --frob
t "run missing value"       1 "--steps needs a value"     $BPGEN run $M --data "$W" --steps
t "plot --help"             0 "usage: bpgen plot LOG.csv" $BPGEN plot --help
printf 'step,loss,dev_loss\n0,3.1,\n1,x,\n' >"$T/bad.csv"
t "plot bad row"            1 "bad.csv:3: expected step,loss\[,dev_loss\], got '1,x,'" $BPGEN plot "$T/bad.csv" -o "$T/p.png"
t "plot bad extension"      1 "must end in .png, .svg or .pdf" $BPGEN plot "$T/bad.csv" -o "$T/p.jpg"
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
t "--threads range"         1 "--threads: 65 is more than 64" $BPGEN run $M --data "$W" --threads 65
# bpgen run --help and the trainer's own --help list the same options
"$T/train" --help 2>&1 | grep -oE '^  --[a-z0-9-]+' | sort -u >"$T/opts.train"
t "run and trainer options agree" 0 "" sh -c "$BPGEN run --help | grep -oE '^  --[a-z0-9-]+' | sort -u | cmp -s - '$T/opts.train'"

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
t "run tensor shape"      1 "tx2.npy: shape \(6, 2\) does not match input X \(4, 3\): expected \(N, 3\)" \
  $MT --data-x "$T/tx2.npy" --data-y "$T/ty.npy"
t "run tensor no y"       1 "has two inputs \(X, Y\): give --data-y too" $MT --data-x "$T/tx.npy"
t "run tensor and words"  1 "not both" $MT --data "$W" --data-x "$T/tx.npy"
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
t "run --bn-stats bad" 1 "--bn-stats: 'moving' is neither calibrate nor running" $BPGEN run $SPECS/makemore.spec --data "$W" --bn-stats moving
t "run --bn-momentum bad" 1 "--bn-momentum: 2 is not in \(0, 1\]" $BPGEN run $SPECS/makemore.spec --data "$W" --bn-stats running --bn-momentum 2
t "run --bn-stats running, no batchnorm" 1 "--bn-stats running: the model has no batchnorm" \
  $BPGEN run $SPECS/bigram.spec --data "$W" --bn-stats running --steps 1
t "run --lr-schedule bad" 1 "--lr-schedule: 'linear' is not step, cosine or constant" \
  $MQ --steps 5 --lr-schedule linear
t "run --clip --warmup cosine" 0 "train loss" \
  $MQ --steps 50 --optimizer adamw --clip 1 --lr-schedule cosine --warmup 5 --samples 0
# streams through `bpgen run`: a context model is refused with the file named;
# llm.c token files are checked (the model check comes first, so a stream
# spec's errors are in the train suite's fake-model tests)
printf 'hello\nworld\n' >"$T/h.txt"
t "run --text on a context model" 1 "a token stream \(--text\) needs inputs X, Y : int\[B,T\]" \
  $BPGEN run $M -D H=8 -D B=4 --text "$T/h.txt" --quiet
t "run --val-tokens alone" 1 "--val-tokens needs --data-tokens" \
  $BPGEN run $M -D H=8 -D B=4 --data $W --val-tokens "$T/h.txt" --quiet
t "run --text and --data" 1 "not both" \
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
t "report needs -o"        1 "error: report: give -o report.html" $BPGEN report $M
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
t "gen --prefix not C"      1 "bpgen: error: --prefix: 'a-b' is not a C identifier" $BPGEN $M --prefix a-b -o "$G/x.c"
t "gen --prefix digit"      1 "--prefix: '9a' is not a C identifier" $BPGEN $M --prefix 9a -o "$G/x.c"
t "gen --prefix empty"      1 "--prefix: '' is not a C identifier" $BPGEN $M --prefix '' -o "$G/x.c"
t "gen --prefix reserved"   1 "--prefix: '__m' starts with '__'.*reserved" $BPGEN $M --prefix __m -o "$G/x.c"
t "gen --prefix no value"   1 "--prefix needs a value" $BPGEN $M -o "$G/x.c" --prefix
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
t "gen -o model.h refused"  1 "bpgen: error: -o .*model2.h: the API header would be the same file" \
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
