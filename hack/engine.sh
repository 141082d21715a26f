#!/usr/bin/env bash
# Newer Docker Engines beside the packaged one (see hack/engines.sh):
#   hack/engine.sh up NAME...    download if needed, start, wait; prints
#                                `export DOCKER_HOST=...` for the last NAME,
#                                so `eval "$(hack/engine.sh up 28)"` works
#   hack/engine.sh host NAME     the engine's DOCKER_HOST
#   hack/engine.sh stop NAME...  stop an engine these scripts started
#   hack/engine.sh status        every engine: socket, version, storage driver
# NAME is 26, 28 or 28-containerd (20.10, the packaged one, for up/host).
set -euo pipefail
# shellcheck source=hack/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() {
  sed -n '2,9s/^# \{0,1\}//p' "${BASH_SOURCE[0]}" >&2
  exit 2
}

(($# >= 1)) || usage
command="$1"
shift
case "${command}" in
  up)
    (($# >= 1)) || usage
    for name in "$@"; do engine_check "${name}"; done
    for name in "$@"; do host="$(ensure_engine "${name}")"; done
    echo "export DOCKER_HOST=${host}"
    ;;
  host)
    (($# == 1)) || usage
    engine_host "$1"
    ;;
  stop)
    (($# >= 1)) || usage
    for name in "$@"; do stop_engine "${name}"; done
    ;;
  status)
    (($# == 0)) || usage
    print_engines
    ;;
  *) usage ;;
esac
