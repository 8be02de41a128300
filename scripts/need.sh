# Sourced by the scripts that need tools beyond Go: need COMMAND PACKAGE...
# installs the Debian packages when COMMAND is missing and the script runs
# as root (as in CI); otherwise it says what to install and stops. Its
# output goes to stderr: the scripts' stdout is their answer. Its messages
# name NEED_FOR, or the script.
need() {
	local cmd="$1" by="${NEED_FOR:-$(basename "$0")}"
	shift
	command -v "${cmd}" >/dev/null && return 0
	if [[ "$(id -u)" != 0 ]] || ! command -v apt-get >/dev/null; then
		echo "${by}: ${cmd} is missing: install $* (as root on Debian: apt-get install $*)" >&2
		exit 1
	fi
	echo "${by}: ${cmd} is missing: installing $*" >&2
	apt-get update -q >&2
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >&2
}
