#!/usr/bin/env bash
# Bring up the test environment and run the whole test suite against it.
# Extra arguments go to the test harness (e.g. a test name filter).
set -euo pipefail
# shellcheck source=hack/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

env_up
export_test_env
print_summary

cd "${PINSHIM_ROOT}"
# Scripts, unit files, example configs, the install target and the kind e2e
# files: everything that can be checked without a cluster.
bash hack/check-static.sh
# Benchmarks are only compiled here (hack/bench.sh runs them in release mode).
cargo check --benches
cargo test --lib --bins --tests -- "$@"
