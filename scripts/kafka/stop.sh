#!/usr/bin/env bash
# Stops the broker that start.sh started from DIR (SIGTERM, then SIGKILL after
# a deadline) and removes what start.sh wrote there.
#
# Usage: stop.sh [DIR]      (default DIR: <repo>/.data/kafka)
#
# Environment:
#   KAFKA_STOP_TIMEOUT  seconds to wait after SIGTERM (default 30)
#   KAFKA_KEEP_LOGS=1   keep DIR/logs, e.g. to read them after a failed CI run
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "${here}/../.." && pwd)"
dir="${1:-${root}/.data/kafka}"

log() { echo "stop.sh: $*" >&2; }

if [[ ! -d "${dir}" ]]; then
	log "${dir} does not exist; nothing to stop"
	exit 0
fi
dir="$(cd "${dir}" && pwd)"

# Only signal the pid if it still is our broker: pids get reused.
is_our_broker() {
	local cmdline
	cmdline="$(tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null)" || return 1
	[[ "${cmdline}" == *kafka.Kafka*"${dir}/server.properties"* ]]
}

if [[ -f "${dir}/kafka.pid" ]]; then
	pid="$(cat "${dir}/kafka.pid")"
	if is_our_broker "${pid}"; then
		kill -TERM "${pid}"
		deadline=$((SECONDS + ${KAFKA_STOP_TIMEOUT:-30}))
		while is_our_broker "${pid}" && ((SECONDS < deadline)); do
			sleep 0.2
		done
		if is_our_broker "${pid}"; then
			log "broker ${pid} still running after ${KAFKA_STOP_TIMEOUT:-30}s; sending SIGKILL"
			kill -KILL "${pid}" 2>/dev/null || true
			while is_our_broker "${pid}"; do sleep 0.1; done
		fi
		log "broker ${pid} stopped after ${SECONDS}s"
	else
		log "no broker running with pid ${pid}"
	fi
fi

# Remove only what start.sh created, so a DIR pointing somewhere shared
# (or a typo) cannot wipe unrelated files.
rm -rf "${dir}/data" "${dir}/server.properties" "${dir}/kafka.pid" "${dir}/kafka.env"
if [[ "${KAFKA_KEEP_LOGS:-0}" != 1 ]]; then
	rm -rf "${dir}/logs"
	rmdir "${dir}" 2>/dev/null || true
fi
