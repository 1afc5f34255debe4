# edgepurge container image (docs/production.md): the release binary (glibc, bookworm) on a slim base,
# run as a non-root user, state in /var/lib/edgepurge.
#
#   docker build -t edgepurge .
#   docker run -d -p 8470:8470 -v edgepurge:/var/lib/edgepurge \
#     -v $PWD/edgepurge.toml:/etc/edgepurge/edgepurge.toml:ro \
#     -e EDGEPURGE_WEBHOOK_TOKEN=... -e TENCENTCLOUD_SECRET_ID=... -e TENCENTCLOUD_SECRET_KEY=... \
#     edgepurge

FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p edgepurge \
 && install -m 755 target/release/edgepurge /edgepurge

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /var/lib/edgepurge --create-home edgepurge \
 && install -d -o edgepurge -g edgepurge -m 750 /var/lib/edgepurge /etc/edgepurge
COPY --from=build /edgepurge /usr/local/bin/edgepurge
COPY edgepurge.example.toml /etc/edgepurge/edgepurge.toml
USER edgepurge
WORKDIR /var/lib/edgepurge
VOLUME ["/var/lib/edgepurge"]
EXPOSE 8470
ENV EDGEPURGE_LOG=info
# Inside a container the webhook must listen beyond loopback; set a webhook token.
ENTRYPOINT ["/usr/local/bin/edgepurge", "--config", "/etc/edgepurge/edgepurge.toml"]
CMD ["serve", "--listen", "0.0.0.0:8470"]
