#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# 'make run': build what is needed and boot the VM with the modules loaded,
# showing what the run plan (vm/run-plan.sh) prints as it happens.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

build_for_vm run
"$RSVA_TOP/scripts/vm.sh" run --follow
log "kernel log: $RSVA_OUT/vm-run/console.log"
