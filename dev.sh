#!/usr/bin/env bash
# The project's two commands (see README.md):
#   ./dev.sh demo    set everything up and run the main job
#   ./dev.sh test    set everything up and run lint, types and the tests, exactly as CI does
set -euo pipefail
cd "$(dirname "$0")"
VENV=${VENV:-.venv}
PY="$VENV/bin/python"

# OS packages the sandbox's real nodes need (sandbox/realnode/host.py checks the same list)
OS_PACKAGES="runc containernetworking-plugins busybox-static iproute2"

os_packages() {
    local missing=() pkg
    for pkg in $OS_PACKAGES; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
        echo "==> installing OS packages for the real-node sandbox: ${missing[*]}"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null \
            || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null; } \
            || echo "dev.sh: could not install ${missing[*]}; real nodes will be skipped (dra-gpu sandbox up says why)" >&2
    else
        echo "dev.sh: the real-node sandbox needs the OS packages: ${missing[*]} (not root or no apt-get: install them yourself)" >&2
    fi
}

setup() {
    if ! command -v python3 >/dev/null; then echo "dev.sh: python3 (>= 3.11) is required" >&2; exit 1; fi
    if [ ! -x "$PY" ]; then python3 -m venv "$VENV"; fi
    local stamp
    stamp="$VENV/.installed-$(cat pyproject.toml | sha256sum | cut -c1-16)"
    if [ ! -f "$stamp" ]; then
        echo "==> installing the project and its dev tools into $VENV"
        "$PY" -m pip install -q --upgrade pip
        "$PY" -m pip install -q -e '.[dev]'
        touch "$stamp"
    fi
    if command -v dpkg-query >/dev/null; then os_packages; fi
    echo "==> building the simulated NVML library"
    "$PY" -m nvml_sim.build
}

demo() {
    setup
    echo "==> control-plane and node binaries (built once into ~/.cache/dra-driver; minutes the first time)"
    "$PY" -m sandbox.binaries --node
    "$VENV/bin/dra-gpu" demo "$@"
}

test_all() {
    setup
    echo "==> ruff";        "$VENV/bin/ruff" check . && "$VENV/bin/ruff" format --check .
    echo "==> mypy";        "$VENV/bin/mypy"
    echo "==> import layers"; "$VENV/bin/lint-imports"
    echo "==> control-plane and node binaries for the sandbox tests (built once into ~/.cache/dra-driver)"
    "$PY" -m sandbox.binaries --node --helm
    echo "==> pytest"
    local rc=0
    "$PY" -m pytest "$@" || rc=$?
    if [ "$rc" -eq 5 ]; then echo "dev.sh: pytest collected no tests: failing on purpose" >&2; exit 1; fi
    exit "$rc"
}

case "${1:-}" in
    demo) shift; demo "$@" ;;
    test) shift; test_all "$@" ;;
    *) echo "usage: ./dev.sh demo | test [pytest args]" >&2; exit 2 ;;
esac
