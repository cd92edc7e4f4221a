#!/usr/bin/env bash
# What the tower layers cost: POST /v1/tokens on the real server (every layer) beside the same
# work with no layers (examples/bare_mint.rs), measured with wrk in one run. Servers are pinned
# to CPU 0 and wrk to CPU 1 where taskset exists. Loopback only; each run is bounded.
# Usage: bench/layers.sh [seconds per run, default 10] [connections, default 64]
# Needs: wrk (apt-get install wrk). A benchmark, not a test: CI does not run it.
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-10}
connections=${2:-64}
command -v wrk >/dev/null || { echo "bench/layers.sh: install wrk (apt-get install wrk)" >&2; exit 1; }

cargo build --release --quiet --bin tokenmint --example bare_mint
# exec, so that a backgrounded `pin … &` is the server itself and $! can stop it.
pin() { if command -v taskset >/dev/null; then exec taskset -c "$1" "${@:2}"; else exec "${@:2}"; fi; }

export TWILIO_ACCOUNT_SID=AC0123456789abcdef0123456789abcdef
export TWILIO_API_KEY=SKfedcba9876543210fedcba9876543210
export TWILIO_API_SECRET=bench-api-secret-bench-api-secret
export TEST_SESSION_SECRET=bench-session-secret-bench-session-secret-0123
export TOKENMINT_CONFIG=config/test.toml
# Every limit is checked on every request but never reached: this measures their cost, not 429s.
export TOKENMINT__RATE_LIMIT__PER_IP__PER_MINUTE=4000000000 TOKENMINT__RATE_LIMIT__PER_IP__BURST=100000000
export TOKENMINT__RATE_LIMIT__PER_IDENTITY__PER_MINUTE=4000000000 TOKENMINT__RATE_LIMIT__PER_IDENTITY__BURST=100000000
session=$(python3 - <<'PY'
import base64, hashlib, hmac, json, os, time
b64 = lambda raw: base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
part = lambda obj: b64(json.dumps(obj, separators=(",", ":")).encode())
now = int(time.time())
message = part({"alg": "HS256", "typ": "JWT"}) + "." + part(
    {"iss": "https://app.test", "aud": "tokenmint-test", "sub": "alice", "roles": ["user"], "iat": now, "exp": now + 3600})
signature = hmac.new(os.environ["TEST_SESSION_SECRET"].encode(), message.encode(), hashlib.sha256).digest()
print(message + "." + b64(signature))
PY
)
lua=$(mktemp --suffix=.lua)
cat > "$lua" <<LUA
wrk.method = "POST"
wrk.body = '{"grants": {"video": {"room": "standup"}}}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $session"
LUA

pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; rm -f "$lua"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

run() { # name, url [admin address to report statuses from]
  sleep 1
  local out
  out=$( (pin 1 wrk -t1 -c"$connections" -d"${duration}s" --latency -s "$lua" "$2") )
  printf '%-34s %10s req/s   p50 %-8s p99 %-8s non-2xx %s\n' "$1" \
    "$(awk '/Requests\/sec/ {print $2}' <<<"$out")" \
    "$(awk '$1=="50%" {print $2}' <<<"$out")" "$(awk '$1=="99%" {print $2}' <<<"$out")" \
    "$(awk '/Non-2xx/ {print $5}' <<<"$out" | grep . || echo 0)"
  if [ -n "${3:-}" ]; then
    curl -s "http://$3/metrics" | grep '^tokenmint_http_requests_total{method="POST"' | sed 's/^/    /'
  fi
}

TOKENMINT__SERVER__LISTEN=127.0.0.1:18080 TOKENMINT__SERVER__ADMIN_LISTEN=127.0.0.1:18090 TOKENMINT__LOG__FILTER=info \
  pin 0 target/release/tokenmint serve >/dev/null 2>&1 & pids+=($!)
TOKENMINT__SERVER__LISTEN=127.0.0.1:18082 TOKENMINT__SERVER__ADMIN_LISTEN=127.0.0.1:18092 TOKENMINT__LOG__FILTER=warn \
  pin 0 target/release/tokenmint serve >/dev/null 2>&1 & pids+=($!)
pin 0 target/release/examples/bare_mint 127.0.0.1:18081 >/dev/null 2>&1 & pids+=($!)

echo "wrk: ${duration}s, ${connections} connections, 1 thread on CPU 1; servers on CPU 0"
run "no layers (examples/bare_mint)" http://127.0.0.1:18081/v1/tokens
run "all layers, log filter warn" http://127.0.0.1:18082/v1/tokens 127.0.0.1:18092
run "all layers, log filter info" http://127.0.0.1:18080/v1/tokens 127.0.0.1:18090
