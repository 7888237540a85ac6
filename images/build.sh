#!/usr/bin/env bash
# Builds spire-rs's container images from `scratch` with buildah, contacting no registry: each
# root filesystem gets the binaries, the glibc libraries they load (from ldd), a CA bundle,
# /etc/passwd and /etc/group, and for spire-server a static busybox as /bin/sh.
#
#   images/build.sh [--bin-dir DIR] [--strip] [--archive DIR] [--archive-format oci|docker] [IMAGE...]
#
# IMAGE is any of spire-server spire-agent spire-controller-manager spiffe-csi-driver (default:
# all, the CSI driver last). An image whose binaries are missing is reported and skipped; the
# script then exits 1 after building the others. Needs root, buildah, and busybox-static.
set -euo pipefail
source "$(dirname "$0")/common.sh"

usage() { sed -n '2,10s/^# \{0,1\}//p' "$0"; }

BIN_DIR="$(default_bin_dir)"
STRIP=no
ARCHIVE_DIR=""
ARCHIVE_FORMAT=oci
selected=()
while [ $# -gt 0 ]; do
  case "$1" in
    --bin-dir) BIN_DIR="$2"; shift 2 ;;
    --strip) STRIP=yes; shift ;;
    --archive) ARCHIVE_DIR="$2"; shift 2 ;;
    --archive-format) ARCHIVE_FORMAT="$2"; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    -*) echo "unknown option $1" >&2; usage >&2; exit 2 ;;
    *) selected+=("$1"); shift ;;
  esac
done
[ ${#selected[@]} -gt 0 ] || selected=("${ALL_IMAGES[@]}")
case "$ARCHIVE_FORMAT" in
  oci|docker) ;;
  *) echo "--archive-format must be oci or docker" >&2; exit 2 ;;
esac
for name in "${selected[@]}"; do image_spec "$name" >/dev/null; done

[ "$(id -u)" = 0 ] || { echo "build.sh needs root (buildah with the vfs driver mounts as root)" >&2; exit 1; }
command -v buildah >/dev/null || { echo "buildah is not installed (apt-get install buildah)" >&2; exit 1; }
CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt
[ -s "$CA_BUNDLE" ] || { echo "$CA_BUNDLE is missing (apt-get install ca-certificates)" >&2; exit 1; }

# The libraries (and the dynamic loader) that ldd resolves for a binary, one path a line.
glibc_closure() {
  local out
  if ! out="$(ldd "$1" 2>&1)"; then
    # A static executable needs no library; anything else ldd rejects is an error.
    grep -qE 'not a dynamic executable|statically linked' <<<"$out" && return 0
    echo "ldd $1 failed: $out" >&2
    return 1
  fi
  if grep -q 'not found' <<<"$out"; then
    echo "ldd $1 cannot resolve: $(grep 'not found' <<<"$out")" >&2
    return 1
  fi
  # "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)" and "/lib64/ld-linux-x86-64.so.2 (0x...)";
  # linux-vdso has no file.
  awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' <<<"$out"
}

# Copies file $1 to $2 inside the root filesystem, creating the parents.
put() {
  install -D -m "${3:-0755}" "$1" "$2"
}

static_busybox() {
  local bb=/bin/busybox
  [ -x "$bb" ] || { echo "$bb is missing (apt-get install busybox-static)" >&2; return 1; }
  # busybox-static's binary has no interpreter; a dynamic busybox would need its own closure.
  if ldd "$bb" >/dev/null 2>&1 && ! ldd "$bb" 2>&1 | grep -q 'not a dynamic executable'; then
    echo "$bb is dynamically linked: install busybox-static, not busybox" >&2
    return 1
  fi
  printf '%s\n' "$bb"
}

# Fills the mounted root filesystem $2 of image $1.
assemble() {
  local name="$1" root="$2" bin src dst lib libs dir link
  image_spec "$name"

  install -d -m 0755 "$root/etc" "$root/opt/spire/bin" "$root/etc/ssl/certs"
  install -d -m 1777 "$root/tmp"
  put "$CA_BUNDLE" "$root/etc/ssl/certs/ca-certificates.crt" 0644
  printf '%s\n' \
    'root:x:0:0:root:/root:/bin/sh' \
    "spire:x:$SPIRE_UID:$SPIRE_GID:spire:/opt/spire:/sbin/nologin" \
    'nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin' >"$root/etc/passwd"
  printf '%s\n' 'root:x:0:' "spire:x:$SPIRE_GID:" 'nogroup:x:65534:' >"$root/etc/group"
  # glibc resolves names from files, then DNS (Kubernetes mounts /etc/hosts and resolv.conf).
  printf '%s\n' 'passwd: files' 'group: files' 'hosts: files dns' >"$root/etc/nsswitch.conf"
  chmod 0644 "$root/etc/passwd" "$root/etc/group" "$root/etc/nsswitch.conf"

  for bin in "${BINS[@]}"; do
    src="$BIN_DIR/$bin"
    dst="$root/opt/spire/bin/$bin"
    if [ "$STRIP" = yes ]; then
      objcopy --strip-debug "$src" "$dst"
      chmod 0755 "$dst"
    else
      put "$src" "$dst"
    fi
    libs="$(glibc_closure "$src")"
    for lib in $libs; do
      [ -e "$root$lib" ] || put "$(readlink -f "$lib")" "$root$lib"
    done
  done

  if [ "$WITH_SHELL" = yes ]; then
    busybox="$(static_busybox)"
    put "$busybox" "$root/bin/busybox"
    # Every applet as a link in /bin, so `sh -c "ls …"` works as in a busybox image.
    for link in $("$root/bin/busybox" --list); do
      [ -e "$root/bin/$link" ] || ln -s busybox "$root/bin/$link"
    done
  fi

  for link in "${LINKS[@]}"; do
    ln -s "${link#*=}" "$root${link%%=*}"
  done
  for dir in "${ROOT_DIRS[@]}"; do
    install -d -m 0755 "$root$dir"
  done
  for dir in "${OWNED_DIRS[@]}"; do
    install -d -m 0755 -o "$SPIRE_UID" -g "$SPIRE_GID" "$root$dir"
  done
}

# Runs in a subshell of its own (see the loop below), so that `set -e` holds throughout.
build_one() {
  local name="$1" ref root old new bin
  image_spec "$name"
  for bin in "${BINS[@]}"; do
    if [ ! -x "$BIN_DIR/$bin" ]; then
      echo "skipping $name: $BIN_DIR/$bin is missing (cargo build -p $bin)" >&2
      return 1
    fi
  done
  ref="$(image_ref "$name")"
  ctr="spire-rs-build-$name"
  bah rm "$ctr" >/dev/null 2>&1 || true
  bah from --name "$ctr" scratch >/dev/null
  # On failure, drop the half-built working container (commit --rm removes it on success).
  trap 'bah rm "$ctr" >/dev/null 2>&1 || true' EXIT
  root="$(bah mount "$ctr")"
  assemble "$name" "$root"
  bah config \
    --entrypoint "$ENTRYPOINT" \
    --cmd '[]' \
    --workingdir "$WORKDIR" \
    --user "$RUN_AS" \
    --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --label org.opencontainers.image.title="$name" \
    --label org.opencontainers.image.version="$TAG" \
    --label org.opencontainers.image.licenses=Apache-2.0 \
    --created-by "images/build.sh" \
    "$ctr"
  old="$(bah images --quiet --no-trunc "$ref" 2>/dev/null || true)"
  new="$(bah commit --quiet --rm "$ctr" "$ref")"
  # Re-tagging leaves the previous image dangling: drop it, or vfs keeps a copy per build.
  if [ -n "$old" ] && [ "$old" != "$new" ] && [ "$old" != "sha256:$new" ]; then
    bah rmi "$old" >/dev/null 2>&1 || echo "note: could not remove the previous $ref ($old)" >&2
  fi
  if [ -n "$ARCHIVE_DIR" ]; then
    mkdir -p "$ARCHIVE_DIR"
    rm -f "$ARCHIVE_DIR/$name.tar"
    bah push --quiet "$ref" "$ARCHIVE_FORMAT-archive:$ARCHIVE_DIR/$name.tar:$ref"
  fi
  printf 'built %s (%s)\n' "$ref" "$(bah images --format '{{.Size}}' "$ref")"
}

take_lock
status=0
for name in "${selected[@]}"; do
  start=$SECONDS
  set +e
  (set -e; build_one "$name")
  rc=$?
  set -e
  if [ "$rc" = 0 ]; then
    printf '  in %ss\n' "$((SECONDS - start))"
  else
    echo "FAILED to build $name" >&2
    status=1
  fi
done
exit "$status"
