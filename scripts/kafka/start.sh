#!/usr/bin/env bash
# Starts a single-node Kafka (KRaft, combined broker+controller) on 127.0.0.1
# with fresh data under DIR, waits until it serves, and prints
# KAFKA_BROKERS=127.0.0.1:PORT as the last line on stdout (also written to
# DIR/kafka.env). Everything else goes to stderr. Stop it with stop.sh DIR.
#
# Usage: start.sh [DIR]      (default DIR: <repo>/.data/kafka)
#
# Environment:
#   KAFKA_PORT, KAFKA_CONTROLLER_PORT  fixed ports (default: free ones)
#   KAFKA_HEAP_OPTS      default "-Xms128m -Xmx512m"
#   KAFKA_JVM_OPTS       default "-XX:+UseSerialGC -XX:+ExitOnOutOfMemoryError"
#   KAFKA_START_TIMEOUT  seconds to wait for the broker (default 90)
#   KAFKA_VERSION, KAFKA_CACHE_DIR     passed to fetch.sh
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "${here}/../.." && pwd)"
dir="${1:-${root}/.data/kafka}"
mkdir -p "${dir}"
dir="$(cd "${dir}" && pwd)"
timeout="${KAFKA_START_TIMEOUT:-90}"

log() { echo "start.sh: $*" >&2; }

if [[ -f "${dir}/kafka.pid" ]] && kill -0 "$(cat "${dir}/kafka.pid")" 2>/dev/null; then
	log "a broker is already running from ${dir} (pid $(cat "${dir}/kafka.pid")); run stop.sh ${dir} first"
	exit 1
fi

# What the broker and this script need beyond Go, installed when missing
# (scripts/need.sh): a Java of 17 or later, and Python for two helpers.
. "${root}/scripts/need.sh"
need java default-jre-headless
need python3 python3
java_major="$(java -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java.specification.version = \([0-9]*\).*/\1/p')"
if [[ -z "${java_major}" || "${java_major}" -lt 17 ]]; then
	log "Kafka needs Java 17 or later; $(command -v java) is ${java_major:-of an unknown version}"
	exit 1
fi

libs="$("${here}/fetch.sh")"

heap_opts="${KAFKA_HEAP_OPTS:--Xms128m -Xmx512m}"
jvm_opts="${KAFKA_JVM_OPTS:--XX:+UseSerialGC -XX:+ExitOnOutOfMemoryError}"
# Word splitting of the option strings is intended.
# shellcheck disable=SC2206
java_args=(
	${heap_opts} ${jvm_opts}
	-Djava.awt.headless=true
	-Dkafka.logs.dir="${dir}/logs"
	-Dlog4j2.configurationFile="${here}/log4j2.properties"
	-cp "${libs}/*"
)

pick_ports() {
	python3 -c '
import socket
# Bind both at once so the two ports differ.
a, b = socket.socket(), socket.socket()
a.bind(("127.0.0.1", 0)); b.bind(("127.0.0.1", 0))
print(a.getsockname()[1], b.getsockname()[1])'
}

new_cluster_id() {
	python3 -c '
import base64, uuid
# Like Kafka Uuid.toString: unpadded base64url of 16 random bytes, never
# starting with "-" so it cannot be taken for a flag.
while True:
    s = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
    if not s.startswith("-"):
        print(s)
        break'
}

write_config() {
	cat >"${dir}/server.properties" <<EOF
# Written by scripts/kafka/start.sh: a throwaway single-node cluster for tests.
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:${cport}
listeners=PLAINTEXT://127.0.0.1:${port},CONTROLLER://127.0.0.1:${cport}
advertised.listeners=PLAINTEXT://127.0.0.1:${port},CONTROLLER://127.0.0.1:${cport}
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=${dir}/data

# One node: every replication factor and ISR is 1.
num.partitions=1
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
# Tests create their topics explicitly, so a typo fails instead of
# silently creating a topic.
auto.create.topics.enable=false

# Fast for tests: no rebalance delay, small internal topics, few threads.
group.initial.rebalance.delay.ms=0
# Processes under test run with a 2s session so a killed one's partitions
# move on quickly; Kafka's default minimum is 6s.
group.min.session.timeout.ms=1000
offsets.topic.num.partitions=1
transaction.state.log.num.partitions=1
share.coordinator.state.topic.num.partitions=1
num.network.threads=2
num.io.threads=2
num.recovery.threads.per.data.dir=1
EOF
}

# Returns 0 once the broker serves, 1 if it exited, 2 on timeout.
wait_ready() {
	local deadline=$((SECONDS + timeout))
	until grep -q 'Kafka Server started' "${dir}/logs/server.log" 2>/dev/null &&
		(exec 3<>"/dev/tcp/127.0.0.1/${port}") 2>/dev/null; do
		kill -0 "${pid}" 2>/dev/null || return 1
		((SECONDS < deadline)) || return 2
		sleep 0.2
	done
}

fail() {
	log "$1; last lines of ${dir}/logs/server.log and kafka.out:"
	tail -n 60 "${dir}/logs/server.log" >&2 2>/dev/null || true
	tail -n 20 "${dir}/logs/kafka.out" >&2 2>/dev/null || true
	kill -KILL "${pid}" 2>/dev/null || true
	rm -f "${dir}/kafka.pid"
	exit 1
}

# Free ports are only free until someone else binds them; if another process
# wins the race, try again with new ones.
for attempt in 1 2 3; do
	read -r port cport < <(pick_ports)
	port="${KAFKA_PORT:-${port}}"
	cport="${KAFKA_CONTROLLER_PORT:-${cport}}"

	# Every start is a new cluster: tests must not see a previous run's topics.
	rm -rf "${dir}/data" "${dir}/logs" "${dir}/kafka.pid" "${dir}/kafka.env"
	mkdir -p "${dir}/data" "${dir}/logs"
	write_config

	if ! java "${java_args[@]}" kafka.tools.StorageTool format \
		-t "$(new_cluster_id)" -c "${dir}/server.properties" --standalone \
		>"${dir}/logs/format.out" 2>&1; then
		log "formatting storage failed:"
		tail -n 50 "${dir}/logs/format.out" >&2
		exit 1
	fi

	nohup java "${java_args[@]}" kafka.Kafka "${dir}/server.properties" \
		</dev/null >"${dir}/logs/kafka.out" 2>&1 &
	pid=$!
	echo "${pid}" >"${dir}/kafka.pid"
	log "broker pid ${pid}, port ${port}, controller port ${cport}, logs in ${dir}/logs"

	status=0
	wait_ready || status=$?
	case "${status}" in
	0) break ;;
	2) fail "broker not ready after ${timeout}s" ;;
	esac
	if ((attempt < 3)) && [[ -z "${KAFKA_PORT:-}${KAFKA_CONTROLLER_PORT:-}" ]] &&
		grep -qs 'Address already in use' "${dir}/logs/server.log" "${dir}/logs/kafka.out"; then
		log "a port was taken meanwhile; retrying with new ones"
		continue
	fi
	fail "broker exited during startup"
done

echo "KAFKA_BROKERS=127.0.0.1:${port}" >"${dir}/kafka.env"
log "broker ready after ${SECONDS}s"
echo "KAFKA_BROKERS=127.0.0.1:${port}"
