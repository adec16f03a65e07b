# SPDX-License-Identifier: GPL-2.0
#
# The plan of 'make run', sourced by /init: load the modules and show them.

echo "--- loading uacce, test_hmm, idxd and rsva"
modprobe uacce
modprobe test_hmm
modprobe idxd 2>&1 || echo "(idxd: no DSA hardware in this VM, as expected)"
insmod /lib/rsva/rsva.ko
insmod /lib/rsva/rsva_client.ko
echo "--- modules"
lsmod
echo "--- rsva in debugfs"
for f in /sys/kernel/debug/rsva/*; do
	printf '%s: %s\n' "$f" "$(cat "$f")"
done
echo "--- IOMMU groups"
for g in /sys/kernel/iommu_groups/*; do
	printf 'group %s:' "$(basename "$g")"
	for d in "$g"/devices/*; do printf ' %s' "$(basename "$d")"; done
	echo
done
echo "--- what rsva and its C client said"
dmesg | grep -E 'rsva|KTAP|# Subtest|ok [0-9]' | sed 's/^/  /'
rmmod rsva_client
rmmod rsva
