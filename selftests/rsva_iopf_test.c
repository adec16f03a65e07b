// SPDX-License-Identifier: GPL-2.0
/*
 * I/O page faults of the simulated accelerator (rsva_sim.ko), the same
 * cases whichever implementation serves iommu_sva_bind_device(): the
 * device's page walk faults nothing in, it sends page request groups
 * through iommu_report_device_fault() and the SVA domain's fault handler
 * answers each once (or, with RSVA_SIM_F_FAULT_REPORT, the descriptor ends
 * at the first missing page). Each case checks the data, the completion
 * record and the page request counters of the device: every group sent got
 * exactly one response, and no response was stray, no group was left
 * unanswered by a PASID's drain and none was given up on.
 *
 * Fixtures: "iopf" (every case, run under rsva_sim's default personality)
 * and "release" (the cases where the address space or the bond goes away
 * with page requests in flight, also run under the other personalities
 * with -f release).
 */
#include <dirent.h>
#include <linux/magic.h>
#include <pthread.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <sys/wait.h>

#include "kselftest_harness.h"
#include "rsva_sim_util.h"

#define PAGE 4096UL
#define MIB (1UL << 20)
#define HUGE (2UL << 20)
#define FAULTED (RSVA_SIM_FAULT_INFO_REQUESTED | RSVA_SIM_FAULT_INFO_WRITE)

/* --- memory ---------------------------------------------------------------- */

/* Anonymous private memory that nothing touched; NULL on failure. */
static void *map(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	return p == MAP_FAILED ? NULL : p;
}

/* The same, in 4 KiB pages only: one page request per page. */
static void *map_small(size_t len)
{
	void *p = map(len);

	if (p && madvise(p, len, MADV_NOHUGEPAGE)) {
		munmap(p, len);
		return NULL;
	}
	return p;
}

/* Pages of [@p, @p + @len) mapped in this process (mincore()), or -1. */
static long resident(const void *p, size_t len)
{
	size_t n = (len + PAGE - 1) / PAGE, i;
	unsigned char *vec = malloc(n);
	long count = 0;

	if (!vec || mincore((void *)p, len, vec)) {
		free(vec);
		return -1;
	}
	for (i = 0; i < n; i++)
		count += vec[i] & 1;
	free(vec);
	return count;
}

/*
 * Whether @len bytes at @p hold the FILL pattern @pattern, the first of
 * them at phase @phase of it; the offset of the first wrong byte otherwise.
 */
static long pattern_mismatch(const void *p, size_t len, uint64_t pattern, size_t phase)
{
	const uint8_t *b = p, *pat = (const uint8_t *)&pattern;
	size_t i;

	for (i = 0; i < len; i++)
		if (b[i] != pat[(phase + i) % 8])
			return i;
	return -1;
}

/* Offset of the first byte of @len at @p that is not @c, or -1. */
static long byte_mismatch(const void *p, size_t len, int c)
{
	const uint8_t *b = p;
	size_t i;

	for (i = 0; i < len; i++)
		if (b[i] != (uint8_t)c)
			return i;
	return -1;
}

/* crc32_le() of rsva_sim_util.h, a table at a time (megabytes are checked). */
static uint32_t crc32_fast(uint32_t crc, const void *buf, size_t len)
{
	static uint32_t table[256];
	const uint8_t *p = buf;
	uint32_t c;
	int i, k;

	if (!table[1]) {
		for (i = 0; i < 256; i++) {
			c = i;
			for (k = 0; k < 8; k++)
				c = (c >> 1) ^ (0xedb88320 & -(c & 1));
			table[i] = c;
		}
	}
	while (len--)
		crc = table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
	return crc;
}

/* Runs @d (with a completion record) on @fd; 0 or -errno. */
static int run(int fd, struct rsva_sim_desc *d, struct rsva_sim_completion *c)
{
	d->flags &= RSVA_SIM_F_FAULT_REPORT;
	return accel_run(fd, d, c);
}

static struct rsva_sim_desc desc(int op, const void *src, void *dst, size_t len,
				 uint64_t pattern)
{
	struct rsva_sim_desc d = {
		.op = op, .src = (uintptr_t)src, .dst = (uintptr_t)dst, .len = len,
		.pattern = pattern,
	};

	return d;
}

/* --- the page request counters of a device (debugfs devN/counters) --------- */

struct prq {
	long long requests, groups, success, invalid, failure;
	long long stray, undrained, timeouts, stale, stale_walk;
};

/* The value after "@key " in a buffer of "key value" lines, or -1. */
static long long key_in(const char *buf, const char *key)
{
	size_t klen = strlen(key);
	const char *p;

	for (p = buf; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
		if (!strncmp(p, key, klen) && p[klen] == ' ')
			return strtoll(p + klen + 1, NULL, 10);
	return -1;
}

/* One read of device @dev's counters; 0 or -1 when a counter is missing. */
static int prq_read(int dev, struct prq *c)
{
	char file[32], buf[4096];

	snprintf(file, sizeof(file), "dev%d/counters", dev);
	if (sim_read(file, buf, sizeof(buf)) < 0)
		return -1;
	c->requests = key_in(buf, "page_requests");
	c->groups = key_in(buf, "page_groups");
	c->success = key_in(buf, "resp_success");
	c->invalid = key_in(buf, "resp_invalid");
	c->failure = key_in(buf, "resp_failure");
	c->stray = key_in(buf, "resp_stray");
	c->undrained = key_in(buf, "resp_undrained");
	c->timeouts = key_in(buf, "resp_timeouts");
	c->stale = key_in(buf, "stale_translations");
	c->stale_walk = key_in(buf, "stale_walk_accesses");
	return c->requests < 0 || c->groups < 0 || c->success < 0 || c->invalid < 0 ||
	       c->failure < 0 || c->stray < 0 || c->undrained < 0 || c->timeouts < 0 ||
	       c->stale < 0 || c->stale_walk < 0 ? -1 : 0;
}

static long long answered(const struct prq *c)
{
	return c->success + c->invalid + c->failure;
}

/* Whether every group device @dev sent since @b was answered. */
static bool prq_settled(int dev, const struct prq *b, struct prq *c)
{
	return !prq_read(dev, c) && c->groups - b->groups == answered(c) - answered(b);
}

/*
 * Device @dev since @b: once the groups in flight are answered (10 s at
 * most), every group sent got exactly one response, none was stray, none
 * was left unanswered by a drain nor given up on, and no DMA used a stale
 * translation. The counters then go to @now (if not NULL).
 */
static void prq_check(struct __test_metadata *_metadata, int dev, const struct prq *b,
		      struct prq *now)
{
	struct prq c;
	int i;

	for (i = 0; i < 1000 && !prq_settled(dev, b, &c); i++)
		usleep(10000);
	ASSERT_EQ(0, prq_read(dev, &c)) TH_LOG("rsva_sim%d: no page request counters", dev);
	EXPECT_EQ(c.groups - b->groups, answered(&c) - answered(b))
		TH_LOG("rsva_sim%d: %lld groups sent, %lld answered (%lld success, %lld invalid, %lld failure)",
		       dev, c.groups - b->groups, answered(&c) - answered(b),
		       c.success - b->success, c.invalid - b->invalid, c.failure - b->failure);
	EXPECT_EQ(b->stray, c.stray) TH_LOG("rsva_sim%d: responses to no pending group", dev);
	EXPECT_EQ(b->undrained, c.undrained)
		TH_LOG("rsva_sim%d: groups unanswered after their PASID's drain", dev);
	EXPECT_EQ(b->timeouts, c.timeouts) TH_LOG("rsva_sim%d: groups never answered", dev);
	EXPECT_EQ(b->stale, c.stale) TH_LOG("rsva_sim%d: DMA through a stale IOTLB entry", dev);
	EXPECT_EQ(b->stale_walk, c.stale_walk)
		TH_LOG("rsva_sim%d: DMA through a walk an invalidation overtook", dev);
	if (now)
		*now = c;
}

/* Waits (5 s at most) until device @dev sent a group after @b; 0 or -1. */
static int wait_groups(int dev, const struct prq *b)
{
	struct prq c;
	int i;

	for (i = 0; i < 5000; i++) {
		if (!prq_read(dev, &c) && c.groups > b->groups)
			return 0;
		usleep(1000);
	}
	return -1;
}

/* Polls until the PASID entry of @pasid on @dev is in @state (5 s at most). */
static int wait_pasid_state(int dev, long pasid, int state)
{
	int i;

	for (i = 0; i < 500 && sim_pasid_state(dev, pasid) != state; i++)
		usleep(10000);
	return sim_pasid_state(dev, pasid);
}

/* --- fixtures ---------------------------------------------------------------- */

FIXTURE(iopf) {
	int fd;
	struct prq b;
	struct rsva_sim_stats s;
	double t0;
};

FIXTURE_SETUP(iopf)
{
	self->t0 = now();
	self->fd = accel_open(0);
	ASSERT_LE(0, self->fd) TH_LOG("/dev/rsva_accel0: %s", strerror(errno));
	ASSERT_EQ(0, prq_read(0, &self->b)) TH_LOG("rsva_sim0 has no page request counters");
	ASSERT_EQ(0, accel_stats(self->fd, &self->s));
}

/* The harness does not time the tests: the plan's run time is watched. */
FIXTURE_TEARDOWN(iopf)
{
	close(self->fd);
	TH_LOG("%.1f s", now() - self->t0);
}

FIXTURE(release) {
	struct prq b;
	double t0;
};

FIXTURE_SETUP(release)
{
	self->t0 = now();
	ASSERT_EQ(0, prq_read(0, &self->b)) TH_LOG("rsva_sim0 has no page request counters");
}

FIXTURE_TEARDOWN(release)
{
	TH_LOG("%.1f s", now() - self->t0);
}

/* --- 1. first touch by the device ------------------------------------------- */

/*
 * DMA into and out of fresh anonymous memory that the CPU never touched:
 * every page comes through a page request, written pages get their data,
 * read pages read as zeroes (the zero page), and every group is answered
 * SUCCESS.
 */
TEST_F_TIMEOUT(iopf, first_touch_dma_faults_pages_in, 120)
{
	alignas(32) struct rsva_sim_completion c;
	const size_t len = 4 * MIB, pages = len / PAGE;
	const uint64_t pattern = 0x0123456789abcdefULL;
	char *a = map_small(len), *b = map_small(len), *z = map_small(len);
	char *d = map_small(len), *e = map_small(len), *zeroes;
	struct rsva_sim_stats s;
	struct rsva_sim_desc x;
	struct prq p;

	ASSERT_TRUE(a && b && z && d && e);
	memset(d, 0xaa, len);
	/* Nothing of a, b, z and e is mapped yet: every page must be asked for. */
	ASSERT_EQ(0, resident(a, len));
	ASSERT_EQ(0, resident(b, len));
	ASSERT_EQ(0, resident(z, len));
	ASSERT_EQ(0, resident(e, len));

	/* A fill of never-touched memory: write faults. */
	x = desc(RSVA_SIM_OP_FILL, NULL, a, len, pattern);
	ASSERT_EQ(0, run(self->fd, &x, &c));
	EXPECT_EQ(RSVA_SIM_STATUS_SUCCESS, c.status) TH_LOG("fault at %#llx", c.fault_addr);
	EXPECT_EQ(len, c.bytes_completed);
	EXPECT_EQ(pages, resident(a, len));

	/* A copy into never-touched memory. */
	x = desc(RSVA_SIM_OP_MEMCPY, a, b, len, 0);
	ASSERT_EQ(0, run(self->fd, &x, &c));
	EXPECT_EQ(RSVA_SIM_STATUS_SUCCESS, c.status) TH_LOG("fault at %#llx", c.fault_addr);
	EXPECT_EQ(len, c.bytes_completed);
	EXPECT_EQ(pages, resident(b, len));

	/* A copy out of never-touched memory: zeroes over the 0xaa. */
	x = desc(RSVA_SIM_OP_MEMCPY, z, d, len, 0);
	ASSERT_EQ(0, run(self->fd, &x, &c));
	EXPECT_EQ(RSVA_SIM_STATUS_SUCCESS, c.status) TH_LOG("fault at %#llx", c.fault_addr);
	EXPECT_EQ(len, c.bytes_completed);
	EXPECT_EQ(pages, resident(z, len)) TH_LOG("the reads mapped the zero page");

	/* A CRC of never-touched memory: that of zeroes. */
	x = desc(RSVA_SIM_OP_CRC32, e, NULL, len, 0xffffffff);
	ASSERT_EQ(0, run(self->fd, &x, &c));
	EXPECT_EQ(RSVA_SIM_STATUS_SUCCESS, c.status) TH_LOG("fault at %#llx", c.fault_addr);
	zeroes = calloc(1, len);
	ASSERT_NE(NULL, zeroes);
	EXPECT_EQ(crc32_fast(0xffffffff, zeroes, len), c.crc);
	free(zeroes);

	EXPECT_EQ(-1, pattern_mismatch(a, len, pattern, 0));
	EXPECT_EQ(-1, pattern_mismatch(b, len, pattern, 0));
	EXPECT_EQ(-1, byte_mismatch(d, len, 0));
	EXPECT_EQ(-1, byte_mismatch(z, len, 0));

	ASSERT_EQ(0, accel_stats(self->fd, &s));
	prq_check(_metadata, 0, &self->b, &p);
	/* a, b, z and e: each page asked for once (groups ask ahead). */
	EXPECT_LE(4 * pages, s.page_requests - self->s.page_requests);
	EXPECT_EQ(s.page_requests - self->s.page_requests, p.requests - self->b.requests)
		TH_LOG("the device's requests are this queue's");
	EXPECT_LE(4 * pages / 4, p.groups - self->b.groups);
	EXPECT_EQ(p.groups - self->b.groups, p.success - self->b.success)
		TH_LOG("%lld invalid, %lld failure", p.invalid - self->b.invalid,
		       p.failure - self->b.failure);
	EXPECT_EQ(0, s.faults - self->s.faults);
	/* The ioctl's device counters are debugfs's. */
	EXPECT_EQ(p.requests, s.dev_page_requests);
	EXPECT_EQ(p.groups, s.dev_page_groups);
	EXPECT_EQ(p.success, s.dev_resp_success);
	EXPECT_EQ(p.stray, s.dev_resp_stray);
	EXPECT_EQ(p.undrained, s.dev_resp_undrained);
	EXPECT_EQ(p.timeouts, s.dev_resp_timeouts);
	TH_LOG("%llu page requests in %lld groups for 4 x %zu pages",
	       s.page_requests - self->s.page_requests, p.groups - self->b.groups, pages);
}

/* --- 2. writes the mapping does not allow ------------------------------------- */

/* Expects @x to end at its first byte, a write the fault handler refused. */
static void expect_refused_at_start(struct __test_metadata *_metadata, int fd,
				    struct rsva_sim_desc *x, const char *what)
{
	alignas(32) struct rsva_sim_completion c;

	ASSERT_EQ(0, run(fd, x, &c));
	EXPECT_EQ(RSVA_SIM_STATUS_PAGE_FAULT, c.status) TH_LOG("%s", what);
	EXPECT_EQ(FAULTED, c.fault_info) TH_LOG("%s", what);
	EXPECT_EQ(x->dst, c.fault_addr) TH_LOG("%s", what);
	EXPECT_EQ(0, c.bytes_completed) TH_LOG("%s", what);
}

/*
 * A device write to read-only memory is asked for and refused (INVALID):
 * the descriptor ends with a page fault at the first page, the fault info
 * says requested and write, and nothing was written: anonymous PROT_READ
 * memory never touched and populated, a read-only private mapping of a
 * file (the file unchanged), and a fill that runs from a writable page
 * into a read-only one (the first page written, the second not).
 */
TEST_F(iopf, device_writes_to_read_only_memory_are_refused)
{
	alignas(32) struct rsva_sim_completion c;
	const size_t len = 4 * PAGE;
	const uint64_t pattern = 0x1122334455667788ULL;
	char *ro = mmap(NULL, len, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char *pop = map_small(len), *two = map_small(2 * PAGE), *src = map(len);
	char path[] = "/tmp/rsva_iopf_ro.XXXXXX", *file, *back = malloc(len);
	struct rsva_sim_stats s;
	struct rsva_sim_desc x;
	struct prq p;
	int fd;

	ASSERT_NE(MAP_FAILED, ro);
	ASSERT_TRUE(pop && two && src && back);
	fill_random(src, len, 21);

	/* Never touched, PROT_READ. */
	x = desc(RSVA_SIM_OP_FILL, NULL, ro, len, pattern);
	expect_refused_at_start(_metadata, self->fd, &x, "anonymous PROT_READ");
	EXPECT_EQ(-1, byte_mismatch(ro, len, 0));

	/* Populated, then made read-only: present, but not writable. */
	memset(pop, 0x5a, len);
	ASSERT_EQ(0, mprotect(pop, len, PROT_READ));
	x = desc(RSVA_SIM_OP_MEMCPY, src, pop, len, 0);
	expect_refused_at_start(_metadata, self->fd, &x, "populated, mprotect(PROT_READ)");
	EXPECT_EQ(-1, byte_mismatch(pop, len, 0x5a));

	/* A read-only private mapping of a file. */
	fd = mkstemp(path);
	ASSERT_LE(0, fd);
	ASSERT_EQ(len, pwrite(fd, src, len, 0));
	close(fd);
	fd = open(path, O_RDONLY);
	ASSERT_LE(0, fd);
	file = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
	ASSERT_NE(MAP_FAILED, file);
	x = desc(RSVA_SIM_OP_FILL, NULL, file, len, pattern);
	expect_refused_at_start(_metadata, self->fd, &x, "read-only MAP_PRIVATE file");
	EXPECT_EQ(0, memcmp(file, src, len)) TH_LOG("the mapping changed");
	ASSERT_EQ(len, pread(fd, back, len, 0));
	EXPECT_EQ(0, memcmp(back, src, len)) TH_LOG("the file changed");
	munmap(file, len);
	close(fd);
	unlink(path);

	/* From a writable page into a read-only one. */
	memset(two + PAGE, 0x33, PAGE);
	ASSERT_EQ(0, mprotect(two + PAGE, PAGE, PROT_READ));
	x = desc(RSVA_SIM_OP_FILL, NULL, two, 2 * PAGE, pattern);
	ASSERT_EQ(0, run(self->fd, &x, &c));
	EXPECT_EQ(RSVA_SIM_STATUS_PAGE_FAULT, c.status);
	EXPECT_EQ(FAULTED, c.fault_info);
	EXPECT_EQ((uintptr_t)two + PAGE, c.fault_addr);
	EXPECT_EQ(PAGE, c.bytes_completed);
	EXPECT_EQ(-1, pattern_mismatch(two, PAGE, pattern, 0));
	EXPECT_EQ(-1, byte_mismatch(two + PAGE, PAGE, 0x33));

	ASSERT_EQ(0, accel_stats(self->fd, &s));
	EXPECT_EQ(4, s.faults - self->s.faults);
	prq_check(_metadata, 0, &self->b, &p);
	/* At least one refusal each; the writable page was granted. */
	EXPECT_LE(4, p.invalid - self->b.invalid);
	EXPECT_LE(1, p.success - self->b.success);
	EXPECT_EQ(0, p.failure - self->b.failure);
	munmap(ro, len);
	munmap(pop, len);
	munmap(two, 2 * PAGE);
	munmap(src, len);
	free(back);
}

/* --- 3. report mode ----------------------------------------------------------- */

/*
 * RSVA_SIM_F_FAULT_REPORT: no page request, the descriptor ends at the
 * first page that is not present (not writable, for a write), with the
 * bytes done so far; the submitter touches that page and submits the rest.
 * A copy, 256 bytes into the pages, of 16 pages: source pages 0-7 and
 * destination pages 0-3 touched by the CPU, the others not, so it ends at
 * destination pages 4-7 (writes), then at source page k and destination
 * page k for k = 8-15 (a read, then a write): 20 partial completions.
 */
TEST_F(iopf, report_mode_ends_at_the_first_missing_page)
{
	alignas(32) struct rsva_sim_completion c;
	const size_t n = 16, off = 256, len = n * PAGE - off;
	char *src = map_small(n * PAGE), *dst = map_small(n * PAGE);
	bool src_in[16] = { 0 }, dst_in[16] = { 0 };
	size_t done = 0, k, rounds = 0;
	struct rsva_sim_stats s;
	struct rsva_sim_desc x;
	struct prq p;

	ASSERT_TRUE(src && dst);
	fill_random(src, 8 * PAGE, 5);
	memset(dst, 0, 4 * PAGE);
	for (k = 0; k < 8; k++)
		src_in[k] = true;
	for (k = 0; k < 4; k++)
		dst_in[k] = true;
	ASSERT_EQ(8, resident(src, n * PAGE));
	ASSERT_EQ(4, resident(dst, n * PAGE));

	for (;;) {
		uintptr_t want = 0;
		bool is_write = false;

		x = desc(RSVA_SIM_OP_MEMCPY, src + off + done, dst + off + done, len - done, 0);
		x.flags = RSVA_SIM_F_FAULT_REPORT;
		ASSERT_EQ(0, run(self->fd, &x, &c));
		/* The copy reads a page of the source, then writes that of the destination. */
		for (k = (off + done) / PAGE; k < n && !want; k++) {
			if (!src_in[k]) {
				want = (uintptr_t)src + k * PAGE;
			} else if (!dst_in[k]) {
				want = (uintptr_t)dst + k * PAGE;
				is_write = true;
			}
		}
		if (!want) {
			EXPECT_EQ(RSVA_SIM_STATUS_SUCCESS, c.status)
				TH_LOG("fault at %#llx", c.fault_addr);
			EXPECT_EQ(len - done, c.bytes_completed);
			break;
		}
		ASSERT_EQ(RSVA_SIM_STATUS_PAGE_FAULT, c.status)
			TH_LOG("round %zu: expected a fault at %#lx", rounds, want);
		ASSERT_EQ(want, c.fault_addr) TH_LOG("round %zu", rounds);
		EXPECT_EQ(is_write ? RSVA_SIM_FAULT_INFO_WRITE : 0, c.fault_info)
			TH_LOG("round %zu: no request, the access's direction", rounds);
		k = (want - (uintptr_t)(is_write ? dst : src)) / PAGE;
		ASSERT_EQ(k * PAGE - off - done, c.bytes_completed) TH_LOG("round %zu", rounds);
		done += c.bytes_completed;
		/* Make the page present: written for a write, read for a read. */
		if (is_write) {
			dst[k * PAGE] = 1;
			dst_in[k] = true;
		} else {
			ASSERT_EQ(0, __atomic_load_n(src + k * PAGE, __ATOMIC_RELAXED));
			src_in[k] = true;
		}
		rounds++;
		ASSERT_GT(64, rounds);
	}
	EXPECT_EQ(20, rounds);
	EXPECT_EQ(0, memcmp(src + off, dst + off, len));
	EXPECT_EQ(-1, byte_mismatch(src + 8 * PAGE, 8 * PAGE, 0));

	ASSERT_EQ(0, accel_stats(self->fd, &s));
	EXPECT_EQ(0, s.page_requests - self->s.page_requests) TH_LOG("report mode asks for none");
	EXPECT_EQ(rounds, s.faults - self->s.faults);
	prq_check(_metadata, 0, &self->b, &p);
	EXPECT_EQ(0, p.requests - self->b.requests);
	EXPECT_EQ(0, p.groups - self->b.groups);
	munmap(src, n * PAGE);
	munmap(dst, n * PAGE);
}

/* --- 4. copy on write after fork() ------------------------------------------ */

struct child_report {
	int status;		/* completion status of the child's DMA */
	long mismatch;		/* first wrong byte the child saw, or -1 */
	unsigned long long requests;	/* its queue's page requests */
};

/*
 * The parent filled the buffer and forked; the child, bound through its
 * own open, fills it by DMA: the write breaks copy on write through page
 * requests and lands in the child's copy only.
 */
TEST_F(iopf, child_device_write_after_fork_lands_in_its_copy)
{
	const size_t len = 8 * PAGE;
	const uint64_t pattern = 0xc0c0c0c0c1c1c1c1ULL;
	char *buf = map_small(len);
	struct child_report r = { .status = -1 };
	int pipefd[2], status;
	pid_t pid;

	ASSERT_NE(NULL, buf);
	memset(buf, 'P', len);
	ASSERT_EQ(0, pipe(pipefd));
	pid = fork();
	ASSERT_LE(0, pid);
	if (!pid) {
		alignas(32) struct rsva_sim_completion c;
		struct rsva_sim_desc x = desc(RSVA_SIM_OP_FILL, NULL, buf, len, pattern);
		struct rsva_sim_stats s;
		int fd = accel_open(0);

		if (fd < 0 || run(fd, &x, &c) || accel_stats(fd, &s))
			_exit(1);
		r.status = c.status;
		r.mismatch = pattern_mismatch(buf, len, pattern, 0);
		r.requests = s.page_requests;
		_exit(write(pipefd[1], &r, sizeof(r)) == sizeof(r) ? 0 : 1);
	}
	close(pipefd[1]);
	EXPECT_EQ(sizeof(r), read(pipefd[0], &r, sizeof(r)));
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	EXPECT_TRUE(WIFEXITED(status) && !WEXITSTATUS(status));
	EXPECT_EQ(RSVA_SIM_STATUS_SUCCESS, r.status);
	EXPECT_EQ(-1, r.mismatch) TH_LOG("the child does not see its own DMA's data");
	EXPECT_LE(len / PAGE, r.requests) TH_LOG("each shared page asked for, written");
	EXPECT_EQ(-1, byte_mismatch(buf, len, 'P')) TH_LOG("the child's DMA reached the parent");
	close(pipefd[0]);
	prq_check(_metadata, 0, &self->b, NULL);
	munmap(buf, len);
}

/*
 * Forks a child that waits for a byte on the pipe @go, then exits 0 when
 * the @len bytes at @p hold @pattern, 1 when they do not, 2 when @go was
 * closed first. Closes the read end in the parent; the pid, or -1.
 */
static pid_t fork_checker(int go[2], const char *p, size_t len, uint64_t pattern)
{
	pid_t pid = fork();
	char ch;

	if (!pid) {
		close(go[1]);
		if (read(go[0], &ch, 1) != 1)
			_exit(2);
		_exit(pattern_mismatch(p, len, pattern, 0) == -1 ? 0 : 1);
	}
	close(go[0]);
	return pid;
}

/*
 * The reverse: the parent's device filled the buffer first (the IOTLB may
 * hold writable translations of it), then forked. fork() write-protects
 * the parent's pages, which must invalidate those translations: the
 * parent's next device write asks for the pages again and lands in a copy
 * of the parent's, while the child still sees the old data.
 */
TEST_F(iopf, parent_device_write_after_fork_lands_in_its_copy)
{
	alignas(32) struct rsva_sim_completion c;
	const size_t len = 8 * PAGE;
	const uint64_t old = 0x4f4f4f4f4f4f4f4fULL, fresh = 0x1234123412341234ULL;
	char *buf = map_small(len);
	struct rsva_sim_stats s0, s1;
	int go[2], status;
	struct rsva_sim_desc x;
	pid_t pid;

	ASSERT_NE(NULL, buf);
	x = desc(RSVA_SIM_OP_FILL, NULL, buf, len, old);
	ASSERT_EQ(0, run(self->fd, &x, &c));
	ASSERT_EQ(RSVA_SIM_STATUS_SUCCESS, c.status);
	/* Again: through the IOTLB this time. */
	ASSERT_EQ(0, run(self->fd, &x, &c));
	ASSERT_EQ(RSVA_SIM_STATUS_SUCCESS, c.status);
	ASSERT_EQ(0, pipe(go));
	pid = fork_checker(go, buf, len, old);
	ASSERT_LE(0, pid);
	ASSERT_EQ(0, accel_stats(self->fd, &s0));
	x = desc(RSVA_SIM_OP_FILL, NULL, buf, len, fresh);
	ASSERT_EQ(0, run(self->fd, &x, &c));
	EXPECT_EQ(RSVA_SIM_STATUS_SUCCESS, c.status);
	ASSERT_EQ(0, accel_stats(self->fd, &s1));
	EXPECT_EQ(-1, pattern_mismatch(buf, len, fresh, 0));
	EXPECT_LE(len / PAGE, s1.page_requests - s0.page_requests)
		TH_LOG("the write-protected pages were asked for again");
	ASSERT_EQ(1, write(go[1], "g", 1));
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	EXPECT_TRUE(WIFEXITED(status) && !WEXITSTATUS(status))
		TH_LOG("the child does not see the data of before the fork (status %#x)", status);
	close(go[1]);
	prq_check(_metadata, 0, &self->b, NULL);
	munmap(buf, len);
}

/* --- 5. shared mappings ---------------------------------------------------- */

/*
 * A device fill of pages of a MAP_SHARED file mapping that the CPU never
 * touched through the mapping: page 1 whole and 100 bytes of page 2 land
 * in the file (read back with pread()), the rest of it is unchanged.
 * Returns the file system's magic number, or 0 when the file cannot be made.
 */
static long shared_file_gets_the_write(struct __test_metadata *_metadata, int accel,
				       const char *dir)
{
	alignas(32) struct rsva_sim_completion c;
	const size_t len = 4 * PAGE;
	const uint64_t pattern = 0x5757575757575757ULL ^ (uintptr_t)dir;
	char path[128], *m, *back = malloc(len), *orig = malloc(len);
	struct rsva_sim_stats s0, s1;
	struct rsva_sim_desc x;
	struct statfs fs;
	int fd;

	snprintf(path, sizeof(path), "%s/rsva_iopf_shared.XXXXXX", dir);
	fd = mkstemp(path);
	if (fd < 0 || !back || !orig) {
		TH_LOG("%s: %s", path, strerror(errno));
		free(back);
		free(orig);
		return 0;
	}
	EXPECT_EQ(0, fstatfs(fd, &fs));
	fill_random(orig, len, 33);
	EXPECT_EQ(len, pwrite(fd, orig, len, 0));
	m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	EXPECT_NE(MAP_FAILED, m);
	if (m != MAP_FAILED) {
		EXPECT_EQ(0, accel_stats(accel, &s0));
		x = desc(RSVA_SIM_OP_FILL, NULL, m + PAGE, PAGE, pattern);
		EXPECT_EQ(0, run(accel, &x, &c));
		EXPECT_EQ(RSVA_SIM_STATUS_SUCCESS, c.status) TH_LOG("%s", path);
		x = desc(RSVA_SIM_OP_FILL, NULL, m + 2 * PAGE + 50, 100, pattern);
		EXPECT_EQ(0, run(accel, &x, &c));
		EXPECT_EQ(RSVA_SIM_STATUS_SUCCESS, c.status) TH_LOG("%s", path);
		EXPECT_EQ(0, accel_stats(accel, &s1));
		EXPECT_LE(2, s1.page_requests - s0.page_requests)
			TH_LOG("%s: the pages were not mapped: asked for", path);
		EXPECT_EQ(0, munmap(m, len));
	}
	EXPECT_EQ(len, pread(fd, back, len, 0));
	EXPECT_EQ(0, memcmp(back, orig, PAGE)) TH_LOG("%s: page 0", path);
	EXPECT_EQ(-1, pattern_mismatch(back + PAGE, PAGE, pattern, 0)) TH_LOG("%s", path);
	EXPECT_EQ(0, memcmp(back + 2 * PAGE, orig + 2 * PAGE, 50)) TH_LOG("%s", path);
	EXPECT_EQ(-1, pattern_mismatch(back + 2 * PAGE + 50, 100, pattern, 0)) TH_LOG("%s", path);
	EXPECT_EQ(0, memcmp(back + 2 * PAGE + 150, orig + 2 * PAGE + 150, 2 * PAGE - 150))
		TH_LOG("%s: after the fill", path);
	close(fd);
	unlink(path);
	free(back);
	free(orig);
	return fs.f_type;
}

/*
 * Device writes to never-touched pages of shared mappings land in the
 * object shared: a file in /tmp (tmpfs), a file on ramfs (mounted here,
 * when it can be), a memfd, and MAP_SHARED | MAP_ANONYMOUS memory, whose
 * data a child forked before the DMA sees.
 */
TEST_F(iopf, device_writes_land_in_shared_mappings)
{
	alignas(32) struct rsva_sim_completion c;
	const size_t len = 4 * PAGE;
	const uint64_t pattern = 0x0102030405060708ULL;
	char ramfs[] = "/tmp/rsva_iopf_ramfs.XXXXXX", *m, back[4 * 4096];
	int go[2], status, mfd;
	struct rsva_sim_desc x;
	long magic;
	pid_t pid;

	magic = shared_file_gets_the_write(_metadata, self->fd, "/tmp");
	EXPECT_NE(0, magic);
	TH_LOG("/tmp is %s (%#lx)", magic == TMPFS_MAGIC ? "tmpfs" : "not tmpfs", magic);

	ASSERT_NE(NULL, mkdtemp(ramfs));
	if (mount("rsva_iopf", ramfs, "ramfs", 0, NULL)) {
		TH_LOG("no ramfs (%s): the file on another file system is not tested",
		       strerror(errno));
	} else {
		magic = shared_file_gets_the_write(_metadata, self->fd, ramfs);
		EXPECT_EQ(RAMFS_MAGIC, magic);
		EXPECT_EQ(0, umount(ramfs));
	}
	rmdir(ramfs);

	/* A memfd (shmem), read back with pread(). */
	mfd = memfd_create("rsva_iopf", MFD_CLOEXEC);
	ASSERT_LE(0, mfd);
	ASSERT_EQ(0, ftruncate(mfd, len));
	m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
	ASSERT_NE(MAP_FAILED, m);
	x = desc(RSVA_SIM_OP_FILL, NULL, m, len, pattern);
	ASSERT_EQ(0, run(self->fd, &x, &c));
	EXPECT_EQ(RSVA_SIM_STATUS_SUCCESS, c.status);
	munmap(m, len);
	ASSERT_EQ(len, pread(mfd, back, len, 0));
	EXPECT_EQ(-1, pattern_mismatch(back, len, pattern, 0));
	close(mfd);

	/* MAP_SHARED | MAP_ANONYMOUS: the child's mapping is the same memory. */
	m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, m);
	ASSERT_EQ(0, pipe(go));
	pid = fork_checker(go, m, len, pattern);
	ASSERT_LE(0, pid);
	x = desc(RSVA_SIM_OP_FILL, NULL, m, len, pattern);
	ASSERT_EQ(0, run(self->fd, &x, &c));
	EXPECT_EQ(RSVA_SIM_STATUS_SUCCESS, c.status);
	ASSERT_EQ(1, write(go[1], "g", 1));
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	EXPECT_TRUE(WIFEXITED(status) && !WEXITSTATUS(status))
		TH_LOG("the child does not see the device's write (status %#x)", status);
	close(go[1]);
	munmap(m, len);
	prq_check(_metadata, 0, &self->b, NULL);
}

/* --- 6. transparent huge pages ---------------------------------------------- */

/* AnonHugePages (kB) of the mapping holding @addr, from /proc/self/smaps, or -1. */
static long anon_huge_kb_at(const void *addr)
{
	uintptr_t a = (uintptr_t)addr, start, end;
	bool in = false;
	char line[512], *e;
	long kb = -1;
	FILE *f = fopen("/proc/self/smaps", "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		start = strtoull(line, &e, 16);
		if (*e == '-' && e != line) {
			end = strtoull(e + 1, NULL, 16);
			in = a >= start && a < end;
		} else if (in && !strncmp(line, "AnonHugePages:", 14)) {
			kb = strtol(line + 14, NULL, 10);
			break;
		}
	}
	fclose(f);
	return kb;
}

/*
 * A 2 MiB-aligned region of 4 MiB with MADV_HUGEPAGE, never touched,
 * filled by the device: the data is right. When the kernel backed it with
 * huge pages (logged otherwise, not a failure), a page request maps 2 MiB
 * at once and few are needed.
 */
TEST_F(iopf, device_fills_never_touched_huge_pages)
{
	alignas(32) struct rsva_sim_completion c;
	const size_t len = 2 * HUGE;
	const uint64_t pattern = 0x4855474548554745ULL;
	char *raw = map(len + HUGE), *buf, thp[128] = "";
	struct rsva_sim_stats s;
	struct rsva_sim_desc x;
	long kb;

	ASSERT_NE(NULL, raw);
	buf = (char *)(((uintptr_t)raw + HUGE - 1) & ~(HUGE - 1));
	ASSERT_EQ(0, madvise(buf, len, MADV_HUGEPAGE));
	ASSERT_EQ(0, resident(buf, len));
	read_text("/sys/kernel/mm/transparent_hugepage/enabled", thp, sizeof(thp));
	thp[strcspn(thp, "\n")] = '\0';
	x = desc(RSVA_SIM_OP_FILL, NULL, buf, len, pattern);
	ASSERT_EQ(0, run(self->fd, &x, &c));
	EXPECT_EQ(RSVA_SIM_STATUS_SUCCESS, c.status) TH_LOG("fault at %#llx", c.fault_addr);
	EXPECT_EQ(len, c.bytes_completed);
	EXPECT_EQ(-1, pattern_mismatch(buf, len, pattern, 0));
	ASSERT_EQ(0, accel_stats(self->fd, &s));
	kb = anon_huge_kb_at(buf);
	TH_LOG("THP %s: AnonHugePages %ld kB of %zu kB, %llu page requests", thp, kb, len >> 10,
	       s.page_requests - self->s.page_requests);
	if (kb >= (long)(len >> 10)) {
		EXPECT_GE(64, s.page_requests - self->s.page_requests)
			TH_LOG("huge pages, yet a page request per small page");
	} else {
		TH_LOG("the kernel chose small pages: the huge page path was not tested");
	}
	prq_check(_metadata, 0, &self->b, NULL);
	munmap(raw, len + HUGE);
}

/* --- 10. processes on two devices at once ----------------------------------- */

#define STORM_PROCS 4
#define STORM_SECONDS 2

/*
 * One of the processes: first-touch fills, copies and CRCs of fresh
 * memory on device @dev for STORM_SECONDS. Exits 0 when every result was
 * right; writes the rounds it did to @out.
 */
static void __noreturn storm_child(int i, int dev, int out)
{
	alignas(32) struct rsva_sim_completion c;
	const size_t len = 32 * PAGE;
	struct rsva_sim_desc x;
	long rounds = 0;
	int fd = accel_open(dev), bad = 0;
	double end = now() + STORM_SECONDS;
	uint32_t zero_crc;
	char *zero = calloc(1, len);

	if (fd < 0 || !zero)
		_exit(10);
	zero_crc = crc32_fast(~0u, zero, len);
	while (now() < end && !bad) {
		uint64_t pattern = (uint64_t)i << 56 | rounds;
		char *a = map_small(len), *b = map_small(len), *z = map_small(len);

		if (!a || !b || !z)
			_exit(11);
		x = desc(RSVA_SIM_OP_FILL, NULL, a, len, pattern);
		bad |= run(fd, &x, &c) || c.status != RSVA_SIM_STATUS_SUCCESS;
		x = desc(RSVA_SIM_OP_MEMCPY, a, b, len, 0);
		bad |= run(fd, &x, &c) || c.status != RSVA_SIM_STATUS_SUCCESS;
		x = desc(RSVA_SIM_OP_CRC32, z, NULL, len, ~0u);
		bad |= run(fd, &x, &c) || c.status != RSVA_SIM_STATUS_SUCCESS || c.crc != zero_crc;
		bad |= pattern_mismatch(b, len, pattern, 0) != -1;
		munmap(a, len);
		munmap(b, len);
		munmap(z, len);
		rounds++;
	}
	if (write(out, &rounds, sizeof(rounds)) != sizeof(rounds))
		_exit(12);
	_exit(bad);
}

/*
 * Four processes fault on two devices at once for two seconds: every
 * result right, and each device's page requests all answered once.
 */
TEST_F_TIMEOUT(iopf, four_processes_fault_on_two_devices, 60)
{
	struct prq b1, p0, p1;
	int pipefd[2], i, status;
	pid_t pid[STORM_PROCS];
	long rounds;

	ASSERT_EQ(0, access("/dev/rsva_accel1", F_OK)) TH_LOG("rsva_sim needs two devices");
	ASSERT_EQ(0, prq_read(1, &b1));
	ASSERT_EQ(0, pipe(pipefd));
	for (i = 0; i < STORM_PROCS; i++) {
		pid[i] = fork();
		ASSERT_LE(0, pid[i]);
		if (!pid[i])
			storm_child(i, i % 2, pipefd[1]);
	}
	close(pipefd[1]);
	for (i = 0; i < STORM_PROCS; i++) {
		ASSERT_EQ(pid[i], waitpid(pid[i], &status, 0));
		EXPECT_TRUE(WIFEXITED(status) && !WEXITSTATUS(status))
			TH_LOG("process %d on rsva_sim%d: status %#x", i, i % 2, status);
	}
	for (i = 0; i < STORM_PROCS; i++) {
		EXPECT_EQ(sizeof(rounds), read(pipefd[0], &rounds, sizeof(rounds)));
		EXPECT_LT(0, rounds);
		TH_LOG("a process did %ld rounds", rounds);
	}
	close(pipefd[0]);
	prq_check(_metadata, 0, &self->b, &p0);
	prq_check(_metadata, 1, &b1, &p1);
	EXPECT_LT(0, p0.groups - self->b.groups);
	EXPECT_LT(0, p1.groups - b1.groups);
	EXPECT_EQ(p0.groups - self->b.groups, p0.success - self->b.success);
	EXPECT_EQ(p1.groups - b1.groups, p1.success - b1.success);
}

/* --- 11. allocation failures in the fault path ------------------------------ */

/*
 * The fault path does not run in the submitting task: the engine runs in
 * a work item of system_unbound_wq, which reports the page requests
 * (iommu_report_device_fault() allocates the partial faults and the
 * group), and the handler runs in the iopf queue's unbound workqueue
 * (handle_mm_fault() allocates page tables, the anon_vma and the pages).
 * The test's own /proc/thread-self/fail-nth, as rsva_fault_inject_test
 * uses it, never reaches them. Linux 7.3 lets root arm another task's
 * fail-nth (/proc/PID/fail-nth), so the sweep arms the unbound kworkers
 * (and any kworker that last ran an "iopf" or "rsva" workqueue) with the
 * same N: each fails its N-th allocation. A kworker created during a run
 * is not armed, and an armed one may fail an allocation of other work:
 * the sweep ends after three runs in a row without an injection, and only
 * an injection in the runs is required, not a given count.
 */
#define MAX_KWORKERS 512

struct kworkers {
	pid_t pid[MAX_KWORKERS];
	int n;
};

static void arm_kworkers(struct kworkers *k, int nth)
{
	char path[64], comm[64], num[16];
	struct dirent *e;
	DIR *d = opendir("/proc");
	pid_t pid;
	char *end;

	k->n = 0;
	snprintf(num, sizeof(num), "%d", nth);
	while (d && (e = readdir(d)) && k->n < MAX_KWORKERS) {
		pid = strtol(e->d_name, &end, 10);
		if (*end || pid <= 0)
			continue;
		snprintf(path, sizeof(path), "/proc/%d/comm", pid);
		if (read_text(path, comm, sizeof(comm)) < 0 || strncmp(comm, "kworker/", 8))
			continue;
		if (strncmp(comm, "kworker/u", 9) && !strstr(comm, "iopf") && !strstr(comm, "rsva"))
			continue;
		snprintf(path, sizeof(path), "/proc/%d/fail-nth", pid);
		if (!write_text(path, num))
			k->pid[k->n++] = pid;
	}
	if (d)
		closedir(d);
}

/* Disarms the kworkers; returns how many failed their armed allocation. */
static int disarm_kworkers(struct kworkers *k)
{
	char path[64], buf[16];
	int i, hit = 0;

	for (i = 0; i < k->n; i++) {
		snprintf(path, sizeof(path), "/proc/%d/fail-nth", k->pid[i]);
		if (read_text(path, buf, sizeof(buf)) > 0 && atoi(buf) == 0)
			hit++;
		write_text(path, "0");
	}
	k->n = 0;
	return hit;
}

struct sweep_result {
	int runs, injected, faulted;
};

/*
 * Sweeps N over a first-touch DMA of 8 pages (@op FILL, or MEMCPY from
 * never-touched memory). Each run ends SUCCESS with the right data, or,
 * with a failure injected, with a page fault at a page of the buffer (the
 * group refused) and the right data before it.
 */
static struct sweep_result sweep(struct __test_metadata *_metadata, int fd, int op)
{
	alignas(32) struct rsva_sim_completion c;
	const size_t len = 8 * PAGE;
	struct sweep_result r = { 0 };
	struct kworkers k = { .n = 0 };
	int n, quiet = 0, hit;

	for (n = 1; n <= 300 && quiet < 3; n++) {
		char *dst = map_small(len), *src = map_small(len);
		uint64_t pattern = 0xfa11000000000000ULL | n;
		struct rsva_sim_desc x = desc(op, src, dst, len, pattern);
		int ret;

		ASSERT_TRUE(dst && src);
		arm_kworkers(&k, n);
		ret = run(fd, &x, &c);
		hit = disarm_kworkers(&k);
		ASSERT_EQ(0, ret) TH_LOG("N = %d", n);
		r.runs++;
		r.injected += !!hit;
		quiet = hit ? 0 : quiet + 1;
		if (c.status == RSVA_SIM_STATUS_PAGE_FAULT) {
			uintptr_t at = c.fault_addr;

			r.faulted++;
			EXPECT_TRUE(hit) TH_LOG("N = %d: a fault without an injection", n);
			EXPECT_TRUE(c.fault_info & RSVA_SIM_FAULT_INFO_REQUESTED) TH_LOG("N = %d", n);
			if (at >= (uintptr_t)src && at < (uintptr_t)src + len &&
			    op != RSVA_SIM_OP_FILL) {
				/* The source's page: bytes_completed counts from src. */
				at = at - (uintptr_t)src + (uintptr_t)dst;
			} else {
				EXPECT_TRUE(c.fault_info & RSVA_SIM_FAULT_INFO_WRITE);
			}
			EXPECT_TRUE(at >= (uintptr_t)dst && at < (uintptr_t)dst + len && !(at % PAGE))
				TH_LOG("N = %d: fault at %#llx", n, c.fault_addr);
			EXPECT_EQ(at - (uintptr_t)dst, c.bytes_completed) TH_LOG("N = %d", n);
		} else {
			EXPECT_EQ(RSVA_SIM_STATUS_SUCCESS, c.status) TH_LOG("N = %d", n);
			EXPECT_EQ(len, c.bytes_completed) TH_LOG("N = %d", n);
		}
		if (c.bytes_completed <= len && op == RSVA_SIM_OP_FILL) {
			EXPECT_EQ(-1, pattern_mismatch(dst, c.bytes_completed, pattern, 0))
				TH_LOG("N = %d", n);
		} else if (c.bytes_completed <= len) {
			EXPECT_EQ(-1, byte_mismatch(dst, c.bytes_completed, 0)) TH_LOG("N = %d", n);
		}
		munmap(dst, len);
		munmap(src, len);
	}
	return r;
}

/*
 * Allocation failures in the fault path (see above): every outcome is
 * SUCCESS with the right data or a clean page fault, the page requests
 * are all answered once, and the device works right after.
 */
TEST_F_TIMEOUT(iopf, allocation_failures_in_the_fault_path, 180)
{
	alignas(32) struct rsva_sim_completion c;
	struct sweep_result fill, copy;
	struct rsva_sim_desc x;
	const char *unset;
	char *buf;

	unset = fail_inject_setup();
	ASSERT_EQ(NULL, unset) TH_LOG("%s", unset);
	fill = sweep(_metadata, self->fd, RSVA_SIM_OP_FILL);
	copy = sweep(_metadata, self->fd, RSVA_SIM_OP_MEMCPY);
	TH_LOG("fill: %d runs, %d injected, %d faulted; copy: %d runs, %d injected, %d faulted",
	       fill.runs, fill.injected, fill.faulted, copy.runs, copy.injected, copy.faulted);
	EXPECT_LT(0, fill.injected + copy.injected) TH_LOG("no failure reached the fault path");
	prq_check(_metadata, 0, &self->b, NULL);

	/* Nothing armed any more: a first touch works. */
	buf = map_small(16 * PAGE);
	ASSERT_NE(NULL, buf);
	x = desc(RSVA_SIM_OP_FILL, NULL, buf, 16 * PAGE, 0x600d);
	ASSERT_EQ(0, run(self->fd, &x, &c));
	EXPECT_EQ(RSVA_SIM_STATUS_SUCCESS, c.status);
	EXPECT_EQ(-1, pattern_mismatch(buf, 16 * PAGE, 0x600d, 0));
	munmap(buf, 16 * PAGE);
}

/* --- 7. munmap during the DMA ------------------------------------------------ */

struct unmapper {
	int fd;
	void *addr;
	size_t len;
	unsigned long long requests;	/* the device's page requests before */
	int delay_us;
	int started;			/* the DMA had sent a request first */
};

/*
 * Waits until the DMA asks for pages (the device's count: the queue's
 * grows only when a descriptor ends), then unmaps its buffer.
 */
static void *unmap_mid_dma(void *arg)
{
	struct unmapper *u = arg;
	struct rsva_sim_stats s;
	int i;

	for (i = 0; i < 20000; i++) {
		if (!accel_stats(u->fd, &s) && s.dev_page_requests > u->requests) {
			u->started = 1;
			break;
		}
		usleep(100);
	}
	usleep(u->delay_us);
	munmap(u->addr, u->len);
	return NULL;
}

/*
 * A thread unmaps the buffer of a long first-touch DMA while it runs: the
 * descriptor ends SUCCESS, or with a page fault at the first page it could
 * no longer have, with the pages before it done; it does not hang, and
 * every page request is answered once.
 */
TEST_F_TIMEOUT(release, munmap_during_a_long_dma, 120)
{
	static const struct {
		int op, unmap_src, delay_us;
	} rounds[] = {
		{ RSVA_SIM_OP_FILL, 0, 0 },
		{ RSVA_SIM_OP_MEMCPY, 1, 1000 },
		{ RSVA_SIM_OP_MEMCPY, 0, 5000 },
		{ RSVA_SIM_OP_CRC32, 1, 20000 },
	};
	alignas(32) struct rsva_sim_completion c;
	const size_t len = 16 * MIB;
	int fd = accel_open(0), faulted = 0;
	struct rsva_sim_stats s;
	unsigned int i;

	ASSERT_LE(0, fd);
	for (i = 0; i < ARRAY_SIZE(rounds); i++) {
		char *src = map_small(len), *dst = map_small(len);
		struct unmapper u = { .fd = fd, .len = len, .delay_us = rounds[i].delay_us };
		struct rsva_sim_desc x = desc(rounds[i].op, src, dst, len, 0x7e7e);
		uintptr_t gone;
		pthread_t t;
		double t0;

		ASSERT_TRUE(src && dst);
		ASSERT_EQ(0, accel_stats(fd, &s));
		u.requests = s.dev_page_requests;
		u.addr = rounds[i].unmap_src ? src : dst;
		gone = (uintptr_t)u.addr;
		ASSERT_EQ(0, pthread_create(&t, NULL, unmap_mid_dma, &u));
		t0 = now();
		ASSERT_EQ(0, run(fd, &x, &c));
		EXPECT_GT(30, now() - t0) TH_LOG("round %u: the DMA took %.1f s", i, now() - t0);
		pthread_join(t, NULL);
		EXPECT_TRUE(u.started) TH_LOG("round %u: no page request within 2 s", i);
		TH_LOG("round %u: status %d after %llu of %zu bytes, fault at %#llx (info %#x), %.2f s",
		       i, c.status, c.bytes_completed, len, c.fault_addr, c.fault_info, now() - t0);
		if (c.status == RSVA_SIM_STATUS_PAGE_FAULT) {
			faulted++;
			EXPECT_LE(gone, c.fault_addr) TH_LOG("round %u", i);
			EXPECT_GT(gone + len, c.fault_addr) TH_LOG("round %u", i);
			EXPECT_EQ(0, c.fault_addr % PAGE) TH_LOG("round %u", i);
			EXPECT_EQ(c.fault_addr - gone, c.bytes_completed) TH_LOG("round %u", i);
			EXPECT_EQ(!rounds[i].unmap_src, !!(c.fault_info & RSVA_SIM_FAULT_INFO_WRITE))
				TH_LOG("round %u", i);
		} else {
			EXPECT_EQ(RSVA_SIM_STATUS_SUCCESS, c.status) TH_LOG("round %u", i);
			EXPECT_EQ(len, c.bytes_completed) TH_LOG("round %u", i);
		}
		munmap(src, len);
		munmap(dst, len);
	}
	EXPECT_LT(0, faulted) TH_LOG("no DMA outlived its buffer: the race was not run");
	close(fd);
	prq_check(_metadata, 0, &self->b, NULL);
}

/* --- 8. the process killed with page requests in flight ----------------------- */

/*
 * A child binds device 0, optionally hands its file to a grandchild that
 * keeps it (the bond then outlives the child's mm), queues 64 first-touch
 * fills of 1 MiB and waits to be killed. Writes its PASID and the
 * grandchild's pid (or 0) to @report.
 */
static void __noreturn queue_faults_and_wait(int report, bool hold)
{
	const size_t len = MIB;
	char *buf = map_small(64 * len);
	long msg[2] = { 0, 0 };
	struct rsva_sim_desc x;
	int fd = accel_open(0), i;

	if (fd < 0 || !buf)
		_exit(1);
	if (hold) {
		msg[1] = fork();
		if (!msg[1]) {
			for (;;)
				pause();
		}
	}
	for (i = 0; i < 64; i++) {
		x = desc(RSVA_SIM_OP_FILL, NULL, buf + i * len, len, i);
		if (accel_submit(fd, &x))
			_exit(1);
	}
	msg[0] = accel_pasid(fd);
	if (write(report, msg, sizeof(msg)) != sizeof(msg))
		_exit(1);
	for (;;)
		pause();
}

/*
 * SIGKILL with page requests in flight, at a few moments after the device
 * began asking (and once with the file held by another process, so that
 * the mm goes first and the unbind later): after the exit (and the
 * holder's), the PASID entry is gone and every group the device sent got
 * exactly one response; none stray, none undrained, none timed out.
 */
TEST_F_TIMEOUT(release, sigkill_with_page_requests_in_flight, 120)
{
	static const struct {
		int delay_us;
		bool hold;
	} rounds[] = { { 0, false }, { 5000, false }, { 50000, false }, { 5000, true } };
	unsigned int i;

	for (i = 0; i < ARRAY_SIZE(rounds); i++) {
		long msg[2] = { -1, 0 };
		int p[2], status;
		struct prq b, c;
		pid_t pid;

		ASSERT_EQ(0, prq_read(0, &b));
		ASSERT_EQ(0, pipe(p));
		pid = fork();
		ASSERT_LE(0, pid);
		if (!pid)
			queue_faults_and_wait(p[1], rounds[i].hold);
		close(p[1]);
		ASSERT_EQ(sizeof(msg), read(p[0], msg, sizeof(msg))) TH_LOG("round %u", i);
		close(p[0]);
		ASSERT_LT(0, msg[0]);
		EXPECT_EQ(0, wait_groups(0, &b)) TH_LOG("round %u: the device asked for nothing", i);
		usleep(rounds[i].delay_us);
		ASSERT_EQ(0, kill(pid, SIGKILL));
		ASSERT_EQ(pid, waitpid(pid, &status, 0));
		EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
		if (rounds[i].hold) {
			ASSERT_LT(0, msg[1]);
			/* The mm is gone, the bond is not: requests of a dead mm. */
			EXPECT_EQ(sim_released_state(),
				  wait_pasid_state(0, msg[0], sim_released_state()));
			/* Not our child (the killed one's): its unbind is awaited below. */
			ASSERT_EQ(0, kill(msg[1], SIGKILL));
		}
		EXPECT_EQ(0, wait_pasid_state(0, msg[0], 0)) TH_LOG("round %u", i);
		prq_check(_metadata, 0, &b, &c);
		TH_LOG("round %u: %lld groups (%lld success, %lld invalid, %lld failure)", i,
		       c.groups - b.groups, c.success - b.success, c.invalid - b.invalid,
		       c.failure - b.failure);
	}
	prq_check(_metadata, 0, &self->b, NULL);
}

/* --- 9. unbind with page requests in flight ------------------------------------ */

/*
 * close() with first-touch fills queued and the device asking for pages:
 * close stops the queue, waits for the running descriptor and unbinds,
 * and the unbind drains the PASID's page requests. Right after close()
 * returns, every group sent was answered once and the PASID entry is
 * gone, and nothing is answered later (nothing is served after unbind).
 * The completion records: a prefix SUCCESS (every byte filled), at most
 * one ABORTED (its bytes_completed filled), the rest never started.
 */
TEST_F_TIMEOUT(release, close_with_page_requests_in_flight, 120)
{
	enum { N = 16 };
	const size_t len = MIB;
	struct rsva_sim_completion *c = map(4096);
	char *buf = map_small(N * len);
	struct prq after, later;
	int fd = accel_open(0), i, aborted = 0, ok = 0;
	struct rsva_sim_desc x;
	long pasid;

	ASSERT_LE(0, fd);
	ASSERT_TRUE(c && buf);
	memset(c, 0, 4096);
	pasid = accel_pasid(fd);
	ASSERT_LT(0, pasid);
	for (i = 0; i < N; i++) {
		x = desc(RSVA_SIM_OP_FILL, NULL, buf + i * len, len, 0xc105e000 + i);
		x.flags = RSVA_SIM_F_COMPLETION;
		x.completion = (uintptr_t)&c[i];
		ASSERT_EQ(0, accel_submit(fd, &x));
	}
	ASSERT_EQ(0, wait_groups(0, &self->b)) TH_LOG("the device asked for nothing");
	ASSERT_EQ(0, close(fd));
	ASSERT_EQ(0, prq_read(0, &after));
	EXPECT_EQ(0, sim_pasid_state(0, pasid)) TH_LOG("the entry outlived the unbind");
	EXPECT_EQ(after.groups - self->b.groups, answered(&after) - answered(&self->b))
		TH_LOG("groups unanswered when close() returned");
	usleep(200000);
	ASSERT_EQ(0, prq_read(0, &later));
	EXPECT_EQ(after.requests, later.requests) TH_LOG("requests after the unbind");
	EXPECT_EQ(after.groups, later.groups) TH_LOG("groups after the unbind");
	EXPECT_EQ(answered(&after), answered(&later)) TH_LOG("responses after the unbind");
	prq_check(_metadata, 0, &self->b, NULL);

	for (i = 0; i < N; i++) {
		const char *b = buf + i * len;

		switch (c[i].status) {
		case RSVA_SIM_STATUS_SUCCESS:
			EXPECT_EQ(i, ok) TH_LOG("descriptor %d ended after one that did not", i);
			ok++;
			EXPECT_EQ(len, c[i].bytes_completed);
			EXPECT_EQ(-1, pattern_mismatch(b, len, 0xc105e000 + i, 0)) TH_LOG("%d", i);
			break;
		case RSVA_SIM_STATUS_ABORTED:
			EXPECT_EQ(i, ok) TH_LOG("descriptor %d", i);
			aborted++;
			EXPECT_GT(len, c[i].bytes_completed);
			EXPECT_EQ(-1, pattern_mismatch(b, c[i].bytes_completed, 0xc105e000 + i, 0));
			break;
		case RSVA_SIM_STATUS_NONE:
			EXPECT_LE(ok + aborted, i);
			break;
		default:
			EXPECT_TRUE(0) TH_LOG("descriptor %d: status %d at %#llx", i, c[i].status,
					      c[i].fault_addr);
		}
	}
	EXPECT_GE(1, aborted);
	EXPECT_GT(N, ok) TH_LOG("every descriptor ended before close(): nothing was pending");
	TH_LOG("%d done, %d aborted, %d dropped by close()", ok, aborted, N - ok - aborted);
	munmap(buf, N * len);
	munmap(c, 4096);
}

/*
 * Last: the three counters that are always bugs are zero on every device,
 * whatever ran before.
 */
TEST_F(release, bug_counters_stayed_zero)
{
	struct prq c;
	int dev;

	for (dev = 0; dev < 8 && !prq_read(dev, &c); dev++) {
		EXPECT_EQ(0, c.stray) TH_LOG("rsva_sim%d", dev);
		EXPECT_EQ(0, c.undrained) TH_LOG("rsva_sim%d", dev);
		EXPECT_EQ(0, c.timeouts) TH_LOG("rsva_sim%d", dev);
		EXPECT_EQ(c.groups, answered(&c)) TH_LOG("rsva_sim%d", dev);
		TH_LOG("rsva_sim%d: %lld page requests in %lld groups: %lld success, %lld invalid, %lld failure",
		       dev, c.requests, c.groups, c.success, c.invalid, c.failure);
	}
	EXPECT_LT(0, dev);
}

TEST_HARNESS_MAIN
