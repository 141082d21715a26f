#!/usr/bin/env bash
# End-to-end test of pinshim as the runtime of a real Kubernetes cluster.
#
# NEEDS INTERNET AND A DOCKER HOST: it builds a kind node image (Debian
# packages, kindest/node), pulls busybox and registry images, and the nodes
# pull Kubernetes' own images through pinshim. Also needs kind (v0.32.0 or
# newer), kubectl, curl and a Rust toolchain on the host. It cannot run
# offline; hack/check-static.sh checks this script and its files statically.
#
# What it does (see hack/kind/README.md):
#   build pinshim (release) and the node image hack/kind/Dockerfile,
#   create a two-node kind cluster (hack/kind/kind-config.yaml),
#   run a local registry on the kind network and push a test image,
#   start the pods of hack/kind/pods.yaml, then check from the API that
#     - every container's imageID is registry/repo@sha256:<digest>, and for
#       the test pods exactly the digest the registry serves for the tag,
#     - kubectl exec, logs and port-forward work, and a Service reaches a pod,
#     - pushing other content to the same tag leaves the running pods'
#       imageID alone, while a pod started afterwards gets the new digest.
# The cluster and registry are deleted on exit unless PINSHIM_E2E_KEEP=1.
#
# Settings (environment):
#   PINSHIM_E2E_CLUSTER        kind cluster name        (pinshim-e2e)
#   PINSHIM_E2E_REGISTRY_PORT  host port of registry    (5055)
#   PINSHIM_E2E_FORWARD_PORT   local port-forward port  (18080)
#   PINSHIM_E2E_KEEP           1: keep cluster and registry afterwards
#   PINSHIM_E2E_BINARY         use this pinshim binary instead of building
#                              one (it must run on Debian trixie, the node's
#                              distribution, so build it on an older glibc)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
KIND_DIR="${ROOT}/hack/kind"

CLUSTER="${PINSHIM_E2E_CLUSTER:-pinshim-e2e}"
REGISTRY_PORT="${PINSHIM_E2E_REGISTRY_PORT:-5055}"
FORWARD_PORT="${PINSHIM_E2E_FORWARD_PORT:-18080}"
KEEP="${PINSHIM_E2E_KEEP:-0}"
BINARY="${PINSHIM_E2E_BINARY:-}"

NODE_IMAGE=pinshim-node:dev
# The registry container's name is how the nodes reach it on the kind
# network; daemon.json, pinshim.toml and pods.yaml name it too.
REGISTRY_NAME=pinshim-e2e-registry
REGISTRY_IMAGE=registry:2
BASE_IMAGE=busybox:1.37
REPO=pinshim-e2e/web
TAG=current
IN_CLUSTER_REPO="${REGISTRY_NAME}:5000/${REPO}"
HOST_REPO="127.0.0.1:${REGISTRY_PORT}/${REPO}"
NS=pinshim-e2e

# Every manifest media type, so the registry answers with the digest of
# whatever was pushed (a manifest or an index), as pinshim asks for it.
ACCEPT='application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json'
CANONICAL_RE='^[a-z0-9]([a-z0-9.-]*[a-z0-9])?(:[0-9]+)?/[a-z0-9._/-]+@sha256:[0-9a-f]{64}$'

WORK=""
REGISTRY_STARTED=0
CLUSTER_CREATED=0
FORWARD_PID=""

log() { printf '[e2e] %s\n' "$*" >&2; }
die() { log "FAIL: $*"; exit 1; }

require_tools() {
  local tool missing=() tools=(docker kind kubectl curl)
  [[ -n "${BINARY}" ]] || tools+=(cargo)
  for tool in "${tools[@]}"; do
    command -v "${tool}" >/dev/null 2>&1 || missing+=("${tool}")
  done
  ((${#missing[@]} == 0)) || die "missing tools: ${missing[*]}"
  docker info >/dev/null 2>&1 || die "no Docker host answers (docker info failed)"
}

kc() { kubectl --kubeconfig "${WORK}/kubeconfig" "$@"; }

# ------------------------------------------------------------- clean up --

stop_port_forward() {
  if [[ -n "${FORWARD_PID}" ]]; then
    kill "${FORWARD_PID}" 2>/dev/null || true
    wait "${FORWARD_PID}" 2>/dev/null || true
    FORWARD_PID=""
  fi
}

dump_diagnostics() {
  log "diagnostics:"
  kc get nodes -o wide >&2 || true
  kc get pods -A -o wide >&2 || true
  kc describe pods -n "${NS}" >&2 || true
  local node
  for node in $(kind get nodes --name "${CLUSTER}" 2>/dev/null); do
    log "last pinshim log lines on ${node}:"
    docker exec "${node}" journalctl -u pinshim.service --no-pager -n 60 >&2 || true
  done
}

cleanup() {
  local rc=$?
  stop_port_forward
  if ((rc != 0)) && ((CLUSTER_CREATED)); then dump_diagnostics; fi
  if [[ "${KEEP}" == 1 ]]; then
    log "keeping cluster ${CLUSTER} and registry ${REGISTRY_NAME} (PINSHIM_E2E_KEEP=1)"
  else
    if ((CLUSTER_CREATED)); then kind delete cluster --name "${CLUSTER}" >&2 || true; fi
    if ((REGISTRY_STARTED)); then docker rm -f "${REGISTRY_NAME}" >/dev/null 2>&1 || true; fi
  fi
  [[ -z "${WORK}" ]] || rm -rf "${WORK}"
  exit "${rc}"
}

# ------------------------------------------------------------ building --

build_pinshim() {
  if [[ -n "${BINARY}" ]]; then
    [[ -f "${BINARY}" ]] || die "PINSHIM_E2E_BINARY=${BINARY} is not a file"
    log "using pinshim binary ${BINARY}"
    return 0
  fi
  log "building pinshim (release)"
  (cd "${ROOT}" && cargo build --release)
  BINARY="${ROOT}/target/release/pinshim"
}

# The repository paths the Dockerfile COPYs: every COPY argument except
# flags and the destination.
context_sources() {
  awk '/^COPY[[:space:]]/ { for (i = 2; i < NF; i++) if ($i !~ /^--/) print $i }' "${KIND_DIR}/Dockerfile"
}

# A small build context laid out like the repository, instead of the whole
# tree with its target/ directory. The binary comes from build_pinshim.
stage_context() {
  local ctx="${WORK}/node-context" src from
  while read -r src; do
    from="${ROOT}/${src}"
    [[ "${src}" != target/release/pinshim ]] || from="${BINARY}"
    [[ -e "${from}" ]] || die "Dockerfile needs ${src}, but ${from} does not exist"
    mkdir -p "${ctx}/$(dirname "${src}")"
    cp -p "${from}" "${ctx}/${src}"
  done < <(context_sources)
  printf '%s' "${ctx}"
}

build_node_image() {
  local ctx
  ctx="$(stage_context)"
  log "building node image ${NODE_IMAGE}"
  docker build -t "${NODE_IMAGE}" -f "${KIND_DIR}/Dockerfile" "${ctx}"
}

# ------------------------------------------------------ cluster, registry --

create_cluster() {
  if kind get clusters 2>/dev/null | grep -qx "${CLUSTER}"; then
    die "a kind cluster named ${CLUSTER} already exists; delete it or set PINSHIM_E2E_CLUSTER"
  fi
  log "creating kind cluster ${CLUSTER}"
  CLUSTER_CREATED=1
  kind create cluster --name "${CLUSTER}" --config "${KIND_DIR}/kind-config.yaml" \
    --kubeconfig "${WORK}/kubeconfig" --wait 5m
}

start_registry() {
  if docker inspect "${REGISTRY_NAME}" >/dev/null 2>&1; then
    die "a container named ${REGISTRY_NAME} already exists; remove it first"
  fi
  log "starting registry ${REGISTRY_NAME} on the kind network (host port ${REGISTRY_PORT})"
  REGISTRY_STARTED=1
  docker run -d --name "${REGISTRY_NAME}" --network kind \
    -p "127.0.0.1:${REGISTRY_PORT}:5000" "${REGISTRY_IMAGE}" >/dev/null
  local i
  for ((i = 0; i < 30; i++)); do
    curl -fsS -o /dev/null "http://127.0.0.1:${REGISTRY_PORT}/v2/" 2>/dev/null && return 0
    sleep 1
  done
  die "registry did not answer on 127.0.0.1:${REGISTRY_PORT}"
}

# push_variant NAME: build a test image whose page says NAME and push it to
# the test tag.
push_variant() {
  local variant="$1" ctx="${WORK}/image-$1"
  mkdir -p "${ctx}"
  cat >"${ctx}/Dockerfile" <<EOF
FROM ${BASE_IMAGE}
RUN mkdir -p /www && echo "pinshim-e2e ${variant}" > /www/index.html
CMD ["sh", "-c", "echo pinshim-e2e web ready; exec httpd -f -p 8080 -h /www"]
EOF
  log "pushing variant ${variant} to ${HOST_REPO}:${TAG}"
  docker build -q -t "${HOST_REPO}:${TAG}" "${ctx}" >/dev/null
  docker push -q "${HOST_REPO}:${TAG}" >/dev/null
}

# The digest the registry serves for the test tag right now.
registry_digest() {
  curl -fsSI -H "Accept: ${ACCEPT}" "http://127.0.0.1:${REGISTRY_PORT}/v2/${REPO}/manifests/${TAG}" |
    tr -d '\r' | awk -F': *' 'tolower($1) == "docker-content-digest" { print $2 }'
}

# --------------------------------------------------------------- checks --

check_runtime() {
  local version
  while read -r version; do
    [[ "${version}" == docker://* ]] ||
      die "a node reports runtime ${version}; expected pinshim's docker://<version>"
  done < <(kc get nodes -o jsonpath='{range .items[*]}{.status.nodeInfo.containerRuntimeVersion}{"\n"}{end}')
  log "ok: every node's runtime is pinshim on Docker"
}

deploy_pods() {
  kc apply -f "${KIND_DIR}/pods.yaml" >&2
  kc wait -n "${NS}" --for=condition=Ready pod/web pod/client --timeout=5m >&2
}

# Lines "namespace/pod container imageID" for every container of every pod.
image_ids() {
  # shellcheck disable=SC2016 # a Go template, not a shell expression
  kc get pods -A -o go-template='{{range .items}}{{$p := printf "%s/%s" .metadata.namespace .metadata.name}}{{range .status.initContainerStatuses}}{{$p}} {{.name}} {{.imageID}}{{"\n"}}{{end}}{{range .status.containerStatuses}}{{$p}} {{.name}} {{.imageID}}{{"\n"}}{{end}}{{end}}'
}

# kube-system and other pods start at their own pace; every container must
# be running (and so have an imageID) before they are all checked.
wait_all_pods() {
  kc wait -A --for=condition=Ready pod --all --field-selector=status.phase!=Succeeded \
    --timeout=5m >&2
}

check_all_canonical() {
  local pod name id count=0
  while read -r pod name id; do
    [[ "${id}" =~ ${CANONICAL_RE} ]] || die "${pod} ${name}: imageID '${id}' is not registry/repo@sha256:<digest>"
    count=$((count + 1))
  done < <(image_ids)
  ((count > 0)) || die "no container statuses found"
  log "ok: all ${count} containers report a canonical imageID"
}

# pod_image_id POD: the imageID of the pod's only container.
pod_image_id() {
  kc get pod -n "${NS}" "$1" -o jsonpath='{.status.containerStatuses[0].imageID}'
}

expect_image_id() {
  local pod="$1" want="$2" got
  got="$(pod_image_id "${pod}")"
  [[ "${got}" == "${want}" ]] || die "pod ${pod}: imageID ${got}, expected ${want}"
  log "ok: pod ${pod} imageID ${got}"
}

check_exec() {
  local body
  body="$(kc exec -n "${NS}" web -- cat /www/index.html)"
  [[ "${body}" == "pinshim-e2e v1" ]] || die "exec: got '${body}'"
  log "ok: kubectl exec"
}

check_logs() {
  kc logs -n "${NS}" web | grep -qx 'pinshim-e2e web ready' || die "logs: ready line missing"
  log "ok: kubectl logs"
}

check_port_forward() {
  local i body=""
  kc port-forward -n "${NS}" pod/web "${FORWARD_PORT}:8080" >"${WORK}/port-forward.log" 2>&1 &
  FORWARD_PID=$!
  for ((i = 0; i < 30; i++)); do
    body="$(curl -fsS --max-time 5 "http://127.0.0.1:${FORWARD_PORT}/" 2>/dev/null)" && break
    sleep 1
  done
  stop_port_forward
  [[ "${body}" == "pinshim-e2e v1" ]] || { cat "${WORK}/port-forward.log" >&2; die "port-forward: got '${body}'"; }
  log "ok: kubectl port-forward"
}

check_service() {
  local i body=""
  for ((i = 0; i < 30; i++)); do
    body="$(kc exec -n "${NS}" client -- wget -qO- -T 5 http://web 2>/dev/null)" && break
    sleep 2
  done
  [[ "${body}" == "pinshim-e2e v1" ]] || die "service: client got '${body}' from http://web"
  log "ok: Service web reached from pod client"
}

# Move the tag; running pods must keep their digest, a new pod gets the new one.
check_tag_move() {
  local old="$1" new
  push_variant v2
  new="$(registry_digest)"
  [[ -n "${new}" && "${new}" != "${old}" ]] || die "pushing v2 did not change the tag's digest (${new})"
  log "tag ${TAG} moved: ${old} -> ${new}"
  sleep 5
  expect_image_id web "${IN_CLUSTER_REPO}@${old}"
  expect_image_id client "${IN_CLUSTER_REPO}@${old}"
  check_exec
  kc run -n "${NS}" late --image "${IN_CLUSTER_REPO}:${TAG}" --image-pull-policy Always \
    --restart Never --command -- sleep 3600 >&2
  kc wait -n "${NS}" --for=condition=Ready pod/late --timeout=3m >&2
  expect_image_id late "${IN_CLUSTER_REPO}@${new}"
}

main() {
  require_tools
  WORK="$(mktemp -d)"
  trap cleanup EXIT
  build_pinshim
  build_node_image
  create_cluster
  start_registry
  check_runtime

  push_variant v1
  local digest
  digest="$(registry_digest)"
  [[ "${digest}" =~ ^sha256:[0-9a-f]{64}$ ]] || die "registry gave no digest for ${REPO}:${TAG}"
  deploy_pods

  wait_all_pods
  check_all_canonical
  expect_image_id web "${IN_CLUSTER_REPO}@${digest}"
  expect_image_id client "${IN_CLUSTER_REPO}@${digest}"
  check_exec
  check_logs
  check_port_forward
  check_service
  check_tag_move "${digest}"
  log "PASS"
}

main "$@"
