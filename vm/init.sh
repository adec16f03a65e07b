#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# /init of the rsva test VM (busybox sh). The kernel log goes to ttyS0; what
# this script and the tests print goes to ttyS1, so the two never interleave.
# It mounts the file systems, runs /plan.sh, scans for leaks, writes the end
# marker and powers off. scripts/verdict.py reads both logs.

/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t debugfs debugfs /sys/kernel/debug
mount -t tmpfs tmpfs /tmp
mkdir -p /dev/shm && mount -t tmpfs tmpfs /dev/shm

exec >/dev/ttyS1 2>&1 </dev/null
export PATH=/bin:/sbin:/tests
. /lib/rsva/tap.sh

# No proactive compaction: it migrates pages at random, and each migration
# invalidates HMM mirrors, which makes the tests' and benchmarks' fault
# counts depend on timing.
echo 0 >/proc/sys/vm/compaction_proactiveness 2>/dev/null
echo "=== RSVA-VM BEGIN $(uname -r) plan=$(cat /plan.name)"
# Boot-time objects are not ours: only leaks made from here on count.
[ -e /sys/kernel/debug/kmemleak ] && echo clear >/sys/kernel/debug/kmemleak

. /plan.sh

# Two scans: kmemleak reports an object only once it was unreferenced at
# two scans, so a single scan right after the tests misses fresh leaks.
echo "=== RSVA-KMEMLEAK BEGIN"
if [ -e /sys/kernel/debug/kmemleak ]; then
	echo scan >/sys/kernel/debug/kmemleak
	sleep 1
	echo scan >/sys/kernel/debug/kmemleak
	cat /sys/kernel/debug/kmemleak
else
	echo "kmemleak: not available"
fi
echo "=== RSVA-KMEMLEAK END"
echo "=== RSVA-VM END"
sync
poweroff -f
