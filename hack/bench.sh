#!/usr/bin/env bash
# Bring up the test environment and run the benchmarks, which time pinshim
# against the raw Docker API in the same run and print ratios.
set -euo pipefail
# shellcheck source=hack/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

env_up
export_test_env

cd "${PINSHIM_ROOT}"
cargo bench --benches "$@"
