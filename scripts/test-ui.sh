#!/usr/bin/env bash
# make test-ui: the console in a real browser. TestConsole (system/, build
# tag browser) runs the whole system on the embedded broker and registry and
# drives the console in headless Chromium, which this script installs from
# Debian's packages when it is missing. The test's screenshots are kept under
# UI_ARTIFACTS (default .data/test-ui).
set -euo pipefail
cd "$(dirname "$0")/.."

. scripts/need.sh
need chromium chromium
export CHROMIUM="$(command -v chromium)"
"${CHROMIUM}" --version

out="${UI_ARTIFACTS:-${PWD}/.data/test-ui}"
# This run's screenshots only: go test puts each test's in a new directory.
rm -rf "${out}/_artifacts"
mkdir -p "${out}"
# On the embedded broker and registry, whatever the shell exports (as make
# test): on the shell's Kafka the test would write to it, join its groups,
# and skip the checks that need the embedded broker.
env -u KAFKA_BROKERS -u SCHEMA_REGISTRY_URL go test -count=1 -tags browser -timeout 10m -run '^TestConsole$' -artifacts -outputdir "${out}" -v ./system/ 2>&1 |
	grep -v '^=== \(RUN\|PAUSE\|CONT\)'
echo "test-ui: screenshots under ${out}"
