#!/usr/bin/env bash
# Runs every test of the workspace, installing what the tests need when it is missing.
# This is the README's test command; .ci/run calls it.
set -euo pipefail
cd "$(dirname "$0")/.."

# Heavy installs live here, where a rerun finds them.
export REGISTRY_TOOLS_DIR="${REGISTRY_TOOLS_DIR:-$HOME/.cache/registry-tools}"
mkdir -p "$REGISTRY_TOOLS_DIR"
if [ "$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi

# Real clients and the reference peer the tests run against (see ../shared/TESTING.md).
need=()
for tool in skopeo podman umoci docker-registry; do
    command -v "$tool" >/dev/null 2>&1 || need+=("$tool")
done
if [ ${#need[@]} -gt 0 ]; then
    echo "==> installing ${need[*]}"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi
command -v cargo-nextest >/dev/null 2>&1 || cargo install cargo-nextest --locked

# A real Harbor client library (PyPI's harborapi) for the management API's tests.
venv="$REGISTRY_TOOLS_DIR/harbor-venv"
if ! "$venv/bin/python" -c "import harborapi" >/dev/null 2>&1; then
    echo "==> installing harborapi into $venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q "harborapi==0.26.2"
fi
export REGISTRY_TEST_PYTHON="$venv/bin/python"

echo "==> cargo fmt --check"
cargo fmt --all -- --check
echo "==> cargo clippy --all-targets -- -D warnings"
cargo clippy --workspace --all-targets -- -D warnings
echo "==> no module of a crate imports another that imports it back"
python3 scripts/module_cycles.py registry-core registry-storage registry-auth registry-redb registry-http \
    registry-server testkit
echo "==> registry-http carries none of the binary's dependencies"
binary_deps=$(cargo tree -p registry-http -e normal --prefix none --format '{p}' \
    | grep -E '^(clap|anyhow|toml|tracing-subscriber) ' || true)
if [ -n "$binary_deps" ]; then
    echo "registry-http depends on: $binary_deps" >&2
    exit 1
fi
echo "==> cargo nextest run"
cargo nextest run --workspace --no-fail-fast
echo "==> doctests"
cargo test --workspace --doc
echo "==> criterion benches, quick mode (each bench runs once)"
cargo bench --workspace -- --test
echo "==> all tests passed"
