# SPDX-License-Identifier: GPL-2.0
# shellcheck shell=dash # sourced by /init, run by busybox sh (dash's dialect)
#
# The plan of 'make run', sourced by /init: load the modules and tell what
# rsva does, step by step (selftests/rsva_demo.c), then unload and check
# that nothing leaked.

echo "=== rsva: shared virtual addressing, PASIDs, an HMM mirror and DMA"
echo "=== ownership, in Rust, on a simulated SVA accelerator in this VM"
echo
echo "0. Loading: uacce and test_hmm (in-tree), rsva (the Rust module), rsva_sim"
echo "   (two simulated accelerators behind a simulated IOMMU that does SVA,"
echo "   since this VM has none) and rsva_sim_drivers (a C driver using rsva's API)."
modprobe uacce
modprobe test_hmm
insmod /lib/rsva/rsva.ko
insmod /lib/rsva/rsva_sim.ko devices=2
# Its drivers stay unbound: step 4 claims a group that no driver uses.
echo 0 >/sys/bus/rsva_sim/drivers_autoprobe
insmod /lib/rsva/rsva_sim_drivers.ko
echo "   loaded: $(lsmod | awk 'NR > 1 { print $1 }' | tr '\n' ' ')"
echo "   rsva serves iommu_sva_bind_device(): $(cat /sys/kernel/debug/rsva/serve)"
echo "   accelerators (uacce): $(cd /dev && echo rsva_accel-*)"

/tests/rsva_demo
demo=$?

echo
echo "5. Unloading everything, then asking kmemleak for leaks."
rmmod rsva_sim_drivers
rmmod rsva_sim
echo "   rsva before unload: $(grep -E '^(binds|unbinds|live|pasids) ' /sys/kernel/debug/rsva/sva | tr '\n' ' ')"
rmmod rsva
echo scan >/sys/kernel/debug/kmemleak
echo scan >/sys/kernel/debug/kmemleak
leaks=$(grep -c '^unreferenced object' /sys/kernel/debug/kmemleak)
echo "   modules left: $(lsmod | awk 'NR > 1 { print $1 }' | tr '\n' ' ')"
echo "   kmemleak: $leaks unreferenced objects"
warn=$(dmesg | grep -c -E 'WARNING:|BUG:|Oops|KASAN|possible circular|kmemleak: [0-9]+ new')

cat <<EOF

Summary
  - Two processes bound their address spaces to two accelerators through
    uacce; rsva gave each mm its own PASID and the devices copied at the
    processes' virtual addresses.
  - A process killed mid-DMA: its exit ran the mm's release, which only
    cleared the PASID entry; the work still queued faulted instead of
    touching freed memory; the last close stopped the queue and unbound.
  - The mirror followed a process's memory: mirrored once, refilled after
    the page changed, refused after mprotect.
  - A DMA ownership claim kept SVA off the group until it was released.
  - Unloaded cleanly: $leaks leaked objects, $warn kernel warnings.
$( [ $demo = 0 ] && [ "$leaks" = 0 ] && [ "$warn" = 0 ] && echo "All as told." || echo "NOT all as told: see above and out/vm-run/console.log.")
EOF
