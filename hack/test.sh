#!/usr/bin/env bash
# Bring up the test environment and run the whole test suite against it.
# Extra arguments go to the test harness (e.g. a test name filter).
#
# PINSHIM_ENGINE picks the Docker Engine the tests and pinshim talk to:
# 20.10 (default, the packaged docker.io) or a newer one from hack/engines.sh
# (26, 28, 28-containerd), brought up beside it. PINSHIM_TEST_NO_FAIL_FAST=1
# runs every test binary even after one fails (hack/test-matrix.sh sets it).
set -euo pipefail
# shellcheck source=hack/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

engine="${PINSHIM_ENGINE:-${PINSHIM_DEFAULT_ENGINE}}"
engine_check "${engine}"

# The images are built and pushed with the packaged dockerd, so env_up runs
# before DOCKER_HOST moves to the chosen engine.
env_up
use_engine "${engine}"
export_test_env
print_summary

cd "${PINSHIM_ROOT}"
# Scripts, unit files, example configs, the install target and the kind e2e
# files: everything that can be checked without a cluster.
bash hack/check-static.sh
# Benchmarks are only compiled here (hack/bench.sh runs them in release mode).
cargo check --benches
cargo_flags=()
if [[ "${PINSHIM_TEST_NO_FAIL_FAST:-}" == 1 ]]; then cargo_flags+=(--no-fail-fast); fi
cargo test "${cargo_flags[@]}" --lib --bins --tests -- "$@"
