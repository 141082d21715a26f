#!/usr/bin/env bash
# Static checks of the scripts, units, configs and the kind e2e setup.
# Needs no internet, no Docker and no root, and takes seconds:
#   - `bash -n` on every hack/**/*.sh, and shellcheck when it is installed
#   - every TOML file parses (python3 tomllib) and every JSON file parses;
#     contrib/config.toml names every flag of src/config.rs with its default
#   - every YAML file parses (python3 yaml when importable, otherwise only
#     textual checks, said so in the output)
#   - hack/install.sh into a temporary DESTDIR: files, modes, contents, and
#     an operator's config.toml left alone on a second run
#   - `systemd-analyze verify` on the installed units, when systemd-analyze
#     exists (skipped with a message otherwise)
#   - hack/kind: the cluster config and manifests say what e2e.sh relies on,
#     and every file the Dockerfile copies exists in the repository
# Exits non-zero if any check fails. Skipped checks are listed, not failed.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SOCKET=unix:///run/pinshim/pinshim.sock
E2E_REGISTRY=pinshim-e2e-registry:5000

FAILED=0
SKIPPED=0
TMP=""

ok() { printf 'ok    %s\n' "$*"; }
fail() { printf 'FAIL  %s\n' "$*"; FAILED=$((FAILED + 1)); }
skip() { printf 'skip  %s\n' "$*"; SKIPPED=$((SKIPPED + 1)); }

cleanup() { [[ -z "${TMP}" ]] || rm -rf "${TMP}"; }

has() { command -v "$1" >/dev/null 2>&1; }

# Repository files with one of the given extensions, outside target/ and .git/.
repo_files() {
  local ext args=()
  for ext in "$@"; do args+=(-o -name "*.${ext}"); done
  (cd "${ROOT}" && find . \( -path ./target -o -path ./.git \) -prune -o -type f \( "${args[@]:1}" \) -print |
    sed 's|^\./||' | sort)
}

python_has() { has python3 && python3 -c "import $1" >/dev/null 2>&1; }

# ------------------------------------------------------------------ shell --

check_bash_syntax() {
  local f
  while read -r f; do
    if bash -n "${ROOT}/${f}" 2>"${TMP}/bash-n.err"; then ok "bash -n ${f}"; else
      fail "bash -n ${f}: $(cat "${TMP}/bash-n.err")"
    fi
  done < <(repo_files sh | grep '^hack/')
}

# The shellcheck run is the slowest check (mostly hack/lib.sh, which several
# scripts source), so it runs in the background while the others run.
SHELLCHECK_PID=""
SHELLCHECK_FILES=0

start_shellcheck() {
  has shellcheck || return 0
  local files=()
  mapfile -t files < <(repo_files sh | grep '^hack/')
  SHELLCHECK_FILES=${#files[@]}
  (cd "${ROOT}" && shellcheck -x "${files[@]}") >"${TMP}/shellcheck.out" 2>&1 &
  SHELLCHECK_PID=$!
}

finish_shellcheck() {
  if [[ -z "${SHELLCHECK_PID}" ]]; then
    skip "shellcheck: not installed"
  elif wait "${SHELLCHECK_PID}"; then
    ok "shellcheck ${SHELLCHECK_FILES} scripts under hack/"
  else
    fail "shellcheck:"
    cat "${TMP}/shellcheck.out"
  fi
}

# ------------------------------------------------------------- TOML, JSON --

check_toml_files() {
  if ! python_has tomllib; then
    skip "TOML parsing: python3 with tomllib (3.11+) not available"
    return 0
  fi
  local f
  while read -r f; do
    if python3 -c 'import sys, tomllib; tomllib.load(open(sys.argv[1], "rb"))' "${ROOT}/${f}" 2>"${TMP}/toml.err"; then
      ok "TOML parses: ${f}"
    else
      fail "TOML ${f}: $(tail -n 1 "${TMP}/toml.err")"
    fi
  done < <(repo_files toml)
}

check_json_files() {
  if ! has python3; then
    skip "JSON parsing: python3 not available"
    return 0
  fi
  local f
  while read -r f; do
    if python3 -m json.tool "${ROOT}/${f}" >/dev/null 2>"${TMP}/json.err"; then ok "JSON parses: ${f}"; else
      fail "JSON ${f}: $(tail -n 1 "${TMP}/json.err")"
    fi
  done < <(repo_files json | grep -v '^src/stats/testdata/' || true)
}

# contrib/config.toml must list every flag of src/config.rs, commented out,
# with the flag's default, and parse once uncommented.
check_example_config() {
  if ! python_has tomllib; then
    skip "contrib/config.toml against src/config.rs: needs python3 tomllib"
    return 0
  fi
  if python3 - "${ROOT}/src/config.rs" "${ROOT}/contrib/config.toml" >"${TMP}/config.out" 2>&1 <<'PY'; then
import re, sys, tomllib

rs, example = open(sys.argv[1]).read(), open(sys.argv[2]).read()
flags = {}
for attr, field in re.findall(r'#\[arg\((.*?)\)\]\s*pub (\w+):', rs, re.S):
    if not re.search(r'\blong\b', attr):
        continue
    named = re.search(r'\blong\s*=\s*"([^"]+)"', attr)
    name = named.group(1) if named else field.replace('_', '-')
    default = re.search(r'\bdefault_value\s*=\s*"([^"]*)"', attr)
    flags[name] = (default.group(1) if default else None, 'value_delimiter' in attr)
flags.pop('config', None)  # the file itself is not a key in it

keyline = re.compile(r'^#\s?([a-z][a-z0-9-]*)\s*=\s*(.+)$')
lines = [m.group(1) + ' = ' + m.group(2) for m in map(keyline.match, example.splitlines()) if m]
doc = tomllib.loads('\n'.join(lines))  # duplicate keys fail here
active = tomllib.loads(example)
problems = []
if active:
    problems.append('keys set (not commented out): ' + ', '.join(sorted(active)))
for name, (default, is_list) in sorted(flags.items()):
    if name not in doc:
        problems.append(f'flag --{name} has no key')
        continue
    value = doc[name]
    shown = ','.join(map(str, value)) if isinstance(value, list) else str(value)
    if default is not None and shown != default:
        problems.append(f'{name}: example shows {shown!r}, src/config.rs default is {default!r}')
for name in sorted(set(doc) - set(flags)):
    print(f'note: key {name} has no flag in src/config.rs yet')
print('\n'.join(problems))
sys.exit(1 if problems else 0)
PY
    ok "contrib/config.toml lists every flag of src/config.rs with its default"
    grep '^note:' "${TMP}/config.out" | sed 's/^/      /' || true
  else
    fail "contrib/config.toml against src/config.rs:"
    sed 's/^/      /' "${TMP}/config.out"
  fi
}

# ------------------------------------------------------------------- YAML --

# Fallback when PyYAML is missing: no tabs in indentation, and each document
# separator on a line of its own.
yaml_text_check() {
  local f="$1"
  if grep -nP '^\t| \t' "${ROOT}/${f}" >/dev/null; then return 1; fi
  if grep -n -- '^---.\+' "${ROOT}/${f}" >/dev/null; then return 1; fi
  return 0
}

check_yaml_files() {
  local f have_yaml=0
  python_has yaml && have_yaml=1
  ((have_yaml)) || skip "YAML parsing: python3 yaml module not importable; textual checks only"
  while read -r f; do
    if ((have_yaml)); then
      if python3 -c 'import sys, yaml; list(yaml.safe_load_all(open(sys.argv[1])))' "${ROOT}/${f}" 2>"${TMP}/yaml.err"; then
        ok "YAML parses: ${f}"
      else
        fail "YAML ${f}: $(tail -n 3 "${TMP}/yaml.err" | tr '\n' ' ')"
      fi
    elif yaml_text_check "${f}"; then
      ok "YAML text looks sane (not parsed): ${f}"
    else
      fail "YAML ${f}: tab indentation or a malformed document separator"
    fi
  done < <(repo_files yaml yml)
}

# ---------------------------------------------------------------- install --

stat_mode() { stat -c '%a' "$1"; }

expect_installed() { # MODE PATH [SOURCE]
  local mode="$1" path="$2" src="${3:-}"
  if [[ ! -e "${path}" ]]; then fail "install: ${path#"${TMP}"/} missing"; return 0; fi
  if [[ "$(stat_mode "${path}")" != "${mode}" ]]; then
    fail "install: ${path#"${TMP}"/} has mode $(stat_mode "${path}"), want ${mode}"
  elif [[ -n "${src}" ]] && ! cmp -s "${src}" "${path}"; then
    fail "install: ${path#"${TMP}"/} differs from ${src#"${ROOT}"/}"
  else
    ok "install: ${path#"${TMP}/"} (${mode})"
  fi
}

run_install() { bash "${ROOT}/hack/install.sh" "$@" >"${TMP}/install.out" 2>&1; }

check_install() {
  local dest="${TMP}/destdir" bin="${TMP}/fake-pinshim"
  printf '#!/bin/sh\nexit 0\n' >"${bin}"
  chmod 0644 "${bin}"
  if ! run_install --no-build --binary "${bin}" --prefix "${dest}"; then
    fail "install: hack/install.sh failed:"; cat "${TMP}/install.out"; return 0
  fi
  expect_installed 755 "${dest}/usr/local/bin/pinshim" "${bin}"
  expect_installed 644 "${dest}/etc/systemd/system/pinshim.service" "${ROOT}/contrib/systemd/pinshim.service"
  expect_installed 644 "${dest}/etc/systemd/system/pinshim.socket" "${ROOT}/contrib/systemd/pinshim.socket"
  expect_installed 644 "${dest}/etc/pinshim/config.toml" "${ROOT}/contrib/config.toml"
  expect_installed 755 "${dest}/etc/pinshim/certs.d"
  grep -q 'systemctl daemon-reload && systemctl enable --now pinshim.socket pinshim.service' "${TMP}/install.out" ||
    fail "install: the next-step command is not printed"
  check_reinstall_keeps_config "${dest}" "${bin}"
  check_install_refusals "${bin}"
}

check_reinstall_keeps_config() {
  local dest="$1" bin="$2" cfg="$1/etc/pinshim/config.toml"
  printf 'log-level = "debug"  # operator edit\n' >>"${cfg}"
  cp "${cfg}" "${TMP}/config.before"
  if ! run_install --no-build --binary "${bin}" --prefix "${dest}/"; then
    fail "install: second run failed:"; cat "${TMP}/install.out"; return 0
  fi
  if cmp -s "${cfg}" "${TMP}/config.before"; then ok "install: second run keeps the operator's config.toml"; else
    fail "install: second run overwrote config.toml"
  fi
  if find "${dest}" -name '.*.new.*' | grep -q .; then fail "install: temporary files left behind"; fi
}

check_install_refusals() {
  local bin="$1"
  if run_install --no-build --binary "${bin}" --prefix "${TMP}/other" --enable; then
    fail "install: --enable with --prefix should be refused"
  else ok "install: --enable with --prefix is refused"; fi
  if run_install --bogus; then fail "install: an unknown argument should be refused"; else
    ok "install: an unknown argument is refused"
  fi
  if run_install --no-build --binary "${TMP}/no-such-file" --prefix "${TMP}/other"; then
    fail "install: a missing --binary should be refused"
  else ok "install: a missing --binary is refused"; fi
}

# -------------------------------------------------------------- systemd --

# A throwaway root: the installed tree plus the host's own units and kill,
# so `verify` resolves targets and ExecReload= without touching the host.
verify_root() {
  local root="${TMP}/destdir"
  if [[ -d /usr/lib/systemd/system ]]; then
    mkdir -p "${root}/usr/lib/systemd"
    cp -a /usr/lib/systemd/system "${root}/usr/lib/systemd/"
  fi
  if [[ -L /lib ]]; then
    ln -sfn usr/lib "${root}/lib"
  elif [[ -d /lib/systemd/system ]]; then
    mkdir -p "${root}/lib/systemd"
    cp -a /lib/systemd/system "${root}/lib/systemd/"
  fi
  if [[ ! -e "${root}/usr/lib/systemd/system/docker.service" && ! -e "${root}/lib/systemd/system/docker.service" ]]; then
    printf '[Unit]\nDescription=stand-in for Docker\n[Service]\nExecStart=/usr/bin/true\n' \
      >"${root}/etc/systemd/system/docker.service"
  fi
  mkdir -p "${root}/usr/bin"
  # Only has to exist and be executable for verify (ExecReload=/bin/kill).
  printf '#!/bin/sh\nexit 0\n' >"${root}/usr/bin/kill"
  chmod 0755 "${root}/usr/bin/kill"
  [[ -e "${root}/bin" ]] || ln -s usr/bin "${root}/bin"
  printf '%s' "${root}"
}

check_units() {
  if ! has systemd-analyze; then
    skip "systemd-analyze verify: systemd-analyze not installed"
    return 0
  fi
  if [[ ! -e /usr/lib/systemd/system/sysinit.target && ! -e /lib/systemd/system/sysinit.target ]]; then
    skip "systemd-analyze verify: this machine has no systemd units to verify against"
    return 0
  fi
  if [[ ! -x "${TMP}/destdir/usr/local/bin/pinshim" ]]; then
    fail "systemd-analyze verify: no installed tree (install check failed)"
    return 0
  fi
  local root
  root="$(verify_root)"
  # verify exits 0 on some warnings, so any output counts as a failure.
  if systemd-analyze verify --root="${root}" pinshim.socket pinshim.service >"${TMP}/verify.out" 2>&1 &&
    [[ ! -s "${TMP}/verify.out" ]]; then
    ok "systemd-analyze verify pinshim.socket pinshim.service"
  else
    fail "systemd-analyze verify:"
    sed "s|${root}||g; s/^/      /" "${TMP}/verify.out"
  fi
}

check_unit_contents() {
  local unit="${ROOT}/contrib/systemd/pinshim.service" sock="${ROOT}/contrib/systemd/pinshim.socket" line
  # shellcheck disable=SC2016 # $MAINPID is for systemd, not for this shell
  for line in 'Type=notify' 'Requires=docker.service pinshim.socket' 'KillMode=process' \
    'ExecStart=/usr/local/bin/pinshim --config /etc/pinshim/config.toml --container-runtime-endpoint fd://' \
    'ExecReload=/bin/kill -HUP $MAINPID' 'Restart=on-failure'; do
    grep -qxF -- "${line}" "${unit}" || fail "pinshim.service lacks: ${line}"
  done
  for line in "ListenStream=${SOCKET#unix://}" 'SocketMode=0660' 'FileDescriptorName=cri' 'Service=pinshim.service'; do
    grep -qxF -- "${line}" "${sock}" || fail "pinshim.socket lacks: ${line}"
  done
  ok "units carry the settings the docs describe"
}

# -------------------------------------------------------------- hack/kind --

# The e2e setup must agree with itself: socket path, cgroup driver, registry.
# Without PyYAML: the same facts, looked for as text.
check_kind_yaml_text() {
  local cfg="${ROOT}/hack/kind/kind-config.yaml" driver
  driver="$(grep -o 'native.cgroupdriver=[a-z]*' "${ROOT}/hack/kind/daemon.json" | cut -d= -f2)"
  [[ "$(grep -c "criSocket: ${SOCKET}" "${cfg}")" -ge 2 ]] || fail "kind-config.yaml: criSocket not set for init and join"
  grep -q "containerRuntimeEndpoint: ${SOCKET}" "${cfg}" || fail "kind-config.yaml: containerRuntimeEndpoint not pinshim"
  grep -q "cgroupDriver: ${driver:-cgroupfs}" "${cfg}" || fail "kind-config.yaml: cgroupDriver differs from Docker's"
  grep -q "runtime-endpoint: ${SOCKET}" "${ROOT}/hack/kind/crictl.yaml" || fail "crictl.yaml: not pointed at pinshim"
  skip "hack/kind YAML semantics: python3 yaml module not importable; checked as text only"
}

check_kind_yaml() {
  if ! python_has yaml; then
    check_kind_yaml_text
    return 0
  fi
  if python3 - "${ROOT}/hack/kind" "${SOCKET}" "${E2E_REGISTRY}" >"${TMP}/kind.out" 2>&1 <<'PY'; then
import json, sys, yaml
kind_dir, socket, registry = sys.argv[1:]
problems = []
def need(cond, what):
    if not cond:
        problems.append(what)

cfg = yaml.safe_load(open(f'{kind_dir}/kind-config.yaml'))
need(cfg.get('kind') == 'Cluster' and cfg.get('apiVersion') == 'kind.x-k8s.io/v1alpha4',
     'kind-config.yaml: not a kind.x-k8s.io/v1alpha4 Cluster')
nodes = cfg.get('nodes') or []
need(any(n.get('role') == 'control-plane' for n in nodes), 'kind-config.yaml: no control-plane node')
need(nodes and all(n.get('image') == 'pinshim-node:dev' for n in nodes),
     'kind-config.yaml: every node must use image pinshim-node:dev')
patches = {}
for text in cfg.get('kubeadmConfigPatches') or []:
    doc = yaml.safe_load(text)
    patches[doc.get('kind')] = doc
for k in ('InitConfiguration', 'JoinConfiguration'):
    need(patches.get(k, {}).get('nodeRegistration', {}).get('criSocket') == socket,
         f'kind-config.yaml: {k} nodeRegistration.criSocket is not {socket}')
kubelet = patches.get('KubeletConfiguration', {})
for k in ('containerRuntimeEndpoint', 'imageServiceEndpoint'):
    need(kubelet.get(k) == socket, f'kind-config.yaml: KubeletConfiguration.{k} is not {socket}')
daemon = json.load(open(f'{kind_dir}/daemon.json'))
driver = next((o.split('=', 1)[1] for o in daemon.get('exec-opts', [])
               if o.startswith('native.cgroupdriver=')), 'cgroupfs')
need(kubelet.get('cgroupDriver') == driver,
     f'kind-config.yaml: kubelet cgroupDriver {kubelet.get("cgroupDriver")!r} != Docker\'s {driver!r}')
need(registry in daemon.get('insecure-registries', []), f'daemon.json: {registry} not insecure')

for doc in yaml.safe_load_all(open(f'{kind_dir}/pods.yaml')):
    for c in (doc.get('spec') or {}).get('containers', []) if doc.get('kind') == 'Pod' else []:
        need(c['image'].startswith(registry + '/'), f'pods.yaml: {c["image"]} is not from {registry}')
crictl = yaml.safe_load(open(f'{kind_dir}/crictl.yaml'))
need(crictl.get('runtime-endpoint') == socket, 'crictl.yaml: runtime-endpoint is not pinshim')
print('\n'.join(problems))
sys.exit(1 if problems else 0)
PY
    ok "hack/kind: cluster config, daemon.json, pods.yaml and crictl.yaml agree"
  else
    fail "hack/kind config:"
    sed 's/^/      /' "${TMP}/kind.out"
  fi
}

check_kind_registry_names() {
  local f
  for f in hack/kind/e2e.sh hack/kind/pinshim.toml; do
    grep -q "${E2E_REGISTRY%:*}" "${ROOT}/${f}" || fail "${f} does not name the e2e registry ${E2E_REGISTRY}"
  done
  grep -q "\"${E2E_REGISTRY}\"" "${ROOT}/hack/kind/pinshim.toml" ||
    fail "hack/kind/pinshim.toml: ${E2E_REGISTRY} is not an insecure registry"
  ok "hack/kind: the registry name matches across e2e.sh and pinshim.toml"
}

# COPY sources of the Dockerfile as e2e.sh stages them (its own function).
e2e_context_sources() {
  # shellcheck disable=SC2034 # read by the evaluated function
  local KIND_DIR="${ROOT}/hack/kind"
  eval "$(sed -n '/^context_sources() {/,/^}/p' "${ROOT}/hack/kind/e2e.sh")"
  context_sources
}

check_kind_dockerfile() {
  local df="${ROOT}/hack/kind/Dockerfile" src n=0 binary
  binary="target/release/$(sed -n 's/^name *= *"\(.*\)"/\1/p' "${ROOT}/Cargo.toml" | head -n 1)"
  grep -Eq '^ARG KIND_NODE_IMAGE=kindest/node:v[0-9.]+@sha256:[0-9a-f]{64}$' "${df}" ||
    fail "Dockerfile: the kindest/node base is not pinned by digest"
  if grep -Eq '^(ADD|COPY)[[:space:]]+\[' "${df}"; then
    fail "Dockerfile: JSON-form COPY/ADD is not understood by e2e.sh's staging"
  fi
  while read -r src; do
    n=$((n + 1))
    if [[ "${src}" == "${binary}" ]]; then continue; fi # built by cargo, staged by e2e.sh
    [[ -e "${ROOT}/${src}" ]] || fail "Dockerfile copies ${src}, which is not in the repository"
  done < <(e2e_context_sources)
  ((n > 0)) || fail "Dockerfile: e2e.sh found no COPY sources"
  grep -q "^COPY ${binary} " "${df}" || fail "Dockerfile does not copy the release binary ${binary}"
  ok "hack/kind/Dockerfile: all ${n} COPY sources exist (the binary is built by cargo)"
}

check_kind_readme() {
  local readme="${ROOT}/hack/kind/README.md"
  if [[ -f "${readme}" ]] && grep -qi internet "${readme}" && grep -qi kubectl "${readme}"; then
    ok "hack/kind/README.md states its requirements"
  else
    fail "hack/kind/README.md missing or not stating internet/kubectl requirements"
  fi
  grep -qi 'internet' "${ROOT}/hack/kind/e2e.sh" || fail "hack/kind/e2e.sh header does not say it needs internet"
}

# ------------------------------------------------------------------- docs --

# Relative links in docs/ and README files point at files that exist.
check_doc_links() {
  local md link target bad=0
  while read -r md; do
    while read -r link; do
      target="$(dirname "${ROOT}/${md}")/${link%%#*}"
      [[ -e "${target}" ]] || { fail "${md}: broken link ${link}"; bad=1; }
    done < <(grep -o '](\([^)#:]*\)\(#[^)]*\)\?)' "${ROOT}/${md}" | sed 's/^](//; s/)$//' | grep -v '^$' || true)
  done < <(repo_files md)
  ((bad)) || ok "relative links in Markdown files resolve"
}

main() {
  TMP="$(mktemp -d)"
  trap cleanup EXIT
  start_shellcheck
  check_bash_syntax
  check_toml_files
  check_json_files
  check_example_config
  check_yaml_files
  check_install
  check_units
  check_unit_contents
  check_kind_yaml
  check_kind_registry_names
  check_kind_dockerfile
  check_kind_readme
  check_doc_links
  finish_shellcheck
  echo
  if ((FAILED)); then
    echo "check-static: ${FAILED} failed, ${SKIPPED} skipped"
    exit 1
  fi
  echo "check-static: all passed, ${SKIPPED} skipped"
}

main "$@"
