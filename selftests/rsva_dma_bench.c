// SPDX-License-Identifier: GPL-2.0
/*
 * DMA ownership through rsva's C API against the IOMMU core's functions
 * called directly, in one boot, on simulated device 0:
 *
 *   group    rsva_dma_claim_group() + rsva_dma_release_group() against
 *            iommu_group_claim_dma_owner() + iommu_group_release_dma_owner()
 *   device   rsva_dma_claim_device() + rsva_dma_release_device() against
 *            iommu_device_claim_dma_owner() + iommu_device_release_dma_owner()
 *   costs    the direct group cycle plus one 64-byte allocation and free,
 *            plus one bus notifier registration and unregistration, or
 *            plus the lock pairs of rsva's cycle (an rw-semaphore, a
 *            mutex twice): what these cost in this kernel (KASAN,
 *            kmemleak, lockdep), against which rsva's cycle can be read
 *
 * The cycles run in the kernel (debugfs rsva_client/bench), C and rsva in
 * alternating rounds, the best round of each kept. Prints
 * "bench: NAME VALUE UNIT" lines, the rsva/C time ratios and a JSON object.
 * Needs rsva, rsva_sim and rsva_client loaded.
 * Usage: rsva_dma_bench [seconds per figure and implementation, default 2]
 */
#include "rsva_sim_util.h"

#define BENCH "/sys/kernel/debug/rsva_client/bench"
#define ROUNDS 5

/* Runs "@mode 0 @n" in the kernel; seconds it took. */
static double run(const char *mode, unsigned int n)
{
	char cmd[64];
	double t0;
	int err;

	snprintf(cmd, sizeof(cmd), "%s 0 %u", mode, n);
	t0 = now();
	err = write_text(BENCH, cmd);
	if (err) {
		fprintf(stderr, "%s: %s\n", cmd, strerror(-err));
		exit(1);
	}
	return now() - t0;
}

/* How many cycles of @mode take about @secs (calibrated on 50). */
static unsigned int calibrate(const char *mode, double secs)
{
	double t = run(mode, 50);
	double n = 50 * secs / (t > 1e-6 ? t : 1e-6);

	return n < 50 ? 50 : n > 1000000 ? 1000000 : (unsigned int)n;
}

/* Cycles per second of @mode over @n cycles. */
static double rate(const char *mode, unsigned int n)
{
	return n / run(mode, n);
}

static double best(double a, double b)
{
	return a > b ? a : b;
}

int main(int argc, char **argv)
{
	double secs = argc > 1 ? atof(argv[1]) : 2.0;
	double group[2] = { 0 }, device[2] = { 0 }, alloc = 0, notify = 0, locks = 0;
	unsigned int ng, nd, na, nn, nl;
	int round;

	/*
	 * Calibrated on the direct cycles; rsva then does the same n (its
	 * runs take longer when it is slower).
	 */
	ng = calibrate("claimc", secs / ROUNDS);
	nd = calibrate("dclaimc", secs / ROUNDS);
	na = calibrate("alloc", secs / ROUNDS);
	nn = calibrate("notify", secs / ROUNDS);
	nl = calibrate("locks", secs / ROUNDS);
	for (round = 0; round < ROUNDS; round++) {
		group[0] = best(group[0], rate("claimc", ng));
		group[1] = best(group[1], rate("claim", ng));
		device[0] = best(device[0], rate("dclaimc", nd));
		device[1] = best(device[1], rate("dclaim", nd));
		alloc = best(alloc, rate("alloc", na));
		notify = best(notify, rate("notify", nn));
		locks = best(locks, rate("locks", nl));
		printf("# round %d: group c %.0f rsva %.0f, device c %.0f rsva %.0f cycles/s\n",
		       round, group[0], group[1], device[0], device[1]);
	}

	printf("bench: claim_release_c %.0f cycles/s\n", group[0]);
	printf("bench: claim_release_rsva %.0f cycles/s\n", group[1]);
	printf("bench: claim_release_rsva_time_vs_c %.3f ratio (target <= 1.05)\n",
	       group[0] / group[1]);
	printf("bench: claim_release_device_c %.0f cycles/s\n", device[0]);
	printf("bench: claim_release_device_rsva %.0f cycles/s\n", device[1]);
	printf("bench: claim_release_device_rsva_time_vs_c %.3f ratio (target <= 1.05)\n",
	       device[0] / device[1]);
	printf("bench: claim_release_c_plus_alloc %.0f cycles/s (an allocation: %.2f us)\n",
	       alloc, 1e6 / alloc - 1e6 / group[0]);
	printf("bench: claim_release_c_plus_notifier %.0f cycles/s (a bus notifier: %.2f us)\n",
	       notify, 1e6 / notify - 1e6 / group[0]);
	printf("bench: claim_release_c_plus_locks %.0f cycles/s (3 lock pairs: %.2f us)\n",
	       locks, 1e6 / locks - 1e6 / group[0]);
	printf("bench-json: {");
	printf("\"claim_c_per_s\": %.0f, ", group[0]);
	printf("\"claim_rsva_per_s\": %.0f, ", group[1]);
	printf("\"claim_rsva_time_vs_c\": %.3f, ", group[0] / group[1]);
	printf("\"claim_device_c_per_s\": %.0f, ", device[0]);
	printf("\"claim_device_rsva_per_s\": %.0f, ", device[1]);
	printf("\"claim_device_rsva_time_vs_c\": %.3f, ", device[0] / device[1]);
	printf("\"claim_c_plus_alloc_per_s\": %.0f, ", alloc);
	printf("\"claim_c_plus_notifier_per_s\": %.0f, ", notify);
	printf("\"claim_c_plus_locks_per_s\": %.0f}\n", locks);
	return 0;
}
