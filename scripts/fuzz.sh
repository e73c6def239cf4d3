#!/usr/bin/env bash
# Builds the fuzz targets (fuzz/) and runs each for a while on the stable toolchain; exits non-zero
# if any target crashed. Installs its tool first (cargo-fuzz, pinned; a C++ compiler for
# libFuzzer) when missing; a second run finds them and goes straight to building.
#
# Usage: scripts/fuzz.sh [--build-only] [TARGET...]   (default: every target in fuzz/Cargo.toml)
# Environment:
#   FUZZ_SECONDS     seconds per target (default 60)
#   FUZZ_WORK        where working corpora, crashes and logs go (default: a new temp dir)
#   FUZZ_KEEP_GOING  1: do not stop at the first crash; collect them all (long runs)
#   FUZZ_ARGS        extra libFuzzer flags, e.g. "-max_len=8192"
#
# Every crash is copied to fuzz/regressions/TARGET/, where the replay test in
# crates/cairn-fuzz/tests/regressions.rs runs it on every `cargo test`; commit it.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

CARGO_FUZZ_VERSION=0.13.1
SECONDS_EACH="${FUZZ_SECONDS:-60}"
KEEP_GOING="${FUZZ_KEEP_GOING:-0}"
WORK="${FUZZ_WORK:-$(mktemp -d -t cairn-fuzz.XXXXXX)}"

build_only=0
targets=()
while [[ $# -gt 0 ]]; do
    case "$1" in
        --build-only) build_only=1 ;;
        -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
        -*) echo "unknown argument: $1" >&2; exit 2 ;;
        *) targets+=("$1") ;;
    esac
    shift
done
if [[ ${#targets[@]} -eq 0 ]]; then
    mapfile -t targets < <(sed -n 's/^name = "\(.*\)"$/\1/p' fuzz/Cargo.toml | grep -v '^cairn-')
fi

# cargo-fuzz drives libFuzzer; with `-s none` it passes only stable rustc flags (no sanitizer).
install_cargo_fuzz() {
    if [[ "$(cargo fuzz --version 2>/dev/null)" == "cargo-fuzz $CARGO_FUZZ_VERSION" ]]; then
        echo "cargo-fuzz $CARGO_FUZZ_VERSION is installed"
        return 0
    fi
    cargo install --locked cargo-fuzz --version "$CARGO_FUZZ_VERSION"
}

# libFuzzer itself is C++, compiled by the libfuzzer-sys build script.
install_cxx() {
    if command -v c++ >/dev/null || command -v g++ >/dev/null || command -v clang++ >/dev/null; then
        return 0
    fi
    if [[ $(id -u) -ne 0 ]]; then
        echo "no C++ compiler to build libFuzzer with (apt-get install g++ needs root)" >&2
        return 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    timeout 900 apt-get update -q
    timeout 900 apt-get install -y -q g++
}

install_cargo_fuzz
install_cxx
echo "building the fuzz targets"
cargo fuzz build -s none --fuzz-dir fuzz
[[ $build_only -eq 1 ]] && exit 0

flags=(-max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1)
if [[ "$KEEP_GOING" == 1 ]]; then
    # Fork mode survives crashes: each one is saved and fuzzing goes on in a new child.
    flags+=(-fork=1 -ignore_crashes=1 -ignore_ooms=1 -ignore_timeouts=1)
fi
# shellcheck disable=SC2206
flags+=(${FUZZ_ARGS:-})

echo "working directory: $WORK"
failed=()
for t in "${targets[@]}"; do
    mkdir -p "$WORK/corpus/$t" "$WORK/artifacts/$t" "fuzz/regressions/$t"
    echo "==> fuzzing $t for ${SECONDS_EACH}s"
    # The committed seeds are read-only input; new corpus entries go to the working directory.
    set +e
    cargo fuzz run -s none --fuzz-dir fuzz "$t" "$WORK/corpus/$t" "fuzz/corpus/$t" -- \
        "${flags[@]}" -artifact_prefix="$WORK/artifacts/$t/" >"$WORK/$t.log" 2>&1
    rc=$?
    set -e
    grep -E '^(stat::|Done|#[0-9]+ +DONE)|ALLOCATION BOUND|panicked at|ERROR: libFuzzer' \
        "$WORK/$t.log" | sort | uniq -c | sort -rn | head -n 20 || true
    crashes=()
    mapfile -t crashes < <(find "$WORK/artifacts/$t" -type f \
        \( -name 'crash-*' -o -name 'oom-*' -o -name 'timeout-*' \) | sort)
    for c in "${crashes[@]}"; do
        cp -n "$c" "fuzz/regressions/$t/"
    done
    if [[ $rc -ne 0 || ${#crashes[@]} -gt 0 ]]; then
        echo "==> $t: FAILED (exit $rc, ${#crashes[@]} crash inputs, copied to fuzz/regressions/$t/;" \
            "log: $WORK/$t.log)"
        failed+=("$t")
    else
        echo "==> $t: no crash"
    fi
done

if [[ ${#failed[@]} -gt 0 ]]; then
    echo "crashed: ${failed[*]}"
    exit 1
fi
echo "all fuzz targets ran without a crash"
