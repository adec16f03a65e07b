// SPDX-License-Identifier: GPL-2.0
/*
 * The simulated SVA platform (rsva_sim.ko), through its accelerators:
 * every bind goes through iommu_sva_bind_device(), so these tests run
 * whichever implementation serves that API. Results are checked in memory,
 * in completion records and in the simulator's debugfs.
 */
#include <dirent.h>
#include <misc/uacce/uacce.h>
#include <pthread.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>

#include "kselftest_harness.h"
#include "rsva_sim_util.h"

#define MIB (1UL << 20)

static void *map(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	return p == MAP_FAILED ? NULL : p;
}

TEST(memcpy_of_1mib_random_data)
{
	alignas(32) struct rsva_sim_completion c;
	struct rsva_sim_desc d = { .op = RSVA_SIM_OP_MEMCPY };
	char *src = map(MIB), *dst = map(MIB);
	int fd = accel_open(0);

	ASSERT_LE(0, fd);
	ASSERT_NE(NULL, src);
	ASSERT_NE(NULL, dst);
	fill_random(src, MIB, 1);
	memset(dst, 0xaa, MIB);
	d.src = (uintptr_t)src;
	d.dst = (uintptr_t)dst;
	d.len = MIB;
	ASSERT_EQ(0, accel_run(fd, &d, &c));
	EXPECT_EQ(RSVA_SIM_STATUS_SUCCESS, c.status);
	EXPECT_EQ(MIB, c.bytes_completed);
	EXPECT_EQ(0, memcmp(src, dst, MIB));
	close(fd);
}

TEST(fill_compare_and_crc32)
{
	alignas(32) struct rsva_sim_completion c;
	const size_t len = 3 * 4096 + 100;
	struct rsva_sim_desc d = { 0 };
	uint8_t *a = map(4 * 4096), *b = map(4 * 4096);
	uint64_t pattern = 0x0123456789abcdefULL;
	size_t i;
	int fd = accel_open(1);

	ASSERT_LE(0, fd);
	/* Fill, starting off a page boundary. */
	d.op = RSVA_SIM_OP_FILL;
	d.dst = (uintptr_t)(a + 10);
	d.len = len;
	d.pattern = pattern;
	ASSERT_EQ(0, accel_run(fd, &d, &c));
	ASSERT_EQ(RSVA_SIM_STATUS_SUCCESS, c.status);
	for (i = 0; i < len; i++)
		ASSERT_EQ(((uint8_t *)&pattern)[i % 8], a[10 + i]) TH_LOG("byte %zu", i);
	EXPECT_EQ(0, a[9]);
	EXPECT_EQ(0, a[10 + len]);

	/* Compare: equal, then one byte off. */
	memcpy(b, a, 4 * 4096);
	memset(&d, 0, sizeof(d));
	d.op = RSVA_SIM_OP_COMPARE;
	d.src = (uintptr_t)a;
	d.dst = (uintptr_t)b;
	d.len = 4 * 4096;
	ASSERT_EQ(0, accel_run(fd, &d, &c));
	EXPECT_EQ(RSVA_SIM_STATUS_SUCCESS, c.status);
	EXPECT_EQ(0, c.result);
	b[5000] ^= 1;
	d.flags = 0;
	ASSERT_EQ(0, accel_run(fd, &d, &c));
	EXPECT_EQ(RSVA_SIM_STATUS_SUCCESS, c.status);
	EXPECT_EQ(1, c.result);
	EXPECT_EQ(5000, c.bytes_completed);

	/* CRC32 with a seed, across pages. */
	fill_random(a, 4 * 4096, 7);
	memset(&d, 0, sizeof(d));
	d.op = RSVA_SIM_OP_CRC32;
	d.src = (uintptr_t)(a + 3);
	d.len = len;
	d.pattern = 0xffffffff;
	ASSERT_EQ(0, accel_run(fd, &d, &c));
	EXPECT_EQ(RSVA_SIM_STATUS_SUCCESS, c.status);
	EXPECT_EQ(crc32_le(0xffffffff, a + 3, len), c.crc);
	close(fd);
}

/* Runs @fn in a child and returns what it wrote to the pipe (a long). */
static long in_child(long (*fn)(void))
{
	int p[2], status;
	long v = -1;
	pid_t pid;

	if (pipe(p))
		return -1;
	pid = fork();
	if (!pid) {
		v = fn();
		if (write(p[1], &v, sizeof(v)) != sizeof(v))
			_exit(1);
		_exit(0);
	}
	close(p[1]);
	if (read(p[0], &v, sizeof(v)) != sizeof(v))
		v = -1;
	close(p[0]);
	waitpid(pid, &status, 0);
	return v;
}

static long child_pasid_on_dev0(void)
{
	int fd = accel_open(0);
	long pasid = fd < 0 ? -1 : accel_pasid(fd);

	if (fd >= 0)
		close(fd);
	return pasid;
}

TEST(two_processes_on_one_device_get_different_pasids)
{
	int fd = accel_open(0);
	long mine, theirs;

	ASSERT_LE(0, fd);
	mine = accel_pasid(fd);
	ASSERT_LT(0, mine);
	theirs = in_child(child_pasid_on_dev0);
	ASSERT_LT(0, theirs);
	EXPECT_NE(mine, theirs);
	close(fd);
}

TEST(one_process_on_two_devices_keeps_one_pasid)
{
	int fd0 = accel_open(0), fd1 = accel_open(1), again;

	ASSERT_LE(0, fd0);
	ASSERT_LE(0, fd1);
	EXPECT_EQ(accel_pasid(fd0), accel_pasid(fd1));
	/* A second open of the same device shares the bond and the PASID. */
	again = accel_open(0);
	ASSERT_LE(0, again);
	EXPECT_EQ(accel_pasid(fd0), accel_pasid(again));
	EXPECT_EQ(1, sim_pasid_state(0, accel_pasid(fd0)));
	EXPECT_EQ(1, sim_pasid_state(1, accel_pasid(fd0)));
	close(again);
	/* Still bound: fd0 holds the bond. */
	EXPECT_EQ(1, sim_pasid_state(0, accel_pasid(fd0)));
	close(fd0);
	close(fd1);
}

static long child_copies_with_own_bond(void)
{
	alignas(32) struct rsva_sim_completion c;
	struct rsva_sim_desc d = { .op = RSVA_SIM_OP_MEMCPY };
	char src[64] = "the child's own memory", dst[64] = "";
	int fd = accel_open(0);

	if (fd < 0)
		return -1;
	d.src = (uintptr_t)src;
	d.dst = (uintptr_t)dst;
	d.len = sizeof(src);
	if (accel_run(fd, &d, &c) || c.status != RSVA_SIM_STATUS_SUCCESS ||
	    strcmp(dst, src))
		return -2;
	return accel_pasid(fd);
}

TEST(forked_child_binds_on_its_own)
{
	int fd = accel_open(0);
	long parent, child;

	ASSERT_LE(0, fd);
	parent = accel_pasid(fd);
	child = in_child(child_copies_with_own_bond);
	ASSERT_LT(0, child);
	EXPECT_NE(parent, child);
	/* The child's bond is gone with it; the parent's is intact. */
	EXPECT_EQ(0, sim_pasid_state(0, child));
	EXPECT_EQ(1, sim_pasid_state(0, parent));
	close(fd);
}

enum flood_end { FLOOD_EXIT, FLOOD_KILL, FLOOD_KILL_FD_HELD };

/*
 * A child binds @dev, optionally hands its fd to a grandchild that keeps it
 * open, queues many large copies and exits or waits to be killed. Writes
 * the PASID and the grandchild's pid (or 0) to @report.
 */
static void child_floods(int dev, int report, enum flood_end end)
{
	const size_t len = 4 * MIB;
	char *src = map(len), *dst = map(len);
	struct rsva_sim_desc d = { .op = RSVA_SIM_OP_MEMCPY };
	long msg[2] = { 0, 0 };
	int fd, i;

	fd = accel_open(dev);
	if (fd < 0 || !src || !dst)
		_exit(1);
	if (end == FLOOD_KILL_FD_HELD) {
		msg[1] = fork();
		if (!msg[1]) {
			for (;;)
				pause();
		}
	}
	memset(src, 1, len);
	/*
	 * Present, so that no page request is in flight when the child ends:
	 * a fault handler holds a user reference to the mm while it serves
	 * one, and exit_mmap() would then run when it drops it, possibly
	 * after the unbind (rsva_iopf_test covers ends with requests queued).
	 */
	memset(dst, 0, len);
	d.src = (uintptr_t)src;
	d.dst = (uintptr_t)dst;
	d.len = len;
	for (i = 0; i < 200; i++)
		if (accel_submit(fd, &d))
			break;
	msg[0] = accel_pasid(fd);
	if (write(report, msg, sizeof(msg)) != sizeof(msg))
		_exit(1);
	if (end == FLOOD_EXIT)
		_exit(0);
	for (;;)
		pause();
}

/* Runs child_floods() and ends it; returns the PASID, sets *holder. */
static long flood_and_end(int dev, enum flood_end end, pid_t *holder)
{
	long msg[2] = { -1, 0 };
	int p[2], status;
	pid_t pid;

	if (pipe(p))
		return -1;
	pid = fork();
	if (!pid)
		child_floods(dev, p[1], end);
	close(p[1]);
	if (read(p[0], msg, sizeof(msg)) != sizeof(msg))
		msg[0] = -1;
	close(p[0]);
	if (end != FLOOD_EXIT)
		kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
	if (holder)
		*holder = msg[1];
	return msg[0];
}

/* Polls until the PASID entry of @pasid on @dev is in @state. */
static int wait_pasid_state(int dev, long pasid, int state)
{
	int i;

	for (i = 0; i < 500 && sim_pasid_state(dev, pasid) != state; i++)
		usleep(10000);
	return sim_pasid_state(dev, pasid);
}

TEST(exit_with_work_pending)
{
	long pasid = flood_and_end(0, FLOOD_EXIT, NULL);

	ASSERT_LT(0, pasid);
	EXPECT_EQ(0, sim_pasid_state(0, pasid));
}

TEST(sigkill_mid_dma_unbinds)
{
	long long releases = sim_counter("dev1/counters", "releases");
	long pasid = flood_and_end(1, FLOOD_KILL, NULL);

	ASSERT_LT(0, pasid);
	/* The bond is gone, the device no longer translates the PASID. */
	EXPECT_EQ(0, sim_pasid_state(1, pasid));
	/* exit_mmap ran the domain's release on the bound PASID. */
	EXPECT_LT(releases, sim_counter("dev1/counters", "releases"));
}

/* Faults of device 1, reported or not. */
static long long dev1_faults(void)
{
	return sim_counter("dev1/faults", "total") +
	       sim_counter("dev1/counters", "faults_suppressed");
}

/*
 * SIGKILL while the queue runs and another process still holds the fd:
 * exit_mmap's release stops the PASID under the running DMA, which then
 * faults instead of touching the dead mm's pages; the entry goes when the
 * last fd closes. Intel's and SMMUv3's release block the entry without
 * fault reports (counted in faults_suppressed), AMD's removes it (faults
 * reported as no-pasid); a walk after the mm lost its users is mm-gone.
 */
TEST(sigkill_mid_dma_faults_while_the_fd_lives)
{
	long long reported = sim_counter("dev1/faults", "total");
	long long faults = dev1_faults();
	char fault_log[8192];
	pid_t holder = 0;
	long pasid = flood_and_end(1, FLOOD_KILL_FD_HELD, &holder);
	int i;

	ASSERT_LT(0, pasid);
	ASSERT_LT(0, holder);
	EXPECT_EQ(sim_released_state(), wait_pasid_state(1, pasid, sim_released_state()));
	for (i = 0; i < 500 && dev1_faults() == faults; i++)
		usleep(10000);
	EXPECT_LT(faults, dev1_faults());
	ASSERT_LT(0, sim_read("dev1/faults", fault_log, sizeof(fault_log)));
	if (sim_counter("dev1/faults", "total") > reported)
		EXPECT_TRUE(strstr(fault_log, "no-pasid") || strstr(fault_log, "mm-gone"))
			TH_LOG("%s", fault_log);
	ASSERT_EQ(0, kill(holder, SIGKILL));
	EXPECT_EQ(0, wait_pasid_state(1, pasid, 0));
	EXPECT_EQ(0, sim_counter("dev1/counters", "stale_translations"));
}

/*
 * The holder's side: waits for "go", then tries to submit through the
 * inherited fd and reports the errno (0 if it was accepted).
 */
static void holder_submits(int fd, int go, int result)
{
	struct rsva_sim_desc d = { .op = RSVA_SIM_OP_MEMCPY, .len = 4096 };
	int err;
	char c;

	if (read(go, &c, 1) != 1)
		_exit(1);
	d.src = d.dst = 0x10000;
	err = -accel_submit(fd, &d);
	if (write(result, &err, sizeof(err)) != sizeof(err))
		_exit(1);
	for (;;)
		pause();
}

/*
 * The bond outlives the mm's release until unbind: the owner binds, hands
 * the fd to a child (by fork) and exits, so exit_mmap runs the SVA domain's
 * release while the bond lives. The entry is blocked, not freed (removed
 * from the device's table by AMD's release, sim_released_state()); the
 * holder, another address space, cannot submit through the file (EPERM:
 * its addresses would be used in the owner's PASID); the unbind on the
 * holder's close removes the entry. (Work queued before the release
 * faults: sigkill_mid_dma_faults_while_the_fd_lives.)
 */
TEST(release_before_unbind_faults_and_frees_nothing)
{
	int info[2], go[2], result[2], status, fd, err = 0;
	long msg[2];
	pid_t owner, holder;

	ASSERT_EQ(0, pipe(info));
	ASSERT_EQ(0, pipe(go));
	ASSERT_EQ(0, pipe(result));
	owner = fork();
	if (!owner) {
		fd = accel_open(0);
		if (fd < 0)
			_exit(1);
		msg[0] = accel_pasid(fd);
		holder = fork();
		if (!holder)
			holder_submits(fd, go[0], result[1]);
		msg[1] = holder;
		if (write(info[1], msg, sizeof(msg)) != sizeof(msg))
			_exit(1);
		_exit(0);
	}
	ASSERT_EQ(sizeof(msg), read(info[0], msg, sizeof(msg)));
	waitpid(owner, &status, 0);
	holder = msg[1];
	/* The owner's mm is gone (release ran); the holder keeps the bond. */
	EXPECT_EQ(sim_released_state(), sim_pasid_state(0, msg[0]));

	ASSERT_EQ(1, write(go[1], "g", 1));
	ASSERT_EQ(sizeof(err), read(result[0], &err, sizeof(err)));
	EXPECT_EQ(EPERM, err);
	EXPECT_EQ(sim_released_state(), sim_pasid_state(0, msg[0]));

	/* The holder's close unbinds: the cleared entry goes away. */
	ASSERT_EQ(0, kill(holder, SIGKILL));
	EXPECT_EQ(0, wait_pasid_state(0, msg[0], 0));
}

/*
 * A process that bound and unbound (the implementation may keep its SVA
 * domain for a later bind) exits promptly. The exit runs the mm's release;
 * a domain freed from inside it hangs the exit for good with AMD's free,
 * which unregisters the notifier and waits for the SRCU readers, the
 * release among them (lockdep: "Illegal synchronize_srcu() in same-type
 * SRCU read-side critical section").
 */
TEST(bind_unbind_then_exit_is_prompt)
{
	int status = 0, i;
	pid_t pid = fork();

	ASSERT_LE(0, pid);
	if (!pid) {
		int fd = accel_open(0);

		if (fd < 0 || accel_pasid(fd) <= 0)
			_exit(1);
		close(fd);
		_exit(0);
	}
	for (i = 0; i < 500 && !waitpid(pid, &status, WNOHANG); i++)
		usleep(10000);
	ASSERT_GT(500, i) TH_LOG("the child has not exited after 5 s: hung in exit_mmap?");
	EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

/*
 * Only the opener's address space submits: a forked child with the
 * inherited fd gets EPERM (its addresses are its own, the device would use
 * them in the parent's address space), while the parent's own work through
 * the same fd runs, before and after.
 */
TEST(only_the_opener_submits)
{
	alignas(32) struct rsva_sim_completion c;
	struct rsva_sim_desc d = { .op = RSVA_SIM_OP_MEMCPY, .len = 4096 };
	char *src = map(4096), *dst = map(4096);
	int fd = accel_open(0), status;
	pid_t pid;

	ASSERT_LE(0, fd);
	memset(src, 0x5a, 4096);
	d.src = (uintptr_t)src;
	d.dst = (uintptr_t)dst;
	ASSERT_EQ(0, accel_run(fd, &d, &c));
	EXPECT_EQ(RSVA_SIM_STATUS_SUCCESS, c.status);
	pid = fork();
	ASSERT_LE(0, pid);
	if (!pid) {
		struct rsva_sim_desc e = { .op = RSVA_SIM_OP_FILL, .len = 4096 };

		/* The child's own copy of dst: still a valid address. */
		e.dst = (uintptr_t)dst;
		_exit(accel_submit(fd, &e) == -EPERM ? 0 : 1);
	}
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	memset(dst, 0, 4096);
	ASSERT_EQ(0, accel_run(fd, &d, &c));
	EXPECT_EQ(RSVA_SIM_STATUS_SUCCESS, c.status);
	EXPECT_EQ(0, memcmp(src, dst, 4096));
	close(fd);
}

TEST(bad_descriptors_get_errors)
{
	alignas(32) struct rsva_sim_completion c;
	struct rsva_sim_desc d = { .op = RSVA_SIM_OP_MEMCPY, .len = 64 };
	char buf[128];
	int fd = accel_open(0);

	ASSERT_LE(0, fd);
	d.src = (uintptr_t)buf;
	d.dst = (uintptr_t)(buf + 64);

	d.op = RSVA_SIM_OP_MAX;
	EXPECT_EQ(-EINVAL, accel_submit(fd, &d));
	d.op = 1000;
	EXPECT_EQ(-EINVAL, accel_submit(fd, &d));
	d.op = RSVA_SIM_OP_MEMCPY;
	d.flags = 0x80;
	EXPECT_EQ(-EINVAL, accel_submit(fd, &d));
	d.flags = RSVA_SIM_F_COMPLETION;
	d.completion = (uintptr_t)&c + 8;
	EXPECT_EQ(-EINVAL, accel_submit(fd, &d)) TH_LOG("misaligned completion");
	d.completion = 0;
	EXPECT_EQ(-EINVAL, accel_submit(fd, &d));
	d.flags = 0;
	d.len = RSVA_SIM_MAX_LEN + 1;
	EXPECT_EQ(-EOVERFLOW, accel_submit(fd, &d));
	d.len = 4096;
	d.src = UINT64_MAX - 100;
	EXPECT_EQ(-EOVERFLOW, accel_submit(fd, &d));
	EXPECT_EQ(-ENOTTY, ioctl(fd, _IO('R', 99)) ? -errno : 0);
	EXPECT_EQ(-EFAULT, ioctl(fd, RSVA_SIM_IOC_SUBMIT, (void *)16) ? -errno : 0);

	/* Nothing was queued by any of that. */
	struct rsva_sim_stats s;

	ASSERT_EQ(0, accel_stats(fd, &s));
	EXPECT_EQ(0, s.submitted);
	close(fd);
}

TEST(unmapped_and_protected_memory_faults)
{
	alignas(32) struct rsva_sim_completion c;
	struct rsva_sim_desc d = { .op = RSVA_SIM_OP_MEMCPY, .len = 8192 };
	char *buf = map(4 * 4096);
	char *hole = buf + 2 * 4096;
	int fd = accel_open(0);

	ASSERT_LE(0, fd);
	ASSERT_NE(NULL, buf);
	ASSERT_EQ(0, munmap(hole, 4096));

	/* Source runs into the hole: fault there, the first page done. */
	d.src = (uintptr_t)(buf + 4096);
	d.dst = (uintptr_t)buf;
	ASSERT_EQ(0, accel_run(fd, &d, &c));
	EXPECT_EQ(RSVA_SIM_STATUS_PAGE_FAULT, c.status);
	EXPECT_EQ((uintptr_t)hole, c.fault_addr);
	EXPECT_EQ(4096, c.bytes_completed);

	/* Writing to read-only memory faults. */
	ASSERT_EQ(0, mprotect(buf, 4096, PROT_READ));
	d.op = RSVA_SIM_OP_FILL;
	d.dst = (uintptr_t)buf;
	d.len = 16;
	d.flags = 0;
	ASSERT_EQ(0, accel_run(fd, &d, &c));
	EXPECT_EQ(RSVA_SIM_STATUS_PAGE_FAULT, c.status);
	EXPECT_EQ((uintptr_t)buf, c.fault_addr);

	/* PROT_NONE cannot even be read. */
	ASSERT_EQ(0, mprotect(buf, 4096, PROT_NONE));
	d.op = RSVA_SIM_OP_CRC32;
	d.src = (uintptr_t)buf;
	ASSERT_EQ(0, accel_run(fd, &d, &c));
	EXPECT_EQ(RSVA_SIM_STATUS_PAGE_FAULT, c.status);
	close(fd);
}

/*
 * The IOTLB must follow the CPU page tables: after a new page replaces the
 * old one at the same address (mremap over it, so the new page is surely
 * another frame), or after MADV_DONTNEED, the device sees the new contents,
 * and it never used a translation of a freed page. Loaded with
 * test_skip_invalidation=1, this test fails: it is the one that catches an
 * IOMMU that misses invalidations.
 */
TEST(iotlb_follows_the_page_tables)
{
	alignas(32) struct rsva_sim_completion c;
	struct rsva_sim_desc d = { .op = RSVA_SIM_OP_MEMCPY, .len = 4096 };
	char *src = map(4096), *dst = map(4096), *fresh = map(4096), *moved;
	long long flushes = sim_counter("dev0/iotlb", "flushes");
	int fd = accel_open(0);

	ASSERT_LE(0, fd);
	ASSERT_NE(NULL, fresh);
	memset(src, 'A', 4096);
	d.src = (uintptr_t)src;
	d.dst = (uintptr_t)dst;
	ASSERT_EQ(0, accel_run(fd, &d, &c));
	ASSERT_EQ('A', dst[4095]);

	/* Same address, another page frame, new contents; the old is freed. */
	memset(fresh, 'B', 4096);
	moved = mremap(fresh, 4096, 4096, MREMAP_MAYMOVE | MREMAP_FIXED, src);
	ASSERT_EQ(src, moved);
	ASSERT_EQ(0, accel_run(fd, &d, &c));
	EXPECT_EQ(RSVA_SIM_STATUS_SUCCESS, c.status);
	EXPECT_EQ('B', dst[0]);
	EXPECT_EQ('B', dst[4095]);

	/* Dropped pages read back as zeroes. */
	ASSERT_EQ(0, madvise(src, 4096, MADV_DONTNEED));
	ASSERT_EQ(0, accel_run(fd, &d, &c));
	EXPECT_EQ(RSVA_SIM_STATUS_SUCCESS, c.status);
	EXPECT_EQ(0, dst[100]);
	EXPECT_LT(flushes, sim_counter("dev0/iotlb", "flushes"));
	EXPECT_EQ(0, sim_counter("dev0/counters", "stale_translations"));
	close(fd);
}

struct churn {
	char *buf;
	size_t len;
	int stop;
	long rounds;
};

/* Drops the pages of the buffer again and again, and sometimes remaps it. */
static void *churn_pages(void *arg)
{
	struct churn *c = arg;

	while (!__atomic_load_n(&c->stop, __ATOMIC_RELAXED)) {
		if (c->rounds % 8 == 7) {
			munmap(c->buf, c->len);
			mmap(c->buf, c->len, PROT_READ | PROT_WRITE,
			     MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
		} else {
			madvise(c->buf, c->len, MADV_DONTNEED);
		}
		c->rounds++;
	}
	return NULL;
}

/*
 * No DMA uses a page whose invalidation raced its walk: while another
 * thread drops and remaps the pages, the device fills them again and
 * again, each access a walk that an invalidation may overtake. A real
 * IOMMU's invalidation waits for translated DMA in flight; a walked page
 * whose translation was invalidated before the access must not be
 * accessed (the simulator retries the walk, or faults walk-raced). The
 * simulator counts such accesses in stale_walk_accesses.
 */
TEST(dma_never_uses_a_page_invalidated_during_its_walk)
{
	alignas(32) struct rsva_sim_completion c;
	struct churn ch = { .len = 16 * 4096 };
	struct rsva_sim_desc d = { .op = RSVA_SIM_OP_FILL, .pattern = 0x77 };
	long long stale = sim_counter("dev0/counters", "stale_walk_accesses");
	long fills = 0, faults = 0;
	int fd = accel_open(0);
	pthread_t t;
	double end;

	ASSERT_LE(0, stale);
	ASSERT_LE(0, fd);
	ch.buf = map(ch.len);
	ASSERT_NE(NULL, ch.buf);
	ASSERT_EQ(0, madvise(ch.buf, ch.len, MADV_NOHUGEPAGE));
	d.dst = (uintptr_t)ch.buf;
	d.len = ch.len;
	ASSERT_EQ(0, pthread_create(&t, NULL, churn_pages, &ch));
	for (end = now() + 3; now() < end; fills++) {
		ASSERT_EQ(0, accel_run(fd, &d, &c));
		faults += c.status == RSVA_SIM_STATUS_PAGE_FAULT;
	}
	__atomic_store_n(&ch.stop, 1, __ATOMIC_RELAXED);
	pthread_join(t, NULL);
	TH_LOG("%ld fills (%ld faulted) against %ld drops", fills, faults, ch.rounds);
	EXPECT_EQ(stale, sim_counter("dev0/counters", "stale_walk_accesses"))
		TH_LOG("DMA accesses used a page invalidated during their walk");
	EXPECT_EQ(0, sim_counter("dev0/counters", "stale_translations"));
	close(fd);
}

/* Bytes of anonymous transparent huge pages in this process. */
static long anon_huge_kb(void)
{
	char line[256];
	long kb = -1;
	FILE *f = fopen("/proc/self/smaps_rollup", "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "AnonHugePages: %ld kB", &kb) == 1)
			break;
	fclose(f);
	return kb;
}

/*
 * Pages of a transparent huge page have no reference count of their own:
 * an IOTLB hit on one must take the folio's, or the simulator would call a
 * live translation stale (seen once in a stress run before the fix).
 */
TEST(iotlb_hits_on_transparent_huge_pages)
{
	alignas(32) struct rsva_sim_completion c;
	struct rsva_sim_desc d = { .op = RSVA_SIM_OP_MEMCPY, .len = 8192 };
	const size_t huge = 2UL << 20;
	char *raw = map(3 * huge), *buf;
	int fd = accel_open(0), i;

	ASSERT_LE(0, fd);
	ASSERT_NE(NULL, raw);
	buf = (char *)(((uintptr_t)raw + huge - 1) & ~(huge - 1));
	ASSERT_EQ(0, madvise(buf, huge, MADV_HUGEPAGE));
	memset(buf, 'H', huge);
	ASSERT_LE(2048, anon_huge_kb()) TH_LOG("no THP: the test would prove nothing");
	d.src = (uintptr_t)buf;
	d.dst = (uintptr_t)(buf + huge / 2);
	for (i = 0; i < 3; i++) {
		ASSERT_EQ(0, accel_run(fd, &d, &c));
		EXPECT_EQ(RSVA_SIM_STATUS_SUCCESS, c.status);
	}
	EXPECT_EQ('H', buf[huge / 2 + 8191]);
	EXPECT_EQ(0, sim_counter("dev0/counters", "stale_translations"));
	close(fd);
}

/* uacce's own character device binds through the same API. */
/*
 * A uacce node of the simulated accelerators (uacce's class names it after
 * the interface: rsva_accel-<id>), into @path; 0 or -ENOENT.
 */
static int uacce_node(char *path, size_t size)
{
	struct dirent *e;
	DIR *dir = opendir("/dev");

	path[0] = '\0';
	while (dir && (e = readdir(dir)))
		if (!strncmp(e->d_name, "rsva_accel-", 11))
			snprintf(path, size, "/dev/%.64s", e->d_name);
	if (dir)
		closedir(dir);
	return path[0] ? 0 : -ENOENT;
}

/*
 * uacce runs every ioctl under its device's mutex, which its open and
 * close take too: a WAIT that slept there would stall every user of the
 * device for as long as the caller's queue runs. Through uacce, WAIT
 * answers EAGAIN at once, another process opens the device meanwhile, and
 * poll() reports the queue idle when the work is done.
 */
TEST(uacce_wait_does_not_stall_the_device)
{
	struct rsva_sim_desc d = { .op = RSVA_SIM_OP_MEMCPY, .len = 4 * MIB };
	struct pollfd p = { .events = POLLIN };
	char path[80], *buf = map(8 * MIB);
	double t0, waited, opened = -1;
	int fd, i, pipefd[2];
	pid_t pid;

	ASSERT_EQ(0, uacce_node(path, sizeof(path)));
	fd = open(path, O_RDWR);
	ASSERT_LE(0, fd);
	ASSERT_EQ(0, ioctl(fd, UACCE_CMD_START_Q));
	memset(buf, 7, 4 * MIB);
	d.src = (uintptr_t)buf;
	d.dst = (uintptr_t)buf + 4 * MIB;
	/* Some seconds of work under TCG. */
	for (i = 0; i < 32; i++)
		ASSERT_EQ(0, accel_submit(fd, &d));
	ASSERT_EQ(0, pipe(pipefd));
	pid = fork();
	ASSERT_LE(0, pid);
	if (!pid) {
		int other;

		usleep(100000);
		t0 = now();
		other = open(path, O_RDWR);
		opened = now() - t0;
		if (other >= 0)
			close(other);
		_exit(write(pipefd[1], &opened, sizeof(opened)) == sizeof(opened) && other >= 0 ?
		      0 : 1);
	}
	t0 = now();
	EXPECT_EQ(-EAGAIN, ioctl(fd, RSVA_SIM_IOC_WAIT) ? -errno : 0);
	waited = now() - t0;
	EXPECT_LT(waited, 0.5) TH_LOG("WAIT took %.2f s", waited);
	ASSERT_EQ(sizeof(opened), read(pipefd[0], &opened, sizeof(opened)));
	ASSERT_EQ(pid, waitpid(pid, NULL, 0));
	EXPECT_LT(opened, 1.0) TH_LOG("another process's open took %.2f s", opened);
	p.fd = fd;
	EXPECT_EQ(1, poll(&p, 1, 60000));
	EXPECT_TRUE(p.revents & POLLIN);
	EXPECT_EQ(0, ioctl(fd, RSVA_SIM_IOC_WAIT));
	EXPECT_EQ(7, buf[8 * MIB - 1]);
	TH_LOG("WAIT answered in %.3f s, another open took %.3f s", waited, opened);
	close(fd);
	close(pipefd[0]);
	close(pipefd[1]);
}

/* PUT_Q stops the queue (ESHUTDOWN), START_Q starts it again. */
TEST(uacce_put_q_then_start_q_runs_again)
{
	alignas(32) struct rsva_sim_completion c;
	struct rsva_sim_desc d = { .op = RSVA_SIM_OP_MEMCPY, .len = 4096 };
	char path[80], *src = map(4096), *dst = map(4096);
	int fd;

	ASSERT_EQ(0, uacce_node(path, sizeof(path)));
	fd = open(path, O_RDWR);
	ASSERT_LE(0, fd);
	ASSERT_EQ(0, ioctl(fd, UACCE_CMD_START_Q));
	fill_random(src, 4096, 11);
	d.src = (uintptr_t)src;
	d.dst = (uintptr_t)dst;
	ASSERT_EQ(0, accel_run(fd, &d, &c));
	EXPECT_EQ(RSVA_SIM_STATUS_SUCCESS, c.status);
	ASSERT_EQ(0, ioctl(fd, UACCE_CMD_PUT_Q));
	EXPECT_EQ(-ESHUTDOWN, accel_submit(fd, &d));
	ASSERT_EQ(0, ioctl(fd, UACCE_CMD_START_Q));
	memset(dst, 0, 4096);
	ASSERT_EQ(0, accel_run(fd, &d, &c));
	EXPECT_EQ(RSVA_SIM_STATUS_SUCCESS, c.status);
	EXPECT_EQ(0, memcmp(src, dst, 4096));
	close(fd);
}

TEST(uacce_queue_runs_work)
{
	alignas(32) struct rsva_sim_completion c;
	struct rsva_sim_desc d = { .op = RSVA_SIM_OP_MEMCPY, .len = 8192 };
	char path[80], *src = map(8192), *dst = map(8192);
	long pasid;
	int fd;

	ASSERT_EQ(0, uacce_node(path, sizeof(path))) TH_LOG("no /dev/rsva_accel-N: is uacce loaded?");
	fd = open(path, O_RDWR);
	ASSERT_LE(0, fd);
	ASSERT_EQ(0, ioctl(fd, UACCE_CMD_START_Q));
	pasid = accel_pasid(fd);
	ASSERT_LT(0, pasid);
	fill_random(src, 8192, 3);
	d.src = (uintptr_t)src;
	d.dst = (uintptr_t)dst;
	ASSERT_EQ(0, accel_run(fd, &d, &c));
	EXPECT_EQ(RSVA_SIM_STATUS_SUCCESS, c.status);
	EXPECT_EQ(0, memcmp(src, dst, 8192));
	close(fd);
}

TEST_HARNESS_MAIN
