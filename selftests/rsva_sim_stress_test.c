// SPDX-License-Identifier: GPL-2.0
/*
 * The simulated platform under load, with whichever implementation serves
 * iommu_sva_bind_device(): threads binding, copying and unbinding on two
 * devices at once, and processes killed right after they queued work, over
 * and over. Every copy is checked, and afterwards no PASID entry is left
 * and no stale translation was ever used.
 */
#include <pthread.h>
#include <signal.h>
#include <stdalign.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>

#include "kselftest_harness.h"
#include "rsva_sim_util.h"

#define THREADS 8
#define ROUNDS 40

static int pasid_entries(int dev)
{
	char file[64], buf[8192], *p;
	int n = 0;

	snprintf(file, sizeof(file), "dev%d/pasid_table", dev);
	if (sim_read(file, buf, sizeof(buf)) < 0)
		return -1;
	for (p = buf; *p; p++)
		n += *p == '\n';
	return n;
}

struct worker {
	int dev;
	int done;
	int errors;
};

static void *bind_copy_unbind(void *arg)
{
	alignas(32) struct rsva_sim_completion c;
	struct worker *w = arg;
	struct rsva_sim_desc d = { .op = RSVA_SIM_OP_MEMCPY, .len = 8192 };
	char src[8192], dst[8192];
	int i, fd;

	for (i = 0; i < ROUNDS; i++) {
		fd = accel_open(w->dev);
		if (fd < 0) {
			w->errors++;
			continue;
		}
		fill_random(src, sizeof(src), i + 1000 * w->dev);
		memset(dst, 0, sizeof(dst));
		d.src = (uintptr_t)src;
		d.dst = (uintptr_t)dst;
		if (accel_run(fd, &d, &c) || c.status != RSVA_SIM_STATUS_SUCCESS ||
		    memcmp(src, dst, sizeof(src)))
			w->errors++;
		else
			w->done++;
		close(fd);
	}
	return NULL;
}

TEST(threads_bind_copy_and_unbind_on_two_devices)
{
	struct worker w[THREADS];
	pthread_t t[THREADS];
	int i, done = 0, errors = 0;

	for (i = 0; i < THREADS; i++) {
		w[i] = (struct worker){ .dev = i % 2 };
		ASSERT_EQ(0, pthread_create(&t[i], NULL, bind_copy_unbind, &w[i]));
	}
	for (i = 0; i < THREADS; i++) {
		pthread_join(t[i], NULL);
		done += w[i].done;
		errors += w[i].errors;
	}
	EXPECT_EQ(0, errors);
	EXPECT_EQ(THREADS * ROUNDS, done);
	EXPECT_EQ(0, pasid_entries(0));
	EXPECT_EQ(0, pasid_entries(1));
}

/* Binds, queues copies, tells the parent, and waits to be killed. */
static void bind_submit_wait(int dev, int ready)
{
	struct rsva_sim_desc d = { .op = RSVA_SIM_OP_MEMCPY, .len = 1 << 20 };
	char *buf = mmap(NULL, 2 << 20, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	int fd = accel_open(dev), i;

	if (fd < 0 || buf == MAP_FAILED)
		_exit(1);
	d.src = (uintptr_t)buf;
	d.dst = (uintptr_t)buf + (1 << 20);
	for (i = 0; i < 8; i++)
		accel_submit(fd, &d);
	if (write(ready, "r", 1) != 1)
		_exit(1);
	for (;;)
		pause();
}

FIXTURE(cycles) {
	int unused;
};

FIXTURE_SETUP(cycles)
{
}

FIXTURE_TEARDOWN(cycles)
{
}

/*
 * 200 cycles of bind, submit, SIGKILL (bounded to 25 s under TCG, where
 * the submitted copies' page requests make a cycle about 60 ms).
 */
TEST_F_TIMEOUT(cycles, bind_submit_sigkill, 100)
{
	int cycles = 0, status, p[2];
	double t0 = now();
	char c;
	pid_t pid;

	while (cycles < 200 && now() - t0 < 25) {
		ASSERT_EQ(0, pipe(p));
		pid = fork();
		if (!pid)
			bind_submit_wait(cycles % 2, p[1]);
		ASSERT_EQ(1, read(p[0], &c, 1));
		close(p[0]);
		close(p[1]);
		kill(pid, SIGKILL);
		ASSERT_EQ(pid, waitpid(pid, &status, 0));
		ASSERT_TRUE(WIFSIGNALED(status));
		cycles++;
	}
	TH_LOG("%d cycles in %.1f s", cycles, now() - t0);
	EXPECT_LE(100, cycles);
	EXPECT_EQ(0, pasid_entries(0));
	EXPECT_EQ(0, pasid_entries(1));
	EXPECT_EQ(0, sim_counter("dev0/counters", "stale_translations"));
	EXPECT_EQ(0, sim_counter("dev1/counters", "stale_translations"));
}

TEST_HARNESS_MAIN
