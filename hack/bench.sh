#!/usr/bin/env bash
# Bring up the test environment and run the benchmarks, which time pinshim
# against the raw Docker API in the same run and print ratios.
# PINSHIM_ENGINE picks the Docker Engine, as for hack/test.sh.
set -euo pipefail
# shellcheck source=hack/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

engine="${PINSHIM_ENGINE:-${PINSHIM_DEFAULT_ENGINE}}"
engine_check "${engine}"

env_up
use_engine "${engine}"
export_test_env

cd "${PINSHIM_ROOT}"
cargo bench --benches "$@"
