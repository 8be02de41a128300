# syntax=docker/dockerfile:1
# One image recipe for every process; SERVICE picks the binary:
#   docker build --build-arg SERVICE=order .
# SERVICE: order | customer | payment | orchestrator | provision.
# PORT only documents the HTTP port (EXPOSE); HTTP_ADDR sets the real one.

# The builder's Go must be at least go.work's `go` line (1.26.8).
FROM golang:1.26.8-bookworm AS build
ARG SERVICE
WORKDIR /src
# The whole workspace: go.work names every module, so all must be present.
COPY . .
# Cache mounts share the module and build caches between the five images.
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    set -eu; \
    case "${SERVICE}" in \
      order|customer|payment) pkg="./services/${SERVICE}" ;; \
      orchestrator) pkg="./orchestrator" ;; \
      provision) pkg="./system/cmd/provision" ;; \
      *) echo "SERVICE='${SERVICE}': want order, customer, payment, orchestrator or provision" >&2; exit 1 ;; \
    esac; \
    CGO_ENABLED=0 go build -buildvcs=false -trimpath -ldflags='-s -w' -o /out/app "${pkg}"

# Alpine rather than distroless: its busybox wget is the health check's client.
FROM alpine:3.24.1
ARG PORT=8080
COPY --from=build /out/app /usr/local/bin/app
# 65532 is distroless' "nonroot": no name needed, never root.
USER 65532:65532
EXPOSE ${PORT}
ENTRYPOINT ["/usr/local/bin/app"]
