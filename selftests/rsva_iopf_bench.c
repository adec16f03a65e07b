// SPDX-License-Identifier: GPL-2.0
/*
 * I/O page faults of the simulated accelerator, served by the kernel's C
 * handler (debugfs rsva/serve 0: iommu_sva_handle_iopf() on the iopf
 * workqueue, mmap lock per fault) against rsva's (serve 1, rust/sva/iopf.rs:
 * per-VMA lock first, one lock hold for the faults of a group in one VMA),
 * side by side in one boot, in alternating rounds:
 *
 *   latency     a one-page MEMCPY (4 KiB from a present page) into a
 *               never-touched page, blocking on the fault, each sample on a
 *               fresh page; the same descriptor into a present page (a page
 *               walk, no fault): p50 and p99
 *   breakdown   the same two descriptors and a 16 KiB FILL of never-touched
 *               pages (one group of four requests) under tracefs events
 *               (workqueue, sched, mmap_lock): where the time of a fault
 *               goes
 *   throughput  page requests per second of FILL over never-touched
 *               buffers: 1 process, 4 processes, 2 processes (so separate
 *               VMAs), 2 queues of one process faulting in separate VMAs
 *               (two opens, two threads) without and with a third thread
 *               doing mmap/munmap of an unrelated region (an mmap lock
 *               writer); on 2 vCPUs and with the second one offline
 *   copy        MEMCPY into a never-touched destination against a
 *               prefaulted one, and the prefaulted DMA against CPU memcpy
 *
 * Buffers are MADV_NOHUGEPAGE: a huge page would answer 512 page requests
 * with one fault. Prints "bench: NAME VALUE UNIT" lines and a JSON object.
 * Needs rsva and rsva_sim (two devices) loaded, nothing else bound; tracefs
 * mounted at /sys/kernel/tracing for the breakdown (skipped without it).
 * Usage: rsva_iopf_bench [latency samples per implementation, default 2000]
 *                        [fill MiB, default 32] [copy MiB, default 16]
 */
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "rsva_sim_util.h"

#define SERVE "/sys/kernel/debug/rsva/serve"
#define RSVA_SVA "/sys/kernel/debug/rsva/sva"
#define CPU1 "/sys/devices/system/cpu/cpu1/online"
#define TRACEFS "/sys/kernel/tracing"
#define PAGE 4096UL
#define PATTERN 0x0123456789abcdefULL
#ifndef ARRAY_SIZE
#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#endif

/* Alternating rounds per figure and implementation. */
#define LAT_ROUNDS 4
#define TP_ROUNDS 2
#define COPY_ROUNDS 2
/* Traced samples per implementation and kind. */
#define TRACE_SAMPLES 200

static const char *const impl_name[2] = { "c", "rsva" };

static void fail(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fprintf(stderr, "rsva_iopf_bench: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
	exit(1);
}

/* Which implementation serves binds made from now on (no queue open). */
static void serve(int rsva)
{
	if (write_text(SERVE, rsva ? "1" : "0"))
		fail("cannot set %s to %d", SERVE, rsva);
}

static int open_accel(int dev)
{
	int fd = accel_open(dev);

	if (fd < 0)
		fail("open /dev/rsva_accel%d: %s", dev, strerror(errno));
	return fd;
}

/* @len bytes of anonymous memory in 4 KiB pages, untouched or written. */
static char *map_pages(size_t len, int populate)
{
	char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		fail("mmap of %zu bytes: %s", len, strerror(errno));
	if (madvise(p, len, MADV_NOHUGEPAGE))
		fail("MADV_NOHUGEPAGE: %s", strerror(errno));
	if (populate)
		memset(p, 0x11, len);
	return p;
}

static struct rsva_sim_stats stats_of(int fd)
{
	struct rsva_sim_stats s;

	if (accel_stats(fd, &s))
		fail("GET_STATS: %s", strerror(errno));
	return s;
}

/*
 * Runs @d to its end. A descriptor that ends with a page fault (the device
 * gave up on a page: a walk that invalidations kept overtaking) is
 * submitted again from where it stopped; returns how many times.
 */
static int run_all(int fd, struct rsva_sim_desc *d)
{
	alignas(32) struct rsva_sim_completion c;
	int again = 0;
	__u64 done;

	for (;;) {
		if (accel_run(fd, d, &c))
			fail("submit/wait: %s", strerror(errno));
		if (c.status == RSVA_SIM_STATUS_SUCCESS)
			return again;
		done = c.bytes_completed & ~7ULL;
		if (c.status != RSVA_SIM_STATUS_PAGE_FAULT || ++again > 64)
			fail("op %u of %llu bytes ended with status %u at %#llx (%llu done)",
			     d->op, (unsigned long long)d->len, c.status,
			     (unsigned long long)c.fault_addr, (unsigned long long)c.bytes_completed);
		if (d->op == RSVA_SIM_OP_MEMCPY)
			d->src += done;
		d->dst += done;
		d->len -= done;
	}
}

/* The @q quantile (0..1) of @n values, which it sorts. */
static double quantile(double *v, int n, double q)
{
	if (n <= 0)
		return 0;
	qsort(v, n, sizeof(*v), cmp_double);
	return v[(int)(q * (n - 1) + 0.5)];
}

static double best(double a, double b)
{
	return a > b ? a : b;
}

/* ---- latency ---------------------------------------------------------- */

/* Microseconds of one 4 KiB MEMCPY from @src to @dst, submitted and waited. */
static double one_copy(int fd, char *src, char *dst)
{
	alignas(32) struct rsva_sim_completion c;
	struct rsva_sim_desc d = {
		.op = RSVA_SIM_OP_MEMCPY, .src = (uintptr_t)src, .dst = (uintptr_t)dst,
		.len = PAGE,
	};
	double t0 = now();

	if (accel_run(fd, &d, &c) || c.status != RSVA_SIM_STATUS_SUCCESS)
		fail("4 KiB copy to %p: status %u", dst, c.status);
	return (now() - t0) * 1e6;
}

/* Page requests the latency samples sent, against those they should have. */
static unsigned long long lat_requests[2], lat_expected[2];

/*
 * @n samples of each kind under @impl, interleaved: into a never-touched
 * page (@fault), into a present page (@present); every page a new one, so
 * that each is a page walk. Checks the copies.
 */
static void latency_round(int impl, int n, double *fault, double *present)
{
	char *src, *fresh, *warm;
	struct rsva_sim_stats s0, s1;
	int fd, i;

	serve(impl);
	fd = open_accel(0);
	src = map_pages(PAGE, 1);
	fill_random(src, PAGE, 7 + impl);
	fresh = map_pages(n * PAGE, 0);
	warm = map_pages(n * PAGE, 1);
	s0 = stats_of(fd);
	for (i = 0; i < n; i++) {
		fault[i] = one_copy(fd, src, fresh + i * PAGE);
		present[i] = one_copy(fd, src, warm + i * PAGE);
	}
	s1 = stats_of(fd);
	lat_requests[impl] += s1.page_requests - s0.page_requests;
	lat_expected[impl] += n;
	for (i = 0; i < n; i++)
		if (memcmp(fresh + i * PAGE, src, PAGE) || memcmp(warm + i * PAGE, src, PAGE))
			fail("%s: sample %d copied wrong data", impl_name[impl], i);
	close(fd);
	munmap(src, PAGE);
	munmap(fresh, n * PAGE);
	munmap(warm, n * PAGE);
}

/* ---- breakdown (tracefs) ---------------------------------------------- */

enum ev_type {
	EV_MARK_START, EV_MARK_END, EV_QUEUE, EV_EXEC_START, EV_EXEC_END,
	EV_WAKEUP, EV_SWITCH, EV_LOCK_START, EV_LOCK_ACQ, EV_LOCK_REL,
};

struct ev {
	double ts;
	int pid;
	int type;
	/*
	 * EV_WAKEUP (sched_waking, in the waker's context): the woken pid;
	 * EV_SWITCH: the next pid.
	 */
	int arg;
	/* EV_QUEUE: queued on the iopf queue's workqueue; marks: 'f' or 'p'. */
	int iopf;
	unsigned long long work;
};

static const char *tracefs;

static int trace_write(const char *file, const char *text)
{
	char path[128];

	snprintf(path, sizeof(path), "%s/%s", tracefs, file);
	return write_text(path, text);
}

static const char *const trace_events[] = {
	"workqueue/workqueue_queue_work", "workqueue/workqueue_execute_start",
	"workqueue/workqueue_execute_end", "sched/sched_waking", "sched/sched_switch",
	"mmap_lock/mmap_lock_start_locking", "mmap_lock/mmap_lock_acquire_returned",
	"mmap_lock/mmap_lock_released",
};

/* Sets the events up; 0, or -1 when tracefs or an event is missing. */
static int trace_setup(void)
{
	char file[128];
	unsigned int i;

	if (!access(TRACEFS "/trace_marker", W_OK))
		tracefs = TRACEFS;
	else if (!access("/sys/kernel/debug/tracing/trace_marker", W_OK))
		tracefs = "/sys/kernel/debug/tracing";
	else
		return -1;
	if (trace_write("tracing_on", "0") || trace_write("buffer_size_kb", "8192"))
		return -1;
	trace_write("options/irq-info", "0");
	for (i = 0; i < ARRAY_SIZE(trace_events); i++) {
		snprintf(file, sizeof(file), "events/%s/enable", trace_events[i]);
		if (trace_write(file, "1")) {
			printf("# breakdown: no event %s\n", trace_events[i]);
			return -1;
		}
	}
	return 0;
}

static void trace_clear(void)
{
	char path[128];
	int fd;

	snprintf(path, sizeof(path), "%s/trace", tracefs);
	fd = open(path, O_WRONLY | O_TRUNC);
	if (fd >= 0)
		close(fd);
}

/* Parses one line of the trace; 1 when it is an event of interest. */
static int parse_event(char *l, struct ev *e)
{
	char *p = l, *q, *f;
	int n;

	if (l[0] == '#')
		return 0;
	/* "COMM-PID [CPU] TIMESTAMP: EVENT: FIELDS"; COMM may hold '-'. */
	for (;;) {
		p = strstr(p, " [");
		if (!p)
			return 0;
		if (p[2] >= '0' && p[2] <= '9' && strchr(p, ']'))
			break;
		p += 2;
	}
	q = p;
	while (q > l && q[-1] == ' ')
		q--;
	while (q > l && q[-1] >= '0' && q[-1] <= '9')
		q--;
	e->pid = atoi(q);
	p = strchr(p, ']') + 1;
	while (*p == ' ')
		p++;
	if (sscanf(p, "%lf: %n", &e->ts, &n) != 1) {
		/* irq-info flags before the timestamp */
		p = strchr(p, ' ');
		if (!p || sscanf(p, " %lf: %n", &e->ts, &n) != 1)
			return 0;
	}
	p += n;
	f = strstr(p, ": ");
	if (!f)
		return 0;
	*f = '\0';
	f += 2;
	e->arg = 0;
	e->iopf = 0;
	e->work = 0;
	if (strstr(f, "rsva_iopf ")) {
		q = strstr(f, "rsva_iopf ") + 10;
		e->type = *q == 'S' ? EV_MARK_START : EV_MARK_END;
		e->arg = atoi(q + 2);
		q = strchr(q + 2, ' ');
		e->iopf = q ? q[1] : 0;
	} else if (!strcmp(p, "workqueue_queue_work")) {
		e->type = EV_QUEUE;
		if (sscanf(f, "work struct=%llx", &e->work) != 1)
			return 0;
		e->iopf = !!strstr(f, "workqueue=iopf_queue");
	} else if (!strcmp(p, "workqueue_execute_start")) {
		e->type = EV_EXEC_START;
		if (sscanf(f, "work struct %llx", &e->work) != 1)
			return 0;
	} else if (!strcmp(p, "workqueue_execute_end")) {
		e->type = EV_EXEC_END;
		if (sscanf(f, "work struct %llx", &e->work) != 1)
			return 0;
	} else if (!strcmp(p, "sched_waking")) {
		e->type = EV_WAKEUP;
		q = strstr(f, " pid=");
		e->arg = q ? atoi(q + 5) : -1;
	} else if (!strcmp(p, "sched_switch")) {
		e->type = EV_SWITCH;
		q = strstr(f, "next_pid=");
		e->arg = q ? atoi(q + 9) : -1;
	} else if (!strcmp(p, "mmap_lock_start_locking")) {
		e->type = EV_LOCK_START;
	} else if (!strcmp(p, "mmap_lock_acquire_returned")) {
		e->type = EV_LOCK_ACQ;
	} else if (!strcmp(p, "mmap_lock_released")) {
		e->type = EV_LOCK_REL;
	} else {
		return 0;
	}
	return 1;
}

/* The events in the trace buffer, in time order; their number in @n. */
static struct ev *trace_read(int *n)
{
	char path[128], line[512];
	struct ev *evs = NULL;
	int cap = 0;
	FILE *f;

	*n = 0;
	snprintf(path, sizeof(path), "%s/trace", tracefs);
	f = fopen(path, "r");
	if (!f)
		fail("open %s: %s", path, strerror(errno));
	while (fgets(line, sizeof(line), f)) {
		if (*n == cap) {
			cap = cap ? 2 * cap : 65536;
			evs = realloc(evs, cap * sizeof(*evs));
			if (!evs)
				fail("out of memory");
		}
		if (parse_event(line, &evs[*n]))
			(*n)++;
	}
	fclose(f);
	return evs;
}

/* The steps of a sample, in microseconds. */
enum step {
	ST_TO_ENGINE,	/* SUBMIT to the engine's work item running */
	ST_WALKS,	/* the engine's walks up to the failed one's end */
	ST_REPORT,	/* failed walk to the group queued: the report call */
	ST_HOP,		/* queued to the handler's work item running */
	ST_HANDLER,	/* handler: mm, lock, handle_mm_fault, response, wakeup */
	ST_WAKE,	/* engine woken to the engine running */
	ST_AFTER,	/* walk again, copy, completion, wake and return to user */
	ST_TOTAL,
	ST_LOCKED,	/* mmap lock held by the handler (part of ST_HANDLER) */
	ST_ENGINE,	/* present page: engine start to the user woken */
	ST_RETURN,	/* present page: user woken to WAIT returning */
	NSTEPS,
};

static const char *const step_name[NSTEPS] = {
	"to_engine", "walks", "report", "wq_hop", "handler", "engine_wakeup",
	"after_wakeup", "total", "handler_mmap_locked", "present_engine",
	"present_return",
};

/* The first event from @i on, before @end, meeting @cond; -1 if none. */
#define FIND(i, end, cond) ({						\
	int __k = -1, __j;						\
	for (__j = (i); __j < (end); __j++) {				\
		const struct ev *e = &evs[__j];				\
		if (cond) {						\
			__k = __j;					\
			break;						\
		}							\
	}								\
	__k; })

/*
 * The steps of the sample between the events @s (its start marker) and
 * @end (its end marker) of @evs, a fault (@is_fault) or a present page;
 * 0 when the sample's events are not all there.
 */
static int sample_steps(const struct ev *evs, int s, int end, int is_fault, double *st)
{
	int user = evs[s].pid, qe, xe, eng, qf, xf, hf, w, r, lr, a, k, uw;
	unsigned long long we, wf;

	memset(st, 0, NSTEPS * sizeof(*st));
	qe = FIND(s, end, e->type == EV_QUEUE && e->pid == user && !e->iopf);
	if (qe < 0)
		return 0;
	we = evs[qe].work;
	xe = FIND(qe, end, e->type == EV_EXEC_START && e->work == we);
	if (xe < 0)
		return 0;
	eng = evs[xe].pid;
	st[ST_TO_ENGINE] = evs[xe].ts - evs[s].ts;
	st[ST_TOTAL] = evs[end].ts - evs[s].ts;
	if (!is_fault) {
		uw = FIND(xe, end, e->type == EV_WAKEUP && e->pid == eng && e->arg == user);
		if (uw < 0)
			return 0;
		st[ST_ENGINE] = evs[uw].ts - evs[xe].ts;
		st[ST_RETURN] = evs[end].ts - evs[uw].ts;
		return 1;
	}
	qf = FIND(xe, end, e->type == EV_QUEUE && e->pid == eng && e->iopf);
	if (qf < 0)
		return 0;
	wf = evs[qf].work;
	lr = -1;
	for (k = xe; k < qf; k++)
		if (evs[k].type == EV_LOCK_REL && evs[k].pid == eng)
			lr = k;
	if (lr < 0)
		return 0;
	xf = FIND(qf, end, e->type == EV_EXEC_START && e->work == wf);
	if (xf < 0)
		return 0;
	hf = evs[xf].pid;
	w = FIND(xf, end, e->type == EV_WAKEUP && e->pid == hf && e->arg == eng);
	if (w < 0)
		return 0;
	r = FIND(w, end, e->type == EV_SWITCH && e->arg == eng);
	st[ST_WALKS] = evs[lr].ts - evs[xe].ts;
	st[ST_REPORT] = evs[qf].ts - evs[lr].ts;
	st[ST_HOP] = evs[xf].ts - evs[qf].ts;
	st[ST_HANDLER] = evs[w].ts - evs[xf].ts;
	/* Not switched in: the engine had not gone to sleep yet. */
	st[ST_WAKE] = r < 0 ? 0 : evs[r].ts - evs[w].ts;
	st[ST_AFTER] = evs[end].ts - evs[r < 0 ? w : r].ts;
	st[ST_LOCKED] = 0;
	a = -1;
	for (k = xf; k < w; k++) {
		if (evs[k].pid != hf)
			continue;
		if (evs[k].type == EV_LOCK_ACQ)
			a = k;
		if (evs[k].type == EV_LOCK_REL && a >= 0) {
			st[ST_LOCKED] += evs[k].ts - evs[a].ts;
			a = -1;
		}
	}
	return 1;
}

/* Kinds of traced samples, and the letter of their markers. */
enum kind { K_FAULT, K_GROUP, K_PRESENT, NKINDS };

static const char kind_mark[NKINDS] = { 'f', 'g', 'p' };

/* Median steps per implementation and kind, in µs; samples used. */
static double bd[2][NKINDS][NSTEPS];
static int bd_n[2][NKINDS];

static void marker(int fd, char kind, int i, char what)
{
	char buf[48];
	int n = snprintf(buf, sizeof(buf), "rsva_iopf %c %d %c\n", kind, i, what);

	if (write(fd, buf, n) != n)
		fail("trace_marker: %s", strerror(errno));
}

/* Microseconds of a FILL of @len bytes at @dst, submitted and waited. */
static double one_fill(int fd, char *dst, size_t len)
{
	alignas(32) struct rsva_sim_completion c;
	struct rsva_sim_desc d = {
		.op = RSVA_SIM_OP_FILL, .dst = (uintptr_t)dst, .len = len, .pattern = PATTERN,
	};
	double t0 = now();

	if (accel_run(fd, &d, &c) || c.status != RSVA_SIM_STATUS_SUCCESS)
		fail("FILL at %p: status %u", dst, c.status);
	return (now() - t0) * 1e6;
}

/*
 * @n traced samples of each kind under @impl: the 4 KiB copy into a
 * never-touched page (one page request), a 16 KiB FILL of never-touched
 * pages (one group of four), the copy into a present page. The median of
 * each step over the samples whose events were all found.
 */
static void breakdown(int impl, int n)
{
	double *v[NKINDS][NSTEPS], st[NSTEPS];
	char path[128], *src, *fresh, *fresh4, *warm;
	int fd, mfd, i, j, k, ne, s, kind, used[NKINDS] = { 0 };
	struct ev *evs;

	for (kind = 0; kind < NKINDS; kind++)
		for (j = 0; j < NSTEPS; j++)
			v[kind][j] = calloc(n, sizeof(double));
	serve(impl);
	fd = open_accel(0);
	src = map_pages(PAGE, 1);
	fresh = map_pages(n * PAGE, 0);
	fresh4 = map_pages(n * 4 * PAGE, 0);
	warm = map_pages(n * PAGE, 1);
	snprintf(path, sizeof(path), "%s/trace_marker", tracefs);
	mfd = open(path, O_WRONLY);
	if (mfd < 0)
		fail("open %s: %s", path, strerror(errno));
	one_copy(fd, src, warm);
	trace_clear();
	trace_write("tracing_on", "1");
	for (i = 0; i < n; i++) {
		marker(mfd, 'S', i, 'f');
		one_copy(fd, src, fresh + i * PAGE);
		marker(mfd, 'E', i, 'f');
		marker(mfd, 'S', i, 'g');
		one_fill(fd, fresh4 + i * 4 * PAGE, 4 * PAGE);
		marker(mfd, 'E', i, 'g');
		marker(mfd, 'S', i, 'p');
		one_copy(fd, src, warm + i * PAGE);
		marker(mfd, 'E', i, 'p');
	}
	trace_write("tracing_on", "0");
	close(mfd);
	close(fd);
	evs = trace_read(&ne);
	for (s = 0; s < ne; s++) {
		if (evs[s].type != EV_MARK_START)
			continue;
		k = FIND(s + 1, ne, e->type == EV_MARK_END);
		if (k < 0)
			break;
		for (kind = 0; kind < NKINDS && kind_mark[kind] != evs[s].iopf; kind++)
			;
		if (kind < NKINDS && used[kind] < n &&
		    sample_steps(evs, s, k, kind != K_PRESENT, st)) {
			for (j = 0; j < NSTEPS; j++)
				v[kind][j][used[kind]] = st[j];
			used[kind]++;
		}
		s = k;
	}
	free(evs);
	trace_clear();
	for (kind = 0; kind < NKINDS; kind++) {
		for (j = 0; j < NSTEPS; j++) {
			bd[impl][kind][j] = quantile(v[kind][j], used[kind], 0.5) * 1e6;
			free(v[kind][j]);
		}
		bd_n[impl][kind] = used[kind];
	}
	munmap(src, PAGE);
	munmap(fresh, n * PAGE);
	munmap(fresh4, n * 4 * PAGE);
	munmap(warm, n * PAGE);
}

/* ---- throughput ------------------------------------------------------- */

enum workload { WL_1P, WL_4P, WL_2P, WL_2T, WL_2T_MMAP, NWL };

static const char *const wl_name[NWL] = { "1p", "4p", "2p", "2t", "2t_mmap" };

static const char *const wl_what[NWL] = {
	"1 process",
	"4 processes (2 per device)",
	"2 processes, one per device",
	"1 process, 2 queues (two opens, two threads), separate VMAs",
	"the same with a third thread doing mmap/munmap",
};

/* What one filler reports, in memory shared with the parent. */
struct filler {
	double t0, t1;
	unsigned long long requests;
	int again;
};

struct tp_shared {
	struct filler f[4];
	unsigned long long writer_cycles;
	double writer_secs;
};

/* CPU hotplug does not work: user threads are pinned to CPU 0 instead. */
static int pin_instead;

static void pin_cpu0(void)
{
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(0, &set);
	if (sched_setaffinity(0, sizeof(set), &set))
		fail("sched_setaffinity: %s", strerror(errno));
}

/* Fills @len bytes at @buf through @fd, timed; checks them when @verify. */
static void fill(int fd, char *buf, size_t len, int verify, struct filler *r)
{
	struct rsva_sim_stats s0 = stats_of(fd), s1;
	struct rsva_sim_desc d;
	size_t off, n, i;

	r->again = 0;
	r->t0 = now();
	for (off = 0; off < len; off += n) {
		n = len - off < RSVA_SIM_MAX_LEN ? len - off : RSVA_SIM_MAX_LEN;
		memset(&d, 0, sizeof(d));
		d.op = RSVA_SIM_OP_FILL;
		d.dst = (uintptr_t)buf + off;
		d.len = n;
		d.pattern = PATTERN;
		r->again += run_all(fd, &d);
	}
	r->t1 = now();
	s1 = stats_of(fd);
	r->requests = s1.page_requests - s0.page_requests;
	if (verify)
		for (i = 0; i < len / 8; i++)
			if (((uint64_t *)buf)[i] != PATTERN)
				fail("FILL left %#llx at %p", (unsigned long long)((uint64_t *)buf)[i],
				     buf + 8 * i);
}

/* A process of its own filling a never-touched buffer on device @dev. */
static void fill_process(int dev, size_t len, int verify, struct filler *r, int ready, int go)
{
	int fd = open_accel(dev);
	char *buf = map_pages(len, 0), c = 0;

	if (pin_instead)
		pin_cpu0();
	if (write(ready, &c, 1) != 1 || read(go, &c, 1) < 0)
		fail("start: %s", strerror(errno));
	fill(fd, buf, len, verify, r);
}

struct thread_arg {
	int fd;
	char *buf;
	size_t len;
	int verify;
	struct filler *r;
	struct tp_shared *sh;
};

static pthread_barrier_t start;
static int fillers_left;

static void *filler_thread(void *p)
{
	struct thread_arg *a = p;

	pthread_barrier_wait(&start);
	fill(a->fd, a->buf, a->len, a->verify, a->r);
	__atomic_sub_fetch(&fillers_left, 1, __ATOMIC_SEQ_CST);
	return NULL;
}

/*
 * Takes the mmap lock for writing in a loop while the fillers run: maps
 * and unmaps 16 KiB that nothing touches (no page, so no invalidation
 * reaches the IOMMU), read-only so that it never merges with their VMAs.
 */
static void *writer_thread(void *p)
{
	struct thread_arg *a = p;
	unsigned long long n = 0;
	double t0;
	void *m;

	pthread_barrier_wait(&start);
	t0 = now();
	while (__atomic_load_n(&fillers_left, __ATOMIC_SEQ_CST) > 0) {
		m = mmap(NULL, 4 * PAGE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (m == MAP_FAILED)
			fail("writer mmap: %s", strerror(errno));
		munmap(m, 4 * PAGE);
		n++;
	}
	a->sh->writer_secs = now() - t0;
	a->sh->writer_cycles = n;
	return NULL;
}

/*
 * One process, two queues (devices 0 and 1), two threads each filling
 * @len bytes of a VMA of its own (a PROT_NONE guard page after each keeps
 * them apart), and with @writer a third thread taking the mmap lock for
 * writing.
 */
static void threads_process(size_t len, int writer, int verify, struct tp_shared *sh,
			    int ready, int go)
{
	struct thread_arg a[3];
	pthread_t t[3];
	char c = 0;
	int i, n = 2 + !!writer;

	if (pin_instead)
		pin_cpu0();
	for (i = 0; i < 2; i++) {
		a[i].fd = open_accel(i);
		a[i].buf = map_pages(len + PAGE, 0);
		if (mprotect(a[i].buf + len, PAGE, PROT_NONE))
			fail("mprotect: %s", strerror(errno));
		a[i].len = len;
		a[i].verify = verify;
		a[i].r = &sh->f[i];
	}
	a[2].sh = sh;
	fillers_left = 2;
	pthread_barrier_init(&start, NULL, n + 1);
	for (i = 0; i < n; i++)
		if (pthread_create(&t[i], NULL, i < 2 ? filler_thread : writer_thread, &a[i]))
			fail("pthread_create");
	if (write(ready, &c, 1) != 1 || read(go, &c, 1) < 0)
		fail("start: %s", strerror(errno));
	pthread_barrier_wait(&start);
	for (i = 0; i < n; i++)
		pthread_join(t[i], NULL);
}

/* rsva's fault counters (debugfs rsva/sva) */
struct rsva_iopf {
	long long groups, faults, vma_lock, mmap_lock;
};

static struct rsva_iopf rsva_iopf_now(void)
{
	struct rsva_iopf c = {
		.groups = text_counter(RSVA_SVA, "iopf_groups"),
		.faults = text_counter(RSVA_SVA, "iopf_faults"),
		.vma_lock = text_counter(RSVA_SVA, "iopf_vma_lock"),
		.mmap_lock = text_counter(RSVA_SVA, "iopf_mmap_lock"),
	};

	return c;
}

/* What rsva's handler did in the throughput runs, per workload. */
static struct rsva_iopf tp_rsva[NWL];
/* Requests seen against pages filled; descriptors resubmitted. */
static unsigned long long tp_requests, tp_pages, tp_again;

/*
 * Page requests per second of @wl filling @total bytes under @impl; the
 * writer's mmap/munmap cycles per second in @writer_rate.
 */
static double throughput(enum workload wl, int impl, size_t total, int verify,
			 struct tp_shared *sh, double *writer_rate)
{
	int nproc = wl == WL_4P ? 4 : (wl == WL_2P ? 2 : 1);
	int nfill = wl >= WL_2T ? 2 : nproc;
	int ready[2], go[2], i, status;
	unsigned long long req = 0;
	struct rsva_iopf r0, r1;
	double t0 = 1e30, t1 = 0;
	pid_t pid[4];
	char c;

	serve(impl);
	memset(sh, 0, sizeof(*sh));
	if (pipe(ready) || pipe(go))
		fail("pipe: %s", strerror(errno));
	r0 = rsva_iopf_now();
	for (i = 0; i < nproc; i++) {
		pid[i] = fork();
		if (pid[i] < 0)
			fail("fork: %s", strerror(errno));
		if (pid[i] == 0) {
			close(ready[0]);
			close(go[1]);
			if (wl >= WL_2T)
				threads_process(total / 2, wl == WL_2T_MMAP, verify, sh,
						ready[1], go[0]);
			else
				fill_process(i % 2, total / nproc, verify, &sh->f[i], ready[1],
					     go[0]);
			_exit(0);
		}
	}
	close(ready[1]);
	close(go[0]);
	for (i = 0; i < nproc; i++)
		if (read(ready[0], &c, 1) != 1)
			fail("%s: a process did not start", wl_name[wl]);
	close(go[1]);
	for (i = 0; i < nproc; i++)
		if (waitpid(pid[i], &status, 0) != pid[i] || !WIFEXITED(status) ||
		    WEXITSTATUS(status))
			fail("%s under %s: a process failed", wl_name[wl], impl_name[impl]);
	close(ready[0]);
	r1 = rsva_iopf_now();
	if (impl) {
		tp_rsva[wl].groups += r1.groups - r0.groups;
		tp_rsva[wl].faults += r1.faults - r0.faults;
		tp_rsva[wl].vma_lock += r1.vma_lock - r0.vma_lock;
		tp_rsva[wl].mmap_lock += r1.mmap_lock - r0.mmap_lock;
	}
	for (i = 0; i < nfill; i++) {
		t0 = sh->f[i].t0 < t0 ? sh->f[i].t0 : t0;
		t1 = sh->f[i].t1 > t1 ? sh->f[i].t1 : t1;
		req += sh->f[i].requests;
		tp_again += sh->f[i].again;
	}
	tp_requests += req;
	tp_pages += total / PAGE;
	*writer_rate = sh->writer_secs > 0 ? sh->writer_cycles / sh->writer_secs : 0;
	return req / (t1 - t0);
}

/* Sets the second vCPU offline (@one) or online again; 0 when it worked. */
static int one_cpu(int one)
{
	char buf[32];

	if (write_text(CPU1, one ? "0" : "1"))
		return -1;
	if (read_text("/sys/devices/system/cpu/online", buf, sizeof(buf)) < 0)
		return -1;
	buf[strcspn(buf, "\n")] = '\0';
	return strcmp(buf, one ? "0" : "0-1") ? -1 : 0;
}

/* ---- copy ------------------------------------------------------------- */

/*
 * MiB/s of a MEMCPY of @len bytes into a never-touched destination
 * (@fresh) and into a prefaulted one (@warm), and of CPU memcpy between
 * the same buffers (@cpu), under @impl; page requests of the first in
 * @req.
 */
static void copy_round(int impl, size_t len, double *fresh, double *warm, double *cpu,
		       unsigned long long *req)
{
	char *src = map_pages(len, 1), *dst = map_pages(len, 1), *dst0 = map_pages(len, 0);
	struct rsva_sim_desc d = { .op = RSVA_SIM_OP_MEMCPY, .len = len };
	struct rsva_sim_stats s0, s1;
	double mib = len / (double)(1 << 20), t;
	int fd, i;

	serve(impl);
	fd = open_accel(0);
	fill_random(src, len, 11 + impl);
	d.src = (uintptr_t)src;
	d.dst = (uintptr_t)dst0;
	s0 = stats_of(fd);
	t = now();
	run_all(fd, &d);
	*fresh = mib / (now() - t);
	s1 = stats_of(fd);
	*req = s1.page_requests - s0.page_requests;
	if (memcmp(src, dst0, len))
		fail("%s: MEMCPY into a never-touched buffer copied wrong data", impl_name[impl]);
	memset(&d, 0, sizeof(d));
	d.op = RSVA_SIM_OP_MEMCPY;
	d.len = len;
	d.src = (uintptr_t)src;
	d.dst = (uintptr_t)dst;
	t = now();
	run_all(fd, &d);
	*warm = mib / (now() - t);
	if (memcmp(src, dst, len))
		fail("%s: MEMCPY into a prefaulted buffer copied wrong data", impl_name[impl]);
	close(fd);
	*cpu = 0;
	for (i = 0; i < 3; i++) {
		t = now();
		memcpy(dst, src, len);
		*cpu = best(*cpu, mib / (now() - t));
	}
	munmap(src, len);
	munmap(dst, len);
	munmap(dst0, len);
}

/* ---- main ------------------------------------------------------------- */

static double ratio(double a, double b)
{
	return b > 0 ? a / b : 0;
}

int main(int argc, char **argv)
{
	int samples = argc > 1 ? atoi(argv[1]) : 2000;
	size_t fill_len = (argc > 2 ? strtoul(argv[2], NULL, 0) : 32) << 20;
	size_t copy_len = (argc > 3 ? strtoul(argv[3], NULL, 0) : 16) << 20;
	double *lat[2][2], pct[2][2][2], tp[2][2][NWL], wr[2][2], w;
	double cfresh[2] = { 0 }, cwarm[2] = { 0 }, ccpu = 0, f, wm, cpu;
	unsigned long long creq[2] = { 0 }, req;
	int impl, kind, round, cpus, wl, o, per, traced = 0, i, j, fd;
	struct rsva_sim_stats st;
	struct tp_shared *sh;
	double t_phase;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (access(SERVE, W_OK))
		fail("%s: %s (rsva must be loaded)", SERVE, strerror(errno));
	if (samples < LAT_ROUNDS)
		samples = LAT_ROUNDS;
	per = samples / LAT_ROUNDS;
	samples = per * LAT_ROUNDS;
	sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (sh == MAP_FAILED)
		fail("mmap: %s", strerror(errno));
	memset(tp, 0, sizeof(tp));
	memset(wr, 0, sizeof(wr));

	/* copy */
	t_phase = now();
	for (round = 0; round < COPY_ROUNDS; round++)
		for (o = 0; o < 2; o++) {
			impl = (round + o) & 1;
			copy_round(impl, copy_len, &f, &wm, &cpu, &req);
			printf("# copy round %d %s: never-touched %.1f MiB/s (%llu page requests), prefaulted %.1f MiB/s, CPU %.1f MiB/s\n",
			       round, impl_name[impl], f, req, wm, cpu);
			cfresh[impl] = best(cfresh[impl], f);
			cwarm[impl] = best(cwarm[impl], wm);
			ccpu = best(ccpu, cpu);
			creq[impl] = req;
		}
	printf("# copy took %.0f s\n", now() - t_phase);

	/* latency */
	t_phase = now();
	for (impl = 0; impl < 2; impl++)
		for (kind = 0; kind < 2; kind++)
			lat[impl][kind] = calloc(samples, sizeof(double));
	for (round = 0; round < LAT_ROUNDS; round++)
		for (o = 0; o < 2; o++) {
			impl = (round + o) & 1;
			latency_round(impl, per, lat[impl][0] + round * per,
				      lat[impl][1] + round * per);
		}
	for (impl = 0; impl < 2; impl++) {
		if (lat_requests[impl] != lat_expected[impl])
			printf("# latency %s: %llu page requests for %llu faults\n",
			       impl_name[impl], lat_requests[impl], lat_expected[impl]);
		for (kind = 0; kind < 2; kind++) {
			pct[impl][kind][0] = quantile(lat[impl][kind], samples, 0.5);
			pct[impl][kind][1] = quantile(lat[impl][kind], samples, 0.99);
		}
	}
	printf("# latency took %.0f s\n", now() - t_phase);

	/* breakdown */
	t_phase = now();
	if (trace_setup()) {
		printf("# breakdown skipped: no tracefs with the workqueue, sched and mmap_lock events\n");
	} else {
		for (impl = 0; impl < 2; impl++)
			breakdown(impl, TRACE_SAMPLES);
		traced = 1;
		printf("# breakdown took %.0f s\n", now() - t_phase);
	}

	/* throughput, on 2 vCPUs then on 1 */
	t_phase = now();
	for (wl = 0; wl < NWL; wl++)
		printf("# throughput %s: %s, %zu MiB in all\n", wl_name[wl], wl_what[wl],
		       fill_len >> 20);
	for (cpus = 2; cpus >= 1; cpus--) {
		if (cpus == 1 && one_cpu(1)) {
			pin_instead = 1;
			printf("# CPU 1 cannot go offline: user threads pinned to CPU 0, kernel workers are not\n");
		}
		for (round = 0; round < TP_ROUNDS; round++)
			for (wl = 0; wl < NWL; wl++)
				for (o = 0; o < 2; o++) {
					impl = (round + o) & 1;
					f = throughput(wl, impl, fill_len, round == 0 && cpus == 2,
						       sh, &w);
					printf("# throughput %d vCPU round %d %s %s: %.0f faults/s%s",
					       cpus, round, wl_name[wl], impl_name[impl], f,
					       w > 0 ? "" : "\n");
					if (w > 0)
						printf(", writer %.0f mmap+munmap/s\n", w);
					tp[impl][cpus - 1][wl] = best(tp[impl][cpus - 1][wl], f);
					wr[impl][cpus - 1] = best(wr[impl][cpus - 1], w);
				}
		if (cpus == 1 && !pin_instead && one_cpu(0))
			fail("cannot set CPU 1 online again");
	}
	pin_instead = 0;
	printf("# throughput took %.0f s\n", now() - t_phase);
	if (tp_requests != tp_pages || tp_again)
		printf("# throughput: %llu page requests for %llu pages, %llu descriptors resubmitted\n",
		       tp_requests, tp_pages, tp_again);

	/* the page request interface must have lost nothing */
	serve(1);
	fd = open_accel(0);
	st = stats_of(fd);
	close(fd);
	if (st.dev_resp_stray || st.dev_resp_undrained || st.dev_resp_timeouts)
		fail("device 0: %llu stray responses, %llu undrained groups, %llu timeouts",
		     st.dev_resp_stray, st.dev_resp_undrained, st.dev_resp_timeouts);

	printf("bench: iopf_copy_fresh_c %.1f MiB/s\n", cfresh[0]);
	printf("bench: iopf_copy_fresh_rsva %.1f MiB/s\n", cfresh[1]);
	printf("bench: iopf_copy_fresh_ratio %.2f x\n", ratio(cfresh[1], cfresh[0]));
	printf("bench: iopf_copy_fresh_page_requests c %llu, rsva %llu (%zu pages)\n",
	       creq[0], creq[1], copy_len / PAGE);
	printf("bench: iopf_copy_prefaulted_c %.1f MiB/s\n", cwarm[0]);
	printf("bench: iopf_copy_prefaulted_rsva %.1f MiB/s\n", cwarm[1]);
	printf("bench: iopf_copy_cpu_memcpy %.1f MiB/s\n", ccpu);
	printf("bench: iopf_copy_prefaulted_vs_cpu_c %.3f x (target >= 0.5)\n",
	       ratio(cwarm[0], ccpu));
	printf("bench: iopf_copy_prefaulted_vs_cpu_rsva %.3f x (target >= 0.5)\n",
	       ratio(cwarm[1], ccpu));
	for (impl = 0; impl < 2; impl++) {
		printf("bench: iopf_latency_fault_p50_%s %.0f us\n", impl_name[impl],
		       pct[impl][0][0]);
		printf("bench: iopf_latency_fault_p99_%s %.0f us\n", impl_name[impl],
		       pct[impl][0][1]);
		printf("bench: iopf_latency_present_p50_%s %.0f us\n", impl_name[impl],
		       pct[impl][1][0]);
		printf("bench: iopf_latency_present_p99_%s %.0f us\n", impl_name[impl],
		       pct[impl][1][1]);
		printf("bench: iopf_latency_fault_cost_p50_%s %.0f us\n", impl_name[impl],
		       pct[impl][0][0] - pct[impl][1][0]);
	}
	printf("bench: iopf_latency_p50_ratio %.2f x (target <= 0.9)\n",
	       ratio(pct[1][0][0], pct[0][0][0]));
	printf("bench: iopf_latency_p99_ratio %.2f x (target <= 0.9)\n",
	       ratio(pct[1][0][1], pct[0][0][1]));
	printf("bench: iopf_latency_fault_cost_p50_ratio %.2f x\n",
	       ratio(pct[1][0][0] - pct[1][1][0], pct[0][0][0] - pct[0][1][0]));
	for (cpus = 2; cpus >= 1; cpus--)
		for (wl = 0; wl < NWL; wl++) {
			for (impl = 0; impl < 2; impl++)
				printf("bench: iopf_throughput_%s_%dcpu_%s %.0f faults/s\n",
				       wl_name[wl], cpus, impl_name[impl], tp[impl][cpus - 1][wl]);
			printf("bench: iopf_throughput_%s_%dcpu_ratio %.2f x%s\n", wl_name[wl], cpus,
			       ratio(tp[1][cpus - 1][wl], tp[0][cpus - 1][wl]),
			       wl == WL_2P && cpus == 2 ? " (target >= 1.5)" : "");
		}
	for (cpus = 2; cpus >= 1; cpus--)
		printf("bench: iopf_mmap_writer_%dcpu c %.0f, rsva %.0f mmap+munmap/s\n", cpus,
		       wr[0][cpus - 1], wr[1][cpus - 1]);
	for (wl = 0; wl < NWL; wl++)
		printf("bench: iopf_rsva_vma_lock_share_%s %.3f of %lld faults (%lld groups)\n",
		       wl_name[wl],
		       ratio(tp_rsva[wl].vma_lock, tp_rsva[wl].vma_lock + tp_rsva[wl].mmap_lock),
		       tp_rsva[wl].faults, tp_rsva[wl].groups);
	if (traced) {
		for (j = 0; j < NSTEPS; j++) {
			if (j >= ST_ENGINE)
				printf("bench: iopf_step_%s c %.0f, rsva %.0f us\n", step_name[j],
				       bd[0][K_PRESENT][j], bd[1][K_PRESENT][j]);
			else
				printf("bench: iopf_step_%s c %.0f, rsva %.0f us (group of 4: c %.0f, rsva %.0f us)%s\n",
				       step_name[j], bd[0][K_FAULT][j], bd[1][K_FAULT][j],
				       bd[0][K_GROUP][j], bd[1][K_GROUP][j],
				       j == ST_TOTAL ? " (traced)" : "");
		}
		printf("bench: iopf_step_present_total c %.0f, rsva %.0f us (traced)\n",
		       bd[0][K_PRESENT][ST_TOTAL], bd[1][K_PRESENT][ST_TOTAL]);
		for (kind = 0; kind < NKINDS; kind++)
			printf("# breakdown %c: medians of %d (c) and %d (rsva) of %d traced samples\n",
			       kind_mark[kind], bd_n[0][kind], bd_n[1][kind], TRACE_SAMPLES);
	}

	printf("bench-json: {\"iopf\": {");
	printf("\"latency_samples\": %d, \"fill_mib\": %zu, \"copy_mib\": %zu, ", samples,
	       fill_len >> 20, copy_len >> 20);
	printf("\"copy_fresh_mib_per_s\": {\"c\": %.1f, \"rsva\": %.1f}, ", cfresh[0], cfresh[1]);
	printf("\"copy_prefaulted_mib_per_s\": {\"c\": %.1f, \"rsva\": %.1f}, ", cwarm[0], cwarm[1]);
	printf("\"cpu_memcpy_mib_per_s\": %.1f, ", ccpu);
	printf("\"latency_us\": {");
	for (impl = 0; impl < 2; impl++)
		printf("\"%s\": {\"fault_p50\": %.1f, \"fault_p99\": %.1f, \"present_p50\": %.1f, \"present_p99\": %.1f}, ",
		       impl_name[impl], pct[impl][0][0], pct[impl][0][1], pct[impl][1][0],
		       pct[impl][1][1]);
	printf("\"p50_ratio\": %.3f, \"p99_ratio\": %.3f}, ", ratio(pct[1][0][0], pct[0][0][0]),
	       ratio(pct[1][0][1], pct[0][0][1]));
	printf("\"throughput_faults_per_s\": {\"cpus\": [1, 2]");
	for (wl = 0; wl < NWL; wl++)
		for (impl = 0; impl < 2; impl++)
			printf(", \"%s_%s\": [%.0f, %.0f]", wl_name[wl], impl_name[impl],
			       tp[impl][0][wl], tp[impl][1][wl]);
	printf("}, \"mmap_writer_per_s\": {\"cpus\": [1, 2], \"c\": [%.0f, %.0f], \"rsva\": [%.0f, %.0f]}",
	       wr[0][0], wr[0][1], wr[1][0], wr[1][1]);
	if (traced) {
		static const char *const kind_key[NKINDS] = { "fault", "group4", "present" };

		printf(", \"steps_us\": {");
		for (impl = 0; impl < 2; impl++) {
			printf("%s\"%s\": {", impl ? ", " : "", impl_name[impl]);
			for (kind = 0; kind < NKINDS; kind++) {
				printf("%s\"%s\": {", kind ? ", " : "", kind_key[kind]);
				for (j = 0, i = 0; j < NSTEPS; j++) {
					if ((kind == K_PRESENT) != (j >= ST_ENGINE) &&
					    j != ST_TOTAL && j != ST_TO_ENGINE)
						continue;
					printf("%s\"%s\": %.1f", i++ ? ", " : "", step_name[j],
					       bd[impl][kind][j]);
				}
				printf("}");
			}
			printf("}");
		}
		printf("}");
	}
	printf("}}\n");
	return 0;
}
