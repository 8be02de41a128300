#!/usr/bin/env bash
# End-to-end check of the scripts: start a broker, create a topic, produce and
# consume one message with Kafka's own tools, stop. Prints "smoke: ok".
#
# Usage: smoke.sh
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
dir="$(mktemp -d)"
trap '"${here}/stop.sh" "${dir}"' EXIT

brokers="$("${here}/start.sh" "${dir}" | tail -n 1)"
brokers="${brokers#KAFKA_BROKERS=}"
topic="smoke-$$"
want="hello-${RANDOM}"

"${here}/tool.sh" topics --bootstrap-server "${brokers}" \
	--create --topic "${topic}" --partitions 1 --replication-factor 1
echo "${want}" | "${here}/tool.sh" console-producer \
	--bootstrap-server "${brokers}" --topic "${topic}"
got="$("${here}/tool.sh" console-consumer --bootstrap-server "${brokers}" \
	--topic "${topic}" --from-beginning --max-messages 1 --timeout-ms 30000)"

if [[ "${got}" != "${want}" ]]; then
	echo "smoke: consumed \"${got}\", want \"${want}\"" >&2
	exit 1
fi
echo "smoke: ok"
