#!/usr/bin/env bash
# Profile: where one request's CPU goes, as microseconds per step (bench/attribute.py), for the
# production server or the bare token path under the same load as bench/load.sh.
#
# Builds release with frame pointers (target/profile-fp; perf unwinds through them cheaply),
# starts the server pinned to CPU 0, loads it with wrk pinned to CPU 1 for a bounded time, and
# records it with `perf record -g` meanwhile. The server's own CPU time over the recording,
# divided by the requests answered, scales the shares into microseconds. Loopback only; the
# server is stopped. A benchmark, not a test.
#
# Usage: bench/profile.sh [server: tokenmint | bare, default tokenmint]
#                         [credential: hs256 | hs256-cold | rs256 | rs256-cold, default hs256]
#                         [seconds, default 6]
# PROFILE_OTHER=1 also lists the leaves no step names; the recording stays in
# target/profile-fp/last.perf.data.
# Needs: perf, wrk, openssl, python3 (apt-get install linux-perf wrk openssl python3).
set -euo pipefail
cd "$(dirname "$0")/.."
server_kind=${1:-tokenmint}
credential=${2:-hs256}
seconds=${3:-6}
for tool in perf wrk openssl python3; do
  command -v "$tool" >/dev/null || { echo "bench/profile.sh: install $tool" >&2; exit 1; }
done
RUSTFLAGS="-C force-frame-pointers=yes" CARGO_TARGET_DIR=target/profile-fp \
  cargo build --release --quiet --bin tokenmint --example bare_mint
on_cpu() { if command -v taskset >/dev/null; then echo "taskset -c $1"; fi; }

work=$(mktemp -d)
server=
cleanup() { [ -n "$server" ] && kill "$server" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

. bench/env.sh
one_credential_load "$credential"

url=http://127.0.0.1:18102/v1/tokens
case $server_kind in
  bare) $(on_cpu 0) target/profile-fp/release/examples/bare_mint 127.0.0.1:18102 >/dev/null 2>&1 & ;;
  *) TOKENMINT__SERVER__LISTEN=127.0.0.1:18102 TOKENMINT__SERVER__ADMIN_LISTEN=127.0.0.1:18103 \
       $(on_cpu 0) target/profile-fp/release/tokenmint serve >/dev/null 2>&1 & ;;
esac
server=$!
for _ in $(seq 200); do
  curl -s -o /dev/null -X OPTIONS "$url" 2>/dev/null && break
  sleep 0.02
done
$(on_cpu 1) wrk -t1 -c64 -d1s -s "$work/load.lua" "$url" >/dev/null
# wrk runs a second longer than the recording on each side, so perf sees only steady load.
$(on_cpu 1) wrk -t1 -c64 -d"$((seconds + 2))s" -s "$work/load.lua" "$url" >"$work/wrk.txt" &
wrk_pid=$!
sleep 1
ticks_before=$(awk '{print $14 + $15}' "/proc/$server/stat")
requests_before=$( (curl -s http://127.0.0.1:18103/metrics 2>/dev/null || true) | awk '/^tokenmint_http_requests_total\{/ {s += $2} END {print s + 0}')
perf record -q -e cpu-clock -g -F 2000 -p "$server" -o "$work/perf.data" -- sleep "$seconds" 2>/dev/null
ticks_after=$(awk '{print $14 + $15}' "/proc/$server/stat")
requests_after=$( (curl -s http://127.0.0.1:18103/metrics 2>/dev/null || true) | awk '/^tokenmint_http_requests_total\{/ {s += $2} END {print s + 0}')
wait "$wrk_pid"
requests=$((requests_after - requests_before))
if [ "$requests" -le 0 ]; then # the bare server has no metrics: wrk's rate over the recording
  rate=$(awk '/Requests\/sec/ {print $2}' "$work/wrk.txt")
  requests=$(python3 -c "print(int(float('$rate') * $seconds))")
fi
cpu_us=$(python3 -c "print(($ticks_after - $ticks_before) / $(getconf CLK_TCK) / $requests * 1e6)")
echo "bench/profile.sh: $server_kind, $credential, 64 connections, ${seconds}s recorded"
cp "$work/perf.data" target/profile-fp/last.perf.data # for a closer look: perf report -i …
perf script -i "$work/perf.data" -F comm,ip,sym --no-inline 2>/dev/null | python3 bench/attribute.py "$cpu_us" ${PROFILE_OTHER:+--other}
