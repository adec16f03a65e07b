#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# 'make bench': boot one VM that runs every benchmark side by side
# (vm/bench-plan.sh), print the figures, keep them as JSON in
# out/bench.json and plot how the costs grow in out/bench.png.
# 'make bench T="part ..."' runs only those parts of the plan (no plot:
# it needs the sva and mirror parts).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

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
