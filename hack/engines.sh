#!/usr/bin/env bash
# Newer Docker Engines beside the packaged one, for running the tests against
# them. Sourced by lib.sh (it uses log, die, quiet, start_daemon,
# pidfile_alive, write_if_changed, ensure_packages, ensure_dockerd,
# remove_local_test_images and the PINSHIM_* settings from there); don't run
# it. hack/engine.sh is its command line.
#
#   20.10          the machine's docker.io (/var/run/docker.sock, lib.sh)
#   26             Debian trixie's docker.io 26.1 with trixie's containerd 1.7
#   28             Debian sid's docker.io 28.5 with sid's containerd 2.1
#   28-containerd  the same binaries as 28 in a separate dockerd with the
#                  containerd image store (features.containerd-snapshotter)
#
# The binaries come offline from the machine's own Debian mirror: an apt
# configuration of our own (sources, lists and cache under the test state, the
# machine's apt state untouched) downloads docker.io and containerd of the
# newer suite, and dpkg-deb unpacks them into a directory; nothing is
# installed. They are Go programs that need only glibc >= 2.34 (bookworm has
# 2.36). runc and docker-init (tini-static) are bookworm's own.
#
# Each engine is a containerd and a dockerd of its own: own config, data
# root, state, sockets, logs and Linux bridge, so any number run beside the
# packaged dockerd. Like lib.sh, everything is idempotent and only processes
# started here (tracked by pidfile) are ever stopped.

PINSHIM_ENGINES=(26 28 28-containerd)
PINSHIM_DEFAULT_ENGINE=20.10
PINSHIM_DEFAULT_DOCKER_HOST=unix:///var/run/docker.sock

# Binaries, configs, data roots and logs.
PINSHIM_ENGINES_DIR="${PINSHIM_TEST_STATE}/engines"
# Sockets, exec roots, containerd state and pidfiles: like /run/docker and
# /run/containerd they must not outlive a reboot, so they live on /run.
PINSHIM_ENGINES_RUN=/run/pinshim-engines

# The engines use these directly (both come with docker.io already).
PINSHIM_PACKAGES+=(runc tini)
PINSHIM_ENGINE_RUNC=/usr/sbin/runc
PINSHIM_ENGINE_INIT=/usr/bin/tini-static

# ------------------------------------------------------------ definitions --

engine_known() {
  local e
  for e in "${PINSHIM_DEFAULT_ENGINE}" "${PINSHIM_ENGINES[@]}"; do
    [[ "$1" == "${e}" ]] && return 0
  done
  return 1
}

engine_check() {
  engine_known "$1" ||
    die "unknown engine '$1' (known: ${PINSHIM_DEFAULT_ENGINE} ${PINSHIM_ENGINES[*]})"
}

# Debian suite an engine's packages come from.
engine_suite() {
  case "$1" in
    26) echo trixie ;;
    28 | 28-containerd) echo sid ;;
    *) return 1 ;;
  esac
}

# Small number of the engine: its bridge and subnet.
engine_index() {
  case "$1" in
    26) echo 1 ;;
    28) echo 2 ;;
    28-containerd) echo 3 ;;
    *) return 1 ;;
  esac
}

# The docker.io major version the name promises.
engine_major() { echo "${1%%-*}"; }

engine_uses_containerd_store() { [[ "$1" == *-containerd ]]; }

# The engine that takes checkpoints: experimental features on, and CRIU on
# the path its runc is run with (see ensure_criu). One is enough: the
# feature needs nothing else of an engine.
PINSHIM_CHECKPOINT_ENGINE=28
engine_checkpoints() { [[ "$1" == "${PINSHIM_CHECKPOINT_ENGINE}" ]] && criu_ok; }

engine_dir() { echo "${PINSHIM_ENGINES_DIR}/$1"; }
engine_run() { echo "${PINSHIM_ENGINES_RUN}/$1"; }
engine_root() { echo "${PINSHIM_ENGINES_DIR}/dist/$(engine_suite "$1")/root"; }
engine_bridge() { echo "pinshim-eng$(engine_index "$1")"; }
engine_gateway() { echo "172.30.$(engine_index "$1").1"; }
engine_subnet() { echo "172.30.$(engine_index "$1").0/24"; }

# The engine's Docker API, as DOCKER_HOST takes it.
engine_host() {
  engine_check "$1"
  if [[ "$1" == "${PINSHIM_DEFAULT_ENGINE}" ]]; then
    echo "${PINSHIM_DEFAULT_DOCKER_HOST}"
  else
    echo "unix://$(engine_run "$1")/docker.sock"
  fi
}

# Run from the engine's root first, so containerd finds its own
# containerd-shim-runc-v2 and dockerd its own helpers; runc is not in the
# root, so the shims find bookworm's (dockerd's built-in "runc" runtime is
# looked up on PATH, and the name cannot be redefined).
engine_path() {
  local root criu=""
  root="$(engine_root "$1")"
  if engine_checkpoints "$1"; then criu="$(criu_dir)/bin:"; fi
  echo "${criu}${root}/usr/bin:${root}/usr/sbin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
}

# --------------------------------------------------------------- download --

# The machine's Debian archive: the sources that carry its own release (not
# -security or -updates), as "URI KEYRING" lines, read from deb822 .sources
# files and the one-line sources.list format alike.
debian_archive_sources() {
  local codename default_key=/usr/share/keyrings/debian-archive-keyring.gpg f
  codename="$(. /etc/os-release && echo "${VERSION_CODENAME:-}")"
  [[ -n "${codename}" ]] || die "/etc/os-release names no VERSION_CODENAME"
  for f in /etc/apt/sources.list.d/*.sources; do
    [[ -f "${f}" ]] || continue
    awk -v want="${codename}" -v key="${default_key}" '
      function flush() {
        if (types ~ /(^| )deb( |$)/ && (" " suites " ") ~ (" " want " ") && enabled != "no")
          for (i = 1; i <= n; i++) print uris[i], (signed ~ /^\// ? signed : key)
        types = suites = signed = enabled = ""; n = 0
      }
      /^[ \t]*#/ { next }
      /^[ \t]*$/ { flush(); next }
      /^[^ \t]/ {
        field = tolower($1); sub(/:$/, "", field); $1 = ""; sub(/^[ \t]+/, "")
        if (field == "types") types = $0
        else if (field == "uris") n = split($0, uris, /[ \t]+/)
        else if (field == "suites") suites = $0
        else if (field == "signed-by") signed = $0
        else if (field == "enabled") enabled = tolower($0)
      }
      END { flush() }' "${f}"
  done
  local line opts uri suite signed
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [[ -f "${f}" ]] || continue
    while read -r line; do
      # deb [option=value ...] URI SUITE COMPONENT...
      [[ "${line}" =~ ^deb[[:space:]]+(\[([^]]*)\][[:space:]]+)?([^[:space:]]+)[[:space:]]+([^[:space:]]+) ]] || continue
      opts="${BASH_REMATCH[2]}" uri="${BASH_REMATCH[3]}" suite="${BASH_REMATCH[4]}" signed="${default_key}"
      [[ "${suite}" == "${codename}" ]] || continue
      if [[ "${opts}" =~ signed-by=(/[^[:space:]]+) ]]; then signed="${BASH_REMATCH[1]}"; fi
      echo "${uri} ${signed}"
    done <"${f}"
  done
}

# apt-get with the engine download's own sources, lists and cache: the
# machine's apt state and its pinning are not read or written. The rest of
# the machine's apt configuration (proxies, validity checks) still applies.
engine_apt() {
  local dir="${PINSHIM_ENGINES_DIR}/dist/$1/apt"
  shift
  apt-get -q -o Dir::Etc::SourceList="${dir}/sources.list" -o Dir::Etc::SourceParts=/dev/null \
    -o Dir::State::Lists="${dir}/lists" -o Dir::Cache="${dir}/cache" \
    -o Dir::Etc::Preferences=/dev/null -o Dir::Etc::PreferencesParts=/dev/null \
    -o Acquire::Languages=none "$@"
}

# Sources for SUITE from the machine's archive URIs. Only the Packages
# indices are fetched (no translations or AppStream data). Debian's archive
# keyring on bookworm holds the keys trixie and sid are signed with.
engine_sources_list() {
  local suite="$1" uri key
  while read -r uri key; do
    [[ -r "${key}" ]] || die "keyring ${key} (for ${uri}) is missing; install debian-archive-keyring"
    printf 'deb [signed-by=%s target=Packages] %s %s main\n' "${key}" "${uri}" "${suite}"
  done < <(debian_archive_sources | sort -u)
}

# Is a complete unpacked download in BASE, and do its binaries run here?
engine_dist_ok() {
  [[ -s "$1/packages" ]] &&
    "$1/root/usr/sbin/dockerd" --version >/dev/null 2>&1 &&
    "$1/root/usr/bin/containerd" --version >/dev/null 2>&1
}

# Download docker.io and containerd of SUITE once and unpack them into
# ${PINSHIM_ENGINES_DIR}/dist/SUITE/root. Kept as they are afterwards (a
# rerun is offline and fast); remove the dist directory to fetch anew.
ensure_engine_dist() {
  local suite="$1" base="${PINSHIM_ENGINES_DIR}/dist/$1" root="${PINSHIM_ENGINES_DIR}/dist/$1/root"
  engine_dist_ok "${base}" && return 0

  local apt="${base}/apt" debs="${base}/debs" sources deb bin
  sources="$(engine_sources_list "${suite}")"
  [[ -n "${sources}" ]] ||
    die "no Debian archive for this release in /etc/apt/sources.list{,.d}; cannot fetch ${suite}"
  log "engines: fetching docker.io and containerd from Debian ${suite}"
  mkdir -p "${apt}/lists/partial" "${apt}/cache/archives/partial"
  printf '%s\n' "${sources}" >"${apt}/sources.list"
  quiet engine_apt "${suite}" update
  rm -rf "${debs}" "${root}.new" "${base}/packages"
  mkdir -p "${debs}" "${root}.new"
  # apt downloads as _apt where it can; give it the directory.
  if id _apt >/dev/null 2>&1; then chown _apt "${debs}"; fi
  (cd "${debs}" && quiet engine_apt "${suite}" download docker.io containerd)
  for deb in "${debs}"/*.deb; do
    [[ -f "${deb}" ]] || die "apt-get download left no .deb in ${debs}"
    dpkg-deb -x "${deb}" "${root}.new"
    # shellcheck disable=SC2016 # dpkg-deb's own ${field} syntax
    dpkg-deb -W --showformat='${Package}=${Version}\n' "${deb}" >>"${base}/packages.new"
  done

  # Go binaries, linked against glibc only: check they run on this one.
  for bin in usr/sbin/dockerd usr/sbin/docker-proxy usr/bin/containerd usr/bin/containerd-shim-runc-v2; do
    [[ -x "${root}.new/${bin}" ]] || die "${suite}: ${bin} is not in docker.io/containerd"
    if ldd "${root}.new/${bin}" 2>&1 | grep -q 'not found'; then
      ldd "${root}.new/${bin}" >&2 || true
      die "${suite}: ${bin} needs libraries this machine lacks"
    fi
  done
  "${root}.new/usr/sbin/dockerd" --version >/dev/null || die "${suite}: dockerd does not run here"
  "${root}.new/usr/bin/containerd" --version >/dev/null || die "${suite}: containerd does not run here"
  # The shims must find bookworm's runc (see engine_path).
  [[ ! -e "${root}.new/usr/sbin/runc" && ! -e "${root}.new/usr/bin/runc" ]] ||
    die "${suite}: the unpacked root ships a runc of its own"

  # The indices are only needed for this download: a new one updates anew.
  rm -rf "${root}" "${debs}" "${apt}/lists" "${apt}/cache"
  mv "${root}.new" "${root}"
  mv "${base}/packages.new" "${base}/packages"
  log "engines: ${suite}: $(paste -sd' ' "${base}/packages")"
}

# ------------------------------------------------------------------- criu --

# CRIU for the checkpoint engine. Bookworm's 3.17 fails `criu check` on
# kernels from 6.13 (it does not know their [vvar_vclock] mapping); trixie's
# 4.1 knows it but is linked against trixie's glibc. So criu is unpacked
# with its whole dependency closure from trixie and run through trixie's own
# dynamic loader by a wrapper (exec keeps the descriptors runc hands it).
# Nothing is installed on the machine.
PINSHIM_CRIU_SUITE=trixie
criu_dir() { echo "${PINSHIM_ENGINES_DIR}/dist/criu"; }
criu_ok() { [[ -x "$(criu_dir)/bin/criu" ]] && "$(criu_dir)/bin/criu" --version >/dev/null 2>&1; }

# apt-cache with the criu download's own sources and lists (as engine_apt).
criu_apt_cache() {
  local dir
  dir="$(criu_dir)/apt"
  apt-cache -o Dir::Etc::SourceList="${dir}/sources.list" -o Dir::Etc::SourceParts=/dev/null \
    -o Dir::State::Lists="${dir}/lists" -o Dir::Cache="${dir}/cache" \
    -o Dir::Etc::Preferences=/dev/null -o Dir::Etc::PreferencesParts=/dev/null "$@"
}

# Fetch and unpack criu once; keep it unless `criu check` fails here, in
# which case the checkpoint engine runs without checkpoints (the tests then
# expect CheckpointContainer to say so).
ensure_criu() {
  criu_ok && return 0
  local base root apt debs ld packages
  base="$(criu_dir)" root="$(criu_dir)/root" apt="$(criu_dir)/apt" debs="$(criu_dir)/debs"
  log "engines: fetching criu from Debian ${PINSHIM_CRIU_SUITE}"
  mkdir -p "${apt}/lists/partial" "${apt}/cache/archives/partial"
  engine_sources_list "${PINSHIM_CRIU_SUITE}" >"${apt}/sources.list"
  quiet engine_apt criu update
  packages="$(criu_apt_cache depends --recurse --no-recommends --no-suggests --no-conflicts \
    --no-breaks --no-replaces --no-enhances criu | grep '^[a-z0-9]' | sort -u)"
  rm -rf "${debs}" "${root}" "${base:?}/bin"
  mkdir -p "${debs}" "${root}" "${base}/bin"
  if id _apt >/dev/null 2>&1; then chown _apt "${debs}"; fi
  # shellcheck disable=SC2086 # one word per package
  (cd "${debs}" && quiet engine_apt criu download ${packages})
  for deb in "${debs}"/*.deb; do dpkg-deb -x "${deb}" "${root}"; done
  ld="$(find "${root}" -name 'ld-linux*.so.*' \( -type f -o -type l \) | head -n 1)"
  [[ -n "${ld}" && -x "${root}/usr/sbin/criu" ]] || die "criu: the ${PINSHIM_CRIU_SUITE} download has no criu or loader"
  printf '#!/bin/sh\nexec %s --library-path %s %s "$@"\n' "${ld}" "$(dirname "${ld}")" "${root}/usr/sbin/criu" \
    >"${base}/bin/criu.new"
  chmod 755 "${base}/bin/criu.new"
  rm -rf "${debs}" "${apt}/lists" "${apt}/cache"
  if ! "${base}/bin/criu.new" check >"${base}/check.log" 2>&1; then
    log "warning: criu check fails on this kernel (see ${base}/check.log): engine ${PINSHIM_CHECKPOINT_ENGINE} runs without checkpoints"
    return 0
  fi
  mv "${base}/bin/criu.new" "${base}/bin/criu"
  log "engines: $("${base}/bin/criu" --version | head -n 1) from ${PINSHIM_CRIU_SUITE}"
}

# Versions of an engine's binaries, as they report them.
engine_dockerd_version() {
  "$(engine_root "$1")/usr/sbin/dockerd" --version | sed -n 's/^Docker version \([^ ,]*\).*/\1/p'
}
engine_containerd_version() {
  "$(engine_root "$1")/usr/bin/containerd" --version | awk '{print $3}'
}

# ---------------------------------------------------------------- network --

# The engines run with Docker's iptables management off: a dockerd that
# manages iptables rewrites the shared DOCKER* chains on start and would
# drop the packaged dockerd's rules. What a bridge needs instead is added
# here once, marked with a comment: forwarding from and back to its bridge
# (the packaged dockerd sets FORWARD's policy to DROP, and br_netfilter sends
# bridged traffic through it too) and masquerading out of its subnet.
engine_iptables_rule() {
  local table="$1"
  shift
  iptables -w -t "${table}" -C "$@" 2>/dev/null || iptables -w -t "${table}" -A "$@"
}

ensure_engine_network() {
  local name="$1" bridge gateway subnet tag held
  bridge="$(engine_bridge "${name}")"
  gateway="$(engine_gateway "${name}")"
  subnet="$(engine_subnet "${name}")"
  tag="pinshim-engine-${name}"

  held="$(ip -4 -o addr show to "${subnet}" | awk -v b="${bridge}" '$2 != b {print $2}')"
  [[ -z "${held}" ]] || die "engine ${name}: ${subnet} is already on ${held}; cannot give it to ${bridge}"
  if ! ip link show dev "${bridge}" >/dev/null 2>&1; then
    log "engine ${name}: creating bridge ${bridge} (${gateway}/24)"
    ip link add name "${bridge}" type bridge
  fi
  ip -4 -o addr show dev "${bridge}" | grep -qF " ${gateway}/24 " ||
    ip addr add "${gateway}/24" dev "${bridge}"
  ip link set dev "${bridge}" up

  engine_iptables_rule filter FORWARD -i "${bridge}" -m comment --comment "${tag}" -j ACCEPT
  engine_iptables_rule filter FORWARD -o "${bridge}" -m conntrack --ctstate RELATED,ESTABLISHED \
    -m comment --comment "${tag}" -j ACCEPT
  engine_iptables_rule nat POSTROUTING -s "${subnet}" ! -o "${bridge}" -m comment --comment "${tag}" -j MASQUERADE
}

# ------------------------------------------------------------- containerd --

# containerd's config for engine NAME: version 2 for containerd 1.x, 3 for 2.x.
# Only dockerd talks to it, so the CRI plugins are off; NRI is off too (it
# would listen on one fixed socket for every containerd on the machine).
engine_containerd_config() {
  local name="$1" dir run major
  dir="$(engine_dir "${name}")"
  run="$(engine_run "${name}")"
  major="$(engine_containerd_version "${name}")"
  major="${major%%.*}"
  echo "# Generated by hack/engines.sh; edits are overwritten."
  if ((major >= 2)); then
    cat <<EOF
version = 3
root = '${dir}/containerd'
state = '${run}/containerd'
disabled_plugins = ['io.containerd.grpc.v1.cri', 'io.containerd.cri.v1.images', 'io.containerd.cri.v1.runtime',
                    'io.containerd.podsandbox.controller.v1.podsandbox', 'io.containerd.nri.v1.nri']

[grpc]
  address = '${run}/containerd.sock'

[ttrpc]
  address = '${run}/containerd.sock.ttrpc'

[plugins]
  [plugins.'io.containerd.internal.v1.opt']
    path = '${dir}/containerd/opt'
EOF
  else
    cat <<EOF
version = 2
root = "${dir}/containerd"
state = "${run}/containerd"
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.nri.v1.nri"]

[grpc]
  address = "${run}/containerd.sock"

[ttrpc]
  address = "${run}/containerd.sock.ttrpc"

[plugins]
  [plugins."io.containerd.internal.v1.opt"]
    path = "${dir}/containerd/opt"
EOF
  fi
}

engine_containerd_up() {
  timeout 10 "$(engine_root "$1")/usr/bin/ctr" --address "$(engine_run "$1")/containerd.sock" version \
    >/dev/null 2>&1
}

# ---------------------------------------------------------------- dockerd --

# Registry settings of the packaged dockerd, if it has a daemon.json: the
# engines get the same. (Loopback registries are insecure to every dockerd
# without being listed; TLS registries are trusted through
# /etc/docker/certs.d, which every dockerd on the machine reads.)
PINSHIM_HOST_DAEMON_JSON=/etc/docker/daemon.json
host_registry_settings() {
  if [[ -s "${PINSHIM_HOST_DAEMON_JSON}" ]]; then
    jq -c '{"insecure-registries", "registry-mirrors", "allow-nondistributable-artifacts"}
           | with_entries(select(.value != null))' "${PINSHIM_HOST_DAEMON_JSON}"
  else
    echo '{}'
  fi
}

# dockerd's daemon.json for engine NAME. Paths and sockets are flags (see
# start_engine_dockerd); a key may not be set both ways.
#
# Never set default-address-pools here: a dockerd that has them deletes the
# interface docker0 on every restart (moby's "clear stale bridge network"
# step), whatever its own --bridge, and with it the packaged dockerd's
# network. Networks created in an engine get subnets from Docker's default
# pools, which skip the ones routed on this host.
engine_daemon_json() {
  local name="$1" store=false
  engine_uses_containerd_store "${name}" && store=true
  jq -n --argjson registries "$(host_registry_settings)" \
    --arg init "${PINSHIM_ENGINE_INIT}" \
    --arg proxy "$(engine_root "${name}")/usr/sbin/docker-proxy" \
    --argjson store "${store}" \
    --argjson experimental "$(engine_checkpoints "${name}" && echo true || echo false)" \
    '{
       "iptables": false,
       "ip6tables": false,
       "init-path": $init,
       "userland-proxy-path": $proxy,
       "experimental": $experimental,
       "features": {"containerd-snapshotter": $store}
     } + $registries'
}

engine_api() { # NAME PATH [curl args...]
  local socket
  socket="$(engine_run "$1")/docker.sock"
  local path="$2"
  shift 2
  curl -sS --max-time 10 --unix-socket "${socket}" "$@" "http://docker${path}"
}

engine_docker_up() { [[ "$(engine_api "$1" /_ping 2>/dev/null)" == OK ]]; }

# Is the dockerd on NAME's socket the engine it should be?
engine_verify() {
  local name="$1" version driver_type
  version="$(engine_api "${name}" /version | jq -r .Version)"
  [[ "${version}" == "$(engine_major "${name}")."* ]] ||
    die "engine ${name}: the dockerd on $(engine_host "${name}") is version ${version}"
  driver_type="$(engine_api "${name}" /info | jq -r '[.DriverStatus[]? | select(.[0] == "driver-type") | .[1]] | first // ""')"
  if engine_uses_containerd_store "${name}"; then
    [[ "${driver_type}" == io.containerd.snapshotter.v1 ]] ||
      die "engine ${name}: the containerd image store is not in use (driver-type '${driver_type}')"
  else
    [[ -z "${driver_type}" ]] || die "engine ${name}: uses the containerd image store, which it should not"
  fi
}

# ---------------------------------------------------------------- control --

# Stop the daemon in PIDFILE if it runs CMDLINE_PATTERN (ours), waiting up to
# SECONDS for it to exit.
stop_engine_daemon() {
  local pidfile="$1" pattern="$2" seconds="$3" what="$4" i
  pidfile_alive "${pidfile}" "${pattern}" || return 0
  log "${what}: stopping pid $(cat "${pidfile}")"
  kill "$(cat "${pidfile}")" 2>/dev/null || true
  for ((i = 0; i < seconds * 10; i++)); do
    pidfile_alive "${pidfile}" "${pattern}" || break
    sleep 0.1
  done
  pidfile_alive "${pidfile}" "${pattern}" && die "${what}: pid $(cat "${pidfile}") did not stop"
  rm -f "${pidfile}"
}

# Stop engine NAME's dockerd, then its containerd (only if started here).
stop_engine() {
  local name="$1" dir run
  engine_check "${name}"
  [[ "${name}" != "${PINSHIM_DEFAULT_ENGINE}" ]] || die "the packaged dockerd is not stopped by these scripts"
  dir="$(engine_dir "${name}")"
  run="$(engine_run "${name}")"
  # dockerd stops its containers first (15 s each at most, in parallel).
  stop_engine_daemon "${run}/dockerd.pid" "${dir}/daemon.json" 60 "engine ${name} dockerd"
  stop_engine_daemon "${run}/containerd.pid" "${dir}/containerd.toml" 30 "engine ${name} containerd"
}

# Wait for CHECK NAME to succeed while the daemon in PIDFILE runs PATTERN.
wait_engine_daemon() {
  local check="$1" name="$2" pidfile="$3" pattern="$4" logfile="$5" what="$6" deadline=$((SECONDS + 60))
  while ((SECONDS < deadline)); do
    "${check}" "${name}" && return 0
    pidfile_alive "${pidfile}" "${pattern}" || break
    sleep 0.5
  done
  tail -n 30 "${logfile}" >&2 || true
  die "${what} did not come up (log: ${logfile})"
}

# The daemons' command lines, one word a line. ensure_engine keeps a copy
# next to the configs, so a changed command line restarts them too.
engine_containerd_cmd() {
  local name="$1"
  printf '%s\n' env PATH="$(engine_path "${name}")" "$(engine_root "${name}")/usr/bin/containerd" \
    --config "$(engine_dir "${name}")/containerd.toml"
}

# dockerd's own --pidfile is not start_daemon's: dockerd refuses to start
# while its pidfile names a live process, which would be itself.
engine_dockerd_cmd() {
  local name="$1" dir run
  dir="$(engine_dir "${name}")"
  run="$(engine_run "${name}")"
  printf '%s\n' env PATH="$(engine_path "${name}")" "$(engine_root "${name}")/usr/sbin/dockerd" \
    --config-file "${dir}/daemon.json" \
    --data-root "${dir}/docker" \
    --exec-root "${run}/docker" \
    --pidfile "${run}/docker/dockerd.pid" \
    -H "$(engine_host "${name}")" \
    --containerd "${run}/containerd.sock" \
    --bridge "$(engine_bridge "${name}")"
}

start_engine_containerd() {
  local name="$1" dir cmd=()
  dir="$(engine_dir "${name}")"
  mapfile -t cmd <"${dir}/containerd.cmd"
  log "engine ${name}: starting containerd $(engine_containerd_version "${name}") (log: ${dir}/containerd.log)"
  start_daemon "${dir}/containerd.log" "$(engine_run "${name}")/containerd.pid" "${cmd[@]}"
}

start_engine_dockerd() {
  local name="$1" dir cmd=()
  dir="$(engine_dir "${name}")"
  mapfile -t cmd <"${dir}/dockerd.cmd"
  log "engine ${name}: starting dockerd $(engine_dockerd_version "${name}") on $(engine_host "${name}") (log: ${dir}/dockerd.log)"
  start_daemon "${dir}/dockerd.log" "$(engine_run "${name}")/dockerd.pid" "${cmd[@]}"
}

# Bring engine NAME up: download its binaries if missing, start its
# containerd and dockerd if they do not answer (restarting ours when their
# config changed), wait for them and check the dockerd is what NAME says.
# Prints the engine's DOCKER_HOST and exports it. 20.10 is the packaged
# dockerd (lib.sh's ensure_dockerd).
ensure_engine() {
  local name="$1" dir run changed=0
  engine_check "${name}"
  if [[ "${name}" == "${PINSHIM_DEFAULT_ENGINE}" ]]; then
    DOCKER_HOST="$(engine_host "${name}")" ensure_dockerd
    export DOCKER_HOST="${PINSHIM_DEFAULT_DOCKER_HOST}"
    echo "${DOCKER_HOST}"
    return 0
  fi
  [[ "$(id -u)" == 0 ]] || die "engine ${name}: needs root"
  ensure_packages
  [[ -x "${PINSHIM_ENGINE_RUNC}" ]] || die "${PINSHIM_ENGINE_RUNC} is missing (package runc)"
  # docker-init is bind-mounted into containers: it must be static. (docker.io
  # ships docker-init as a link to tini-static, which is not unpacked.)
  if [[ ! -x "${PINSHIM_ENGINE_INIT}" ]] || ldd "${PINSHIM_ENGINE_INIT}" >/dev/null 2>&1; then
    die "${PINSHIM_ENGINE_INIT} is missing or not static (package tini)"
  fi
  ensure_engine_dist "$(engine_suite "${name}")"
  # Without criu the engine still runs, only without checkpoints (in a
  # subshell, so a failed download does not end the bring-up).
  if [[ "${name}" == "${PINSHIM_CHECKPOINT_ENGINE}" ]] && ! (ensure_criu); then
    log "warning: criu could not be fetched: engine ${name} runs without checkpoints"
  fi
  # The suites move on: sid will carry a docker.io after 28 one day.
  [[ "$(engine_dockerd_version "${name}")" == "$(engine_major "${name}")."* ]] ||
    die "engine ${name}: Debian $(engine_suite "${name}") now has dockerd $(engine_dockerd_version "${name}")" \
      "(in $(engine_root "${name}")); this engine needs a suite that still has $(engine_major "${name}").x"

  dir="$(engine_dir "${name}")"
  run="$(engine_run "${name}")"
  mkdir -p "${dir}" "${run}"
  write_if_changed "${dir}/containerd.toml" "$(engine_containerd_config "${name}")" && changed=1
  write_if_changed "${dir}/daemon.json" "$(engine_daemon_json "${name}")" && changed=1
  write_if_changed "${dir}/containerd.cmd" "$(engine_containerd_cmd "${name}")" && changed=1
  write_if_changed "${dir}/dockerd.cmd" "$(engine_dockerd_cmd "${name}")" && changed=1
  if ((changed)) && { pidfile_alive "${run}/dockerd.pid" "${dir}/daemon.json" ||
    pidfile_alive "${run}/containerd.pid" "${dir}/containerd.toml"; }; then
    log "engine ${name}: config changed, restarting"
    stop_engine "${name}"
  fi
  ensure_engine_network "${name}"

  if ! engine_containerd_up "${name}"; then
    pidfile_alive "${run}/containerd.pid" "${dir}/containerd.toml" || start_engine_containerd "${name}"
    wait_engine_daemon engine_containerd_up "${name}" "${run}/containerd.pid" "${dir}/containerd.toml" \
      "${dir}/containerd.log" "engine ${name} containerd"
  fi
  if ! engine_docker_up "${name}"; then
    local had_docker0=0
    ip link show dev docker0 >/dev/null 2>&1 && had_docker0=1
    pidfile_alive "${run}/dockerd.pid" "${dir}/daemon.json" || start_engine_dockerd "${name}"
    wait_engine_daemon engine_docker_up "${name}" "${run}/dockerd.pid" "${dir}/daemon.json" \
      "${dir}/dockerd.log" "engine ${name} dockerd"
    # Guard for the packaged dockerd (see engine_daemon_json).
    if ((had_docker0)) && ! ip link show dev docker0 >/dev/null 2>&1; then
      die "engine ${name}: starting its dockerd removed docker0, the packaged dockerd's bridge"
    fi
  fi
  engine_verify "${name}"
  export DOCKER_HOST
  DOCKER_HOST="$(engine_host "${name}")"
  echo "${DOCKER_HOST}"
}

# Make engine NAME the one the tests and pinshim use: bring it up, point
# DOCKER_HOST (the tests, the docker CLI, bollard) and PINSHIM_DOCKER_ENDPOINT
# (every pinshim the tests start without --docker-endpoint) at it, and drop
# test images an earlier run left in it (tests expect to pull them). Run
# after env_up, which builds and pushes the images with the packaged dockerd.
use_engine() {
  local name="$1"
  engine_check "${name}"
  if [[ "${name}" == "${PINSHIM_DEFAULT_ENGINE}" ]]; then
    # As before engines existed: DOCKER_HOST as given, else the packaged one.
    export DOCKER_HOST="${DOCKER_HOST:-${PINSHIM_DEFAULT_DOCKER_HOST}}"
  else
    ensure_engine "${name}" >/dev/null
    remove_local_test_images
    # Where this engine's containerd keeps content and snapshots, which
    # pinshim measures for ImageFsInfo on the containerd image store.
    PINSHIM_CONTAINERD_ROOT="$(engine_dir "${name}")/containerd"
    export PINSHIM_CONTAINERD_ROOT
  fi
  export PINSHIM_DOCKER_ENDPOINT="${DOCKER_HOST}"
  log "engine ${name}: DOCKER_HOST=${DOCKER_HOST}"
}

# One line per engine: name, socket, and the versions and storage driver of
# the daemon there (or that none answers).
print_engines() {
  local name host versions driver
  for name in "${PINSHIM_DEFAULT_ENGINE}" "${PINSHIM_ENGINES[@]}"; do
    host="$(engine_host "${name}")"
    versions="$(timeout 10 docker -H "${host}" version --format \
      '{{range .Server.Components}}{{.Name}} {{.Version}}  {{end}}' 2>/dev/null || true)"
    driver="$(timeout 10 docker -H "${host}" info --format '{{.Driver}}' 2>/dev/null || true)"
    [[ -n "${versions}" ]] && versions+="storage ${driver}"
    printf '%-14s %-54s %s\n' "${name}" "${host}" "${versions:-(not running)}"
  done
}
