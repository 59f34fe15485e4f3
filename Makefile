# The README's first two commands are `make quickstart` and `make test`; each does its own set-up.
VENV := .venv/bin

.PHONY: setup quickstart test test-fast bench clean

setup:
	@scripts/bootstrap.sh

quickstart: setup
	$(VENV)/benchpilot run examples/quickstart.yaml
	$(VENV)/benchpilot report ./results --plot results/success.png

test:
	@scripts/bootstrap.sh --system
	$(VENV)/python -m pytest -q -p no:cacheprovider

test-fast: setup
	$(VENV)/python -m pytest -q -m "not slow" tests/unit

bench: setup
	for b in bench/*.py; do $(VENV)/python $$b || exit 1; done

clean:
	rm -rf results .pytest_cache
