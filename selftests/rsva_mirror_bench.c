// SPDX-License-Identifier: GPL-2.0
/*
 * rsva's HMM mirror against test_hmm in one boot, on the same buffers:
 * SNAPSHOT (hmm_range_fault without faulting) in pages per second and READ
 * (the device's view copied out, once mirrored) in MiB per second, at 64
 * and 256 MiB, with the guest's memcpy of the same size as the limit.
 * Prints "bench: NAME VALUE UNIT" lines and a JSON object.
 * Usage: rsva_mirror_bench [seconds per figure, default 1]
 */
#include <sys/mman.h>
#include <time.h>

#include "rsva_sim_util.h"
#include <test_hmm_uapi.h>

static const char *const devices[2] = { "/dev/hmm_dmirror0", "/dev/rsva_mirror0" };
static const char *const names[2] = { "test_hmm", "rsva" };

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Faults the commands reported, for the figures' honesty. */
static unsigned long long faults_seen;

static void cmd(int fd, unsigned long req, void *addr, void *ptr, size_t npages)
{
	struct hmm_dmirror_cmd c = {
		.addr = (uintptr_t)addr, .ptr = (uintptr_t)ptr, .npages = npages,
	};

	if (ioctl(fd, req, &c)) {
		perror("ioctl");
		exit(1);
	}
	faults_seen += c.faults;
}

/* The slowest and fastest call of the last rate(), in seconds. */
static double slowest, fastest;

/* Repeats @req over the whole buffer for about @secs; runs per second. */
static double rate(int fd, unsigned long req, void *buf, void *out, size_t npages, double secs)
{
	double t0 = now(), t = 0, last = 0;
	unsigned long n = 0;

	slowest = 0;
	fastest = 1e9;
	do {
		cmd(fd, req, buf, out, npages);
		n++;
		t = now() - t0;
		slowest = t - last > slowest ? t - last : slowest;
		fastest = t - last < fastest ? t - last : fastest;
		last = t;
	} while (t < secs);
	return n / t;
}

int main(int argc, char **argv)
{
	double secs = argc > 1 ? atof(argv[1]) : 1.0;
	size_t sizes[2] = { 64UL << 20, 256UL << 20 };
	int s, d, fd[2];

	for (d = 0; d < 2; d++) {
		fd[d] = open(devices[d], O_RDWR);
		if (fd[d] < 0) {
			perror(devices[d]);
			return 1;
		}
	}
	for (s = 0; s < 2; s++) {
		size_t len = sizes[s], npages = len / 4096;
		char *buf = mmap(NULL, len, PROT_READ | PROT_WRITE,
				 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		char *out = mmap(NULL, len, PROT_READ | PROT_WRITE,
				 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		unsigned char *perm = malloc(npages);
		double t0, t, cpy, snap[2], rd[2];
		unsigned long n = 0;

		if (buf == MAP_FAILED || out == MAP_FAILED || !perm)
			return 1;
		/*
		 * 4 KiB pages, set before the buffers are populated: no
		 * khugepaged collapse (an invalidation) in the middle of a
		 * figure, and no THP-backed buffers, with which rsva's READ
		 * sometimes runs 10x slower under TCG (see README).
		 */
		madvise(buf, len, MADV_NOHUGEPAGE);
		madvise(out, len, MADV_NOHUGEPAGE);
		memset(out, 0, len);
		fill_random(buf, len, 7);
		t0 = now();
		do {
			memcpy(out, buf, len);
			n++;
			t = now() - t0;
		} while (t < secs);
		cpy = n * (len >> 20) / t;
		for (d = 0; d < 2; d++) {
			snap[d] = rate(fd[d], HMM_DMIRROR_SNAPSHOT, buf, perm, npages, secs) * npages;
			/* The first read mirrors the buffer; then copies only. */
			cmd(fd[d], HMM_DMIRROR_READ, buf, out, npages);
			if (memcmp(buf, out, len)) {
				fprintf(stderr, "%s: READ returned wrong data\n", names[d]);
				return 1;
			}
			faults_seen = 0;
			rd[d] = rate(fd[d], HMM_DMIRROR_READ, buf, out, npages, secs) * (len >> 20);
			printf("bench: read_%s_%zumib_calls refaults %llu, fastest %.3f s, slowest %.3f s\n",
			       names[d], len >> 20, faults_seen, fastest, slowest);
		}
		printf("bench: memcpy_%zumib %.0f MiB/s\n", len >> 20, cpy);
		for (d = 0; d < 2; d++) {
			printf("bench: snapshot_%s_%zumib %.0f pages/s\n", names[d], len >> 20, snap[d]);
			printf("bench: read_%s_%zumib %.0f MiB/s (%.2f of memcpy)\n", names[d],
			       len >> 20, rd[d], rd[d] / cpy);
		}
		printf("bench: snapshot_rsva_vs_test_hmm_%zumib %.2f ratio (target >= 1)\n",
		       len >> 20, snap[1] / snap[0]);
		printf("bench: read_rsva_vs_test_hmm_%zumib %.2f ratio (target >= 1.5)\n",
		       len >> 20, rd[1] / rd[0]);
		printf("bench-json: {\"memcpy_%zumib\": %.0f, \"snapshot_rsva_vs_test_hmm_%zumib\": %.3f, \"read_rsva_vs_test_hmm_%zumib\": %.3f, \"read_rsva_of_memcpy_%zumib\": %.3f}\n",
		       len >> 20, cpy, len >> 20, snap[1] / snap[0], len >> 20, rd[1] / rd[0],
		       len >> 20, rd[1] / cpy);
		munmap(buf, len);
		munmap(out, len);
		free(perm);
	}
	return 0;
}
