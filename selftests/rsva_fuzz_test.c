// SPDX-License-Identifier: GPL-2.0
/*
 * A bounded random-ioctl fuzzer over every user interface of rsva: the
 * simulated accelerators as misc devices (/dev/rsva_accelN) and as uacce
 * queues (/dev/rsva_accel-N), and the HMM mirror device (/dev/rsva_mirror0).
 *
 * Each test forks a fuzzing process that draws its operations from a seeded
 * xorshift64* generator:
 *  - accelerator ioctls (SUBMIT, WAIT, GET_PASID, GET_STATS, uacce's START_Q
 *    and PUT_Q) with random and edge-case ops, flags, lengths (0, 1, a page,
 *    RSVA_SIM_MAX_LEN, RSVA_SIM_MAX_LEN + 1, huge) and addresses: pages of an
 *    arena of our own mappings (anonymous, MAP_SHARED, memfd, THP, read-only,
 *    PROT_NONE, some unmapped), their guard pages, NULL, kernel, unaligned,
 *    non-canonical and near-wrap addresses; misaligned or bad completion
 *    records; argument pointers that are NULL, invalid or read-only;
 *  - mirror commands with npages 0, 1, huge or wrapping, unaligned addresses
 *    and bad pointers, and the commands rsva does not serve;
 *  - random command numbers (wrong size, direction, magic or nr), mmap, read,
 *    write and poll of the files;
 *  - opens and closes of a small pool of files (also with work queued),
 *    munmap/mprotect/madvise of the arena between calls, and forked children
 *    that run a few operations and are SIGKILLed mid-way; through the files
 *    they inherited they may wait, read counters and start or stop uacce
 *    queues, but a SUBMIT or any mirror command must get EPERM.
 * The device and the kernel are only ever asked to write into the arena or to
 * addresses that cannot be written, so the fuzzer cannot corrupt itself.
 *
 * Every result is checked: where the outcome is determined (a bad
 * descriptor, a bad pointer, an unknown command) it must be exactly the one
 * expected, otherwise 0 or an errno the driver can give for that call (the
 * check_*() functions; derived from rust/sim/{accel,queue,uapi}.rs,
 * rust/mirror/dev.rs, rust/mirror/registry.rs, rust/mirror/hmm.rs, mm/hmm.c and
 * drivers/misc/uacce/uacce.c). Counters and PASIDs must be consistent. The
 * fuzzing process must exit 0: an unexpected result, a signal or a hang
 * (alarm) fails the test. Afterwards every device must still serve a
 * well-formed request, and fuzz_does_not_disturb_a_bystander has another
 * process check copies and mirror reads all the while the fuzzer runs.
 *
 * Replay: each test logs
 *	seed=0x... (replay: RSVA_FUZZ_SEED=0x... RSVA_FUZZ_ITERS=N
 *	/tests/rsva_fuzz_test -t NAME)
 * and a failure logs the index (from 0) and description of its operation;
 * that line replays the same sequence of operations (with RSVA_FUZZ_ITERS
 * set to the index + 1, it stops right after the failing one). DMA runs
 * asynchronously and the children are killed after a delay, so results that
 * depend on timing may differ. RSVA_FUZZ_SEED defaults to one made of the
 * time and pid, RSVA_FUZZ_ITERS to 3000 operations per test; a fuzzing
 * phase also ends after 20 s. The devices must be there (not a skip), with
 * rsva_sim's default parameters (enough PASIDs for the forked children).
 */
#include <dirent.h>
#include <misc/uacce/uacce.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>

#include <linux/compiler.h>

#include "kselftest_harness.h"
#include "rsva_sim_util.h"
#include <test_hmm_uapi.h>

#define PAGE		4096UL
#define HPAGE		(2UL << 20)
#define LOW_TOP		0x10000ULL		/* nothing is mapped below (mmap_min_addr) */
#define USER_TOP	0x7ffffffff000ULL	/* nor from here on */

#define FUZZ_ITERS	3000		/* operations per test (RSVA_FUZZ_ITERS) */
#define FUZZ_SECS	20		/* the longest a fuzzing phase runs */
#define FUZZ_ALARM	90		/* a fuzzing process alive then is stuck */
#define FUZZ_TIMEOUT	180		/* the harness's limit for one test */
#define DMA_BUDGET	(8ULL << 20)	/* bytes queued on a file before a WAIT */
#define COST_MAX	(4ULL << 20)	/* the most one descriptor moves here */
#define CHILD_OPS	24		/* the most operations of a forked child */
#define NSLOT		6		/* open files of a fuzzing process */
#define MAX_ACCEL	8
#define MIRROR_DEV	"/dev/rsva_mirror0"
#define CMD_SIZE	sizeof(struct hmm_dmirror_cmd)

enum kind { K_MISC, K_UACCE, K_MIRROR, NR_KINDS };
#define KM(k)		(1u << (k))
#define KM_ACCEL	(KM(K_MISC) | KM(K_UACCE))
#define KM_ALL		(KM_ACCEL | KM(K_MIRROR))

enum mode { FZ_ACCEL, FZ_MIRROR, FZ_MIXED, FZ_BYSTANDER, NR_MODES };
static const unsigned int mode_kinds[NR_MODES] = {
	[FZ_ACCEL] = KM_ACCEL, [FZ_MIRROR] = KM(K_MIRROR),
	[FZ_MIXED] = KM_ALL, [FZ_BYSTANDER] = KM_ALL,
};

enum op_id {
	OP_SUBMIT, OP_BURST, OP_WAIT, OP_PASID, OP_STATS, OP_UACCE, OP_MIRROR,
	OP_MIRROR_OTHER, OP_RANDOM_CMD, OP_OPEN, OP_CLOSE, OP_REGION, OP_MMAP,
	OP_RW, OP_CHECK, OP_FORK, NR_OPS,
};

/* How often each operation is drawn, per mode (out of the row's sum). */
static const unsigned char weights[NR_MODES][NR_OPS] = {
	/*		 SUB BUR WAI PAS STA UAC MIR MOT RND OPN CLO REG MMA RW CHK FRK */
	[FZ_ACCEL] =	 { 32, 2, 8, 4, 4, 6, 0, 0, 9, 5, 5, 15, 2, 2, 3, 1 },
	[FZ_MIRROR] =	 { 0, 0, 0, 0, 0, 0, 40, 8, 9, 5, 5, 22, 2, 2, 4, 1 },
	[FZ_MIXED] =	 { 18, 2, 5, 3, 3, 4, 18, 4, 8, 5, 5, 15, 1, 2, 3, 4 },
	[FZ_BYSTANDER] = { 20, 2, 5, 3, 3, 4, 18, 4, 8, 5, 5, 15, 1, 2, 3, 2 },
};

/* The device nodes: misc and uacce accelerators, the mirror. */
struct devs {
	char path[NR_KINDS][MAX_ACCEL][64];
	int id[MAX_ACCEL];	/* the simulator's number of each misc node */
	int n[NR_KINDS];
};

/* An open file of a fuzzing process, and what we know of its state. */
struct slot {
	int fd;			/* -1 when free */
	enum kind kind;
	int dev;
	bool inherited;		/* opened by the parent of this (forked) process */
	bool shared;		/* a forked child used it: its state is not ours alone */
	bool started;		/* uacce: START_Q worked, no PUT_Q since */
	bool stopped;		/* uacce: a PUT_Q stopped the started queue */
	bool drained;		/* WAIT returned 0 and nothing was submitted since */
	unsigned long submitted;	/* SUBMITs that returned 0 */
	__u64 pending;		/* DMA bytes queued since the last WAIT, at most */
};

/*
 * The arena: regions of different kinds, each followed by a PROT_NONE guard
 * page, in one reservation. Every address the device or the kernel is asked
 * to write lies in the arena or cannot be written at all.
 */
enum region_id { R_THP, R_ANON, R_SHARED, R_MEMFD, R_SMALL, R_RO, R_NONE, R_ANON2, NREG };
static const size_t region_pages[NREG] = { 512, 16, 16, 8, 1, 4, 4, 16 };

struct region {
	char *base;
	size_t len;
	signed char prot[512];	/* each page's PROT_*, -1 when unmapped */
};

/* What a fuzzing process is doing, for the test to report a crash. */
struct trace {
	unsigned long op;
	char what[256];
};

/* Shared between the test and its processes. */
struct shm {
	struct trace t[2];	/* the fuzzer's and its latest child's */
	int stop;		/* the fuzzer is done: the bystander stops */
	unsigned long rounds, errors;	/* the bystander's */
};

struct cfg {
	__u64 seed;
	unsigned long iters;
};

struct fz {
	struct __test_metadata *md;
	const struct devs *devs;
	struct shm *shm;
	struct trace *trace;
	enum mode mode;
	__u64 rng;
	unsigned long iters, op;
	unsigned long parent_op;	/* in a forked child: the op that forked it */
	bool child;
	bool failed;
	struct slot s[NSLOT];
	struct region r[NREG];
	char *arena;
	size_t arena_len;
	char *ro_page;		/* a page kept read-only, for arguments */
	int memfd;
	__u32 pasid;		/* of our own accelerator files, 0 when unknown */
	unsigned long n_ok, n_err, n_open, n_fork;
};

static char replay[256];

/* Buffers outside the arena: for checked operations and mirror reads. */
static alignas(4096) char scratch[64 * PAGE];
static alignas(4096) char chk_src[5 * PAGE];
static alignas(4096) char chk_dst[5 * PAGE];
static alignas(32) struct rsva_sim_completion chk_comp;
static const char ro_data[PAGE] = "rsva_fuzz_test: read-only data for the engine to read";

/* Addresses that no access of ours can reach: low, top, kernel, non-canonical. */
static const __u64 bad_addrs[] = {
	0, 0x10, 0x1000, 0x7ffffffff000ULL, 0x7fffffffffe0ULL, 0x800000000000ULL,
	0xfffffffff000ULL, 0xffff800000000000ULL, 0xffff888000000000ULL,
	0xffffffff81000000ULL, 0xffffffffff600000ULL, 0x8000000000000000ULL,
	0xdead000000000000ULL,
};

/* --- random numbers ----------------------------------------------------- */

static __u64 splitmix(__u64 x)
{
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	x ^= x >> 31;
	return x ? x : 1;
}

/* xorshift64* */
static __u64 rnd(struct fz *z)
{
	z->rng ^= z->rng >> 12;
	z->rng ^= z->rng << 25;
	z->rng ^= z->rng >> 27;
	return z->rng * 0x2545f4914f6cdd1dULL;
}

static __u64 below(struct fz *z, __u64 n)
{
	return n ? rnd(z) % n : 0;
}

static bool chance(struct fz *z, unsigned int pct)
{
	return below(z, 100) < pct;
}

/* --- reporting ----------------------------------------------------------- */

#define E(e)	{ e, #e }
static const struct {
	int e;
	const char *name;
} errno_names[] = {
	{ 0, "0" }, E(EPERM), E(ENOENT), E(EINTR), E(EIO), E(ENXIO), E(EBADF), E(EAGAIN),
	E(ENOMEM), E(EACCES), E(EFAULT), E(EBUSY), E(EEXIST), E(ENODEV), E(EINVAL), E(EMFILE),
	E(ENOTTY), E(ENOSPC), E(EOVERFLOW), E(EOPNOTSUPP), E(ESHUTDOWN), E(EDQUOT),
};
#undef E

static const char *ename(int e)
{
	static char buf[24];
	size_t i;

	for (i = 0; i < ARRAY_SIZE(errno_names); i++)
		if (errno_names[i].e == e)
			return errno_names[i].name;
	snprintf(buf, sizeof(buf), "errno %d", e);
	return buf;
}

/* Says what the current operation is (shared: a crash report shows it). */
static __printf(2, 3) void note(struct fz *z, const char *fmt, ...)
{
	va_list ap;

	z->trace->op = z->op;
	va_start(ap, fmt);
	vsnprintf(z->trace->what, sizeof(z->trace->what), fmt, ap);
	va_end(ap);
}

/* Logs an unexpected result of the current operation; the fuzzing stops. */
static __printf(2, 3) void fz_fail(struct fz *z, const char *fmt, ...)
{
	struct __test_metadata *_metadata = z->md;
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (z->child)
		TH_LOG("child forked by op #%lu, its op #%lu: %s: %s", z->parent_op, z->op,
		       z->trace->what, msg);
	else
		TH_LOG("op #%lu: %s: %s", z->op, z->trace->what, msg);
	TH_LOG("%s", replay);
	z->failed = true;
}

/* A set of results (0 or errno), ended by -1. */
#define ERRS(...)	((const int []){ __VA_ARGS__, -1 })

static bool expect_in(struct fz *z, int got, const int *ok)
{
	char list[256] = "";
	size_t n = 0;
	const int *e;

	for (e = ok; *e >= 0; e++) {
		if (*e == got) {
			if (got)
				z->n_err++;
			else
				z->n_ok++;
			return true;
		}
	}
	for (e = ok; *e >= 0 && n < sizeof(list) - 16; e++)
		n += snprintf(list + n, sizeof(list) - n, "%s%s", e == ok ? "" : " ", ename(*e));
	fz_fail(z, "got %s, allowed {%s}", ename(got), list);
	return false;
}

static bool expect_eq(struct fz *z, int got, int want)
{
	return expect_in(z, got, ERRS(want));
}

/* An ioctl: 0 or errno. None of these returns a positive value. */
static int xioctl(struct fz *z, int fd, unsigned long cmd, __u64 arg)
{
	long r = ioctl(fd, cmd, (void *)(uintptr_t)arg);

	if (r > 0)
		fz_fail(z, "ioctl %#lx returned %ld", cmd, r);
	return r < 0 ? errno : 0;
}

/* --- the arena ----------------------------------------------------------- */

static int region_of(const struct fz *z, __u64 a)
{
	int i;

	for (i = 0; i < NREG; i++)
		if (a >= (uintptr_t)z->r[i].base && a < (uintptr_t)z->r[i].base + z->r[i].len)
			return i;
	return -1;
}

enum { A_OK, A_FAULT, A_UNKNOWN };

/*
 * Whether the kernel can access (@need: PROT_READ or PROT_WRITE) @len bytes
 * at @addr in our address space: known in the arena and outside user space.
 */
static int access_of(const struct fz *z, __u64 addr, __u64 len, int need)
{
	__u64 lo = (uintptr_t)z->arena, hi = lo + z->arena_len, p;

	if (!len)
		return A_OK;
	if (addr + len < addr || addr < LOW_TOP || addr + len > USER_TOP)
		return A_FAULT;
	if (addr < lo || addr + len > hi)
		return A_UNKNOWN;
	for (p = addr & ~(PAGE - 1); p < addr + len; p += PAGE) {
		int i = region_of(z, p), prot;

		prot = i < 0 ? -1 : z->r[i].prot[(p - (uintptr_t)z->r[i].base) / PAGE];
		if (prot < 0 || !(prot & need))
			return A_FAULT;
	}
	return A_OK;
}

/* Maps pages [a, b) of region @i afresh, filled, with the region's protection. */
static void region_map(struct fz *z, int i, size_t a, size_t b)
{
	struct region *r = &z->r[i];
	char *p = r->base + a * PAGE;
	size_t len = (b - a) * PAGE, k;
	int flags = MAP_FIXED, fd = -1, prot = PROT_READ | PROT_WRITE;

	if (i == R_SHARED) {
		flags |= MAP_SHARED | MAP_ANONYMOUS;
	} else if (i == R_MEMFD) {
		flags |= MAP_SHARED;
		fd = z->memfd;
	} else {
		flags |= MAP_PRIVATE | MAP_ANONYMOUS;
	}
	if (mmap(p, len, prot, flags, fd, fd < 0 ? 0 : a * PAGE) != p) {
		fz_fail(z, "mmap of region %d pages [%zu, %zu): %s", i, a, b, ename(errno));
		return;
	}
	if (i == R_THP)
		madvise(p, len, MADV_HUGEPAGE);
	memset(p, 0x41 + i, len);
	if (i == R_RO)
		prot = PROT_READ;
	else if (i == R_NONE)
		prot = PROT_NONE;
	if (prot != (PROT_READ | PROT_WRITE) && mprotect(p, len, prot))
		fz_fail(z, "mprotect of region %d: %s", i, ename(errno));
	for (k = a; k < b; k++)
		r->prot[k] = prot;
}

static int arena_init(struct fz *z)
{
	size_t total = 2 * HPAGE + PAGE;
	char *res, *p;
	int i;

	for (i = 0; i < NREG; i++)
		total += (region_pages[i] + 1) * PAGE;
	res = mmap(NULL, total, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	z->ro_page = mmap(NULL, PAGE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	z->memfd = memfd_create("rsva_fuzz", MFD_CLOEXEC);
	if (res == MAP_FAILED || z->ro_page == MAP_FAILED || z->memfd < 0 ||
	    ftruncate(z->memfd, region_pages[R_MEMFD] * PAGE))
		return -1;
	z->arena = res;
	z->arena_len = total;
	/* The THP region is aligned; a guard page precedes every region. */
	p = (char *)(((uintptr_t)res + PAGE + HPAGE - 1) & ~(HPAGE - 1));
	for (i = 0; i < NREG; i++) {
		z->r[i].base = p;
		z->r[i].len = region_pages[i] * PAGE;
		memset(z->r[i].prot, -1, sizeof(z->r[i].prot));
		p += z->r[i].len + PAGE;
		region_map(z, i, 0, region_pages[i]);
	}
	return z->failed ? -1 : 0;
}

/* munmap, remap, mprotect, madvise or write some pages of a region. */
static void op_region(struct fz *z)
{
	static const int prots[] = { PROT_NONE, PROT_READ, PROT_READ | PROT_WRITE };
	static const int advice[] = { MADV_DONTNEED, MADV_FREE, MADV_HUGEPAGE, MADV_NOHUGEPAGE,
				      MADV_COLD, MADV_PAGEOUT };
	static const char *const names[] = {
		"munmap", "remap", "mprotect", "madvise", "write", "madvise", "madvise", "munmap",
	};
	int i = below(z, NREG), what = below(z, 8), prot, adv;
	struct region *r = &z->r[i];
	size_t n = r->len / PAGE, a = 0, b = n, k;
	char *p;

	if (chance(z, 50)) {
		a = below(z, n);
		b = a + 1 + below(z, n - a);
	}
	p = r->base + a * PAGE;
	prot = prots[below(z, ARRAY_SIZE(prots))];
	adv = advice[below(z, ARRAY_SIZE(advice))];
	note(z, "%s region %d pages [%zu, %zu) (prot %d, advice %d)", names[what], i, a, b, prot,
	     adv);
	switch (what) {
	case 0:
	case 7:
		if (munmap(p, (b - a) * PAGE))
			fz_fail(z, "munmap: %s", ename(errno));
		for (k = a; k < b; k++)
			r->prot[k] = -1;
		break;
	case 1:
		region_map(z, i, a, b);
		break;
	case 2:
		for (k = a; k < b; k++)
			if (r->prot[k] < 0)
				return;
		if (mprotect(p, (b - a) * PAGE, prot)) {
			fz_fail(z, "mprotect: %s", ename(errno));
			return;
		}
		for (k = a; k < b; k++)
			r->prot[k] = prot;
		break;
	case 4:
		for (k = a; k < b; k++)
			if (r->prot[k] == (PROT_READ | PROT_WRITE))
				memset(r->base + k * PAGE, rnd(z), PAGE);
		break;
	default:
		/* Any result: some advice does not apply to some mappings. */
		madvise(p, (b - a) * PAGE, adv);
		break;
	}
}

/* --- addresses and lengths ---------------------------------------------- */

/* An address the device or the kernel may be asked to write: see the arena. */
static __u64 pick_addr(struct fz *z)
{
	const struct region *r = &z->r[below(z, NREG)];
	__u64 b = (uintptr_t)r->base, len = r->len, a;

	switch (below(z, 16)) {
	case 0:
	case 1:
	case 2:
	case 3:
	case 4:
		return b + below(z, len / PAGE) * PAGE;
	case 5:
		return b + below(z, len);			/* unaligned */
	case 6:
		return b + len - 1 - below(z, 64);		/* runs into the guard */
	case 7:
		return b + len;					/* the guard after */
	case 8:
		return b - PAGE + below(z, PAGE);		/* the guard before */
	case 9:
		return (b + below(z, len)) & ~31ULL;
	case 10:
	case 11:
		a = bad_addrs[below(z, ARRAY_SIZE(bad_addrs))];
		return a < PAGE || a >= USER_TOP + PAGE ? a + below(z, 64) : a;
	case 12:
		return ~0ULL - below(z, 2 * PAGE);		/* wraps with a length */
	case 13:
		return rnd(z) | 1ULL << 63;
	case 14:
		return (rnd(z) & ((1ULL << 56) - 1)) | 1ULL << 47;
	default:
		return (uintptr_t)z->r[R_ANON].base + below(z, region_pages[R_ANON]) * PAGE;
	}
}

/* An address only ever read (CRC32 and COMPARE sources, SNAPSHOT): anywhere. */
static __u64 pick_ro(struct fz *z)
{
	switch (below(z, 5)) {
	case 0:
		return (uintptr_t)__builtin_frame_address(0);
	case 1:
		return (uintptr_t)&pick_ro;
	case 2:
		return (uintptr_t)ro_data + below(z, sizeof(ro_data));
	case 3:
		return (uintptr_t)scratch + below(z, sizeof(scratch));
	default:
		return pick_addr(z);
	}
}

static __u64 pick_len(struct fz *z)
{
	static const __u64 lens[] = {
		0, 1, 7, 8, 31, 32, 33, PAGE - 1, PAGE, PAGE + 1, 2 * PAGE, 16 * PAGE, HPAGE,
		RSVA_SIM_MAX_LEN - 1, RSVA_SIM_MAX_LEN, RSVA_SIM_MAX_LEN + 1, 1ULL << 32,
		1ULL << 63, ~0ULL - PAGE + 1, ~0ULL,
	};

	switch (below(z, 3)) {
	case 0:
		return lens[below(z, ARRAY_SIZE(lens))];
	case 1:
		return below(z, 4 * PAGE);
	default:
		return 1 + below(z, 64 * PAGE);
	}
}

static __u64 pick_completion(struct fz *z)
{
	const struct region *r = &z->r[below(z, NREG)];
	__u64 c = (uintptr_t)r->base + below(z, r->len / 32) * 32;

	switch (below(z, 10)) {
	case 0:
		return c + 8 * (1 + below(z, 3));	/* misaligned */
	case 1:
		return c + 1;
	case 2:
		return 0;
	case 3:
		return 0xffff800000000000ULL;
	case 4:
		return ~31ULL;
	case 5:
		return pick_addr(z);
	default:
		return c;
	}
}

/*
 * Where an ioctl's argument goes: mostly @buf, on the stack; else a copy in
 * a writable page of the arena, in the read-only page, or an address the
 * kernel cannot access. Says whether the kernel can read and write there
 * and whether the contents are surely @buf's (the arena's could be
 * overwritten by DMA still running).
 */
static __u64 place_arg(struct fz *z, const void *buf, size_t size, int *rd, int *wr,
		       bool *known, const char **where)
{
	__u64 a;
	int tries;

	*rd = *wr = A_OK;
	*known = true;
	*where = "stack";
	if (chance(z, 75))
		return (uintptr_t)buf;
	switch (below(z, 3)) {
	case 0:
		a = (uintptr_t)z->ro_page + below(z, PAGE - size + 1);
		if (mprotect(z->ro_page, PAGE, PROT_READ | PROT_WRITE))
			break;
		memcpy((void *)(uintptr_t)a, buf, size);
		mprotect(z->ro_page, PAGE, PROT_READ);
		*wr = A_FAULT;
		*where = "read-only page";
		return a;
	case 1:
		for (tries = 0; tries < 8; tries++) {
			a = pick_addr(z);
			*rd = access_of(z, a, size, PROT_READ);
			*wr = access_of(z, a, size, PROT_WRITE);
			if (*wr == A_OK) {
				memcpy((void *)(uintptr_t)a, buf, size);
				*known = false;
				*where = "arena";
				return a;
			}
			if (*rd == A_FAULT) {
				*where = "bad pointer";
				return a;
			}
		}
		break;
	default:
		a = chance(z, 30) ? 0 : bad_addrs[below(z, ARRAY_SIZE(bad_addrs))];
		*rd = *wr = A_FAULT;
		*where = "bad pointer";
		return a;
	}
	*rd = *wr = A_OK;
	*where = "stack";
	return (uintptr_t)buf;
}

/* --- files ---------------------------------------------------------------- */

static const char *slot_name(const struct fz *z, int i)
{
	static char buf[96];
	const struct slot *s = &z->s[i];

	snprintf(buf, sizeof(buf), "slot %d %s%s%s", i, z->devs->path[s->kind][s->dev] + 5,
		 s->inherited ? " (inherited)" : "", s->shared ? " (shared)" : "");
	return buf;
}

static bool own_accel_open(const struct fz *z)
{
	int i;

	for (i = 0; i < NSLOT; i++)
		if (z->s[i].fd >= 0 && z->s[i].kind != K_MIRROR && !z->s[i].inherited)
			return true;
	return false;
}

static void do_close(struct fz *z, int i)
{
	struct slot *s = &z->s[i];

	note(z, "close %s (%llu bytes queued at most)", slot_name(z, i), s->pending);
	if (close(s->fd))
		fz_fail(z, "close: %s", ename(errno));
	s->fd = -1;
	if (!own_accel_open(z))
		z->pasid = 0;
}

/* Opens a device of one of @kinds in a free slot (closing one if needed). */
static int do_open(struct fz *z, unsigned int kinds)
{
	int i, free = -1, fd, kind, list[NR_KINDS], n = 0;

	kinds &= mode_kinds[z->mode];
	for (kind = 0; kind < NR_KINDS; kind++)
		if ((kinds & KM(kind)) && z->devs->n[kind])
			list[n++] = kind;
	if (!n)
		return -1;
	for (i = 0; i < NSLOT && free < 0; i++)
		if (z->s[i].fd < 0)
			free = i;
	if (free < 0) {
		free = below(z, NSLOT);
		do_close(z, free);
	}
	kind = list[below(z, n)];
	z->s[free] = (struct slot){ .fd = -1, .kind = kind, .dev = below(z, z->devs->n[kind]) };
	note(z, "open %s", z->devs->path[kind][z->s[free].dev]);
	fd = open(z->devs->path[kind][z->s[free].dev], O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		fz_fail(z, "open: %s", ename(errno));
		return -1;
	}
	z->s[free].fd = fd;
	z->n_open++;
	return free;
}

/* A random open slot of @kinds, or -1 (then one is opened, as this op). */
static int slot_want(struct fz *z, unsigned int kinds)
{
	int idx[NSLOT], n = 0, i;

	kinds &= mode_kinds[z->mode];
	for (i = 0; i < NSLOT; i++)
		if (z->s[i].fd >= 0 && (kinds & KM(z->s[i].kind)))
			idx[n++] = i;
	if (n)
		return idx[below(z, n)];
	do_open(z, kinds);
	return -1;
}

/* --- the accelerators ---------------------------------------------------- */

/* rust/sim/uapi.rs Desc::validate(): 0 or -errno. */
static int submit_errno(const struct rsva_sim_desc *d)
{
	if (d->op >= RSVA_SIM_OP_MAX || d->flags & ~RSVA_SIM_F_ALL)
		return -EINVAL;
	if (d->flags & RSVA_SIM_F_COMPLETION && (!d->completion || d->completion % 32))
		return -EINVAL;
	if (d->len > RSVA_SIM_MAX_LEN || d->src + d->len < d->src || d->dst + d->len < d->dst)
		return -EOVERFLOW;
	return 0;
}

/* The most bytes the engine moves for @d: the arena's guard pages end any run. */
static __u64 desc_cost(const struct rsva_sim_desc *d)
{
	if (submit_errno(d) || d->op == RSVA_SIM_OP_NOOP)
		return 0;
	return d->len < COST_MAX ? d->len : COST_MAX;
}

static __u64 in_region(struct fz *z, int i, __u64 *room)
{
	const struct region *r = &z->r[i];
	__u64 off = chance(z, 50) ? below(z, r->len / PAGE) * PAGE : below(z, r->len);

	*room = r->len - off;
	return (uintptr_t)r->base + off;
}

static void gen_desc(struct fz *z, struct rsva_sim_desc *d)
{
	static const __u32 odd_ops[] = {
		RSVA_SIM_OP_MAX, RSVA_SIM_OP_MAX + 1, 0xff, 1u << 31, ~0u,
	};
	static const __u32 odd_flags[] = { 4, 7, 0x80, 1u << 31, ~0u, RSVA_SIM_F_COMPLETION | 4 };
	__u64 room_s, room_d;
	bool reads;

	memset(d, 0, sizeof(*d));
	d->pattern = rnd(z);
	if (chance(z, 35)) {
		/* Well formed, in the arena as it is now: faults where it is not mapped. */
		d->op = below(z, RSVA_SIM_OP_MAX);
		d->flags = chance(z, 80) ? RSVA_SIM_F_COMPLETION : 0;
		/* Some report page faults instead of blocking on them. */
		if (chance(z, 25))
			d->flags |= RSVA_SIM_F_FAULT_REPORT;
		d->src = in_region(z, below(z, NREG), &room_s);
		d->dst = in_region(z, below(z, NREG), &room_d);
		room_s = room_s < room_d ? room_s : room_d;
		d->len = chance(z, 30) ? room_s : 1 + below(z, room_s);
		d->completion = (uintptr_t)z->r[R_ANON].base + below(z, PAGE / 32) * 32;
		return;
	}
	if (chance(z, 80))
		d->op = below(z, RSVA_SIM_OP_MAX);
	else
		d->op = chance(z, 50) ? odd_ops[below(z, ARRAY_SIZE(odd_ops))] : (__u32)rnd(z);
	if (chance(z, 85))
		d->flags = chance(z, 60) ? RSVA_SIM_F_COMPLETION : 0;
	else if (chance(z, 50))
		d->flags = odd_flags[below(z, ARRAY_SIZE(odd_flags))];
	else
		d->flags = rnd(z);
	d->len = pick_len(z);
	/* Only CRC32 and COMPARE may read outside the arena: nothing is copied. */
	reads = d->op == RSVA_SIM_OP_COMPARE || d->op == RSVA_SIM_OP_CRC32;
	d->src = reads && chance(z, 25) ? pick_ro(z) : pick_addr(z);
	d->dst = d->op == RSVA_SIM_OP_COMPARE && chance(z, 25) ? pick_ro(z) : pick_addr(z);
	d->completion = pick_completion(z);
}

/*
 * SUBMIT (rust/sim/accel.rs ioctl(), queue.rs Queue::submit()): EFAULT when
 * the descriptor cannot be read, then EPERM unless the caller's mm is the
 * opener's (a forked child's inherited file), then EINVAL/EOVERFLOW of
 * validate(), then ESHUTDOWN once the queue is stopped (uacce's PUT_Q; a
 * misc file's queue stops only on release), EAGAIN when 256 are queued;
 * else 0.
 */
static void check_submit(struct fz *z, const struct slot *s, const struct rsva_sim_desc *d,
			 int rd, bool known, int got)
{
	bool uacce = s->kind == K_UACCE;
	int v = -submit_errno(d);

	if (rd == A_FAULT) {
		expect_eq(z, got, EFAULT);
	} else if (s->inherited) {
		if (rd == A_OK)
			expect_eq(z, got, EPERM);
		else
			expect_in(z, got, ERRS(EFAULT, EPERM));
	} else if (!known || rd != A_OK) {
		/* The descriptor may have changed under us, or the pointer is unknown. */
		if (uacce)
			expect_in(z, got, ERRS(0, EFAULT, EINVAL, EOVERFLOW, EAGAIN, ESHUTDOWN));
		else
			expect_in(z, got, ERRS(0, EFAULT, EINVAL, EOVERFLOW, EAGAIN));
	} else if (v) {
		expect_eq(z, got, v);
	} else if (uacce && !s->shared && s->stopped && !s->started) {
		expect_eq(z, got, ESHUTDOWN);
	} else if (uacce && (s->shared || s->stopped)) {
		/* Restarted (START_Q after PUT_Q) or unknown: running or stopped. */
		expect_in(z, got, ERRS(0, EAGAIN, ESHUTDOWN));
	} else {
		expect_in(z, got, ERRS(0, EAGAIN));
	}
}

/*
 * The counters of a queue: only its opener submits (a forked child gets
 * EPERM), so "submitted" is our count; after a WAIT, all of it ended unless
 * a PUT_Q (ours or a child's) dropped some.
 */
static void stats_check(struct fz *z, const struct slot *s, const struct rsva_sim_stats *st)
{
	if (st->completed > st->submitted || st->faults > 2 * st->submitted)
		fz_fail(z, "counters: %llu submitted, %llu completed, %llu faults", st->submitted,
			st->completed, st->faults);
	else if (st->submitted != s->submitted)
		fz_fail(z, "counters: %llu submitted, but %lu SUBMITs returned 0", st->submitted,
			s->submitted);
	else if (s->drained && (s->kind == K_MISC || (!s->shared && !s->stopped)) &&
		 st->completed != st->submitted)
		fz_fail(z, "WAIT returned, but only %llu of %llu descriptors ended", st->completed,
			st->submitted);
}

/*
 * RSVA_SIM_IOC_WAIT on @s: through uacce it does not sleep (EAGAIN while
 * work is pending), so wait for poll() to report the queue idle and ask
 * again.
 */
static int wait_queue(struct fz *z, struct slot *s, __u64 arg)
{
	struct pollfd p = { .fd = s->fd, .events = POLLIN };
	int got = xioctl(z, s->fd, RSVA_SIM_IOC_WAIT, arg);

	if (got == EAGAIN && s->kind == K_UACCE) {
		if (poll(&p, 1, 10000) != 1 || !(p.revents & POLLIN))
			fz_fail(z, "poll() did not report the queue idle: %#x", p.revents);
		got = xioctl(z, s->fd, RSVA_SIM_IOC_WAIT, arg);
	}
	return got;
}

/* WAIT: 0, or EINTR on a signal (none comes here). Then the counters must add up. */
static void do_wait(struct fz *z, int i)
{
	struct slot *s = &z->s[i];
	struct rsva_sim_stats st;
	int got;

	note(z, "WAIT on %s (%llu bytes queued at most)", slot_name(z, i), s->pending);
	got = wait_queue(z, s, chance(z, 80) ? 0 : pick_addr(z));
	if (!expect_in(z, got, ERRS(0, EINTR)) || got)
		return;
	s->pending = 0;
	s->drained = true;
	got = xioctl(z, s->fd, RSVA_SIM_IOC_GET_STATS, (uintptr_t)&st);
	if (expect_eq(z, got, 0))
		stats_check(z, s, &st);
}

static void op_submit(struct fz *z)
{
	int i = slot_want(z, KM_ACCEL), rd, wr, got;
	struct rsva_sim_desc d;
	const char *where;
	struct slot *s;
	__u64 arg, cost;
	bool known;

	if (i < 0)
		return;
	s = &z->s[i];
	gen_desc(z, &d);
	cost = desc_cost(&d);
	if (cost && s->pending + cost > DMA_BUDGET)
		do_wait(z, i);
	if (z->failed)
		return;
	arg = place_arg(z, &d, sizeof(d), &rd, &wr, &known, &where);
	note(z, "SUBMIT on %s: op %u flags %#x src %#llx dst %#llx len %#llx completion %#llx, arg %#llx (%s)",
	     slot_name(z, i), d.op, d.flags, d.src, d.dst, d.len, d.completion, arg, where);
	got = xioctl(z, s->fd, RSVA_SIM_IOC_SUBMIT, arg);
	check_submit(z, s, &d, rd, known, got);
	if (!got) {
		s->submitted++;
		s->drained = false;
	}
	s->pending += known ? cost : COST_MAX;
}

/* Many cheap descriptors at once, to fill the queue; then maybe close it. */
static void op_burst(struct fz *z)
{
	int i = slot_want(z, KM_ACCEL), got;
	struct rsva_sim_desc d = { .flags = RSVA_SIM_F_COMPLETION };
	unsigned long n, k;
	bool close_after;
	struct slot *s;

	if (i < 0)
		return;
	s = &z->s[i];
	n = 64 + below(z, 256);
	close_after = chance(z, 40);
	d.completion = (uintptr_t)z->r[R_ANON].base +
		       below(z, region_pages[R_ANON] * PAGE / 32) * 32;
	if (chance(z, 50)) {
		/* A copy from nowhere: a fault at the first access. */
		d.op = RSVA_SIM_OP_MEMCPY;
		d.src = bad_addrs[below(z, ARRAY_SIZE(bad_addrs))] & ~(PAGE - 1);
		d.dst = (uintptr_t)z->r[R_ANON2].base;
		d.len = PAGE;
		if (d.src + d.len < d.src)
			d.src = 0;
	}
	for (k = 0; k < n && !z->failed; k++) {
		note(z, "burst SUBMIT %lu of %lu on %s: op %u src %#llx completion %#llx%s",
		     k + 1, n, slot_name(z, i), d.op, d.src, d.completion,
		     close_after ? ", then close" : "");
		got = xioctl(z, s->fd, RSVA_SIM_IOC_SUBMIT, (uintptr_t)&d);
		check_submit(z, s, &d, A_OK, true, got);
		if (!got) {
			s->submitted++;
			s->drained = false;
		}
	}
	if (close_after && !z->failed)
		do_close(z, i);
}

static void op_wait(struct fz *z)
{
	int i = slot_want(z, KM_ACCEL);

	if (i >= 0)
		do_wait(z, i);
}

/* GET_PASID and GET_STATS: EFAULT when the result cannot be written. */
static void op_get(struct fz *z, bool stats)
{
	int i = slot_want(z, KM_ACCEL), rd, wr, got;
	struct rsva_sim_stats st;
	const char *where;
	__u32 pasid = ~0u;
	struct slot *s;
	bool known;
	__u64 arg;

	if (i < 0)
		return;
	s = &z->s[i];
	memset(&st, 0xa5, sizeof(st));
	if (stats)
		arg = place_arg(z, &st, sizeof(st), &rd, &wr, &known, &where);
	else
		arg = place_arg(z, &pasid, sizeof(pasid), &rd, &wr, &known, &where);
	note(z, "%s on %s, arg %#llx (%s)", stats ? "GET_STATS" : "GET_PASID", slot_name(z, i),
	     arg, where);
	got = xioctl(z, s->fd, stats ? RSVA_SIM_IOC_GET_STATS : RSVA_SIM_IOC_GET_PASID, arg);
	if (wr == A_FAULT)
		expect_eq(z, got, EFAULT);
	else if (wr == A_OK)
		expect_eq(z, got, 0);
	else
		expect_in(z, got, ERRS(0, EFAULT));
	if (got || z->failed)
		return;
	if (arg == (uintptr_t)&st) {
		stats_check(z, s, &st);
	} else if (arg == (uintptr_t)&pasid) {
		if (!pasid || pasid >= 1u << 20)
			fz_fail(z, "PASID %u", pasid);
		else if (!s->inherited && z->pasid && pasid != z->pasid)
			fz_fail(z, "PASID %u, but another file of ours has %u", pasid, z->pasid);
		else if (!s->inherited)
			z->pasid = pasid;
	}
}

/*
 * uacce's START_Q and PUT_Q (uacce_fops_unl_ioctl()): START_Q is EINVAL
 * unless the queue is in its initial state; PUT_Q stops a started queue (our
 * stop_queue) and is 0; a forked child may do both on its inherited file.
 * The misc device does not know them (ENOTTY), the mirror refuses their size
 * (EINVAL), or anyone but its opener (EPERM).
 */
static void op_uacce(struct fz *z)
{
	int i = slot_want(z, KM_ALL), got;
	bool start = chance(z, 50);
	struct slot *s;

	if (i < 0)
		return;
	s = &z->s[i];
	note(z, "%s on %s", start ? "UACCE_CMD_START_Q" : "UACCE_CMD_PUT_Q", slot_name(z, i));
	got = xioctl(z, s->fd, start ? UACCE_CMD_START_Q : UACCE_CMD_PUT_Q,
		     chance(z, 80) ? 0 : rnd(z));
	if (s->kind == K_MISC) {
		expect_eq(z, got, ENOTTY);
	} else if (s->kind == K_MIRROR) {
		expect_eq(z, got, s->inherited ? EPERM : EINVAL);
	} else if (start) {
		if (s->shared)
			expect_in(z, got, ERRS(0, EINVAL));
		else
			expect_eq(z, got, s->started ? EINVAL : 0);
		if (!got)
			s->started = true;
	} else {
		expect_eq(z, got, 0);
		if (s->started)
			s->stopped = true;
		s->started = false;
	}
}

/* --- the mirror ----------------------------------------------------------- */

static const unsigned int mirror_cmds[] = {
	HMM_DMIRROR_READ, HMM_DMIRROR_WRITE, HMM_DMIRROR_SNAPSHOT, HMM_DMIRROR_READ_UNLOCKED,
	HMM_DMIRROR_FLAGS, HMM_DMIRROR_RELEASE, HMM_DMIRROR_MIGRATE_TO_DEV,
	HMM_DMIRROR_MIGRATE_TO_SYS, HMM_DMIRROR_EXCLUSIVE, HMM_DMIRROR_CHECK_EXCLUSIVE,
};

static const char *mirror_cmd_name(unsigned int cmd)
{
	static const char *const names[] = {
		"READ", "WRITE", "MIGRATE_TO_DEV", "MIGRATE_TO_SYS", "SNAPSHOT", "EXCLUSIVE",
		"CHECK_EXCLUSIVE", "RELEASE", "FLAGS", "READ_UNLOCKED",
	};

	return _IOC_NR(cmd) < ARRAY_SIZE(names) ? names[_IOC_NR(cmd)] : "?";
}

/* rust/mirror/registry.rs span(): page aligned, at least one page, no wrap. */
static bool mirror_span_ok(__u64 addr, __u64 npages)
{
	return !(addr % PAGE) && npages && npages <= ~0ULL / PAGE && npages * PAGE <= ~0ULL - addr;
}

static __u64 pick_npages(struct fz *z)
{
	static const __u64 n[] = {
		0, 1, 2, 3, 4, 15, 16, 17, 511, 512, 513, 1024, 1ULL << 20, 1ULL << 32,
		(1ULL << 52) - 1, 1ULL << 52, 1ULL << 63, ~0ULL,
	};

	return chance(z, 60) ? 1 + below(z, 32) : n[below(z, ARRAY_SIZE(n))];
}

/*
 * The user buffer of a mirror command: @scratch when what the command copies
 * fits, else an arena or bad address (never the 2 MiB region for SNAPSHOT,
 * which would write a byte for each of 2M pages walked).
 */
static __u64 mirror_ptr(struct fz *z, unsigned int cmd, __u64 npages)
{
	bool snap = cmd == HMM_DMIRROR_SNAPSHOT;
	__u64 fits = snap ? sizeof(scratch) : sizeof(scratch) / PAGE, a;
	int tries;

	if (npages <= fits && chance(z, 60))
		return (uintptr_t)scratch + (snap ? below(z, sizeof(scratch) - npages + 1) : 0);
	for (tries = 0; tries < 4; tries++) {
		a = pick_addr(z);
		if (!snap || region_of(z, a) != R_THP)
			return a;
	}
	return 0;
}

/*
 * A snapshot byte as rsva's prot_of() (rust/mirror/hmm.rs) can make it:
 * the device's own pages are DEV_PRIVATE_LOCAL (never ZERO); another
 * device's are not present for it.
 */
static bool snapshot_code_ok(unsigned char b)
{
	if (b == HMM_DMIRROR_PROT_ERROR || b == HMM_DMIRROR_PROT_NONE)
		return true;
	if ((b & HMM_DMIRROR_PROT_PMD) && (b & HMM_DMIRROR_PROT_PUD))
		return false;
	if ((b & 0xf0) == HMM_DMIRROR_PROT_DEV_PRIVATE_LOCAL)
		b &= ~HMM_DMIRROR_PROT_DEV_PRIVATE_LOCAL;
	b &= ~(HMM_DMIRROR_PROT_ZERO | HMM_DMIRROR_PROT_PMD | HMM_DMIRROR_PROT_PUD);
	return b == HMM_DMIRROR_PROT_READ || b == HMM_DMIRROR_PROT_WRITE;
}

/*
 * A mirror command (rust/mirror/dev.rs): EPERM from any mm but the
 * opener's (a forked child's inherited file), EINVAL for a size other than
 * struct hmm_dmirror_cmd's, EFAULT when it cannot be read, EINVAL for a bad
 * span, EINVAL for an unknown command; FLAGS and RELEASE cannot fail.
 * MIGRATE_TO_DEV fails as READ does, also with EINVAL (a VMA that is
 * missing or not readable), ENOENT (a page that did not move and is not
 * mirrored) or ENOMEM; MIGRATE_TO_SYS with EINVAL or ENOMEM (after
 * HMM_DMIRROR_FLAG_FAIL_ALLOC). EXCLUSIVE (rust/mirror/hmm/exclusive.rs)
 * fails as make_device_exclusive() does (EFAULT where nothing writable is
 * mapped, EOPNOTSUPP for pages that are not anonymous, EINTR), with EBUSY
 * after repeated invalidations of a page, ENOENT when the CPU took a page
 * back before it was read, EFAULT for the user buffer; CHECK_EXCLUSIVE
 * answers 0 or EPERM (pages still exclusive), with cpages and faults 0 as
 * FLAGS and RELEASE. READ, READ_UNLOCKED and
 * SNAPSHOT can fail with EFAULT (user buffer, unmapped or PROT_NONE memory,
 * mm gone) or EBUSY (hmm retries for a second), WRITE also with EPERM
 * (read-only memory, mm/hmm.c hmm_do_fault()). Every command that gets that
 * far writes the command back: EFAULT when it cannot.
 */
static void check_mirror(struct fz *z, const struct slot *s, unsigned int cmd,
			 const struct hmm_dmirror_cmd *c, int rd, int wr, bool known, int got)
{
	if (s->inherited) {
		expect_eq(z, got, EPERM);
	} else if (_IOC_SIZE(cmd) != CMD_SIZE) {
		expect_eq(z, got, EINVAL);
	} else if (rd == A_FAULT) {
		expect_eq(z, got, EFAULT);
	} else if (!known || rd != A_OK) {
		expect_in(z, got, ERRS(0, EINVAL, EFAULT, EPERM, EBUSY, EOPNOTSUPP, EINTR, ENOENT,
				       ENOMEM));
	} else if (!mirror_span_ok(c->addr, c->npages)) {
		expect_eq(z, got, EINVAL);
	} else {
		switch (cmd) {
		case HMM_DMIRROR_MIGRATE_TO_DEV:
			expect_in(z, got, ERRS(0, EINVAL, ENOENT, EFAULT, ENOMEM, EBUSY));
			break;
		case HMM_DMIRROR_MIGRATE_TO_SYS:
			if (wr == A_FAULT)
				expect_in(z, got, ERRS(EINVAL, ENOMEM, EFAULT));
			else
				expect_in(z, got, ERRS(0, EINVAL, ENOMEM, EFAULT));
			break;
		case HMM_DMIRROR_EXCLUSIVE:
			expect_in(z, got, ERRS(0, EFAULT, EOPNOTSUPP, EBUSY, EINTR, ENOENT, ENOMEM));
			break;
		case HMM_DMIRROR_CHECK_EXCLUSIVE:
			if (wr == A_UNKNOWN)
				expect_in(z, got, ERRS(0, EPERM, EFAULT));
			else if (wr == A_OK)
				expect_in(z, got, ERRS(0, EPERM));
			else
				expect_in(z, got, ERRS(EFAULT, EPERM));
			break;
		case HMM_DMIRROR_FLAGS:
		case HMM_DMIRROR_RELEASE:
			if (wr == A_UNKNOWN)
				expect_in(z, got, ERRS(0, EFAULT));
			else
				expect_eq(z, got, wr == A_OK ? 0 : EFAULT);
			break;
		case HMM_DMIRROR_WRITE:
			if (wr == A_FAULT)
				expect_in(z, got, ERRS(EFAULT, EPERM, EBUSY));
			else
				expect_in(z, got, ERRS(0, EFAULT, EPERM, EBUSY));
			break;
		case HMM_DMIRROR_READ:
		case HMM_DMIRROR_READ_UNLOCKED:
		case HMM_DMIRROR_SNAPSHOT:
			if (wr == A_FAULT)
				expect_in(z, got, ERRS(EFAULT, EBUSY));
			else
				expect_in(z, got, ERRS(0, EFAULT, EBUSY));
			break;
		default:
			expect_eq(z, got, EINVAL);
		}
	}
}

static void op_mirror(struct fz *z, bool data)
{
	int i = slot_want(z, KM(K_MIRROR)), rd, wr, got, r;
	struct hmm_dmirror_cmd c, sent;
	const char *where;
	unsigned int cmd;
	__u64 arg, k;
	bool known;

	if (i < 0)
		return;
	cmd = data ? mirror_cmds[below(z, 4)] : mirror_cmds[4 + below(z, 6)];
	if (chance(z, 40)) {
		/* Well formed, in the arena as it is now: fails where it is not mapped. */
		r = below(z, NREG);
		k = below(z, region_pages[r]);
		c.addr = (uintptr_t)z->r[r].base + k * PAGE;
		c.npages = 1 + below(z, region_pages[r] - k);
	} else {
		c.addr = cmd == HMM_DMIRROR_SNAPSHOT && chance(z, 20) ? pick_ro(z) : pick_addr(z);
		if (chance(z, 70))
			c.addr &= ~(PAGE - 1);
		c.npages = pick_npages(z);
	}
	c.ptr = mirror_ptr(z, cmd, c.npages);
	c.cpages = rnd(z);
	c.faults = rnd(z);
	sent = c;
	arg = place_arg(z, &c, sizeof(c), &rd, &wr, &known, &where);
	note(z, "mirror %s on %s: addr %#llx npages %#llx ptr %#llx, arg %#llx (%s)",
	     mirror_cmd_name(cmd), slot_name(z, i), c.addr, c.npages, c.ptr, arg, where);
	got = xioctl(z, z->s[i].fd, cmd, arg);
	check_mirror(z, &z->s[i], cmd, &sent, rd, wr, known, got);
	if (got || z->failed || arg != (uintptr_t)&c)
		return;
	if (c.addr != sent.addr || c.ptr != sent.ptr || c.npages != sent.npages) {
		fz_fail(z, "the command came back changed: addr %#llx ptr %#llx npages %#llx",
			c.addr, c.ptr, c.npages);
	} else if (cmd == HMM_DMIRROR_FLAGS || cmd == HMM_DMIRROR_RELEASE ||
		   cmd == HMM_DMIRROR_CHECK_EXCLUSIVE) {
		if (c.cpages || c.faults)
			fz_fail(z, "cpages %llu faults %llu", c.cpages, c.faults);
	} else if (cmd == HMM_DMIRROR_MIGRATE_TO_SYS) {
		/* The pages that were on the device and moved back. */
		if (c.cpages > c.npages || c.faults)
			fz_fail(z, "cpages %llu faults %llu", c.cpages, c.faults);
	} else if (c.cpages != c.npages) {
		fz_fail(z, "returned 0 with cpages %llu", c.cpages);
	} else if (cmd == HMM_DMIRROR_SNAPSHOT && c.ptr >= (uintptr_t)scratch &&
		   c.ptr < (uintptr_t)scratch + sizeof(scratch)) {
		for (k = 0; k < c.npages; k++) {
			unsigned char b = ((unsigned char *)(uintptr_t)c.ptr)[k];

			if (!snapshot_code_ok(b)) {
				fz_fail(z, "snapshot code %#x for page %llu", b, k);
				break;
			}
		}
	}
}

/* --- any file ------------------------------------------------------------- */

/* Generic ioctls of fs/ioctl.c do_vfs_ioctl() have these types: not ours. */
static bool vfs_type(unsigned int type)
{
	return type == 0 || type == 'T' || type == 'X' || type == 'f' || type == 0x94 ||
	       type == 0x15;
}

static bool known_cmd(enum kind k, unsigned int cmd)
{
	switch (k) {
	case K_MIRROR:
		return _IOC_TYPE(cmd) == 'H' && _IOC_NR(cmd) <= 9 && _IOC_SIZE(cmd) == CMD_SIZE &&
		       _IOC_DIR(cmd) == (_IOC_READ | _IOC_WRITE);
	case K_UACCE:
		if (cmd == UACCE_CMD_START_Q || cmd == UACCE_CMD_PUT_Q)
			return true;
		break;
	default:
		break;
	}
	return cmd == RSVA_SIM_IOC_SUBMIT || cmd == RSVA_SIM_IOC_WAIT ||
	       cmd == RSVA_SIM_IOC_GET_PASID || cmd == RSVA_SIM_IOC_GET_STATS;
}

static unsigned int pick_cmd(struct fz *z)
{
	static const unsigned int real[] = {
		RSVA_SIM_IOC_SUBMIT, RSVA_SIM_IOC_WAIT, RSVA_SIM_IOC_GET_PASID,
		RSVA_SIM_IOC_GET_STATS, UACCE_CMD_START_Q, UACCE_CMD_PUT_Q, HMM_DMIRROR_READ,
		HMM_DMIRROR_WRITE, HMM_DMIRROR_SNAPSHOT,
	};
	static const unsigned int sizes[] = { 0, 1, 4, 8, 32, 40, 47, 48, 49, 64, 4096, 0x3fff };
	unsigned int dir = below(z, 4), nr = below(z, 16), type;
	unsigned int size = sizes[below(z, ARRAY_SIZE(sizes))], c;

	switch (below(z, 6)) {
	case 0:
		type = RSVA_SIM_IOC_MAGIC;
		break;
	case 1:
		type = 'H';
		break;
	case 2:
		type = 'W';
		nr = below(z, 4);
		break;
	case 3:
		/* A real command with another size or direction. */
		c = real[below(z, ARRAY_SIZE(real))];
		if (chance(z, 50))
			return c ^ (1u + below(z, _IOC_SIZEMASK)) << _IOC_SIZESHIFT;
		return c ^ (1u + below(z, _IOC_DIRMASK)) << _IOC_DIRSHIFT;
	case 4:
		type = below(z, 256);
		nr = below(z, 256);
		break;
	default:
		return rnd(z);
	}
	return _IOC(dir, type, nr, size);
}

/*
 * A command the file does not serve: ENOTTY from the accelerators (misc and
 * uacce alike reach rust/sim/accel.rs ioctl()); the mirror answers EPERM to
 * anyone but its opener, reads any command of its size before refusing it
 * (EFAULT or EINVAL), and says EINVAL to the others.
 */
static void op_random_cmd(struct fz *z)
{
	int i = slot_want(z, KM_ALL), tries, rd, got;
	unsigned char buf[256];
	unsigned int cmd = 0;
	struct slot *s;
	__u64 arg, k;

	if (i < 0)
		return;
	s = &z->s[i];
	for (tries = 0; tries < 8 && !cmd; tries++) {
		cmd = pick_cmd(z);
		if (vfs_type(_IOC_TYPE(cmd)) || known_cmd(s->kind, cmd))
			cmd = 0;
	}
	if (!cmd)
		return;
	for (k = 0; k < sizeof(buf); k++)
		buf[k] = rnd(z);
	switch (below(z, 4)) {
	case 0:
		arg = 0;
		rd = A_FAULT;
		break;
	case 1:
		arg = pick_addr(z);
		rd = access_of(z, arg, CMD_SIZE, PROT_READ);
		break;
	default:
		arg = (uintptr_t)buf;
		rd = A_OK;
	}
	note(z, "ioctl %#x (dir %u type %#x nr %u size %u) on %s, arg %#llx", cmd, _IOC_DIR(cmd),
	     _IOC_TYPE(cmd), _IOC_NR(cmd), _IOC_SIZE(cmd), slot_name(z, i), arg);
	got = xioctl(z, s->fd, cmd, arg);
	if (s->kind != K_MIRROR)
		expect_eq(z, got, ENOTTY);
	else if (s->inherited)
		expect_eq(z, got, EPERM);
	else if (_IOC_SIZE(cmd) != CMD_SIZE)
		expect_eq(z, got, EINVAL);
	else if (rd == A_UNKNOWN)
		expect_in(z, got, ERRS(EINVAL, EFAULT));
	else
		expect_eq(z, got, rd == A_OK ? EINVAL : EFAULT);
}

/*
 * mmap of a file. The accelerators' misc devices have no mmap (ENODEV from
 * do_mmap()), uacce_fops_mmap() refuses every region without an ops->mmap
 * (EINVAL); do_mmap() itself says EINVAL for a length of 0, ENOMEM when
 * there is no room. The mirror maps fresh zeroed pages, whatever the offset
 * and whoever holds the file (rust/mirror/mmap.rs, as test_hmm), up to
 * MIRROR_MMAP_MAX (ENOMEM beyond).
 */
#define MIRROR_MMAP_MAX (16384 * PAGE)

static void op_mmap(struct fz *z)
{
	static const size_t lens[] = { 0, PAGE, 3 * PAGE, 1ULL << 40 };
	static const __u64 pgoffs[] = { 0, 1, 2, 3, 1ULL << 20, 1ULL << 40 };
	int i = slot_want(z, KM_ALL), prot, flags, got;
	struct slot *s;
	__u64 pgoff;
	size_t len;
	void *p;

	if (i < 0)
		return;
	s = &z->s[i];
	len = lens[below(z, ARRAY_SIZE(lens))];
	pgoff = pgoffs[below(z, ARRAY_SIZE(pgoffs))];
	prot = chance(z, 50) ? PROT_READ | PROT_WRITE : PROT_READ;
	flags = chance(z, 70) ? MAP_SHARED : MAP_PRIVATE;
	note(z, "mmap of %s: len %#zx pgoff %#llx prot %d flags %#x", slot_name(z, i), len, pgoff,
	     prot, flags);
	p = mmap(NULL, len, prot, flags, s->fd, pgoff * PAGE);
	if (s->kind == K_MIRROR && len && len <= MIRROR_MMAP_MAX) {
		if (p == MAP_FAILED)
			fz_fail(z, "mmap of the mirror: %s", ename(errno));
		else if (((char *)p)[0] || ((char *)p)[len - 1])
			fz_fail(z, "the mirror's mapping is not zeroed");
		if (p != MAP_FAILED)
			munmap(p, len);
		return;
	}
	if (p != MAP_FAILED) {
		munmap(p, len);
		fz_fail(z, "mmap succeeded");
		return;
	}
	got = errno;
	if (s->kind == K_UACCE)
		expect_in(z, got, ERRS(EINVAL, ENOMEM));
	else
		expect_in(z, got, ERRS(ENODEV, EINVAL, ENOMEM));
}

/* read and write: none of the files has them (EINVAL); poll: no error. */
static void op_rw(struct fz *z)
{
	int i = slot_want(z, KM_ALL), what = below(z, 3);
	size_t n = below(z, PAGE + 1);
	struct pollfd pfd;
	struct slot *s;
	ssize_t r;

	if (i < 0)
		return;
	s = &z->s[i];
	note(z, "%s of %s (%zu bytes)", what == 0 ? "read" : what == 1 ? "write" : "poll",
	     slot_name(z, i), n);
	if (what == 2) {
		pfd = (struct pollfd){ .fd = s->fd, .events = POLLIN | POLLOUT };
		r = poll(&pfd, 1, 0);
		if (r < 0 || (r && (pfd.revents & POLLNVAL)))
			fz_fail(z, "poll returned %zd, revents %#x", r, pfd.revents);
		return;
	}
	r = what ? write(s->fd, scratch, n) : read(s->fd, scratch, n);
	if (r >= 0)
		fz_fail(z, "returned %zd", r);
	else
		expect_eq(z, errno, EINVAL);
}

/* --- checked operations: the files still do their job ---------------------- */

static void check_accel_copy(struct fz *z, int i)
{
	struct rsva_sim_desc d = { .op = RSVA_SIM_OP_MEMCPY, .flags = RSVA_SIM_F_COMPLETION };
	size_t len = 2 * PAGE + below(z, 2 * PAGE);
	struct slot *s = &z->s[i];
	int got;

	do_wait(z, i);
	if (z->failed)
		return;
	fill_random(chk_src, len, rnd(z));
	memset(chk_dst, 0, sizeof(chk_dst));
	memset(&chk_comp, 0, sizeof(chk_comp));
	d.src = (uintptr_t)chk_src;
	d.dst = (uintptr_t)chk_dst;
	d.len = len;
	d.completion = (uintptr_t)&chk_comp;
	note(z, "checked MEMCPY of %zu bytes on %s", len, slot_name(z, i));
	got = xioctl(z, s->fd, RSVA_SIM_IOC_SUBMIT, (uintptr_t)&d);
	if (!expect_eq(z, got, 0))
		return;
	s->submitted++;
	s->drained = false;
	got = wait_queue(z, s, 0);
	if (!expect_eq(z, got, 0))
		return;
	s->drained = true;
	s->pending = 0;
	if (chk_comp.status != RSVA_SIM_STATUS_SUCCESS || chk_comp.bytes_completed != len ||
	    memcmp(chk_src, chk_dst, len) || chk_dst[len])
		fz_fail(z, "status %u, %llu of %zu bytes, data %s", chk_comp.status,
			chk_comp.bytes_completed, len,
			memcmp(chk_src, chk_dst, len) ? "differ" : "same");
}

static void check_mirror_copy(struct fz *z, int i)
{
	__u64 np = 1 + below(z, 4);
	struct hmm_dmirror_cmd c = {
		.addr = (uintptr_t)chk_src, .ptr = (uintptr_t)chk_dst, .npages = np,
	};
	int got;

	fill_random(chk_src, np * PAGE, rnd(z));
	memset(chk_dst, 0, sizeof(chk_dst));
	note(z, "checked mirror READ of %llu pages on %s", np, slot_name(z, i));
	got = xioctl(z, z->s[i].fd, HMM_DMIRROR_READ, (uintptr_t)&c);
	if (!expect_eq(z, got, 0))
		return;
	if (c.cpages != np || memcmp(chk_src, chk_dst, np * PAGE)) {
		fz_fail(z, "cpages %llu, data %s", c.cpages,
			memcmp(chk_src, chk_dst, np * PAGE) ? "differ" : "same");
		return;
	}
	fill_random(chk_src, np * PAGE, rnd(z));
	c = (struct hmm_dmirror_cmd){
		.addr = (uintptr_t)chk_dst, .ptr = (uintptr_t)chk_src, .npages = np,
	};
	note(z, "checked mirror WRITE of %llu pages on %s", np, slot_name(z, i));
	got = xioctl(z, z->s[i].fd, HMM_DMIRROR_WRITE, (uintptr_t)&c);
	if (!expect_eq(z, got, 0))
		return;
	if (c.cpages != np || memcmp(chk_src, chk_dst, np * PAGE))
		fz_fail(z, "cpages %llu, data %s", c.cpages,
			memcmp(chk_src, chk_dst, np * PAGE) ? "differ" : "same");
}

/* A well-formed request on one of our own files must work, data checked. */
static void op_check(struct fz *z)
{
	int idx[NSLOT], n = 0, i;

	for (i = 0; i < NSLOT; i++) {
		const struct slot *s = &z->s[i];

		if (s->fd < 0 || s->inherited ||
		    (s->kind == K_UACCE && (s->shared || s->stopped)))
			continue;
		idx[n++] = i;
	}
	if (!n) {
		do_open(z, KM_ALL);
		return;
	}
	i = idx[below(z, n)];
	if (z->s[i].kind == K_MIRROR)
		check_mirror_copy(z, i);
	else
		check_accel_copy(z, i);
}

/* --- forks ---------------------------------------------------------------- */

static void fz_step(struct fz *z);

static void __noreturn fz_child(struct fz *z, __u64 seed, unsigned long n)
{
	int i;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	z->child = true;
	z->parent_op = z->op;
	z->op = 0;
	z->rng = splitmix(seed);
	z->trace = &z->shm->t[1];
	z->pasid = 0;
	for (i = 0; i < NSLOT; i++)
		z->s[i].inherited = z->s[i].shared = true;
	while (z->op < n && !z->failed) {
		fz_step(z);
		z->op++;
	}
	if (z->failed)
		_exit(1);
	if (chance(z, 50))
		_exit(0);
	for (;;)
		pause();
}

/*
 * A child runs a few operations, also on the files it inherited (which must
 * refuse to submit or mirror for it: EPERM), and is killed wherever it is.
 * It must not have crashed nor have seen an unexpected result.
 */
static void op_fork(struct fz *z)
{
	unsigned long n = 1 + below(z, CHILD_OPS), delay = below(z, 20000);
	__u64 seed = rnd(z);
	int st, i;
	pid_t pid;

	note(z, "fork a child for %lu ops, SIGKILL after %lu us", n, delay);
	fflush(NULL);
	pid = fork();
	if (pid < 0) {
		fz_fail(z, "fork: %s", ename(errno));
		return;
	}
	if (!pid)
		fz_child(z, seed, n);
	z->n_fork++;
	usleep(delay);
	kill(pid, SIGKILL);
	if (waitpid(pid, &st, 0) != pid)
		fz_fail(z, "waitpid: %s", ename(errno));
	else if (WIFSIGNALED(st) && WTERMSIG(st) != SIGKILL)
		fz_fail(z, "the child died of signal %d (%s) at its op #%lu: %s", WTERMSIG(st),
			strsignal(WTERMSIG(st)), z->shm->t[1].op, z->shm->t[1].what);
	else if (WIFEXITED(st) && WEXITSTATUS(st))
		fz_fail(z, "the child saw an unexpected result (logged above)");
	/* The child may have started or stopped our uacce queues. */
	for (i = 0; i < NSLOT; i++)
		if (z->s[i].fd >= 0)
			z->s[i].shared = true;
}

/* --- the fuzzing process --------------------------------------------------- */

static void fz_step(struct fz *z)
{
	const unsigned char *w = weights[z->mode];
	unsigned int sum = 0, r, op;

	for (op = 0; op < NR_OPS; op++)
		sum += op == OP_FORK && z->child ? 0 : w[op];
	r = below(z, sum);
	for (op = 0; op < NR_OPS; op++) {
		unsigned int wo = op == OP_FORK && z->child ? 0 : w[op];

		if (r < wo)
			break;
		r -= wo;
	}
	switch (op) {
	case OP_SUBMIT:
		op_submit(z);
		break;
	case OP_BURST:
		op_burst(z);
		break;
	case OP_WAIT:
		op_wait(z);
		break;
	case OP_PASID:
		op_get(z, false);
		break;
	case OP_STATS:
		op_get(z, true);
		break;
	case OP_UACCE:
		op_uacce(z);
		break;
	case OP_MIRROR:
		op_mirror(z, true);
		break;
	case OP_MIRROR_OTHER:
		op_mirror(z, false);
		break;
	case OP_RANDOM_CMD:
		op_random_cmd(z);
		break;
	case OP_OPEN:
		do_open(z, KM_ALL);
		break;
	case OP_CLOSE:
		r = slot_want(z, KM_ALL);
		if ((int)r >= 0)
			do_close(z, r);
		break;
	case OP_REGION:
		op_region(z);
		break;
	case OP_MMAP:
		op_mmap(z);
		break;
	case OP_RW:
		op_rw(z);
		break;
	case OP_CHECK:
		op_check(z);
		break;
	default:
		op_fork(z);
		break;
	}
}

static int fuzz_main(struct fz *z)
{
	struct __test_metadata *_metadata = z->md;
	double t0 = now();
	int i;

	note(z, "set up the arena");
	if (arena_init(z)) {
		fz_fail(z, "cannot map the arena: %s", ename(errno));
		return 1;
	}
	while (z->op < z->iters && !z->failed && now() - t0 < FUZZ_SECS) {
		fz_step(z);
		z->op++;
	}
	/* Closing works too, with work queued and queues in any state. */
	for (i = 0; i < NSLOT && !z->failed; i++)
		if (z->s[i].fd >= 0)
			do_close(z, i);
	TH_LOG("%lu ops in %.1f s%s: %lu returned 0, %lu an allowed errno; %lu opens, %lu forks",
	       z->op, now() - t0, z->op < z->iters && !z->failed ? " (time cap)" : "", z->n_ok,
	       z->n_err, z->n_open, z->n_fork);
	return z->failed;
}

/* Runs the fuzzer in a child, which must exit 0 (not die, not hang). */
static void run_fuzz(struct __test_metadata *_metadata, const struct devs *devs,
		     const struct cfg *cfg, enum mode mode, struct shm *shm)
{
	int st;
	pid_t pid;

	fflush(NULL);
	pid = fork();
	ASSERT_LE(0, pid);
	if (!pid) {
		static struct fz z;
		int i;

		prctl(PR_SET_PDEATHSIG, SIGKILL);
		alarm(FUZZ_ALARM);
		z.md = _metadata;
		z.devs = devs;
		z.shm = shm;
		z.trace = &shm->t[0];
		z.mode = mode;
		z.rng = splitmix(cfg->seed);
		z.iters = cfg->iters;
		for (i = 0; i < NSLOT; i++)
			z.s[i].fd = -1;
		_exit(fuzz_main(&z));
	}
	ASSERT_EQ(pid, waitpid(pid, &st, 0));
	if (WIFSIGNALED(st))
		TH_LOG("the fuzzer died of signal %d (%s)%s at op #%lu: %s", WTERMSIG(st),
		       strsignal(WTERMSIG(st)),
		       WTERMSIG(st) == SIGALRM ? ", stuck (alarm)" : "",
		       shm->t[0].op, shm->t[0].what);
	EXPECT_TRUE(WIFEXITED(st) && !WEXITSTATUS(st)) TH_LOG("%s", replay);
}

/* --- well-formed requests, for the sanity checks and the bystander ---------- */

/* A checked MEMCPY of @len bytes on @fd; 0, or -1 with @why said. */
static int copy_check(int fd, size_t len, unsigned int seed, char *why, size_t n)
{
	alignas(32) struct rsva_sim_completion c;
	static char src[4 * PAGE], dst[4 * PAGE + 64];
	struct rsva_sim_desc d = { .op = RSVA_SIM_OP_MEMCPY, .len = len };
	int ret;

	fill_random(src, len, seed);
	memset(dst, 0, sizeof(dst));
	d.src = (uintptr_t)src;
	d.dst = (uintptr_t)dst;
	ret = accel_run(fd, &d, &c);
	if (ret)
		snprintf(why, n, "SUBMIT or WAIT: %s", ename(-ret));
	else if (c.status != RSVA_SIM_STATUS_SUCCESS || c.bytes_completed != len)
		snprintf(why, n, "status %u, %llu of %zu bytes", c.status, c.bytes_completed, len);
	else if (memcmp(src, dst, len) || dst[len])
		snprintf(why, n, "the data was not copied right");
	else
		return 0;
	return -1;
}

/* A mirror READ of a fresh buffer of @npages pages; 0, or -1 with @why said. */
static int mirror_check(int fd, unsigned long npages, unsigned int seed, char *why, size_t n)
{
	static char buf[8 * PAGE];
	struct hmm_dmirror_cmd c = { .ptr = (uintptr_t)buf, .npages = npages };
	char *p = mmap(NULL, npages * PAGE, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	int ret = -1;

	if (p == MAP_FAILED) {
		snprintf(why, n, "mmap: %s", ename(errno));
		return -1;
	}
	fill_random(p, npages * PAGE, seed);
	memset(buf, 0, sizeof(buf));
	c.addr = (uintptr_t)p;
	if (ioctl(fd, HMM_DMIRROR_READ, &c))
		snprintf(why, n, "READ: %s", ename(errno));
	else if (c.cpages != npages || memcmp(p, buf, npages * PAGE))
		snprintf(why, n, "READ: cpages %llu, data %s", c.cpages,
			 memcmp(p, buf, npages * PAGE) ? "differ" : "same");
	else
		ret = 0;
	munmap(p, npages * PAGE);
	return ret;
}

/* Opens a device for a well-formed request (uacce: and starts the queue). */
static int open_ready(const char *path, bool uacce, char *why, size_t n)
{
	int fd = open(path, O_RDWR | O_CLOEXEC);

	if (fd < 0) {
		snprintf(why, n, "open: %s", ename(errno));
		return -1;
	}
	if (uacce && ioctl(fd, UACCE_CMD_START_Q)) {
		snprintf(why, n, "START_Q: %s", ename(errno));
		close(fd);
		return -1;
	}
	return fd;
}

/*
 * The page request interface of device @id (debugfs @file) once the
 * fuzzing is over and every file closed: every group sent was answered
 * exactly once (waiting up to 10 s for the last answers), and the three
 * counters that are always bugs are zero: responses to no pending group,
 * groups left unanswered by a PASID's drain, groups never answered.
 */
static void prq_sanity(struct __test_metadata *_metadata, const char *file, int id)
{
	long long groups = -1, answered = -2;
	int i;

	for (i = 0; i < 1000; i++) {
		groups = sim_counter(file, "page_groups");
		answered = sim_counter(file, "resp_success") + sim_counter(file, "resp_invalid") +
			   sim_counter(file, "resp_failure");
		if (groups < 0 || groups == answered)
			break;
		usleep(10000);
	}
	ASSERT_LE(0, groups) TH_LOG("no page request counters in %s", file);
	EXPECT_EQ(groups, answered) TH_LOG("rsva_sim%d: groups sent and answered differ", id);
	EXPECT_EQ(0, sim_counter(file, "resp_stray"))
		TH_LOG("rsva_sim%d: page responses to no pending group", id);
	EXPECT_EQ(0, sim_counter(file, "resp_undrained"))
		TH_LOG("rsva_sim%d: page requests unanswered after their PASID's drain", id);
	EXPECT_EQ(0, sim_counter(file, "resp_timeouts"))
		TH_LOG("rsva_sim%d: page requests never answered", id);
	EXPECT_EQ(0, sim_counter(file, "stale_walk_accesses"))
		TH_LOG("rsva_sim%d: DMA through a walk an invalidation overtook", id);
}

/*
 * After the fuzzing, each accelerator (misc and uacce) copies right for a
 * fresh opener, its counters add up, the mirror reads right, no device
 * ever used a stale translation, and every page request was answered once.
 */
static void sanity(struct __test_metadata *_metadata, const struct devs *devs)
{
	struct rsva_sim_stats st;
	char why[160], file[64];
	long long stale;
	int k, i, fd;

	for (k = K_MISC; k <= K_UACCE; k++) {
		for (i = 0; i < devs->n[k]; i++) {
			fd = open_ready(devs->path[k][i], k == K_UACCE, why, sizeof(why));
			EXPECT_LE(0, fd) TH_LOG("%s: %s", devs->path[k][i], why);
			if (fd < 0)
				continue;
			EXPECT_EQ(0, copy_check(fd, 3 * PAGE + 100, i + 1, why, sizeof(why)))
				TH_LOG("%s after the fuzzing: %s", devs->path[k][i], why);
			EXPECT_EQ(0, accel_stats(fd, &st));
			EXPECT_EQ(1, st.submitted) TH_LOG("%s", devs->path[k][i]);
			EXPECT_EQ(1, st.completed) TH_LOG("%s", devs->path[k][i]);
			EXPECT_EQ(0, st.faults) TH_LOG("%s", devs->path[k][i]);
			close(fd);
		}
	}
	fd = open(MIRROR_DEV, O_RDWR | O_CLOEXEC);
	ASSERT_LE(0, fd) TH_LOG(MIRROR_DEV ": %s", strerror(errno));
	EXPECT_EQ(0, mirror_check(fd, 8, 7, why, sizeof(why)))
		TH_LOG(MIRROR_DEV " after the fuzzing: %s", why);
	close(fd);
	for (i = 0; i < devs->n[K_MISC]; i++) {
		snprintf(file, sizeof(file), "dev%d/counters", devs->id[i]);
		stale = sim_counter(file, "stale_translations");
		if (stale < 0)
			TH_LOG("no debugfs %s: stale translations not checked", file);
		else
			EXPECT_EQ(0, stale)
				TH_LOG("rsva_sim%d used a stale IOTLB entry", devs->id[i]);
		prq_sanity(_metadata, file, devs->id[i]);
	}
}

/*
 * One request of the bystander on file @i of its own (reopened every 16
 * rounds): a checked copy on an accelerator, a checked read on the mirror.
 */
static int bystander_one(const struct devs *devs, int kind, int dev, int *fd,
			 unsigned long round, char *why, size_t n)
{
	if (*fd >= 0 && round % 16 == 15) {
		close(*fd);
		*fd = -1;
	}
	if (*fd < 0)
		*fd = open_ready(devs->path[kind][dev], kind == K_UACCE, why, n);
	if (*fd < 0)
		return -1;
	if (kind == K_MIRROR)
		return mirror_check(*fd, 1 + round % 8, round, why, n);
	return copy_check(*fd, 2 * PAGE + 64 + round % 64, round * 31 + dev, why, n);
}

/*
 * The bystander: its own files on every accelerator (misc and uacce) and on
 * the mirror, and checked requests on each, round after round, until the
 * fuzzer is done. Every error is counted.
 */
static void __noreturn run_bystander(struct __test_metadata *_metadata,
						const struct devs *devs, struct shm *shm)
{
	int fds[NR_KINDS][MAX_ACCEL], k, i, last;
	unsigned long round = 0;
	char why[160];

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	alarm(FUZZ_ALARM + 60);
	memset(fds, -1, sizeof(fds));
	/* The last round starts once the fuzzer is done. */
	do {
		last = __atomic_load_n(&shm->stop, __ATOMIC_ACQUIRE);
		for (k = 0; k < NR_KINDS; k++) {
			for (i = 0; i < devs->n[k]; i++) {
				if (!bystander_one(devs, k, i, &fds[k][i], round, why, sizeof(why)))
					continue;
				if (++shm->errors <= 10)
					TH_LOG("bystander, round %lu, %s: %s", round,
					       devs->path[k][i], why);
			}
		}
		__atomic_store_n(&shm->rounds, ++round, __ATOMIC_RELEASE);
	} while (!last);
	_exit(0);
}

/* --- the tests -------------------------------------------------------------- */

static int cmp_path(const void *a, const void *b)
{
	return strcmp(a, b);
}

static void find_devices(struct devs *d)
{
	struct dirent *e;
	char path[64];
	DIR *dir;
	int i;

	memset(d, 0, sizeof(*d));
	for (i = 0; i < MAX_ACCEL; i++) {
		snprintf(path, sizeof(path), ACCEL_DEV, i);
		if (access(path, F_OK))
			continue;
		d->id[d->n[K_MISC]] = i;
		snprintf(d->path[K_MISC][d->n[K_MISC]++], sizeof(d->path[0][0]), "%s", path);
	}
	/* uacce's class names the nodes after the interface: rsva_accel-<id>. */
	dir = opendir("/dev");
	while (dir && (e = readdir(dir)) && d->n[K_UACCE] < MAX_ACCEL)
		if (!strncmp(e->d_name, "rsva_accel-", 11))
			snprintf(d->path[K_UACCE][d->n[K_UACCE]++], sizeof(d->path[0][0]),
				 "/dev/%.40s", e->d_name);
	if (dir)
		closedir(dir);
	/* The same order on every run, for the replays. */
	qsort(d->path[K_UACCE], d->n[K_UACCE], sizeof(d->path[0][0]), cmp_path);
	if (!access(MIRROR_DEV, F_OK))
		snprintf(d->path[K_MIRROR][d->n[K_MIRROR]++], sizeof(d->path[0][0]), MIRROR_DEV);
}

static struct cfg fuzz_cfg(struct __test_metadata *_metadata)
{
	const char *seed = getenv("RSVA_FUZZ_SEED"), *iters = getenv("RSVA_FUZZ_ITERS");
	struct cfg c = { .iters = FUZZ_ITERS };
	struct timespec ts;

	if (seed && *seed) {
		c.seed = strtoull(seed, NULL, 0);
	} else {
		clock_gettime(CLOCK_REALTIME, &ts);
		c.seed = splitmix(ts.tv_sec * 1000000000ULL + ts.tv_nsec) ^
			 (__u64)getpid() << 32;
	}
	if (iters && strtoul(iters, NULL, 0))
		c.iters = strtoul(iters, NULL, 0);
	snprintf(replay, sizeof(replay),
		 "replay: RSVA_FUZZ_SEED=0x%llx RSVA_FUZZ_ITERS=%lu /tests/rsva_fuzz_test -t %s",
		 c.seed, c.iters, _metadata->name);
	TH_LOG("seed=0x%llx (%s)", c.seed, replay);
	return c;
}

FIXTURE(fuzz) {
	struct devs devs;
	struct cfg cfg;
	struct shm *shm;
};

FIXTURE_SETUP(fuzz)
{
	find_devices(&self->devs);
	/* The devices are always there in the test VM: missing is a failure. */
	ASSERT_LT(0, self->devs.n[K_UACCE])
		TH_LOG("no /dev/rsva_accel-N: uacce or rsva_sim is not loaded (not a skip)");
	ASSERT_LT(0, self->devs.n[K_MISC])
		TH_LOG("no /dev/rsva_accelN: rsva_sim is not loaded (not a skip)");
	ASSERT_LT(0, self->devs.n[K_MIRROR])
		TH_LOG("no " MIRROR_DEV ": rsva is not loaded (not a skip)");
	self->shm = mmap(NULL, sizeof(*self->shm), PROT_READ | PROT_WRITE,
			 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, self->shm);
	self->cfg = fuzz_cfg(_metadata);
}

FIXTURE_TEARDOWN(fuzz)
{
	if (self->shm && self->shm != MAP_FAILED)
		munmap(self->shm, sizeof(*self->shm));
}

TEST_F_TIMEOUT(fuzz, accel_random_ioctls, FUZZ_TIMEOUT)
{
	run_fuzz(_metadata, &self->devs, &self->cfg, FZ_ACCEL, self->shm);
	sanity(_metadata, &self->devs);
}

TEST_F_TIMEOUT(fuzz, mirror_random_ioctls, FUZZ_TIMEOUT)
{
	run_fuzz(_metadata, &self->devs, &self->cfg, FZ_MIRROR, self->shm);
	sanity(_metadata, &self->devs);
}

TEST_F_TIMEOUT(fuzz, mixed_sequences_with_fork_and_kill, FUZZ_TIMEOUT)
{
	run_fuzz(_metadata, &self->devs, &self->cfg, FZ_MIXED, self->shm);
	sanity(_metadata, &self->devs);
}

TEST_F_TIMEOUT(fuzz, fuzz_does_not_disturb_a_bystander, FUZZ_TIMEOUT)
{
	struct shm *shm = self->shm;
	int st, i;
	pid_t by;

	fflush(NULL);
	by = fork();
	ASSERT_LE(0, by);
	if (!by)
		run_bystander(_metadata, &self->devs, shm);
	/* The bystander is bound and working before the fuzzing starts. */
	for (i = 0; i < 3000 && !__atomic_load_n(&shm->rounds, __ATOMIC_ACQUIRE); i++)
		usleep(10000);
	EXPECT_LT(0, shm->rounds) TH_LOG("the bystander did not get through a round");
	run_fuzz(_metadata, &self->devs, &self->cfg, FZ_BYSTANDER, shm);
	__atomic_store_n(&shm->stop, 1, __ATOMIC_RELEASE);
	ASSERT_EQ(by, waitpid(by, &st, 0));
	EXPECT_TRUE(WIFEXITED(st) && !WEXITSTATUS(st))
		TH_LOG("the bystander died (signal %d)", WIFSIGNALED(st) ? WTERMSIG(st) : 0);
	TH_LOG("bystander: %lu rounds, %lu errors", shm->rounds, shm->errors);
	EXPECT_EQ(0, shm->errors) TH_LOG("the fuzzer disturbed another process");
	EXPECT_LE(2, shm->rounds) TH_LOG("the bystander ran before and after, at least");
	sanity(_metadata, &self->devs);
}

TEST_HARNESS_MAIN
