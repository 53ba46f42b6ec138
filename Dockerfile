# Trail's container image: traild (and trailctl, trail-loadgen) on
# debian:12-slim, built with the same Debian packages as `make`
# (scripts/packages.txt: "build" in the first stage, "run" in the second).
# Non-root, runs with a read-only root filesystem; the migrations are compiled
# into traild (`traild migrate`), their SQL is also in /usr/share/trail.
#
#   docker build -t trail:dev .
#   docker run --rm trail:dev config defaults

FROM debian:12-slim AS build
COPY scripts/packages.txt /src/scripts/packages.txt
RUN apt-get update \
 && awk '!/^#/ && NF > 1 { for (i = 2; i <= NF; i++) if ($i == "build") print $1 }' /src/scripts/packages.txt \
    | xargs apt-get install -y --no-install-recommends \
 && rm -rf /var/lib/apt/lists/*
COPY . /src
RUN cmake -S /src -B /build -DCMAKE_BUILD_TYPE=RelWithDebInfo \
 && cmake --build /build -j "$(nproc)" --target traild trailctl trail-loadgen \
 && strip --strip-debug /build/bin/traild /build/bin/trailctl /build/bin/trail-loadgen

FROM debian:12-slim
COPY scripts/packages.txt /tmp/packages.txt
RUN apt-get update \
 && awk '!/^#/ && NF > 1 { for (i = 2; i <= NF; i++) if ($i == "run") print $1 }' /tmp/packages.txt \
    | xargs apt-get install -y --no-install-recommends \
 && rm -rf /var/lib/apt/lists/* /tmp/packages.txt \
 && useradd --system --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin trail
COPY --from=build /build/bin/traild /build/bin/trailctl /build/bin/trail-loadgen /usr/local/bin/
COPY config/trail.toml /etc/trail/trail.toml
COPY store/migrations /usr/share/trail/migrations
COPY scripts/container-entrypoint.sh /usr/local/bin/trail-entrypoint
USER 10001:10001
EXPOSE 8080 9464
ENTRYPOINT ["/usr/local/bin/trail-entrypoint"]
CMD ["run"]
