#!/usr/bin/env bash
# Assembles a runnable Apache Kafka (broker + CLI tools) from Maven Central
# into .cache/kafka/<version>/libs and prints that folder on stdout.
# A second run with the jars in place does nothing.
#
# Environment:
#   KAFKA_VERSION    Kafka version (default: the one in pom.xml)
#   KAFKA_CACHE_DIR  cache root (default: <repo>/.cache/kafka)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "${here}/../.." && pwd)"
pom="${here}/pom.xml"

default_version="$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "${pom}")"
version="${KAFKA_VERSION:-${default_version}}"
cache="${KAFKA_CACHE_DIR:-${root}/.cache/kafka}"
libs="${cache}/${version}/libs"
# The stamp ties the jars to the pom they came from: editing pom.xml refetches.
want_stamp="${version} $(sha256sum "${pom}" | cut -d' ' -f1)"

is_fetched() {
	[[ -f "${libs}/.fetched" && "$(cat "${libs}/.fetched")" == "${want_stamp}" ]]
}

if is_fetched; then
	echo "${libs}"
	exit 0
fi

mkdir -p "${cache}"
# Parallel test runs may all call fetch.sh: let one download, the rest wait.
exec 9>"${cache}/.lock"
flock 9
if is_fetched; then
	echo "${libs}"
	exit 0
fi

. "${root}/scripts/need.sh"
need mvn maven

tmp="${cache}/${version}/libs.tmp"
rm -rf "${tmp}"
echo "fetch.sh: fetching Kafka ${version} into ${libs}" >&2
# The local repository lives in the cache too, so nothing is downloaded twice
# and ~/.m2 stays untouched. Maven's own output goes to stderr, less the
# stray colour resets that Maven 3.8 prints even with -q.
# Checksums are checked (-C): a download that does not match fails here,
# rather than leave broken jars in the cache for every later run.
mvn -B -q -C -Dstyle.color=never -f "${pom}" \
	-Dmaven.repo.local="${cache}/m2" \
	-Dkafka.version="${version}" \
	dependency:copy-dependencies \
	-DincludeScope=runtime \
	-DoutputDirectory="${tmp}" 2>&1 | sed 's/\x1b\[0m//g' >&2

if ! compgen -G "${tmp}/kafka_2.13-${version}.jar" >/dev/null; then
	echo "fetch.sh: kafka_2.13-${version}.jar missing after mvn" >&2
	exit 1
fi
echo "${want_stamp}" >"${tmp}/.fetched"
rm -rf "${libs}"
mv "${tmp}" "${libs}"
echo "${libs}"
