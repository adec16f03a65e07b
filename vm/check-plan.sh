# SPDX-License-Identifier: GPL-2.0
#
# The test plan of 'make check', sourced by /init.

tap_begin modules
load_module uacce && tap_ok "uacce loads" || tap_fail "uacce loads: $LOAD_ERR"
load_module test_hmm && tap_ok "test_hmm loads" || tap_fail "test_hmm loads: $LOAD_ERR"
if load_module idxd; then
	tap_ok "idxd loads"
else
	case "$LOAD_ERR" in
	*"No such device"*) tap_skip "idxd loads" "no DSA hardware on this machine (ENODEV)" ;;
	*) tap_fail "idxd loads: $LOAD_ERR" ;;
	esac
fi
# rsva's KUnit suites run while it loads, the client's while it loads.
tap_check "rsva loads" insmod /lib/rsva/rsva.ko
tap_check "rsva debugfs directory exists" test -d /sys/kernel/debug/rsva
tap_check "rsva_client loads and calls rsva" insmod /lib/rsva/rsva_client.ko
tap_end

for t in /tests/*; do
	run_selftest "$t"
done

tap_begin unload
tap_check "rsva refuses to unload while rsva_client uses it" \
	sh -c '! rmmod rsva 2>/dev/null'
tap_check "rsva_client unloads" rmmod rsva_client
tap_check "rsva unloads" rmmod rsva
tap_check "rsva debugfs directory is gone" test ! -e /sys/kernel/debug/rsva
tap_check "rsva loads again" insmod /lib/rsva/rsva.ko
tap_check "rsva unloads again" rmmod rsva
tap_end
