// SPDX-License-Identifier: GPL-2.0
/*
 * Migration to device memory and back, rsva's mirror against test_hmm in
 * one boot, in alternating rounds on the same kind of buffers:
 * - HMM_DMIRROR_MIGRATE_TO_DEV and HMM_DMIRROR_MIGRATE_TO_SYS throughput in
 *   MiB/s, on 4 KiB pages and on transparent huge pages;
 * - the latency of a CPU read of a page that lives in device memory (the
 *   driver's migrate_to_ram() callback brings it back), p50 and p99.
 * Every round checks the data it moved. Prints "bench: NAME VALUE UNIT"
 * lines and a JSON object.
 * Usage: rsva_migrate_bench [rounds, default 4] [MiB per round, default 16]
 */
#include <sys/mman.h>

#include "rsva_sim_util.h"
#include <test_hmm_uapi.h>

static const char *const devices[2] = { "/dev/hmm_dmirror0", "/dev/rsva_mirror0" };
static const char *const names[2] = { "test_hmm", "rsva" };

#define HUGE_SIZE (2UL << 20)
#define LAT_PAGES 256

/*
 * MIGRATE_TO_DEV copies the migrated data to @out, as test_hmm's. Every
 * page must move; the count is checked for MIGRATE_TO_DEV only: on the way
 * back test_hmm counts a THP as one page (its cpages counts migration
 * entries), so there the data, checked afterwards, is what counts.
 */
static void cmd(int fd, unsigned long req, void *addr, void *out, size_t npages)
{
	struct hmm_dmirror_cmd c = {
		.addr = (uintptr_t)addr, .ptr = (uintptr_t)out, .npages = npages,
	};

	if (ioctl(fd, req, &c)) {
		perror("migrate ioctl");
		exit(1);
	}
	if (req == HMM_DMIRROR_MIGRATE_TO_DEV && c.cpages != npages) {
		fprintf(stderr, "migrated %llu of %zu pages\n",
			(unsigned long long)c.cpages, npages);
		exit(1);
	}
}

/* A buffer of @len bytes, 2 MiB aligned, on huge pages or not. */
static char *buffer(size_t len, int huge)
{
	char *raw = mmap(NULL, len + HUGE_SIZE, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char *buf;

	if (raw == MAP_FAILED) {
		perror("mmap");
		exit(1);
	}
	buf = (char *)(((uintptr_t)raw + HUGE_SIZE - 1) & ~(HUGE_SIZE - 1));
	if (madvise(buf, len, huge ? MADV_HUGEPAGE : MADV_NOHUGEPAGE)) {
		perror("madvise");
		exit(1);
	}
	return buf;
}

/* Fails unless every word of @buf holds its index plus @seed. */
static void check(const char *what, const unsigned long *buf, size_t words,
		  unsigned long seed)
{
	size_t i;

	for (i = 0; i < words; i++) {
		if (buf[i] != i + seed) {
			fprintf(stderr, "%s: word %zu is %lu, not %lu\n", what, i,
				buf[i], i + seed);
			exit(1);
		}
	}
}

/*
 * One round on device @d: fills a fresh buffer, migrates it to the device
 * and back; adds the seconds each way to @to_dev and @to_sys.
 */
static void round_trip(int fd, size_t len, int huge, unsigned long seed,
		       double *to_dev, double *to_sys)
{
	unsigned long *buf = (unsigned long *)buffer(len, huge);
	size_t words = len / sizeof(*buf), i, npages = len / 4096;
	void *out = malloc(len);
	double t0;

	if (!out)
		exit(1);

	for (i = 0; i < words; i++)
		buf[i] = i + seed;
	t0 = now();
	cmd(fd, HMM_DMIRROR_MIGRATE_TO_DEV, buf, out, npages);
	*to_dev += now() - t0;
	check("the device's copy", out, words, seed);
	t0 = now();
	cmd(fd, HMM_DMIRROR_MIGRATE_TO_SYS, buf, out, npages);
	*to_sys += now() - t0;
	check("after the round trip", buf, words, seed);
	munmap(buf, len);
	free(out);
}

/*
 * Migrates LAT_PAGES pages to the device, then reads one word of each from
 * the CPU: each read faults the page back through migrate_to_ram(). Stores
 * the read times in @lat (seconds).
 */
static void fault_latency(int fd, unsigned long seed, double *lat)
{
	size_t len = LAT_PAGES * 4096UL, i;
	unsigned long *buf = (unsigned long *)buffer(len, 0);
	void *out = malloc(len);

	if (!out)
		exit(1);
	for (i = 0; i < len / sizeof(*buf); i++)
		buf[i] = i + seed;
	cmd(fd, HMM_DMIRROR_MIGRATE_TO_DEV, buf, out, LAT_PAGES);
	free(out);
	for (i = 0; i < LAT_PAGES; i++) {
		size_t w = i * 4096 / sizeof(*buf);
		double t0 = now();
		unsigned long got = __atomic_load_n(&buf[w], __ATOMIC_RELAXED);

		lat[i] = now() - t0;
		if (got != w + seed) {
			fprintf(stderr, "page %zu read %lu after migrate_to_ram\n", i, got);
			exit(1);
		}
	}
	check("after migrate_to_ram", buf, len / sizeof(*buf), seed);
	munmap(buf, len);
}

int main(int argc, char **argv)
{
	int rounds = argc > 1 ? atoi(argv[1]) : 4;
	size_t len = (argc > 2 ? strtoul(argv[2], NULL, 0) : 16) << 20;
	double to_dev[2][2] = {}, to_sys[2][2] = {};
	double *lat[2], p50[2], p99[2];
	int r, d, huge, fd[2];
	const char *kind[2] = { "4kib", "thp" };
	unsigned long seed = 1;

	for (d = 0; d < 2; d++) {
		fd[d] = open(devices[d], O_RDWR);
		lat[d] = calloc((size_t)rounds * LAT_PAGES, sizeof(double));
		if (fd[d] < 0 || !lat[d]) {
			perror(devices[d]);
			return 1;
		}
	}
	for (r = 0; r < rounds; r++) {
		for (d = 0; d < 2; d++) {
			int dev = r % 2 ? 1 - d : d;

			for (huge = 0; huge < 2; huge++)
				round_trip(fd[dev], len, huge, seed++,
					   &to_dev[dev][huge], &to_sys[dev][huge]);
			fault_latency(fd[dev], seed++, lat[dev] + (size_t)r * LAT_PAGES);
		}
	}
	for (d = 0; d < 2; d++) {
		size_t n = (size_t)rounds * LAT_PAGES;

		qsort(lat[d], n, sizeof(double), cmp_double);
		p50[d] = lat[d][n / 2] * 1e6;
		p99[d] = lat[d][n * 99 / 100] * 1e6;
		for (huge = 0; huge < 2; huge++) {
			double mib = (double)rounds * len / (1 << 20);

			printf("bench: migrate_to_dev_%s_%s %.1f MiB/s\n", kind[huge],
			       names[d], mib / to_dev[d][huge]);
			printf("bench: migrate_to_sys_%s_%s %.1f MiB/s\n", kind[huge],
			       names[d], mib / to_sys[d][huge]);
		}
		printf("bench: migrate_to_ram_fault_%s p50 %.0f us, p99 %.0f us\n",
		       names[d], p50[d], p99[d]);
	}
	for (huge = 0; huge < 2; huge++) {
		printf("bench: migrate_to_dev_%s_rsva_vs_test_hmm %.2f ratio (target >= 1)\n",
		       kind[huge], to_dev[0][huge] / to_dev[1][huge]);
		printf("bench: migrate_to_sys_%s_rsva_vs_test_hmm %.2f ratio (target >= 1)\n",
		       kind[huge], to_sys[0][huge] / to_sys[1][huge]);
	}
	printf("bench: migrate_to_ram_fault_rsva_vs_test_hmm %.2f ratio of p50 speed (target >= 1)\n",
	       p50[0] / p50[1]);
	printf("bench-json: {\"migration\": {\"to_dev_4kib\": %.3f, \"to_sys_4kib\": %.3f, \"to_dev_thp\": %.3f, \"to_sys_thp\": %.3f, \"migrate_to_ram_p50\": %.3f}}\n",
	       to_dev[0][0] / to_dev[1][0], to_sys[0][0] / to_sys[1][0],
	       to_dev[0][1] / to_dev[1][1], to_sys[0][1] / to_sys[1][1],
	       p50[0] / p50[1]);
	return 0;
}
