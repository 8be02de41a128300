#!/usr/bin/env bash
# make test-kafka: the end-to-end, resilience and crash suites of system/
# against a real Apache Kafka broker (scripts/kafka: jars from Maven Central,
# KRaft, one node), with the embedded schema registry keeping its schemas on
# that broker. Tests that need the embedded broker itself (fault injection,
# stopping the broker) skip.
set -euo pipefail
cd "$(dirname "$0")/.."

dir="$(mktemp -d)"
trap 'scripts/kafka/stop.sh "${dir}" >/dev/null 2>&1 || true; rm -rf "${dir}"' EXIT
line="$(scripts/kafka/start.sh "${dir}")"
export "${line?}"
echo "test-kafka: Apache Kafka at ${KAFKA_BROKERS}"
# One package, its tests one after the other: they share the broker's topics
# and consumer groups, as consecutive deployments would.
go test -race -count=1 -timeout 20m ./system/...
