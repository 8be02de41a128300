# syntax=docker/dockerfile:1
# One image recipe for every process; SERVICE picks the binary:
#   docker build --build-arg SERVICE=order .
# SERVICE: a service of services/ (order, customer, payment), orchestrator or
# provision; deploy's tests check it builds every process of system.Processes.
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
      orchestrator) pkg="./orchestrator" ;; \
      provision) pkg="./system/cmd/provision" ;; \
      *) pkg="./services/${SERVICE}"; \
         if [ -z "${SERVICE}" ] || [ ! -f "${pkg}/main.go" ]; then \
           echo "SERVICE='${SERVICE}': want orchestrator, provision or one of services/:" $(ls services) >&2; exit 1; \
         fi ;; \
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
