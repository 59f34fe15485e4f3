#!/usr/bin/env bash
# Build the real Kubernetes control plane for the cluster test tier from Go modules, once per machine:
#   kube-apiserver, kube-controller-manager, kubectl   (module k8s.io/kubernetes, through a wrapper
#                                                       module that replaces each k8s.io/* staging
#                                                       module with its published v0.x.y twin)
#   etcd                                               (a tiny main around go.etcd.io/etcd/server/v3/embed)
#   helm                                               (helm.sh/helm/v4)
# into ${BENCHPILOT_K8S_CACHE:-~/.cache/benchpilot/k8s-bin}/<versions>/bin, outside the repo, keyed by version.
# Nothing is downloaded but Go modules (through the Go module proxy). Prints the bin folder on stdout.
#   scripts/k8s-bin.sh            build what is missing, print the folder
#   scripts/k8s-bin.sh --check    print the folder if everything is built, else exit 1
set -euo pipefail
K8S_VERSION=${K8S_VERSION:-v1.37.2}
STAGING_VERSION=${STAGING_VERSION:-v0.37.2}
ETCD_VERSION=${ETCD_VERSION:-v3.6.16}
HELM_VERSION=${HELM_VERSION:-v4.3.1}
export GOTOOLCHAIN=local GOFLAGS=-mod=mod
CACHE=${BENCHPILOT_K8S_CACHE:-$HOME/.cache/benchpilot/k8s-bin}
DIR="$CACHE/k8s-$K8S_VERSION-etcd-$ETCD_VERSION-helm-$HELM_VERSION"
BIN="$DIR/bin"
TOOLS=(kube-apiserver kube-controller-manager kubectl etcd helm)

all_built() { for t in "${TOOLS[@]}"; do [[ -x "$BIN/$t" ]] || return 1; done; }
if [[ "${1:-}" == "--check" ]]; then all_built && echo "$BIN" && exit 0; exit 1; fi
if all_built; then echo "$BIN"; exit 0; fi
command -v go >/dev/null || { echo "k8s-bin: go is not installed" >&2; exit 3; }
mkdir -p "$BIN" "$DIR/src/k8s" "$DIR/src/etcd" "$DIR/src/helm"
log() { echo "k8s-bin: $*" >&2; }

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
  local minor=${K8S_VERSION#v1.}; minor=${minor%%.*}
  local stamp="" pkg
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do  # what --version and discovery report
    stamp+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
  done
  for t in kube-apiserver kube-controller-manager kubectl; do
    [[ -x "$BIN/$t" ]] && continue
    log "building $t $K8S_VERSION (minutes, once per machine)"
    go build -trimpath -ldflags="-s -w$stamp" -o "$BIN/$t" "k8s.io/kubernetes/cmd/$t"
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
  go build -trimpath -ldflags="-s -w" -o "$BIN/etcd" .
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
  go build -trimpath -ldflags="-s -w" -o "$BIN/helm" helm.sh/helm/v4/cmd/helm
}

build_etcd
build_helm
build_k8s
all_built || { log "not everything was built"; exit 1; }
echo "$BIN"
