// SPDX-License-Identifier: GPL-2.0
/*
 * rsva's SVA core against the kernel's C implementation, in one boot: the
 * same work goes through iommu_sva_bind_device() with debugfs rsva/serve
 * at 0 (the IOMMU core's C code) and at 1 (rsva). "bind" and "concurrent"
 * are paired (rsva_bench_pairs.h, PAIRS pairs): their ratios are medians
 * of the pairs' ratios, their rates the best run of each side; the other
 * figures are the best of alternating rounds.
 *
 *   bind        bind+unbind of this process's mm on simulated device 0
 *   pasid       bind+unbind of a fresh mm each time: a PASID allocated
 *               and freed per cycle
 *   concurrent  two processes, devices 0 and 1 (separate IOMMU groups),
 *               bind+unbind at once: total cycles per second
 *   live        bind+unbind on device 0 while 1, 10, ... MAX_LIVE other
 *               address spaces stay bound to it: how the cost grows
 *   vcpus       "concurrent" with the second vCPU offline, against the
 *               figure on two
 *
 * The cycles run in the kernel (debugfs rsva_client/bench) so that the
 * figures are the bind paths, not system calls. Prints
 * "bench: NAME VALUE UNIT" lines, the Rust/C ratios and a JSON object.
 * (DMA ownership claims are rsva_dma_bench's.)
 * Needs rsva, rsva_sim and rsva_client loaded.
 * Usage: rsva_sva_bench [seconds per figure and implementation, default 2]
 *                       [MAX_LIVE, default 10000]
 */
#include <sys/wait.h>
#include <time.h>

#include "rsva_sim_util.h"
#include "rsva_bench_pairs.h"

#define SERVE "/sys/kernel/debug/rsva/serve"
#define BENCH "/sys/kernel/debug/rsva_client/bench"
#define CPU1 "/sys/devices/system/cpu/cpu1/online"
#define ROUNDS 5
#define PAIRS 15

static void serve(int rsva)
{
	if (write_text(SERVE, rsva ? "1" : "0")) {
		fprintf(stderr, "cannot set %s to %d\n", SERVE, rsva);
		exit(1);
	}
}

/*
 * Lets the work a previous run left behind (SRCU callbacks freeing
 * domains, exiting children) finish, so that it is not charged to the
 * next run.
 */
static void settle(void)
{
	usleep(300000);
}

/* Runs "@mode @dev @n" in the kernel; seconds it took. */
static double run(const char *mode, int dev, unsigned int n)
{
	char cmd[64];
	double t0;
	int err;

	snprintf(cmd, sizeof(cmd), "%s %d %u", mode, dev, n);
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
	double t = run(mode, 0, 50);
	double n = 50 * secs / (t > 1e-6 ? t : 1e-6);

	return n < 50 ? 50 : n > 1000000 ? 1000000 : (unsigned int)n;
}

/* Cycles per second of @mode, one process. */
static double single(const char *mode, unsigned int n)
{
	settle();
	return n / run(mode, 0, n);
}

/* Seconds two processes take to bind+unbind @n times each, at once. */
static double concurrent(unsigned int n)
{
	pid_t pids[2];
	int i, status, ok = 1;
	double t0;

	settle();
	t0 = now();
	for (i = 0; i < 2; i++) {
		pids[i] = fork();
		if (pids[i] == 0) {
			run("bind", i, n);
			_exit(0);
		}
	}
	for (i = 0; i < 2; i++)
		if (waitpid(pids[i], &status, 0) != pids[i] || !WIFEXITED(status) ||
		    WEXITSTATUS(status))
			ok = 0;
	if (!ok) {
		fprintf(stderr, "two processes binding at once: one failed\n");
		exit(1);
	}
	return now() - t0;
}

static double best(double a, double b)
{
	return a > b ? a : b;
}

/* A paired figure: bind+unbind @n times, in one process or in two at once. */
struct bind_work {
	unsigned int n;
	int two;
};

/* One side's run of a paired figure; seconds. */
static double run_side(int side, void *ctx)
{
	const struct bind_work *w = ctx;

	serve(side);
	if (w->two)
		return concurrent(w->n);
	settle();
	return run("bind", 0, w->n);
}

/*
 * Bind+unbind cycles per second of this process's mm on device 0 while
 * @live[i] other address spaces are bound to it, for each implementation:
 * @rate[impl][i]. The bound address spaces are fresh mms the kernel keeps
 * (rsva_client's "hold"), added step by step and dropped at the end.
 */
static void live_scaling(const unsigned int *live, int steps, unsigned int n,
			 double rate[2][8])
{
	unsigned int held;
	int impl, i, r;
	char cmd[32];

	for (impl = 0; impl < 2; impl++) {
		serve(impl);
		held = 0;
		for (i = 0; i < steps; i++) {
			double t0 = now();

			snprintf(cmd, sizeof(cmd), "hold 0 %u", live[i] - held);
			if (write_text(BENCH, cmd)) {
				fprintf(stderr, "%s: cannot keep %u address spaces bound\n",
					impl ? "rsva" : "c", live[i]);
				exit(1);
			}
			printf("# %s: %u bound address spaces (%u bound in %.1f s)\n",
			       impl ? "rsva" : "c", live[i], live[i] - held, now() - t0);
			held = live[i];
			rate[impl][i] = 0;
			for (r = 0; r < 3; r++)
				rate[impl][i] = best(rate[impl][i], single("bind", n));
		}
		if (write_text(BENCH, "drop 0 1")) {
			fprintf(stderr, "cannot drop the bound address spaces\n");
			exit(1);
		}
	}
}

/* Sets the second vCPU online (1) or offline (0). */
static void cpu1_online(int on)
{
	if (write_text(CPU1, on ? "1" : "0")) {
		fprintf(stderr, "cannot set %s to %d\n", CPU1, on);
		exit(1);
	}
}

int main(int argc, char **argv)
{
	double secs = argc > 1 ? atof(argv[1]) : 2.0;
	unsigned int max_live = argc > 2 ? strtoul(argv[2], NULL, 0) : 10000;
	static const unsigned int live_all[] = { 1, 10, 100, 1000, 10000 };
	double bind[2], pasid[2] = { 0 }, conc[2];
	double conc1[2] = { 0 }, live_rate[2][8];
	struct paired bindp, concp;
	unsigned int nb, np;
	int round, impl, steps, i;

	/* Calibrate on the C path; both implementations then do the same n. */
	serve(0);
	nb = calibrate("bind", secs / ROUNDS);
	np = calibrate("pasid", secs / ROUNDS);
	bindp = paired_compare(run_side, &(struct bind_work){ .n = nb }, PAIRS);
	concp = paired_compare(run_side, &(struct bind_work){ .n = nb, .two = 1 }, PAIRS);
	for (impl = 0; impl < 2; impl++) {
		bind[impl] = nb / bindp.fastest[impl];
		conc[impl] = 2.0 * nb / concp.fastest[impl];
	}
	for (round = 0; round < ROUNDS; round++) {
		for (impl = 0; impl < 2; impl++) {
			serve(impl);
			pasid[impl] = best(pasid[impl], single("pasid", np));
		}
	}
	cpu1_online(0);
	for (round = 0; round < 3; round++) {
		for (impl = 0; impl < 2; impl++) {
			serve(impl);
			conc1[impl] = best(conc1[impl], 2.0 * nb / concurrent(nb));
		}
	}
	cpu1_online(1);
	for (steps = 0; steps < 5 && live_all[steps] <= max_live; steps++)
		;
	live_scaling(live_all, steps, nb, live_rate);
	serve(1);

	printf("bench: bind_unbind_c %.0f cycles/s\n", bind[0]);
	printf("bench: bind_unbind_rsva %.0f cycles/s\n", bind[1]);
	printf("bench: bind_unbind_rsva_time_vs_c %.3f ratio (%s; target <= 0.9)\n",
	       bindp.median, paired_spread(&bindp));
	printf("bench: pasid_alloc_free_c %.0f cycles/s\n", pasid[0]);
	printf("bench: pasid_alloc_free_rsva %.0f cycles/s\n", pasid[1]);
	printf("bench: pasid_alloc_free_rsva_time_vs_c %.3f ratio\n", pasid[0] / pasid[1]);
	printf("bench: concurrent_c %.0f cycles/s\n", conc[0]);
	printf("bench: concurrent_rsva %.0f cycles/s\n", conc[1]);
	printf("bench: concurrent_rsva_vs_c %.3f ratio (time ratios: %s; target >= 1.5)\n",
	       1 / concp.median, paired_spread(&concp));
	printf("bench: concurrent_1vcpu_c %.0f cycles/s\n", conc1[0]);
	printf("bench: concurrent_1vcpu_rsva %.0f cycles/s\n", conc1[1]);
	printf("bench: concurrent_2_vs_1_vcpus_c %.2f ratio\n", conc[0] / conc1[0]);
	printf("bench: concurrent_2_vs_1_vcpus_rsva %.2f ratio\n", conc[1] / conc1[1]);
	for (i = 0; i < steps; i++)
		printf("bench: bind_unbind_with_%u_live c %.0f, rsva %.0f cycles/s (rsva time %.2f of C's)\n",
		       live_all[i], live_rate[0][i], live_rate[1][i],
		       live_rate[0][i] / live_rate[1][i]);
	printf("bench-json: {");
	printf("\"bind_unbind_c_per_s\": %.0f, ", bind[0]);
	printf("\"bind_unbind_rsva_per_s\": %.0f, ", bind[1]);
	printf("\"bind_rsva_time_vs_c\": %.3f, ", bindp.median);
	printf("\"bind_rsva_time_vs_c_q1\": %.3f, ", bindp.q1);
	printf("\"bind_rsva_time_vs_c_q3\": %.3f, ", bindp.q3);
	printf("\"pasid_c_per_s\": %.0f, ", pasid[0]);
	printf("\"pasid_rsva_per_s\": %.0f, ", pasid[1]);
	printf("\"pasid_rsva_time_vs_c\": %.3f, ", pasid[0] / pasid[1]);
	printf("\"concurrent_c_per_s\": %.0f, ", conc[0]);
	printf("\"concurrent_rsva_per_s\": %.0f, ", conc[1]);
	printf("\"concurrent_rsva_vs_c\": %.3f, ", 1 / concp.median);
	printf("\"concurrent_rsva_vs_c_q1\": %.3f, ", 1 / concp.q3);
	printf("\"concurrent_rsva_vs_c_q3\": %.3f, ", 1 / concp.q1);
	printf("\"vcpus\": {\"cpus\": [1, 2], \"concurrent_c_per_s\": [%.0f, %.0f], ",
	       conc1[0], conc[0]);
	printf("\"concurrent_rsva_per_s\": [%.0f, %.0f]}, ", conc1[1], conc[1]);
	printf("\"bind_vs_live\": {\"live\": [");
	for (i = 0; i < steps; i++)
		printf("%s%u", i ? ", " : "", live_all[i]);
	for (impl = 0; impl < 2; impl++) {
		printf("], \"%s_per_s\": [", impl ? "rsva" : "c");
		for (i = 0; i < steps; i++)
			printf("%s%.0f", i ? ", " : "", live_rate[impl][i]);
	}
	printf("]}}\n");
	return 0;
}
