// SPDX-License-Identifier: GPL-2.0
/*
 * rsva's HMM mirror against test_hmm in one boot, on the same buffers:
 * SNAPSHOT (hmm_range_fault without faulting) in pages per second and READ
 * (the device's view copied out, once mirrored) in MiB per second, from 64
 * KiB to 256 MiB, with the guest's memcpy of the same size as the limit.
 * The ratios are paired (rsva_bench_pairs.h, PAIRS pairs of runs of the
 * same calls); the rates are each side's calls over its time in them.
 * Prints "bench: NAME VALUE UNIT" lines and a JSON object.
 * Usage: rsva_mirror_bench [seconds per figure and side, default 1] [thp]
 * With "thp", the buffers are backed by transparent huge pages (figure
 * names end in _thp; no plot data); without, by 4 KiB pages.
 */
#include <sys/mman.h>
#include <time.h>

#include "rsva_sim_util.h"
#include "rsva_bench_pairs.h"
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

/* Pairs per figure: large buffers take a second per call. */
#define PAIRS 5

/*
 * A paired figure: @calls of @req over the buffer on each side (test_hmm is
 * SIDE_C), with each side's total time and calls, its refaults and its
 * fastest and slowest call.
 */
struct mirror_work {
	int fd[2];
	unsigned long req, calls;
	void *buf, *out;
	size_t npages;
	double total[2], fastest[2], slowest[2];
	unsigned long long done[2], faults[2];
};

static double run_side(int side, void *ctx)
{
	struct mirror_work *w = ctx;
	double t0 = now(), t = t0, last;
	unsigned long i;

	for (i = 0; i < w->calls; i++) {
		last = t;
		faults_seen = 0;
		cmd(w->fd[side], w->req, w->buf, w->out, w->npages);
		w->faults[side] += faults_seen;
		t = now();
		if (t - last > w->slowest[side])
			w->slowest[side] = t - last;
		if (t - last < w->fastest[side])
			w->fastest[side] = t - last;
	}
	w->total[side] += t - t0;
	w->done[side] += w->calls;
	return t - t0;
}

/*
 * Compares @req on both sides, each pair's runs lasting about @secs /
 * PAIRS (at least a call); calls per second of each side in @rate.
 */
static struct paired compare(struct mirror_work *w, unsigned long req, double secs,
			     double rate[2])
{
	double t0 = now();
	struct paired p;
	int d;

	w->req = req;
	cmd(w->fd[SIDE_C], req, w->buf, w->out, w->npages);
	t0 = now() - t0;
	w->calls = secs / PAIRS > t0 ? secs / PAIRS / t0 : 1;
	for (d = 0; d < 2; d++) {
		w->total[d] = w->slowest[d] = 0;
		w->fastest[d] = 1e9;
		w->done[d] = w->faults[d] = 0;
	}
	p = paired_compare(run_side, w, PAIRS);
	for (d = 0; d < 2; d++)
		rate[d] = w->done[d] / w->total[d];
	return p;
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
	struct mirror_work w = { 0 };
	struct paired sp, rp;
	int s, d, fd[2];

	for (d = 0; d < 2; d++) {
		fd[d] = open(devices[d], O_RDWR);
		if (fd[d] < 0) {
			perror(devices[d]);
			return 1;
		}
		w.fd[d] = fd[d];
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
		w.buf = buf;
		w.npages = npages;
		w.out = perm;
		sp = compare(&w, HMM_DMIRROR_SNAPSHOT, secs, snap);
		w.out = out;
		for (d = 0; d < 2; d++) {
			/* The first read mirrors the buffer; then copies only. */
			cmd(fd[d], HMM_DMIRROR_READ, buf, out, npages);
			if (memcmp(buf, out, len)) {
				fprintf(stderr, "%s: READ returned wrong data\n", names[d]);
				return 1;
			}
		}
		under = text_counter(MIRRORS, "copied_under_lock");
		after = text_counter(MIRRORS, "copied_after_lock");
		rp = compare(&w, HMM_DMIRROR_READ, secs, rd);
		if (memcmp(buf, out, len)) {
			fprintf(stderr, "READ returned wrong data\n");
			return 1;
		}
		for (d = 0; d < 2; d++) {
			snap[d] *= npages;
			rd[d] *= len / (double)(1 << 20);
			printf("bench: read_%s_%s_calls refaults %llu, fastest %.4f s, slowest %.4f s\n",
			       names[d], name, w.faults[d], w.fastest[d], w.slowest[d]);
			snaps[d][s] = snap[d];
			reads[d][s] = rd[d];
		}
		/* rsva's pages copied under its lock and after it. */
		printf("bench: read_rsva_%s_pages under the lock %lld, after it %lld\n", name,
		       text_counter(MIRRORS, "copied_under_lock") - under,
		       text_counter(MIRRORS, "copied_after_lock") - after);
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
		/* Speed ratios: 1 / the pairs' time ratios. */
		printf("bench: snapshot_rsva_vs_test_hmm_%s %.2f ratio (time ratios: %s; target >= 1)\n",
		       name, 1 / sp.median, paired_spread(&sp));
		printf("bench: read_rsva_vs_test_hmm_%s %.2f ratio (time ratios: %s; target >= 1.5)\n",
		       name, 1 / rp.median, paired_spread(&rp));
		printf("bench-json: {\"memcpy_%s\": %.0f, \"snapshot_rsva_vs_test_hmm_%s\": %.3f, \"read_rsva_vs_test_hmm_%s\": %.3f, \"read_rsva_of_memcpy_%s\": %.3f}\n",
		       name, cpy, name, 1 / sp.median, name, 1 / rp.median, name,
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
