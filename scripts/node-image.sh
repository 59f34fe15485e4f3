#!/usr/bin/env bash
# Images for the node tier (tests/node), built with buildah (no Docker engine, no registry needed),
# cached by content under ${BENCHPILOT_IMAGE_CACHE:-~/.cache/benchpilot/images}, outside the repo:
#   scripts/node-image.sh runner        the image of runner-image/Dockerfile, built as `docker build`
#                                       would (buildah bud --isolation chroot): rebuilt only when
#                                       what the Dockerfile copies changes
#   scripts/node-image.sh pause BINARY  a one-layer image holding BINARY as /pause (the pod sandbox)
# Prints "NAME ARCHIVE SIZE_BYTES": the image name, a docker-archive of it (what `ctr images import`
# reads) and the archive's size (its layers uncompressed: the image's size on a node).
# Base of the runner image: python:3.11-slim-bookworm when a registry answers, else a local Debian
# bookworm base made once with debootstrap (python3.11, its venv module, ca-certificates). HTTPS inside
# the build trusts the host's CA bundle, mounted for the build only (for intercepting proxies).
# Needs root, buildah, and for the local base debootstrap (scripts/bootstrap.sh --node installs them).
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE=${BENCHPILOT_IMAGE_CACHE:-$HOME/.cache/benchpilot/images}
STORE="$CACHE/storage"
# the local base's packages (python3.11-venv's dependencies named too: debootstrap does not resolve the
# virtual python3.11-distutils); a change here makes a new base
BASE_PACKAGES=python3.11,python3.11-venv,python3-distutils,python3-pip-whl,python3-setuptools-whl,python-is-python3,ca-certificates
REGISTRY_BASE=docker.io/library/python:3.11-slim-bookworm
MIRROR=${BENCHPILOT_DEBIAN_MIRROR:-http://deb.debian.org/debian}
KEEP=2  # runner images kept (other worktrees build their own; each is ~720 MB, twice: storage and archive)
log() { echo "node-image: $*" >&2; }
die() { log "$*"; exit 1; }
for tool in buildah; do command -v "$tool" >/dev/null || die "$tool is not installed (scripts/bootstrap.sh --node)"; done
mkdir -p "$CACHE"
bah() { buildah --root "$STORE/root" --runroot "$STORE/run" --storage-driver overlay "$@"; }
exec 9>"$CACHE/.lock"
flock 9  # one build at a time on this machine; a second caller then finds the image built

archive() {  # archive NAME FILE: write a docker-archive of image NAME, atomically
  rm -f "$2.partial"
  bah push --quiet "$1" "docker-archive:$2.partial:$1" >/dev/null
  mv "$2.partial" "$2"
}

pause_image() {
  local bin=$1 key name file
  [[ -x $bin ]] || die "pause binary '$bin' not found (scripts/k8s-bin.sh --node builds it)"
  key=$(sha256sum "$bin" | cut -c1-12)
  name="localhost/benchpilot-pause:$key"
  file="$CACHE/pause-$key.tar"
  if [[ ! -f $file ]]; then
    local ctr
    ctr=$(bah from scratch)
    bah copy "$ctr" "$bin" /pause >/dev/null
    bah config --entrypoint '["/pause"]' --user 65535:65535 "$ctr"
    bah commit --quiet --rm "$ctr" "$name" >/dev/null
    archive "$name" "$file"
  fi
  echo "$name $file $(stat -c %s "$bin")"
}

local_base() {  # a bookworm base made with debootstrap, imported once into buildah's storage
  local name tmp ctr mnt
  name="localhost/benchpilot-base:bookworm-$(echo "$BASE_PACKAGES" | sha256sum | cut -c1-12)"
  if bah inspect --type image "$name" >/dev/null 2>&1; then echo "$name"; return; fi
  command -v debootstrap >/dev/null || die "no registry answers and debootstrap is not installed"
  log "making a Debian bookworm base with debootstrap from $MIRROR (once per machine, about 2 minutes)"
  rm -rf "$CACHE"/base.*  # a base cut short by a killed build (we hold the lock)
  tmp=$(mktemp -d "$CACHE/base.XXXXXX")
  debootstrap --variant=minbase --include="$BASE_PACKAGES" bookworm "$tmp/rootfs" "$MIRROR" >"$tmp/debootstrap.log" 2>&1 \
    || die "debootstrap failed: $(tail -5 "$tmp/debootstrap.log")"
  rm -rf "$tmp/rootfs"/var/lib/apt/lists/* "$tmp/rootfs"/var/cache/apt/archives/*.deb \
         "$tmp/rootfs"/usr/share/doc/* "$tmp/rootfs"/usr/share/man/* "$tmp/rootfs"/usr/share/info/*
  ctr=$(bah from scratch)
  mnt=$(bah mount "$ctr")
  tar -C "$tmp/rootfs" -cf - . | tar -C "$mnt" -xf -
  bah umount "$ctr" >/dev/null
  bah config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin --env LANG=C.UTF-8 \
    --cmd python3 "$ctr"
  bah commit --quiet --rm "$ctr" "$name" >/dev/null
  rm -rf "$tmp"
  echo "$name"
}

registry_base() {  # the Dockerfile's default base, when a registry can be reached
  if [[ ${BENCHPILOT_IMAGE_BASE:-auto} == local ]]; then return 1; fi
  command -v skopeo >/dev/null || return 1
  timeout 20 skopeo inspect --retry-times 0 "docker://$REGISTRY_BASE" >/dev/null 2>&1 || return 1
  echo "$REGISTRY_BASE"
}

runner_key() {  # what the Dockerfile copies, the Dockerfile itself, and the base
  { sha256sum runner-image/Dockerfile pyproject.toml requirements.lock README.md
    find runner-image/src operator/src -type f ! -path '*/__pycache__/*' ! -name '*.pyc' ! -path '*.egg-info/*' \
      -print0 | sort -z | xargs -0 sha256sum
    echo "$1"; } | sha256sum | cut -c1-16
}

prune_runner_images() {  # keep the newest $KEEP runner images and their archives
  local old
  old=$(ls -t "$CACHE"/runner-*.tar 2>/dev/null | tail -n +$((KEEP + 1)) || true)
  for f in $old; do
    rm -f "$f"
    bah rmi "localhost/benchpilot-runner:$(basename "$f" .tar | cut -d- -f2)" >/dev/null 2>&1 || true
  done
}

runner_image() {
  local base key name file ca=()
  base=$(registry_base) || base=$(local_base)
  key=$(runner_key "$base")
  name="localhost/benchpilot-runner:$key"
  file="$CACHE/runner-$key.tar"
  if [[ ! -f $file ]]; then
    log "building $name from runner-image/Dockerfile on $base (minutes; cached by content)"
    if [[ -f /etc/ssl/certs/ca-certificates.crt ]]; then
      ca=(-v /etc/ssl/certs/ca-certificates.crt:/host-ca.crt:ro --build-arg CA_BUNDLE=/host-ca.crt)
    fi
    bah bud --quiet --isolation chroot --network host --format docker --layers "${ca[@]}" \
      --build-arg PYTHON="$base" -f runner-image/Dockerfile -t "$name" . >&2
    archive "$name" "$file"
    prune_runner_images
  fi
  touch "$file"  # recently used: kept by the pruning
  bah inspect --type image "$name" >/dev/null 2>&1 || bah pull --quiet "docker-archive:$file" >/dev/null
  echo "$name $file $(stat -c %s "$file")"
}

case ${1:-} in
  runner) runner_image ;;
  pause) pause_image "${2:?usage: node-image.sh pause BINARY}" ;;
  *) echo "usage: scripts/node-image.sh runner | pause BINARY" >&2; exit 2 ;;
esac
