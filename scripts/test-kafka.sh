#!/usr/bin/env bash
# make test-kafka: the end-to-end, resilience and crash suites of system/
# against a real Apache Kafka broker (scripts/kafka: jars from Maven Central,
# KRaft, one node), with the embedded schema registry keeping its schemas on
# that broker. Tests that need the embedded broker itself (fault injection,
# stopping the broker) skip.
set -euo pipefail
cd "$(dirname "$0")/.."

. scripts/need.sh
need gcc gcc # the race detector builds with it: checked before the broker starts

dir="$(mktemp -d)"
# On a failure, the end of the broker's log, before stop.sh deletes it.
trap 'status=$?; if [[ ${status} != 0 && -f "${dir}/logs/server.log" ]]; then echo "test-kafka: the end of the broker log:" >&2; tail -n 100 "${dir}/logs/server.log" >&2; fi; scripts/kafka/stop.sh "${dir}" >/dev/null 2>&1 || true; rm -rf "${dir}"' EXIT
line="$(scripts/kafka/start.sh "${dir}")"
export "${line?}"
echo "test-kafka: Apache Kafka at ${KAFKA_BROKERS}"
# One test at a time (-p 1 across packages, no t.Parallel within): every
# test runs the whole system on the broker's one set of topics and consumer
# groups, as consecutive deployments would, and the embedded registry allows
# one writing instance on its _schemas topic.
go test -race -count=1 -p 1 -timeout 30m ./system/...
