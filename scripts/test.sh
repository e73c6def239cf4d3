#!/usr/bin/env bash
# The project's single test command.
#
# Installs what the tests need (a Python venv in .venv, node_modules in
# tests/js), then runs: cargo fmt --check, cargo clippy (-D warnings),
# cargo test, the release build of `cairn`, the Python integration suite
# (pytest, tests/integration), the kafkajs suite (node --test, tests/js) and
# the dashboard in headless Chromium (node --test, tests/browser; installs
# Debian's chromium when missing and running as root), and a short run of each fuzz target
# (scripts/fuzz.sh; FUZZ_SECONDS per target).
# Every stage runs even if an earlier one failed (the integration suites need
# the release build, though); the exit status is non-zero if any stage failed.
#
# Usage: scripts/test.sh [--no-cargo] [--no-python] [--no-js] [--no-browser] [--no-fuzz] [--fast] [-- PYTEST_ARGS...]
#   --no-cargo   skip fmt/clippy/cargo test (still builds the release binary)
#   --no-python  skip the pytest suite
#   --no-js      skip the kafkajs suite
#   --no-browser skip the dashboard browser test
#   --no-fuzz    skip the short fuzz run
#   --fast       skip the slow crash/recovery tests (pytest -m "not slow")
# Environment: PYTHON (default python3), CAIRN_BIN (default target/release/cairn).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

run_cargo=1
run_python=1
run_js=1
run_browser=1
run_fuzz=1
fast=0
pytest_args=()
while [[ $# -gt 0 ]]; do
    case "$1" in
        --no-cargo) run_cargo=0 ;;
        --no-python) run_python=0 ;;
        --no-js) run_js=0 ;;
        --no-browser) run_browser=0 ;;
        --no-fuzz) run_fuzz=0 ;;
        --fast) fast=1 ;;
        --) shift; pytest_args=("$@"); break ;;
        -h|--help) sed -n '2,21p' "$0"; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
    shift
done

PYTHON="${PYTHON:-python3}"
VENV="$ROOT/.venv"
PY_REQ="$ROOT/tests/integration/requirements.txt"
JS_DIR="$ROOT/tests/js"
BROWSER_DIR="$ROOT/tests/browser"
CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"

failed=()
stage() { printf '\n==> %s\n' "$*"; }
record() {
    # record NAME CMD...: run CMD, remember NAME if it failed.
    local name="$1"; shift
    stage "$name"
    local start=$SECONDS rc
    # Not inside `if`: errexit must stay in force in the subshell.
    set +e
    (set -e; "$@")
    rc=$?
    set -e
    if [[ $rc -eq 0 ]]; then
        printf '==> %s: ok (%ss)\n' "$name" "$((SECONDS - start))"
    else
        printf '==> %s: FAILED (exit %s, %ss)\n' "$name" "$rc" "$((SECONDS - start))"
        failed+=("$name")
    fi
}

hash_of() { cat "$@" | sha256sum | cut -d' ' -f1; }

setup_python() {
    local want stamp="$VENV/.cairn-requirements.sha256"
    want="$(hash_of "$PY_REQ")-$("$PYTHON" -c 'import sys; print(sys.version.split()[0])')"
    if [[ -x "$VENV/bin/python" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
        echo "python venv is current ($VENV)"
        return 0
    fi
    "$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 9) else 1)' || {
        echo "need Python >= 3.9 (have $("$PYTHON" --version))" >&2
        return 1
    }
    if [[ ! -x "$VENV/bin/python" ]]; then
        "$PYTHON" -m venv "$VENV"
    fi
    "$VENV/bin/python" -m pip install --disable-pip-version-check --no-input -q -r "$PY_REQ"
    echo "$want" >"$stamp"
}

setup_js() {
    local want stamp="$JS_DIR/node_modules/.cairn-lock.sha256"
    want="$(hash_of "$JS_DIR/package-lock.json" "$JS_DIR/package.json")-$(node --version)"
    if [[ -d "$JS_DIR/node_modules" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
        echo "node_modules is current ($JS_DIR/node_modules)"
        return 0
    fi
    (cd "$JS_DIR" && npm ci --no-audit --no-fund --loglevel=error)
    echo "$want" >"$stamp"
}

# Debian's chromium for the dashboard test; installed only when missing, and only as root.
setup_chromium() {
    if [[ -x "$CHROMIUM" ]]; then
        echo "chromium is installed ($CHROMIUM)"
        return 0
    fi
    if [[ $(id -u) -ne 0 ]]; then
        echo "SKIP: $CHROMIUM is missing and installing it needs root (apt-get install chromium);" \
            "the dashboard browser test will not run" >&2
        return 0
    fi
    export DEBIAN_FRONTEND=noninteractive
    timeout 900 apt-get update -q
    timeout 900 apt-get install -y -q chromium
}

setup_browser() {
    local want stamp="$BROWSER_DIR/node_modules/.cairn-lock.sha256"
    want="$(hash_of "$BROWSER_DIR/package-lock.json" "$BROWSER_DIR/package.json")-$(node --version)"
    if [[ -d "$BROWSER_DIR/node_modules" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
        echo "node_modules is current ($BROWSER_DIR/node_modules)"
        return 0
    fi
    (cd "$BROWSER_DIR" && npm ci --no-audit --no-fund --loglevel=error)
    echo "$want" >"$stamp"
}

run_browser_test() {
    if [[ ! -x "$CHROMIUM" ]]; then
        echo "SKIP: no chromium at $CHROMIUM (not root, so not installed)" >&2
        return 0
    fi
    (cd "$BROWSER_DIR" &&
        CHROMIUM="$CHROMIUM" timeout --kill-after=30 300 \
            node --test --test-concurrency=1 --test-timeout=240000 dashboard.test.js)
}

run_pytest() {
    local args=(-p no:cacheprovider)
    if [[ $fast -eq 1 ]]; then args+=(-m "not slow"); fi
    (cd "$ROOT/tests/integration" &&
        timeout --kill-after=30 2400 "$VENV/bin/python" -m pytest "${args[@]}" "${pytest_args[@]}")
}

run_node() {
    local files=()
    mapfile -t files < <(cd "$JS_DIR" && ls -1 ./*.test.js 2>/dev/null | sort)
    if [[ ${#files[@]} -eq 0 ]]; then
        echo "no kafkajs test files found" >&2
        return 1
    fi
    (cd "$JS_DIR" &&
        timeout --kill-after=30 1200 node --test --test-concurrency=1 --test-timeout=300000 "${files[@]}")
}

# ---------------------------------------------------------------------------
if [[ $run_python -eq 1 ]]; then record "python venv (.venv)" setup_python; fi
if [[ $run_js -eq 1 ]]; then record "npm ci (tests/js)" setup_js; fi
if [[ $run_browser -eq 1 ]]; then
    record "chromium (dashboard test)" setup_chromium
    record "npm ci (tests/browser)" setup_browser
fi

if [[ $run_cargo -eq 1 ]]; then
    record "cargo fmt --check" cargo fmt --all -- --check
    record "cargo clippy" cargo clippy --workspace --all-targets -- -D warnings
    record "cargo test" timeout 2400 cargo test --workspace
fi
if [[ $run_fuzz -eq 1 ]]; then record "fuzz (scripts/fuzz.sh)" timeout 3600 scripts/fuzz.sh; fi

build_ok=1
if [[ -z "${CAIRN_BIN:-}" ]]; then
    record "cargo build --release -p cairn-cli" cargo build --release -p cairn-cli || true
    [[ -x "$ROOT/target/release/cairn" ]] || build_ok=0
    [[ " ${failed[*]-} " == *"cargo build --release"* ]] && build_ok=0
fi

if [[ $build_ok -eq 0 ]]; then
    echo "release build failed: skipping the integration suites" >&2
    [[ $run_python -eq 1 ]] && failed+=("pytest (not run: no binary)")
    [[ $run_js -eq 1 ]] && failed+=("node --test (not run: no binary)")
    [[ $run_browser -eq 1 ]] && failed+=("dashboard browser test (not run: no binary)")
else
    if [[ $run_python -eq 1 ]]; then
        if [[ " ${failed[*]-} " == *"python venv"* ]]; then
            failed+=("pytest (not run: venv setup failed)")
        else
            record "pytest tests/integration" run_pytest
        fi
    fi
    if [[ $run_js -eq 1 ]]; then
        if [[ " ${failed[*]-} " == *"npm ci"* ]]; then
            failed+=("node --test (not run: npm ci failed)")
        else
            record "node --test tests/js" run_node
        fi
    fi
    if [[ $run_browser -eq 1 ]]; then
        if [[ " ${failed[*]-} " == *"chromium"* || " ${failed[*]-} " == *"npm ci (tests/browser)"* ]]; then
            failed+=("dashboard browser test (not run: setup failed)")
        else
            record "node --test tests/browser" run_browser_test
        fi
    fi
fi

echo
if [[ ${#failed[@]} -gt 0 ]]; then
    echo "FAILED stages:"
    printf '  - %s\n' "${failed[@]}"
    exit 1
fi
echo "all stages passed"
