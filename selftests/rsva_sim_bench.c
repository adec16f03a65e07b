// SPDX-License-Identifier: GPL-2.0
/*
 * Benchmarks of the simulated SVA platform, run side by side in one boot:
 *
 *   memcpy     SVA memcpy through the accelerator (every page a walk: the
 *              IOTLB holds 64 entries) against CPU memcpy of the same buffers
 *   bind       open+close of /dev/rsva_accel0: bind+unbind through
 *              iommu_sva_bind_device(), whichever implementation serves it
 *
 * Prints one line per figure, "bench: NAME VALUE UNIT", and a JSON object.
 * Usage: rsva_sim_bench [seconds per figure, default 2]
 */
#include <stdalign.h>
#include <sys/mman.h>
#include <time.h>

#include "rsva_sim_util.h"

#define BUF_LEN (16UL << 20)

static void *map_filled(size_t len, int c)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);

	if (p == MAP_FAILED) {
		perror("mmap");
		exit(1);
	}
	memset(p, c, len);
	return p;
}

/* MiB/s of CPU memcpy over @secs. */
static double cpu_memcpy(char *src, char *dst, double secs)
{
	double t0 = now(), t;
	unsigned long n = 0;

	do {
		memcpy(dst, src, BUF_LEN);
		n++;
		t = now() - t0;
	} while (t < secs);
	return n * (BUF_LEN >> 20) / t;
}

/* MiB/s of SVA memcpy over @secs; checks the result once. */
static double sva_memcpy(int fd, char *src, char *dst, double secs)
{
	alignas(32) struct rsva_sim_completion c;
	struct rsva_sim_desc d = { .op = RSVA_SIM_OP_MEMCPY };
	double t0 = now(), t;
	unsigned long n = 0;

	d.src = (uintptr_t)src;
	d.dst = (uintptr_t)dst;
	d.len = BUF_LEN;
	do {
		if (accel_run(fd, &d, &c) || c.status != RSVA_SIM_STATUS_SUCCESS) {
			fprintf(stderr, "SVA memcpy failed: status %u\n", c.status);
			exit(1);
		}
		n++;
		t = now() - t0;
	} while (t < secs);
	if (memcmp(src, dst, BUF_LEN)) {
		fprintf(stderr, "SVA memcpy copied wrong data\n");
		exit(1);
	}
	return n * (BUF_LEN >> 20) / t;
}

/* bind+unbind cycles per second over @secs. */
static double bind_cycles(double secs)
{
	double t0 = now(), t;
	unsigned long n = 0;
	int fd;

	do {
		fd = accel_open(0);
		if (fd < 0) {
			perror("open /dev/rsva_accel0");
			exit(1);
		}
		close(fd);
		n++;
		t = now() - t0;
	} while (t < secs);
	return n / t;
}

int main(int argc, char **argv)
{
	double secs = argc > 1 ? atof(argv[1]) : 2.0;
	char *src = map_filled(BUF_LEN, 'S'), *dst = map_filled(BUF_LEN, 0);
	double cpu, sva, binds;
	int fd = accel_open(0);

	if (fd < 0) {
		perror("open /dev/rsva_accel0");
		return 1;
	}
	fill_random(src, BUF_LEN, 42);
	cpu = cpu_memcpy(src, dst, secs);
	memset(dst, 0, BUF_LEN);
	sva = sva_memcpy(fd, src, dst, secs);
	close(fd);
	binds = bind_cycles(secs);

	printf("bench: cpu_memcpy %.1f MiB/s\n", cpu);
	printf("bench: sva_memcpy %.1f MiB/s\n", sva);
	printf("bench: sva_memcpy_vs_cpu %.3f ratio\n", sva / cpu);
	printf("bench: bind_unbind %.0f cycles/s\n", binds);
	printf("bench-json: {\"cpu_memcpy_mib_s\": %.1f, \"sva_memcpy_mib_s\": %.1f, \"sva_vs_cpu\": %.3f, \"bind_unbind_per_s\": %.0f}\n",
	       cpu, sva, sva / cpu, binds);
	return 0;
}
