#!/usr/bin/env bash
# Stand-ins for the images the CRI validation suite (critest, from cri-tools)
# pulls, built offline FROM scratch from busybox-static and pushed to the
# plain loopback registry under the same repository paths they have upstream
# (e2e-test-images/busybox:1.29-2, k8s-staging-cri-tools/test-image-tag:test,
# pause:3.9, ...). Each one holds just what the specs look for: users and
# groups, tags that are or are not the same image, web servers that answer
# GET / with 200.
#
# It also writes a registry config dir (hosts.toml files) that makes pinshim
# resolve and pull registry.k8s.io, gcr.io and k8s.gcr.io images from the
# loopback registry, and prints the pinshim flag that uses it.
#
# Idempotent: an image the registry already has is skipped. Options:
#   --force   rebuild and repush every image
set -euo pipefail
# shellcheck source=hack/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

CRITEST_FORCE=0
CRITEST_BUILD_DIR="${PINSHIM_TEST_STATE}/build/critest"
CRITEST_REGISTRY_CONFIG_DIR="${PINSHIM_TEST_STATE}/critest-certs.d"
# Registries the suite names; all are served from the loopback registry.
CRITEST_MIRRORED_HOSTS=(registry.k8s.io gcr.io k8s.gcr.io)
E2E=e2e-test-images
STAGING=k8s-staging-cri-tools

usage() {
  sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'
}

# ------------------------------------------------------------ contexts --

# Users and groups of the usual busybox image (nobody and www-data among them).
write_base_accounts() {
  local ctx="$1"
  printf '%s\n' 'root:x:0:0:root:/root:/bin/sh' \
    'daemon:x:1:1:daemon:/usr/sbin:/bin/false' \
    'bin:x:2:2:bin:/bin:/bin/false' \
    'sys:x:3:3:sys:/dev:/bin/false' \
    'sync:x:4:100:sync:/bin:/bin/sync' \
    'mail:x:8:8:mail:/var/spool/mail:/bin/false' \
    'www-data:x:33:33:www-data:/var/www:/bin/false' \
    'operator:x:37:37:Operator:/var:/bin/false' \
    'nobody:x:65534:65534:nobody:/home:/bin/false' >"${ctx}/rootfs/etc/passwd"
  printf '%s\n' 'root:x:0:' 'daemon:x:1:' 'bin:x:2:' 'sys:x:3:' 'adm:x:4:' \
    'tty:x:5:' 'disk:x:6:' 'lp:x:7:' 'mail:x:8:' 'kmem:x:9:' 'wheel:x:10:root' \
    'floppy:x:11:' 'news:x:13:' 'uucp:x:14:' 'www-data:x:33:' 'users:x:100:' \
    'nogroup:x:65534:' >"${ctx}/rootfs/etc/group"
}

# The common start of every Dockerfile: busybox with its applets as hard
# links, so that masking one path (/bin/ls) leaves the others working.
dockerfile_head() {
  cat <<'EOF'
FROM scratch
ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
COPY rootfs/ /
RUN ["/bin/busybox", "sh", "-c", "/bin/busybox --install /bin && /bin/busybox mkdir -p /tmp /root /home /var/run /var/www && /bin/busybox chmod 1777 /tmp"]
EOF
}

# stage_* CTX [ARGS]: write the Dockerfile (and extra files) of one image.

# The default container image. Debian's busybox has no pgrep and no ipcs,
# which the specs run in it: small shell versions stand in.
stage_busybox() {
  local ctx="$1"
  mkdir -p "${ctx}/rootfs/usr/bin"
  cat >"${ctx}/rootfs/usr/bin/pgrep" <<'EOF'
#!/bin/sh
# pgrep PATTERN: the pids of other processes whose name matches PATTERN.
[ "$#" -eq 1 ] || { echo "usage: pgrep PATTERN" >&2; exit 2; }
rc=1
for dir in /proc/[0-9]*; do
  pid="${dir#/proc/}"
  [ "${pid}" = "$$" ] && continue
  read -r name 2>/dev/null <"${dir}/comm" || continue
  if echo "${name}" | grep -Eq -- "$1"; then echo "${pid}"; rc=0; fi
done
exit "${rc}"
EOF
  cat >"${ctx}/rootfs/usr/bin/ipcs" <<'EOF'
#!/bin/sh
# ipcs [-m]: the System V shared memory segments of this IPC namespace.
echo "------ Shared Memory Segments --------"
cat /proc/sysvipc/shm
EOF
  chmod 0755 "${ctx}/rootfs/usr/bin/pgrep" "${ctx}/rootfs/usr/bin/ipcs"
  stage_path_shell "${ctx}"
  { dockerfile_head; echo 'CMD ["sh"]'; } >"${ctx}/Dockerfile"
}

# The MaskedPaths spec masks /bin/ls and expects `sh -c ls` to be refused.
# busybox-static's shell runs its own applets without looking in PATH, so
# /bin/sh here is Debian's dynamically linked busybox (from its package,
# unpacked, not installed), whose shell does, with the libraries it needs.
# Every other command is still a link to the static busybox.
stage_path_shell() {
  local ctx="$1" unpacked lib
  unpacked="$(mktemp -d)"
  (cd "${unpacked}" && quiet apt-get download busybox) || die "cannot download Debian's busybox package"
  dpkg-deb -x "${unpacked}"/busybox_*.deb "${unpacked}/root"
  cp "${unpacked}/root/bin/busybox" "${ctx}/rootfs/bin/sh"
  while read -r lib; do
    mkdir -p "${ctx}/rootfs$(dirname "${lib}")"
    cp -L "${lib}" "${ctx}/rootfs${lib}"
  done < <(ldd "${unpacked}/root/bin/busybox" | grep -o '/[^ ]*')
  rm -rf "${unpacked}"
}

# A file named after the image makes each of these a different image.
stage_marked() {
  printf '%s\n' "$2" >"$1/rootfs/$2"
  { dockerfile_head; echo 'CMD ["sh"]'; } >"$1/Dockerfile"
}

stage_user() {
  { dockerfile_head; echo "USER $2"; echo 'CMD ["sh"]'; } >"$1/Dockerfile"
}

# uid 1000 whose group list in /etc/group includes gid 50000.
stage_predefined_group() {
  printf '%s\n' 'default-user:x:1000:1000:Linux User,,,:/home/default-user:/bin/sh' >>"$1/rootfs/etc/passwd"
  printf '%s\n' 'default-user:x:1000:' 'group-defined-in-image:x:50000:default-user' >>"$1/rootfs/etc/group"
  {
    dockerfile_head
    echo 'RUN ["/bin/busybox", "mkdir", "-p", "/home/default-user"]'
    echo 'USER 1000'
    echo 'CMD ["sh"]'
  } >"$1/Dockerfile"
}

# An nginx look-alike: busybox httpd on port $2 answering GET / with 200, as
# PID 1, its pid in /var/run/nginx.pid, its process named nginx (what pidof
# finds) and "master process" in its command line (what the PID namespace
# specs grep /proc/1/cmdline for).
stage_nginx() {
  local ctx="$1" port="$2"
  mkdir -p "${ctx}/rootfs/usr/share/nginx/html" "${ctx}/rootfs/usr/sbin"
  printf '%s\n' '<!DOCTYPE html>' '<html><head><title>Welcome to nginx!</title></head>' \
    '<body><h1>Welcome to nginx!</h1></body></html>' >"${ctx}/rootfs/usr/share/nginx/html/index.html"
  ln -s /bin/busybox "${ctx}/rootfs/usr/sbin/nginx"
  {
    dockerfile_head
    echo "EXPOSE ${port}"
    echo 'STOPSIGNAL SIGTERM'
    printf 'CMD ["sh", "-c", "echo $$ >/var/run/nginx.pid && exec -a httpd /usr/sbin/nginx -f -v -p %s -h /usr/share/nginx/html -r \\"nginx: master process\\""]\n' "${port}"
  } >"${ctx}/Dockerfile"
}

# An httpd look-alike on port 80 that says "httpd" in its log.
stage_httpd() {
  local ctx="$1"
  mkdir -p "${ctx}/rootfs/usr/local/apache2/htdocs"
  printf '%s\n' '<html><body><h1>It works!</h1></body></html>' >"${ctx}/rootfs/usr/local/apache2/htdocs/index.html"
  {
    dockerfile_head
    echo 'EXPOSE 80'
    echo 'CMD ["sh", "-c", "echo \"httpd: serving /usr/local/apache2/htdocs on port 80\" && exec httpd -f -v -p 80 -h /usr/local/apache2/htdocs"]'
  } >"${ctx}/Dockerfile"
}

# Prints "Effective uid: N" where N is the effective uid a setuid-root program
# gets: 0, unless no_new_privs stops the setuid bit. The setuid program is a
# copy of busybox that /etc/busybox.conf allows to keep root for id (any id
# run by another user must then become root, or fail); when it fails, the
# effective uid is read from /proc/self/status by the shell instead.
stage_nonewprivs() {
  local ctx="$1"
  printf '%s\n' '[SUID]' 'id = sxx root.root' >"${ctx}/rootfs/etc/busybox.conf"
  {
    dockerfile_head
    echo 'RUN ["/bin/busybox", "sh", "-c", "mkdir -p /nnp && cp /bin/busybox /nnp/id && chmod 4755 /nnp/id && chmod 0644 /etc/busybox.conf"]'
    cat <<'EOF'
CMD ["sh", "-c", "u=$(/nnp/id -u 2>/dev/null) || while read -r k r e s; do [ \"$k\" = Uid: ] && u=$e; done </proc/self/status; echo \"Effective uid: $u\""]
EOF
  } >"${ctx}/Dockerfile"
}

# A pause image: sleeps until TERM or INT, then exits at once.
stage_pause() {
  cat >"$1/Dockerfile" <<'EOF'
FROM scratch
COPY rootfs/ /
ENTRYPOINT ["/bin/busybox", "sh", "-c", "trap 'kill $! 2>/dev/null; exit 0' TERM INT; while :; do /bin/busybox sleep 3600 & wait; done"]
EOF
}

# ------------------------------------------------------------- building --

# ensure_image REPO TAGS STAGE [ARGS]: build one image with STAGE and push it
# as REPO:TAG for each of the comma-separated TAGS, unless the registry has
# them all already.
ensure_image() {
  local repo="$1" stage="$3" tags=() tag refs=() absent=0 ref ctx
  IFS=, read -r -a tags <<<"$2"
  shift 3
  for tag in "${tags[@]}"; do
    ref="${PINSHIM_REGISTRY}/${repo}:${tag}"
    refs+=("${ref}")
    remote_has "${ref}" || absent=1
  done
  if ((!CRITEST_FORCE && !absent)); then
    log "have ${refs[*]}"
    return 0
  fi
  log "building and pushing ${refs[*]}"
  ctx="${CRITEST_BUILD_DIR}/${repo//\//_}"
  prepare_build_context "${ctx}"
  write_base_accounts "${ctx}"
  "${stage}" "${ctx}" "$@"
  quiet docker build --network none --force-rm -t "${refs[0]}" "${ctx}"
  for ref in "${refs[@]}"; do
    [[ "${ref}" == "${refs[0]}" ]] || docker tag "${refs[0]}" "${ref}"
    quiet docker push "${ref}"
  done
  # The suite pulls them itself: no local copy is left behind.
  quiet docker rmi "${refs[@]}"
  rm -rf "${ctx}"
}

ensure_critest_images() {
  local arch i
  arch="$(go_arch)"
  ensure_image "${E2E}/busybox" 1.29-2 stage_busybox
  ensure_image "${E2E}/nginx" 1.14-2 stage_nginx 80
  ensure_image "${E2E}/httpd" 2.4.39-4 stage_httpd
  ensure_image "${E2E}/nonewprivs" 1.3 stage_nonewprivs
  ensure_image "${STAGING}/hostnet-nginx-${arch}" latest stage_nginx 12003
  ensure_image "${STAGING}/test-image-user-uid" latest stage_user 1002
  ensure_image "${STAGING}/test-image-user-username" latest stage_user www-data
  ensure_image "${STAGING}/test-image-user-uid-group" latest stage_user 1003:1004
  ensure_image "${STAGING}/test-image-user-username-group" latest stage_user www-data:1004
  ensure_image "${STAGING}/test-image-predefined-group" latest stage_predefined_group
  ensure_image "${STAGING}/test-image-latest" latest stage_marked test-image-latest
  for i in 1 2 3; do
    ensure_image "${STAGING}/test-image-${i}" latest stage_marked "test-image-${i}"
  done
  ensure_image "${STAGING}/test-image-tag" test stage_marked test-image-tag-test
  ensure_image "${STAGING}/test-image-tag" all stage_marked test-image-tag-all
  ensure_image "${STAGING}/test-image-tags" 1,2,3 stage_marked test-image-tags
  # registry.k8s.io/pause:3.9 and k8s.gcr.io/pause:3.9, one image.
  ensure_image pause 3.9 stage_pause
  rm -rf "${CRITEST_BUILD_DIR}"
}

# hosts.toml per mirrored registry: resolve and pull from the loopback
# registry; the upstream (unreachable offline) stays the last resort.
write_registry_config() {
  local host dir
  for host in "${CRITEST_MIRRORED_HOSTS[@]}"; do
    dir="${CRITEST_REGISTRY_CONFIG_DIR}/${host}"
    mkdir -p "${dir}"
    write_if_changed "${dir}/hosts.toml" "# Generated by hack/critest-images.sh; edits are overwritten.
server = \"https://${host}\"

[host.\"http://${PINSHIM_REGISTRY}\"]
  capabilities = [\"pull\", \"resolve\"]" || true
  done
}

main() {
  while (($#)); do
    case "$1" in
      --force) CRITEST_FORCE=1 ;;
      -h | --help) usage; return 0 ;;
      *) die "unknown argument: $1 (see --help)" ;;
    esac
    shift
  done
  env_base
  ensure_critest_images
  write_registry_config
  echo "critest stand-in images are in http://${PINSHIM_REGISTRY}."
  echo "Start pinshim with:"
  echo "  --registry-config-dir ${CRITEST_REGISTRY_CONFIG_DIR}"
}

main "$@"
