// SPDX-License-Identifier: GPL-2.0
/*
 * rsva's HMM mirror device against the kernel's test_hmm: every scenario
 * runs the same calls on /dev/hmm_dmirror0 and /dev/rsva_mirror0 and checks
 * both the expected result and that the two devices agree (return value,
 * cpages, faults, data, snapshot codes). The scenarios follow the mirroring
 * tests of tools/testing/selftests/mm/hmm-tests.c.
 */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "kselftest_harness.h"
#include "rsva_sim_util.h"
#include <test_hmm_uapi.h>

#define NDEV 2
static const char *const devices[NDEV] = { "/dev/hmm_dmirror0", "/dev/rsva_mirror0" };
/* The index of rsva's device in devices[]. */
#define RSVA 1
#define PAGE 4096UL

/* One command; 0 or -errno, with the command's outputs in @out. */
static int dmirror(int fd, unsigned long req, void *addr, void *ptr,
		   unsigned long npages, struct hmm_dmirror_cmd *out)
{
	struct hmm_dmirror_cmd cmd = {
		.addr = (uintptr_t)addr, .ptr = (uintptr_t)ptr, .npages = npages,
	};
	int ret = ioctl(fd, req, &cmd) ? -errno : 0;

	if (out)
		*out = cmd;
	return ret;
}

static void *map_anon(size_t len, int prot, int flags)
{
	void *p = mmap(NULL, len, prot, flags | MAP_ANONYMOUS, -1, 0);

	return p == MAP_FAILED ? NULL : p;
}

FIXTURE(mirror) {
	int fd[NDEV];
};

FIXTURE_SETUP(mirror)
{
	int i;

	for (i = 0; i < NDEV; i++) {
		self->fd[i] = open(devices[i], O_RDWR | O_CLOEXEC);
		ASSERT_LE(0, self->fd[i]) TH_LOG("%s: %s", devices[i], strerror(errno));
	}
}

FIXTURE_TEARDOWN(mirror)
{
	int i;

	for (i = 0; i < NDEV; i++)
		close(self->fd[i]);
}

/* Reads a filled anonymous region through each device, twice. */
TEST_F(mirror, anon_read_and_read_again)
{
	unsigned long npages = 64, i, d;
	size_t len = npages * PAGE;
	unsigned int *p = map_anon(len, PROT_READ | PROT_WRITE, MAP_PRIVATE);
	unsigned int *buf = malloc(len);
	struct hmm_dmirror_cmd c;

	ASSERT_NE(NULL, p);
	for (i = 0; i < len / sizeof(*p); i++)
		p[i] = i;
	for (d = 0; d < NDEV; d++) {
		memset(buf, 0xa5, len);
		ASSERT_EQ(0, dmirror(self->fd[d], HMM_DMIRROR_READ, p, buf, npages, &c));
		EXPECT_EQ(npages, c.cpages);
		EXPECT_EQ(1, c.faults) TH_LOG("%s", devices[d]);
		EXPECT_EQ(0, memcmp(p, buf, len)) TH_LOG("%s", devices[d]);
		/* Mirrored now: no fault the second time. */
		ASSERT_EQ(0, dmirror(self->fd[d], HMM_DMIRROR_READ, p, buf, npages, &c));
		EXPECT_EQ(0, c.faults) TH_LOG("%s", devices[d]);
		EXPECT_EQ(0, memcmp(p, buf, len));
	}
	munmap(p, len);
	free(buf);
}

/*
 * A read across a 2 MiB boundary (the edge of rsva's table chunks) faults
 * once, like test_hmm: the rest of the request is faulted at the first
 * page that is not mirrored.
 */
TEST_F(mirror, read_across_2mib_boundary_faults_once)
{
	unsigned long npages = 64, d;
	size_t len = npages * PAGE, span = 4UL << 20;
	char *area = map_anon(span, PROT_READ | PROT_WRITE, MAP_PRIVATE);
	char *buf = malloc(len), *p;

	ASSERT_NE(NULL, area);
	madvise(area, span, MADV_NOHUGEPAGE);
	p = (char *)((((uintptr_t)area + (2UL << 20)) & ~((2UL << 20) - 1)) - len / 2);
	memset(p, 0x3c, len);
	for (d = 0; d < NDEV; d++) {
		struct hmm_dmirror_cmd c;

		memset(buf, 0, len);
		ASSERT_EQ(0, dmirror(self->fd[d], HMM_DMIRROR_READ, p, buf, npages, &c));
		EXPECT_EQ(npages, c.cpages);
		EXPECT_EQ(1, c.faults) TH_LOG("%s", devices[d]);
		EXPECT_EQ(0, memcmp(p, buf, len)) TH_LOG("%s", devices[d]);
	}
	munmap(area, span);
	free(buf);
}

/* Writes through each device; the process sees the data. */
TEST_F(mirror, anon_write)
{
	unsigned long npages = 32, i, d;
	size_t len = npages * PAGE;
	unsigned int *p = map_anon(len, PROT_READ | PROT_WRITE, MAP_PRIVATE);
	unsigned int *buf = malloc(len);
	struct hmm_dmirror_cmd c;

	ASSERT_NE(NULL, p);
	for (d = 0; d < NDEV; d++) {
		for (i = 0; i < len / sizeof(*buf); i++)
			buf[i] = i * 7 + d;
		ASSERT_EQ(0, dmirror(self->fd[d], HMM_DMIRROR_WRITE, p, buf, npages, &c));
		EXPECT_EQ(npages, c.cpages);
		EXPECT_EQ(1, c.faults);
		EXPECT_EQ(0, memcmp(p, buf, len)) TH_LOG("%s", devices[d]);
	}
	munmap(p, len);
	free(buf);
}

/* PROT_NONE cannot be read, read-only memory cannot be written. */
TEST_F(mirror, protection_errors_agree)
{
	unsigned long npages = 8, d;
	size_t len = npages * PAGE;
	char *p = map_anon(len, PROT_READ | PROT_WRITE, MAP_PRIVATE);
	char *buf = malloc(len);
	int got[NDEV];

	ASSERT_NE(NULL, p);
	memset(p, 1, len);
	ASSERT_EQ(0, mprotect(p, len, PROT_NONE));
	for (d = 0; d < NDEV; d++)
		got[d] = dmirror(self->fd[d], HMM_DMIRROR_READ, p, buf, npages, NULL);
	EXPECT_EQ(-EFAULT, got[0]);
	EXPECT_EQ(got[0], got[1]);
	ASSERT_EQ(0, mprotect(p, len, PROT_READ));
	for (d = 0; d < NDEV; d++)
		got[d] = dmirror(self->fd[d], HMM_DMIRROR_WRITE, p, buf, npages, NULL);
	EXPECT_EQ(-EPERM, got[0]);
	EXPECT_EQ(got[0], got[1]);
	for (d = 0; d < NDEV; d++)
		EXPECT_EQ(0, dmirror(self->fd[d], HMM_DMIRROR_READ, p, buf, npages, NULL));
	munmap(p, len);
	free(buf);
}

/* Bad commands get the same errors. */
TEST_F(mirror, bad_commands_agree)
{
	char *p = map_anon(PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE);
	char buf[PAGE];
	int d;

	ASSERT_NE(NULL, p);
	for (d = 0; d < NDEV; d++) {
		EXPECT_EQ(-EINVAL, dmirror(self->fd[d], HMM_DMIRROR_READ, p + 1, buf, 1, NULL));
		EXPECT_EQ(-EINVAL, dmirror(self->fd[d], HMM_DMIRROR_READ, p, buf, 0, NULL));
		EXPECT_EQ(-EINVAL, dmirror(self->fd[d], HMM_DMIRROR_SNAPSHOT, p, buf,
					   1UL << 60, NULL));
		/* Nothing mapped at the top of user space. */
		EXPECT_EQ(-EFAULT, dmirror(self->fd[d], HMM_DMIRROR_READ,
					   (void *)(0x7fffffff0000UL), buf, 1, NULL));
	}
	for (d = 0; d < NDEV; d++) {
		EXPECT_EQ(-EINVAL, dmirror(self->fd[d], HMM_DMIRROR_MIGRATE_TO_DEV, p + 1, buf, 1,
					   NULL));
		EXPECT_EQ(-EINVAL, dmirror(self->fd[d], HMM_DMIRROR_MIGRATE_TO_SYS, p, buf, 0,
					   NULL));
	}
	munmap(p, PAGE);
}

/* The protection codes of a mixed region are the same on both. */
TEST_F(mirror, snapshots_agree)
{
	unsigned long npages = 7, i;
	size_t len = npages * PAGE;
	unsigned char *p = map_anon(len, PROT_READ | PROT_WRITE, MAP_PRIVATE);
	unsigned char perm[NDEV][7];
	struct hmm_dmirror_cmd c;
	int d;

	ASSERT_NE(NULL, p);
	/* 0: untouched, 1: read (zero page), 2: written, 3: written then
	 * read-only, 4: PROT_NONE, 5: unmapped, 6: written.
	 */
	/* A read fault maps the zero page. */
	EXPECT_EQ(0, __atomic_load_n(p + PAGE, __ATOMIC_RELAXED));
	p[2 * PAGE] = 1;
	p[3 * PAGE] = 1;
	p[4 * PAGE] = 1;
	p[6 * PAGE] = 1;
	ASSERT_EQ(0, mprotect(p + 3 * PAGE, PAGE, PROT_READ));
	ASSERT_EQ(0, mprotect(p + 4 * PAGE, PAGE, PROT_NONE));
	ASSERT_EQ(0, munmap(p + 5 * PAGE, PAGE));
	for (d = 0; d < NDEV; d++) {
		memset(perm[d], 0xee, npages);
		ASSERT_EQ(0, dmirror(self->fd[d], HMM_DMIRROR_SNAPSHOT, p, perm[d], npages, &c));
		EXPECT_EQ(npages, c.cpages);
	}
	EXPECT_EQ(HMM_DMIRROR_PROT_NONE, perm[0][0]);
	EXPECT_EQ(HMM_DMIRROR_PROT_ZERO | HMM_DMIRROR_PROT_READ, perm[0][1]);
	EXPECT_EQ(HMM_DMIRROR_PROT_WRITE, perm[0][2]);
	EXPECT_EQ(HMM_DMIRROR_PROT_READ, perm[0][3]);
	EXPECT_EQ(HMM_DMIRROR_PROT_ERROR, perm[0][5]);
	for (i = 0; i < npages; i++)
		EXPECT_EQ(perm[0][i], perm[1][i]) TH_LOG("page %lu", i);
	munmap(p, len);
}

/* A transparent huge page shows as PMD on both. */
TEST_F(mirror, thp_snapshot_agrees)
{
	size_t len = 4UL << 20;
	unsigned char perm[NDEV][512];
	char *raw = map_anon(len, PROT_READ | PROT_WRITE, MAP_PRIVATE), *p;
	int d;

	ASSERT_NE(NULL, raw);
	p = (char *)(((uintptr_t)raw + (2UL << 20) - 1) & ~((2UL << 20) - 1));
	madvise(p, 2UL << 20, MADV_HUGEPAGE);
	memset(p, 3, 2UL << 20);
	for (d = 0; d < NDEV; d++)
		ASSERT_EQ(0, dmirror(self->fd[d], HMM_DMIRROR_SNAPSHOT, p, perm[d], 512, NULL));
	EXPECT_EQ(0, memcmp(perm[0], perm[1], sizeof(perm[0])));
	TH_LOG("first page code 0x%x", perm[0][0]);
	munmap(raw, len);
}

/* MAP_SHARED memory and a tmpfs file, read and written through both. */
TEST_F(mirror, shared_and_file_backed)
{
	unsigned long npages = 16;
	size_t len = npages * PAGE;
	char *shared = map_anon(len, PROT_READ | PROT_WRITE, MAP_SHARED);
	char *buf = malloc(len), *file;
	int memfd = memfd_create("rsva_mirror", 0), d;

	ASSERT_NE(NULL, shared);
	ASSERT_LE(0, memfd);
	ASSERT_EQ(0, ftruncate(memfd, len));
	file = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
	ASSERT_NE(MAP_FAILED, file);
	for (d = 0; d < NDEV; d++) {
		memset(buf, 0x40 + d, len);
		EXPECT_EQ(0, dmirror(self->fd[d], HMM_DMIRROR_WRITE, shared, buf, npages, NULL));
		EXPECT_EQ(0x40 + d, shared[len - 1]);
		EXPECT_EQ(0, dmirror(self->fd[d], HMM_DMIRROR_WRITE, file, buf, npages, NULL));
		EXPECT_EQ(0x40 + d, file[0]);
		memset(file, 0x60 + d, len);
		memset(buf, 0, len);
		EXPECT_EQ(0, dmirror(self->fd[d], HMM_DMIRROR_READ, file, buf, npages, NULL));
		EXPECT_EQ(0x60 + d, buf[len / 2]);
	}
	munmap(file, len);
	close(memfd);
	munmap(shared, len);
	free(buf);
}

/* A mirror serves only its opener: a forked child using the inherited
 * file gets EPERM on rsva for every command, while test_hmm lets it read
 * the parent's memory; the parent's own reads still work.
 */
TEST(only_the_opener_uses_a_mirror)
{
	size_t len = 4 * PAGE;
	char *p = map_anon(len, PROT_READ | PROT_WRITE, MAP_PRIVATE);
	int fd[NDEV], d, status;
	char buf[4 * PAGE];
	pid_t pid;

	ASSERT_NE(NULL, p);
	memset(p, 'o', len);
	for (d = 0; d < NDEV; d++) {
		fd[d] = open(devices[d], O_RDWR);
		ASSERT_LE(0, fd[d]);
	}
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		static const unsigned long cmds[] = {
			HMM_DMIRROR_READ, HMM_DMIRROR_WRITE, HMM_DMIRROR_SNAPSHOT,
			HMM_DMIRROR_FLAGS, HMM_DMIRROR_EXCLUSIVE,
		};
		unsigned int i;

		for (i = 0; i < ARRAY_SIZE(cmds); i++)
			if (dmirror(fd[RSVA], cmds[i], p, buf, 4, NULL) != -EPERM)
				_exit(10 + i);
		/* test_hmm reads the parent's mm through the same kind of file. */
		if (dmirror(fd[0], HMM_DMIRROR_READ, p, buf, 4, NULL) || buf[0] != 'o')
			_exit(2);
		_exit(0);
	}
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	EXPECT_TRUE(WIFEXITED(status));
	EXPECT_EQ(0, WEXITSTATUS(status));
	for (d = 0; d < NDEV; d++) {
		memset(buf, 0, sizeof(buf));
		EXPECT_EQ(0, dmirror(fd[d], HMM_DMIRROR_READ, p, buf, 4, NULL));
		EXPECT_EQ('o', buf[len - 1]);
		close(fd[d]);
	}
	munmap(p, len);
}

/* A forked child mirrors its own copy: the parent's writes after fork are
 * not what the child's mirror reads, on both devices.
 */
TEST(fork_child_mirrors_its_own_copy)
{
	size_t len = 8 * PAGE;
	char *p = map_anon(len, PROT_READ | PROT_WRITE, MAP_PRIVATE);
	int d, status;
	pid_t pid;

	ASSERT_NE(NULL, p);
	memset(p, 'p', len);
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		char buf[8 * PAGE];

		usleep(100000);
		for (d = 0; d < NDEV; d++) {
			int fd = open(devices[d], O_RDWR);

			if (fd < 0 || dmirror(fd, HMM_DMIRROR_READ, p, buf, 8, NULL) ||
			    buf[0] != 'p' || buf[len - 1] != 'p')
				_exit(10 + d);
			close(fd);
		}
		_exit(0);
	}
	memset(p, 'q', len);
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	EXPECT_TRUE(WIFEXITED(status));
	EXPECT_EQ(0, WEXITSTATUS(status));
	munmap(p, len);
}

/* The mirrored process exits while its mirror is open elsewhere (the
 * parent took the files with pidfd_getfd()): a read then fails, with
 * EFAULT on test_hmm (the mm is gone) and EPERM on rsva (only the opener
 * may use its mirror), and the mirror closes cleanly. (The mirror's
 * EFAULT once its mm is gone: KUnit rsva_c_mirror.)
 */
TEST(mirror_outlives_its_mm)
{
	int p[2], d, fds[NDEV], mine[NDEV], pidfd;
	char buf[PAGE];
	pid_t pid;

	ASSERT_EQ(0, pipe(p));
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		for (d = 0; d < NDEV; d++)
			fds[d] = open(devices[d], O_RDWR);
		if (write(p[1], fds, sizeof(fds)) != sizeof(fds))
			_exit(1);
		pause();
		_exit(0);
	}
	ASSERT_EQ(sizeof(fds), read(p[0], fds, sizeof(fds)));
	pidfd = syscall(SYS_pidfd_open, pid, 0);
	ASSERT_LE(0, pidfd);
	for (d = 0; d < NDEV; d++) {
		mine[d] = syscall(SYS_pidfd_getfd, pidfd, fds[d], 0);
		ASSERT_LE(0, mine[d]) TH_LOG("pidfd_getfd: %s", strerror(errno));
	}
	kill(pid, SIGKILL);
	ASSERT_EQ(pid, waitpid(pid, NULL, 0));
	for (d = 0; d < NDEV; d++) {
		/* Any address: the mm is gone before it is looked at. */
		EXPECT_EQ(d == RSVA ? -EPERM : -EFAULT,
			  dmirror(mine[d], HMM_DMIRROR_READ, (void *)0x10000, buf, 1, NULL))
			TH_LOG("%s", devices[d]);
		close(mine[d]);
	}
	close(pidfd);
	close(p[0]);
	close(p[1]);
}

/* Each of several fresh buffers faults once and reads back its own data
 * (hmm-tests' anon_read_multiple).
 */
TEST_F(mirror, read_multiple_buffers)
{
	unsigned long npages = 32, d, round;
	size_t len = npages * PAGE;
	unsigned char *buf = malloc(len);
	struct hmm_dmirror_cmd c;

	ASSERT_NE(NULL, buf);
	for (round = 0; round < 8; round++) {
		unsigned char *p = map_anon(len, PROT_READ | PROT_WRITE, MAP_PRIVATE);

		ASSERT_NE(NULL, p);
		memset(p, 0x11 * round, len);
		for (d = 0; d < NDEV; d++) {
			memset(buf, 0xee, len);
			ASSERT_EQ(0, dmirror(self->fd[d], HMM_DMIRROR_READ, p, buf, npages, &c));
			EXPECT_EQ(npages, c.cpages);
			EXPECT_EQ(1, c.faults) TH_LOG("%s round %lu", devices[d], round);
			EXPECT_EQ(0, memcmp(p, buf, len)) TH_LOG("%s round %lu", devices[d], round);
		}
		munmap(p, len);
	}
	free(buf);
}

/* Adjacent mappings of every kind (anonymous, shared anonymous, a
 * read-only file, PROT_NONE, a hole): snapshots agree page by page, and a
 * read over them fails where the first one would on both.
 */
TEST_F(mirror, mixed_maps_agree)
{
	int memfd = memfd_create("rsva_mixed", 0), d;
	unsigned char perm[NDEV][10], buf[10 * PAGE];
	char *base = map_anon(10 * PAGE, PROT_NONE, MAP_PRIVATE);
	int got[NDEV];
	unsigned long i;

	ASSERT_NE(NULL, base);
	ASSERT_LE(0, memfd);
	ASSERT_EQ(0, ftruncate(memfd, 2 * PAGE));
	memset(buf, 0, sizeof(buf));
	ASSERT_EQ(2 * PAGE, pwrite(memfd, buf, 2 * PAGE, 0));
	/* 0-1 anonymous, 2-3 shared anonymous, 4-5 read-only file, 6-7 PROT_NONE, 8-9 hole. */
	ASSERT_NE(MAP_FAILED, mmap(base, 2 * PAGE, PROT_READ | PROT_WRITE,
				   MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0));
	ASSERT_NE(MAP_FAILED, mmap(base + 2 * PAGE, 2 * PAGE, PROT_READ | PROT_WRITE,
				   MAP_SHARED | MAP_ANONYMOUS | MAP_FIXED, -1, 0));
	ASSERT_NE(MAP_FAILED, mmap(base + 4 * PAGE, 2 * PAGE, PROT_READ,
				   MAP_SHARED | MAP_FIXED, memfd, 0));
	ASSERT_EQ(0, munmap(base + 8 * PAGE, 2 * PAGE));
	memset(base, 1, 4 * PAGE);
	EXPECT_EQ(0, base[4 * PAGE]);
	for (d = 0; d < NDEV; d++) {
		memset(perm[d], 0xee, sizeof(perm[d]));
		ASSERT_EQ(0, dmirror(self->fd[d], HMM_DMIRROR_SNAPSHOT, base, perm[d], 10, NULL));
	}
	EXPECT_EQ(HMM_DMIRROR_PROT_WRITE, perm[0][0]);
	EXPECT_EQ(HMM_DMIRROR_PROT_READ, perm[0][4]);
	EXPECT_EQ(HMM_DMIRROR_PROT_ERROR, perm[0][9]);
	for (i = 0; i < 10; i++)
		EXPECT_EQ(perm[0][i], perm[1][i]) TH_LOG("page %lu", i);
	for (d = 0; d < NDEV; d++) {
		EXPECT_EQ(0, dmirror(self->fd[d], HMM_DMIRROR_READ, base, buf, 6, NULL));
		EXPECT_EQ(0, memcmp(buf, base, 6 * PAGE));
		got[d] = dmirror(self->fd[d], HMM_DMIRROR_READ, base, buf, 8, NULL);
	}
	EXPECT_EQ(-EFAULT, got[0]);
	EXPECT_EQ(got[0], got[1]);
	for (d = 0; d < NDEV; d++)
		got[d] = dmirror(self->fd[d], HMM_DMIRROR_WRITE, base, buf, 6, NULL);
	EXPECT_EQ(-EPERM, got[0]);
	EXPECT_EQ(got[0], got[1]);
	munmap(base, 8 * PAGE);
	close(memfd);
}

/* The words of page @i of a buffer filled by fill_pages(). */
static unsigned int page_word(unsigned long i, unsigned long d)
{
	return (unsigned int)(i * 1000 + d);
}

static void fill_pages(unsigned int *p, unsigned long npages, unsigned long d)
{
	unsigned long i, j;

	for (i = 0; i < npages; i++)
		for (j = 0; j < PAGE / sizeof(*p); j++)
			p[i * PAGE / sizeof(*p) + j] = page_word(i, d);
}

static bool pages_hold(const unsigned int *p, unsigned long npages, unsigned long d)
{
	unsigned long i, j;

	for (i = 0; i < npages; i++)
		for (j = 0; j < PAGE / sizeof(*p); j++)
			if (p[i * PAGE / sizeof(*p) + j] != page_word(i, d))
				return false;
	return true;
}

/*
 * Exclusive access (hmm-tests' exclusive, with the steps it leaves out):
 * the device reads the pages it took, which the CPU no longer maps;
 * CHECK_EXCLUSIVE answers EPERM while one page of the range is still the
 * device's and 0 once the CPU took every page back, page by page; taking
 * pages again works; and a page is exclusive to one device at a time.
 */
TEST_F(mirror, exclusive_access_agrees)
{
	unsigned long npages = 16, i, d;
	size_t len = npages * PAGE;
	unsigned int *buf = malloc(len);
	unsigned char snap[16];
	struct hmm_dmirror_cmd c;
	unsigned int *p;

	ASSERT_NE(NULL, buf);
	for (d = 0; d < NDEV; d++) {
		p = map_anon(len, PROT_READ | PROT_WRITE, MAP_PRIVATE);
		ASSERT_NE(NULL, p);
		fill_pages(p, npages, d);
		memset(buf, 0, len);
		ASSERT_EQ(0, dmirror(self->fd[d], HMM_DMIRROR_EXCLUSIVE, p, buf, npages, &c))
			TH_LOG("%s", devices[d]);
		EXPECT_EQ(npages, c.cpages);
		EXPECT_EQ(0, c.faults);
		EXPECT_TRUE(pages_hold(buf, npages, d)) TH_LOG("%s", devices[d]);
		/* The CPU's page table has no page there now. */
		ASSERT_EQ(0, dmirror(self->fd[d], HMM_DMIRROR_SNAPSHOT, p, snap, npages, NULL));
		for (i = 0; i < npages; i++)
			EXPECT_EQ(HMM_DMIRROR_PROT_NONE, snap[i]) TH_LOG("%s page %lu", devices[d], i);
		EXPECT_EQ(-EPERM, dmirror(self->fd[d], HMM_DMIRROR_CHECK_EXCLUSIVE, p, NULL,
					  npages, NULL));
		/* A range without the device's pages. */
		EXPECT_EQ(0, dmirror(self->fd[d], HMM_DMIRROR_CHECK_EXCLUSIVE,
				     (char *)p + len, NULL, 4, NULL));
		/* Asking again for the pages the device has. */
		ASSERT_EQ(0, dmirror(self->fd[d], HMM_DMIRROR_EXCLUSIVE, p, buf, npages, &c));
		EXPECT_EQ(npages, c.cpages);
		/* The CPU reads page 0 back: only the other pages stay the device's. */
		EXPECT_EQ(page_word(0, d), p[0]);
		EXPECT_EQ(0, dmirror(self->fd[d], HMM_DMIRROR_CHECK_EXCLUSIVE, p, NULL, 1, NULL));
		EXPECT_EQ(-EPERM, dmirror(self->fd[d], HMM_DMIRROR_CHECK_EXCLUSIVE, p, NULL,
					  npages, NULL));
		for (i = 1; i < npages; i++)
			p[i * PAGE / sizeof(*p)] = page_word(i, d);
		EXPECT_EQ(0, dmirror(self->fd[d], HMM_DMIRROR_CHECK_EXCLUSIVE, p, NULL,
				     npages, NULL)) TH_LOG("%s", devices[d]);
		EXPECT_TRUE(pages_hold(p, npages, d));
		munmap(p, len);
	}
	/* One buffer, taken by one device then by the other. */
	p = map_anon(len, PROT_READ | PROT_WRITE, MAP_PRIVATE);
	ASSERT_NE(NULL, p);
	fill_pages(p, npages, 7);
	for (d = 0; d < NDEV; d++) {
		unsigned long other = NDEV - 1 - d;

		ASSERT_EQ(0, dmirror(self->fd[d], HMM_DMIRROR_EXCLUSIVE, p, buf, npages, &c));
		EXPECT_TRUE(pages_hold(buf, npages, 7));
		EXPECT_EQ(-EPERM, dmirror(self->fd[d], HMM_DMIRROR_CHECK_EXCLUSIVE, p, NULL,
					  npages, NULL)) TH_LOG("%s", devices[d]);
		EXPECT_EQ(0, dmirror(self->fd[other], HMM_DMIRROR_CHECK_EXCLUSIVE, p, NULL,
				     npages, NULL)) TH_LOG("%s", devices[other]);
	}
	EXPECT_TRUE(pages_hold(p, npages, 7));
	for (d = 0; d < NDEV; d++)
		EXPECT_EQ(0, dmirror(self->fd[d], HMM_DMIRROR_CHECK_EXCLUSIVE, p, NULL,
				     npages, NULL));
	munmap(p, len);
	free(buf);
}

/*
 * Exclusive access refused, with test_hmm's errnos: a bad span (EINVAL),
 * nothing mapped or nothing writable (EFAULT), memory that is not
 * anonymous (shared: EOPNOTSUPP); a range running into a hole fails there
 * (EFAULT) and the pages before it stay the device's.
 */
TEST_F(mirror, exclusive_misuse_agrees)
{
	size_t len = 4 * PAGE;
	char *p = map_anon(len, PROT_READ | PROT_WRITE, MAP_PRIVATE);
	char *ro = map_anon(PAGE, PROT_READ, MAP_PRIVATE);
	char *sh = map_anon(PAGE, PROT_READ | PROT_WRITE, MAP_SHARED);
	static char buf[4 * PAGE];
	int got[NDEV], d;

	ASSERT_NE(NULL, p);
	ASSERT_NE(NULL, ro);
	ASSERT_NE(NULL, sh);
	memset(sh, 1, PAGE);
	ASSERT_EQ(0, munmap(p + 2 * PAGE, 2 * PAGE));
	for (d = 0; d < NDEV; d++) {
		memset(p, 2, 2 * PAGE);
		EXPECT_EQ(-EINVAL, dmirror(self->fd[d], HMM_DMIRROR_EXCLUSIVE, p + 1, buf, 1, NULL));
		EXPECT_EQ(-EINVAL, dmirror(self->fd[d], HMM_DMIRROR_EXCLUSIVE, p, buf, 0, NULL));
		EXPECT_EQ(-EINVAL, dmirror(self->fd[d], HMM_DMIRROR_EXCLUSIVE, p, buf,
					   1UL << 60, NULL));
		EXPECT_EQ(-EINVAL, dmirror(self->fd[d], HMM_DMIRROR_CHECK_EXCLUSIVE, p + 1, NULL,
					   1, NULL));
		EXPECT_EQ(-EINVAL, dmirror(self->fd[d], HMM_DMIRROR_CHECK_EXCLUSIVE, p, NULL,
					   0, NULL));
		EXPECT_EQ(-EFAULT, dmirror(self->fd[d], HMM_DMIRROR_EXCLUSIVE,
					   (void *)0x7fffffff0000UL, buf, 1, NULL)) TH_LOG("%s", devices[d]);
		EXPECT_EQ(-EFAULT, dmirror(self->fd[d], HMM_DMIRROR_EXCLUSIVE, ro, buf, 1, NULL))
			TH_LOG("%s", devices[d]);
		EXPECT_EQ(-EOPNOTSUPP, dmirror(self->fd[d], HMM_DMIRROR_EXCLUSIVE, sh, buf, 1, NULL))
			TH_LOG("%s", devices[d]);
		got[d] = dmirror(self->fd[d], HMM_DMIRROR_EXCLUSIVE, p, buf, 4, NULL);
		EXPECT_EQ(-EPERM, dmirror(self->fd[d], HMM_DMIRROR_CHECK_EXCLUSIVE, p, NULL, 2, NULL))
			TH_LOG("%s", devices[d]);
		/* The CPU takes them back. */
		EXPECT_EQ(2, p[0]);
		EXPECT_EQ(2, p[PAGE]);
		EXPECT_EQ(0, dmirror(self->fd[d], HMM_DMIRROR_CHECK_EXCLUSIVE, p, NULL, 4, NULL));
	}
	EXPECT_EQ(-EFAULT, got[0]);
	EXPECT_EQ(got[0], got[1]);
	munmap(p, 2 * PAGE);
	munmap(ro, PAGE);
	munmap(sh, PAGE);
}

/*
 * mmap of the device (hmm-tests' mixedmap): fresh zeroed pages, present at
 * once. In a private mapping they are read-only to the mirror until a
 * write (the CPU's or the device's) copies them; in a shared one they are
 * writable and the device and the CPU see each other's writes.
 */
TEST_F(mirror, device_mmap_agrees)
{
	unsigned long npages = 4, i, d;
	size_t len = npages * PAGE;
	unsigned char snap[NDEV][2][4];
	unsigned int *buf = malloc(len);
	struct hmm_dmirror_cmd c;

	ASSERT_NE(NULL, buf);
	for (d = 0; d < NDEV; d++) {
		unsigned int *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE,
				       self->fd[d], 0);

		ASSERT_NE(MAP_FAILED, m) TH_LOG("%s: %s", devices[d], strerror(errno));
		ASSERT_EQ(0, dmirror(self->fd[d], HMM_DMIRROR_SNAPSHOT, m, snap[d][0], npages, &c));
		EXPECT_EQ(npages, c.cpages);
		for (i = 0; i < npages; i++)
			EXPECT_EQ(HMM_DMIRROR_PROT_READ, snap[d][0][i]) TH_LOG("%s", devices[d]);
		memset(buf, 0xa5, len);
		ASSERT_EQ(0, dmirror(self->fd[d], HMM_DMIRROR_READ, m, buf, npages, &c));
		EXPECT_EQ(npages, c.cpages);
		for (i = 0; i < len / sizeof(*buf); i++)
			ASSERT_EQ(0, buf[i]) TH_LOG("%s word %lu", devices[d], i);
		fill_pages(buf, npages, d);
		ASSERT_EQ(0, dmirror(self->fd[d], HMM_DMIRROR_WRITE, m, buf, npages, &c));
		EXPECT_TRUE(pages_hold(m, npages, d)) TH_LOG("%s", devices[d]);
		ASSERT_EQ(0, dmirror(self->fd[d], HMM_DMIRROR_SNAPSHOT, m, snap[d][1], npages, &c));
		for (i = 0; i < npages; i++)
			EXPECT_EQ(HMM_DMIRROR_PROT_WRITE, snap[d][1][i]) TH_LOG("%s", devices[d]);
		munmap(m, len);

		m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, self->fd[d], 0);
		ASSERT_NE(MAP_FAILED, m);
		ASSERT_EQ(0, dmirror(self->fd[d], HMM_DMIRROR_SNAPSHOT, m, snap[d][1], npages, &c));
		for (i = 0; i < npages; i++)
			EXPECT_EQ(HMM_DMIRROR_PROT_WRITE, snap[d][1][i]) TH_LOG("%s", devices[d]);
		fill_pages(m, npages, d + 10);
		memset(buf, 0, len);
		ASSERT_EQ(0, dmirror(self->fd[d], HMM_DMIRROR_READ, m, buf, npages, &c));
		EXPECT_TRUE(pages_hold(buf, npages, d + 10));
		fill_pages(buf, npages, d + 20);
		ASSERT_EQ(0, dmirror(self->fd[d], HMM_DMIRROR_WRITE, m, buf, npages, &c));
		EXPECT_TRUE(pages_hold(m, npages, d + 20));
		munmap(m, len);
	}
	EXPECT_EQ(0, memcmp(snap[0][0], snap[1][0], sizeof(snap[0][0])));
	free(buf);
}

/*
 * mmap of the device refused as test_hmm refuses it (the core's checks:
 * EINVAL for a length of 0, an unaligned offset or an unaligned fixed
 * address); exclusive access to a shared mapping of the device is refused
 * (its pages are not anonymous: EOPNOTSUPP). rsva alone: mappings larger
 * than 16384 pages (64 MiB) are refused with ENOMEM (test_hmm would allocate them).
 */
TEST_F(mirror, device_mmap_misuse_agrees)
{
	char buf[PAGE], *big;
	int d;

	for (d = 0; d < NDEV; d++) {
		char *m;

		errno = 0;
		EXPECT_EQ(MAP_FAILED, mmap(NULL, 0, PROT_READ, MAP_SHARED, self->fd[d], 0));
		EXPECT_EQ(EINVAL, errno) TH_LOG("%s", devices[d]);
		errno = 0;
		EXPECT_EQ(MAP_FAILED, mmap(NULL, PAGE, PROT_READ, MAP_SHARED, self->fd[d], 1));
		EXPECT_EQ(EINVAL, errno) TH_LOG("%s", devices[d]);
		errno = 0;
		EXPECT_EQ(MAP_FAILED, mmap((void *)0x10000001UL, PAGE, PROT_READ,
					   MAP_SHARED | MAP_FIXED, self->fd[d], 0));
		EXPECT_EQ(EINVAL, errno) TH_LOG("%s", devices[d]);
		m = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, self->fd[d], 0);
		ASSERT_NE(MAP_FAILED, m);
		EXPECT_EQ(-EOPNOTSUPP, dmirror(self->fd[d], HMM_DMIRROR_EXCLUSIVE, m, buf, 1, NULL))
			TH_LOG("%s", devices[d]);
		munmap(m, PAGE);
	}
	errno = 0;
	EXPECT_EQ(MAP_FAILED, mmap(NULL, 16385 * PAGE, PROT_READ, MAP_SHARED, self->fd[RSVA], 0));
	EXPECT_EQ(ENOMEM, errno);
	/* 16384 pages are given. */
	big = mmap(NULL, 16384 * PAGE, PROT_READ, MAP_SHARED, self->fd[RSVA], 0);
	ASSERT_NE(MAP_FAILED, big) TH_LOG("%s", strerror(errno));
	EXPECT_EQ(0, big[16383 * PAGE]);
	munmap(big, 16384 * PAGE);
}

struct teardown {
	char *p;
	size_t len;
};

static void *unmap_soon(void *arg)
{
	struct teardown *t = arg;

	usleep(rand() % 200);
	munmap(t->p, t->len);
	return NULL;
}

/* A read races the munmap of its buffer (hmm-tests' anon_teardown): it
 * either reads the whole buffer, faulting once, or fails with EFAULT.
 */
TEST_F(mirror, teardown_racing_munmap)
{
	unsigned long npages = 64, d, round, whole[NDEV] = { 0 };
	size_t len = npages * PAGE;
	char *buf = malloc(len);
	struct hmm_dmirror_cmd c;

	ASSERT_NE(NULL, buf);
	srand(5);
	for (round = 0; round < 200; round++) {
		for (d = 0; d < NDEV; d++) {
			struct teardown t = { .len = len };
			pthread_t th;
			int r;

			t.p = map_anon(len, PROT_READ | PROT_WRITE, MAP_PRIVATE);
			ASSERT_NE(NULL, t.p);
			memset(t.p, 'a' + round % 26, len);
			ASSERT_EQ(0, pthread_create(&th, NULL, unmap_soon, &t));
			r = dmirror(self->fd[d], HMM_DMIRROR_READ, t.p, buf, npages, &c);
			if (r == 0) {
				whole[d]++;
				EXPECT_EQ(npages, c.cpages);
				EXPECT_LE(1, c.faults);
				EXPECT_EQ('a' + round % 26, buf[0]);
				EXPECT_EQ('a' + round % 26, buf[len - 1]);
			} else {
				EXPECT_EQ(-EFAULT, r) TH_LOG("%s round %lu", devices[d], round);
			}
			pthread_join(th, NULL);
		}
	}
	TH_LOG("whole reads: test_hmm %lu, rsva %lu of 200", whole[0], whole[1]);
	free(buf);
}

#define OPENERS 8
#define OPEN_ROUNDS 5

struct opener {
	pthread_barrier_t *go;
	char *p;
	size_t len;
	int fails;
};

static int read_checked(int fd, struct opener *o, char *buf)
{
	return dmirror(fd, HMM_DMIRROR_READ, o->p, buf, o->len / PAGE, NULL) ||
	       memcmp(buf, o->p, o->len);
}

static void *open_and_churn(void *arg)
{
	struct opener *o = arg;
	char *buf = malloc(o->len);
	int fd, i;

	for (i = 0; i < OPEN_ROUNDS; i++) {
		/* All open at once, then the main thread counts, then all close. */
		pthread_barrier_wait(o->go);
		fd = open(devices[1], O_RDWR);
		o->fails += fd < 0 || read_checked(fd, o, buf);
		pthread_barrier_wait(o->go);
		pthread_barrier_wait(o->go);
		close(fd);
	}
	/* Then close and reopen without any order. */
	fd = open(devices[1], O_RDWR);
	for (i = 0; i < 100; i++) {
		close(fd);
		fd = open(devices[1], O_RDWR);
		o->fails += fd < 0 || read_checked(fd, o, buf);
	}
	close(fd);
	free(buf);
	return NULL;
}

/* Threads of one process open the device at once (OPEN_ROUNDS times), then
 * close and reopen it in a loop: their mirrors are clients of one shared
 * mirror of the mm (debugfs rsva/mirrors counts one more mirror and a
 * client per open file), every read through any of them is right, and once
 * all are closed the shared mirror is gone. (The misc core serialises
 * opens; KUnit rsva_c_mirror races registrations through the C API.)
 */
TEST(concurrent_opens_share_one_mirror)
{
	const char *path = "/sys/kernel/debug/rsva/mirrors";
	long long mirrors0 = text_counter(path, "mirrors");
	long long clients0 = text_counter(path, "clients");
	struct opener o[OPENERS];
	pthread_t t[OPENERS];
	pthread_barrier_t go;
	size_t len = 16 * PAGE;
	char *p = map_anon(len, PROT_READ | PROT_WRITE, MAP_PRIVATE);
	int i, r, shared = 0;

	ASSERT_LE(0, mirrors0);
	ASSERT_NE(NULL, p);
	memset(p, 'm', len);
	pthread_barrier_init(&go, NULL, OPENERS + 1);
	for (i = 0; i < OPENERS; i++) {
		o[i] = (struct opener){ &go, p, len, 0 };
		ASSERT_EQ(0, pthread_create(&t[i], NULL, open_and_churn, &o[i]));
	}
	for (r = 0; r < OPEN_ROUNDS; r++) {
		pthread_barrier_wait(&go);
		pthread_barrier_wait(&go);
		shared += text_counter(path, "mirrors") == mirrors0 + 1 &&
			  text_counter(path, "clients") == clients0 + OPENERS;
		pthread_barrier_wait(&go);
	}
	EXPECT_EQ(OPEN_ROUNDS, shared);
	for (i = 0; i < OPENERS; i++) {
		pthread_join(t[i], NULL);
		EXPECT_EQ(0, o[i].fails) TH_LOG("thread %d", i);
	}
	EXPECT_EQ(mirrors0, text_counter(path, "mirrors"));
	EXPECT_EQ(clients0, text_counter(path, "clients"));
	munmap(p, len);
}

#define RACE_PAGES 64
#define RACE_SECONDS 4
#define FAULT_AROUND "/sys/kernel/debug/fault_around_bytes"

struct write_race {
	unsigned char *x;		/* the mirrored destination */
	atomic_int stop;
	unsigned long forks;
	unsigned long child_saw_change;	/* children whose X changed after fork */
};

/* The first word of each page of @x. */
static void heads(const unsigned char *x, unsigned long *out)
{
	int i;

	for (i = 0; i < RACE_PAGES; i++)
		out[i] = __atomic_load_n((const unsigned long *)(x + i * PAGE), __ATOMIC_RELAXED);
}

/*
 * Forks in a loop. A child's copy of X may never change after the fork
 * (nobody writes it in the child): it reads X twice and exits 1 if it did.
 * The parent then writes the last byte of each page of X, which breaks the
 * COW sharing that fork set up, as any write of the process would; the
 * WRITE under test never checks those bytes.
 */
static void *fork_and_touch(void *arg)
{
	struct write_race *r = arg;
	int i, status;

	while (!atomic_load(&r->stop)) {
		pid_t pid = fork();

		if (pid == 0) {
			unsigned long a[RACE_PAGES], b[RACE_PAGES];

			heads(r->x, a);
			usleep(1000);
			heads(r->x, b);
			_exit(memcmp(a, b, sizeof(a)) ? 1 : 0);
		}
		if (pid < 0)
			break;
		for (i = 0; i < RACE_PAGES; i++)
			__atomic_store_n(r->x + i * PAGE + PAGE - 1, i, __ATOMIC_RELAXED);
		if (waitpid(pid, &status, 0) == pid && WIFEXITED(status) &&
		    WEXITSTATUS(status) == 1)
			r->child_saw_change++;
		r->forks++;
	}
	return NULL;
}

FIXTURE(write_race) {
	int fd;
};

FIXTURE_VARIANT(write_race) {
	int dev;
};

FIXTURE_VARIANT_ADD(write_race, test_hmm) {
	.dev = 0,
};

FIXTURE_VARIANT_ADD(write_race, rsva) {
	.dev = RSVA,
};

FIXTURE_SETUP(write_race)
{
	self->fd = open(devices[variant->dev], O_RDWR | O_CLOEXEC);
	ASSERT_LE(0, self->fd);
}

FIXTURE_TEARDOWN(write_race)
{
	close(self->fd);
}

/*
 * A WRITE whose source must be faulted in, racing fork(). The source is a
 * shared memfd mapping emptied with MADV_DONTNEED before each call: its
 * data stays in the page cache but is not mapped, so rsva cannot copy it
 * under the mirror's lock (no page fault may happen there) and takes its
 * slow path, which debugfs counts in copied_after_lock. With fault-around
 * off, each source page faults on its own, which makes that path long.
 * Meanwhile another thread forks and writes X (breaking COW). Every WRITE
 * must land in the page the process maps when it returns: the CPU reads
 * the new pattern at the head of each page of X, and no child sees its
 * copy of X change after the fork. (A WRITE that forks keep undoing for a
 * second may give EBUSY, as on test_hmm; it is counted and not checked.)
 */
TEST_F_TIMEOUT(write_race, write_racing_fork_is_not_lost, 60)
{
	const char *path = "/sys/kernel/debug/rsva/mirrors";
	long long after0 = text_counter(path, "copied_after_lock");
	long long refaults0 = text_counter(path, "bounce_refaults");
	struct write_race r = { 0 };
	size_t len = RACE_PAGES * PAGE;
	unsigned long writes = 0, busy = 0, lost = 0, k, i;
	int memfd = memfd_create("rsva_write_race", 0);
	unsigned char *src;
	char around[32];
	double end;
	pthread_t t;
	int ret;

	ASSERT_LE(0, after0);
	ASSERT_LT(0, read_text(FAULT_AROUND, around, sizeof(around)));
	ASSERT_EQ(0, write_text(FAULT_AROUND, "4096"));
	ASSERT_LE(0, memfd);
	ASSERT_EQ(0, ftruncate(memfd, len));
	src = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
	ASSERT_NE(MAP_FAILED, src);
	r.x = map_anon(len, PROT_READ | PROT_WRITE, MAP_PRIVATE);
	ASSERT_NE(NULL, r.x);
	madvise(r.x, len, MADV_NOHUGEPAGE);
	memset(r.x, 0, len);
	ASSERT_EQ(0, pthread_create(&t, NULL, fork_and_touch, &r));
	end = now() + RACE_SECONDS;
	for (k = 1; now() < end; k++) {
		struct hmm_dmirror_cmd c;

		for (i = 0; i < RACE_PAGES; i++)
			*(unsigned long *)(src + i * PAGE) = k << 16 | i;
		ASSERT_EQ(0, madvise(src, len, MADV_DONTNEED));
		ret = dmirror(self->fd, HMM_DMIRROR_WRITE, r.x, src, RACE_PAGES, &c);
		if (ret == -EBUSY) {
			busy++;
			continue;
		}
		ASSERT_EQ(0, ret);
		ASSERT_EQ(RACE_PAGES, c.cpages);
		writes++;
		for (i = 0; i < RACE_PAGES; i++) {
			unsigned long got = __atomic_load_n((unsigned long *)(r.x + i * PAGE),
							    __ATOMIC_RELAXED);

			if (got != (k << 16 | i)) {
				if (!lost)
					TH_LOG("write %lu page %lu: read 0x%lx, wrote 0x%lx",
					       k, i, got, k << 16 | i);
				lost++;
			}
		}
	}
	atomic_store(&r.stop, 1);
	pthread_join(t, NULL);
	EXPECT_EQ(0, write_text(FAULT_AROUND, around));
	TH_LOG("%s: %lu writes (%lu EBUSY), %lu forks, %lu pages lost, %lu children saw X change",
	       devices[variant->dev], writes, busy, r.forks, lost, r.child_saw_change);
	TH_LOG("copied_after_lock +%lld, bounce_refaults +%lld",
	       text_counter(path, "copied_after_lock") - after0,
	       text_counter(path, "bounce_refaults") - refaults0);
	EXPECT_LT(0, writes);
	EXPECT_EQ(0, lost);
	EXPECT_EQ(0, r.child_saw_change);
	EXPECT_LT(10, r.forks);
	/* rsva took the path under test for every page of every write. */
	if (variant->dev == RSVA)
		EXPECT_LE(after0 + (long long)writes * RACE_PAGES,
			  text_counter(path, "copied_after_lock"));
	munmap(r.x, len);
	munmap(src, len);
	close(memfd);
}

struct storm {
	char *p;
	size_t len;
	atomic_int stop;
};

static void *storm_cpu(void *arg)
{
	struct storm *s = arg;
	int i = 0;

	while (!atomic_load(&s->stop)) {
		switch (i++ % 4) {
		case 0:
			munmap(s->p, s->len);
			mmap(s->p, s->len, PROT_READ | PROT_WRITE,
			     MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
			memset(s->p, i, s->len / 2);
			break;
		case 1:
			mprotect(s->p, s->len, PROT_READ);
			mprotect(s->p, s->len, PROT_READ | PROT_WRITE);
			break;
		case 2:
			if (fork() == 0)
				_exit(0);
			wait(NULL);
			break;
		default:
			madvise(s->p, s->len, MADV_DONTNEED);
			break;
		}
	}
	return NULL;
}

FIXTURE(storm) {
	int unused;
};

FIXTURE_SETUP(storm)
{
}

FIXTURE_TEARDOWN(storm)
{
}

/* Faults against munmap, mprotect, fork and DONTNEED storms: each read
 * either works or fails with EFAULT/EPERM/EBUSY, nothing hangs, no splat.
 */
TEST_F_TIMEOUT(storm, faults_against_address_space_storms, 120)
{
	struct storm s = { .len = 64 * PAGE };
	unsigned int rounds = 0, ok = 0, i;
	char *buf = malloc(s.len);
	pthread_t t;
	int fd = open(devices[1], O_RDWR);

	ASSERT_LE(0, fd);
	s.p = map_anon(s.len, PROT_READ | PROT_WRITE, MAP_PRIVATE);
	ASSERT_NE(NULL, s.p);
	ASSERT_EQ(0, pthread_create(&t, NULL, storm_cpu, &s));
	for (i = 0; i < 3000; i++) {
		int r = dmirror(fd, i & 1 ? HMM_DMIRROR_READ : HMM_DMIRROR_SNAPSHOT,
				s.p, buf, 64, NULL);

		rounds++;
		ok += !r;
		if (r && r != -EFAULT && r != -EPERM && r != -EBUSY) {
			TH_LOG("unexpected %d", r);
			break;
		}
	}
	atomic_store(&s.stop, 1);
	pthread_join(t, NULL);
	TH_LOG("%u rounds, %u succeeded", rounds, ok);
	EXPECT_EQ(3000, rounds);
	EXPECT_LT(0, ok);
	close(fd);
	free(buf);
}

/*
 * Device memory and migration: each case runs on test_hmm's two devices and
 * on rsva's (the variant), with the same expectations, so the two agree.
 * rsva's debugfs rsva/mirrors counts the device pages in use
 * (devmem_in_use), which must fall back to 0 when the pages are gone.
 */
static const char *const pair[NDEV][2] = {
	{ "/dev/hmm_dmirror0", "/dev/hmm_dmirror1" },
	{ "/dev/rsva_mirror0", "/dev/rsva_mirror1" },
};

#define MIRRORS "/sys/kernel/debug/rsva/mirrors"
#define PMD (2UL << 20)

FIXTURE(devmem) {
	int fd[2];
};

FIXTURE_VARIANT(devmem) {
	int dev;
};

FIXTURE_VARIANT_ADD(devmem, test_hmm) {
	.dev = 0,
};

FIXTURE_VARIANT_ADD(devmem, rsva) {
	.dev = RSVA,
};

FIXTURE_SETUP(devmem)
{
	int i;

	for (i = 0; i < 2; i++) {
		self->fd[i] = open(pair[variant->dev][i], O_RDWR | O_CLOEXEC);
		ASSERT_LE(0, self->fd[i]) TH_LOG("%s: %s", pair[variant->dev][i], strerror(errno));
	}
}

FIXTURE_TEARDOWN(devmem)
{
	close(self->fd[0]);
	close(self->fd[1]);
}

/* rsva's device pages in use (both devices), or 0 on test_hmm. */
static long long in_use(int dev)
{
	return dev == RSVA ? text_counter(MIRRORS, "devmem_in_use") : 0;
}

/* The pattern of word @i of a buffer. */
static unsigned int word(size_t i, unsigned int seed)
{
	return (unsigned int)i * 2654435761u + seed;
}

static void fill(unsigned int *p, size_t len, unsigned int seed)
{
	size_t i;

	for (i = 0; i < len / sizeof(*p); i++)
		p[i] = word(i, seed);
}

static int filled(const unsigned int *p, size_t len, unsigned int seed)
{
	size_t i;

	for (i = 0; i < len / sizeof(*p); i++)
		if (p[i] != word(i, seed))
			return 0;
	return 1;
}

/* Counts the snapshot codes of @npages pages equal to @code. */
static unsigned long codes(int fd, void *p, unsigned long npages, unsigned char code)
{
	unsigned char *perm = malloc(npages);
	unsigned long i, n = 0;

	if (!perm || dmirror(fd, HMM_DMIRROR_SNAPSHOT, p, perm, npages, NULL))
		n = ~0UL;
	for (i = 0; n != ~0UL && i < npages; i++)
		n += perm[i] == code;
	free(perm);
	return n;
}

/*
 * To the device and back: MIGRATE_TO_DEV moves every page and returns
 * their data; SNAPSHOT sees them as the device's own (local on it, not
 * present for the other device); READ reads them without a fault;
 * MIGRATE_TO_SYS moves them back, and the CPU reads them unchanged.
 */
TEST_F(devmem, migrate_to_device_and_back)
{
	unsigned long npages = 64;
	size_t len = npages * PAGE;
	unsigned int *p = map_anon(len, PROT_READ | PROT_WRITE, MAP_PRIVATE);
	unsigned int *buf = malloc(len);
	struct hmm_dmirror_cmd c;
	long long used0 = in_use(variant->dev);

	ASSERT_NE(NULL, p);
	fill(p, len, 1);
	ASSERT_EQ(0, dmirror(self->fd[0], HMM_DMIRROR_MIGRATE_TO_DEV, p, buf, npages, &c));
	EXPECT_EQ(npages, c.cpages);
	EXPECT_TRUE(filled(buf, len, 1));
	EXPECT_EQ(npages, codes(self->fd[0], p, npages,
				HMM_DMIRROR_PROT_DEV_PRIVATE_LOCAL | HMM_DMIRROR_PROT_WRITE));
	EXPECT_EQ(npages, codes(self->fd[1], p, npages, HMM_DMIRROR_PROT_NONE));
	EXPECT_EQ(variant->dev == RSVA ? used0 + npages : 0, in_use(variant->dev));
	memset(buf, 0, len);
	ASSERT_EQ(0, dmirror(self->fd[0], HMM_DMIRROR_READ, p, buf, npages, &c));
	EXPECT_EQ(0, c.faults);
	EXPECT_TRUE(filled(buf, len, 1));
	ASSERT_EQ(0, dmirror(self->fd[0], HMM_DMIRROR_MIGRATE_TO_SYS, p, buf, npages, &c));
	EXPECT_EQ(npages, c.cpages);
	EXPECT_EQ(npages, codes(self->fd[0], p, npages, HMM_DMIRROR_PROT_WRITE));
	EXPECT_TRUE(filled(p, len, 1));
	EXPECT_EQ(used0, in_use(variant->dev));
	munmap(p, len);
	free(buf);
}

/* The CPU touching migrated pages brings them back (migrate_to_ram). */
TEST_F(devmem, cpu_fault_brings_pages_back)
{
	unsigned long npages = 32, i;
	size_t len = npages * PAGE;
	unsigned int *p = map_anon(len, PROT_READ | PROT_WRITE, MAP_PRIVATE);
	unsigned int *buf = malloc(len);
	struct hmm_dmirror_cmd c;
	long long used0 = in_use(variant->dev);

	ASSERT_NE(NULL, p);
	fill(p, len, 2);
	ASSERT_EQ(0, dmirror(self->fd[0], HMM_DMIRROR_MIGRATE_TO_DEV, p, buf, npages, &c));
	ASSERT_EQ(npages, c.cpages);
	/* Reads of even pages, writes of odd ones. */
	for (i = 0; i < npages; i++) {
		unsigned int *q = p + i * PAGE / sizeof(*p);

		if (i % 2)
			q[1] += 1;
		else
			EXPECT_EQ(word(i * PAGE / sizeof(*p) + 1, 2), q[1]);
	}
	EXPECT_EQ(0, codes(self->fd[0], p, npages,
			   HMM_DMIRROR_PROT_DEV_PRIVATE_LOCAL | HMM_DMIRROR_PROT_WRITE));
	EXPECT_EQ(used0, in_use(variant->dev));
	/* The device reads what the CPU wrote. */
	ASSERT_EQ(0, dmirror(self->fd[0], HMM_DMIRROR_READ, p, buf, npages, &c));
	for (i = 0; i < npages; i++)
		EXPECT_EQ(word(i * PAGE / sizeof(*p) + 1, 2) + i % 2, buf[i * PAGE / sizeof(*p) + 1]);
	munmap(p, len);
	free(buf);
}

/*
 * Device pages the mirror forgot (an mprotect() invalidates it) are read
 * through the data the device holds, without moving them back; the other
 * device's READ moves them back to system memory. test_hmm mirrored the
 * device page itself when it faulted it again, and its READ then copied
 * from a frame the CPU cannot address (an oops), until patch 0009.
 */
TEST_F(devmem, read_device_pages_after_invalidation)
{
	unsigned long npages = 16;
	size_t len = npages * PAGE;
	unsigned int *p = map_anon(len, PROT_READ | PROT_WRITE, MAP_PRIVATE);
	unsigned int *buf = malloc(len);
	int fd0 = self->fd[0], fd1 = self->fd[1];
	struct hmm_dmirror_cmd c;

	ASSERT_NE(NULL, p);
	fill(p, len, 3);
	ASSERT_EQ(0, dmirror(fd0, HMM_DMIRROR_MIGRATE_TO_DEV, p, buf, npages, &c));
	ASSERT_EQ(0, mprotect(p, len, PROT_READ));
	memset(buf, 0, len);
	ASSERT_EQ(0, dmirror(fd0, HMM_DMIRROR_READ, p, buf, npages, &c));
	EXPECT_EQ(1, c.faults);
	EXPECT_TRUE(filled(buf, len, 3));
	EXPECT_EQ(npages, codes(fd0, p, npages,
				HMM_DMIRROR_PROT_DEV_PRIVATE_LOCAL | HMM_DMIRROR_PROT_READ));
	/* Device 1 sees them as not present, and its READ brings them back. */
	EXPECT_EQ(npages, codes(fd1, p, npages, HMM_DMIRROR_PROT_NONE));
	memset(buf, 0, len);
	ASSERT_EQ(0, dmirror(fd1, HMM_DMIRROR_READ, p, buf, npages, &c));
	EXPECT_TRUE(filled(buf, len, 3));
	EXPECT_EQ(npages, codes(fd0, p, npages, HMM_DMIRROR_PROT_READ));
	munmap(p, len);
	free(buf);
}

/*
 * A WRITE through the device to its own pages that a fork made read-only
 * (shared with the child): hmm reports them as they are, without write
 * permission, so rsva faults them again without its owner, which brings
 * them back to system memory and breaks COW. The WRITE lands in the
 * parent's pages only. (It looped once; test_hmm answers EFAULT with a
 * WARN in dmirror_do_fault(), so this runs on rsva only.)
 */
TEST(write_to_cow_shared_device_pages)
{
	unsigned long npages = 8;
	size_t len = npages * PAGE;
	unsigned int *p = map_anon(len, PROT_READ | PROT_WRITE, MAP_PRIVATE);
	unsigned int *buf = malloc(len);
	int fd = open(pair[RSVA][0], O_RDWR), go[2], status;
	struct hmm_dmirror_cmd c;
	pid_t pid;
	char b;

	ASSERT_NE(NULL, p);
	ASSERT_LE(0, fd);
	ASSERT_EQ(0, pipe(go));
	fill(p, len, 13);
	ASSERT_EQ(0, dmirror(fd, HMM_DMIRROR_MIGRATE_TO_DEV, p, buf, npages, &c));
	ASSERT_EQ(npages, c.cpages);
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		close(go[1]);
		if (read(go[0], &b, 1) != 1)
			_exit(2);
		_exit(filled(p, len, 13) ? 0 : 1);
	}
	close(go[0]);
	fill(buf, len, 14);
	ASSERT_EQ(0, dmirror(fd, HMM_DMIRROR_WRITE, p, buf, npages, &c));
	EXPECT_EQ(npages, c.cpages);
	EXPECT_TRUE(filled(p, len, 14));
	ASSERT_EQ(1, write(go[1], "g", 1));
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	close(go[1]);
	close(fd);
	munmap(p, len);
	free(buf);
}

/*
 * Two files of one device on one mm (two tables, one device memory): a
 * migration to the device through file A frees the old system pages when it
 * finalizes, and its invalidation is the device's own, which the tables
 * ignore. File B's table mirrored those pages (a READ through B), so it must
 * forget them (forget_moved() in mirror/migration.rs); otherwise B keeps
 * frames of freed pages. The device then writes new data through A (into
 * the pages that hold the device pages' data), and B must read it: B
 * faults again (one fault) and mirrors the device's pages through that
 * data. A B that kept its frames reads without a fault what the freed
 * pages hold (the old data, or whatever their next user wrote; KASAN may
 * report the copy). test_hmm has the same flaw (dmirror_interval_invalidate()
 * skips its device's own migrations for every dmirror of the device, and
 * only the migrating one is updated): rsva only.
 */
TEST(second_file_forgets_pages_moved_by_the_first)
{
	unsigned long npages = 16;
	size_t len = npages * PAGE;
	unsigned int *p = map_anon(len, PROT_READ | PROT_WRITE, MAP_PRIVATE);
	unsigned int *buf = malloc(len);
	int a = open(pair[RSVA][0], O_RDWR | O_CLOEXEC);
	int b = open(pair[RSVA][0], O_RDWR | O_CLOEXEC);
	long long used0 = in_use(RSVA);
	struct hmm_dmirror_cmd c;

	ASSERT_NE(NULL, p);
	ASSERT_NE(NULL, buf);
	ASSERT_LE(0, a);
	ASSERT_LE(0, b);
	fill(p, len, 15);
	/* B mirrors the system pages. */
	memset(buf, 0, len);
	ASSERT_EQ(0, dmirror(b, HMM_DMIRROR_READ, p, buf, npages, &c));
	EXPECT_EQ(npages, c.cpages);
	EXPECT_EQ(1, c.faults);
	EXPECT_TRUE(filled(buf, len, 15));
	/* A moves them to the device: their old pages are freed. */
	ASSERT_EQ(0, dmirror(a, HMM_DMIRROR_MIGRATE_TO_DEV, p, buf, npages, &c));
	ASSERT_EQ(npages, c.cpages);
	EXPECT_TRUE(filled(buf, len, 15));
	EXPECT_EQ(used0 + (long long)npages, in_use(RSVA));
	/* The device writes new data through A's table, without a fault. */
	fill(buf, len, 16);
	ASSERT_EQ(0, dmirror(a, HMM_DMIRROR_WRITE, p, buf, npages, &c));
	EXPECT_EQ(npages, c.cpages);
	EXPECT_EQ(0, c.faults);
	/* B forgot the moved pages: it faults them again and reads the new data. */
	memset(buf, 0, len);
	ASSERT_EQ(0, dmirror(b, HMM_DMIRROR_READ, p, buf, npages, &c));
	EXPECT_EQ(npages, c.cpages);
	EXPECT_EQ(1, c.faults);
	EXPECT_TRUE(filled(buf, len, 16));
	/* Still on the device (B read them there), as B's snapshot shows. */
	EXPECT_EQ(npages, codes(b, p, npages,
				HMM_DMIRROR_PROT_DEV_PRIVATE_LOCAL | HMM_DMIRROR_PROT_WRITE));
	EXPECT_EQ(used0 + (long long)npages, in_use(RSVA));
	/* The CPU brings them back with the device's data. */
	EXPECT_TRUE(filled(p, len, 16));
	EXPECT_EQ(used0, in_use(RSVA));
	close(a);
	close(b);
	munmap(p, len);
	free(buf);
}

/* RELEASE: the device gives its memory up; the data is back in the process. */
TEST_F(devmem, release_moves_everything_back)
{
	unsigned long npages = 48;
	size_t len = npages * PAGE;
	unsigned int *p = map_anon(len, PROT_READ | PROT_WRITE, MAP_PRIVATE);
	unsigned int *buf = malloc(len);
	struct hmm_dmirror_cmd c;

	ASSERT_NE(NULL, p);
	fill(p, len, 4);
	ASSERT_EQ(0, dmirror(self->fd[0], HMM_DMIRROR_MIGRATE_TO_DEV, p, buf, npages, &c));
	ASSERT_EQ(npages, c.cpages);
	ASSERT_EQ(0, dmirror(self->fd[0], HMM_DMIRROR_RELEASE, p, buf, npages, NULL));
	EXPECT_EQ(npages, codes(self->fd[0], p, npages, HMM_DMIRROR_PROT_WRITE));
	EXPECT_TRUE(filled(p, len, 4));
	EXPECT_EQ(0, variant->dev == RSVA ? text_counter(MIRRORS, "devmem_chunks0") : 0);
	/* The device takes memory again. */
	ASSERT_EQ(0, dmirror(self->fd[0], HMM_DMIRROR_MIGRATE_TO_DEV, p, buf, npages, &c));
	EXPECT_EQ(npages, c.cpages);
	EXPECT_TRUE(filled(buf, len, 4));
	munmap(p, len);
	free(buf);
}

/*
 * FLAGS with HMM_DMIRROR_FLAG_FAIL_ALLOC: the next allocation fails, so a
 * single page stays in system memory and, not being mirrored, the read
 * back gives ENOENT; the flag is used up. For a THP the device falls back
 * to single pages: every page moves.
 */
TEST_F(devmem, fail_alloc)
{
	size_t len = 3 * PMD;
	char *raw = map_anon(len, PROT_READ | PROT_WRITE, MAP_PRIVATE), *thp;
	unsigned int *buf = malloc(PMD);
	struct hmm_dmirror_cmd c;
	unsigned int *p;

	ASSERT_NE(NULL, raw);
	ASSERT_EQ(0, madvise(raw, len, MADV_NOHUGEPAGE));
	p = (unsigned int *)raw;
	fill(p, PAGE, 5);
	ASSERT_EQ(0, dmirror(self->fd[0], HMM_DMIRROR_FLAGS, p, buf, HMM_DMIRROR_FLAG_FAIL_ALLOC,
			     NULL));
	EXPECT_EQ(-ENOENT, dmirror(self->fd[0], HMM_DMIRROR_MIGRATE_TO_DEV, p, buf, 1, &c));
	EXPECT_EQ(0, codes(self->fd[0], p, 1,
			   HMM_DMIRROR_PROT_DEV_PRIVATE_LOCAL | HMM_DMIRROR_PROT_WRITE));
	ASSERT_EQ(0, dmirror(self->fd[0], HMM_DMIRROR_MIGRATE_TO_DEV, p, buf, 1, &c));
	EXPECT_EQ(1, c.cpages);
	EXPECT_TRUE(filled(buf, PAGE, 5));

	/* A PMD after the first page. */
	thp = (char *)(((uintptr_t)raw + PMD) & ~(PMD - 1));
	ASSERT_EQ(0, madvise(thp, PMD, MADV_HUGEPAGE));
	fill((unsigned int *)thp, PMD, 6);
	ASSERT_EQ(0, dmirror(self->fd[0], HMM_DMIRROR_FLAGS, thp, buf, HMM_DMIRROR_FLAG_FAIL_ALLOC,
			     NULL));
	ASSERT_EQ(0, dmirror(self->fd[0], HMM_DMIRROR_MIGRATE_TO_DEV, thp, buf, PMD / PAGE, &c));
	EXPECT_EQ(PMD / PAGE, c.cpages);
	EXPECT_TRUE(filled(buf, PMD, 6));
	/* Back with the allocation failing for the first page: ENOMEM. */
	ASSERT_EQ(0, dmirror(self->fd[0], HMM_DMIRROR_FLAGS, thp, buf, HMM_DMIRROR_FLAG_FAIL_ALLOC,
			     NULL));
	EXPECT_EQ(-ENOMEM, dmirror(self->fd[0], HMM_DMIRROR_MIGRATE_TO_SYS, thp, buf, PMD / PAGE,
				   &c));
	EXPECT_TRUE(filled((unsigned int *)thp, PMD, 6));
	munmap(raw, len);
	free(buf);
}

/* A whole THP moves as one device folio (PMD in the snapshot) and back. */
TEST_F(devmem, thp_to_device_and_back)
{
	size_t len = 2 * PMD;
	char *raw = map_anon(len, PROT_READ | PROT_WRITE, MAP_PRIVATE), *thp;
	unsigned int *buf = malloc(PMD);
	unsigned long npages = PMD / PAGE;
	struct hmm_dmirror_cmd c;

	ASSERT_NE(NULL, raw);
	thp = (char *)(((uintptr_t)raw + PMD - 1) & ~(PMD - 1));
	ASSERT_EQ(0, madvise(thp, PMD, MADV_HUGEPAGE));
	fill((unsigned int *)thp, PMD, 7);
	ASSERT_EQ(0, dmirror(self->fd[0], HMM_DMIRROR_MIGRATE_TO_DEV, thp, buf, npages, &c));
	EXPECT_EQ(npages, c.cpages);
	EXPECT_TRUE(filled(buf, PMD, 7));
	EXPECT_EQ(npages, codes(self->fd[0], thp, npages,
				HMM_DMIRROR_PROT_DEV_PRIVATE_LOCAL | HMM_DMIRROR_PROT_WRITE |
				HMM_DMIRROR_PROT_PMD));
	ASSERT_EQ(0, dmirror(self->fd[0], HMM_DMIRROR_MIGRATE_TO_SYS, thp, buf, npages, &c));
	EXPECT_TRUE(filled((unsigned int *)thp, PMD, 7));
	EXPECT_EQ(0, codes(self->fd[0], thp, npages,
			   HMM_DMIRROR_PROT_DEV_PRIVATE_LOCAL | HMM_DMIRROR_PROT_WRITE |
			   HMM_DMIRROR_PROT_PMD));
	munmap(raw, len);
	free(buf);
}

/*
 * A thread that repeats one command over a range until stopped: its
 * successes and failures, and for a READ the times the data was not
 * @seed's pattern.
 */
struct mig_race {
	int fd;
	char *p;
	size_t len;
	unsigned long req;
	unsigned int seed;
	atomic_int stop;
	unsigned long ok, failed, wrong;
};

static void *command_loop(void *arg)
{
	struct mig_race *r = arg;
	unsigned int *buf = malloc(r->len);
	struct hmm_dmirror_cmd c;

	while (buf && !atomic_load(&r->stop)) {
		if (dmirror(r->fd, r->req, r->p, buf, r->len / PAGE, &c)) {
			r->failed++;
			continue;
		}
		r->ok++;
		if (r->req == HMM_DMIRROR_READ && !filled(buf, r->len, r->seed))
			r->wrong++;
	}
	free(buf);
	return NULL;
}

/*
 * Migrations racing munmap/mmap of their range, and fork() with the child
 * writing (COW of device pages, migrated back in the child): no crash, and
 * at the end a migration and the CPU both see the right data, the child
 * saw its own copy, and rsva's device pages are all freed with the range.
 */
TEST_F_TIMEOUT(devmem, migrate_racing_munmap_and_fork, 120)
{
	size_t len = 32 * PAGE;
	struct mig_race r = {
		.fd = self->fd[0], .len = len, .req = HMM_DMIRROR_MIGRATE_TO_DEV,
	};
	unsigned int *buf = malloc(len);
	long long used0 = in_use(variant->dev);
	struct hmm_dmirror_cmd c;
	pthread_t t;
	int round, status;

	r.p = map_anon(len, PROT_READ | PROT_WRITE, MAP_PRIVATE);
	ASSERT_NE(NULL, r.p);
	fill((unsigned int *)r.p, len, 8);
	ASSERT_EQ(0, pthread_create(&t, NULL, command_loop, &r));
	for (round = 0; round < 60; round++) {
		pid_t pid;

		if (round % 2 == 0) {
			ASSERT_EQ(r.p, mmap(r.p, len, PROT_READ | PROT_WRITE,
					    MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0));
			fill((unsigned int *)r.p, len, 8);
			continue;
		}
		pid = fork();
		ASSERT_LE(0, pid);
		if (pid == 0) {
			unsigned int *q = (unsigned int *)r.p;

			if (!filled(q, len, 8))
				_exit(1);
			fill(q, len, 9);
			_exit(filled(q, len, 9) ? 0 : 2);
		}
		ASSERT_EQ(pid, waitpid(pid, &status, 0));
		EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
			TH_LOG("round %d status %x", round, status);
		EXPECT_TRUE(filled((unsigned int *)r.p, len, 8));
	}
	atomic_store(&r.stop, 1);
	pthread_join(t, NULL);
	TH_LOG("migrations: %lu whole, %lu failed", r.ok, r.failed);
	/* The CPU reads every page back (a fork left some unmirrored), then all move. */
	EXPECT_TRUE(filled((unsigned int *)r.p, len, 8));
	ASSERT_EQ(0, dmirror(self->fd[0], HMM_DMIRROR_MIGRATE_TO_DEV, r.p, buf, len / PAGE, &c));
	EXPECT_TRUE(filled(buf, len, 8));
	munmap(r.p, len);
	EXPECT_EQ(used0, in_use(variant->dev));
	free(buf);
}

/*
 * A process whose pages are on the device exits, and one is killed while
 * it migrates them in a loop: their device pages are freed with their
 * address spaces (before the parent's waitpid() returns), and the device
 * is usable after.
 */
TEST_F_TIMEOUT(devmem, exit_and_kill_with_pages_on_device, 60)
{
	long long used0 = in_use(variant->dev);
	int kill_it, status;

	for (kill_it = 0; kill_it < 2; kill_it++) {
		pid_t pid = fork();

		ASSERT_LE(0, pid);
		if (pid == 0) {
			size_t len = 64 * PAGE;
			struct mig_race r = { .len = len };
			int fd = open(pair[variant->dev][0], O_RDWR);
			char *buf = malloc(len);

			r.fd = fd;
			r.p = map_anon(len, PROT_READ | PROT_WRITE, MAP_PRIVATE);
			if (fd < 0 || !r.p || !buf)
				_exit(1);
			fill((unsigned int *)r.p, len, 10);
			if (dmirror(fd, HMM_DMIRROR_MIGRATE_TO_DEV, r.p, buf, len / PAGE, NULL))
				_exit(2);
			if (!kill_it)
				_exit(0);
			/* Keeps migrating (and faulting back) until killed. */
			for (;;) {
				dmirror(fd, HMM_DMIRROR_MIGRATE_TO_DEV, r.p, buf, len / PAGE, NULL);
				__atomic_fetch_add(r.p + PAGE * (rand() % 64), 1, __ATOMIC_RELAXED);
			}
		}
		if (kill_it) {
			usleep(200 * 1000);
			kill(pid, SIGKILL);
		}
		ASSERT_EQ(pid, waitpid(pid, &status, 0));
		EXPECT_TRUE(kill_it ? WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL :
				      WIFEXITED(status) && WEXITSTATUS(status) == 0);
		EXPECT_EQ(used0, in_use(variant->dev)) TH_LOG("kill %d", kill_it);
	}
	{
		unsigned int *p = map_anon(PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE);
		unsigned int buf[PAGE / sizeof(unsigned int)];
		struct hmm_dmirror_cmd c;

		ASSERT_NE(NULL, p);
		fill(p, PAGE, 11);
		ASSERT_EQ(0, dmirror(self->fd[0], HMM_DMIRROR_MIGRATE_TO_DEV, p, buf, 1, &c));
		EXPECT_TRUE(filled(buf, PAGE, 11));
		munmap(p, PAGE);
	}
}

/*
 * READ racing the CPU faulting the pages it reads back from the device
 * (migrate_to_ram): the device forgets a page under the lock its reads
 * hold before the page is freed, and a READ whose fault raced such a
 * migration retries, so a read never copies a freed page (KASAN would
 * report it) and always returns the data. test_hmm erased its entries
 * without its mutex until patch 0008, and ignored its own migrations'
 * invalidations without moving the notifier's sequence until patch 0010.
 */
TEST_F_TIMEOUT(devmem, read_racing_cpu_fault_back, 120)
{
	size_t len = 16 * PAGE;
	struct mig_race r = {
		.fd = self->fd[0], .len = len, .req = HMM_DMIRROR_READ, .seed = 13,
	};
	unsigned int *buf = malloc(len);
	long long used0 = in_use(variant->dev);
	struct hmm_dmirror_cmd c;
	unsigned long migrated = 0;
	unsigned int *p;
	pthread_t t;
	int round;

	p = map_anon(len, PROT_READ | PROT_WRITE, MAP_PRIVATE);
	r.p = (char *)p;
	ASSERT_NE(NULL, p);
	ASSERT_NE(NULL, buf);
	fill(p, len, 13);
	ASSERT_EQ(0, pthread_create(&t, NULL, command_loop, &r));
	for (round = 0; round < 250; round++) {
		size_t i;

		if (!dmirror(self->fd[0], HMM_DMIRROR_MIGRATE_TO_DEV, r.p, buf, len / PAGE, &c))
			migrated += c.cpages;
		/* Backwards, against the reads' direction. */
		for (i = len / PAGE; i-- > 0;)
			EXPECT_EQ(word(i * PAGE / sizeof(int), 13),
				  __atomic_load_n(p + i * PAGE / sizeof(int), __ATOMIC_RELAXED));
	}
	atomic_store(&r.stop, 1);
	pthread_join(t, NULL);
	TH_LOG("%lu reads, %lu pages migrated", r.ok, migrated);
	EXPECT_LT(0, r.ok);
	EXPECT_LT(0, migrated);
	EXPECT_EQ(0, r.failed);
	EXPECT_EQ(0, r.wrong);
	EXPECT_TRUE(filled(p, len, 13));
	munmap(p, len);
	EXPECT_EQ(used0, in_use(variant->dev));
	free(buf);
}

/* Two devices: pages on one are not the other's, and move between them. */
TEST_F(devmem, two_devices_own_their_pages)
{
	unsigned long npages = 8;
	size_t len = npages * PAGE;
	unsigned int *p = map_anon(len, PROT_READ | PROT_WRITE, MAP_PRIVATE);
	unsigned int *buf = malloc(len);
	struct hmm_dmirror_cmd c;

	ASSERT_NE(NULL, p);
	fill(p, len, 12);
	ASSERT_EQ(0, dmirror(self->fd[0], HMM_DMIRROR_MIGRATE_TO_DEV, p, buf, npages / 2, &c));
	ASSERT_EQ(0, dmirror(self->fd[1], HMM_DMIRROR_MIGRATE_TO_DEV, p + len / 8, buf,
			     npages / 2, &c));
	EXPECT_EQ(npages / 2, c.cpages);
	EXPECT_EQ(npages / 2, codes(self->fd[0], p, npages,
				    HMM_DMIRROR_PROT_DEV_PRIVATE_LOCAL | HMM_DMIRROR_PROT_WRITE));
	EXPECT_EQ(npages / 2, codes(self->fd[1], p, npages,
				    HMM_DMIRROR_PROT_DEV_PRIVATE_LOCAL | HMM_DMIRROR_PROT_WRITE));
	/*
	 * Device 1 migrates system memory only: device 0's pages stay, and
	 * are not mirrored by device 1 (ENOENT); the CPU brings them back.
	 */
	EXPECT_EQ(-ENOENT, dmirror(self->fd[1], HMM_DMIRROR_MIGRATE_TO_DEV, p, buf, npages, &c));
	EXPECT_EQ(npages / 2, codes(self->fd[0], p, npages,
				    HMM_DMIRROR_PROT_DEV_PRIVATE_LOCAL | HMM_DMIRROR_PROT_WRITE));
	EXPECT_TRUE(filled(p, len, 12));
	EXPECT_EQ(0, codes(self->fd[0], p, npages,
			   HMM_DMIRROR_PROT_DEV_PRIVATE_LOCAL | HMM_DMIRROR_PROT_WRITE));
	munmap(p, len);
	free(buf);
}

TEST_HARNESS_MAIN
