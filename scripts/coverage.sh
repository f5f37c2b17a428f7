#!/bin/sh
# coverage.sh DIR: line coverage of gen/ and runtime/ from the .gcda files the
# suite left in DIR (make coverage): a table, then each file's lines never run.
set -eu
dir=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for obj in $(find "$dir/gen" "$dir/runtime" -name '*.o' ! -name main.o | sort); do
  src=${obj#$dir/}; src=${src%.o}.c
  [ -f "$src" ] || continue
  gcov -o "$(dirname "$obj")" "$src" >/dev/null 2>&1 || true
  for g in *.gcov; do [ -f "$g" ] && mv "$g" "$tmp/$(echo "$src" | tr / _).$g"; done
done
for f in "$tmp"/*.gcov; do
  [ -f "$f" ] || continue
  name=$(sed -n '1s/.*Source:\(.*\)/\1/p' "$f")
  case $name in /*) name=${name#$PWD/} ;; esac
  case $name in gen/*.c|gen/*.re|runtime/*.c) ;; *) continue ;; esac
  never=$(grep -c '^ *#####:' "$f" || true)
  lines=$(grep -cE '^ *([0-9]+\*?|#####):' "$f" || true)
  echo "$name $lines $never"
done | sort > "$tmp/table"
echo "file                     lines   run  never  covered"
awk '{ printf "%-24s %5d %5d %6d  %5.1f%%\n", $1, $2, $2 - $3, $3, $2 ? 100 * ($2 - $3) / $2 : 100; t += $2; n += $3 }
     END { printf "%-24s %5d %5d %6d  %5.1f%%\n", "(all)", t, t - n, n, t ? 100 * (t - n) / t : 100 }' "$tmp/table"
echo
echo "lines never run:"
for f in "$tmp"/*.gcov; do
  name=$(sed -n '1s/.*Source:\(.*\)/\1/p' "$f")
  case $name in /*) name=${name#$PWD/} ;; esac
  case $name in gen/*.c|gen/*.re|runtime/*.c) ;; *) continue ;; esac
  grep -E '^ *#####:' "$f" | sed "s|^ *#####: *\([0-9]*\):|$name:\1:|"
done
