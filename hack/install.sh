#!/usr/bin/env bash
# Install pinshim as a systemd service.
#
#   hack/install.sh [--prefix DESTDIR] [--no-build] [--binary PATH] [--enable]
#
#   --prefix DESTDIR  install under DESTDIR instead of / (packaging, images)
#   --no-build        skip `cargo build --release`; install the binary that
#                     target/release/pinshim already holds
#   --binary PATH     install PATH as the pinshim binary (implies --no-build)
#   --enable          afterwards run `systemctl daemon-reload` and enable and
#                     start pinshim.socket and pinshim.service (restarting a
#                     running pinshim); only when DESTDIR is / and systemd
#                     is running
#
# Installs, relative to DESTDIR:
#   usr/local/bin/pinshim                  the binary (replaced)
#   etc/systemd/system/pinshim.service     units (replaced)
#   etc/systemd/system/pinshim.socket
#   etc/pinshim/config.toml                example config, only if absent:
#                                          an operator's config is never touched
#   etc/pinshim/certs.d/                   registry hosts directory
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DESTDIR=/
BUILD=1
BINARY=""
ENABLE=0

log() { printf '[install] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

usage() {
  sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'
}

parse_args() {
  while (($# > 0)); do
    case "$1" in
      --prefix) [[ $# -ge 2 ]] || die "--prefix needs a directory"; DESTDIR="$2"; shift 2 ;;
      --prefix=*) DESTDIR="${1#*=}"; shift ;;
      --binary) [[ $# -ge 2 ]] || die "--binary needs a path"; BINARY="$2"; BUILD=0; shift 2 ;;
      --binary=*) BINARY="${1#*=}"; BUILD=0; shift ;;
      --no-build) BUILD=0; shift ;;
      --enable) ENABLE=1; shift ;;
      -h | --help) usage; exit 0 ;;
      *) die "unknown argument: $1 (see --help)" ;;
    esac
  done
  [[ -n "${DESTDIR}" ]] || die "--prefix must not be empty"
}

# DESTDIR without a trailing slash ("" for /), so "${DEST}/etc" is a path.
dest_root() {
  local d="${DESTDIR}"
  while [[ "${d}" == */ ]]; do d="${d%/}"; done
  printf '%s' "${d}"
}

is_live_root() { [[ -z "$(dest_root)" ]]; }

systemd_running() { [[ -d /run/systemd/system ]]; }

# Refuse what cannot work before anything is written.
preflight() {
  if is_live_root && [[ "$(id -u)" != 0 ]]; then
    die "installing into / needs root; use --prefix DIR to stage elsewhere"
  fi
  if ((ENABLE)); then
    is_live_root || die "--enable only applies to an install into / (not --prefix $(dest_root))"
    systemd_running || die "--enable: systemd is not running on this machine"
  fi
}

build_binary() {
  if ((BUILD)); then
    command -v cargo >/dev/null 2>&1 || die "cargo not found; build elsewhere and pass --binary PATH"
    log "building: cargo build --release"
    (cd "${ROOT}" && cargo build --release)
  fi
  [[ -n "${BINARY}" ]] || BINARY="${ROOT}/target/release/pinshim"
  [[ -f "${BINARY}" ]] || die "no binary at ${BINARY} (build first, or pass --binary PATH)"
}

# install_file MODE SRC DST: replace DST atomically (a running pinshim keeps
# its old inode, and a crash never leaves a half-written file behind).
install_file() {
  local mode="$1" src="$2" dst="$3" tmp
  mkdir -p "$(dirname "${dst}")"
  tmp="$(dirname "${dst}")/.$(basename "${dst}").new.$$"
  install -m "${mode}" "${src}" "${tmp}"
  mv -f "${tmp}" "${dst}"
  log "installed ${dst}"
}

install_config() {
  local dst
  dst="$(dest_root)/etc/pinshim/config.toml"
  if [[ -e "${dst}" ]]; then
    log "kept existing ${dst} (the shipped example is contrib/config.toml)"
    return 0
  fi
  install_file 0644 "${ROOT}/contrib/config.toml" "${dst}"
}

install_tree() {
  local dest
  dest="$(dest_root)"
  install_file 0755 "${BINARY}" "${dest}/usr/local/bin/pinshim"
  install_file 0644 "${ROOT}/contrib/systemd/pinshim.service" "${dest}/etc/systemd/system/pinshim.service"
  install_file 0644 "${ROOT}/contrib/systemd/pinshim.socket" "${dest}/etc/systemd/system/pinshim.socket"
  install_config
  install -d -m 0755 "${dest}/etc/pinshim/certs.d"
}

# A pinshim that was already running is restarted onto the new binary; its
# pods keep running (they do not live in pinshim's cgroup).
enable_units() {
  local was_active=0
  systemctl is-active --quiet pinshim.service && was_active=1
  log "enabling: systemctl daemon-reload && systemctl enable --now pinshim.socket pinshim.service"
  systemctl daemon-reload
  systemctl enable --now pinshim.socket pinshim.service
  if ((was_active)); then
    log "restarting pinshim.service onto the new binary"
    systemctl restart pinshim.service
  fi
}

print_next_steps() {
  if ! is_live_root; then
    log "staged under $(dest_root); on the target machine then run:"
  elif systemd_running && systemctl is-active --quiet pinshim.service; then
    log "pinshim.service is running the old binary; restart it to switch:"
    echo "  systemctl daemon-reload && systemctl restart pinshim.service"
    return 0
  else
    log "next step:"
  fi
  echo "  systemctl daemon-reload && systemctl enable --now pinshim.socket pinshim.service"
}

main() {
  parse_args "$@"
  preflight
  build_binary
  install_tree
  if ((ENABLE)); then
    enable_units
  else
    print_next_steps
  fi
}

main "$@"
