#!/usr/bin/env bash
# Build the real Kubernetes parts for the cluster and node test tiers from Go modules, once per machine:
#   kube-apiserver, kube-controller-manager, kubectl   (module k8s.io/kubernetes, through a wrapper
#                                                       module that replaces each k8s.io/* staging
#                                                       module with its published v0.x.y twin)
#   etcd                                               (a tiny main around go.etcd.io/etcd/server/v3/embed)
#   helm                                               (helm.sh/helm/v4)
# and, with --node, what the node tier (tests/node) adds:
#   kubelet, kube-scheduler                            (the same wrapper module and version)
#   pause                                              (a static binary that sleeps until SIGTERM: the
#                                                       pod sandbox's process, imported as an image)
#   CNI plugins bridge, host-local, loopback           (github.com/containernetworking/plugins)
# into ${BENCHPILOT_K8S_CACHE:-~/.cache/benchpilot/k8s-bin}/<versions>/bin, outside the repo, keyed by
# version (the CNI plugins in <versions>/cni-<version>). Nothing is downloaded but Go modules (through
# the Go module proxy). Prints the bin folder on stdout; with --node, the CNI folder on a second line.
#   scripts/k8s-bin.sh [--node]           build what is missing, print the folder(s)
#   scripts/k8s-bin.sh --check [--node]   print the folder(s) if everything is built, else exit 1
# Two builds at once take turns (a lock in the cache folder): the second finds the binaries built.
set -euo pipefail
K8S_VERSION=${K8S_VERSION:-v1.37.2}
STAGING_VERSION=${STAGING_VERSION:-v0.37.2}
ETCD_VERSION=${ETCD_VERSION:-v3.6.16}
HELM_VERSION=${HELM_VERSION:-v4.3.1}
CNI_VERSION=${CNI_VERSION:-v1.10.0}
export GOTOOLCHAIN=local GOFLAGS=-mod=mod
CACHE=${BENCHPILOT_K8S_CACHE:-$HOME/.cache/benchpilot/k8s-bin}
DIR="$CACHE/k8s-$K8S_VERSION-etcd-$ETCD_VERSION-helm-$HELM_VERSION"
BIN="$DIR/bin"
CNI="$DIR/cni-$CNI_VERSION"
TOOLS=(kube-apiserver kube-controller-manager kubectl etcd helm)
CNI_PLUGINS=(bridge loopback host-local)
CHECK=0 NODE=0
for arg in "$@"; do
  case $arg in
    --check) CHECK=1 ;;
    --node) NODE=1 ;;
    *) echo "k8s-bin: unknown argument '$arg' (allowed: --check, --node)" >&2; exit 2 ;;
  esac
done
[[ $NODE == 1 ]] && TOOLS+=(kubelet kube-scheduler pause)

all_built() {
  local t
  for t in "${TOOLS[@]}"; do [[ -x "$BIN/$t" ]] || return 1; done
  if [[ $NODE == 1 ]]; then for t in "${CNI_PLUGINS[@]}"; do [[ -x "$CNI/$t" ]] || return 1; done; fi
  return 0
}
report() { echo "$BIN"; if [[ $NODE == 1 ]]; then echo "$CNI"; fi; }
if [[ $CHECK == 1 ]]; then all_built && report && exit 0; exit 1; fi
if all_built; then report; exit 0; fi
command -v go >/dev/null || { echo "k8s-bin: go is not installed" >&2; exit 3; }
log() { echo "k8s-bin: $*" >&2; }
mkdir -p "$BIN" "$DIR/src/k8s" "$DIR/src/etcd" "$DIR/src/helm"
exec 9>"$CACHE/.build.lock"
if ! flock -n 9; then
  log "another build is under way in $CACHE; waiting for it"
  flock 9
fi
if all_built; then report; exit 0; fi

# go build into NAME.partial, then rename: a build cut short never leaves a binary that looks built
gobuild() {
  local out=$1; shift
  go build -trimpath -o "$out.partial" "$@"
  mv "$out.partial" "$out"
}

build_k8s() {
  cd "$DIR/src/k8s"
  if [[ ! -f go.mod ]]; then
    go mod init benchpilot.local/k8s-bin >/dev/null 2>&1
    go mod edit -require="k8s.io/kubernetes@$K8S_VERSION"
    # k8s.io/kubernetes replaces its staging modules with ./staging/src/...: replace each with its release
    gomod=$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/.*"GoMod": "\(.*\)",*/\1/p')
    for mod in $(awk '/^replace|^\t/ && /=> \.\/staging/ {for (i=1;i<=NF;i++) if ($i ~ /^k8s\.io\//) {print $i; break}}' "$gomod" | sort -u); do
      go mod edit -replace="$mod=$mod@$STAGING_VERSION"
    done
    cat > tools.go <<'EOF'
//go:build tools

package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
EOF
    go mod tidy -e >&2
  fi
  local wanted=(kube-apiserver kube-controller-manager kubectl)
  if [[ $NODE == 1 ]]; then
    wanted+=(kubelet kube-scheduler)
    if [[ ! -f node_tools.go ]]; then  # a cache made before the node tier: add the node's commands
      cat > node_tools.go <<'EOF'
//go:build tools

package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubelet"
)
EOF
      go mod tidy -e >&2
    fi
  fi
  local minor=${K8S_VERSION#v1.}; minor=${minor%%.*}
  local stamp="" pkg t
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do  # what --version and discovery report
    stamp+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
  done
  for t in "${wanted[@]}"; do
    [[ -x "$BIN/$t" ]] && continue
    log "building $t $K8S_VERSION (minutes, once per machine)"
    gobuild "$BIN/$t" -ldflags="-s -w$stamp" "k8s.io/kubernetes/cmd/$t"
  done
}

build_etcd() {
  [[ -x "$BIN/etcd" ]] && return 0
  cd "$DIR/src/etcd"
  if [[ ! -f go.mod ]]; then
    go mod init benchpilot.local/etcd >/dev/null 2>&1
    cat > main.go <<'EOF'
// A minimal etcd for tests: one member, data in --data-dir, clients on --listen-client-urls.
package main

import (
	"flag"
	"log"
	"net/url"
	"os"
	"os/signal"
	"syscall"

	"go.etcd.io/etcd/server/v3/embed"
)

func main() {
	dataDir := flag.String("data-dir", "default.etcd", "data directory")
	client := flag.String("listen-client-urls", "http://127.0.0.1:2379", "client URL")
	peer := flag.String("listen-peer-urls", "http://127.0.0.1:2380", "peer URL")
	flag.String("advertise-client-urls", "", "ignored (the client URL is advertised)")
	flag.Parse()
	cfg := embed.NewConfig()
	cfg.Dir = *dataDir
	cu, err := url.Parse(*client)
	if err != nil {
		log.Fatal(err)
	}
	pu, err := url.Parse(*peer)
	if err != nil {
		log.Fatal(err)
	}
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{*cu}, []url.URL{*cu}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{*pu}, []url.URL{*pu}
	cfg.InitialCluster = cfg.Name + "=" + pu.String()
	cfg.LogLevel = "warn"
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		log.Fatal(err)
	}
	<-e.Server.ReadyNotify()
	log.Printf("etcd ready on %s", cu)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	select {
	case <-sig:
	case err := <-e.Err():
		log.Print(err)
	}
	e.Close()
}
EOF
    go mod edit -require="go.etcd.io/etcd/server/v3@$ETCD_VERSION"
    go mod tidy >&2
  fi
  log "building etcd $ETCD_VERSION"
  gobuild "$BIN/etcd" -ldflags="-s -w" .
}

build_helm() {
  [[ -x "$BIN/helm" ]] && return 0
  cd "$DIR/src/helm"
  if [[ ! -f go.mod ]]; then
    go mod init benchpilot.local/helm >/dev/null 2>&1
    go mod edit -require="helm.sh/helm/v4@$HELM_VERSION"
    printf '//go:build tools\n\npackage tools\n\nimport _ "helm.sh/helm/v4/cmd/helm"\n' > tools.go
    go mod tidy -e >&2
  fi
  log "building helm $HELM_VERSION"
  gobuild "$BIN/helm" -ldflags="-s -w" helm.sh/helm/v4/cmd/helm
}

build_pause() {
  [[ -x "$BIN/pause" ]] && return 0
  mkdir -p "$DIR/src/pause"
  cd "$DIR/src/pause"
  if [[ ! -f go.mod ]]; then
    go mod init benchpilot.local/pause >/dev/null 2>&1
    cat > main.go <<'EOF'
// The pod sandbox's process: holds the pod's namespaces and sleeps until SIGINT or SIGTERM.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	<-sig
}
EOF
  fi
  log "building pause"
  CGO_ENABLED=0 gobuild "$BIN/pause" -ldflags="-s -w" .
}

build_cni() {
  local p missing=0
  for p in "${CNI_PLUGINS[@]}"; do [[ -x "$CNI/$p" ]] || missing=1; done
  [[ $missing == 1 ]] || return 0
  mkdir -p "$DIR/src/cni" "$CNI"
  cd "$DIR/src/cni"
  local pkgs=(main/bridge main/loopback ipam/host-local)
  if [[ ! -f go.mod ]]; then
    go mod init benchpilot.local/cni >/dev/null 2>&1
    go mod edit -require="github.com/containernetworking/plugins@$CNI_VERSION"
    { printf '//go:build tools\n\npackage tools\n\nimport (\n'
      for p in "${pkgs[@]}"; do printf '\t_ "github.com/containernetworking/plugins/plugins/%s"\n' "$p"; done
      printf ')\n'; } > tools.go
    go mod tidy -e >&2
  fi
  log "building the CNI plugins ${CNI_PLUGINS[*]} $CNI_VERSION"
  for p in "${pkgs[@]}"; do
    CGO_ENABLED=0 gobuild "$CNI/${p#*/}" -ldflags="-s -w" "github.com/containernetworking/plugins/plugins/$p"
  done
}

build_etcd
build_helm
build_k8s
if [[ $NODE == 1 ]]; then
  build_pause
  build_cni
fi
all_built || { log "not everything was built"; exit 1; }
report
