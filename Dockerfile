# syntax=docker/dockerfile:1
# egress-gateway container image.
#   docker build -t egress-gateway .
# The build step is the exact command CI runs (`cargo build --release --locked`), so a
# green CI means this stage compiles; Cargo.lock pins every dependency.

FROM rust:1-bookworm AS builder
WORKDIR /src
COPY . .
# The registry cache mount only speeds up rebuilds; the command is unchanged.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    cargo build --release --locked

# distroless cc: glibc + libgcc + CA certificates, no shell, no package manager.
# Its Debian 12 base matches the builder's, so the glibc the binary links against is
# present. The :nonroot tag runs as uid/gid 65532, the same ids the Deployment sets.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=builder /src/target/release/egress-gateway /egress-gateway
# The repository's example config (loopback-only) so that `docker run` starts
# something; in Kubernetes a projected volume is mounted over /etc/egress-gateway.
COPY --from=builder /src/config /etc/egress-gateway
USER 65532:65532
# connect, connect_tls, sni, http, admin (the ports deploy/base/config/gateway.yaml uses)
EXPOSE 3128 3129 8443 8080 9901
ENTRYPOINT ["/egress-gateway"]
CMD ["run","--config","/etc/egress-gateway"]
