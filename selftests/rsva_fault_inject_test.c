// SPDX-License-Identifier: GPL-2.0
/*
 * Fault injection sweep: every allocation on the paths of bind, PASID
 * allocation, DMA ownership claims, mirror registration, mirror faults and
 * migration to device memory and back (migrate_vma_*() and migrate_to_ram)
 * is made to fail in turn (failslab and fail_page_alloc, armed per task
 * through /proc/thread-self/fail-nth). Each injected failure must give an
 * errno (or be absorbed), and the next call without injection must work.
 * Leaks and splats are caught by the VM's kmemleak scan and log check.
 */
#include <stdatomic.h>
#include <sys/mman.h>

#include "kselftest_harness.h"
#include "rsva_sim_util.h"
#include <test_hmm_uapi.h>

#define CLIENT_BENCH "/sys/kernel/debug/rsva_client/bench"
#define MIRROR "/dev/rsva_mirror0"
#define NPAGES 8
#define MAX_NTH 3000

static char *mirrored;
static char readback[NPAGES * 4096];

/* Arms (n > 0) or disarms (0) the n-th fault of this thread. */
static int fail_nth(int fd, int n)
{
	char buf[16];
	int len = snprintf(buf, sizeof(buf), "%d", n);

	return pwrite(fd, buf, len, 0) == len ? 0 : -errno;
}

/* 1 when the armed fault was injected, 0 when not, -errno. */
static int fail_nth_injected(int fd)
{
	char buf[16] = "";

	if (pread(fd, buf, sizeof(buf) - 1, 0) <= 0)
		return -errno;
	return atoi(buf) == 0;
}

static int bench(const char *what)
{
	return write_text(CLIENT_BENCH, what);
}

static int op_bind(void) { return bench("bind 0 1"); }
static int op_pasid(void) { return bench("pasid 0 1"); }
static int op_claim(void) { return bench("claim 0 1"); }

/* Opening the accelerator binds the process through the IOMMU API (rsva). */
static int op_accel_open(void)
{
	int fd = accel_open(0);

	if (fd < 0)
		return -errno;
	close(fd);
	return 0;
}

static int mirror_read(int fd)
{
	struct hmm_dmirror_cmd c = {
		.addr = (uintptr_t)mirrored, .ptr = (uintptr_t)readback, .npages = NPAGES,
	};

	if (ioctl(fd, HMM_DMIRROR_READ, &c))
		return -errno;
	return memcmp(readback, mirrored, sizeof(readback)) ? -EIO : 0;
}

/* Registers a mirror of this process and faults through it. */
static int op_mirror_open_read(void)
{
	int fd = open(MIRROR, O_RDWR), ret;

	if (fd < 0)
		return -errno;
	ret = mirror_read(fd);
	close(fd);
	return ret;
}

/*
 * Moves the buffer to the device and back through a mirror of this
 * process: MIGRATE_TO_DEV, then the CPU faults half of it back
 * (migrate_to_ram), then MIGRATE_TO_SYS the rest. A failed step may leave
 * pages where they were, never lose their data: -EIO when the pages the
 * device returned or the CPU reads afterwards differ.
 */
static int op_migrate(void)
{
	struct hmm_dmirror_cmd c = {
		.addr = (uintptr_t)mirrored, .ptr = (uintptr_t)readback, .npages = NPAGES,
	};
	int fd = open(MIRROR, O_RDWR), ret = 0, i;

	if (fd < 0)
		return -errno;
	memset(readback, 0, sizeof(readback));
	if (ioctl(fd, HMM_DMIRROR_MIGRATE_TO_DEV, &c))
		ret = -errno;
	else if (memcmp(readback, mirrored, c.cpages * 4096))
		ret = -EIO;
	for (i = 0; i < NPAGES / 2; i++)
		if (__atomic_load_n(mirrored + i * 4096, __ATOMIC_RELAXED) != 0x5a)
			ret = -EIO;
	if (ioctl(fd, HMM_DMIRROR_MIGRATE_TO_SYS, &c) && !ret)
		ret = -errno;
	close(fd);
	for (i = 0; i < (int)sizeof(readback); i++)
		if (mirrored[i] != 0x5a)
			return -EIO;
	return ret;
}

struct sweep {
	const char *name;
	int (*op)(void);
};

static const struct sweep sweeps[] = {
	{ "sva bind+unbind (C API)", op_bind },
	{ "PASID allocation (fresh mm)", op_pasid },
	{ "DMA claim+release (C API)", op_claim },
	{ "accelerator open (bind through the IOMMU API)", op_accel_open },
	{ "mirror registration and fault", op_mirror_open_read },
	{ "migration to device memory and back", op_migrate },
};

FIXTURE(inject) {
	int nth;
};

FIXTURE_SETUP(inject)
{
	const char *unset = fail_inject_setup();

	ASSERT_EQ(NULL, unset) TH_LOG("%s", unset);
	mirrored = mmap(NULL, sizeof(readback), PROT_READ | PROT_WRITE,
			MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	ASSERT_NE(MAP_FAILED, mirrored);
	memset(mirrored, 0x5a, sizeof(readback));
	memset(readback, 0, sizeof(readback));
	self->nth = open("/proc/thread-self/fail-nth", O_RDWR);
	ASSERT_LE(0, self->nth);
}

FIXTURE_TEARDOWN(inject)
{
	close(self->nth);
}

/*
 * For each path: fail its 1st, 2nd, ... fault-injectable allocation until
 * one run completes without reaching the armed one. An injected failure
 * returns an errno or is absorbed; the call right after, without
 * injection, succeeds.
 */
TEST_F_TIMEOUT(inject, every_allocation_fails_cleanly, 600)
{
	unsigned int s;

	for (s = 0; s < ARRAY_SIZE(sweeps); s++) {
		int n, injected = 0, errors = 0, absorbed = 0, done = 0;

		ASSERT_EQ(0, sweeps[s].op()) TH_LOG("%s works before the sweep", sweeps[s].name);
		for (n = 1; n <= MAX_NTH; n++) {
			int ret, hit;

			ASSERT_EQ(0, fail_nth(self->nth, n));
			ret = sweeps[s].op();
			hit = fail_nth_injected(self->nth);
			fail_nth(self->nth, 0);
			ASSERT_LE(0, hit);
			if (!hit) {
				EXPECT_EQ(0, ret) TH_LOG("%s, nothing injected", sweeps[s].name);
				done = 1;
				break;
			}
			injected++;
			if (ret) {
				errors++;
				/* ENOENT: a migration left pages where they were. */
				EXPECT_TRUE(ret == -ENOMEM || ret == -EFAULT || ret == -EBUSY ||
					    ret == -ENOSPC || ret == -ENODEV || ret == -EINVAL ||
					    ret == -ENOENT)
					TH_LOG("%s, allocation %d: unexpected %d", sweeps[s].name, n,
					       ret);
			} else {
				absorbed++;
			}
			EXPECT_EQ(0, sweeps[s].op())
				TH_LOG("%s: the call after failing allocation %d", sweeps[s].name, n);
		}
		EXPECT_TRUE(done) TH_LOG("%s: more than %d allocations", sweeps[s].name, MAX_NTH);
		TH_LOG("%s: %d allocations failed in turn, %d gave an errno, %d absorbed",
		       sweeps[s].name, injected, errors, absorbed);
		EXPECT_LT(0, injected);
	}
}

TEST_HARNESS_MAIN
