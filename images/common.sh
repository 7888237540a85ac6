# Shared by images/build.sh and images/check.sh (sourced, not run): which images exist, what
# goes in each, and how buildah is called.
# shellcheck shell=bash

IMAGES_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_DIR="$(cd "$IMAGES_DIR/.." && pwd)"

# Build order: the CSI driver last, so a driver that does not build yet cannot hold up the rest.
ALL_IMAGES=(spire-server spire-agent spire-controller-manager spiffe-csi-driver)

# Repository and tag of every image. The tag follows the workspace version.
REGISTRY="${SPIRE_IMAGES_REGISTRY:-ghcr.io/spire-rs}"
workspace_version() {
  sed -n '/^\[workspace\.package\]/,/^\[/s/^version *= *"\([^"]*\)".*/\1/p' "$REPO_DIR/Cargo.toml" | head -n 1
}
TAG="${SPIRE_IMAGES_TAG:-$(workspace_version)}"
TAG="${TAG:-0.1.0}"

# The unprivileged account of upstream's images (spireuid/spiregid 1000).
SPIRE_UID=1000
SPIRE_GID=1000

# A storage of our own, on the vfs driver (no overlay or fuse needed), so that these images
# never clash with another storage driver already in use in buildah's default root.
STORAGE_ROOT="${SPIRE_IMAGES_STORAGE:-/var/lib/containers/spire-rs}"
STORAGE_RUNROOT="${SPIRE_IMAGES_RUNROOT:-/run/containers/spire-rs}"
export BUILDAH_ISOLATION="${BUILDAH_ISOLATION:-chroot}"

bah() {
  buildah --root "$STORAGE_ROOT" --runroot "$STORAGE_RUNROOT" --storage-driver vfs "$@"
}

image_ref() { printf '%s/%s:%s\n' "$REGISTRY" "$1" "$TAG"; }

# Serialises builds and checks that share the storage (two test runs at once, say).
take_lock() {
  mkdir -p "$(dirname "$STORAGE_ROOT")"
  exec 9>"$STORAGE_ROOT.lock"
  flock 9
}

# image_spec NAME sets, for image NAME:
#   BINS        binaries, each installed as /opt/spire/bin/<binary>
#   ENTRYPOINT  the entrypoint as a JSON array; CMD is always empty, as upstream
#   WORKDIR     the working directory
#   RUN_AS      the default user (uid:gid)
#   WITH_SHELL  "yes" to install a static busybox as /bin/sh and its applets
#   LINKS       "path=target" symlinks (upstream's binary paths)
#   OWNED_DIRS  directories created owned by the spire account (parents first)
#   ROOT_DIRS   directories created owned by root
image_spec() {
  BINS=() LINKS=() OWNED_DIRS=() ROOT_DIRS=() WITH_SHELL=no
  case "$1" in
    spire-server)
      BINS=(spire-server)
      ENTRYPOINT='["/opt/spire/bin/spire-server","run"]'
      WORKDIR=/opt/spire
      # Root, unlike upstream's 1000:1000: the 2022 layout writes a hostPath socket directory
      # and a PVC without fsGroup. Today's layout can set runAsUser 1000, which owns these.
      RUN_AS=0:0
      WITH_SHELL=yes
      OWNED_DIRS=(/opt/spire /etc/spire /etc/spire/server /run/spire /run/spire/server
        /run/spire/server/private /tmp/spire-server /tmp/spire-server/private /var/lib/spire
        /var/lib/spire/server)
      ;;
    spire-agent)
      BINS=(spire-agent)
      ENTRYPOINT='["/opt/spire/bin/spire-agent","run"]'
      WORKDIR=/opt/spire
      RUN_AS=0:0 # as upstream: root shares the socket directory with workloads
      ROOT_DIRS=(/opt/spire /etc/spire/agent /run/spire/agent/public /tmp/spire-agent/public
        /var/lib/spire/agent)
      ;;
    spire-controller-manager)
      BINS=(spire-controller-manager k8s-workload-registrar)
      ENTRYPOINT='["/opt/spire/bin/spire-controller-manager"]'
      # "/" as upstream: its manifests pass --config=spire-controller-manager-config.yaml,
      # a relative path to a file mounted at the root.
      WORKDIR=/
      RUN_AS=0:0
      LINKS=(/spire-controller-manager=/opt/spire/bin/spire-controller-manager)
      ;;
    spiffe-csi-driver)
      BINS=(spiffe-csi-driver)
      ENTRYPOINT='["/opt/spire/bin/spiffe-csi-driver"]'
      WORKDIR=/
      RUN_AS=0:0
      LINKS=(/spiffe-csi-driver=/opt/spire/bin/spiffe-csi-driver)
      ;;
    *)
      echo "unknown image '$1' (known: ${ALL_IMAGES[*]})" >&2
      return 1
      ;;
  esac
}

# Default directory of the binaries: cargo's debug output, honouring CARGO_TARGET_DIR.
default_bin_dir() {
  printf '%s/debug\n' "${CARGO_TARGET_DIR:-$REPO_DIR/target}"
}
