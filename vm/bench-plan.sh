# SPDX-License-Identifier: GPL-2.0
# shellcheck shell=dash # sourced by /init, run by busybox sh (dash's dialect)
#
# The plan of 'make bench', sourced by /init: every benchmark in one boot,
# side by side. Its parts, which 'make bench T="part ..."' picks from
# (vm/tap.sh want): sim (the accelerator: memcpy, bind through its file),
# sva (bind+unbind and PASIDs, C against rsva), dma (DMA ownership claims
# through rsva's C API against the core's functions), mirror (the HMM
# mirror against test_hmm), migrate (migration to device memory and back,
# test_hmm against rsva, and hmm-tests' own benchmark_thp_migration on
# both), iopf (I/O page faults, C against rsva).

modprobe uacce
modprobe test_hmm
insmod /lib/rsva/rsva.ko
insmod /lib/rsva/rsva_sim.ko
insmod /lib/rsva/rsva_client.ko
echo "=== RSVA-BENCH BEGIN"
rc=0
if want sim; then /tests/rsva_sim_bench "${RSVA_BENCH_SECONDS:-2}" || rc=1; fi
if want sva; then /tests/rsva_sva_bench "${RSVA_BENCH_SECONDS:-2}" || rc=1; fi
if want dma; then /tests/rsva_dma_bench "${RSVA_BENCH_SECONDS:-2}" || rc=1; fi
if want mirror; then
	/tests/rsva_mirror_bench 1 || rc=1
	/tests/rsva_mirror_bench 1 thp || rc=1
fi
if want migrate; then
	/tests/rsva_migrate_bench "${RSVA_MIGRATE_ROUNDS:-4}" 16 || rc=1
	for dev in test_hmm rsva; do
		if [ $dev = rsva ]; then
			# The benchmark's last device pages may still hold test_hmm
			# for a moment after hmm-tests exits (rmmod: EAGAIN).
			tries=0
			until rmmod test_hmm 2>/dev/null; do
				tries=$((tries + 1))
				[ $tries -lt 50 ] || break
				sleep 0.2
			done
			echo "# rmmod test_hmm retried $tries times"
			ln -s rsva_mirror0 /dev/hmm_dmirror0
			ln -s rsva_mirror1 /dev/hmm_dmirror1
		fi
		# The benchmark's own limit is 120 s; on a slow TCG host its
		# last size (128 THPs) does not fit, for test_hmm as for rsva:
		# the sizes before it are compared, the timeout is reported.
		if ! /tests/hmm-tests -t benchmark_thp_migration >/tmp/thp.out 2>&1; then
			if grep -q "terminated by timeout" /tmp/thp.out; then
				echo "bench: hmm-tests_$dev timed out (its 120 s), sizes before the last compared"
			else
				rc=1
			fi
		fi
		sed -n -e "/|/s/^/bench: hmm-tests_$dev /p" \
			-e "/===/s/^/bench: hmm-tests_$dev /p" \
			-e "/^not ok\|^ok\|^# .*timeout/s/^/# hmm-tests_$dev: /p" /tmp/thp.out
	done
	rm -f /dev/hmm_dmirror0 /dev/hmm_dmirror1
	modprobe test_hmm
fi
# I/O page faults, the C handler against rsva's: tracefs for the breakdown
# of a fault (the bench skips it without); no accelerator file is open, so
# the bench can switch rsva/serve.
if want iopf; then
	mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null
	/tests/rsva_iopf_bench "${RSVA_IOPF_SAMPLES:-2000}" "${RSVA_IOPF_FILL_MIB:-32}" || rc=1
fi
echo "=== RSVA-BENCH END rc=$rc"
rmmod rsva_client
rmmod rsva_sim
rmmod rsva
