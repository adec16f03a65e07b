# SPDX-License-Identifier: GPL-2.0
# shellcheck shell=bash # sourced by the bash scripts of scripts/
# Common environment for the rsva scripts: where the cache lives and how the
# kernel's make is called. Sourced, never run.

RSVA_TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RSVA_CACHE=${RSVA_CACHE:-$HOME/.cache/rsva}
RSVA_OUT=${RSVA_OUT:-$RSVA_TOP/out}
export RSVA_TOP RSVA_CACHE RSVA_OUT

export PATH=/usr/lib/llvm-19/bin:$PATH
export LIBCLANG_PATH=/usr/lib/llvm-19/lib
RSVA_JOBS=${RSVA_JOBS:-3}

# The arguments every kernel make (tree or external module) gets.
# shellcheck disable=SC2034 # used by the scripts that source this file
KMAKE_ARGS=(LLVM=1 RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc
	    BINDGEN="$RSVA_CACHE/tools/bin/bindgen")

log() { echo "rsva: $*"; }
die() { echo "rsva: error: $*" >&2; exit 1; }

# timed LABEL CMD...: run CMD, then say how long LABEL took.
timed() {
	local label=$1 t0=$SECONDS
	shift
	log "$label ..."
	"$@"
	log "$label took $((SECONDS - t0)) s"
}

# build_for_vm PLAN: the kernel (cache or KDIR=), the modules, the selftests
# and the initramfs of vm/PLAN-plan.sh: everything a VM run needs.
build_for_vm() {
	"$RSVA_TOP/scripts/kernel.sh"
	"$RSVA_TOP/scripts/build.sh" modules
	"$RSVA_TOP/scripts/build.sh" selftests
	"$RSVA_TOP/scripts/build.sh" initramfs "$1"
}

# Load the kernel location written by scripts/kernel.sh (or by KDIR=):
# KBUILD (the tree make -C is pointed at), KSRC (its sources), KHDR
# (installed uapi headers).
load_kernel_env() {
	[ -f "$RSVA_OUT/kernel.env" ] || die "no kernel: run 'make kernel' first"
	# shellcheck source=/dev/null
	. "$RSVA_OUT/kernel.env"
}
