#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
#   scripts/vm.sh PLAN [--follow]
#
# Boot the kernel of out/kernel.env with out/initramfs-PLAN.cpio.gz in QEMU:
# q35 with an emulated Intel IOMMU, 2 vCPUs, 2 GiB, a hard timeout
# (RSVA_VM_TIMEOUT seconds, default 2400). The kernel log (ttyS0) is kept in
# out/vm-PLAN/console.log, what the plan prints (ttyS1) in
# out/vm-PLAN/user.log; --follow shows the latter while the VM runs.
#
# KVM is used only when it really boots a kernel on this machine (probed
# once and remembered); otherwise TCG.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
load_kernel_env

plan=${1:?usage: $0 PLAN [--follow]}
follow=${2:-}
dir=$RSVA_OUT/vm-$plan
timeout_s=${RSVA_VM_TIMEOUT:-2400}
kernel=$KBUILD/arch/x86/boot/bzImage
initrd=$RSVA_OUT/initramfs-$plan.cpio.gz
[ -f "$kernel" ] || die "no $kernel"
[ -f "$initrd" ] || die "no $initrd"

# Probe KVM by booting the kernel to its first messages; -cpu host fails on
# some hosts only when the vCPU starts, so a /dev/kvm that opens is not proof.
kvm_works() {
	local probe
	probe=$RSVA_CACHE/kvm-probe-$(qemu-system-x86_64 --version | head -n 1 | md5sum | cut -c1-8)-$(uname -r)
	if [ ! -f "$probe" ]; then
		local out=no
		if [ -w /dev/kvm ] &&
		   timeout 15 qemu-system-x86_64 -accel kvm -cpu host -machine q35 -m 256 \
			-display none -monitor none -serial stdio -no-reboot \
			-kernel "$kernel" -append "console=ttyS0 panic=-1 rdinit=/none" \
			2>/dev/null | grep -q 'Linux version'; then
			out=yes
		fi
		echo "$out" >"$probe"
	fi
	[ "$(cat "$probe")" = yes ]
}

if kvm_works; then
	accel=(-accel kvm -cpu host)
	log "VM: KVM"
else
	accel=(-accel "tcg,thread=multi" -cpu max)
	log "VM: TCG (KVM does not boot a kernel on this machine)"
fi

mkdir -p "$dir"
rm -f "$dir"/*.log
: >"$dir/user.log"
# RSVA_VM_APPEND: more kernel parameters (e.g. the special-purpose memory
# of hmm-tests' device-coherent cases, see Documentation/testing.rst).
cmdline="console=ttyS0 panic=-1 intel_iommu=on log_buf_len=8M printk.devkmsg=on${RSVA_VM_APPEND:+ $RSVA_VM_APPEND}"
t0=$SECONDS
set +e
timeout --foreground -k 10 "$timeout_s" qemu-system-x86_64 "${accel[@]}" \
	-machine q35,kernel-irqchip=split -device intel-iommu,intremap=on \
	-smp 2 -m 2G -display none -monitor none -no-reboot \
	-serial "file:$dir/console.log" -serial "file:$dir/user.log" \
	-kernel "$kernel" -initrd "$initrd" -append "$cmdline" \
	>"$dir/qemu.log" 2>&1 &
qemu=$!
if [ "$follow" = --follow ]; then
	tail -n +1 -f --pid=$qemu "$dir/user.log" | tr -d '\r'
fi
wait $qemu
rc=$?
set -e
echo "$rc" >"$dir/qemu.rc"
if [ $rc = 124 ] || [ $rc = 137 ]; then
	log "VM: timed out after ${timeout_s} s"
else
	log "VM: ran $((SECONDS - t0)) s (qemu exit $rc)"
fi
