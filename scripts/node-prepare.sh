#!/usr/bin/env bash
# Everything the node tier (tests/node) needs, made once per machine and cached outside the repo:
#   the Kubernetes binaries with the node's parts      scripts/k8s-bin.sh --node
#   the pause image                                     scripts/node-image.sh pause
#   the runner image from runner-image/Dockerfile       scripts/node-image.sh runner
# Prints "key value" lines on stdout (bin, cni, pause_image, pause_archive, runner_image, runner_archive,
# runner_size) and how long each step took on stderr. Exit 3: this machine cannot run the tier (not
# root, or a part is missing; the message says which and how to get it).
set -euo pipefail
cd "$(dirname "$0")/.."
say() { echo "node-prepare: $*" >&2; }
[[ $(id -u) -eq 0 ]] || { say "the node tier runs a kubelet and containerd: it needs root"; exit 3; }
for tool in containerd runc ctr buildah debootstrap ip; do
  command -v "$tool" >/dev/null || { say "$tool is not installed (scripts/bootstrap.sh --system installs it)"; exit 3; }
done
step() {  # step NAME COMMAND...: run, time, keep stdout
  local t0=$EPOCHREALTIME out
  out=$("${@:2}")
  say "$1: $(awk "BEGIN {printf \"%.1f\", $EPOCHREALTIME - $t0}")s"
  printf '%s\n' "$out"
}
dirs=$(step "Kubernetes binaries (k8s-bin.sh --node)" scripts/k8s-bin.sh --node)
bin=$(sed -n 1p <<<"$dirs")
cni=$(sed -n 2p <<<"$dirs")
read -r pause_image pause_archive _ < <(step "pause image" scripts/node-image.sh pause "$bin/pause")
read -r runner_image runner_archive runner_size < <(step "runner image" scripts/node-image.sh runner)
printf 'bin %s\ncni %s\npause_image %s\npause_archive %s\nrunner_image %s\nrunner_archive %s\nrunner_size %s\n' \
  "$bin" "$cni" "$pause_image" "$pause_archive" "$runner_image" "$runner_archive" "$runner_size"
