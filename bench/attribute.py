#!/usr/bin/env python3
"""Attributes the samples of a `perf record -g` profile (frame pointers) to the step of a request
they belong to, so a profile reads as microseconds per request by step.

Each sample goes to the innermost frame on its stack that names a step (polls of wrapping
futures excepted: they enclose everything inside them) (a signature's malloc
counts for the credential check, not for malloc); samples with no such frame go to what their
leaf is (the allocator, memmove, the kernel). Steps are regular expressions over symbol names.

Usage: perf script -i perf.data -F comm,ip,sym | bench/attribute.py <server CPU µs per request> [--other]
(bench/profile.sh runs it; --other also lists the leaves of what no step names.)
"""

import collections
import re
import sys

# (step, pattern) in no particular order: the innermost matching frame decides.
STEPS = [
    ("sign the token", r"tokenmint::token::TokenMinter::mint"),
    ("audit record: format and hand over", r"tokenmint::audit::"),
    ("rate limits (ip, identity)", r"tokenmint::ratelimit::|governor::"),
    ("credential check", r"tokenmint::auth::|jsonwebtoken::"),
    ("policy decision", r"tokenmint::policy::decide|tokenmint::policy::Policy"),
    ("request body: parse", r"policy::request::|serde_path_to_error|tokenmint::http::extract"),
    ("response body: JSON", r"TokenResponse|axum::json::Json<T> as axum_core::response"),
    ("rate-limit response headers", r"with_rate_limit_fields"),
    ("metrics", r"prometheus::"),
    ("timers (request timeout, audit stall bound)", r"tokio::time::|tokio::runtime::time::"),
    ("CORS", r"tower_http::cors"),
    ("request id", r"tower_http::request_id|UniqueRequestIds|tokenmint::ids::"),
    ("trace layer and spans", r"tower_http::trace|tracing::|tracing_core::"),
    ("panic guard", r"tower_http::catch_panic::CatchPanic<S,T> as tower_service"),
    ("sensitive headers", r"tower_http::sensitive_headers::SetSensitiveRequestHeaders<S> as tower_service"),
    ("concurrency limit and load shedding", r"tower::limit::|tower::load_shed::|Semaphore"),
    ("stack clone and drop per request", r"core::ptr::drop_in_place<(axum::middleware|tower|axum::error_handling|axum::routing|tower_http)|as core::clone::Clone>::clone"),
    ("observe (client address, metrics, access line)", r"tokenmint::http::layers::observe"),
    ("HTTP/1 parse", r"Http1Transaction>::parse|httparse::"),
    ("HTTP/1 encode", r"Http1Transaction>::encode"),
    ("kernel: receive", r"sys_recvfrom|tcp_recvmsg|sys_read\b|ksys_read"),
    ("kernel: send", r"sys_write|sys_sendto|sys_writev|tcp_sendmsg|vfs_writev|do_writev"),
    ("kernel: epoll", r"epoll_wait|do_epoll"),
    ("kernel: wake-ups and scheduling", r"futex|schedule|try_to_wake_up|finish_task_switch"),
]
COMPILED = [(name, re.compile(pattern)) for name, pattern in STEPS]


def leaf_kind(symbol):
    # aws-lc's assembly has no frame pointers, so its samples lose their callers; on the request
    # path it only verifies credentials (RSA/ECDSA/Ed25519 signatures, the HMAC of sessions).
    if symbol.startswith("aws_lc_"):
        return "credential check"
    if re.search(r"\bmi_|_mi_|malloc|free", symbol):
        return "allocator (not attributed)"
    if re.search(r"memmove|memcpy|memset", symbol):
        return "memmove (not attributed: futures and buffers moved)"
    return "other (runtime, futures, axum routing)"


def main():
    cpu_us = float(sys.argv[1])
    totals = collections.Counter()
    unattributed = collections.Counter()
    samples = 0
    comm, frames = None, []

    def flush():
        nonlocal samples
        if comm is None:
            return
        samples += 1
        if comm == "tokenmint-audit":
            totals["audit writer thread (write(2) of the records)"] += 1
            return
        for frame in frames:
            # A future's poll encloses everything inside it: only the work named by the
            # frame itself counts (our async fns show as their `{{closure}}`).
            if "Future>::poll" in frame:
                continue
            for name, pattern in COMPILED:
                # Kernel steps name kernel functions, which have no `::` (tokio's scheduler has).
                if name.startswith("kernel") and "::" in frame:
                    continue
                if pattern.search(frame):
                    totals[name] += 1
                    return
        kind = leaf_kind(frames[0] if frames else "")
        totals[kind] += 1
        if kind.startswith("other"):
            unattributed[frames[0] if frames else "?"] += 1

    for line in sys.stdin:
        if not line.strip():
            flush()
            comm, frames = None, []
        elif not line.startswith((" ", "\t")):
            comm = line.split()[0]
        else:
            parts = line.strip().split(None, 1)
            frames.append(parts[1] if len(parts) > 1 else "")
    flush()
    print(f"{samples} samples; CPU per request {cpu_us:.1f} us")
    for name, count in totals.most_common():
        share = count / samples
        print(f"{share * 100:6.1f} %  {share * cpu_us:5.2f} us  {name}")
    if "--other" in sys.argv:
        print("\nThe leaves of the `other` samples:")
        for symbol, count in unattributed.most_common(25):
            print(f"{count / samples * 100:6.2f} %  {symbol[:150]}")


if __name__ == "__main__":
    main()
