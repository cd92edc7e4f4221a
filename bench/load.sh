#!/usr/bin/env bash
# Load benchmark: POST /v1/tokens on the real release server (the production path: every layer,
# the audit line written, rate limits checked, log filter info) beside the same token path with
# no layers (examples/bare_mint.rs, the baseline) and an axum hello world (examples/hello.rs,
# the HTTP ceiling of this machine), all measured in one run.
#
# Scenarios, each a fresh server per measurement (so peak RSS is per run):
#   hello              GET / on examples/hello
#   bare-hs256         bare token path, HS256 app-session credential seen before
#   bare-hs256-cold    the same, every credential verified anew (auth.verified_cache_size = 0)
#   bare-rs256-cold    bare token path, RS256 provider ID token verified anew
#   hs256              production path, HS256 credential seen before
#   hs256-cold         production path, HS256 verified anew
#   rs256-cold         production path, RS256 verified anew
#   rs256-cached       production path, RS256 seen before
#   hs256-traced       production path, HS256 seen before, [trace] on (spans sent to a local
#                      sink that answers every export at once; sample_ratio 1)
#   hs256-traced10     the same with sample_ratio 0.1
# For each connection count, wrk (1 thread) runs for a bounded time; the server is pinned to
# CPU 0 and wrk to CPU 1 when taskset exists. Printed: medians over the runs of requests/s, the
# server's own CPU time per request (user + system, from /proc/<pid>/stat over the measured run,
# so the client's cost is left out), p50 / p99 / p99.9 latency, errors (socket errors and
# non-2xx), and the server's peak RSS (VmHWM). Loopback only; every server it starts is
# stopped. A benchmark, not a test.
#
# Usage: bench/load.sh [seconds per run, default 10] [connection counts, default "16 64 256"]
#                      [runs, default 3] [scenarios, default all but hs256-traced]
# Needs: wrk, openssl, python3 (apt-get install wrk openssl python3).
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-10}
connection_counts=${2:-16 64 256}
runs=${3:-3}
scenarios=${4:-hello bare-hs256 hs256 bare-hs256-cold hs256-cold bare-rs256-cold rs256-cold rs256-cached}
for tool in wrk openssl python3; do
  command -v "$tool" >/dev/null || { echo "bench/load.sh: install $tool (apt-get install $tool)" >&2; exit 1; }
done

cargo build --release --quiet --bin tokenmint --example hello --example bare_mint
# taskset execs its command, so a backgrounded `$(on_cpu 0) server &` leaves $! as the server.
on_cpu() { if command -v taskset >/dev/null; then echo "taskset -c $1"; fi; }

work=$(mktemp -d)
server=
sink=
cleanup() { [ -n "$server" ] && kill "$server" 2>/dev/null; [ -n "$sink" ] && kill "$sink" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

. bench/env.sh
# For hs256-traced: a collector that takes every export at once (OTLP/HTTP answers 200).
python3 -c '
import http.server, sys
class Sink(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length", "0")))
        self.send_response(200); self.send_header("content-length", "0"); self.end_headers()
    def log_message(self, *a): pass
http.server.ThreadingHTTPServer(("127.0.0.1", 18104), Sink).serve_forever()' >/dev/null 2>&1 &
sink=$!
script() { # credential -> a wrk script for the token POST that reports what we print
  cat <<LUA
wrk.method = "POST"
wrk.body = '{"grants": {"video": {"room": "standup"}}}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $1"
LUA
  report
}
report() {
  cat <<'LUA'
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT %.0f %d %d %d %d %d\n", summary.requests / (summary.duration / 1e6),
    latency:percentile(50), latency:percentile(99), latency:percentile(99.9),
    e.connect + e.read + e.write + e.timeout + e.status, summary.requests))
end
LUA
}
script "$session" >"$work/hs256.lua"
script "$id_token" >"$work/rs256.lua"
report >"$work/get.lua"

start() { # scenario -> starts its server in the background, sets $server and $url
  local cache=10000 trace=false
  case $1 in *-cold) cache=0 ;; esac
  case $1 in *-traced*) trace=true ;; esac
  export TOKENMINT__TRACE__SAMPLE_RATIO=1.0
  case $1 in *-traced10) TOKENMINT__TRACE__SAMPLE_RATIO=0.1 ;; esac
  export TOKENMINT__AUTH__VERIFIED_CACHE_SIZE=$cache TOKENMINT__TRACE__ENABLED=$trace
  export TOKENMINT__TRACE__ENDPOINT=http://127.0.0.1:18104/v1/traces
  case $1 in
    hello) $(on_cpu 0) target/release/examples/hello 127.0.0.1:18100 >/dev/null 2>&1 & url=http://127.0.0.1:18100/ ;;
    bare-*) $(on_cpu 0) target/release/examples/bare_mint 127.0.0.1:18101 >/dev/null 2>&1 & url=http://127.0.0.1:18101/v1/tokens ;;
    *) TOKENMINT__SERVER__LISTEN=127.0.0.1:18102 TOKENMINT__SERVER__ADMIN_LISTEN=127.0.0.1:18103 \
         $(on_cpu 0) target/release/tokenmint serve >/dev/null 2>&1 & url=http://127.0.0.1:18102/v1/tokens ;;
  esac
  server=$!
  for _ in $(seq 200); do
    kill -0 "$server" 2>/dev/null || { echo "bench/load.sh: the $1 server exited (is its port taken?)" >&2; exit 1; }
    if curl -s -o /dev/null "$url" -X OPTIONS 2>/dev/null; then return; fi
    sleep 0.02
  done
  echo "bench/load.sh: the $1 server did not start" >&2; exit 1
}
lua_for() { case $1 in hello) echo "$work/get.lua" ;; *rs256*) echo "$work/rs256.lua" ;; *) echo "$work/hs256.lua" ;; esac; }
# The server's CPU time so far (user + system), in clock ticks.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

echo "wrk: ${duration}s per run, ${runs} runs, 1 thread on CPU 1; server on CPU 0; $(nproc) CPUs"
printf '%-16s %6s %9s %9s %9s %9s %9s %7s %9s\n' scenario conns "req/s" "CPU/req" p50 p99 p99.9 errors "peak RSS"
# Medians per scenario of what the runs wrote to $work/results, then the ratios that matter.
cat >"$work/summary.py" <<'PY'
import collections, statistics, sys
connections, ticks_per_second, order = sys.argv[1], int(sys.argv[2]), sys.argv[3].split()
rows = collections.defaultdict(list)
for line in sys.stdin:
    if line.strip():
        scenario, *values = line.split()
        rps, p50, p99, p999, errors, requests, ticks, rss = map(float, values)
        cpu_us = ticks / ticks_per_second / max(requests, 1) * 1e6
        rows[scenario].append((rps, cpu_us, p50, p99, p999, errors, rss))
medians = {}
for scenario in order:
    rps, cpu_us, p50, p99, p999, errors, rss = [statistics.median(c) for c in zip(*rows[scenario])]
    medians[scenario] = cpu_us
    print("%-16s %6s %9.0f %7.1fus %7.2fms %7.2fms %7.2fms %7.0f %7.1fMiB"
          % (scenario, connections, rps, cpu_us, p50 / 1000, p99 / 1000, p999 / 1000, errors, rss / 1024))
# The production path's CPU per token against the bare path's, credential by credential.
for production, bare in [("hs256", "bare-hs256"), ("hs256-cold", "bare-hs256-cold"), ("rs256-cold", "bare-rs256-cold")]:
    if production in medians and bare in medians:
        print("  %s / %s: %.2fx CPU per token" % (production, bare, medians[production] / medians[bare]))
if "rs256-cold" in medians and "rs256-cached" in medians:
    print("  rs256-cold - rs256-cached: %.1f us (the first sight of an RS256 credential)"
          % (medians["rs256-cold"] - medians["rs256-cached"]))
PY

# Runs go round the scenarios (A B C, A B C, …) rather than A A A, B B B: this machine's speed
# drifts over minutes, and the ratios between scenarios are what matter.
for connections in $connection_counts; do
  : >"$work/results"
  for _ in $(seq "$runs"); do
    for scenario in $scenarios; do
      start "$scenario"
      # A short warm-up fills the verification cache and the allocator.
      $(on_cpu 1) wrk -t1 -c"$connections" -d1s -s "$(lua_for "$scenario")" "$url" >/dev/null
      before=$(cpu_ticks "$server")
      line=$($(on_cpu 1) wrk -t1 -c"$connections" -d"${duration}s" -s "$(lua_for "$scenario")" "$url" | grep '^RESULT')
      after=$(cpu_ticks "$server")
      rss=$(awk '/VmHWM/ {print $2}' "/proc/$server/status")
      kill "$server"; wait "$server" 2>/dev/null || true; server=
      echo "$scenario ${line#RESULT } $((after - before)) $rss" >>"$work/results"
    done
  done
  python3 "$work/summary.py" "$connections" "$(getconf CLK_TCK)" "$scenarios" <"$work/results"
done
