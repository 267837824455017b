#!/usr/bin/env bash
# Installs tollgated, and the CLI tollgate, for hosts that run it under
# systemd (or as an NRI pre-registered plugin) instead of as the Kubernetes DaemonSet.
# Idempotent: re-running upgrades binaries and unit, and never overwrites an operator's edits.
#
#   systemd/install.sh [--prefix DIR] [--bin-dir DIR] [--nri-preregister] [--containerd-dropin]
#                      [--dry-run]
#
#   --prefix DIR          install under DIR instead of / (tests, image building)
#   --bin-dir DIR         where tollgated and tollgate are (default: <repo>/bin)
#   --nri-preregister     also install /opt/nri/plugins/10-tollgate and /etc/nri/conf.d/10-tollgate.conf
#                         (then do not enable tollgated.service: one launcher only)
#   --containerd-dropin   also install /etc/containerd/conf.d/10-tollgate.toml (fail-closed;
#                         read docs/rollout.md first)
#   --dry-run             print what would be done, change nothing
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
repo="$(dirname "$here")"
prefix=""
bindir="$repo/bin"
dry=0
nri=0
dropin=0

usage() { sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }

while [ $# -gt 0 ]; do
	case $1 in
	--prefix) prefix="${2:?--prefix needs a directory}"; shift 2 ;;
	--prefix=*) prefix="${1#*=}"; shift ;;
	--bin-dir) bindir="${2:?--bin-dir needs a directory}"; shift 2 ;;
	--bin-dir=*) bindir="${1#*=}"; shift ;;
	--nri-preregister) nri=1; shift ;;
	--containerd-dropin) dropin=1; shift ;;
	--dry-run) dry=1; shift ;;
	-h | --help) usage 0 ;;
	*) echo "install.sh: unknown argument $1" >&2; usage 2 >&2 ;;
	esac
done
prefix="${prefix%/}"

say() { echo "install.sh: $*"; }
do_() {
	say "$*"
	[ "$dry" = 1 ] || "$@"
}

# put SRC DEST MODE: install or replace a file we own.
put() {
	if [ -f "$prefix$2" ] && cmp -s "$1" "$prefix$2" && [ "$(stat -c %a "$prefix$2")" = "${3#0}" ]; then
		say "up to date: $2"
		return
	fi
	do_ install -D -m "$3" "$1" "$prefix$2"
}

# put_config SRC DEST MODE: install a file the operator may edit, only if absent.
put_config() {
	if [ -e "$prefix$2" ]; then
		say "keeping existing $2"
		return
	fi
	do_ install -D -m "$3" "$1" "$prefix$2"
}

dir() {
	if [ -d "$prefix$1" ]; then
		say "exists: $1"
		return
	fi
	do_ install -d -m "$2" "$prefix$1"
}

for b in tollgated tollgate; do
	if [ ! -x "$bindir/$b" ]; then
		echo "install.sh: $bindir/$b not found; run \`make build\` or pass --bin-dir" >&2
		exit 1
	fi
done

put "$bindir/tollgated" /usr/local/bin/tollgated 0755
put "$bindir/tollgate" /usr/local/bin/tollgate 0755
# Earlier releases split the CLI in two; tollgate is one binary now, and a stale
# tollgate-full left behind would be an old version on PATH.
if [ -e "$prefix/usr/local/bin/tollgate-full" ]; then
	do_ rm -f "$prefix/usr/local/bin/tollgate-full"
fi
put "$here/tollgated.service" /etc/systemd/system/tollgated.service 0644
put_config "$here/tollgated.env" /etc/default/tollgated 0644
dir /etc/tollgate 0755
dir /var/lib/tollgate 0700
dir /var/lib/tollgate/evidence 0700
dir /var/lib/tollgate/cache 0700
dir /var/log/tollgate 0750

if [ "$nri" = 1 ]; then
	put "$here/nri/10-tollgate" /opt/nri/plugins/10-tollgate 0755
	put_config "$here/nri/10-tollgate.conf" /etc/nri/conf.d/10-tollgate.conf 0644
fi
if [ "$dropin" = 1 ]; then
	put "$repo/deploy/containerd/10-tollgate.toml" /etc/containerd/conf.d/10-tollgate.toml 0644
fi

# Only a real install on a live systemd host reloads units; enabling is the operator's call.
if [ -z "$prefix" ] && [ "$dry" = 0 ] && [ -d /run/systemd/system ]; then
	do_ systemctl daemon-reload
fi
if [ "$nri" = 1 ]; then
	say "next: restart containerd to launch /opt/nri/plugins/10-tollgate (do not enable tollgated.service)"
else
	say "next: systemctl enable --now tollgated (see docs/rollout.md)"
fi
