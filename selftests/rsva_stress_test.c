// SPDX-License-Identifier: GPL-2.0
/*
 * Everything at once, for a bounded time (RSVA_STRESS_SECONDS, default 30),
 * on six simulated devices in two groups of three (rsva_sim devices=6
 * group_size=3) with rsva_sim_drivers loaded:
 *
 *  - binders: processes that bind an accelerator of the second group
 *    (opening it), check one copy, queue more and are killed mid-DMA, four
 *    at a time; a wrong copy fails the test;
 *  - rsva_mirror_test's fault storm (mirror reads and snapshots against
 *    munmap, mprotect, fork and MADV_DONTNEED), run again and again;
 *  - rsva_dma_owner_test's claims of the first group against driver
 *    bind/unbind of its siblings, run again and again;
 *  - unload attempts of rsva and rsva_sim every 50 ms, each of which must
 *    be refused while they are in use.
 *
 * Then every bond must be gone, no device may have used a stale
 * translation, and the operations done are printed. The kernel log is
 * judged by the test run (KASAN, lockdep, kmemleak).
 *
 * The binders stay off the first group: the IOMMU core WARNs when a
 * DMA-API driver of a group unbinds while another device of the group has
 * PASIDs attached (iommu_device_unuse_default_domain() assumes the driver
 * leaving is the only PASID user), which is the core's rule, not rsva's.
 */
#include <signal.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>

#include "kselftest_harness.h"
#include "rsva_sim_util.h"

#define BINDERS 4
#define DEVICES 6
/* The binders' devices: the second group. */
#define FIRST_BOUND 3

/* What a worker did, sent to the parent through a pipe when it ends. */
struct tally {
	long ops;	/* binds, runs or unload attempts */
	long checked;	/* binders: copies checked */
	long killed;	/* binders: killed with work queued */
	long refused;	/* binders: binds refused with EBUSY */
	long failed;	/* anything wrong */
};

static int accelerators(void)
{
	char path[64];
	int n = 0;

	for (;;) {
		snprintf(path, sizeof(path), ACCEL_DEV, n);
		if (access(path, F_OK))
			return n;
		n++;
	}
}

/* One bound process: a checked copy, then a queue full of work. */
static void bound_child(int dev)
{
	alignas(32) struct rsva_sim_completion c;
	const size_t len = 1 << 20;
	char *src = mmap(NULL, 2 * len, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	struct rsva_sim_desc d = { .op = RSVA_SIM_OP_MEMCPY, .len = 4096 };
	int fd = accel_open(dev), i;

	if (fd < 0)
		_exit(errno == EBUSY ? 2 : 3);
	if (src == MAP_FAILED)
		_exit(3);
	fill_random(src, 4096, getpid());
	d.src = (uintptr_t)src;
	d.dst = (uintptr_t)src + len;
	if (accel_run(fd, &d, &c) || c.status != RSVA_SIM_STATUS_SUCCESS ||
	    memcmp(src, src + len, 4096))
		_exit(1);
	d.len = len;
	for (i = 0; i < 8; i++)
		accel_submit(fd, &d);
	/* Checked and queued: the parent may kill now. */
	raise(SIGSTOP);
	for (;;)
		pause();
}

static void binder(double end, struct tally *t)
{
	unsigned int seed = getpid();

	while (now() < end) {
		int status;
		pid_t pid = fork();

		if (pid < 0) {
			t->failed++;
			return;
		}
		if (!pid)
			bound_child(FIRST_BOUND + rand_r(&seed) % (DEVICES - FIRST_BOUND));
		t->ops++;
		if (waitpid(pid, &status, WUNTRACED) != pid) {
			t->failed++;
			return;
		}
		if (WIFSTOPPED(status)) {
			t->checked++;
			/* Kill it with its work queued or running. */
			usleep(rand_r(&seed) % 5000);
			kill(pid, SIGKILL);
			kill(pid, SIGCONT);
			waitpid(pid, &status, 0);
			t->killed += WIFSIGNALED(status);
		} else if (WIFEXITED(status) && WEXITSTATUS(status) == 2) {
			t->refused++;
		} else {
			t->failed++;
			printf("# a bound child ended with status 0x%x\n", status);
		}
		/* Idle now and then, so that claims of the group get a chance. */
		usleep(rand_r(&seed) % 30000);
	}
}

/* Runs one selftest case again and again; its output is kept on failure. */
static void runner(double end, const char *bin, const char *test, struct tally *t)
{
	char log[64];

	snprintf(log, sizeof(log), "/tmp/stress-%d.log", getpid());
	while (now() < end) {
		int status;
		pid_t pid = fork();

		if (!pid) {
			int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);

			dup2(fd, 1);
			dup2(fd, 2);
			execl(bin, bin, "-t", test, (char *)NULL);
			_exit(127);
		}
		t->ops++;
		if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status) ||
		    WEXITSTATUS(status)) {
			char line[256];
			FILE *f = fopen(log, "r");

			t->failed++;
			printf("# %s -t %s failed:\n", bin, test);
			while (f && fgets(line, sizeof(line), f))
				printf("#   %s", line);
			if (f)
				fclose(f);
		}
	}
}

/* Tries to unload the modules in use; every attempt must be refused. */
static void unloader(double end, struct tally *t)
{
	static const char *const mods[] = { "rsva", "rsva_sim" };
	int i;

	while (now() < end) {
		for (i = 0; i < 2; i++) {
			t->ops++;
			if (!syscall(SYS_delete_module, mods[i], O_NONBLOCK)) {
				printf("# %s unloaded while in use\n", mods[i]);
				t->failed++;
			} else if (errno != EWOULDBLOCK && errno != EBUSY) {
				printf("# unloading %s: %s\n", mods[i], strerror(errno));
				t->failed++;
			}
		}
		usleep(50000);
	}
}

enum worker { BINDER, MIRROR_STORM, CLAIMS, UNLOADER, WORKERS = UNLOADER + BINDERS };

FIXTURE(stress) {
	int unused;
};

FIXTURE_SETUP(stress)
{
	ASSERT_EQ(DEVICES, accelerators()) TH_LOG("needs rsva_sim devices=6 group_size=3");
	ASSERT_EQ(0, access("/sys/kernel/debug/rsva_sim_drivers/claim", W_OK))
		TH_LOG("needs rsva_sim_drivers");
}

FIXTURE_TEARDOWN(stress)
{
}

TEST_F_TIMEOUT(stress, everything_at_once_with_unload_attempts, 300)
{
	const char *s = getenv("RSVA_STRESS_SECONDS");
	double secs = s ? atof(s) : 30, end = now() + secs;
	struct tally sum[UNLOADER + 1] = { 0 }, t;
	int p[2], i, dev;
	long long stale = 0;
	pid_t pids[WORKERS];

	ASSERT_EQ(0, pipe(p));
	for (i = 0; i < WORKERS; i++) {
		enum worker w = i < BINDERS ? BINDER : i - BINDERS + 1;

		pids[i] = fork();
		ASSERT_LE(0, pids[i]);
		if (pids[i])
			continue;
		memset(&t, 0, sizeof(t));
		if (w == BINDER)
			binder(end, &t);
		else if (w == MIRROR_STORM)
			runner(end, "/tests/rsva_mirror_test", "faults_against_address_space_storms",
			       &t);
		else if (w == CLAIMS)
			runner(end, "/tests/rsva_dma_owner_test", "binds_and_claims_never_overlap",
			       &t);
		else
			unloader(end, &t);
		fflush(stdout);
		if (write(p[1], &w, sizeof(w)) != sizeof(w) ||
		    write(p[1], &t, sizeof(t)) != sizeof(t))
			_exit(1);
		_exit(0);
	}
	for (i = 0; i < WORKERS; i++) {
		enum worker w;

		ASSERT_EQ(sizeof(w), read(p[0], &w, sizeof(w)));
		ASSERT_EQ(sizeof(t), read(p[0], &t, sizeof(t)));
		sum[w].ops += t.ops;
		sum[w].checked += t.checked;
		sum[w].killed += t.killed;
		sum[w].refused += t.refused;
		sum[w].failed += t.failed;
	}
	for (i = 0; i < WORKERS; i++)
		ASSERT_EQ(pids[i], waitpid(pids[i], NULL, 0));

	printf("# stress: %.0f s: %ld binds (%ld copies checked, %ld killed mid-DMA, %ld refused), %ld mirror storm runs, %ld claim/driver-bind runs, %ld unload attempts refused\n",
	       secs, sum[BINDER].ops, sum[BINDER].checked, sum[BINDER].killed,
	       sum[BINDER].refused, sum[MIRROR_STORM].ops, sum[CLAIMS].ops, sum[UNLOADER].ops);
	EXPECT_EQ(0, sum[BINDER].failed);
	EXPECT_EQ(0, sum[MIRROR_STORM].failed);
	EXPECT_EQ(0, sum[CLAIMS].failed);
	EXPECT_EQ(0, sum[UNLOADER].failed);
	EXPECT_LT(0, sum[BINDER].checked);
	EXPECT_LT(0, sum[BINDER].killed);
	/* Nothing owns the second group: no bind may be refused. */
	EXPECT_EQ(0, sum[BINDER].refused);
	EXPECT_LT(0, sum[MIRROR_STORM].ops);
	EXPECT_LT(0, sum[CLAIMS].ops);

	/* Every bond ends, and no device ever used a stale translation. */
	for (i = 0; i < 500 && text_counter("/sys/kernel/debug/rsva/sva", "live"); i++)
		usleep(20000);
	EXPECT_EQ(0, text_counter("/sys/kernel/debug/rsva/sva", "live"));
	for (dev = 0; dev < DEVICES; dev++) {
		char file[32];

		snprintf(file, sizeof(file), "dev%d/counters", dev);
		stale += sim_counter(file, "stale_translations");
	}
	EXPECT_EQ(0, stale);
}

TEST_HARNESS_MAIN
