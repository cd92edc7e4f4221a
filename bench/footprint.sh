#!/usr/bin/env bash
# The release binary's footprint: its size (as built and stripped), the time from exec to the
# first 200 from /readyz (median of N starts, no identity provider so no key fetch), and the
# resident memory once idle. Loopback only; every server it starts is stopped.
# Usage: bench/footprint.sh [starts, default 20]
set -euo pipefail
cd "$(dirname "$0")/.."
starts=${1:-20}
cargo build --release --quiet --bin tokenmint
binary=target/release/tokenmint
stripped=$(mktemp)
strip -o "$stripped" "$binary"
printf 'size: %s bytes as built, %s bytes stripped\n' "$(stat -c %s "$binary")" "$(stat -c %s "$stripped")"
rm -f "$stripped"

export TWILIO_ACCOUNT_SID=AC0123456789abcdef0123456789abcdef
export TWILIO_API_KEY=SKfedcba9876543210fedcba9876543210
export TWILIO_API_SECRET=bench-api-secret-bench-api-secret
export TEST_SESSION_SECRET=bench-session-secret-bench-session-secret-0123
export TOKENMINT_CONFIG=config/test.toml TOKENMINT__LOG__FILTER=info
python3 - "$binary" "$starts" <<'PY'
import socket, statistics, subprocess, sys, time

binary, starts = sys.argv[1], int(sys.argv[2])

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]

def ready(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.05) as s:
            s.sendall(b"GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            return s.recv(12).startswith(b"HTTP/1.1 200")
    except OSError:
        return False

times, rss = [], []
for _ in range(starts):
    port = free_port()
    env = dict(__import__("os").environ, TOKENMINT__SERVER__ADMIN_LISTEN=f"127.0.0.1:{port}")
    started = time.monotonic()
    server = subprocess.Popen([binary, "serve"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while not ready(port):
            if time.monotonic() - started > 10:
                sys.exit("not ready within 10 s")
            time.sleep(0.0005)
        times.append((time.monotonic() - started) * 1000)
        time.sleep(1)
        with open(f"/proc/{server.pid}/status") as status:
            rss.append(next(int(l.split()[1]) for l in status if l.startswith("VmRSS:")) / 1024)
    finally:
        server.terminate()
        server.wait(timeout=20)
print(f"start-up to ready: median {statistics.median(times):.1f} ms (min {min(times):.1f}, max {max(times):.1f}) over {starts} starts")
print(f"idle RSS after 1 s: median {statistics.median(rss):.1f} MiB")
PY
