# SPDX-License-Identifier: GPL-2.0
#
# The plan of 'make bench', sourced by /init: every benchmark in one boot,
# side by side.

modprobe uacce
insmod /lib/rsva/rsva_sim.ko
echo "=== RSVA-BENCH BEGIN"
/tests/rsva_sim_bench "${RSVA_BENCH_SECONDS:-2}"
echo "=== RSVA-BENCH END rc=$?"
rmmod rsva_sim
