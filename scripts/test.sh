#!/usr/bin/env bash
# Runs every test of the workspace, installing what the tests need when it is missing.
# This is the README's test command; .ci/run calls it.
set -euo pipefail
cd "$(dirname "$0")/.."

# Heavy installs live here, where a rerun finds them.
export REGISTRY_TOOLS_DIR="${REGISTRY_TOOLS_DIR:-$HOME/.cache/registry-tools}"
mkdir -p "$REGISTRY_TOOLS_DIR"
if [ "$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi
# Each phase prints the seconds since the start, so a slow run shows where its time went.
step() { echo "==> [${SECONDS}s] $*"; }
# The build takes several GiB (the test binaries, Garage's once); a full disk shows up later as a
# linker's "Bus error", so say how much there is first.
step "free disk for target/ and $REGISTRY_TOOLS_DIR: $(df -h --output=avail . | tail -1 | tr -d ' ') here, $(df -h --output=avail "$REGISTRY_TOOLS_DIR" | tail -1 | tr -d ' ') for the tools"

# Real clients and the reference peer the tests run against (see ../shared/TESTING.md).
need=()
for tool in skopeo podman umoci docker-registry nginx chromium containerd slapd; do
    command -v "$tool" >/dev/null 2>&1 || need+=("$tool")
done
# PostgreSQL's server binaries (the replicated shape's database; a private one for restart tests).
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
command -v runuser >/dev/null 2>&1 || need+=(util-linux)
# FUSE's mount helper, for the power-cut filesystem (testkit::powercut) when not run as root.
command -v fusermount3 >/dev/null 2>&1 || need+=(fuse3)
if [ ${#need[@]} -gt 0 ]; then
    step "installing ${need[*]}"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi
command -v cargo-nextest >/dev/null 2>&1 || cargo install cargo-nextest --locked

# Slow installs and builds run in the background beside the lints and the workspace's build (a
# build on two cores leaves one idle in its serial stretches); the tests wait for them.
background=()
in_background() { # name log command...
    local name=$1 log=$2
    shift 2
    step "$name, in the background (log: $log)"
    "$@" >"$log" 2>&1 &
    background+=("$!:$name:$log")
}
wait_background() {
    local job pid name log
    for job in "${background[@]}"; do
        IFS=: read -r pid name log <<<"$job"
        step "waiting for: $name"
        if ! wait "$pid"; then
            tail -50 "$log" >&2
            echo "failed: $name (log: $log)" >&2
            exit 1
        fi
    done
    background=()
}
# A run that stops early (a lint fails) stops them too.
trap 'for job in "${background[@]}"; do kill "${job%%:*}" 2>/dev/null || true; done' EXIT

venv="$REGISTRY_TOOLS_DIR/harbor-venv"
node_dir="$REGISTRY_TOOLS_DIR/node"
install_clients() {
    # A real Harbor client library (PyPI's harborapi) for the management API's tests.
    if ! "$venv/bin/python" -c "import harborapi" >/dev/null 2>&1; then
        step "installing harborapi into $venv"
        python3 -m venv "$venv"
        "$venv/bin/pip" install -q "harborapi==0.26.2"
    fi
    # And an OCI artifact client (PyPI's oras) that pushes charts as helm push lays them out.
    if ! "$venv/bin/python" -c "import oras.client" >/dev/null 2>&1; then
        step "installing oras-py into $venv"
        "$venv/bin/pip" install -q "oras==0.2.43"
    fi

    # playwright-core drives Debian's chromium for the portal's end-to-end tests (its own browser
    # download does not work on a closed network; the tests point it at /usr/bin/chromium).
    if ! [ -f "$node_dir/node_modules/playwright-core/package.json" ]; then
        step "installing playwright-core into $node_dir"
        mkdir -p "$node_dir"
        npm install --silent --no-audit --no-fund --prefix "$node_dir" "playwright-core@1.57.0" >/dev/null
    fi
    if ! [ -f "$node_dir/node_modules/oidc-provider/package.json" ]; then
        step "installing oidc-provider (an OpenID Connect provider for the OIDC tests) into $node_dir"
        mkdir -p "$node_dir"
        npm install --silent --no-audit --no-fund --prefix "$node_dir" "oidc-provider@9.13.3" >/dev/null
    fi
}
if ! "$venv/bin/python" -c "import harborapi, oras.client" >/dev/null 2>&1 \
    || ! [ -f "$node_dir/node_modules/playwright-core/package.json" ] \
    || ! [ -f "$node_dir/node_modules/oidc-provider/package.json" ]; then
    in_background "installing the Python and Node clients" "$REGISTRY_TOOLS_DIR/clients-install.log" install_clients
fi
export REGISTRY_TEST_PYTHON="$venv/bin/python"
export REGISTRY_TEST_NODE_PATH="$node_dir/node_modules"

# PostgreSQL on 127.0.0.1:5432, where the tests make their throwaway databases: the machine's own
# when it answers, else Debian's cluster started here.
export REGISTRY_TEST_POSTGRES="${REGISTRY_TEST_POSTGRES:-postgres://postgres@127.0.0.1:5432/postgres}"
if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
    step "starting PostgreSQL"
    version=$(ls /usr/lib/postgresql | sort -V | tail -1)
    pg_lsclusters -h 2>/dev/null | grep -q "^$version main" || $sudo pg_createcluster "$version" main >/dev/null
    conf="/etc/postgresql/$version/main"
    # Trust on loopback: the tests connect as postgres without a password.
    if ! grep -q "registry-tests" "$conf/pg_hba.conf"; then
        $sudo sed -i '1i host all all 127.0.0.1/32 trust # registry-tests' "$conf/pg_hba.conf"
    fi
    $sudo pg_ctlcluster "$version" main start
    for _ in $(seq 100); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 0.1; done
    pg_isready -h 127.0.0.1 -p 5432
fi

# S3-compatible servers: Garage (a real store, built once: about 12 minutes) and moto's server
# (a mock that enforces the part-size and conditional-write rules Garage skips).
# Garage is built with only the features the tests use (the sqlite metadata engine; no LMDB, K2V
# or metrics).
export REGISTRY_GARAGE="$REGISTRY_TOOLS_DIR/bin/garage"
if ! "$REGISTRY_GARAGE" --version >/dev/null 2>&1; then
    in_background "building Garage 2.5.0 into $REGISTRY_TOOLS_DIR (once; about 12 minutes)" \
        "$REGISTRY_TOOLS_DIR/garage-build.log" \
        cargo install garage --version 2.5.0 --locked --no-default-features --features bundled-libs,sqlite \
        --root "$REGISTRY_TOOLS_DIR"
fi
moto="$REGISTRY_TOOLS_DIR/moto-venv"
install_moto() {
    python3 -m venv "$moto"
    "$moto/bin/pip" install -q "moto[server]==5.1.22"
}
if ! "$moto/bin/moto_server" --help >/dev/null 2>&1; then
    in_background "installing moto's server into $moto" "$REGISTRY_TOOLS_DIR/moto-install.log" install_moto
fi
export REGISTRY_MOTO="$moto/bin/moto_server"

step "cargo fmt --check"
cargo fmt --all -- --check
step "cargo clippy --all-targets -- -D warnings"
cargo clippy --workspace --all-targets -- -D warnings
step "no module of a crate imports another that imports it back"
python3 scripts/module_cycles.py registry-core registry-storage registry-auth registry-redb registry-postgres \
    registry-object-store registry-platform registry-http registry-server testkit
step "registry-http carries none of the binary's dependencies"
binary_deps=$(cargo tree -p registry-http -e normal --prefix none --format '{p}' \
    | grep -E '^(clap|anyhow|toml|tracing-subscriber) ' || true)
if [ -n "$binary_deps" ]; then
    echo "registry-http depends on: $binary_deps" >&2
    exit 1
fi
step "a minimal embedder outside the workspace builds and runs without the optional parts"
minimal_deps=$(cargo tree --manifest-path minimal-embedder/Cargo.toml -e normal --prefix none --format '{p}' \
    | grep -E '^(redb|prometheus-client|reqwest|rcgen|rustls|rsa) ' || true)
if [ -n "$minimal_deps" ]; then
    echo "the minimal embedder depends on: $minimal_deps" >&2
    exit 1
fi
cargo run --manifest-path minimal-embedder/Cargo.toml --target-dir target/minimal-embedder
step "cargo nextest run: building"
cargo nextest run --workspace --no-run
wait_background
step "cargo nextest run"
cargo nextest run --workspace --no-fail-fast
step "doctests"
cargo test --workspace --doc
# The benches run once each in the test profile: they prove the benches still run, while a
# release build of the whole workspace (the bench profile) would double the run's build time.
step "criterion benches, quick mode (each bench runs once; the libraries' unit tests ran under nextest above)"
cargo test --workspace --bench '*' -- --test
step "all tests passed"
