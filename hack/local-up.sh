#!/usr/bin/env bash
# Bring up the test environment, build pinshim and run it in the foreground
# on the standard socket. Extra arguments are passed to pinshim.
# PINSHIM_ENGINE picks the Docker Engine, as for hack/test.sh.
set -euo pipefail
# shellcheck source=hack/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

engine="${PINSHIM_ENGINE:-${PINSHIM_DEFAULT_ENGINE}}"
engine_check "${engine}"

env_up
use_engine "${engine}"
export_test_env
print_summary

cd "${PINSHIM_ROOT}"
cargo build --release
# The socket directory is under /run, which is a tmpfs: recreate it each boot.
mkdir -p /run/pinshim
# Offline, the built-in default (registry.k8s.io/pause) cannot be pulled: use
# the pause image built into the local registry, unless one is configured
# (a --pod-infra-container-image argument still overrides this).
export PINSHIM_POD_INFRA_CONTAINER_IMAGE="${PINSHIM_POD_INFRA_CONTAINER_IMAGE:-${PINSHIM_IMG_PAUSE}}"
exec "${PINSHIM_ROOT}/target/release/pinshim" \
  --container-runtime-endpoint unix:///run/pinshim/pinshim.sock "$@"
