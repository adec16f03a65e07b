// SPDX-License-Identifier: GPL-2.0
/*
 * rsva serving the kernel's SVA API, seen from user space: the simulated
 * accelerator and uacce bind through iommu_sva_bind_device(), rsva answers,
 * and its debugfs counters show it. Needs rsva (serving) and rsva_sim with
 * its default parameters.
 */
#include <dirent.h>
#include <pthread.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>

#include "kselftest_harness.h"
#include "rsva_sim_util.h"

#define RSVA_DEBUGFS "/sys/kernel/debug/rsva"

static long long rsva_counter(const char *key)
{
	return text_counter(RSVA_DEBUGFS "/sva", key);
}

/* Polls until @key reaches @want (leases and PASIDs go after a grace period). */
static long long rsva_counter_settles(const char *key, long long want)
{
	long long v = -1;
	int i;

	for (i = 0; i < 200; i++) {
		v = rsva_counter(key);
		if (v == want)
			break;
		usleep(10000);
	}
	return v;
}

/* The uid and bond count rsva lists for @pasid, or -1. */
static int rsva_pasid_line(long pasid, long *uid, long *bonds)
{
	char buf[16384], *line;
	long p;

	if (read_text(RSVA_DEBUGFS "/pasids", buf, sizeof(buf)) < 0)
		return -1;
	for (line = strtok(buf, "\n"); line; line = strtok(NULL, "\n"))
		if (sscanf(line, "%ld %ld %ld", &p, uid, bonds) == 3 && p == pasid)
			return 0;
	return -1;
}

/* Opens the uacce node whose parent is simulated device 0. */
static int open_uacce(void)
{
	char link[300], target[300], path[300];
	struct dirent *e;
	DIR *d = opendir("/sys/class/uacce");
	ssize_t n;
	int fd = -ENOENT;

	if (!d)
		return -errno;
	while ((e = readdir(d))) {
		if (strncmp(e->d_name, "rsva_accel-", 11))
			continue;
		snprintf(link, sizeof(link), "/sys/class/uacce/%s/device", e->d_name);
		n = readlink(link, target, sizeof(target) - 1);
		if (n < 0)
			continue;
		target[n] = '\0';
		if (strcmp(strrchr(target, '/') ?: target, "/rsva_sim0"))
			continue;
		snprintf(path, sizeof(path), "/dev/%s", e->d_name);
		fd = open(path, O_RDWR | O_CLOEXEC);
		if (fd < 0)
			fd = -errno;
		break;
	}
	closedir(d);
	return fd;
}

/* A 64 KiB copy through @fd, checked; 0 on success. */
static int checked_copy(int fd, unsigned int seed)
{
	alignas(32) struct rsva_sim_completion c;
	size_t len = 64 << 10;
	char *src = malloc(len), *dst = malloc(len);
	struct rsva_sim_desc d = { .op = RSVA_SIM_OP_MEMCPY, .len = len };
	int ret = -1;

	if (!src || !dst)
		goto out;
	fill_random(src, len, seed);
	memset(dst, 0, len);
	d.src = (uintptr_t)src;
	d.dst = (uintptr_t)dst;
	if (!accel_run(fd, &d, &c) && c.status == RSVA_SIM_STATUS_SUCCESS &&
	    !memcmp(src, dst, len))
		ret = 0;
out:
	free(src);
	free(dst);
	return ret;
}

TEST(rsva_serves_the_sva_api)
{
	char buf[8];

	ASSERT_LT(0, read_text(RSVA_DEBUGFS "/serve", buf, sizeof(buf)));
	ASSERT_EQ('1', buf[0]);
	ASSERT_EQ(1, rsva_counter("serving"));
}

/* The accelerator's and uacce's binds reach rsva; one bond per (dev, mm). */
TEST(accelerator_and_uacce_binds_are_counted_by_rsva)
{
	long long binds = rsva_counter("binds"), live = rsva_counter("live");
	long long unbinds = rsva_counter("unbinds");
	long uid, bonds;
	long pasid;
	int fd, ufd;

	fd = accel_open(0);
	ASSERT_LE(0, fd);
	EXPECT_EQ(binds + 1, rsva_counter("binds"));
	EXPECT_EQ(live + 1, rsva_counter("live"));
	pasid = accel_pasid(fd);
	ASSERT_LT(0, pasid);
	ASSERT_EQ(0, rsva_pasid_line(pasid, &uid, &bonds));
	EXPECT_EQ(getuid(), uid);
	EXPECT_EQ(1, bonds);

	/* uacce binds the same device's parent for the same mm: same bond. */
	ufd = open_uacce();
	ASSERT_LE(0, ufd) TH_LOG("uacce node: %s", strerror(-ufd));
	EXPECT_EQ(binds + 2, rsva_counter("binds"));
	EXPECT_EQ(live + 1, rsva_counter("live"));
	close(ufd);
	EXPECT_EQ(unbinds + 1, rsva_counter("unbinds"));
	EXPECT_EQ(0, checked_copy(fd, 1));
	close(fd);
	EXPECT_EQ(unbinds + 2, rsva_counter("unbinds"));
	EXPECT_EQ(live, rsva_counter("live"));
}

TEST(pasid_of_a_live_mm_is_stable_across_unbind_and_rebind)
{
	long first, again;
	int fd;

	fd = accel_open(0);
	ASSERT_LE(0, fd);
	first = accel_pasid(fd);
	close(fd);
	/* Unbound: the mm keeps its PASID (and rsva still lists it). */
	fd = accel_open(1);
	ASSERT_LE(0, fd);
	again = accel_pasid(fd);
	close(fd);
	EXPECT_EQ(first, again);
	fd = accel_open(0);
	ASSERT_LE(0, fd);
	EXPECT_EQ(first, accel_pasid(fd));
	EXPECT_EQ(0, checked_copy(fd, 2));
	close(fd);
}

/*
 * The last unbind keeps the mm's SVA domain; the next bind reuses it
 * (an attach, not an allocation) and DMA through it is right; the mm's
 * exit frees it.
 */
TEST(a_rebind_reuses_the_kept_domain)
{
	long long domains = rsva_counter("domains"), reused = rsva_counter("reused");
	long long kept = rsva_counter("kept");
	int status, fd, p[2];
	char c = 0;
	pid_t pid;

	ASSERT_EQ(0, pipe(p));
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		fd = accel_open(0);
		if (fd < 0 || checked_copy(fd, 7))
			_exit(10);
		close(fd);
		if (rsva_counter("domains") != domains + 1 || rsva_counter("kept") != kept + 1)
			_exit(11);
		fd = accel_open(0);
		if (fd < 0 || checked_copy(fd, 8))
			_exit(12);
		if (rsva_counter("domains") != domains + 1 || rsva_counter("reused") != reused + 1 ||
		    rsva_counter("kept") != kept)
			_exit(13);
		close(fd);
		/* Unbound again: the domain is kept while this mm lives. */
		if (write(p[1], "k", 1) != 1)
			_exit(14);
		pause();
		_exit(0);
	}
	close(p[1]);
	if (read(p[0], &c, 1) != 1) {
		ASSERT_EQ(pid, waitpid(pid, &status, 0));
		ASSERT_TRUE(0) TH_LOG("child exit %d", WEXITSTATUS(status));
	}
	close(p[0]);
	EXPECT_EQ(kept + 1, rsva_counter("kept"));
	kill(pid, SIGKILL);
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	ASSERT_TRUE(WIFSIGNALED(status)) TH_LOG("child exit %d", WEXITSTATUS(status));
	EXPECT_EQ(kept, rsva_counter_settles("kept", kept));
}

/* A child started with --exec-child: binds and copies in its new mm. */
static int exec_child(void)
{
	int fd = accel_open(0);

	if (fd < 0 || accel_pasid(fd) <= 0 || checked_copy(fd, 3))
		return 1;
	printf("%ld\n", accel_pasid(fd));
	close(fd);
	return 0;
}

TEST(fork_and_exec_get_their_own_pasids)
{
	int fd, status, pipefd[2];
	char out[32] = "";
	long parent;
	pid_t pid;

	fd = accel_open(0);
	ASSERT_LE(0, fd);
	parent = accel_pasid(fd);
	ASSERT_EQ(0, pipe(pipefd));

	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		/* The child's mm is new: it has no PASID until it binds. */
		int cfd = accel_open(0);

		if (cfd < 0 || accel_pasid(cfd) == parent || checked_copy(cfd, 4))
			_exit(10);
		close(cfd);
		dup2(pipefd[1], 1);
		execl("/proc/self/exe", "rsva_sva_test", "--exec-child", NULL);
		_exit(11);
	}
	close(pipefd[1]);
	ASSERT_LT(0, read(pipefd[0], out, sizeof(out) - 1));
	close(pipefd[0]);
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	ASSERT_TRUE(WIFEXITED(status));
	EXPECT_EQ(0, WEXITSTATUS(status));
	EXPECT_NE(parent, atol(out));
	/* The parent's bond and PASID are untouched. */
	EXPECT_EQ(parent, accel_pasid(fd));
	EXPECT_EQ(0, checked_copy(fd, 5));
	close(fd);
}

/* Child: binds accelerator @dev, reports the open's errno, waits to die. */
static pid_t holder(int dev, uid_t ruid, int *err)
{
	int p[2], e = 0;
	pid_t pid;

	if (pipe(p))
		return -1;
	pid = fork();
	if (pid == 0) {
		int fd;

		if (ruid && setresuid(ruid, 0, 0))
			e = errno;
		fd = e ? -1 : accel_open(dev);
		if (fd < 0 && !e)
			e = errno;
		if (write(p[1], &e, sizeof(e)) != sizeof(e))
			_exit(1);
		pause();
		_exit(0);
	}
	close(p[1]);
	if (pid < 0 || read(p[0], &e, sizeof(e)) != sizeof(e))
		e = EIO;
	close(p[0]);
	*err = e;
	return pid;
}

static void reap(pid_t pid)
{
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
}

/* Keeps trying to bind as @ruid until it works (a grace period frees). */
static int bind_eventually(uid_t ruid)
{
	int i, err = EIO;
	pid_t pid;

	for (i = 0; i < 100; i++) {
		pid = holder(0, ruid, &err);
		reap(pid);
		if (!err)
			return 0;
		usleep(20000);
	}
	return err;
}

FIXTURE(narrow_range) {
	char saved[64];
};

FIXTURE_SETUP(narrow_range)
{
	ASSERT_LT(0, read_text(RSVA_DEBUGFS "/pasid_range", self->saved,
			       sizeof(self->saved)));
	/* Three PASIDs, high enough that nothing else uses them. */
	ASSERT_EQ(0, write_text(RSVA_DEBUGFS "/pasid_range", "1000000 1000002"));
}

FIXTURE_TEARDOWN(narrow_range)
{
	unsigned int min, max;
	char range[32];

	if (sscanf(self->saved, "%u %u", &min, &max) == 2) {
		snprintf(range, sizeof(range), "%u %u", min, max);
		write_text(RSVA_DEBUGFS "/pasid_range", range);
	}
}

TEST_F(narrow_range, exhaustion_gives_enospc_and_recovers_after_frees)
{
	pid_t pids[3], extra;
	double t0;
	int i, err;

	for (i = 0; i < 3; i++) {
		pids[i] = holder(0, 0, &err);
		ASSERT_LT(0, pids[i]);
		ASSERT_EQ(0, err) TH_LOG("holder %d: %s", i, strerror(err));
	}
	extra = holder(0, 0, &err);
	EXPECT_EQ(ENOSPC, err);
	reap(extra);
	/* A holder exits: its PASID is freed when its mm is, and reused. */
	reap(pids[0]);
	EXPECT_EQ(0, bind_eventually(0));
	reap(pids[1]);
	reap(pids[2]);
	/*
	 * rsva's listings visit the live leases only: once PASID 1000000 was
	 * leased, a scan up to the largest PASID ever leased made every read
	 * of the counters look up a million PASIDs (27 s under KASAN and TCG).
	 */
	t0 = now();
	EXPECT_LE(0, rsva_counter("kept"));
	EXPECT_GT(2.0, now() - t0) TH_LOG("reading rsva/sva took %.1f s", now() - t0);
}

FIXTURE(user_limit) {
	char saved[32];
};

FIXTURE_SETUP(user_limit)
{
	ASSERT_LT(0, read_text(RSVA_DEBUGFS "/pasids_per_user", self->saved,
			       sizeof(self->saved)));
	ASSERT_EQ(0, write_text(RSVA_DEBUGFS "/pasids_per_user", "2"));
}

FIXTURE_TEARDOWN(user_limit)
{
	write_text(RSVA_DEBUGFS "/pasids_per_user", self->saved);
}

TEST_F(user_limit, a_user_holds_at_most_the_limit)
{
	pid_t a, b, c, other;
	int err;

	a = holder(0, 1001, &err);
	ASSERT_EQ(0, err);
	b = holder(0, 1001, &err);
	ASSERT_EQ(0, err);
	c = holder(0, 1001, &err);
	EXPECT_EQ(EDQUOT, err);
	reap(c);
	/* Another user is not affected. */
	other = holder(0, 1002, &err);
	EXPECT_EQ(0, err);
	reap(other);
	/* Uncharged from user 1001 when its PASID goes. */
	reap(a);
	EXPECT_EQ(0, bind_eventually(1001));
	reap(b);
}

/* The switch is refused while the side that would lose bonds has some. */
TEST(switch_is_refused_while_bonds_live)
{
	long long binds;
	int fd;

	fd = accel_open(0);
	ASSERT_LE(0, fd);
	EXPECT_EQ(-EBUSY, write_text(RSVA_DEBUGFS "/serve", "0"));
	close(fd);
	ASSERT_EQ(0, write_text(RSVA_DEBUGFS "/serve", "0"));
	EXPECT_EQ(0, rsva_counter("serving"));

	/* Now the IOMMU core binds; rsva does not see it. */
	binds = rsva_counter("binds");
	fd = accel_open(0);
	ASSERT_LE(0, fd);
	EXPECT_EQ(binds, rsva_counter("binds"));
	EXPECT_EQ(0, checked_copy(fd, 6));
	EXPECT_EQ(-EBUSY, write_text(RSVA_DEBUGFS "/serve", "1"));
	close(fd);
	ASSERT_EQ(0, write_text(RSVA_DEBUGFS "/serve", "1"));
	EXPECT_EQ(1, rsva_counter("serving"));
	fd = accel_open(0);
	ASSERT_LE(0, fd);
	EXPECT_EQ(binds + 1, rsva_counter("binds"));
	close(fd);
}

static void *closer(void *arg)
{
	close(*(int *)arg);
	return NULL;
}

/*
 * The mm's release (SIGKILL) races unbind (another thread closes the fd)
 * with DMA in flight: every bond goes, nothing leaks, no splat.
 */
FIXTURE(race) {
	int unused;
};

FIXTURE_SETUP(race)
{
}

FIXTURE_TEARDOWN(race)
{
}

TEST_F_TIMEOUT(race, release_races_unbind, 120)
{
	long long live = rsva_counter("live");
	long long leased = rsva_counter("pasids");
	size_t len = 4 << 20;
	/*
	 * The source is filled once, here: each child maps it as the parent
	 * does (copy-on-write, present), so a round costs a fork, not 1024
	 * page faults; the destination is new in each child, and the copy's
	 * page requests for it keep the DMA in flight.
	 */
	char *src = malloc(len);
	int i, p[2];

	ASSERT_NE(NULL, src);
	memset(src, 0x5a, len);
	for (i = 0; i < 120; i++) {
		char go;
		pid_t pid;

		ASSERT_EQ(0, pipe(p));
		pid = fork();
		ASSERT_LE(0, pid);
		if (pid == 0) {
			char *dst = malloc(len);
			struct rsva_sim_desc d = { .op = RSVA_SIM_OP_MEMCPY,
						   .len = len };
			pthread_t t;
			int fd = accel_open(i & 1);

			if (fd < 0 || !dst)
				_exit(1);
			d.src = (uintptr_t)src;
			d.dst = (uintptr_t)dst;
			accel_submit(fd, &d);
			pthread_create(&t, NULL, closer, &fd);
			if (write(p[1], "r", 1) != 1)
				_exit(1);
			pthread_join(t, NULL);
			pause();
			_exit(0);
		}
		close(p[1]);
		ASSERT_EQ(1, read(p[0], &go, 1));
		close(p[0]);
		if (i % 3)
			usleep(i % 7 * 50);
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
	}
	EXPECT_EQ(live, rsva_counter_settles("live", live));
	EXPECT_EQ(leased, rsva_counter_settles("pasids", leased));
	EXPECT_EQ(0, sim_counter("dev0/counters", "stale_translations"));
	EXPECT_EQ(0, sim_counter("dev1/counters", "stale_translations"));
	free(src);
}

/*
 * Release may run twice, and concurrently (seed 000): processes that bound
 * and unbound keep their PASID leases until their mm dies; they are killed
 * while rsva is switched off, so each lease is ended by the mm's release
 * and by the switch (PasidService::end_all()) at once. Each lease ends
 * once: no PASID is left, no splat (KASAN would see a second free).
 */
TEST_F_TIMEOUT(race, release_races_switching_off, 120)
{
	const int n = 12, rounds = 4;
	int round, i, ended = 0;

	for (round = 0; round < rounds; round++) {
		pid_t pids[n];
		int p[2];
		char c;

		ASSERT_EQ(0, pipe(p));
		for (i = 0; i < n; i++) {
			pids[i] = fork();
			ASSERT_LE(0, pids[i]);
			if (!pids[i]) {
				int fd = accel_open(i & 1);

				if (fd < 0)
					_exit(1);
				/* Unbound, the lease stays until the mm dies. */
				close(fd);
				if (write(p[1], "b", 1) != 1)
					_exit(1);
				for (;;)
					pause();
			}
		}
		for (i = 0; i < n; i++)
			ASSERT_EQ(1, read(p[0], &c, 1));
		ASSERT_LE(n, rsva_counter("pasids"));
		/* Half die before the switch, half while it runs. */
		for (i = 0; i < n / 2; i++)
			kill(pids[i], SIGKILL);
		ASSERT_EQ(0, write_text(RSVA_DEBUGFS "/serve", "0"));
		for (; i < n; i++)
			kill(pids[i], SIGKILL);
		for (i = 0; i < n; i++)
			ASSERT_EQ(pids[i], waitpid(pids[i], NULL, 0));
		ended += n;
		EXPECT_EQ(0, rsva_counter_settles("pasids", 0));
		ASSERT_EQ(0, write_text(RSVA_DEBUGFS "/serve", "1"));
		close(p[0]);
		close(p[1]);
	}
	TH_LOG("%d leases ended by a release racing the switch", ended);
}

/*
 * Switching serving off while rsva still holds PASID leases of mms that
 * bound and unbound, with those mms binding again all along: from the
 * moment the switch completes the IOMMU core binds them, so rsva must have
 * let go of them (taken them off the core's list of bound mms) before the
 * core's first bind, or the core adds them to that list a second time
 * (CONFIG_DEBUG_LIST reports the corruption). The PASID range is set high
 * so that letting go takes long. Every copy, through either
 * implementation, must be right.
 */
/* Binders pause while the parent switches serving on (see below). */
struct binders {
	int pause;
	int idle;
};

/* Waits until all @n binders rest (or @secs passed); whether they do. */
static bool binders_rest(struct binders *b, int n, double secs)
{
	double end = now() + secs;

	while (__atomic_load_n(&b->idle, __ATOMIC_ACQUIRE) < n && now() < end)
		usleep(200);
	return __atomic_load_n(&b->idle, __ATOMIC_ACQUIRE) >= n;
}

TEST_F_TIMEOUT(race, c_binds_race_switching_off, 120)
{
	const int n = 6, seconds = 10;
	int i, on = 1, switches = 0, refused = 0, status;
	struct binders *b;
	unsigned int min, max;
	char saved[64];
	pid_t pids[n];
	double end;

	b = mmap(NULL, sizeof(*b), PROT_READ | PROT_WRITE,
		 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, b);
	ASSERT_LT(0, read_text(RSVA_DEBUGFS "/pasid_range", saved, sizeof(saved)));
	ASSERT_EQ(0, write_text(RSVA_DEBUGFS "/pasid_range", "1000000 1048575"));
	for (i = 0; i < n; i++) {
		pids[i] = fork();
		ASSERT_LE(0, pids[i]);
		if (!pids[i]) {
			unsigned int seed = i;
			double stop = now() + seconds;

			while (now() < stop) {
				int fd;

				if (__atomic_load_n(&b->pause, __ATOMIC_ACQUIRE)) {
					__atomic_add_fetch(&b->idle, 1, __ATOMIC_RELEASE);
					while (__atomic_load_n(&b->pause, __ATOMIC_ACQUIRE) &&
					       now() < stop)
						usleep(100);
					__atomic_sub_fetch(&b->idle, 1, __ATOMIC_RELEASE);
					/* Let the switch pass its check of live bonds. */
					usleep(2000);
					continue;
				}
				fd = accel_open(i & 1);
				if (fd == -EBUSY || fd == -EINTR)
					continue;
				if (fd < 0 || checked_copy(fd, seed++))
					_exit(1);
				close(fd);
			}
			_exit(0);
		}
	}
	end = now() + seconds - 1;
	while (now() < end) {
		int ret;

		/*
		 * Off: the binders rest so that no bond lives at the switch,
		 * and bind again at once, through the IOMMU core once the
		 * switch passed, while rsva may still hold their mms. On:
		 * they rest until the core's bonds are gone.
		 */
		__atomic_store_n(&b->pause, 1, __ATOMIC_RELEASE);
		if (!binders_rest(b, n, 5))
			break;
		if (on) {
			__atomic_store_n(&b->pause, 0, __ATOMIC_RELEASE);
			ret = write_text(RSVA_DEBUGFS "/serve", "0");
		} else {
			ret = write_text(RSVA_DEBUGFS "/serve", "1");
			__atomic_store_n(&b->pause, 0, __ATOMIC_RELEASE);
		}
		if (ret) {
			refused++;
		} else {
			on = !on;
			switches++;
		}
		usleep(50000);
	}
	__atomic_store_n(&b->pause, 0, __ATOMIC_RELEASE);
	for (i = 0; i < n; i++) {
		ASSERT_EQ(pids[i], waitpid(pids[i], &status, 0));
		EXPECT_TRUE(WIFEXITED(status) && !WEXITSTATUS(status));
	}
	ASSERT_EQ(0, write_text(RSVA_DEBUGFS "/serve", "1"));
	if (sscanf(saved, "%u %u", &min, &max) != 2) {
		min = 1;
		max = 1048575;
	}
	snprintf(saved, sizeof(saved), "%u %u", min, max);
	ASSERT_EQ(0, write_text(RSVA_DEBUGFS "/pasid_range", saved));
	munmap(b, sizeof(*b));
	TH_LOG("%d switches, %d refused while bonds lived", switches, refused);
	EXPECT_LE(2, switches);
}

int main(int argc, char **argv)
{
	if (argc > 1 && !strcmp(argv[1], "--exec-child"))
		return exec_child();
	return test_harness_run(argc, argv);
}
