#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# 'make bench': boot one VM that runs every benchmark side by side
# (vm/bench-plan.sh), print the figures, keep them as JSON in
# out/bench.json and plot how the costs grow in out/bench.png.
# 'make bench T="part ..."' runs only those parts of the plan (no plot:
# it needs the sva and mirror parts).
#
# The benchmarks run on a kernel built without the debugging options of
# 'make check' (.config.release: no KASAN, lockdep, kmemleak or debug
# objects), cached as the check's kernel is, with its own modules in
# out/release/; 'make bench BENCH_KERNEL=debug' runs them on the check's
# kernel, in out/.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

case "${BENCH_KERNEL:-release}" in
release)
	RSVA_KERNEL=release
	RSVA_OUT=$RSVA_OUT/release
	export RSVA_KERNEL RSVA_OUT
	;;
debug) ;;
*) die "BENCH_KERNEL=$BENCH_KERNEL: release or debug" ;;
esac
log "benchmarks on the ${BENCH_KERNEL:-release} kernel, in $RSVA_OUT"
build_for_vm bench
"$RSVA_TOP/scripts/vm.sh" bench
log=$RSVA_OUT/vm-bench/user.log
tr -d '\r' <"$log" | sed -n '/=== RSVA-BENCH BEGIN/,/=== RSVA-BENCH END/p' | grep '^bench: ' | sed 's/^bench: /  /'
tr -d '\r' <"$log" | sed -n 's/^bench-json: //p' |
	python3 -c 'import json, sys; d = {}; [d.update(json.loads(l)) for l in sys.stdin]; print(json.dumps(d, indent=1))' \
	>"$RSVA_OUT/bench.json"
grep -q '=== RSVA-BENCH END rc=0' <(tr -d '\r' <"$log") || die "a benchmark failed; see $log"
[ -s "$RSVA_OUT/bench.json" ] || die "no figures; see $log"
if [ -n "${T:-}" ]; then
	log "figures of T=\"$T\" in $RSVA_OUT/bench.json (no plot)"
	exit 0
fi
/usr/bin/python3 "$RSVA_TOP/scripts/plot_bench.py" "$RSVA_OUT/bench.json" "$RSVA_OUT/bench.png"
log "figures in $RSVA_OUT/bench.json, plot in $RSVA_OUT/bench.png"
