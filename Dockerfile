# syntax=docker/dockerfile:1
#
# airlock server image: `docker build -t airlock .` at the repository root.
#
# Stage 1 builds the release binary with the toolchain rust-toolchain.toml
# pins (keep RUST_VERSION equal to its `channel`; tests/deploy.rs checks).
# Stage 2 is the binary, CA certificates and nothing else a server needs.
# See docs/deploy.md for running it as replicas on Kubernetes.

ARG RUST_VERSION=1.95.0

FROM rust:${RUST_VERSION}-bookworm AS build
WORKDIR /src
# The whole workspace: cargo reads every member's manifest (host-api,
# runner, fuzz, fuzz/checks) even to build one package. .dockerignore keeps
# target/ and other local state out of the context.
COPY . .
# --locked: build exactly the dependency versions in Cargo.lock, or fail.
# rustup installs what rust-toolchain.toml names on first use (a few
# components; the wasm32-wasip2 target is only for guests and unused here).
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p airlock-runner \
 && install -D -m 0755 target/release/airlock /out/airlock

# bookworm-slim rather than distroless: the Kubernetes manifests run an init
# container from this image that copies the key slots with coreutils'
# `install` (see deploy/kubernetes/deployment.yaml for why), and the
# preStop hook uses `sleep`. The binary needs glibc and libgcc_s, both here;
# SQLite is bundled and TLS is rustls, so no OpenSSL.
FROM debian:bookworm-slim AS runtime
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 airlock \
 && useradd --system --uid 10001 --gid 10001 --no-create-home \
      --home-dir /var/lib/airlock --shell /usr/sbin/nologin airlock \
 && install -d -o 10001 -g 10001 -m 0700 /var/lib/airlock
COPY --from=build /out/airlock /usr/local/bin/airlock

# Per-replica state (compile cache, scratch): airlock creates the home 0700
# if it is missing. On Kubernetes this is an emptyDir; the root filesystem
# stays read-only.
ENV AIRLOCK_HOME=/var/lib/airlock/home
# Numeric, so runAsNonRoot can check it without reading /etc/passwd.
USER 10001:10001
WORKDIR /var/lib/airlock
EXPOSE 7878
ENTRYPOINT ["airlock"]
# 0.0.0.0: reachable from outside the container (the default 127.0.0.1 is
# not). Profiles are expected at /etc/airlock/profiles (a ConfigMap on
# Kubernetes, a bind mount with docker run).
CMD ["serve", "--listen", "0.0.0.0:7878", "--profiles", "/etc/airlock/profiles"]
