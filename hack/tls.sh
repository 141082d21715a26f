#!/usr/bin/env bash
# TLS registries for the tests, local to this host: a private CA, a registry that
# serves HTTPS with a certificate from it, and one that also demands a client
# certificate. Sourced by lib.sh (it uses log, die, quiet, rcurl,
# write_if_changed, pidfile_alive, start_daemon and the PINSHIM_* settings
# from there); don't run it.
#
# Like lib.sh, everything is idempotent: the PKI is made once and reused while
# valid, registries are started only when nothing answers on their port, and
# only processes started here (tracked by pidfile) are ever stopped.

PINSHIM_PACKAGES+=(openssl)

# Docker treats a registry on a loopback address as insecure: it skips the
# certificate check and never presents a client certificate there. So the TLS
# registries listen on an address from TEST-NET-1 (RFC 5737, never routed)
# added to the loopback interface: Docker checks them like any remote
# registry, and no packet leaves the host.
PINSHIM_TLS_ADDR=192.0.2.10
PINSHIM_TLS_REGISTRY="${PINSHIM_TLS_ADDR}:5002"
PINSHIM_MTLS_REGISTRY="${PINSHIM_TLS_ADDR}:5003"

PINSHIM_PKI_DIR="${PINSHIM_TEST_STATE}/pki"
PINSHIM_TEST_CA="${PINSHIM_PKI_DIR}/ca.pem"
PINSHIM_TEST_CA_KEY="${PINSHIM_PKI_DIR}/ca-key.pem"
PINSHIM_TEST_SERVER_CERT="${PINSHIM_PKI_DIR}/server.pem"
PINSHIM_TEST_SERVER_KEY="${PINSHIM_PKI_DIR}/server-key.pem"
PINSHIM_TEST_CLIENT_CA="${PINSHIM_PKI_DIR}/client-ca.pem"
PINSHIM_TEST_CLIENT_CA_KEY="${PINSHIM_PKI_DIR}/client-ca-key.pem"
PINSHIM_TEST_CLIENT_CERT="${PINSHIM_PKI_DIR}/client.pem"
PINSHIM_TEST_CLIENT_KEY="${PINSHIM_PKI_DIR}/client-key.pem"

# Images mirrored from the plain registry into both TLS registries.
PINSHIM_TLS_IMAGES=(pinshim-test/busybox:latest pinshim-test/multiarch:latest)

# Set to 1 by ensure_test_ca when it made new certificates, so registries
# still serving the old ones get restarted.
PINSHIM_PKI_CHANGED=0

# -------------------------------------------------------------------- PKI --

# Certificates must stay valid for at least this long, or they are remade.
PINSHIM_PKI_MIN_VALIDITY=$((7 * 24 * 3600))

# A fresh P-256 key, PKCS#8 (what every TLS stack here reads).
pki_key() { quiet openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1"; }

# pki_ca KEY CERT CN: a self-signed CA. rustls wants CA:TRUE and keyCertSign.
pki_ca() {
  pki_key "$1"
  quiet openssl req -x509 -new -key "$1" -out "$2" -days 3650 -subj "/CN=$3" -sha256 \
    -addext 'basicConstraints=critical,CA:TRUE' \
    -addext 'keyUsage=critical,keyCertSign,cRLSign' \
    -addext 'subjectKeyIdentifier=hash'
}

# pki_leaf KEY CERT CN CA_CERT CA_KEY EXTENSIONS: a certificate signed by the CA.
pki_leaf() {
  local key="$1" cert="$2" cn="$3" ca="$4" ca_key="$5" ext="$6" csr extfile
  csr="$(mktemp)"
  extfile="$(mktemp)"
  printf '%s\n' "${ext}" >"${extfile}"
  pki_key "${key}"
  quiet openssl req -new -key "${key}" -out "${csr}" -subj "/CN=${cn}"
  quiet openssl x509 -req -in "${csr}" -CA "${ca}" -CAkey "${ca_key}" -CAcreateserial -out "${cert}" \
    -days 825 -sha256 -extfile "${extfile}"
  rm -f "${csr}" "${extfile}"
}

# Are all PKI files present, chained to their CA and valid for a while?
pki_ok() {
  local f
  for f in "${PINSHIM_TEST_CA}" "${PINSHIM_TEST_CA_KEY}" "${PINSHIM_TEST_SERVER_CERT}" "${PINSHIM_TEST_SERVER_KEY}" \
    "${PINSHIM_TEST_CLIENT_CA}" "${PINSHIM_TEST_CLIENT_CA_KEY}" "${PINSHIM_TEST_CLIENT_CERT}" \
    "${PINSHIM_TEST_CLIENT_KEY}"; do
    [[ -s "${f}" ]] || return 1
  done
  for f in "${PINSHIM_TEST_CA}" "${PINSHIM_TEST_SERVER_CERT}" "${PINSHIM_TEST_CLIENT_CA}" "${PINSHIM_TEST_CLIENT_CERT}"; do
    openssl x509 -in "${f}" -noout -checkend "${PINSHIM_PKI_MIN_VALIDITY}" >/dev/null 2>&1 || return 1
  done
  openssl x509 -in "${PINSHIM_TEST_SERVER_CERT}" -noout -ext subjectAltName 2>/dev/null |
    grep -q "IP Address:${PINSHIM_TLS_ADDR}" || return 1
  openssl verify -CAfile "${PINSHIM_TEST_CA}" "${PINSHIM_TEST_SERVER_CERT}" >/dev/null 2>&1 &&
    openssl verify -CAfile "${PINSHIM_TEST_CLIENT_CA}" "${PINSHIM_TEST_CLIENT_CERT}" >/dev/null 2>&1
}

# A server CA + certificate for the registries' addresses and a separate client CA +
# client certificate, made once under PINSHIM_PKI_DIR. Built in a scratch
# directory and moved into place, so an interrupted run leaves no half PKI.
ensure_test_ca() {
  command -v openssl >/dev/null 2>&1 || die "openssl is missing; run ensure_packages as root"
  pki_ok && return 0

  log "creating test PKI in ${PINSHIM_PKI_DIR}"
  local tmp="${PINSHIM_PKI_DIR}.new" f
  rm -rf "${tmp}"
  mkdir -p "${tmp}"
  chmod 0700 "${tmp}"
  pki_ca "${tmp}/ca-key.pem" "${tmp}/ca.pem" "pinshim test CA"
  pki_leaf "${tmp}/server-key.pem" "${tmp}/server.pem" localhost "${tmp}/ca.pem" "${tmp}/ca-key.pem" \
    "basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth
subjectAltName=IP:${PINSHIM_TLS_ADDR},IP:127.0.0.1,DNS:localhost"
  pki_ca "${tmp}/client-ca-key.pem" "${tmp}/client-ca.pem" "pinshim test client CA"
  pki_leaf "${tmp}/client-key.pem" "${tmp}/client.pem" pinshim-test-client "${tmp}/client-ca.pem" \
    "${tmp}/client-ca-key.pem" \
    "basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=clientAuth"
  rm -f "${tmp}"/*.srl
  # Certificates are public; keys stay private to the (root) user running the tests.
  for f in "${tmp}"/*.pem; do
    if [[ "${f}" == *-key.pem ]]; then chmod 0600 "${f}"; else chmod 0644 "${f}"; fi
  done
  chmod 0755 "${tmp}"
  rm -rf "${PINSHIM_PKI_DIR}"
  mv "${tmp}" "${PINSHIM_PKI_DIR}"
  pki_ok || die "the new test PKI does not verify"
  PINSHIM_PKI_CHANGED=1
}

# -------------------------------------------------------------- registries --

# curl arguments that reach registry ADDR: scheme-less TLS options and auth.
registry_curl_args() {
  case "$1" in
    "${PINSHIM_TLS_REGISTRY}") printf '%s\n' --cacert "${PINSHIM_TEST_CA}" ;;
    "${PINSHIM_MTLS_REGISTRY}")
      printf '%s\n' --cacert "${PINSHIM_TEST_CA}" --cert "${PINSHIM_TEST_CLIENT_CERT}" --key "${PINSHIM_TEST_CLIENT_KEY}"
      ;;
    *) registry_auth_args "$1" ;;
  esac
}

# Base URL of the API of registry ADDR.
registry_url() {
  case "$1" in
    "${PINSHIM_TLS_REGISTRY}" | "${PINSHIM_MTLS_REGISTRY}") echo "https://$1/v2" ;;
    *) echo "http://$1/v2" ;;
  esac
}

# rcurl against registry ADDR: regcurl ADDR PATH [curl args...]
regcurl() {
  local addr="$1" path="$2" args=()
  shift 2
  mapfile -t args < <(registry_curl_args "${addr}")
  rcurl "${args[@]}" "$@" "$(registry_url "${addr}")${path}"
}

# HTTP status of GET /v2/ on TLS registry ADDR ("000" if nothing answers or
# the TLS handshake fails).
tls_registry_status() {
  regcurl "$1" / -o /dev/null -w '%{http_code}' --max-time 5 2>/dev/null || true
}

tls_registry_config() { # name addr [client-ca]
  # The plain registry's config (it ends inside `http:`) plus its TLS keys.
  registry_config "$1" "$2"
  cat <<EOF
  tls:
    certificate: ${PINSHIM_TEST_SERVER_CERT}
    key: ${PINSHIM_TEST_SERVER_KEY}
EOF
  if [[ -n "${3:-}" ]]; then
    cat <<EOF
    clientcas:
      - $3
EOF
  fi
}

# Stop the registry whose pid is in PIDFILE if it is ours (runs CONFIG).
stop_registry_pidfile() {
  local pidfile="$1" cfg="$2" i
  pidfile_alive "${pidfile}" "${cfg}" || return 0
  kill "$(cat "${pidfile}")" 2>/dev/null || true
  for ((i = 0; i < 50; i++)); do
    pidfile_alive "${pidfile}" "${cfg}" || break
    sleep 0.1
  done
  pidfile_alive "${pidfile}" "${cfg}" && die "registry pid $(cat "${pidfile}") did not stop"
  rm -f "${pidfile}"
}

# ensure_tls_registry NAME ADDR [mtls]
ensure_tls_registry() {
  local name="$1" addr="$2" mtls="${3:-}"
  local dir="${PINSHIM_TEST_STATE}/registry-${name}"
  local cfg="${dir}/config.yml" pidfile="${dir}/registry.pid" client_ca="" changed=0 status i ours=0
  mkdir -p "${dir}/data"
  [[ -n "${mtls}" ]] && client_ca="${PINSHIM_TEST_CLIENT_CA}"
  write_if_changed "${cfg}" "$(tls_registry_config "${name}" "${addr}" "${client_ca}")" && changed=1
  ((PINSHIM_PKI_CHANGED)) && changed=1

  pidfile_alive "${pidfile}" "${cfg}" && ours=1
  if ((ours && changed)); then
    log "registry ${name}: config or certificates changed, restarting"
    stop_registry_pidfile "${pidfile}" "${cfg}"
    ours=0
  fi

  status="$(tls_registry_status "${addr}")"
  if [[ "${status}" == 200 ]]; then
    ((ours)) || log "registry ${name}: ${addr} is already served by a process not started here; using it"
    return 0
  fi
  if ((ours)); then
    # Ours, yet not answering with the current certificates (still starting,
    # or the PKI was remade by another run): start afresh.
    log "registry ${name}: pid $(cat "${pidfile}") does not answer correctly, restarting"
    stop_registry_pidfile "${pidfile}" "${cfg}"
    ours=0
  fi
  [[ "${status}" == 000 ]] ||
    die "registry ${name}: https://${addr}/v2/ answers ${status}, expected 200; something else holds the port"
  # Nothing that speaks our TLS answers; is the port held all the same?
  if rcurl -k -o /dev/null --max-time 5 "https://${addr}/v2/" 2>/dev/null ||
    rcurl -o /dev/null --max-time 5 "http://${addr}/v2/" 2>/dev/null; then
    die "registry ${name}: ${addr} is held by a server that does not present the test certificate"
  fi

  if ((!ours)); then
    log "registry ${name}: starting on https://${addr} (log: ${dir}/registry.log)"
    start_daemon "${dir}/registry.log" "${pidfile}" /usr/bin/docker-registry serve "${cfg}"
  fi
  for ((i = 0; i < 100; i++)); do
    [[ "$(tls_registry_status "${addr}")" == 200 ]] && return 0
    pidfile_alive "${pidfile}" "${cfg}" || break
    sleep 0.2
  done
  tail -n 20 "${dir}/registry.log" >&2 || true
  die "registry ${name} did not come up on https://${addr}"
}

# The mTLS registry must refuse a client without a certificate; otherwise the
# tests of that refusal would pass for the wrong reason.
check_mtls_enforced() {
  local status
  status="$(rcurl --cacert "${PINSHIM_TEST_CA}" -o /dev/null -w '%{http_code}' --max-time 5 \
    "https://${PINSHIM_MTLS_REGISTRY}/v2/" 2>/dev/null || true)"
  [[ "${status}" == 000 ]] ||
    die "registry mtls: ${PINSHIM_MTLS_REGISTRY} answered ${status} without a client certificate"
}

# The registries' address on the loopback interface (see PINSHIM_TLS_ADDR).
ensure_tls_address() {
  ip -4 addr show dev lo | grep -q "inet ${PINSHIM_TLS_ADDR}/" && return 0
  log "adding ${PINSHIM_TLS_ADDR}/32 to the loopback interface for the TLS registries"
  ip addr add "${PINSHIM_TLS_ADDR}/32" dev lo
}

ensure_tls_registries() {
  ensure_tls_address
  ensure_test_ca
  ensure_tls_registry tls "${PINSHIM_TLS_REGISTRY}"
  ensure_tls_registry mtls "${PINSHIM_MTLS_REGISTRY}" mtls
  check_mtls_enforced
  PINSHIM_PKI_CHANGED=0
}

# Stop the TLS registries these scripts started (and nothing else).
stop_tls_registries() {
  local name dir
  for name in tls mtls; do
    dir="${PINSHIM_TEST_STATE}/registry-${name}"
    pidfile_alive "${dir}/registry.pid" "${dir}/config.yml" || continue
    log "registry ${name}: stopping pid $(cat "${dir}/registry.pid")"
    stop_registry_pidfile "${dir}/registry.pid" "${dir}/config.yml"
  done
}

# ------------------------------------------------------------- image copy --

# Digest of REPO:REF in registry ADDR (empty if absent): registry_digest ADDR REPO REF
registry_digest() {
  regcurl "$1" "/$2/manifests/$3" -f -I -H "Accept: ${MT_ANY_MANIFEST}" 2>/dev/null |
    tr -d '\r' | sed -n 's/^[Dd]ocker-[Cc]ontent-[Dd]igest: *//p'
}

# Copy blob DIGEST of REPO from SRC to DST unless DST has it: copy_blob SRC DST REPO DIGEST WORKDIR
copy_blob() {
  local src="$1" dst="$2" repo="$3" digest="$4" work="$5" file location
  regcurl "${dst}" "/${repo}/blobs/${digest}" -f -I -o /dev/null 2>/dev/null && return 0
  file="${work}/blob"
  regcurl "${src}" "/${repo}/blobs/${digest}" -f -L -o "${file}"
  [[ "$(sha256_of "${file}")" == "${digest}" ]] || die "blob ${digest} from ${src}/${repo} does not match its digest"
  location="$(regcurl "${dst}" "/${repo}/blobs/uploads/" -f -X POST -D - -o /dev/null |
    tr -d '\r' | sed -n 's/^[Ll]ocation: *//p')"
  [[ -n "${location}" ]] || die "blob upload to ${dst}/${repo}: no Location header"
  # A relative Location is relative to the host; regcurl adds /v2 itself.
  [[ "${location}" == http* ]] || location="$(registry_url "${dst}")${location#/v2}"
  if [[ "${location}" == *\?* ]]; then location+="&"; else location+="?"; fi
  local args=()
  mapfile -t args < <(registry_curl_args "${dst}")
  rcurl "${args[@]}" -f -o /dev/null -X PUT -H 'Content-Type: application/octet-stream' \
    --data-binary "@${file}" "${location}digest=${digest}"
  rm -f "${file}"
}

# Copy manifest REF (tag or digest) of REPO from SRC to DST byte for byte, so
# its digest stays the same, with everything it references first:
# copy_manifest SRC DST REPO REF WORKDIR
copy_manifest() {
  local src="$1" dst="$2" repo="$3" ref="$4" work="$5" body type child blob
  body="$(mktemp -p "${work}" manifest.XXXXXX)"
  type="$(regcurl "${src}" "/${repo}/manifests/${ref}" -f -H "Accept: ${MT_ANY_MANIFEST}" -o "${body}" \
    -w '%{content_type}')"
  type="${type%%;*}"
  case "${type}" in
    "${MT_DOCKER_LIST}" | "${MT_OCI_INDEX}")
      while read -r child; do
        copy_manifest "${src}" "${dst}" "${repo}" "${child}" "${work}"
      done < <(jq -r '.manifests[].digest' "${body}")
      ;;
    "${MT_DOCKER_MANIFEST}" | "${MT_OCI_MANIFEST}")
      # Foreign (non-distributable) layers live elsewhere and are not copied.
      while read -r blob; do
        copy_blob "${src}" "${dst}" "${repo}" "${blob}" "${work}"
      done < <(jq -r '.config.digest, (.layers[] | select(.mediaType | test("foreign|nondistributable") | not) | .digest)' \
        "${body}")
      ;;
    *) die "${src}/${repo}:${ref} has unsupported media type ${type:-<none>}" ;;
  esac
  local args=()
  mapfile -t args < <(registry_curl_args "${dst}")
  rcurl "${args[@]}" -f -o /dev/null -X PUT -H "Content-Type: ${type}" --data-binary "@${body}" \
    "$(registry_url "${dst}")/${repo}/manifests/${ref}"
  rm -f "${body}"
}

# copy_image_to SRC_REGISTRY DST_REGISTRY REPO TAG: copy REPO:TAG (an image or
# an index with all its images) between two of the test registries.
copy_image_to() {
  local src="$1" dst="$2" repo="$3" tag="$4" work want got
  want="$(registry_digest "${src}" "${repo}" "${tag}")"
  [[ -n "${want}" ]] || die "${src}/${repo}:${tag} does not exist"
  work="$(mktemp -d)"
  copy_manifest "${src}" "${dst}" "${repo}" "${tag}" "${work}"
  rm -rf "${work}"
  got="$(registry_digest "${dst}" "${repo}" "${tag}")"
  [[ "${got}" == "${want}" ]] || die "copy of ${repo}:${tag} to ${dst} has digest ${got:-<none>}, expected ${want}"
}

# Mirror PINSHIM_TLS_IMAGES from the plain registry into both TLS registries
# where they are missing or differ (the plain copies get rebuilt at times).
ensure_tls_test_images() {
  local image repo tag dst want
  for image in "${PINSHIM_TLS_IMAGES[@]}"; do
    repo="${image%:*}"
    tag="${image##*:}"
    want="$(registry_digest "${PINSHIM_REGISTRY}" "${repo}" "${tag}")"
    [[ -n "${want}" ]] || die "${PINSHIM_REGISTRY}/${image} is missing; run ensure_test_images first"
    for dst in "${PINSHIM_TLS_REGISTRY}" "${PINSHIM_MTLS_REGISTRY}"; do
      [[ "$(registry_digest "${dst}" "${repo}" "${tag}")" == "${want}" ]] && continue
      log "copying ${image} to ${dst}"
      copy_image_to "${PINSHIM_REGISTRY}" "${dst}" "${repo}" "${tag}"
    done
  done
}

# -------------------------------------------------------------------- env --

export_tls_test_env() {
  export PINSHIM_TLS_REGISTRY PINSHIM_MTLS_REGISTRY PINSHIM_TEST_CA PINSHIM_TEST_CLIENT_CERT PINSHIM_TEST_CLIENT_KEY
}

# Registries, their images and the environment; needs env_up's plain registry.
tls_env_up() {
  ensure_tls_registries
  ensure_tls_test_images
  export_tls_test_env
}
