# keyward: a static, non-root image.
#
#   docker build -t keyward .
#   docker run -p 7070:7070 -e KEYWARD_DATABASE_URL=postgres://keyward@db/keyward \
#     -e KEYWARD_LISTEN=0.0.0.0:7070 -e KEYWARD_PUBLIC_URL=https://keys.example.com keyward
#
# Stage 1 builds a fully static binary (musl); stage 2 is an empty image with that
# binary, CA certificates and an unprivileged user. SQLite (the default database) is
# compiled in; mount a volume at /data for it.
FROM rust:1-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends musl-tools && rm -rf /var/lib/apt/lists/* \
 && rustup target add x86_64-unknown-linux-musl
WORKDIR /src
COPY . .
RUN cargo build --release --locked --target x86_64-unknown-linux-musl -p keyward \
 && install -D target/x86_64-unknown-linux-musl/release/keyward /out/keyward \
 && mkdir -p /out/data

FROM scratch
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/
COPY --from=build /out/keyward /keyward
COPY --from=build --chown=10001:10001 /out/data /data
USER 10001:10001
WORKDIR /data
ENV KEYWARD_LISTEN=0.0.0.0:7070 \
    KEYWARD_DATABASE_URL=sqlite:///data/keyward.db \
    KEYWARD_LOG_FORMAT=json
EXPOSE 7070
# SIGTERM drains in-flight requests and writes the last usage batch.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/keyward"]
CMD ["serve"]
