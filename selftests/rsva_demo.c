// SPDX-License-Identifier: GPL-2.0
/*
 * The story 'make run' tells, step by step, with what the kernel shows at
 * each step: two processes doing SVA memcpy on the simulated accelerators
 * through uacce and rsva, one killed mid-DMA, the HMM mirror following a
 * process's memory, and a DMA ownership claim and release. Not a test: it
 * prints, and exits non-zero if something is not as told.
 * Needs uacce, rsva, rsva_sim (2 devices) and rsva_sim_drivers loaded.
 */
#include <dirent.h>
#include <libgen.h>
#include <misc/uacce/uacce.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>

#include "rsva_sim_util.h"
#include <test_hmm_uapi.h>

#define MIB (1UL << 20)
#define PAGE 4096UL
#define CLAIM "/sys/kernel/debug/rsva_sim_drivers/claim"

static int failures;

static void check(int ok, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	printf(ok ? "   ok: " : "   NOT AS EXPECTED: ");
	vprintf(fmt, ap);
	printf("\n");
	va_end(ap);
	failures += !ok;
	fflush(stdout);
}

static void *map(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	return p == MAP_FAILED ? NULL : p;
}

/* An accelerator as uacce shows it: its node and its simulated device. */
struct accel {
	char node[64];
	int dev;
};

/* The uacce nodes of the simulated accelerators, by device number. */
static int find_accels(struct accel *a, int max)
{
	char link[320], target[256];
	struct dirent *e;
	int n = 0, i;
	DIR *dir = opendir("/sys/class/uacce");

	while (dir && (e = readdir(dir)) && n < max) {
		ssize_t len;

		if (strncmp(e->d_name, "rsva_accel-", 11))
			continue;
		snprintf(link, sizeof(link), "/sys/class/uacce/%s/device", e->d_name);
		len = readlink(link, target, sizeof(target) - 1);
		if (len <= 0)
			continue;
		target[len] = '\0';
		snprintf(a[n].node, sizeof(a[n].node), "/dev/%.50s", e->d_name);
		a[n].dev = atoi(basename(target) + strlen("rsva_sim"));
		n++;
	}
	if (dir)
		closedir(dir);
	/* In device order, so that the story reads the same every time. */
	for (i = 1; i < n; i++)
		if (a[i].dev < a[i - 1].dev) {
			struct accel t = a[i];

			a[i] = a[i - 1];
			a[i - 1] = t;
			i = 0;
		}
	return n;
}

/* Opens an accelerator through uacce and starts its queue. */
static int uacce_open(const struct accel *a)
{
	int fd = open(a->node, O_RDWR | O_CLOEXEC);

	if (fd >= 0 && ioctl(fd, UACCE_CMD_START_Q)) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Copies @len bytes by DMA, 4 MiB per descriptor, and checks them. */
static double dma_copy(int fd, char *src, char *dst, size_t len)
{
	alignas(32) struct rsva_sim_completion c;
	struct rsva_sim_desc d = { .op = RSVA_SIM_OP_MEMCPY, .len = 4 * MIB };
	double t0 = now();
	size_t off;

	for (off = 0; off < len; off += 4 * MIB) {
		d.src = (uintptr_t)src + off;
		d.dst = (uintptr_t)dst + off;
		if (accel_run(fd, &d, &c) || c.status != RSVA_SIM_STATUS_SUCCESS)
			return -1;
	}
	return memcmp(src, dst, len) ? -1 : len / MIB / (now() - t0);
}

/* One process of step 1: binds, reports, copies when told, reports. */
static void copier(const struct accel *a, int report, int go)
{
	const size_t len = 32 * MIB;
	char *src = map(len), *dst = map(len), c;
	int fd = uacce_open(a);
	double r[3] = { fd < 0 ? -1 : accel_pasid(fd), -1, -1 };
	struct rsva_sim_stats st;

	/* @dst is never touched by the CPU: the first DMA faults it in. */
	if (src && dst && r[0] > 0) {
		fill_random(src, len, getpid());
		if (write(report, r, sizeof(r[0])) == sizeof(r[0]) && read(go, &c, 1) == 1)
			r[1] = dma_copy(fd, src, dst, len);
		if (!accel_stats(fd, &st))
			r[2] = st.page_requests;
	} else if (write(report, r, sizeof(r[0])) != sizeof(r[0])) {
		_exit(1);
	}
	if (write(report, &r[1], 2 * sizeof(r[1])) != 2 * sizeof(r[1]))
		_exit(1);
	_exit(0);
}

/* Step 1: two processes bind an accelerator each and copy at once. */
static void two_processes(const struct accel *a, long pasids[2])
{
	int report[2][2], go[2], i;
	double r[2][3];
	pid_t pid[2];

	printf("\n1. Two processes, each on its own accelerator through uacce: opening the\n"
	       "   device binds the process's address space (iommu_sva_bind_device(),\n"
	       "   served by rsva), and the device copies by DMA at the process's own\n"
	       "   virtual addresses, through the PASID of its mm. Both at once. The\n"
	       "   destination was never touched by the CPU: the device's first DMA\n"
	       "   sends page requests, which rsva's fault handler serves.\n");
	if (pipe(go))
		exit(1);
	for (i = 0; i < 2; i++) {
		if (pipe(report[i]))
			exit(1);
		pid[i] = fork();
		if (!pid[i])
			copier(&a[i], report[i][1], go[0]);
	}
	for (i = 0; i < 2; i++)
		if (read(report[i][0], &r[i][0], sizeof(r[i][0])) != sizeof(r[i][0]))
			r[i][0] = -1;
	if (write(go[1], "gg", 2) != 2)
		exit(1);
	for (i = 0; i < 2; i++) {
		if (read(report[i][0], &r[i][1], 2 * sizeof(r[i][1])) != 2 * sizeof(r[i][1]))
			r[i][1] = r[i][2] = -1;
		waitpid(pid[i], NULL, 0);
		pasids[i] = r[i][0];
		printf("   process %c (pid %d) on %s (rsva_sim%d): PASID %ld, copied 32 MiB by DMA at %.0f MiB/s, %s\n",
		       'A' + i, pid[i], a[i].node, a[i].dev, pasids[i], r[i][1],
		       r[i][1] > 0 ? "every byte checked" : "FAILED");
		check(r[i][1] > 0, "process %c's copy is right", 'A' + i);
		/* Fewer than 8192 when THP backs it: a request maps 2 MiB. */
		check(r[i][2] > 0,
		      "process %c's destination was faulted in by the device: %.0f page requests for 32 MiB",
		      'A' + i, r[i][2]);
	}
	check(pasids[0] > 0 && pasids[1] > 0 && pasids[0] != pasids[1],
	      "two live address spaces, two PASIDs (%ld, %ld)", pasids[0], pasids[1]);
}

/* B's side of step 2: bind, hand the file to a holder, queue a flood. */
static void victim(const struct accel *a, int report)
{
	struct rsva_sim_desc d = { .op = RSVA_SIM_OP_MEMCPY, .len = 4 * MIB };
	char *src = map(8 * MIB);
	int fd = uacce_open(a), i;
	long msg[2];

	if (fd < 0 || !src)
		_exit(1);
	msg[0] = accel_pasid(fd);
	/* A holder keeps the file open, as a thread in another process may. */
	msg[1] = fork();
	if (!msg[1]) {
		for (;;)
			pause();
	}
	memset(src, 1, 8 * MIB);
	d.src = (uintptr_t)src;
	d.dst = (uintptr_t)src + 4 * MIB;
	for (i = 0; i < 64; i++)
		accel_submit(fd, &d);
	if (write(report, msg, sizeof(msg)) != sizeof(msg))
		_exit(1);
	for (;;)
		pause();
}

static void show_entry(int dev, long pasid, const char *when)
{
	static const char *const states[] = { "absent", "active", "cleared" };
	int s = sim_pasid_state(dev, pasid);

	printf("   %s: rsva_sim%d's PASID table entry %ld is %s\n", when, dev, pasid,
	       s >= 0 && s <= 2 ? states[s] : "unreadable");
}

/* Step 2: B is killed with 64 copies queued; the release path runs. */
static void kill_mid_dma(const struct accel *a)
{
	char file[64], log[8192], *last = NULL, *line;
	long long faults0, faults, quiet0, quiet, releases0;
	long msg[2];
	int p[2], i, s = 0;
	pid_t b;

	printf("\n2. Process B binds again, queues 64 copies of 4 MiB and is killed with\n"
	       "   SIGKILL in the middle of them. Another process holds B's file open, so\n"
	       "   the queue outlives B's address space: the order the SVA rules are about.\n");
	snprintf(file, sizeof(file), "dev%d/faults", a->dev);
	faults0 = sim_counter(file, "total");
	snprintf(file, sizeof(file), "dev%d/counters", a->dev);
	releases0 = sim_counter(file, "releases");
	quiet0 = sim_counter(file, "faults_suppressed");
	if (pipe(p))
		exit(1);
	b = fork();
	if (!b)
		victim(a, p[1]);
	if (read(p[0], msg, sizeof(msg)) != sizeof(msg)) {
		check(0, "process B could not bind");
		return;
	}
	show_entry(a->dev, msg[0], "before the kill");
	kill(b, SIGKILL);
	waitpid(b, NULL, 0);
	for (i = 0; i < 500 && (s = sim_pasid_state(a->dev, msg[0])) == 1; i++)
		usleep(10000);
	show_entry(a->dev, msg[0], "B is dead   ");
	check(s == 2,
	      "exit_mmap ran the mm's release: the entry was cleared, not freed, and the device stopped translating through it (release only invalidates)");
	snprintf(file, sizeof(file), "dev%d/counters", a->dev);
	check(sim_counter(file, "releases") > releases0, "the device counted the release");
	/*
	 * Intel's release tears the entry down with fault reports off (7.3's
	 * intel_mm_release()): those faults are counted, not logged.
	 */
	for (i = 0; i < 500; i++) {
		snprintf(file, sizeof(file), "dev%d/faults", a->dev);
		faults = sim_counter(file, "total") - faults0;
		snprintf(file, sizeof(file), "dev%d/counters", a->dev);
		quiet = sim_counter(file, "faults_suppressed") - quiet0;
		if (faults + quiet > 0)
			break;
		usleep(10000);
	}
	snprintf(file, sizeof(file), "dev%d/faults", a->dev);
	if (sim_read(file, log, sizeof(log)) > 0)
		for (line = strtok(log, "\n"); line; line = strtok(NULL, "\n"))
			last = line;
	check(faults + quiet > 0,
	      "the queued copies that were left faulted instead of reaching freed memory: %lld faults reported (the last: %s), %lld not reported (the IOMMU's release turned reports off)",
	      faults, last ? last : "none", quiet);
	kill(msg[1], SIGKILL);
	waitpid(msg[1], NULL, 0);
	for (i = 0; i < 500 && sim_pasid_state(a->dev, msg[0]); i++)
		usleep(10000);
	show_entry(a->dev, msg[0], "holder gone ");
	check(!sim_pasid_state(a->dev, msg[0]),
	      "the holder's close stopped the queue (uacce's stop_queue), drained it and unbound: entry removed");
	snprintf(file, sizeof(file), "dev%d/counters", a->dev);
	check(!sim_counter(file, "stale_translations"), "no translation was ever used after its invalidation");
	close(p[0]);
	close(p[1]);
}

static int mirror_read(int fd, void *addr, void *out, unsigned long *faults)
{
	struct hmm_dmirror_cmd c = {
		.addr = (uintptr_t)addr, .ptr = (uintptr_t)out, .npages = 1,
	};

	if (ioctl(fd, HMM_DMIRROR_READ, &c))
		return -errno;
	*faults = c.faults;
	return 0;
}

/* Step 3: the mirror follows the process's page table. */
static void step_mirror(void)
{
	char *p = map(PAGE), out[PAGE];
	unsigned long faults = 0;
	int fd = open("/dev/rsva_mirror0", O_RDWR), ret;

	printf("\n3. The HMM mirror: a device's copy of this process's page table, kept\n"
	       "   in step by an mmu interval notifier (hmm_range_fault() to fill it).\n");
	if (fd < 0 || !p) {
		check(0, "cannot open /dev/rsva_mirror0");
		return;
	}
	memcpy(p, "hello", 6);
	ret = mirror_read(fd, p, out, &faults);
	check(!ret && !strcmp(out, "hello") && faults == 1,
	      "the device reads \"%s\" through the mirror (%lu fault to fill it)", out, faults);
	ret = mirror_read(fd, p, out, &faults);
	check(!ret && faults == 0, "read again: no fault, the entry is mirrored");
	madvise(p, PAGE, MADV_DONTNEED);
	memcpy(p, "world", 6);
	ret = mirror_read(fd, p, out, &faults);
	check(!ret && !strcmp(out, "world") && faults == 1,
	      "the process drops the page and writes \"world\" to a new one: the notifier cleared the old entry, the device reads \"%s\" (%lu fault)",
	      out, faults);
	mprotect(p, PAGE, PROT_NONE);
	ret = mirror_read(fd, p, out, &faults);
	check(ret == -EFAULT, "the process makes the page inaccessible: the device's read fails (%s)",
	      strerror(-ret));
	printf("   rsva/mirrors: %s", "");
	fflush(stdout);
	system("tr '\\n' ' ' </sys/kernel/debug/rsva/mirrors; echo");
	munmap(p, PAGE);
	close(fd);
}

static int claim(const char *op, const char *dev)
{
	char cmd[64];

	snprintf(cmd, sizeof(cmd), "%s a %s", op, dev);
	return write_text(CLAIM, cmd);
}

/* Step 4: a driver claims the group's DMA; SVA waits for the release. */
static void step_ownership(const struct accel *a)
{
	char sim[16];
	int fd, err;

	printf("\n4. DMA ownership: a driver that manages DMA itself (as VFIO does) claims\n"
	       "   rsva_sim%d's IOMMU group through rsva's C API; while it owns the group\n"
	       "   no one may bind the device for SVA.\n", a->dev);
	snprintf(sim, sizeof(sim), "sim%d", a->dev);
	err = claim("claim-group", sim);
	check(!err, "claimed (%s)", err ? strerror(-err) : "the group's owner count is 1");
	fd = uacce_open(a);
	err = fd < 0 ? errno : 0;
	check(fd < 0 && err == EBUSY, "opening %s is refused: %s", a->node,
	      fd < 0 ? strerror(err) : "it was not");
	if (fd >= 0)
		close(fd);
	err = claim("release-group", sim);
	check(!err, "released");
	fd = uacce_open(a);
	check(fd >= 0, "and %s binds again (PASID %ld)", a->node, fd >= 0 ? accel_pasid(fd) : -1);
	if (fd >= 0)
		close(fd);
}

int main(void)
{
	struct accel a[8];
	long pasids[2];

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (find_accels(a, 8) < 2) {
		printf("needs two simulated accelerators registered with uacce\n");
		return 1;
	}
	two_processes(a, pasids);
	kill_mid_dma(&a[1]);
	step_mirror();
	step_ownership(&a[0]);
	printf("\n%s\n", failures ? "Something was not as told: see NOT AS EXPECTED above." :
				    "Every step was as told.");
	return failures ? 1 : 0;
}
