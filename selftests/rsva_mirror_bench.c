// SPDX-License-Identifier: GPL-2.0
/*
 * rsva's HMM mirror against test_hmm in one boot, on the same buffers:
 * SNAPSHOT (hmm_range_fault without faulting) in pages per second and READ
 * (the device's view copied out, once mirrored) in MiB per second, from 64
 * KiB to 256 MiB, with the guest's memcpy of the same size as the limit.
 * Prints "bench: NAME VALUE UNIT" lines and a JSON object.
 * Usage: rsva_mirror_bench [seconds per figure, default 1] [thp]
 * With "thp", the buffers are backed by transparent huge pages (figure
 * names end in _thp; no plot data); without, by 4 KiB pages.
 */
#include <sys/mman.h>
#include <time.h>

#include "rsva_sim_util.h"
#include <test_hmm_uapi.h>

/* rsva's mirror counters (debugfs). */
#define MIRRORS "/sys/kernel/debug/rsva/mirrors"

static const char *const devices[2] = { "/dev/hmm_dmirror0", "/dev/rsva_mirror0" };
static const char *const names[2] = { "test_hmm", "rsva" };

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

#define NSIZES 5

/* "64kib", "16mib_thp": the size (and page kind) in figure names. */
static const char *size_name(size_t len, const char *sfx)
{
	static char name[32];

	if (len < (1UL << 20))
		snprintf(name, sizeof(name), "%zukib%s", len >> 10, sfx);
	else
		snprintf(name, sizeof(name), "%zumib%s", len >> 20, sfx);
	return name;
}

/* Prints @n figures as a JSON array. */
static void json_array(const char *key, const double *v, int n, const char *end)
{
	int i;

	printf("\"%s\": [", key);
	for (i = 0; i < n; i++)
		printf("%s%.0f", i ? ", " : "", v[i]);
	printf("]%s", end);
}

/*
 * MiB/s of pread() of a memfd holding @len bytes of @buf into @out: the
 * kernel's own copy_to_user() from pages it holds, the limit of any copy
 * from kernel to user memory in this guest (READ's included).
 */
static double kernel_copy(const char *buf, char *out, size_t len, double secs)
{
	int fd = memfd_create("rsva_mirror_bench", 0);
	double t0, t;
	unsigned long n = 0;

	if (fd < 0 || write(fd, buf, len) != (ssize_t)len) {
		perror("memfd");
		exit(1);
	}
	t0 = now();
	do {
		if (pread(fd, out, len, 0) != (ssize_t)len) {
			perror("pread");
			exit(1);
		}
		n++;
		t = now() - t0;
	} while (t < secs);
	close(fd);
	if (memcmp(buf, out, len)) {
		fprintf(stderr, "pread returned wrong data\n");
		exit(1);
	}
	return n * len / t / (1 << 20);
}

int main(int argc, char **argv)
{
	double secs = argc > 1 ? atof(argv[1]) : 1.0;
	int thp = argc > 2 && !strcmp(argv[2], "thp");
	const char *sfx = thp ? "_thp" : "";
	static const size_t sizes[NSIZES] = {
		64UL << 10, 1UL << 20, 16UL << 20, 64UL << 20, 256UL << 20,
	};
	double kib[NSIZES], cpys[NSIZES], snaps[2][NSIZES], reads[2][NSIZES];
	int s, d, fd[2];

	for (d = 0; d < 2; d++) {
		fd[d] = open(devices[d], O_RDWR);
		if (fd[d] < 0) {
			perror(devices[d]);
			return 1;
		}
	}
	for (s = 0; s < NSIZES; s++) {
		size_t len = sizes[s], npages = len / 4096;
		const char *name = size_name(len, sfx);
		char *buf = mmap(NULL, len, PROT_READ | PROT_WRITE,
				 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		char *out = mmap(NULL, len, PROT_READ | PROT_WRITE,
				 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		unsigned char *perm = malloc(npages);
		double t0, t, cpy, kcpy, snap[2], rd[2];
		long long under, after;
		unsigned long n = 0;

		if (buf == MAP_FAILED || out == MAP_FAILED || !perm)
			return 1;
		/*
		 * Set before the buffers are populated: 4 KiB pages give no
		 * khugepaged collapse (an invalidation) in the middle of a
		 * figure; "thp" asks for huge pages from the first touch.
		 */
		madvise(buf, len, thp ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
		madvise(out, len, thp ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
		memset(out, 0, len);
		fill_random(buf, len, 7);
		t0 = now();
		do {
			memcpy(out, buf, len);
			n++;
			t = now() - t0;
		} while (t < secs);
		cpy = n * len / t / (1 << 20);
		kcpy = kernel_copy(buf, out, len, secs);
		for (d = 0; d < 2; d++) {
			snap[d] = rate(fd[d], HMM_DMIRROR_SNAPSHOT, buf, perm, npages, secs) * npages;
			/* The first read mirrors the buffer; then copies only. */
			cmd(fd[d], HMM_DMIRROR_READ, buf, out, npages);
			if (memcmp(buf, out, len)) {
				fprintf(stderr, "%s: READ returned wrong data\n", names[d]);
				return 1;
			}
			faults_seen = 0;
			under = text_counter(MIRRORS, "copied_under_lock");
			after = text_counter(MIRRORS, "copied_after_lock");
			rd[d] = rate(fd[d], HMM_DMIRROR_READ, buf, out, npages, secs) * len /
				(1 << 20);
			printf("bench: read_%s_%s_calls refaults %llu, fastest %.4f s, slowest %.4f s\n",
			       names[d], name, faults_seen, fastest, slowest);
			/* rsva's pages copied under its lock and after it. */
			if (d == 1)
				printf("bench: read_rsva_%s_pages under the lock %lld, after it %lld\n",
				       name, text_counter(MIRRORS, "copied_under_lock") - under,
				       text_counter(MIRRORS, "copied_after_lock") - after);
			snaps[d][s] = snap[d];
			reads[d][s] = rd[d];
		}
		kib[s] = len >> 10;
		cpys[s] = cpy;
		printf("bench: memcpy_%s %.0f MiB/s\n", name, cpy);
		printf("bench: kernel_copy_%s %.0f MiB/s (%.2f of memcpy)\n", name, kcpy,
		       kcpy / cpy);
		for (d = 0; d < 2; d++) {
			printf("bench: snapshot_%s_%s %.0f pages/s\n", names[d], name, snap[d]);
			printf("bench: read_%s_%s %.0f MiB/s (%.2f of memcpy)\n", names[d],
			       name, rd[d], rd[d] / cpy);
		}
		printf("bench: snapshot_rsva_vs_test_hmm_%s %.2f ratio (target >= 1)\n",
		       name, snap[1] / snap[0]);
		printf("bench: read_rsva_vs_test_hmm_%s %.2f ratio (target >= 1.5)\n",
		       name, rd[1] / rd[0]);
		printf("bench-json: {\"memcpy_%s\": %.0f, \"snapshot_rsva_vs_test_hmm_%s\": %.3f, \"read_rsva_vs_test_hmm_%s\": %.3f, \"read_rsva_of_memcpy_%s\": %.3f}\n",
		       name, cpy, name, snap[1] / snap[0], name, rd[1] / rd[0], name,
		       rd[1] / cpy);
		munmap(buf, len);
		munmap(out, len);
		free(perm);
	}
	if (thp)
		return 0;
	printf("bench-json: {\"mirror_vs_range\": {");
	json_array("kib", kib, NSIZES, ", ");
	json_array("memcpy_mib_per_s", cpys, NSIZES, ", ");
	json_array("snapshot_test_hmm_pages_per_s", snaps[0], NSIZES, ", ");
	json_array("snapshot_rsva_pages_per_s", snaps[1], NSIZES, ", ");
	json_array("read_test_hmm_mib_per_s", reads[0], NSIZES, ", ");
	json_array("read_rsva_mib_per_s", reads[1], NSIZES, "}}\n");
	return 0;
}
