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
 *            mutex twice): what these cost in this kernel, against which
 *            rsva's cycle can be read; and, paired as the two above, the
 *            direct device cycle plus the device reference (get_device(),
 *            put_device()) that rsva's device claims hold
 *
 * The cycles run in the kernel (debugfs rsva_client/bench). The ratios are
 * paired (rsva_bench_pairs.h): PAIRS pairs of runs of the same number of
 * cycles. The rates (cycles/s) are the best run of each.
 * Prints "bench: NAME VALUE UNIT" lines and a JSON object.
 * Needs rsva, rsva_sim and rsva_client loaded.
 * Usage: rsva_dma_bench [seconds per figure and implementation, default 2]
 */
#include "rsva_sim_util.h"
#include "rsva_bench_pairs.h"

#define BENCH "/sys/kernel/debug/rsva_client/bench"
#define ROUNDS 5
#define PAIRS 41

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

/* A figure's two modes of rsva_client/bench, C's and rsva's, over @n cycles. */
struct modes {
	const char *mode[2];
	unsigned int n;
};

static double run_side(int side, void *ctx)
{
	const struct modes *m = ctx;

	return run(m->mode[side], m->n);
}

/* The paired comparison of @c against @rsva over @n cycles each. */
static struct paired compare(const char *c, const char *rsva, unsigned int n)
{
	struct modes m = { .mode = { c, rsva }, .n = n };

	return paired_compare(run_side, &m, PAIRS);
}

static void print_paired(const char *name, const char *json, const struct paired *p,
			 unsigned int n)
{
	double c_best = n / p->fastest[SIDE_C], rsva_best = n / p->fastest[SIDE_RSVA];

	printf("bench: %s_c %.0f cycles/s\n", name, c_best);
	printf("bench: %s_rsva %.0f cycles/s\n", name, rsva_best);
	printf("bench: %s_rsva_time_vs_c %.3f ratio (%s; target <= 1.05)\n", name, p->median,
	       paired_spread(p));
	printf("bench-json: {\"%s_c_per_s\": %.0f, \"%s_rsva_per_s\": %.0f, ", json, c_best,
	       json, rsva_best);
	printf("\"%s_rsva_time_vs_c\": %.3f, \"%s_q1\": %.3f, \"%s_q3\": %.3f}\n", json,
	       p->median, json, p->q1, json, p->q3);
}

int main(int argc, char **argv)
{
	double secs = argc > 1 ? atof(argv[1]) : 2.0;
	double group = 0, alloc = 0, notify = 0, locks = 0;
	struct paired g, d, r;
	unsigned int ng, nd, na, nn, nl;
	int round;

	/*
	 * Calibrated on the direct cycles; rsva then does the same n (its
	 * runs take longer when it is slower).
	 */
	ng = calibrate("claimc", secs / PAIRS);
	nd = calibrate("dclaimc", secs / PAIRS);
	g = compare("claimc", "claim", ng);
	d = compare("dclaimc", "dclaim", nd);
	print_paired("claim_release", "claim", &g, ng);
	print_paired("claim_release_device", "claim_device", &d, nd);
	/* What the device reference of rsva's device claims costs alone. */
	r = compare("dclaimc", "devref", nd);
	printf("bench: claim_release_device_c_plus_ref_vs_c %.3f ratio (%s)\n", r.median,
	       paired_spread(&r));
	printf("bench-json: {\"claim_device_plus_ref_vs_c\": %.3f, \"claim_device_plus_ref_q1\": %.3f, \"claim_device_plus_ref_q3\": %.3f}\n",
	       r.median, r.q1, r.q3);

	/* What the pieces of a cycle cost in this kernel, best of ROUNDS. */
	na = calibrate("alloc", secs / ROUNDS);
	nn = calibrate("notify", secs / ROUNDS);
	nl = calibrate("locks", secs / ROUNDS);
	for (round = 0; round < ROUNDS; round++) {
		group = best(group, rate("claimc", ng));
		alloc = best(alloc, rate("alloc", na));
		notify = best(notify, rate("notify", nn));
		locks = best(locks, rate("locks", nl));
	}
	printf("bench: claim_release_c_plus_alloc %.0f cycles/s (an allocation: %.2f us)\n",
	       alloc, 1e6 / alloc - 1e6 / group);
	printf("bench: claim_release_c_plus_notifier %.0f cycles/s (a bus notifier: %.2f us)\n",
	       notify, 1e6 / notify - 1e6 / group);
	printf("bench: claim_release_c_plus_locks %.0f cycles/s (3 lock pairs: %.2f us)\n",
	       locks, 1e6 / locks - 1e6 / group);
	printf("bench-json: {\"claim_c_plus_alloc_per_s\": %.0f, ", alloc);
	printf("\"claim_c_plus_notifier_per_s\": %.0f, ", notify);
	printf("\"claim_c_plus_locks_per_s\": %.0f}\n", locks);
	return 0;
}
