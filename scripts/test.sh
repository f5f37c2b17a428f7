#!/bin/sh
# scripts/test.sh: `make test`'s run, once the binaries are built: every Check
# suite under ASan/UBSan, then the command-line driver (tests/driver.sh).
# With two cores or more the Check cases tagged "slow" (tcase_set_tags: the
# emitted files built by every compiler, the kernels against naive loops) run
# in a second process beside the others and the driver; their report is
# printed after the driver's.  The exit status is nonzero if any part failed.
set -u
cd "$(dirname "$0")/.."
export ASAN_OPTIONS=detect_leaks=1
check=build/san/check_bpgen
if [ "$(nproc 2>/dev/null || echo 1)" -lt 2 ]; then
  $check && tests/driver.sh build/san/bpgen
  exit
fi
log=build/test-slow.log
CK_INCLUDE_TAGS=slow $check >"$log" 2>&1 &
slow=$!
CK_EXCLUDE_TAGS=slow $check
rest=$?
tests/driver.sh build/san/bpgen
drv=$?
wait $slow
slow_rc=$?
echo "== the Check cases tagged slow (run beside the others; $log)"
cat "$log"
[ $rest -eq 0 ] && [ $drv -eq 0 ] && [ $slow_rc -eq 0 ]
