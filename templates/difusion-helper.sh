#!/bin/sh
# difusion-helper: the whole remote protocol of difusion, run on each difusor.
#
# Shell access (default): difusion sends this script inline on every step:
#     sh -c '<this script>' difusion-helper ROOT VERB [ARG...]
# Restricted access: the difusor's admin installs this file and pins it in authorized_keys:
#     restrict,command="sh /usr/local/libexec/difusion-helper /var/www/prep" ssh-ed25519 AAAA...
# and the verb comes from SSH_ORIGINAL_COMMAND, where only plain tokens are accepted.
#
# Needs only what CentOS 7 ships: POSIX sh, coreutils 8.22, GNU findutils (find -printf, xargs -0),
# grep and rsync 3.1. Layout below ROOT:
#     releases/<cut>/       complete, verified cuts (MANIFEST.sha256 at their root)
#     current -> releases/<cut>   the DocumentRoot, switched by renaming a new symlink over it
#     .staging/<cut>/       a transfer in progress, never served
#     .staging/<cut>.in-<run>/   what a run sends while prepare builds the staging (verify merges it in)
#     notices/<stamp>/      the notice (aviso) of a suspension: index.html, aviso.json, MANIFEST.sha256;
#                           current -> notices/<stamp> while the difusor is suspended
#
# On a restricted account this file is all the publication key can do: each verb takes only the arguments
# and stdin lines difusion's client sends (whitelists, checked before any program sees them) and touches only:
#     status          reads ROOT's layout; writes nothing
#     throughput      writes one file of at most 64 MiB under .staging, removed at once
#     prepare/inspect .staging (cleared, then a cut's staging as hard links to a release), releases/ made if missing
#     link            .staging/<cut> from releases/<base>; paths read from stdin stay inside it
#     rsync           only rsync --server receiving into .staging/<cut>/ or .staging/<cut>.in-<token>/
#     verify, audit   read files inside .staging/<cut> or releases/<cut> named by stdin, never outside them
#     promote         moves .staging/<cut> into releases/<cut>, or file by file for the paths stdin names
#     switch          the current symlink, to releases/<cut>; notice-put, notice-switch: .staging/notice-<stamp>,
#                     notices/<stamp> and current
#     discard, prune  remove what staging or releases/ and notices/ no longer need
#     logs            reads the access logs the admin pinned (DIFUSION_ACCESS_LOG); writes nothing
#     lease           .lease/ (holder, and lock while it reads it): which run of which host holds this difusor
#     hold            .lease/hold: the cut a rollback holds this difusor on, for every publication host to see
# Nothing outside ROOT is written; the only reads outside it are the pinned logs and the manifest key.
set -u
umask 022
# Raised whenever a verb changes what it reads or answers; `status` says it, and difusion preflight
# names a restricted difusor whose installed copy is older than the client's.
HELPER_PROTOCOL=5
# A lease (the lease verb) is asked for at most a day; publication.lease_s is far less.
LEASE_MAX_S=86400
# preflight --probe-mb is at most 64.
THROUGHPUT_MAX_BYTES=67108864
PATH=/usr/local/bin:/usr/bin:/bin
LC_ALL=C
export PATH LC_ALL

die() {
	printf 'difusion-helper: %s\n' "$*" >&2
	exit 2
}

[ $# -ge 1 ] || die 'usage: difusion-helper ROOT [VERB ARG...]'
ROOT=$1
shift
case $ROOT in
/*) ;;
*) die "root must be an absolute path: $ROOT" ;;
esac

restricted=
if [ $# -eq 0 ]; then
	restricted=1
	request=${SSH_ORIGINAL_COMMAND:-}
	# Only plain tokens: no quotes, no globs, no shell syntax can reach the word splitting below.
	case $request in
	'' | *[!A-Za-z0-9_.,=/:+\ -]*) die 'refused: not a difusion request' ;;
	esac
	set -f
	# shellcheck disable=SC2086
	set -- $request
	set +f
fi

cd "$ROOT" 2>/dev/null || die "cannot enter $ROOT"

is_cut() {
	case $1 in
	[0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9]_[0-9][0-9][0-9][0-9]) return 0 ;;
	[0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9]_[0-9][0-9][0-9][0-9]_*)
		case ${1#????????_????_} in
		'' | *[!A-Za-z0-9_-]*) return 1 ;;
		esac
		# A suffix of at most 64: every line naming a cut (a hold, an answer) stays within what is read back.
		[ ${#1} -le 78 ] && return 0
		;;
	esac
	return 1
}

need_cut() {
	is_cut "${1:-}" || die "not a cut id: ${1:-}"
}

# A notice's name: YYYYMMDD_HHMMSS, the moment of the cutoff in the publication timezone.
need_stamp() {
	case ${1:-} in
	[0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9]_[0-9][0-9][0-9][0-9][0-9][0-9]) ;;
	*) die "not a notice stamp: ${1:-}" ;;
	esac
}

# The run-unique name of a transfer's incoming directory, .staging/<cut>.in-<token>/.
need_token() {
	case ${1:-} in
	'' | *[!A-Za-z0-9]*) die "not an incoming token: ${1:-}" ;;
	esac
	[ ${#1} -le 40 ] || die "not an incoming token: $1"
}

# A relative path inside a release: no absolute path, no '..' component.
is_inside() {
	case $1 in
	'' | /* | .. | ../* | */.. | */../*) return 1 ;;
	esac
	return 0
}

live_cut() {
	[ -L current ] || return 1
	target=$(readlink current) || return 1
	case $target in
	releases/*) ;;
	*) return 1 ;;
	esac
	is_cut "${target#releases/}" || return 1
	printf '%s\n' "${target#releases/}"
}

# The notice current points to, whatever its name: a suspension is never lifted by accident.
live_notice() {
	[ -L current ] || return 1
	target=$(readlink current) || return 1
	case $target in
	notices/*) printf '%s\n' "${target#notices/}" ;;
	*) return 1 ;;
	esac
}

# The cuts under releases/, newest first: real directories only, named like a cut.
releases_newest_first() {
	for r in releases/*; do
		n=${r#releases/}
		[ -d "$r" ] && [ ! -L "$r" ] && is_cut "$n" && printf '%s\n' "$n"
	done | sort -r
}

# "f SIZE PATH" per regular file and "o PATH" per anything that is neither file nor directory.
inventory() {
	(
		cd "$1" || exit 2
		# One walk, no stat process per batch: GNU find's -printf (findutils, on every CentOS 7).
		find . ! -type d \( -type f -printf 'f %s %P\n' -o -printf 'o %P\n' \)
	)
}

# With the institute's public key installed on the difusor, a release must carry a valid signature
# of its manifest. Ed25519 needs OpenSSL 3 (-rawin); an older openssl can only say it did not check.
signature() {
	pub=
	for f in .difusion/manifest.pub /etc/difusion/manifest.pub; do
		if [ -f "$f" ]; then pub=$f && break; fi
	done
	[ -n "$pub" ] || return 0
	if [ ! -f "$1/MANIFEST.sha256.sig" ]; then
		echo 'signature missing'
	elif ! openssl pkeyutl -help 2>&1 | grep -q rawin; then
		echo 'signature unchecked'
	else
		sig=".staging/.sig.$$"
		if base64 -d <"$1/MANIFEST.sha256.sig" >"$sig" 2>/dev/null &&
			openssl pkeyutl -verify -pubin -inkey "$pub" -rawin -in "$1/MANIFEST.sha256" -sigfile "$sig" >/dev/null 2>&1; then
			echo 'signature ok'
		else
			echo 'signature bad'
		fi
		rm -f "$sig"
	fi
}

# Whether a directory holds nothing, hidden entries included, without a process.
empty_dir() {
	for f in "$1"/* "$1"/.[!.]* "$1"/..?*; do
		if [ -e "$f" ] || [ -L "$f" ]; then return 1; fi
	done
	return 0
}

# stdin split, reading in blocks (sh reads a pipe one byte per system call, which for thousands of lines costs
# more than the links): lines up to "/MANIFEST.sha256" go to DROP (when given), then the manifest to MANIFEST
# and, after "/MANIFEST.sha256.sig", the signature to SIG. No path starts with '/', so no path is a marker.
read_manifest() {
	rm -f "$1" "$2"
	if [ -n "${3:-}" ]; then : >"$3" || die 'cannot read the drop list'; fi
	awk -v manifest="$1" -v sig="$2" -v drop="${3:-/dev/null}" '
		$0 == "/MANIFEST.sha256" { out = manifest; printf "" > out; next }
		$0 == "/MANIFEST.sha256.sig" { out = sig; printf "" > out; next }
		out == "" { print > drop; next }
		out == sig { printf "%s", $0 > out; next }
		{ print > out }' || die 'cannot read the manifest'
}

# Every path DROP lists is plainly inside a release; otherwise nothing of CUT's staging is kept and it is refused.
need_inside_paths() {
	if bad=$(grep -E -m1 '^$|^/|^\.\.(/|$)|/\.\.(/|$)' "$2"); then
		rm -f "$2" ".staging/.manifest.$1" ".staging/.sig.$1"
		die "refused path: $bad"
	fi
}

# .staging/CUT as hard links to releases/BASE, minus the paths DROP lists (then DROP is removed). A path that is
# not plainly inside the release (a name holding a newline can forge one in an inventory) is refused, never removed.
link_staging() {
	need_inside_paths "$1" "$3"
	# Hard links: unchanged files share the base release's inodes, so they cost no bytes and no time. Nothing
	# ever writes into one: rsync replaces a file by renaming a new one over it, and so do the manifest's moves.
	cp -al "releases/$2" ".staging/$1" || die "cannot link releases/$2 into staging"
	(cd ".staging/$1" && tr '\n' '\0' <"../../$3" | xargs -0 -r rm -rf --) || die "cannot remove what changed from the linked copy in .staging/$1"
	rm -f "$3"
	# A directory the cut no longer has would survive, empty, from the linked copy; rmdir only takes empty ones.
	find ".staging/$1" -depth -type d -exec rmdir {} + 2>/dev/null
	mkdir -p ".staging/$1" || die "cannot create staging for $1"
}

# The manifest and signature read from stdin, renamed into the staging: the base's inode is never written.
place_manifest() {
	if [ -f "$2" ]; then mv -f "$2" ".staging/$1/MANIFEST.sha256" || die 'cannot write MANIFEST.sha256'; fi
	if [ -f "$3" ]; then mv -f "$3" ".staging/$1/MANIFEST.sha256.sig" || die 'cannot write MANIFEST.sha256.sig'; fi
}

free_kb() {
	df -Pk . | awk 'NR == 2 { print $4 }'
}

# A logs argument as sent (plain tokens): =2A, =3F, =20 and =3D stand for '*', '?', ' ' and '='.
logs_decode() {
	printf '%s\n' "$1" | sed 's/=2A/*/g; s/=3F/?/g; s/=20/ /g; s/=3D/=/g'
}

# The regular files a glob matches, one per line (a name holding a newline is skipped).
logs_matches() {
	(
		IFS=
		set +f
		for f in $1; do
			case $f in *'
'*) continue ;; esac
			[ -f "$f" ] && printf '%s\n' "$f"
		done
	)
}

# One cluster of short options on rsync's server command line: each letter one that difusion's client sends
# (-W whole file, -t times, -p perms, -r recursive, -I ignore times, -R relative, from --files-from, -z compress),
# then after 'e' the protocol's capability letters (e.iLsfxCIvu), which are not options.
rsync_short_options() {
	rest=${1#-}
	while [ -n "$rest" ]; do
		letter=${rest%"${rest#?}"}
		rest=${rest#?}
		case $letter in
		[WtprIRz]) ;;
		e)
			case $rest in
			.* | [0-9]*.*) ;;
			*) die "refused: rsync $1: not the protocol's capability string after 'e'" ;;
			esac
			case $rest in
			*[!A-Za-z0-9.]*) die "refused: rsync $1: not the protocol's capability string after 'e'" ;;
			esac
			return 0
			;;
		M) die "refused: rsync $1: -M passes options on unchecked" ;;
		*) die "refused: rsync $1" ;;
		esac
	done
}

# A verb's arguments beyond what the client sends are refused, never ignored.
no_more_than() {
	max=$1
	shift
	[ $# -le "$max" ] || die "refused: $verb takes at most $max arguments, not: $*"
}

# A count (offset, length, releases to keep): digits only, short enough for sh's arithmetic.
need_count() {
	case $2 in
	'' | *[!0-9]*) die "$1 must be a number: $2" ;;
	esac
	[ ${#2} -le 15 ] || die "$1 is too large: $2"
}

# stdin's sha256sum lines into FILE, each "HASH  PATH" (or sha256sum's escaped "\HASH  PATH") with PATH plainly inside
# the tree it is checked in; any other line refuses them all, so sha256sum never opens a path outside ROOT.
read_checks() {
	cat >"$1" || die 'cannot read the checks'
	need_plain_checks "$1"
}

need_plain_checks() {
	if bad=$(awk '{
		if (!match($0, /^\\?[0-9a-f]+  /) || RLENGTH - (substr($0, 1, 1) == "\\") != 66) { print; exit }
		p = substr($0, RLENGTH + 1)
		if (p == "" || p ~ /^\// || p ~ /^\.\.(\/|$)/ || p ~ /\/\.\.(\/|$)/) { print; exit }
	}' "$1") && [ -n "$bad" ]; then
		rm -f "$1"
		die "refused check line: $bad"
	fi
}

# A host or run name in a lease: a plain token, as the client sends it (DIFUSION_HOST, a run id).
is_lease_name() {
	case $1 in
	'' | -* | *[!A-Za-z0-9_.-]*) return 1 ;;
	esac
	[ ${#1} -le 64 ]
}

need_lease_name() {
	is_lease_name "$2" || die "not a lease $1 name: $2"
}

# The few lines that read and rewrite .lease/holder run one at a time: mkdir is atomic. A mutex left by a
# helper killed inside those lines is older than any of them can take, so it is broken after 10 s.
lease_lock() {
	tries=0
	until mkdir .lease/lock 2>/dev/null; do
		tries=$((tries + 1))
		[ "$tries" -le 300 ] || die "$ROOT/.lease/lock stays taken; another difusion run is reading the lease"
		if [ $((tries % 20)) -eq 0 ] && made=$(stat -c %Y .lease/lock 2>/dev/null) && [ $(($(date +%s) - made)) -gt 10 ]; then
			rmdir .lease/lock 2>/dev/null
		fi
		sleep 0.05
	done
	trap 'rmdir .lease/lock 2>/dev/null' EXIT HUP INT TERM
}

lease_unlock() {
	rmdir .lease/lock 2>/dev/null
	trap - EXIT HUP INT TERM
}

# .lease/holder, "HOST RUN SINCE EXPIRY", read into l_host l_run l_since l_expiry while it is live, or l_expired
# (and l_expired_host, _run, _since) once expired. A claim counts as at most LEASE_S past the moment the file
# was written (its mtime, never later than now): nobody, the difusor's admin included, holds it longer by
# writing a far date. An unreadable file is an unknown holder's lease for as long.
current_lease() {
	l_host= l_run= l_since= l_expiry= l_expired= l_expired_host= l_expired_run= l_expired_since=
	claim_s=$1 now=$2
	[ -f .lease/holder ] || return 0
	written=$(stat -c %Y .lease/holder 2>/dev/null) || return 0
	[ "$written" -le "$now" ] || written=$now
	cap=$((written + claim_s))
	line=$(head -c 300 .lease/holder | head -n 1)
	set -f
	# shellcheck disable=SC2086
	set -- $line
	set +f
	h=unknown r=unknown s=$written e=$cap
	if [ $# -eq 4 ] && is_lease_name "$1" && is_lease_name "$2"; then
		case $3$4 in
		*[!0-9]*) ;;
		*) [ ${#3} -le 12 ] && [ ${#4} -le 12 ] && h=$1 r=$2 s=$3 e=$4 ;;
		esac
	fi
	[ "$e" -le "$cap" ] || e=$cap
	if [ "$now" -lt "$e" ]; then
		l_host=$h l_run=$r l_since=$s l_expiry=$e
	else
		l_expired="$h $r $s $e" l_expired_host=$h l_expired_run=$r l_expired_since=$s
	fi
}

# .lease/hold, "held CUT HOST RUN SINCE" (a rollback of HOST holds this difusor on CUT) or "lifted CUT HOST RUN
# SINCE" (a publish by name of HOST lifted that hold): printed as "hold ..." or "lifted ...", nothing otherwise.
# The lifted trace stays so that the rolling-back host's own cron, following its hold, moves nothing back here.
hold_line() (
	[ -f .lease/hold ] && [ ! -L .lease/hold ] || exit 0
	line=$(head -c 300 .lease/hold | head -n 1)
	set -f
	# shellcheck disable=SC2086
	set -- $line
	set +f
	[ $# -eq 5 ] && is_cut "$2" && is_lease_name "$3" && is_lease_name "$4" || exit 0
	case $5 in '' | *[!0-9]*) exit 0 ;; esac
	[ ${#5} -le 12 ] || exit 0
	case $1 in
	held) echo "hold $2 $3 $4 $5" ;;
	lifted) echo "lifted $2 $3 $4 $5" ;;
	esac
)

lease_write() {
	if printf '%s %s %s %s\n' "$holder_host" "$holder_run" "$1" "$2" >".lease/holder.new" && mv -f .lease/holder.new .lease/holder; then
		return 0
	fi
	rm -f .lease/holder.new
	# sh's printf says only "I/O error": a full disk is named, it is what the operator must act on.
	[ "$(free_kb)" = 0 ] && die "cannot write $ROOT/.lease/holder: No space left on device"
	die "cannot write $ROOT/.lease/holder"
}

verb=${1:-}
[ $# -gt 0 ] && shift

case $verb in
status)
	no_more_than 0 "$@"
	if live=$(live_cut); then
		echo "live $live"
	elif notice=$(live_notice) && [ -f "notices/$notice/aviso.json" ]; then
		echo "notice $notice"
	elif [ -e current ] || [ -L current ]; then
		echo "current-invalid"
	fi
	if [ -d releases ]; then
		for r in releases/*; do
			[ -d "$r" ] && [ ! -L "$r" ] && is_cut "${r#releases/}" && echo "release ${r#releases/}"
		done
	fi
	echo "free $(free_kb)"
	echo "protocol $HELPER_PROTOCOL"
	echo "rsync $(rsync --version 2>/dev/null | sed -n '1s/^rsync *version *\([^ ]*\).*/\1/p')"
	if [ -w . ]; then echo 'writable yes'; else echo 'writable no'; fi
	;;

throughput)
	# preflight's timed transfer: stdin lands in a file under .staging (never served) and is removed at once.
	if [ -L .staging ] || { [ -e .staging ] && [ ! -d .staging ]; }; then die '.staging is not a directory'; fi
	no_more_than 0 "$@"
	mkdir -p .staging || die "cannot create $ROOT/.staging"
	f=".staging/.throughput.$$"
	# preflight --probe-mb sends at most 64 MiB; one byte more is read only to know it was more.
	if ! head -c $((THROUGHPUT_MAX_BYTES + 1)) >"$f"; then
		rm -f "$f"
		die "cannot write under $ROOT/.staging"
	fi
	n=$(wc -c <"$f")
	rm -f "$f"
	[ "$n" -le "$THROUGHPUT_MAX_BYTES" ] || die "refused: throughput takes at most $THROUGHPUT_MAX_BYTES bytes (preflight --probe-mb 64)"
	echo "received $n"
	;;

prepare | inspect)
	no_more_than 4 "$@"
	need_cut "${1:-}"
	cut=$1
	stage= incoming=
	case ${2:-} in
	'') ;;
	--stage) [ "$verb" = prepare ] && stage=1 || die 'refused: inspect --stage' ;;
	*) die "refused: $verb $cut ${2:-}" ;;
	esac
	# --incoming TOKEN: this run's transfer may already be writing .staging/<cut>.in-TOKEN/; it is spared.
	case ${3:-} in
	'') ;;
	--incoming) need_token "${4:-}" && incoming="$cut.in-$4" ;;
	*) die "refused: $verb $cut $2 $3" ;;
	esac
	if [ "$verb" = prepare ]; then
		for d in releases .staging; do
			if [ -L "$d" ] || { [ -e "$d" ] && [ ! -d "$d" ]; }; then die "$d is not a directory"; fi
			[ -d "$d" ] || mkdir -p "$d" || die "cannot create $ROOT/$d"
		done
		# Leftovers of an interrupted run: nothing in staging is ever served. Tests are builtins: every run
		# (cron's no-op included) comes through here, and each process costs more than the check.
		if [ -n "$incoming" ]; then
			for f in .staging/* .staging/.[!.]* .staging/..?*; do
				if [ "$f" != ".staging/$incoming" ] && { [ -e "$f" ] || [ -L "$f" ]; }; then rm -rf "$f" || die 'cannot clean .staging'; fi
			done
		elif ! empty_dir .staging; then
			rm -rf .staging && mkdir .staging || die 'cannot clean .staging'
		fi
		if [ -e .current.new ] || [ -L .current.new ]; then rm -f .current.new; fi
	fi
	# --stage: stdin is the new cut's manifest (and signature) under their marker lines, as for link.
	manifest=".staging/.manifest.$cut" sig=".staging/.sig.$cut"
	if [ -n "$stage" ]; then
		read_manifest "$manifest" "$sig"
	fi
	if live=$(live_cut) && [ -d "releases/$live" ]; then echo "live $live"; else live=; fi
	# A builtin test first: a difusor never rolled back (most, most nights) costs no subshell here.
	if [ -f .lease/hold ]; then hold_line; fi
	if [ -d "releases/$cut" ] && [ ! -L "releases/$cut" ]; then
		base=$cut
	elif [ -n "$live" ]; then
		base=$live
	else
		# Nothing live to share files with (the notice of a suspension, a current removed): the newest release
		# kept here serves as well, so a reinstated difusor gets what changed since it, not the whole cut.
		base=$(releases_newest_first | head -n 1)
	fi
	echo "free $(free_kb)"
	if [ -n "$base" ]; then
		echo "base $base"
		if [ -f "releases/$base/MANIFEST.sha256" ] && [ ! -L "releases/$base/MANIFEST.sha256" ]; then
			echo "manifest $(sha256sum <"releases/$base/MANIFEST.sha256" | cut -c1-64)"
		fi
	fi
	if [ -n "$stage" ] && [ "$base" != "$cut" ] && [ -f "$manifest" ]; then
		# A new release: its staging is built here, in the same round trip, holding every file of the base whose
		# hash the base's manifest and the new one agree on (hard links: no bytes, no time), and the new
		# manifest. What follows is the staging's inventory, not the base's: the client sends whatever it lacks.
		if [ -n "$base" ]; then
			old="releases/$base/MANIFEST.sha256"
			[ -f "$old" ] && [ ! -L "$old" ] || old=/dev/null
			inventory "releases/$base" | awk -v old="$old" -v new="$manifest" '
				function load(file, into,    line) {
					while ((getline line < file) > 0)
						if (line ~ /^[0-9a-f]+  / && length(line) > 66 && substr(line, 65, 2) == "  ") into[substr(line, 67)] = substr(line, 1, 64)
					close(file)
				}
				BEGIN { load(old, was); load(new, now) }
				/^f / { p = $0; sub(/^f [0-9]+ /, "", p); if ((p in now) && (p in was) && now[p] == was[p]) next; print p; next }
				/^o / { print substr($0, 3) }' >".staging/.drop.$cut" || die "cannot plan the staging of $cut from releases/$base"
			link_staging "$cut" "$base" ".staging/.drop.$cut"
		else
			mkdir ".staging/$cut" || die "cannot create staging for $cut"
		fi
		place_manifest "$cut" "$manifest" "$sig"
		echo "staged $cut"
		inventory ".staging/$cut"
	else
		if [ -n "$stage" ]; then rm -f "$manifest" "$sig"; fi
		if [ -n "$base" ]; then inventory "releases/$base"; fi
	fi
	;;

link)
	# A release rebuilt in place (repair): its staging from the release itself, minus what changed.
	no_more_than 2 "$@"
	need_cut "${1:-}"
	cut=$1
	base=${2:--}
	[ "$base" = - ] || need_cut "$base"
	[ ! -e ".staging/$cut" ] || die "staging for $cut already exists"
	# stdin: the paths to drop from the linked copy (changed, removed, or not a regular file); then the manifest
	# and its signature under their marker lines.
	drop=".staging/.drop.$cut" manifest=".staging/.manifest.$cut" sig=".staging/.sig.$cut"
	read_manifest "$manifest" "$sig" "$drop"
	if [ "$base" = - ]; then
		need_inside_paths "$cut" "$drop"
		mkdir ".staging/$cut" || die "cannot create staging for $cut"
		rm -f "$drop"
	else
		link_staging "$cut" "$base" "$drop"
	fi
	place_manifest "$cut" "$manifest" "$sig"
	;;

rsync)
	# The receiving end of difusion's own transfer, and nothing else. A whitelist, as rsync's support/rrsync: rsync has
	# well over a hundred options and more with each release; only what difusion's client writes on the server's
	# command line passes (rsync 3.1 to 3.5, from options.c server_options(); --chmod, --files-from, --info and
	# --skip-compress are applied by the sending client and never reach it):
	#     rsync --server -WtprI[R][z]e.<capabilities> [--timeout=N] [--stats] [--new-compress|--old-compress] . .staging/<cut>[.in-<token>]/
	[ "${1:-}" = --server ] || die 'refused: rsync must run as --server'
	shift
	checked=
	while [ $# -gt 0 ]; do
		a=$1
		case $a in
		# Daemon mode reads a config of the caller's choosing (uid, path, read only = no): a write anywhere the
		# account can, authorized_keys included. Refused by name, so the refusal says why.
		--daemon | --daemon=* | --config=* | --dparam=*) die "refused: rsync $a: daemon mode never runs through this account" ;;
		--config | --dparam) die "refused: rsync $a ${2:-}: daemon mode never runs through this account" ;;
		--sender | --sender=*) die "refused: rsync $a" ;;
		--timeout=*)
			case ${a#--timeout=} in
			'' | *[!0-9]*) die "refused: rsync $a: the timeout must be a number of seconds" ;;
			esac
			[ ${#a} -le 16 ] || die "refused: rsync $a: the timeout must be a number of seconds"
			;;
		--stats | --new-compress | --old-compress) ;;
		--*) die "refused: rsync $a" ;;
		-?*) rsync_short_options "$a" ;;
		.) break ;;
		*) die "refused: rsync $a: the receiving end's first argument is always '.'" ;;
		esac
		checked="$checked $a"
		shift
	done
	[ "${1:-}" = . ] || die 'refused: rsync without its source argument .'
	[ $# -eq 2 ] || die "refused: rsync $*: exactly one destination follows '.'"
	dest=$2
	# Only into a cut's staging, which holds hard links to the live release: rsync must replace a file by
	# renaming a new one over it (its default), never write into one (--inplace, --append). Or into this run's
	# incoming directory, sent while prepare builds the staging (verify merges it in).
	case $dest in
	.staging/*.in-*/) cut=${dest#.staging/} cut=${cut%.in-*/} token=${dest##*.in-} token=${token%/} ;;
	.staging/*/) cut=${dest#.staging/} cut=${cut%/} token= ;;
	*) die "refused: rsync into $dest" ;;
	esac
	need_cut "$cut"
	if [ -n "$token" ]; then
		need_token "$token"
		if [ -L .staging ] || { [ -e .staging ] && [ ! -d .staging ]; }; then die '.staging is not a directory'; fi
		# Before prepare may have made it: mkdir -p is at peace with prepare making it at the same moment.
		mkdir -p .staging || die "cannot create $ROOT/.staging"
		[ ! -L ".staging/$cut.in-$token" ] || die "refused: .staging/$cut.in-$token is a symlink"
	else
		[ ! -L .staging ] && [ ! -L ".staging/$cut" ] || die "refused: .staging or .staging/$cut is a symlink"
		[ -d ".staging/$cut" ] || die "no staging for $cut"
	fi
	# The client applies --chmod=D755,F644 before sending; the receiver applies it again, so a sender of its own
	# making cannot leave a setuid or world-writable file in the served tree (-p keeps the modes it is sent).
	# Every word in $checked passed the whitelist above: letters, digits, '.', '-' and '=', nothing to split or glob.
	set -f
	# shellcheck disable=SC2086
	exec rsync --server --chmod=D755,F644 $checked "$@"
	;;

verify)
	no_more_than 3 "$@"
	need_cut "${1:-}"
	cut=$1
	[ -d ".staging/$cut" ] || die "no staging for $cut"
	case ${2:-} in
	'') ;;
	--incoming)
		# What was sent into this run's incoming directory while prepare built the staging: merged in by hard
		# links (a sent file replaces, by a new link, the linked one: the live release's inode is not written).
		need_token "${3:-}"
		in=".staging/$cut.in-$3"
		if [ -d "$in" ] && [ ! -L "$in" ]; then
			cp -alf "$in/." ".staging/$cut/" && rm -rf "$in" || die "cannot merge what was sent into staging for $cut"
		fi
		;;
	*) die "refused: verify $cut ${2:-}" ;;
	esac
	# stdin: sha256sum lines for every file sent in this run; linked files were verified when first sent.
	checks=".staging/.checks.$cut"
	read_checks "$checks"
	out=$(cd ".staging/$cut" && sha256sum -c --quiet --strict - 2>&1 <"../../$checks")
	echo "check $?"
	rm -f "$checks"
	[ -n "$out" ] && printf '%s\n' "$out" | sed 's/^/x /'
	signature ".staging/$cut"
	inventory ".staging/$cut"
	;;

audit)
	# Checks a published release in place: stdin holds sha256sum lines (the manifest's own line, or every file).
	need_cut "${1:-}"
	cut=$1
	no_more_than 1 "$@"
	[ -d "releases/$cut" ] && [ ! -L "releases/$cut" ] || die "releases/$cut is not there"
	if [ -L .staging ] || { [ -e .staging ] && [ ! -d .staging ]; }; then die '.staging is not a directory'; fi
	mkdir -p .staging || die "cannot create $ROOT/.staging"
	checks=".staging/.checks.audit.$$"
	read_checks "$checks"
	if live=$(live_cut); then echo "live $live"; fi
	out=$(cd "releases/$cut" && sha256sum -c --quiet --strict - 2>&1 <"../../$checks")
	echo "check $?"
	rm -f "$checks"
	[ -n "$out" ] && printf '%s\n' "$out" | sed 's/^/x /'
	inventory "releases/$cut"
	;;

logs)
	# Read-only, for the memoria técnica: the access logs matching the registry's access_log glob.
	#   logs list GLOB                 "f SIZE INODE MTIME PATH" per regular file the glob matches
	#   logs send GLOB FILE OFFSET     FILE's bytes from OFFSET (0-based) to its end
	#   logs sum GLOB FILE OFFSET LEN  sha256 of LEN bytes of FILE from OFFSET (to check a copy before resuming it)
	# Arguments are plain tokens: '*', '?', ' ' and '=' travel as =2A, =3F, =20 and =3D.
	sub=${1:-}
	case $sub in
	list) no_more_than 2 "$@" ;;
	send) no_more_than 4 "$@" ;;
	*) no_more_than 5 "$@" ;;
	esac
	glob=$(logs_decode "${2:-}")
	case $glob in
	/*) ;;
	*) die "refused: logs glob must be an absolute path: $glob" ;;
	esac
	# The glob comes from the client: on a restricted account only the one the admin pinned in
	# authorized_keys (command="DIFUSION_ACCESS_LOG='/var/log/httpd/prep*' sh .../difusion-helper ROOT"),
	# or the account would read any file it can (/etc/passwd as a glob of its own).
	if [ -n "$restricted" ]; then
		[ -n "${DIFUSION_ACCESS_LOG:-}" ] || die "refused: this restricted account pins no access log; the difusor's admin adds DIFUSION_ACCESS_LOG='$glob' before the command in authorized_keys"
		[ "$glob" = "$DIFUSION_ACCESS_LOG" ] || die "refused: $glob is not the access log this account pins ($DIFUSION_ACCESS_LOG); set the registry's access_log to it or ask the difusor's admin to change DIFUSION_ACCESS_LOG in authorized_keys"
	fi
	case $sub in
	list)
		logs_matches "$glob" | while IFS= read -r f; do
			printf 'f %s %s\n' "$(stat -L -c '%s %i %Y' -- "$f")" "$f"
		done
		;;
	send | sum)
		file=$(logs_decode "${3:-}")
		offset=${4:-}
		need_count offset "$offset"
		# Only a file the glob matches: never any other path this account can read.
		logs_matches "$glob" | grep -Fqx -- "$file" || die "refused: $file is not one of the logs $glob matches"
		if [ "$sub" = send ]; then
			exec tail -c +$((offset + 1)) -- "$file"
		fi
		len=${5:-}
		need_count length "$len"
		tail -c +$((offset + 1)) -- "$file" | head -c "$len" | sha256sum | cut -c1-64
		;;
	*) die "refused: logs ${sub:-(none)}" ;;
	esac
	;;

promote)
	no_more_than 1 "$@"
	need_cut "${1:-}"
	cut=$1
	[ -d ".staging/$cut" ] || die "no staging for $cut"
	if [ ! -e "releases/$cut" ] && [ ! -L "releases/$cut" ]; then
		mv ".staging/$cut" "releases/$cut" || die "cannot move staging into releases/$cut"
		echo "promoted $cut"
		exit 0
	fi
	[ -d "releases/$cut" ] && [ ! -L "releases/$cut" ] || die "releases/$cut is not a directory"
	# Repair of an existing release in place: each file is replaced by a rename, so a visitor gets
	# either the old or the verified bytes, never a partial file.
	while IFS= read -r line; do
		p=${line#? }
		is_inside "$p" || die "refused path: $p"
		case $line in
		'M '*)
			dir=$(dirname "releases/$cut/$p")
			mkdir -p "$dir" && mv -f ".staging/$cut/$p" "releases/$cut/$p" || die "cannot replace $p"
			;;
		'D '*) rm -rf -- "releases/$cut/$p" || die "cannot remove $p" ;;
		*) die "refused promote line: $line" ;;
		esac
	done
	rm -rf ".staging/$cut"
	echo "repaired $cut"
	;;

switch)
	no_more_than 2 "$@"
	need_cut "${1:-}"
	cut=$1
	case ${2:-} in
	'' | --lift-notice) ;;
	*) die "refused: switch $cut ${2:-}" ;;
	esac
	[ -d "releases/$cut" ] && [ ! -L "releases/$cut" ] || die "releases/$cut is not there"
	if [ -e current ] && [ ! -L current ]; then die 'current is not a symlink; refusing to replace it'; fi
	# A suspended difusor keeps its notice whatever a publish or rollback asks; only reinstate lifts it.
	if notice=$(live_notice) && [ "${2:-}" != --lift-notice ]; then
		die "current shows the notice notices/$notice: the difusor is suspended; only difusion reinstate replaces it"
	fi
	rm -f .current.new
	ln -s "releases/$cut" .current.new || die 'cannot create the new symlink'
	# rename(2) of a symlink over current: Apache sees the old or the new cut, never neither.
	mv -T .current.new current || die 'cannot switch current'
	echo "live $(readlink current)"
	;;

notice-put)
	# One file of a notice into its staging directory; stdin is the file.
	no_more_than 2 "$@"
	need_stamp "${1:-}"
	stamp=$1
	case ${2:-} in
	index.html | aviso.json | MANIFEST.sha256) ;;
	*) die "refused: notice-put ${2:-}" ;;
	esac
	for d in notices .staging; do
		if [ -L "$d" ] || { [ -e "$d" ] && [ ! -d "$d" ]; }; then die "$d is not a directory"; fi
		mkdir -p "$d" || die "cannot create $ROOT/$d"
	done
	mkdir -p ".staging/notice-$stamp" || die "cannot create staging for notice $stamp"
	cat >".staging/notice-$stamp/$2.tmp" && mv -f ".staging/notice-$stamp/$2.tmp" ".staging/notice-$stamp/$2" || die "cannot write $2"
	;;

notice-switch)
	# The staged notice, checked against its manifest, moved into notices/ and switched in like a cut.
	no_more_than 1 "$@"
	need_stamp "${1:-}"
	stamp=$1
	staged=".staging/notice-$stamp"
	if [ -d "$staged" ]; then
		for f in index.html aviso.json MANIFEST.sha256; do
			[ -f "$staged/$f" ] || die "the staged notice $stamp lacks $f"
		done
		need_plain_checks "$staged/MANIFEST.sha256"
		(cd "$staged" && sha256sum -c --quiet --strict MANIFEST.sha256 >/dev/null 2>&1) || die "the staged notice $stamp does not match its MANIFEST.sha256"
		if [ -e "notices/$stamp" ] || [ -L "notices/$stamp" ]; then
			[ "$(live_notice)" != "$stamp" ] || die "notices/$stamp is live; stage the new notice under another stamp"
			rm -rf "notices/$stamp" || die "cannot replace notices/$stamp"
		fi
		mv "$staged" "notices/$stamp" || die "cannot move the notice into notices/$stamp"
	fi
	[ -d "notices/$stamp" ] && [ ! -L "notices/$stamp" ] || die "notices/$stamp is not there"
	[ -f "notices/$stamp/aviso.json" ] && [ -f "notices/$stamp/index.html" ] || die "notices/$stamp is not a whole notice"
	if [ -e current ] && [ ! -L current ]; then die 'current is not a symlink; refusing to replace it'; fi
	rm -f .current.new
	ln -s "notices/$stamp" .current.new || die 'cannot create the new symlink'
	# The same rename as a cut's switch: a visitor sees the cut or the notice, never neither.
	mv -T .current.new current || die 'cannot switch current'
	echo "live $(readlink current)"
	;;

discard)
	# What a failed run wrote into staging, and only that, so a full disk is freed before the run ends:
	#   discard CUT [TOKEN]      .staging/CUT, .staging/CUT.in-TOKEN, and the manifest, signature and drop list read for CUT
	#   discard --notice STAMP   .staging/notice-STAMP
	# Releases, notices and current are never touched; a run killed before this is cleaned by the next prepare.
	[ $# -le 2 ] || die "refused: discard $*"
	if [ "${1:-}" = --notice ]; then
		need_stamp "${2:-}"
		set -- ".staging/notice-$2"
	else
		need_cut "${1:-}"
		cut=$1
		token=${2:-}
		[ -z "$token" ] || need_token "$token"
		set -- ".staging/$cut" ".staging/.manifest.$cut" ".staging/.sig.$cut" ".staging/.drop.$cut" ${token:+".staging/$cut.in-$token"}
	fi
	[ -d .staging ] && [ ! -L .staging ] || exit 0
	# A receiver whose client was stopped may write its last file for a moment more: removed again until none is left.
	tries=0
	while :; do
		left=
		for f in "$@"; do
			if [ -e "$f" ] || [ -L "$f" ]; then
				rm -rf -- "$f" 2>/dev/null
				if [ -e "$f" ] || [ -L "$f" ]; then left="$left $f"; else echo "discarded ${f#.staging/}"; fi
			fi
		done
		[ -z "$left" ] && break
		tries=$((tries + 1))
		[ "$tries" -lt 10 ] || die "cannot remove$left"
		sleep 1
	done
	;;

prune)
	no_more_than 1 "$@"
	keep=${1:-}
	need_count keep "$keep"
	live=$(live_cut) || live=
	cuts=$(releases_newest_first)
	i=0
	for n in $cuts; do
		i=$((i + 1))
		[ "$i" -le "$keep" ] && continue
		[ "$n" = "$live" ] && continue
		rm -rf "releases/$n" && echo "pruned $n"
	done
	# What a transfer sent on a guess that proved useless (the release was there already), stopped before this
	# prune; a receiver still finishing may leave some behind, for the next prepare to clear (never merged).
	for d in .staging/*.in-*; do
		if [ -d "$d" ] && [ ! -L "$d" ]; then rm -rf "$d"; fi
	done
	# A notice is only ever needed while it is live: one lifted by reinstate goes with the next prune.
	notice=$(live_notice) || notice=
	if [ -d notices ]; then
		for r in notices/*; do
			n=${r#notices/}
			[ -d "$r" ] && [ ! -L "$r" ] && [ "$n" != "$notice" ] || continue
			case $n in
			[0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9]_[0-9][0-9][0-9][0-9][0-9][0-9]) rm -rf "$r" && echo "pruned notices/$n" ;;
			esac
		done
	fi
	;;

lease)
	# One run at a time on this difusor, whichever publication host it comes from (the alternate site):
	#   lease take HOST RUN SECONDS [DEAD|--host-lock]   hold it for SECONDS more; free, expired or already ours, or
	#                                   held by DEAD, a run of the same HOST that host knows died (its lock said so), or
	#                                   with --host-lock by any other run of the same HOST (the client holds that host's lock)
	#   lease renew HOST RUN SECONDS    only while HOST RUN still holds it
	#   lease release HOST RUN          only by its holder
	#   lease show [SECONDS]            who holds it (a claim counted as at most SECONDS ahead); writes nothing
	# Answers: "now N", then "held HOST RUN SINCE EXPIRY", "expired HOST RUN SINCE EXPIRY" (show: a dead holder's,
	# the next take takes it over), "free", "taken SINCE EXPIRY", "takeover HOST RUN SINCE EXPIRY"
	# (an expired lease taken over), "renewed SINCE EXPIRY", "lost ...", "released", "not-held". Times are this
	# difusor's own clock (date +%s): the hosts' clocks may differ, the expiry is reckoned here.
	sub=${1:-}
	case $sub in
	show) no_more_than 2 "$@" ;;
	release) no_more_than 3 "$@" ;;
	take) no_more_than 5 "$@" ;;
	renew) no_more_than 4 "$@" ;;
	*) die "refused: lease ${sub:-(none)}" ;;
	esac
	if [ "$sub" != show ]; then
		need_lease_name host "${2:-}"
		need_lease_name run "${3:-}"
		holder_host=$2 holder_run=$3
	fi
	if [ "$sub" = take ] || [ "$sub" = renew ]; then
		need_count seconds "${4:-}"
		[ "$4" -ge 1 ] && [ "$4" -le "$LEASE_MAX_S" ] || die "lease seconds must be 1 to $LEASE_MAX_S: $4"
		lease_s=$4
		dead_run=
		own_host=
		# --host-lock: the client holds its host's lock (one run at a time per host), so any other run of the same
		# host holding a lease here is over (killed, or gone with its link) and its lease is taken over at once.
		if [ "${5:-}" = --host-lock ]; then own_host=1; elif [ -n "${5:-}" ]; then need_lease_name run "$5" && dead_run=$5; fi
	elif [ "$sub" = show ] && [ -n "${2:-}" ]; then
		need_count seconds "$2"
		lease_s=$2
	else
		lease_s=$LEASE_MAX_S
	fi
	if [ -L .lease ] || { [ -e .lease ] && [ ! -d .lease ]; }; then die '.lease is not a directory'; fi
	if [ "$sub" != show ]; then
		mkdir -p .lease || die "cannot create $ROOT/.lease"
		lease_lock
	fi
	now=$(date +%s)
	echo "now $now"
	current_lease "$lease_s" "$now"
	case $sub in
	show)
		if [ -n "$l_host" ]; then echo "held $l_host $l_run $l_since $l_expiry"
		elif [ -n "$l_expired" ]; then echo "expired $l_expired"
		else echo free; fi
		;;
	take)
		since=$now
		if [ -n "$l_host" ] && [ "$l_host" = "$holder_host" ] && [ "$l_run" = "$holder_run" ]; then
			since=$l_since
		elif [ -n "$l_host" ] && [ "$l_host" = "$holder_host" ] && { [ -n "$own_host" ] || { [ -n "$dead_run" ] && [ "$l_run" = "$dead_run" ]; }; }; then
			echo "takeover $l_host $l_run $l_since $l_expiry"
		elif [ -n "$l_host" ]; then
			lease_unlock
			echo "held $l_host $l_run $l_since $l_expiry"
			exit 0
		elif [ -n "$l_expired" ]; then
			echo "takeover $l_expired"
		fi
		lease_write "$since" $((now + lease_s))
		echo "taken $since $((now + lease_s))"
		;;
	renew)
		# An expired lease nobody took is still ours to renew; one another run holds or took is lost.
		if [ "$l_host" = "$holder_host" ] && [ "$l_run" = "$holder_run" ]; then
			lease_write "$l_since" $((now + lease_s))
			echo "renewed $l_since $((now + lease_s))"
		elif [ -z "$l_host" ] && [ "$l_expired_host" = "$holder_host" ] && [ "$l_expired_run" = "$holder_run" ]; then
			lease_write "$l_expired_since" $((now + lease_s))
			echo "renewed $l_expired_since $((now + lease_s))"
		elif [ -n "$l_host" ]; then
			echo "lost $l_host $l_run $l_since $l_expiry"
		else
			echo 'lost'
		fi
		;;
	release)
		if [ "$l_host" = "$holder_host" ] && [ "$l_run" = "$holder_run" ] ||
			{ [ -z "$l_host" ] && [ "$l_expired_host" = "$holder_host" ] && [ "$l_expired_run" = "$holder_run" ]; }; then
			rm -f .lease/holder || die 'cannot release the lease'
			echo released
		else
			echo not-held
		fi
		;;
	esac
	[ "$sub" = show ] || lease_unlock
	;;

hold)
	# A rollback's hold, where every publication host sees it (a publish --latest leaves a held difusor alone):
	#   hold set CUT HOST RUN    held on CUT by that rollback run, which must hold this difusor's lease
	#   hold clear HOST RUN      lifted by that publish-by-name run, which must hold the lease; "lifted ..." stays
	#   hold show                the hold or its lifted trace; writes nothing
	# Answers: "now N", then "hold CUT HOST RUN SINCE", "lifted CUT HOST RUN SINCE" or "none".
	sub=${1:-}
	case $sub in
	show) no_more_than 1 "$@" ;;
	set)
		no_more_than 4 "$@"
		need_cut "${2:-}"
		# Only on a release this difusor holds: the client holds a difusor only on the release it switches it to.
		[ -d "releases/$2" ] && [ ! -L "releases/$2" ] || die "refused: hold set $2: releases/$2 is not a release here"
		shift
		;;
	clear) no_more_than 3 "$@" ;;
	*) die "refused: hold ${sub:-(none)}" ;;
	esac
	if [ "$sub" != show ]; then
		need_lease_name host "${2:-}"
		need_lease_name run "${3:-}"
	fi
	if [ -L .lease ] || { [ -e .lease ] && [ ! -d .lease ]; }; then die '.lease is not a directory'; fi
	now=$(date +%s)
	echo "now $now"
	if [ "$sub" = show ]; then
		out=$(hold_line)
		echo "${out:-none}"
		exit 0
	fi
	[ -d .lease ] || die "refused: hold $sub by $2 $3, which does not hold the lease"
	lease_lock
	current_lease "$LEASE_MAX_S" "$now"
	[ "$l_host" = "$2" ] && [ "$l_run" = "$3" ] || die "refused: hold $sub by $2 $3, which does not hold the lease"
	if [ "$sub" = set ]; then
		printf 'held %s %s %s %s\n' "$1" "$2" "$3" "$now" >.lease/hold.new && mv -f .lease/hold.new .lease/hold || die "cannot write $ROOT/.lease/hold"
	else
		held=$(hold_line)
		case $held in
		'hold '*)
			set -f
			# shellcheck disable=SC2086
			set -- $held "$2" "$3"
			set +f
			printf 'lifted %s %s %s %s\n' "$2" "$6" "$7" "$now" >.lease/hold.new && mv -f .lease/hold.new .lease/hold || die "cannot write $ROOT/.lease/hold"
			;;
		esac
	fi
	out=$(hold_line)
	lease_unlock
	echo "${out:-none}"
	;;

*)
	die "refused: unknown verb ${verb:-(none)}"
	;;
esac
