# SPDX-License-Identifier: GPL-2.0
# shellcheck shell=dash # sourced by /init, run by busybox sh (dash's dialect)
#
# TAP for the shell steps of a VM plan, in the kselftest format that
# scripts/verdict.py reads: each group is framed by
# "=== RSVA-TAP <group> BEGIN" and "=== RSVA-TAP <group> END rc=<n>".

tap_begin() {
	TAP_GROUP=$1
	TAP_N=0
	TAP_FAILED=0
	echo "=== RSVA-TAP $TAP_GROUP BEGIN"
	echo "TAP version 13"
}

tap_ok() {
	TAP_N=$((TAP_N + 1))
	echo "ok $TAP_N $*"
}

tap_fail() {
	TAP_N=$((TAP_N + 1))
	TAP_FAILED=1
	echo "not ok $TAP_N $*"
}

tap_skip() {
	local name=$1
	shift
	TAP_N=$((TAP_N + 1))
	echo "ok $TAP_N $name # SKIP $*"
}

# tap_check NAME CMD...: one case that passes when CMD succeeds.
tap_check() {
	local name=$1
	shift
	if "$@"; then tap_ok "$name"; else tap_fail "$name"; fi
}

tap_end() {
	echo "1..$TAP_N"
	echo "=== RSVA-TAP $TAP_GROUP END rc=$TAP_FAILED"
}

# run_selftest BIN [LABEL [ARG...]]: run one kselftest binary, framed for
# the verdict; LABEL tells runs of one binary apart (reported as
# BIN@LABEL); ARGs go to the binary (e.g. -T TEST to leave a test out).
run_selftest() {
	local bin=$1 name
	name=$(basename "$1")${2:+@$2}
	shift
	if [ $# -gt 0 ]; then shift; fi
	run_framed TAP "$name" "$bin" "$@"
}

# run_raw BIN LABEL [ARG...]: run a kselftest binary whose results are not
# counted as they are but compared with another run's (the kernel's
# hmm-tests against test_hmm and against rsva, scripts/hmm_compare.py):
# framed as RSVA-RAW, which scripts/verdict.py leaves to the comparison.
run_raw() {
	local bin=$1 name
	name=$(basename "$1")@$2
	shift 2
	run_framed RAW "$name" "$bin" "$@"
}

# run_framed KIND NAME BIN [ARG...]: runs BIN between "=== RSVA-KIND NAME
# BEGIN" and "=== RSVA-KIND NAME END rc=<n>". Each line it prints starts
# with the uptime ("[SECONDS] ", as the kernel's; the verdict strips it),
# so the log gives the time of each case; the time of the whole run is a
# TAP comment.
run_framed() {
	local kind=$1 name=$2 rc t0
	shift 2
	t0=$(cut -d. -f1 /proc/uptime)
	echo "=== RSVA-$kind $name BEGIN"
	{ "$@"; echo $? >/tmp/run_framed.rc; } 2>&1 | stamp
	rc=$(cat /tmp/run_framed.rc)
	echo "# $name took $(($(cut -d. -f1 /proc/uptime) - t0)) s"
	echo "=== RSVA-$kind $name END rc=$rc"
}

# stamp: copies standard input, each line preceded by "[UPTIME] ".
stamp() {
	awk '{
		getline up < "/proc/uptime"; close("/proc/uptime")
		split(up, f, " "); printf "[%s] %s\n", f[1], $0; fflush() }'
}

# load_module NAME: modprobe an in-tree module, reporting the errno text.
load_module() {
	# shellcheck disable=SC2034 # read by the plans that source this file
	LOAD_ERR=$(modprobe "$1" 2>&1)
}

# want PART: whether the plan runs PART; every part unless
# 'make check T="PART ..."' named some (the names are those of check-plan.sh).
want() {
	local only
	only=$(cat /plan.only 2>/dev/null)
	[ -z "$only" ] && return 0
	case " $only " in *" $1 "*) return 0 ;; esac
	return 1
}
