#!/usr/bin/env bash
# Runs every test of the workspace, installing what the tests need when it is missing.
# This is the README's test command; .ci/run calls it.
set -euo pipefail
cd "$(dirname "$0")/.."

# Real clients and the reference peer the tests run against (see ../shared/TESTING.md).
need=()
for tool in skopeo podman umoci docker-registry; do
    command -v "$tool" >/dev/null 2>&1 || need+=("$tool")
done
if [ ${#need[@]} -gt 0 ]; then
    echo "==> installing ${need[*]}"
    if [ "$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi
command -v cargo-nextest >/dev/null 2>&1 || cargo install cargo-nextest --locked

echo "==> cargo fmt --check"
cargo fmt --all -- --check
echo "==> cargo clippy --all-targets -- -D warnings"
cargo clippy --workspace --all-targets -- -D warnings
echo "==> cargo nextest run"
cargo nextest run --workspace --no-fail-fast
echo "==> doctests"
cargo test --workspace --doc
echo "==> criterion benches, quick mode (each bench runs once)"
cargo bench --workspace -- --test
echo "==> all tests passed"
