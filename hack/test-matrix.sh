#!/usr/bin/env bash
# Run the whole test suite (hack/test.sh) on each Docker Engine in turn and
# print a table of pass/fail counts per engine. Engines default to all of
# them (20.10 26 28 28-containerd); PINSHIM_MATRIX_ENGINES="26 28" picks
# some. Extra arguments go to the test harness, as with hack/test.sh.
# Every engine is run even when one fails; the exit status is non-zero if
# any did. Full logs stay under $PINSHIM_TEST_STATE/matrix/.
set -euo pipefail
# shellcheck source=hack/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

read -r -a engines <<<"${PINSHIM_MATRIX_ENGINES:-${PINSHIM_DEFAULT_ENGINE} ${PINSHIM_ENGINES[*]}}"
for engine in "${engines[@]}"; do engine_check "${engine}"; done

logdir="${PINSHIM_TEST_STATE}/matrix/$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "${logdir}"

# Sum of the "test result:" lines of a cargo test log: passed failed ignored.
count_results() {
  awk '/^test result: / {
         for (i = 1; i <= NF; i++) {
           if ($(i + 1) ~ /^passed;?$/) p += $i
           if ($(i + 1) ~ /^failed;?$/) f += $i
           if ($(i + 1) ~ /^ignored;?$/) g += $i
         }
       }
       END { printf "%d %d %d\n", p, f, g }' "$1"
}

rows=()
status=0
for engine in "${engines[@]}"; do
  log="${logdir}/${engine}.log"
  log "matrix: engine ${engine} (log: ${log})"
  rc=0
  PINSHIM_ENGINE="${engine}" PINSHIM_TEST_NO_FAIL_FAST=1 \
    bash "${PINSHIM_ROOT}/hack/test.sh" "$@" >"${log}" 2>&1 || rc=$?
  read -r passed failed ignored < <(count_results "${log}")
  # The version as print_summary showed it ("?" if the run died before).
  version="$(sed -n 's/^  dockerd: *\([^ ]*\) .*/\1/p' "${log}" | tail -n 1)"
  # A non-zero exit with no failed test: the bring-up, the static checks or
  # the build failed, or a test binary crashed; the log says which.
  ((rc == 0)) || status=1
  rows+=("$(printf '%-14s %-22s %7s %7s %8s %5s' "${engine}" "${version:-?}" "${passed}" "${failed}" "${ignored}" "${rc}")")
  log "matrix: engine ${engine}: ${passed} passed, ${failed} failed, ${ignored} ignored (exit ${rc})"
done

echo
printf '%-14s %-22s %7s %7s %8s %5s\n' engine dockerd passed failed ignored exit
printf '%s\n' "${rows[@]}"
echo
echo "logs: ${logdir}"
exit "${status}"
