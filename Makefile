# The README's first two commands are `make quickstart` and `make test`; each does its own set-up.
VENV := .venv/bin

.PHONY: setup quickstart test test-fast test-local test-cluster k8s-bin bench clean

setup:
	@scripts/bootstrap.sh

quickstart: setup
	$(VENV)/benchpilot run examples/quickstart.yaml
	$(VENV)/benchpilot report ./results --plot results/success.png

test:
	@scripts/bootstrap.sh --system
	@# the cluster tier's binaries, built from Go modules once per machine (minutes), outside the test timeout
	@scripts/k8s-bin.sh >/dev/null || echo "k8s-bin: could not build the control plane; tests/cluster will say why" >&2
	$(VENV)/python -m pytest -q -rs -p no:cacheprovider

test-cluster: setup  ## the real control-plane tier alone (builds the binaries from Go modules the first time)
	@scripts/k8s-bin.sh >/dev/null
	$(VENV)/python -m pytest -q -p no:cacheprovider tests/cluster

k8s-bin:
	@scripts/k8s-bin.sh

test-local: setup  ## every tier that needs no Kubernetes binaries: unit, integration, the kmock operator tier, chart, monitoring
	$(VENV)/python -m pytest -q -rs -p no:cacheprovider --ignore=tests/cluster --ignore=tests/node

test-fast: setup
	$(VENV)/python -m pytest -q -m "not slow" tests/unit

bench: setup
	for b in bench/*.py; do $(VENV)/python $$b || exit 1; done

clean:
	rm -rf results .pytest_cache
