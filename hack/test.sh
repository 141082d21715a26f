#!/usr/bin/env bash
# Bring up the test environment and run the test suite against it.
# Extra arguments go to the test harness (e.g. a test name filter).
#
# By default (what CI runs): the whole suite on the packaged Docker 20.10,
# then the core suites (images, pods, containers, streaming, stats,
# identity) on each engine of PINSHIM_CORE_ENGINES, brought up beside it by
# hack/engines.sh (default 28-containerd: Docker 28.5 with the containerd
# image store; empty for none). PINSHIM_ENGINE=<20.10|26|28|28-containerd>
# runs the whole suite on that one engine instead. The checkpoint tests also
# run on engine 28, which hack/engines.sh gives experimental features and
# CRIU (PINSHIM_CHECKPOINT_ENGINES; empty for none). PINSHIM_TEST_NO_FAIL_FAST=1
# runs every test binary even after one fails (hack/test-matrix.sh sets it).
set -euo pipefail
# shellcheck source=hack/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

if [[ -n "${PINSHIM_ENGINE:-}" ]]; then
  whole_suite_engine="${PINSHIM_ENGINE}"
  core_engines=()
  checkpoint_engines=()
else
  whole_suite_engine="${PINSHIM_DEFAULT_ENGINE}"
  read -r -a core_engines <<<"${PINSHIM_CORE_ENGINES-28-containerd}"
  read -r -a checkpoint_engines <<<"${PINSHIM_CHECKPOINT_ENGINES-28}"
fi
for engine in "${whole_suite_engine}" "${core_engines[@]}" "${checkpoint_engines[@]}"; do engine_check "${engine}"; done

# The images are built and pushed with the packaged dockerd, so env_up runs
# before DOCKER_HOST moves to the chosen engine.
env_up

cd "${PINSHIM_ROOT}"
# Scripts, unit files, example configs, the install target and the kind e2e
# files: everything that can be checked without a cluster.
bash hack/check-static.sh
# Benchmarks are only compiled here (hack/bench.sh runs them in release mode).
cargo check --benches

cargo_flags=()
if [[ "${PINSHIM_TEST_NO_FAIL_FAST:-}" == 1 ]]; then cargo_flags+=(--no-fail-fast); fi

# The test binaries of the core suites, as `--test <name>` arguments.
core_suites=()
for file in tests/*.rs; do
  name="$(basename "${file}" .rs)"
  case "${name}" in
    image_* | pod_* | container_* | stream_* | stats | runtime_basics) core_suites+=(--test "${name}") ;;
  esac
done

# run_suite ENGINE CARGO-SELECTION... -- HARNESS-ARGS...: in a subshell, so
# one engine's environment does not reach the next.
run_suite() {
  local engine="$1"
  shift
  (
    use_engine "${engine}"
    export_test_env
    print_summary
    cargo test "${cargo_flags[@]}" "$@"
  )
}

status=0
run_suite "${whole_suite_engine}" --lib --bins --tests -- "$@" || status=$?
for engine in "${core_engines[@]}"; do
  log "core suites on engine ${engine}"
  run_suite "${engine}" "${core_suites[@]}" -- "$@" || status=$?
done
for engine in "${checkpoint_engines[@]}"; do
  log "checkpoint tests on engine ${engine}"
  run_suite "${engine}" --test container_checkpoint -- "$@" || status=$?
done
exit "${status}"
