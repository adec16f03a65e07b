# SPDX-License-Identifier: GPL-2.0
# shellcheck shell=dash # sourced by /init, run by busybox sh (dash's dialect)
#
# The test plan of 'make check', sourced by /init. Its parts, which
# 'make check T="part ..."' picks from (vm/tap.sh want): debugfs, sva (the
# simulated platform's suites under the C code and rsva, and rsva's SVA
# suite, under each IOMMU personality of rsva_sim), iopf (the I/O page fault
# suite, under the C code and rsva, under each personality; also run by
# sva), mirror, fault, fuzz, hmm (the kernel's hmm-tests against test_hmm
# and against rsva), platform (unload with users, groups, DMA ownership, the
# stress run, the simulator's honesty). The modules part and
# the final unload cycles always run.

RSVA_SERVE=/sys/kernel/debug/rsva/serve

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
tap_check "rsva serves the SVA API" grep -qx 1 $RSVA_SERVE
tap_check "rsva_sim refuses devices=0" sh -c '! insmod /lib/rsva/rsva_sim.ko devices=0 2>/dev/null'
tap_check "rsva_sim refuses pasid_bits=21" sh -c '! insmod /lib/rsva/rsva_sim.ko pasid_bits=21 2>/dev/null'
tap_check "rsva_sim refuses iommu=sparc" sh -c '! insmod /lib/rsva/rsva_sim.ko iommu=sparc 2>/dev/null'
tap_check "rsva_sim loads" insmod /lib/rsva/rsva_sim.ko
tap_check "rsva_sim imitates intel by default" grep -qx intel /sys/kernel/debug/rsva_sim/personality
tap_check "rsva_sim devices are in IOMMU groups" \
	test -e /sys/bus/rsva_sim/devices/rsva_sim0/iommu_group
tap_check "rsva_sim accelerators have char devices" \
	test -c /dev/rsva_accel0 -a -c /dev/rsva_accel1
tap_check "rsva_client loads and calls rsva on rsva_sim" insmod /lib/rsva/rsva_client.ko
tap_check "rsva_mirror_client loads (KUnit rsva_c_mirror)" insmod /lib/rsva/rsva_mirror_client.ko
tap_check "rsva_mirror_client unloads" rmmod rsva_mirror_client
tap_check "the C driver's mirrors are all gone" \
	sh -c 'grep -qx "mirrors 0" $0 && grep -qx "clients 0" $0' /sys/kernel/debug/rsva/mirrors
# Every function of rsva.h called the way a careless driver would.
tap_check "rsva_careless loads (KUnit rsva_careless)" insmod /lib/rsva/rsva_careless.ko
# Unbinds queued by stop callbacks, done before their device's driver goes.
tap_check "rsva_deferred_unbind loads (KUnit rsva_deferred_unbind)" \
	insmod /lib/rsva/rsva_deferred_unbind.ko
tap_check "rsva_deferred_unbind unloads" rmmod rsva_deferred_unbind
tap_end

want debugfs && run_selftest /tests/rsva_debugfs_test

# The simulated platform's suite, once bound by the IOMMU core's C code
# and once by rsva, with rsva_sim's default personality (iommu=intel); the
# other personalities run the functional suites at the end. The I/O page
# fault suite (rsva_iopf_test: page requests answered by the SVA domain's
# fault handler) runs whole under each of the two, here with the two
# devices it needs (rsva_sim's default).
if want sva || want iopf; then
tap_begin serve_c
tap_check "rsva stops serving" sh -c "echo 0 > $RSVA_SERVE"
tap_end
if want sva; then
	run_selftest /tests/rsva_sim_test c
	run_selftest /tests/rsva_sim_stress_test c
fi
run_selftest /tests/rsva_iopf_test c
tap_begin serve_rsva
tap_check "rsva serves again" sh -c "echo 1 > $RSVA_SERVE"
tap_end
if want sva; then
	run_selftest /tests/rsva_sim_test rsva
	run_selftest /tests/rsva_sim_stress_test rsva
fi
run_selftest /tests/rsva_iopf_test rsva
want sva && run_selftest /tests/rsva_sva_test
fi
want mirror && run_selftest /tests/rsva_mirror_test
want fault && run_selftest /tests/rsva_fault_inject_test
# Random ioctls over every uapi device; the seeds are in the output.
export RSVA_FUZZ_ITERS=2000
want fuzz && run_selftest /tests/rsva_fuzz_test

# The kernel's HMM suite (tools/testing/selftests/mm/hmm-tests.c, built
# from the tree), the same binary twice: against test_hmm's devices, then,
# test_hmm unloaded, against rsva's, /dev/hmm_dmirror0 naming
# /dev/rsva_mirror0 and /dev/hmm_dmirror1 /dev/rsva_mirror1 (or
# /dev/rsva_mirror0 again while rsva has one node). Neither run is counted
# as it is: scripts/hmm_compare.py (called by the verdict) compares them
# case by case. test_hmm is loaded again afterwards. Its one benchmark,
# benchmark_thp_migration (90 s per device under TCG, and it checks no
# result), runs in 'make bench' (part migrate) on both devices instead.
#
# rsva_hmm_spm=ADDR0,ADDR1 on the kernel command line (RSVA_VM_APPEND, with
# memmap= reserving 256 MiB at each address) loads test_hmm with that
# special-purpose memory for its run: its device-coherent devices
# /dev/hmm_dmirror2 and 3 appear and hmm-tests runs its device-coherent
# variants on them (rsva has no such device: they skip there).
if want hmm; then
	if [ -n "${rsva_hmm_spm:-}" ]; then
		tap_begin hmm_spm
		tap_check "test_hmm unloads" rmmod test_hmm
		tap_check "test_hmm loads with special-purpose memory at $rsva_hmm_spm" \
			modprobe test_hmm spm_addr_dev0="${rsva_hmm_spm%,*}" \
			spm_addr_dev1="${rsva_hmm_spm#*,}"
		tap_check "test_hmm has device-coherent devices" test -c /dev/hmm_dmirror3
		tap_end
	fi
	run_raw /tests/hmm-tests test_hmm -T benchmark_thp_migration
	tap_begin hmm_on_rsva
	tap_check "test_hmm unloads" rmmod test_hmm
	second=rsva_mirror0
	[ -c /dev/rsva_mirror1 ] && second=rsva_mirror1
	tap_check "/dev/hmm_dmirror0 and 1 name rsva_mirror0 and $second" \
		sh -c "ln -s rsva_mirror0 /dev/hmm_dmirror0 && ln -s $second /dev/hmm_dmirror1"
	tap_end
	run_raw /tests/hmm-tests rsva -T benchmark_thp_migration
	tap_begin hmm_test_hmm_again
	tap_check "rsva's names go" rm /dev/hmm_dmirror0 /dev/hmm_dmirror1
	load_module test_hmm && tap_ok "test_hmm loads again" || tap_fail "test_hmm loads again: $LOAD_ERR"
	tap_end
fi

if want platform; then
tap_begin sim_unload
sh -c 'exec 3</dev/rsva_accel0; echo bound; sleep 600' >/tmp/holder.out &
holder=$!
# A second shell binds and unbinds: rsva keeps its SVA domain while it lives.
sh -c 'exec 3</dev/rsva_accel1; exec 3<&-; echo kept; sleep 600; :' >/tmp/keeper.out &
keeper=$!
for i in $(seq 50); do grep -q bound /tmp/holder.out 2>/dev/null && grep -q kept /tmp/keeper.out && break; sleep 0.1; done
tap_check "a shell binds by opening /dev/rsva_accel0" grep -q bound /tmp/holder.out
tap_check "rsva keeps the domain of a shell that bound and unbound" \
	grep -q "^kept [1-9]" /sys/kernel/debug/rsva/sva
tap_check "rsva_sim refuses to unload while a process is bound" \
	sh -c '! rmmod rsva_sim 2>/dev/null'
tap_check "rsva refuses to unload while rsva_client uses it" \
	sh -c '! rmmod rsva 2>/dev/null'
tap_check "rsva_client unloads" rmmod rsva_client
tap_check "rsva refuses to unload while a process is bound through it" \
	sh -c '! rmmod rsva 2>/dev/null'
tap_check "rsva refuses to stop serving while a process is bound" \
	sh -c "! echo 0 > $RSVA_SERVE 2>/dev/null"
kill $holder
wait $holder 2>/dev/null
tap_check "rsva_sim unloads once the process is gone, with a domain kept" rmmod rsva_sim
tap_check "the kept domain was freed with its device" grep -q "^kept 0$" /sys/kernel/debug/rsva/sva
kill $keeper
wait $keeper 2>/dev/null
tap_check "rsva_sim bus is gone" test ! -e /sys/bus/rsva_sim
tap_check "rsva_sim loads 3 devices in one group with 2-bit PASIDs" \
	insmod /lib/rsva/rsva_sim.ko devices=3 group_size=3 pasid_bits=2
tap_check "the 3 devices share one IOMMU group" sh -c \
	'[ "$(readlink /sys/bus/rsva_sim/devices/rsva_sim0/iommu_group)" = "$(readlink /sys/bus/rsva_sim/devices/rsva_sim2/iommu_group)" ]'
tap_end

run_selftest /tests/rsva_sim_group_test rsva
tap_begin serve_c_group
tap_check "rsva stops serving" sh -c "echo 0 > $RSVA_SERVE"
tap_end
run_selftest /tests/rsva_sim_group_test c
tap_begin serve_rsva_group
tap_check "rsva serves again" sh -c "echo 1 > $RSVA_SERVE"
tap_end

# DMA ownership on the group of three (kernel::iommu::dma_owner on both sides).
tap_begin dma_owner
tap_check "rsva_sim drivers do not bind by themselves" \
	sh -c 'echo 0 > /sys/bus/rsva_sim/drivers_autoprobe'
tap_check "rsva_sim_drivers loads" insmod /lib/rsva/rsva_sim_drivers.ko
tap_end
run_selftest /tests/rsva_dma_owner_test

# Everything at once for a bounded time, with unload attempts throughout:
# binders killed mid-DMA on one group, claims against driver bind/unbind
# on the other, mirror fault storms (selftests/rsva_stress_test.c).
tap_begin stress_setup
tap_check "rsva_sim_drivers unloads" rmmod rsva_sim_drivers
tap_check "rsva_sim unloads" rmmod rsva_sim
tap_check "rsva_sim loads 6 devices in two groups of three" \
	insmod /lib/rsva/rsva_sim.ko devices=6 group_size=3
tap_check "rsva_sim drivers do not bind by themselves" \
	sh -c 'echo 0 > /sys/bus/rsva_sim/drivers_autoprobe'
tap_check "rsva_sim_drivers loads" insmod /lib/rsva/rsva_sim_drivers.ko
tap_end
export RSVA_STRESS_SECONDS=15
run_selftest /tests/rsva_stress_test
tap_begin dma_owner_unload
tap_check "rsva_sim_drivers unloads" rmmod rsva_sim_drivers
tap_end

# The IOTLB test must be able to fail: with invalidations ignored on
# purpose, it does (its output is not part of the counts).
tap_begin sim_honesty
tap_check "rsva_sim unloads" rmmod rsva_sim
tap_check "rsva_sim loads with test_skip_invalidation=1" \
	insmod /lib/rsva/rsva_sim.ko test_skip_invalidation=1
tap_check "the IOTLB test fails when invalidations are skipped" \
	sh -c '! /tests/rsva_sim_test -t iotlb_follows_the_page_tables >/tmp/honesty.out 2>&1'
tap_check "and the device saw stale or wrong translations" \
	grep -q -E "stale_translations|dst\[" /tmp/honesty.out
grep -E "Expected|stale IOTLB" /tmp/honesty.out | sed 's/^/# caught: /'
tap_end
else
	# The unload below needs rsva_client gone (the platform part unloads it).
	rmmod rsva_client
fi

# The SVA suites again with rsva_sim imitating the other IOMMU drivers
# (rust/sim/personality.rs), without the stress runs: labels c-IOMMU and
# rsva-IOMMU. rsva_sva_test runs under amd only, whose domain free differs
# from Intel's (SMMUv3's puts the notifier as Intel's does), and only its
# cases that free domains: a kept domain reused, the exits of forks and
# execs, PASIDs freed by exits, the mm's release racing unbinds (its races
# with rsva's switch are races with the switch, not with the IOMMU). AMD's free waits for an SRCU grace
# period, so it must never run inside an mmu notifier callback nor under
# a lock that one takes; rsva-amd goes last, as a hang there would stop
# the plan. The I/O page fault suite runs its cases where the mm or the
# bond goes away with page requests in flight (fixture release: munmap,
# SIGKILL, close), whose drains and releases differ by personality.
if want sva || want iopf; then
for iommu in arm amd; do
	tap_begin "personality_$iommu"
	tap_check "rsva_sim unloads" rmmod rsva_sim
	tap_check "rsva_sim loads with iommu=$iommu" insmod /lib/rsva/rsva_sim.ko iommu=$iommu
	tap_check "rsva_sim debugfs names the personality" \
		grep -qx $iommu /sys/kernel/debug/rsva_sim/personality
	tap_check "rsva stops serving" sh -c "echo 0 > $RSVA_SERVE"
	tap_end
	# AMD's release removes the PASIDs with requests in flight: every
	# release case; SMMUv3's blocks them as Intel's does: the unbinds.
	if [ $iommu = amd ]; then
		iopf_cases="-f release"
	else
		iopf_cases="-t munmap_during_a_long_dma -t close_with_page_requests_in_flight"
	fi
	want sva && run_selftest /tests/rsva_sim_test c-$iommu
	# shellcheck disable=SC2086 # the cases are several arguments
	run_selftest /tests/rsva_iopf_test c-$iommu $iopf_cases
	tap_begin "serve_rsva_$iommu"
	tap_check "rsva serves again" sh -c "echo 1 > $RSVA_SERVE"
	tap_end
	want sva && run_selftest /tests/rsva_sim_test rsva-$iommu
	# shellcheck disable=SC2086 # as above
	run_selftest /tests/rsva_iopf_test rsva-$iommu $iopf_cases
	if want sva && [ $iommu = amd ]; then
		run_selftest /tests/rsva_sva_test rsva-$iommu \
			-t a_rebind_reuses_the_kept_domain \
			-t fork_and_exec_get_their_own_pasids \
			-t exhaustion_gives_enospc_and_recovers_after_frees \
			-t release_races_unbind
	fi
done
fi

# Load, bind, unload, again: kmemleak (scanned at the end) must stay silent.
# rsva's and rsva_sim's KUnit suites ran when they were first loaded; the
# reloads below (23 of rsva) skip them (a suite that runs again adds no
# case to the counts, and each run takes about 1.5 s under TCG).
echo "reloads-run-no-kunit-suite" > /sys/module/kunit/parameters/filter_glob
tap_begin unload
# Device claims through rsva whose devices go away (review finding 12):
# rsva_sim0's claim is released after its device is gone, rsva_sim1's is
# left to rsva by rsva_careless, until rsva unloads.
CLAIMS=/sys/kernel/debug/rsva_careless/claims
tap_check "a careless driver claims rsva_sim0 and rsva_sim1" \
	sh -c "echo claim 0 > $CLAIMS && echo claim 1 > $CLAIMS"
# And rsva_sim1 again while it is being removed, from its bus's notifier.
tap_check "a careless driver will claim rsva_sim1 during its removal" \
	sh -c "echo late 1 > $CLAIMS"
tap_check "rsva_sim unloads" rmmod rsva_sim
tap_check "the claim during rsva_sim1's removal got ENODEV" \
	grep -qx -- -19 /sys/kernel/debug/rsva_careless/late
tap_check "the claim of the removed rsva_sim0 is released" sh -c "echo release 0 > $CLAIMS"
tap_check "rsva_careless unloads, leaving its claim of rsva_sim1" rmmod rsva_careless
tap_check "rsva unloads" rmmod rsva
tap_check "rsva debugfs directory is gone" test ! -e /sys/kernel/debug/rsva
cycles=0
for i in 1 2 3 4 5; do
	insmod /lib/rsva/rsva.ko || break
	insmod /lib/rsva/rsva_sim.ko || break
	sh -c 'exec 3</dev/rsva_accel0 4</dev/rsva_accel1' || break
	grep -q "^binds 2$" /sys/kernel/debug/rsva/sva || break
	rmmod rsva_sim && rmmod rsva || break
	cycles=$i
done
tap_check "5 cycles of load, bind through rsva, unload" test "$cycles" = 5
tap_check "the C implementation serves again after rsva is gone" sh -c \
	'insmod /lib/rsva/rsva_sim.ko && sh -c "exec 3</dev/rsva_accel0" && rmmod rsva_sim'
tap_end

# While rsva unloads, the kernel's SVA API stays served (review finding
# 15): a bind that finds rsva's module going waits for its exit to give
# the API back (patch 0006) and is then served by the C code, never failed
# with ENODEV. rsva_binder's kernel thread binds and unbinds rsva_sim0
# through iommu_sva_bind_device() all along; each bind pins rsva, so the
# unload is retried until it falls between two.
tap_begin unload_fallback
LOOP=/sys/kernel/debug/rsva_binder/loop
tap_check "rsva_sim loads" insmod /lib/rsva/rsva_sim.ko
tap_check "rsva_binder loads" insmod /lib/rsva/rsva_binder.ko
# Eight unloads under the loop: the window in which a bind finds rsva
# going is short, and one round may miss it.
rounds=0
binds=0
for round in 1 2 3 4 5 6 7 8; do
	insmod /lib/rsva/rsva.ko || break
	grep -qx 1 $RSVA_SERVE || break
	echo start > $LOOP || break
	sleep 0.5
	tries=0
	until rmmod rsva 2>/dev/null; do
		tries=$((tries + 1))
		[ $tries -lt 3000 ] || break
	done
	echo "# round $round: rmmod rsva refused $tries times while the thread bound"
	[ ! -e /sys/kernel/debug/rsva ] || break
	sleep 0.2
	echo stop > $LOOP || break
	sed 's/^/# /' $LOOP
	binds=$((binds + $(cut -d" " -f2 $LOOP)))
	grep -q " errors 0 " $LOOP || break
	rounds=$round
done
tap_check "8 unloads of rsva under binds, every bind served" test "$rounds" = 8
tap_check "binds were made ($binds)" test "$binds" -gt 0
echo stop > $LOOP
lsmod | grep -q "^rsva " && rmmod rsva
tap_check "rsva_binder unloads" rmmod rsva_binder
tap_check "rsva_sim unloads" rmmod rsva_sim
# The last reference to rsva can be a kept domain's device watch, dropped
# when the device goes (review finding 15): by the kernel's
# symbol_put_addr() after rsva's release function returned, so rsva can
# be unloaded right after it, again and again.
cycles=0
keeper=
for i in 1 2 3 4 5 6 7 8 9 10; do
	insmod /lib/rsva/rsva.ko || break
	insmod /lib/rsva/rsva_sim.ko || break
	rm -f /tmp/kept.out
	sh -c 'exec 3</dev/rsva_accel0; exec 3<&-; echo kept; sleep 600; :' >/tmp/kept.out &
	keeper=$!
	for _ in $(seq 50); do grep -q kept /tmp/kept.out 2>/dev/null && break; sleep 0.1; done
	grep -q "^kept [1-9]" /sys/kernel/debug/rsva/sva || break
	rmmod rsva_sim && rmmod rsva || break
	kill $keeper
	wait $keeper 2>/dev/null
	keeper=
	cycles=$i
done
[ -n "$keeper" ] && kill $keeper
tap_check "10 cycles of unloading rsva right after a device watch let go of it" \
	test "$cycles" = 10
tap_end

# A C driver that binds through rsva's API and is unloaded without
# unbinding: rsva must refuse to unload (the bond pins it), and the
# kernel's SVA API must still be served, not left pointing into a freed
# module. Last: rsva stays loaded.
tap_begin leaked_bond
tap_check "rsva loads" insmod /lib/rsva/rsva.ko
tap_check "rsva_sim loads" insmod /lib/rsva/rsva_sim.ko
tap_check "rsva_client loads" insmod /lib/rsva/rsva_client.ko
tap_check "a C driver leaks a bond made through rsva's API" \
	sh -c 'echo leak 0 1 > /sys/kernel/debug/rsva_client/bench'
tap_check "the leaking driver unloads" rmmod rsva_client
tap_check "rsva refuses to unload while the leaked bond lives" \
	sh -c '! rmmod rsva 2>/dev/null'
tap_check "the kernel's SVA API is still served by rsva" \
	sh -c 'b=$(grep "^binds " /sys/kernel/debug/rsva/sva); exec 3</dev/rsva_accel0; [ "$(grep "^binds " /sys/kernel/debug/rsva/sva)" != "$b" ]'
tap_end
