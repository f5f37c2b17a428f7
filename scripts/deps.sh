#!/bin/sh
# deps.sh: make sure the Debian packages bpgen builds and tests with are here.
# As root, installs the missing ones with apt-get; otherwise prints the exact
# apt-get line and fails.  Usage: scripts/deps.sh [build|test|main|gpt]
set -eu
what=${1:-build}

# openmpi-bin and libopenmpi-dev: data-parallel training (mpirun -np N bpgen run);
# the Makefile builds without MPI when they are absent
need="re2c tcc libtcc-dev check pkg-config gcc make openmpi-bin libopenmpi-dev"
case "$what" in
  test) need="$need g++ clang libclang-rt-14-dev python3 python3-numpy graphviz gnuplot-nox man-db groff-base" ;;
  main) need="$need wamerican" ;;
  gpt) need="$need fortunes" ;;
esac

missing=""
for p in $need; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing="$missing $p"
  fi
done
[ -z "$missing" ] && exit 0

line="apt-get install -y --no-install-recommends$missing"
if [ "$(id -u)" -ne 0 ]; then
  echo "bpgen needs these Debian packages:$missing" >&2
  echo "run as root:  apt-get update && $line" >&2
  exit 1
fi
echo "installing:$missing" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >&2 || true
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >&2
