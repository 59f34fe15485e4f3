#!/usr/bin/env bash
# Create .venv at the repo root and install benchpilot with every dependency pinned.
#   scripts/bootstrap.sh           runtime + test dependencies (idempotent, fast when nothing changed)
#   scripts/bootstrap.sh --system  also the system packages the tests use: Debian's prometheus, chromium +
#                                  chromium-driver for the HTML report's browser test, and for the node tier
#                                  containerd, runc, buildah, skopeo, debootstrap (root and apt-get)
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}

# apt runs one at a time on this machine (other work may use it too): every apt-get takes /tmp/apt.lock
apt_install() {  # apt_install WHAT PACKAGE...
  echo "bootstrap: installing $1" >&2
  flock /tmp/apt.lock apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive flock /tmp/apt.lock apt-get install -y -qq --no-install-recommends "${@:2}" >/dev/null
}
can_apt() { [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null && command -v flock >/dev/null; }
if [[ "${1:-}" == "--system" ]] && ! command -v promtool >/dev/null 2>&1; then
  if can_apt; then
    apt_install "Debian's prometheus (server + promtool) for the monitoring tests" prometheus
    # the package starts a system service; the tests start their own Prometheus on a free port
    (service prometheus stop || systemctl stop prometheus || true) >/dev/null 2>&1
  else
    echo "bootstrap: promtool not found and cannot apt-get install prometheus; monitoring tests will fail" >&2
  fi
fi
node_tools=(containerd runc ctr buildah skopeo debootstrap)
missing=$(for t in "${node_tools[@]}"; do command -v "$t" >/dev/null || echo "$t"; done)
if [[ "${1:-}" == "--system" && -n $missing ]]; then
  if can_apt; then
    apt_install "containerd, runc, buildah, skopeo and debootstrap for the node tier" \
      containerd runc buildah skopeo debootstrap
    # containerd's package may start a system daemon; the node tier runs its own, with its own paths
    (service containerd stop || systemctl stop containerd || true) >/dev/null 2>&1
  else
    echo "bootstrap: $(echo $missing) not found and cannot apt-get install them; tests/node will be skipped" >&2
  fi
fi

if [[ "${1:-}" == "--system" ]] && ! { command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; }; then
  if can_apt; then
    apt_install "Debian's chromium and chromium-driver for the HTML report's browser test" chromium chromium-driver
  else
    echo "bootstrap: chromium/chromedriver not found and cannot apt-get install them; the browser test will fail" >&2
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
# The statistics tests' reference (statsmodels and pandas), beside the venv and not in it: pyarrow imports
# pandas whenever it can, which would weigh on every benchpilot process run from the venv.
ref=.venv/reference
if [[ ! -f $ref/.installed || requirements.lock -nt $ref/.installed ]]; then
  echo "bootstrap: installing the statistics tests' reference (statsmodels) into $ref" >&2
  rm -rf "$ref"
  .venv/bin/pip install --disable-pip-version-check -q --no-deps --target "$ref" -c requirements.lock \
    statsmodels pandas patsy formulaic interface_meta 2>&1 | { grep -v "^WARNING: Location '.*' is ignored" || true; }
  touch "$ref/.installed"
fi
