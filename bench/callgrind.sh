#!/usr/bin/env bash
# Instructions per proxied request, counted by callgrind: ten (release) under valgrind with one
# tenant (the test backend, --quiet), wrk asking for `/` with `Host: a.web.localhost` over
# CONNECTIONS connections. After a 3 s warm-up the counters are zeroed, and dumped after the
# measured run; the figure is all of ten's instructions (every thread) over the requests wrk
# completed. Steadier than timings: runs differ by about 0.5%.
#
#   bench/callgrind.sh [CONNECTIONS [SECONDS]]     (default: 64 10)
#   TEN=/path/to/ten bench/callgrind.sh 1          (another build of ten, to compare)
#   CALLGRIND_OUT=/tmp/p.out bench/callgrind.sh 64   (keeps the profile, for callgrind_annotate)
#
# Needs valgrind, wrk and curl (Debian: apt-get install valgrind wrk curl).
set -euo pipefail
cd "$(dirname "$0")/.."
connections=${1:-64}
seconds=${2:-10}
# Built alone: built together with the example, ten would get the dev-dependencies' features
# (tokio's test-util among them), which change what is measured.
cargo build --release --quiet --bin ten
cargo build --release --quiet --example backend
ten=${TEN:-$PWD/target/release/ten}
backend=$PWD/target/release/examples/backend
threads=$((connections < 2 ? connections : 2))
dir=$(mktemp -d)
cat >"$dir/tenement.toml" <<TOML
[settings]
port_range = [31500, 31599]
[service.web]
command = "$backend --quiet"
health = "/health"
[instances]
web = ["a"]
TOML
valgrind --tool=callgrind --callgrind-out-file="$dir/callgrind.out" \
    "$ten" serve --port 0 --bind 127.0.0.1 --config "$dir" >"$dir/log" 2>&1 &
valgrind=$!
trap 'kill -TERM $valgrind 2>/dev/null || true; wait $valgrind 2>/dev/null || true; rm -rf "$dir"' EXIT
url=
for _ in $(seq 1 600); do
    url=$(grep -o 'listening on http://[0-9.:]*' "$dir/log" | head -1 | cut -d' ' -f3 || true)
    if [ -n "$url" ] && [ "$(curl -s -o /dev/null -w '%{http_code}' -H 'Host: a.web.localhost' "$url/")" = 200 ]; then
        break
    fi
    sleep 0.2
done
load() {
    wrk "-t$threads" "-c$connections" "-d$1" -H 'Host: a.web.localhost' "$url/"
}
load 3s >/dev/null
callgrind_control --zero $valgrind >/dev/null 2>&1
load "${seconds}s" >"$dir/wrk.txt"
callgrind_control --dump $valgrind >/dev/null 2>&1
sleep 1
if grep -qE 'Non-2xx|Socket errors' "$dir/wrk.txt"; then
    cat "$dir/wrk.txt" >&2
    exit 1
fi
requests=$(grep -oE '[0-9]+ requests in' "$dir/wrk.txt" | cut -d' ' -f1)
instructions=$(grep -hE '^(summary|totals):' "$dir"/callgrind.out.* | head -1 | cut -d' ' -f2)
if [ -n "${CALLGRIND_OUT:-}" ]; then
    cp "$(ls "$dir"/callgrind.out.* | head -1)" "$CALLGRIND_OUT"
    echo "$requests" >"$CALLGRIND_OUT.requests"
fi
echo "$(basename "$ten"): $connections connections, $requests requests, $((instructions / requests)) instructions per request"
