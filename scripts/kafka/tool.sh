#!/usr/bin/env bash
# Runs a Kafka command-line tool from the same jars as the broker.
#
# Usage: tool.sh TOOL [ARGS...]
#   TOOL is a short name below or a fully qualified main class, e.g.
#   tool.sh topics --bootstrap-server "$KAFKA_BROKERS" --list
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

if (($# < 1)); then
	echo "usage: tool.sh topics|console-producer|console-consumer|consumer-groups|broker-api-versions|get-offsets|CLASS [ARGS...]" >&2
	exit 2
fi

case "$1" in
topics) class=org.apache.kafka.tools.TopicCommand ;;
console-producer) class=org.apache.kafka.tools.ConsoleProducer ;;
console-consumer) class=org.apache.kafka.tools.consumer.ConsoleConsumer ;;
consumer-groups) class=org.apache.kafka.tools.consumer.group.ConsumerGroupCommand ;;
broker-api-versions) class=org.apache.kafka.tools.BrokerApiVersionsCommand ;;
get-offsets) class=org.apache.kafka.tools.GetOffsetShell ;;
*) class="$1" ;;
esac
shift

libs="$("${here}/fetch.sh")"
# Short-lived tools: a small heap and no optimising JIT start faster.
exec java -Xmx256m -XX:TieredStopAtLevel=1 -XX:+UseSerialGC \
	-Dlog4j2.configurationFile="${here}/tools-log4j2.properties" \
	-cp "${libs}/*" "${class}" "$@"
