#!/usr/bin/env bash
# Create .venv at the repo root and install benchpilot with every dependency pinned.
#   scripts/bootstrap.sh           runtime + test dependencies (idempotent, fast when nothing changed)
#   scripts/bootstrap.sh --system  also the system packages the tests use (Debian's prometheus)
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}

if [[ "${1:-}" == "--system" ]] && ! command -v promtool >/dev/null 2>&1; then
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
    echo "bootstrap: installing Debian's prometheus (server + promtool) for the monitoring tests" >&2
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
    # the package starts a system service; the tests start their own Prometheus on a free port
    (service prometheus stop || systemctl stop prometheus || true) >/dev/null 2>&1
  else
    echo "bootstrap: promtool not found and cannot apt-get install prometheus; monitoring tests will fail" >&2
  fi
fi

if [[ ! -x .venv/bin/python ]]; then
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.benchpilot-installed
if [[ ! -f $stamp || requirements.lock -nt $stamp || pyproject.toml -nt $stamp ]]; then
  echo "bootstrap: installing pinned dependencies into .venv (with the cache-build extra: torch==2.13.0)" >&2
  # pip prints a warning per package for file:// indexes that lack it; keep real errors visible
  .venv/bin/pip install --disable-pip-version-check -q -c requirements.lock -e ".[test,cache-build]" 2>&1 \
    | { grep -v "^WARNING: Location '.*' is ignored" || true; }
  touch "$stamp"
fi
