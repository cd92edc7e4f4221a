#!/usr/bin/env bash
# Instructions per token: the server's user-space instructions per request, counted by
# valgrind (callgrind) under the same requests as bench/load.sh. Unlike CPU time, the count
# does not drift with the machine (this VM's speed moves ±20 % over minutes), so it is how two
# trees are compared change by change; it leaves out the kernel (send, receive, epoll), which
# bench/load.sh and bench/profile.sh show.
#
# Starts the release server under callgrind, warms it up, zeroes the counts, counts while wrk
# sends for a bounded time, and divides by the requests wrk completed (the few in flight at the
# end are within 0.5 %). Prints the count per request and the functions that take most (their
# own instructions, not their callees': bench/selfcost.py). Under valgrind SHA-256 runs its
# portable code (no SHA extensions), so signing counts more than it costs natively. Loopback
# only; the server is stopped. A benchmark, not a test.
#
# SHOWN=n lists n functions; CALLERS_OF=name lists who calls that function instead (memcpy, say).
#
# Usage: bench/instructions.sh [server: tokenmint | bare, default tokenmint]
#                              [credential: hs256 | hs256-cold | rs256 | rs256-cold, default hs256]
#                              [seconds counted, default 10]
# Needs: valgrind, wrk, openssl, python3 (apt-get install valgrind wrk openssl python3).
set -euo pipefail
cd "$(dirname "$0")/.."
server_kind=${1:-tokenmint}
credential=${2:-hs256}
seconds=${3:-10}
for tool in valgrind callgrind_control wrk openssl python3; do
  command -v "$tool" >/dev/null || { echo "bench/instructions.sh: install $tool" >&2; exit 1; }
done
cargo build --release --quiet --bin tokenmint --example bare_mint

work=$(mktemp -d)
server=
cleanup() { [ -n "$server" ] && kill "$server" 2>/dev/null; [ -n "${KEEP:-}" ] || rm -rf "$work"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

. bench/env.sh
one_credential_load "$credential"
echo 'done = function(summary) io.write(string.format("REQUESTS %d\n", summary.requests)) end' >>"$work/load.lua"

url=http://127.0.0.1:18106/v1/tokens
grind=(valgrind --tool=callgrind --callgrind-out-file="$work/callgrind.out")
case $server_kind in
  bare) "${grind[@]}" target/release/examples/bare_mint 127.0.0.1:18106 >/dev/null 2>&1 & ;;
  *) TOKENMINT__SERVER__LISTEN=127.0.0.1:18106 TOKENMINT__SERVER__ADMIN_LISTEN=127.0.0.1:18107 \
       "${grind[@]}" target/release/tokenmint serve >/dev/null 2>&1 & ;;
esac
server=$!
for _ in $(seq 600); do
  curl -s -o /dev/null -m 2 -X OPTIONS "$url" 2>/dev/null && break
  sleep 0.1
done
wrk -t1 -c16 -d3s -s "$work/load.lua" "$url" >/dev/null
callgrind_control -z "$server" >/dev/null 2>&1
wrk -t1 -c16 -d"${seconds}s" -s "$work/load.lua" "$url" >"$work/wrk.txt"
callgrind_control -d "$server" >/dev/null 2>&1
requests=$(awk '/^REQUESTS/ {print $2}' "$work/wrk.txt")
echo "bench/instructions.sh: $server_kind, $credential, $requests requests counted"
python3 bench/selfcost.py "$work/callgrind.out.1" "$requests" "${SHOWN:-15}" ${CALLERS_OF:+"$CALLERS_OF"}
