#!/usr/bin/env bash
# Shared bring-up for tests and local runs: apt packages, dockerd, the two
# loopback registries and the offline-built test images. Safe to rerun.
set -euo pipefail
# shellcheck source=hack/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

env_up
export_test_env
print_summary
