#!/usr/bin/env bash
# Rebuild and repush every test image, even if the registries have them.
set -euo pipefail
# shellcheck source=hack/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

env_base
ensure_test_images force
print_summary
