# syntax=docker/dockerfile:1
# tokenmint's container image: built in a full Rust image, run from distroless (glibc and CA
# certificates, no shell, no package manager) as a numeric non-root user. Works with a
# read-only root filesystem: tokenmint writes nothing but its logs, to stdout.
#
#   docker build -t tokenmint .
#   docker run --read-only -p 8080:8080 -e TWILIO_ACCOUNT_SID=… -e TWILIO_API_KEY=… \
#     -e TWILIO_API_SECRET_FILE=/run/secrets/twilio_api_secret … tokenmint

ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-slim-bookworm AS builder
WORKDIR /src
# Dependencies first, in their own layer: rebuilt only when Cargo.toml or Cargo.lock change.
COPY Cargo.toml Cargo.lock ./
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    cargo fetch --locked
COPY config ./config
COPY src ./src
# The browser example `serve --dev` serves (compiled in).
COPY clients/js ./clients/js
COPY benches ./benches
COPY examples ./examples
# The target directory is a cache mount, so an incremental rebuild reuses compiled dependencies.
# The image's binary is stripped (12 MB instead of 62 MB with line tables; bench/footprint.sh).
ENV CARGO_PROFILE_RELEASE_STRIP=symbols
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin tokenmint \
    && cp target/release/tokenmint /tokenmint

FROM gcr.io/distroless/cc-debian12:nonroot
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="tokenmint" \
      org.opencontainers.image.description="Mints short-lived Twilio Access Tokens for verified app users" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=builder /tokenmint /usr/local/bin/tokenmint
# distroless's "nonroot" user, by number, so runAsNonRoot can check it.
USER 65532:65532
# Public API, then the admin listener (probes and /metrics; keep it off the public ingress).
EXPOSE 8080 9090
# No shell and no curl in the image: the binary probes its own admin listener.
HEALTHCHECK --interval=10s --timeout=4s --start-period=5s --retries=3 \
    CMD ["/usr/local/bin/tokenmint", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/tokenmint"]
CMD ["serve"]
