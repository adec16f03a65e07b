# SPDX-License-Identifier: GPL-2.0
#
# The plan of 'make run', sourced by /init: load the modules and show the
# simulated SVA platform at work.

echo "--- loading uacce, test_hmm, idxd, rsva, rsva_sim"
modprobe uacce
modprobe test_hmm
modprobe idxd 2>/dev/null || echo "(idxd: no DSA hardware in this VM, as expected)"
insmod /lib/rsva/rsva.ko
insmod /lib/rsva/rsva_sim.ko devices=2
insmod /lib/rsva/rsva_client.ko
echo "--- modules"
lsmod
echo "--- IOMMU groups (q35 + intel-iommu, and the simulated bus)"
for g in /sys/kernel/iommu_groups/*; do
	printf 'group %s:' "$(basename "$g")"
	for d in "$g"/devices/*; do printf ' %s' "$(basename "$d")"; done
	echo
done
echo "--- accelerators: $(ls /dev | grep rsva_accel | tr '\n' ' ')"
echo "--- rsva serves iommu_sva_bind_device(): a uacce open binds through it"
u=$(ls /dev | grep '^rsva_accel-' | head -1)
echo "rsva before: $(grep -E '^(binds|live) ' /sys/kernel/debug/rsva/sva | tr '\n' ' ')"
sh -c "exec 3</dev/$u
	echo \"rsva while a shell holds /dev/$u open: \$(grep -E '^(binds|live) ' /sys/kernel/debug/rsva/sva | tr '\n' ' ')\"
	echo \"rsva's PASIDs (PASID UID BONDS): \$(cat /sys/kernel/debug/rsva/pasids)\""
echo "--- SVA at work: CPU memcpy vs the accelerator's DMA through a PASID, and bind/unbind"
/tests/rsva_sim_bench 0.5 | grep '^bench:'
echo "--- a process binds, queues 800 MiB of copies and is killed mid-DMA"
sh -c 'exec /tests/rsva_sim_test -t sigkill_mid_dma_faults_while_the_fd_lives' >/tmp/kill.out 2>&1
grep -E '^(ok|not ok)' /tmp/kill.out
echo "--- what the simulated IOMMU saw"
for f in pasid_table iotlb faults counters; do
	echo "dev1/$f:"
	sed 's/^/    /' /sys/kernel/debug/rsva_sim/dev1/$f | head -6
done
echo "--- rsva's own debugfs"
for f in /sys/kernel/debug/rsva/*; do
	printf '%s: %s\n' "$f" "$(cat "$f")"
done
rmmod rsva_client
rmmod rsva_sim
rmmod rsva
echo "--- all modules unloaded; the kernel log is in out/vm-run/console.log"
