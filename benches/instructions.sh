#!/usr/bin/env bash
# Instructions per manifest GET, counted by valgrind's callgrind: the same figure on every run of
# the same binary, whatever else the machine is doing (wall-clock rates here move by 2x between
# days). Three shapes, as `load auth-par` runs them: a server with `[auth] enabled = false`, and a
# server with token auth pulled by an anonymous client (an anonymous client's token, `library` is
# public) and by the admin's token. Counts are of the server's user space only (the kernel's
# socket work is not in them), over every thread, background work included.
#
#   cargo build --release -p registry-server --bin registry
#   bash benches/instructions.sh [seconds per shape, 15] [callgrind output directory]
#
# REGISTRY_BINARY names another build to count (a copy of the one before a change, say).
#
# Needs valgrind, wrk, curl and python3 (Debian: valgrind wrk curl). Under callgrind the server
# runs about 20x slower: the figures are per request, not a rate. `callgrind_annotate <dir>/*.cg.*`
# shows where the instructions go; `--inclusive=yes` with two shapes side by side finds what one
# costs more than the other.
set -euo pipefail
shopt -s nullglob

seconds=${1:-15}
root=$(cd "$(dirname "$0")/.." && pwd)
binary=${REGISTRY_BINARY:-$root/target/release/registry}
[ -x "$binary" ] || { echo "build it first: cargo build --release -p registry-server --bin registry" >&2; exit 1; }
for tool in valgrind callgrind_control wrk curl python3; do
    command -v $tool > /dev/null || { echo "$tool is needed (apt-get install -y valgrind wrk curl)" >&2; exit 1; }
done
work=$(mktemp -d /tmp/registry-instructions-XXXXXX)
out=${2:-$work}
mkdir -p "$out"
if [ -n "$(ls -A "$out")" ]; then echo "$out is not empty: callgrind's dumps go to an empty directory" >&2; exit 1; fi
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2> /dev/null || true; done
    wait 2> /dev/null || true
    rm -rf "$work/open" "$work/auth"
}
trap cleanup EXIT
export REGISTRY_ADMIN_PASSWORD=instructions-password

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_answering() { # address
    for _ in $(seq 1 600); do curl -s -o /dev/null "http://$1/v2/" && return 0; sleep 0.1; done
    echo "the registry at $1 did not answer" >&2; exit 1
}
token() { # address, curl's credential arguments...
    local address=$1; shift
    curl -sf "$@" "http://$address/auth/token?service=registry&scope=repository:library/small:pull,push" |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["token"])'
}
# Pushes library/small:latest (a config and a 2 KB layer) with curl.
push_small() { # address, authorization header or ""
    local address=$1 auth=$2 file digest location sep
    local -a header=()
    [ -n "$auth" ] && header=(-H "Authorization: $auth")
    printf '{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}' > "$work/config"
    head -c 2000 /dev/urandom > "$work/layer"
    for file in config layer; do
        digest=sha256:$(sha256sum "$work/$file" | cut -d' ' -f1)
        location=$(curl -sf -D - -o /dev/null -X POST "${header[@]}" "http://$address/v2/library/small/blobs/uploads/" |
            tr -d '\r' | awk -F': ' 'tolower($1)=="location"{print $2}')
        case "$location" in http*) ;; *) location="http://$address$location" ;; esac
        sep='?'; case "$location" in *\?*) sep='&' ;; esac
        curl -sf -o /dev/null -X PUT "${header[@]}" -H 'Content-Type: application/octet-stream' \
            --data-binary "@$work/$file" "$location${sep}digest=$digest"
        printf -v "digest_$file" '%s' "$digest"
        printf -v "size_$file" '%s' "$(stat -c%s "$work/$file")"
    done
    printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"%s","size":%s}]}' \
        "$digest_config" "$size_config" "$digest_layer" "$size_layer" > "$work/manifest"
    curl -sf -o /dev/null -X PUT "${header[@]}" -H 'Content-Type: application/vnd.oci.image.manifest.v1+json' \
        --data-binary "@$work/manifest" "http://$address/v2/library/small/manifests/latest"
}

# Two data directories, each with the image, pushed by a server run natively.
declare -A address
for shape in open auth; do
    enabled=false; [ $shape = auth ] && enabled=true
    mkdir -p "$work/$shape"
    printf 'data_dir = "%s/data"\nlog_level = "warn"\n[auth]\nenabled = %s\n' "$work/$shape" $enabled > "$work/$shape/registry.toml"
    address[$shape]=127.0.0.1:$(free_port)
    "$binary" serve --config "$work/$shape/registry.toml" --listen "${address[$shape]}" > "$work/$shape/native.log" 2>&1 &
    pid=$!
    wait_answering "${address[$shape]}"
    auth=""
    [ $shape = auth ] && auth="Bearer $(token "${address[$shape]}" -u "admin:$REGISTRY_ADMIN_PASSWORD")"
    push_small "${address[$shape]}" "$auth"
    kill $pid; wait $pid 2> /dev/null || true
done

# The same servers under callgrind.
declare -A vg
for shape in open auth; do
    valgrind --tool=callgrind --callgrind-out-file="$out/$shape.cg" \
        "$binary" serve --config "$work/$shape/registry.toml" --listen "${address[$shape]}" > "$work/$shape/valgrind.log" 2>&1 &
    vg[$shape]=$!
    pids+=($!)
done
for shape in open auth; do wait_answering "${address[$shape]}"; done
admin=$(token "${address[auth]}" -u "admin:$REGISTRY_ADMIN_PASSWORD")
anonymous=$(token "${address[auth]}")

accept='Accept: application/vnd.oci.image.manifest.v1+json'
printf '\nInstructions per manifest GET by tag (callgrind, %s s of wrk -t1 -c2 per shape)\n\n' "$seconds"
echo '| shape | requests | instructions per request |'
echo '|---|---|---|'
for row in "open|unauthenticated (\`[auth] enabled = false\`)|" "auth|anonymous, public project, auth on|$anonymous" "auth|token-authenticated, auth on|$admin"; do
    IFS='|' read -r shape name bearer <<< "$row"
    url="http://${address[$shape]}/v2/library/small/manifests/latest"
    header=(-H "$accept"); [ -n "$bearer" ] && header+=(-H "Authorization: Bearer $bearer")
    wrk -t1 -c2 -d3s "${header[@]}" "$url" > /dev/null # warm-up
    callgrind_control --zero "${vg[$shape]}" > /dev/null 2>&1
    report=$(wrk -t1 -c2 -d"${seconds}s" "${header[@]}" "$url")
    if grep -q "Non-2xx" <<< "$report"; then echo "$name: some requests failed:" >&2; echo "$report" >&2; exit 1; fi
    requests=$(awk '/requests in/{print $1}' <<< "$report")
    dumps=("$out/$shape.cg".*)
    callgrind_control --dump "${vg[$shape]}" > /dev/null 2>&1
    # The dump is written by the server's next scheduled thread: wait for its file.
    dump="$out/$shape.cg.$(( ${#dumps[@]} + 1 ))"
    for _ in $(seq 1 300); do [ -s "$dump" ] && grep -q '^totals:' "$dump" && break; sleep 0.1; done
    total=$(awk '/^summary:/{print $2}' "$dump")
    printf '| %s | %s | %s |\n' "$name" "$requests" "$(( total / requests ))"
done
echo
echo "callgrind's dumps: $out"
