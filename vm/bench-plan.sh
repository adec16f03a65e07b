# SPDX-License-Identifier: GPL-2.0
#
# The plan of 'make bench', sourced by /init: every benchmark in one boot,
# side by side.

modprobe uacce
modprobe test_hmm
insmod /lib/rsva/rsva.ko
insmod /lib/rsva/rsva_sim.ko
insmod /lib/rsva/rsva_client.ko
echo "=== RSVA-BENCH BEGIN"
rc=0
/tests/rsva_sim_bench "${RSVA_BENCH_SECONDS:-2}" || rc=1
/tests/rsva_sva_bench "${RSVA_BENCH_SECONDS:-2}" || rc=1
/tests/rsva_mirror_bench 1 || rc=1
echo "=== RSVA-BENCH END rc=$rc"
rmmod rsva_client
rmmod rsva_sim
rmmod rsva
