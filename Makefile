# The README's first two commands are `make quickstart` and `make test`; each does its own set-up.
VENV := .venv/bin

.PHONY: setup quickstart test test-fast test-local test-cluster test-node k8s-bin node-prepare bench clean

setup:
	@scripts/bootstrap.sh

quickstart: setup
	$(VENV)/benchpilot run examples/quickstart.yaml
	$(VENV)/benchpilot report ./results --plot results/success.png

test:
	@scripts/bootstrap.sh --system
	@# the cluster and node tiers' binaries, built from Go modules once per machine (minutes), then the
	@# runner image (buildah, from runner-image/Dockerfile; rebuilt when what it copies changes), outside
	@# the tests' timeouts; each step prints how long it took
	@scripts/k8s-bin.sh --node >/dev/null || echo "k8s-bin: could not build the Kubernetes binaries; tests/cluster and tests/node will say why" >&2
	@scripts/node-prepare.sh >/dev/null || echo "node-prepare: the node tier cannot be prepared here; tests/node will say why" >&2
	$(VENV)/python -m pytest -q -rs -p no:cacheprovider

test-cluster: setup  ## the real control-plane tier alone (builds the binaries from Go modules the first time)
	@scripts/k8s-bin.sh >/dev/null
	$(VENV)/python -m pytest -q -p no:cacheprovider tests/cluster

test-node: setup  ## the real-node tier alone: kubelet, containerd, the runner image (root; builds once per machine)
	@scripts/bootstrap.sh --system
	@scripts/node-prepare.sh >/dev/null
	$(VENV)/python -m pytest -q -rs -p no:cacheprovider tests/node

k8s-bin:
	@scripts/k8s-bin.sh --node

node-prepare:
	@scripts/node-prepare.sh

test-local: setup  ## every tier that needs no Kubernetes binaries: unit, integration, the kmock operator tier, chart, monitoring
	$(VENV)/python -m pytest -q -rs -p no:cacheprovider --ignore=tests/cluster --ignore=tests/node

test-fast: setup
	$(VENV)/python -m pytest -q -m "not slow" tests/unit

bench: setup
	for b in bench/*.py; do $(VENV)/python $$b || exit 1; done

clean:
	rm -rf results .pytest_cache
