#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# 'make check': from nothing to a verdict. Installs the toolchain, provides
# the kernel (cache or KDIR=), builds the modules and the selftests, boots
# the test VM and judges its logs. The last line printed is the verdict's
# "N passed, N failed, N skipped"; the exit status is non-zero when red.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
t0=$SECONDS

if ! out=$(python3 "$RSVA_TOP/scripts/verdict_test.py" 2>&1); then
	echo "$out"
	die "the verdict parser fails its own tests"
fi
log "verdict parser self-test: $(echo "$out" | grep -E '^Ran ')"

build_for_vm check
"$RSVA_TOP/scripts/build.sh" lint
"$RSVA_TOP/scripts/vm.sh" check
log "check took $((SECONDS - t0)) s; logs in $RSVA_OUT/vm-check/"
exec python3 "$RSVA_TOP/scripts/verdict.py" "$RSVA_OUT/vm-check"
