# egress-gateway container image: one static binary in an empty (`scratch`) image.
# No `# syntax=` line: it would make BuildKit fetch a frontend image even for the offline
# `prebuilt` build, and its built-in frontend (Docker >= 23) already has `RUN --mount`.
#
# From source (the default, last stage), with any Rust image as the builder:
#   docker build -t egress-gateway .
#   docker build --build-arg BUILDER_IMAGE=registry.example/rust:1.85-bookworm -t egress-gateway .
# From a binary built on the host (no base image is pulled at all; this is what CI does):
#   RUSTFLAGS="-C target-feature=+crt-static" \
#     cargo build --release --locked --target x86_64-unknown-linux-gnu
#   docker build --target prebuilt -t egress-gateway .
# Both ways end in the same `runtime` stage, so the images differ only in how the binary
# got there. The binary is linked statically against glibc (crt-static): it needs no
# libc, loader or CA bundle in the image (upstream TLS is the tenant's, spliced through).

ARG BUILDER_IMAGE=docker.io/library/rust:1-bookworm

# What both images share: the example config, the user, the ports, the entrypoint.
FROM scratch AS runtime
# The repository's example config (loopback-only) so that `docker run` starts something;
# in Kubernetes a projected volume is mounted over /etc/egress-gateway.
COPY config /etc/egress-gateway
# The ids deploy/base/deployment.yaml sets (runAsUser/runAsGroup 65532). Numeric, since
# the image has no /etc/passwd.
USER 65532:65532
# connect, connect_tls, sni, http, admin (the ports deploy/base/config/gateway.yaml uses)
EXPOSE 3128 3129 8443 8080 9901
ENTRYPOINT ["/egress-gateway"]
CMD ["run","--config","/etc/egress-gateway"]

# A binary built outside (path relative to the build context; .dockerignore lets
# target/*/release/egress-gateway through).
FROM runtime AS prebuilt
ARG BINARY=target/x86_64-unknown-linux-gnu/release/egress-gateway
COPY ${BINARY} /egress-gateway

# Build from source. `--target` keeps build scripts and proc-macros dynamic while the
# binary itself is static; Cargo.lock pins every dependency.
FROM ${BUILDER_IMAGE} AS build
WORKDIR /src
COPY . .
# The registry cache mount only speeds up rebuilds; the command is unchanged.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    triple="$(rustc -vV | sed -n 's/^host: //p')" \
    && RUSTFLAGS="-C target-feature=+crt-static" \
       cargo build --release --locked --target "$triple" \
    && cp "target/$triple/release/egress-gateway" /egress-gateway

FROM runtime AS image
COPY --from=build /egress-gateway /egress-gateway
