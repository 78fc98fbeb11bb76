# syntax=docker/dockerfile:1
# One image for every service: `boxoffice waitroom|gateway|scheduler|migrate`.
#   docker build -t boxoffice:local .
# The defaults (config/default.toml) are compiled into the binary; configuration comes
# from BOXOFFICE__* variables (see k8s/base/configmap.yaml).

FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY crates crates
# Compiled in: the defaults (include_str!) and the migrations (sqlx::migrate!).
COPY config config
COPY migrations migrations
# BuildKit cache mounts keep the registry and compiled dependencies between builds, so a
# source change recompiles only the workspace crates.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p boxoffice \
    && cp target/release/boxoffice /usr/local/bin/boxoffice

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/*
# A fixed numeric user, so `runAsNonRoot` can verify it without a passwd lookup.
RUN groupadd --gid 10001 boxoffice && useradd --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin boxoffice
COPY --from=build /usr/local/bin/boxoffice /usr/local/bin/boxoffice
USER 10001:10001
EXPOSE 8080 8081 8082
ENTRYPOINT ["/usr/local/bin/boxoffice"]
CMD ["--help"]
