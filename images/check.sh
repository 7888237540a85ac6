#!/usr/bin/env bash
# Checks the images that images/build.sh made: their configuration (entrypoint, working
# directory, user) and that their binaries run inside them — `--version`, `validate` on the
# repository's stock configs, the entrypoint's own `run --help`, and for spire-server the
# shell form the Kubernetes seed uses (`/bin/sh -c "bin/spire-server …"`).
#
#   images/check.sh [IMAGE...]
#
# Commands run with `buildah run` (chroot isolation); where that is denied, with chroot(8)
# into the mounted root filesystem (SPIRE_IMAGES_RUN=buildah|chroot forces one). Ends with
# "N passed, N failed" and exits 1 on any failure.
set -euo pipefail
source "$(dirname "$0")/common.sh"

selected=("$@")
[ ${#selected[@]} -gt 0 ] || selected=("${ALL_IMAGES[@]}")
for name in "${selected[@]}"; do image_spec "$name" >/dev/null; done
[ "$(id -u)" = 0 ] || { echo "check.sh needs root" >&2; exit 1; }
command -v buildah >/dev/null || { echo "buildah is not installed" >&2; exit 1; }

MODE="${SPIRE_IMAGES_RUN:-auto}"
passed=0
failed=0
ok() { passed=$((passed + 1)); printf 'ok   %s: %s\n' "$IMAGE" "$1"; }
bad() { failed=$((failed + 1)); printf 'FAIL %s: %s\n' "$IMAGE" "$1"; [ -z "${2:-}" ] || sed 's/^/       | /' <<<"$2"; }

# The working container of the image under check, its mount point and the config volume.
CTR=""
MNT=""
CONF_IN_IMAGE=/opt/spire/conf
cleanup() { [ -z "$CTR" ] || bah rm "$CTR" >/dev/null 2>&1 || true; }
trap cleanup EXIT

# in_image USER WORKDIR ARGV...: runs ARGV in the working container, stdout+stderr to stdout.
in_image() {
  local user="$1" wd="$2"
  shift 2
  if [ "$MODE" = buildah ]; then
    bah run --user "$user" --workingdir "$wd" --volume "$REPO_DIR/conf:$CONF_IN_IMAGE:ro" \
      "$CTR" -- "$@" 2>&1
  else
    # chroot(8) cannot change directory after switching root, unshare(1) cannot switch user:
    # root runs through unshare (honouring WORKDIR), anyone else through chroot from "/".
    if [ "$user" = 0:0 ]; then
      env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root \
        unshare --root="$MNT" --wd="$wd" -- "$@" 2>&1
    else
      env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/ \
        chroot --userspec="$user" "$MNT" "$@" 2>&1
    fi
  fi
}

# expect DESCRIPTION PATTERN USER WORKDIR ARGV...: the command exits 0 and prints PATTERN.
expect() {
  local what="$1" pattern="$2" out rc=0
  shift 2
  out="$(in_image "$@")" || rc=$?
  if [ "$rc" != 0 ]; then
    bad "$what (exit $rc)" "$out"
  elif ! grep -qE -- "$pattern" <<<"$out"; then
    bad "$what (no /$pattern/ in the output)" "$out"
  else
    ok "$what"
  fi
}

# config_is FIELD EXPECTED: a field of the image's OCI config, in buildah's Go notation.
config_is() {
  local got
  got="$(bah inspect --type image --format "{{.OCIv1.Config.$1}}" "$REF")"
  if [ "$got" = "$2" ]; then ok "$1 is $2"; else bad "$1 is '$got', expected '$2'"; fi
}

# ["/a","b"] -> [/a b], as buildah's templates print a list.
go_list() { sed -e 's/^\["//' -e 's/"\]$//' -e 's/","/ /g' -e 's/^/[/' -e 's/$/]/' <<<"$1"; }

# The root filesystem, for file checks (and the chroot mode). In chroot mode the stock
# configs are copied in, as `buildah run --volume` would show them.
mount_rootfs() {
  MNT="$(bah mount "$CTR")"
  if [ "$MODE" = chroot ]; then
    mkdir -p "$MNT$CONF_IN_IMAGE"
    cp -r "$REPO_DIR/conf/." "$MNT$CONF_IN_IMAGE/"
  fi
}

# Picks buildah run, or chroot when buildah run is denied here (decided on the first image).
choose_mode() {
  local bin="$1" out
  [ "$MODE" = auto ] || return 0
  if out="$(MODE=buildah in_image 0:0 / "$bin" --version)"; then
    MODE=buildah
  else
    echo "note: buildah run failed, falling back to chroot:" >&2
    sed 's/^/  | /' <<<"$out" >&2
    MODE=chroot
  fi
}

check_one() {
  local bin
  IMAGE="$1"
  REF="$(image_ref "$IMAGE")"
  image_spec "$IMAGE"
  if ! bah inspect --type image "$REF" >/dev/null 2>&1; then
    bad "image $REF is absent (run images/build.sh $IMAGE)"
    return
  fi
  CTR="spire-rs-check-$IMAGE"
  bah rm "$CTR" >/dev/null 2>&1 || true
  bah from --pull-never --name "$CTR" "$REF" >/dev/null
  choose_mode "/opt/spire/bin/${BINS[0]}"
  mount_rootfs

  config_is Entrypoint "$(go_list "$ENTRYPOINT")"
  config_is WorkingDir "$WORKDIR"
  config_is User "$RUN_AS"
  if [ -s "$MNT/etc/ssl/certs/ca-certificates.crt" ]; then ok "has a CA bundle"; else bad "no CA bundle"; fi

  case "$IMAGE" in
    spire-server)
      expect "spire-server --version" '^spire-server ' 0:0 "$WORKDIR" /opt/spire/bin/spire-server --version
      expect "entrypoint (run --help)" '-config' 0:0 "$WORKDIR" /opt/spire/bin/spire-server run --help
      expect "validate conf/server/server.conf from $WORKDIR" 'valid' 0:0 "$WORKDIR" \
        /opt/spire/bin/spire-server validate -config conf/server/server.conf
      expect "validate as uid $SPIRE_UID (today's non-root layout)" 'valid' "$SPIRE_UID:$SPIRE_GID" / \
        /opt/spire/bin/spire-server validate -config "$CONF_IN_IMAGE/server/server.conf"
      # The seed's `kubectl exec … -- /bin/sh -c "bin/spire-server entry show …"`.
      expect '/bin/sh -c "bin/spire-server --version"' '^spire-server ' 0:0 "$WORKDIR" \
        /bin/sh -c 'bin/spire-server --version'
      expect "/bin/sh runs busybox applets" '^/opt/spire$' 0:0 "$WORKDIR" /bin/sh -c 'ls bin; pwd'
      if [ "$(stat -c %u "$MNT/opt/spire")" = "$SPIRE_UID" ]; then
        ok "/opt/spire belongs to uid $SPIRE_UID"
      else
        bad "/opt/spire does not belong to uid $SPIRE_UID"
      fi
      ;;
    spire-agent)
      expect "spire-agent --version" '^spire-agent ' 0:0 "$WORKDIR" /opt/spire/bin/spire-agent --version
      expect "entrypoint (run --help)" '-config' 0:0 "$WORKDIR" /opt/spire/bin/spire-agent run --help
      expect "validate conf/agent/agent.conf from $WORKDIR" 'valid' 0:0 "$WORKDIR" \
        /opt/spire/bin/spire-agent validate -config conf/agent/agent.conf
      ;;
    spire-controller-manager)
      expect "spire-controller-manager --help" '-config' 0:0 "$WORKDIR" \
        /opt/spire/bin/spire-controller-manager --help
      expect "upstream path /spire-controller-manager" '-config' 0:0 "$WORKDIR" /spire-controller-manager --help
      expect "k8s-workload-registrar --help" '-config' 0:0 "$WORKDIR" /opt/spire/bin/k8s-workload-registrar --help
      ;;
    spiffe-csi-driver)
      expect "spiffe-csi-driver --version" '^spiffe-csi-driver ' 0:0 "$WORKDIR" \
        /opt/spire/bin/spiffe-csi-driver --version
      expect "upstream path /spiffe-csi-driver" '^spiffe-csi-driver ' 0:0 "$WORKDIR" /spiffe-csi-driver --version
      ;;
  esac
  for bin in "${BINS[@]}"; do
    # No library outside the image: the loader resolves everything from the image's own files.
    if ldd_out="$(in_image 0:0 / /lib64/ld-linux-x86-64.so.2 --list "/opt/spire/bin/$bin")" &&
      ! grep -q 'not found' <<<"$ldd_out"; then
      ok "$bin resolves its libraries inside the image"
    else
      bad "$bin does not resolve its libraries inside the image" "$ldd_out"
    fi
  done

  bah rm "$CTR" >/dev/null
  CTR=""
}

take_lock
echo "running commands with: $MODE"
for name in "${selected[@]}"; do
  check_one "$name"
done
echo "mode: $MODE; checked in ${SECONDS}s"
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
