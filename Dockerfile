# syntax=docker/dockerfile:1
# Sluice container image: a static binary on distroless (no shell, no package manager),
# running as a non-root user. docs/packaging.md says how to build and run it.
#
#   docker build -t sluice .
#   docker run --rm -p 8080:8080 -e SLUICE_UPSTREAM=10.0.0.5:8080 sluice
#   docker run --rm -p 8080:8080 -v $PWD/sluice.yaml:/etc/sluice/sluice.yaml:ro sluice

FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
ARG REVISION=""
# The flags of scripts/release.sh: static (CGO off), no build paths, version stamped.
RUN CGO_ENABLED=0 go build -trimpath -buildvcs=false \
      -ldflags "-s -w -X main.version=${VERSION} -X main.revision=${REVISION}" \
      -o /out/sluice ./cmd/sluice \
 && /out/sluice version -v \
 && SLUICE_UPSTREAM=127.0.0.1:9 /out/sluice validate /src/packaging/sluice.yaml

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/sluice /usr/local/bin/sluice
COPY --from=build /src/packaging/sluice.yaml /etc/sluice/sluice.yaml
COPY --from=build /src/LICENSE /usr/share/doc/sluice/LICENSE
# distroless's nonroot user (65532); the listener port is above 1024, so no capability.
USER nonroot:nonroot
EXPOSE 8080
# No curl in the image: `sluice health` asks the admin API at the address (and with the
# api_key) of the config in use, and exits 0 when /admin/readyz answers 200.
HEALTHCHECK --interval=10s --timeout=3s --retries=3 \
  CMD ["/usr/local/bin/sluice", "health", "-ready", "-c", "/etc/sluice/sluice.yaml"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/sluice"]
CMD ["run", "/etc/sluice/sluice.yaml"]
