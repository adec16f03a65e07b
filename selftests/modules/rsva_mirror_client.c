// SPDX-License-Identifier: GPL-2.0
/*
 * A C driver's use of rsva's HMM mirror API (rsva_mirror_register(),
 * rsva_mirror_fault(), rsva_mirror_unregister()), as KUnit suite
 * rsva_c_mirror: good and bad input, the hooks, two drivers on one mm, and
 * a mirror outliving its mm.
 */
#include <kunit/test.h>
#include <linux/err.h>
#include <linux/errno.h>
#include <linux/completion.h>
#include <linux/hmm.h>
#include <linux/kthread.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/sched/mm.h>
#include <linux/spinlock.h>
#include <rsva.h>
#include <rsva_test.h>

MODULE_IMPORT_NS("EXPORTED_FOR_KUNIT_TESTING");

#define NPAGES 16

/* What a driver's hooks saw. */
struct seen {
	spinlock_t lock;	/* the hooks run concurrently with the test */
	unsigned int invalidations;
	unsigned long inv_start, inv_end;
	unsigned int updates;
	unsigned long upd_start, upd_npages;
	unsigned long pfns[NPAGES];
};

static void seen_invalidate(void *priv, unsigned long start, unsigned long end)
{
	struct seen *s = priv;

	spin_lock(&s->lock);
	s->invalidations++;
	s->inv_start = start;
	s->inv_end = end;
	spin_unlock(&s->lock);
}

static void seen_update(void *priv, unsigned long start,
			const unsigned long *hmm_pfns, unsigned long npages)
{
	struct seen *s = priv;

	spin_lock(&s->lock);
	s->updates++;
	s->upd_start = start;
	s->upd_npages = npages;
	memcpy(s->pfns, hmm_pfns, min(npages, NPAGES) * sizeof(*hmm_pfns));
	spin_unlock(&s->lock);
}

static const struct rsva_mirror_ops seen_ops = {
	.invalidate = seen_invalidate,
	.update = seen_update,
};

/* Per-test state: an address space with NPAGES touched pages. */
struct mirror_ctx {
	struct mm_struct *mm;
	unsigned long addr;
	struct seen a, b;
	unsigned long pfns[NPAGES];
};

static int mirror_init(struct kunit *test)
{
	struct mirror_ctx *c = kunit_kzalloc(test, sizeof(*c), GFP_KERNEL);

	KUNIT_ASSERT_NOT_NULL(test, c);
	spin_lock_init(&c->a.lock);
	spin_lock_init(&c->b.lock);
	c->mm = mm_alloc();
	KUNIT_ASSERT_NOT_NULL(test, c->mm);
	/* Kept for tests that let the address space exit. */
	mmgrab(c->mm);
	test->priv = c;
	c->addr = rsva_test_mmap(c->mm, NPAGES * PAGE_SIZE, true);
	KUNIT_ASSERT_FALSE(test, IS_ERR_VALUE(c->addr));
	return 0;
}

static void mirror_exit(struct kunit *test)
{
	struct mirror_ctx *c = test->priv;

	if (mmget_not_zero(c->mm)) {
		mmput(c->mm);
		mmput(c->mm);
	}
	mmdrop(c->mm);
}

static unsigned int invalidations(struct seen *s)
{
	unsigned int n;

	spin_lock(&s->lock);
	n = s->invalidations;
	spin_unlock(&s->lock);
	return n;
}

/* Every argument is checked; a bad call changes nothing. */
static void rsva_mirror_client_bad_input(struct kunit *test)
{
	static const struct rsva_mirror_ops no_invalidate = { .update = seen_update };
	struct mirror_ctx *c = test->priv;
	struct rsva_mirror *m, *dead_m;
	struct mm_struct *dead;
	unsigned long top = ULONG_MAX & PAGE_MASK;
	int foreign;

	KUNIT_EXPECT_EQ(test, PTR_ERR(rsva_mirror_register(NULL, &seen_ops, NULL)), -EINVAL);
	KUNIT_EXPECT_EQ(test, PTR_ERR(rsva_mirror_register(c->mm, NULL, NULL)), -EINVAL);
	KUNIT_EXPECT_EQ(test, PTR_ERR(rsva_mirror_register(c->mm, &no_invalidate, NULL)),
			-EINVAL);
	/* An mm without users: its memory is held, its address space gone. */
	dead = mm_alloc();
	KUNIT_ASSERT_NOT_NULL(test, dead);
	mmgrab(dead);
	mmput(dead);
	dead_m = rsva_mirror_register(dead, &seen_ops, &c->a);
	KUNIT_EXPECT_EQ(test, PTR_ERR(dead_m), -ESRCH);
	mmdrop(dead);

	KUNIT_EXPECT_EQ(test, rsva_mirror_unregister(NULL), -EINVAL);
	KUNIT_EXPECT_EQ(test, rsva_mirror_unregister((struct rsva_mirror *)&foreign), -ENOENT);
	KUNIT_EXPECT_EQ(test, rsva_mirror_fault(NULL, c->addr, 1, 0, c->pfns), -EINVAL);
	KUNIT_EXPECT_EQ(test, rsva_mirror_fault((struct rsva_mirror *)&foreign, c->addr, 1, 0,
						c->pfns), -ENOENT);

	m = rsva_mirror_register(c->mm, &seen_ops, &c->a);
	KUNIT_ASSERT_FALSE(test, IS_ERR(m));
	KUNIT_EXPECT_EQ(test, rsva_mirror_fault(m, c->addr + 1, 1, 0, c->pfns), -EINVAL);
	KUNIT_EXPECT_EQ(test, rsva_mirror_fault(m, c->addr, 0, 0, c->pfns), -EINVAL);
	KUNIT_EXPECT_EQ(test, rsva_mirror_fault(m, c->addr, 1, 0, NULL), -EINVAL);
	KUNIT_EXPECT_EQ(test, rsva_mirror_fault(m, c->addr, 1,
						RSVA_MIRROR_WRITE | RSVA_MIRROR_SNAPSHOT,
						c->pfns), -EINVAL);
	KUNIT_EXPECT_EQ(test, rsva_mirror_fault(m, c->addr, 1, 0x4, c->pfns), -EINVAL);
	KUNIT_EXPECT_EQ(test, rsva_mirror_fault(m, top, 2, 0, c->pfns), -EINVAL);
	KUNIT_EXPECT_EQ(test, c->a.updates, 0U);
	/* Still usable after the bad calls. */
	KUNIT_EXPECT_EQ(test, rsva_mirror_fault(m, c->addr, NPAGES, 0, c->pfns), 0);
	KUNIT_EXPECT_EQ(test, c->a.updates, 1U);

	KUNIT_EXPECT_EQ(test, rsva_mirror_unregister(m), 0);
	KUNIT_EXPECT_EQ(test, rsva_mirror_unregister(m), -ENOENT);
	KUNIT_EXPECT_EQ(test, rsva_mirror_fault(m, c->addr, 1, 0, c->pfns), -ENOENT);
}

/*
 * A fault hands the entries to @update; an munmap calls @invalidate with
 * the range, and then faulting the hole fails where a snapshot reports it.
 */
static void rsva_mirror_client_fault_and_invalidate(struct kunit *test)
{
	struct mirror_ctx *c = test->priv;
	unsigned long hole = c->addr + 4 * PAGE_SIZE;
	struct rsva_mirror *m;
	unsigned int i, before;

	m = rsva_mirror_register(c->mm, &seen_ops, &c->a);
	KUNIT_ASSERT_FALSE(test, IS_ERR(m));
	KUNIT_ASSERT_EQ(test, rsva_mirror_fault(m, c->addr, NPAGES, RSVA_MIRROR_WRITE,
						c->pfns), 0);
	KUNIT_EXPECT_EQ(test, c->a.updates, 1U);
	KUNIT_EXPECT_EQ(test, c->a.upd_start, c->addr);
	KUNIT_EXPECT_EQ(test, c->a.upd_npages, (unsigned long)NPAGES);
	for (i = 0; i < NPAGES; i++) {
		KUNIT_EXPECT_TRUE(test, c->a.pfns[i] & HMM_PFN_VALID);
		KUNIT_EXPECT_TRUE(test, c->a.pfns[i] & HMM_PFN_WRITE);
		KUNIT_EXPECT_EQ(test, c->a.pfns[i], c->pfns[i]);
	}

	before = invalidations(&c->a);
	rsva_test_munmap(c->mm, hole, 4 * PAGE_SIZE);
	KUNIT_EXPECT_GT(test, invalidations(&c->a), before);
	KUNIT_EXPECT_LE(test, c->a.inv_start, hole);
	KUNIT_EXPECT_GE(test, c->a.inv_end, hole + 4 * PAGE_SIZE);

	KUNIT_EXPECT_EQ(test, rsva_mirror_fault(m, c->addr, NPAGES, 0, c->pfns), -EFAULT);
	KUNIT_EXPECT_EQ(test, c->a.updates, 1U);
	KUNIT_ASSERT_EQ(test, rsva_mirror_fault(m, c->addr, NPAGES, RSVA_MIRROR_SNAPSHOT,
						c->pfns), 0);
	for (i = 0; i < NPAGES; i++) {
		bool in_hole = i >= 4 && i < 8;

		KUNIT_EXPECT_EQ(test, !!(c->pfns[i] & HMM_PFN_ERROR), in_hole);
		KUNIT_EXPECT_EQ(test, !!(c->pfns[i] & HMM_PFN_VALID), !in_hole);
	}
	KUNIT_EXPECT_EQ(test, rsva_mirror_unregister(m), 0);
}

/*
 * Two drivers on one mm share its mirror: both are told of an
 * invalidation; once one unregistered, only the other is.
 */
static void rsva_mirror_client_two_drivers(struct kunit *test)
{
	struct mirror_ctx *c = test->priv;
	struct rsva_mirror *ma, *mb;
	unsigned int a0, b0;

	ma = rsva_mirror_register(c->mm, &seen_ops, &c->a);
	KUNIT_ASSERT_FALSE(test, IS_ERR(ma));
	mb = rsva_mirror_register(c->mm, &seen_ops, &c->b);
	KUNIT_ASSERT_FALSE(test, IS_ERR(mb));
	KUNIT_EXPECT_PTR_NE(test, ma, mb);

	KUNIT_EXPECT_EQ(test, rsva_mirror_fault(mb, c->addr, NPAGES, 0, c->pfns), 0);
	KUNIT_EXPECT_EQ(test, c->a.updates, 0U);
	KUNIT_EXPECT_EQ(test, c->b.updates, 1U);

	a0 = invalidations(&c->a);
	b0 = invalidations(&c->b);
	rsva_test_munmap(c->mm, c->addr, PAGE_SIZE);
	KUNIT_EXPECT_GT(test, invalidations(&c->a), a0);
	KUNIT_EXPECT_GT(test, invalidations(&c->b), b0);

	KUNIT_EXPECT_EQ(test, rsva_mirror_unregister(ma), 0);
	a0 = invalidations(&c->a);
	b0 = invalidations(&c->b);
	rsva_test_munmap(c->mm, c->addr + PAGE_SIZE, PAGE_SIZE);
	KUNIT_EXPECT_EQ(test, invalidations(&c->a), a0);
	KUNIT_EXPECT_GT(test, invalidations(&c->b), b0);
	KUNIT_EXPECT_EQ(test, rsva_mirror_unregister(mb), 0);
}

/*
 * The mirror outlives its mm: exit_mmap invalidates everything, faults
 * then answer -EFAULT, and unregistering afterwards is safe.
 */
static void rsva_mirror_client_outlives_mm(struct kunit *test)
{
	struct mirror_ctx *c = test->priv;
	struct rsva_mirror *m;
	unsigned int before;

	m = rsva_mirror_register(c->mm, &seen_ops, &c->a);
	KUNIT_ASSERT_FALSE(test, IS_ERR(m));
	KUNIT_EXPECT_EQ(test, rsva_mirror_fault(m, c->addr, NPAGES, 0, c->pfns), 0);
	before = invalidations(&c->a);
	/* The last user: exit_mmap runs now; our mmgrab keeps the memory. */
	mmput(c->mm);
	KUNIT_EXPECT_GT(test, invalidations(&c->a), before);
	KUNIT_EXPECT_LE(test, c->a.inv_start, c->addr);
	KUNIT_EXPECT_GE(test, c->a.inv_end, c->addr + NPAGES * PAGE_SIZE);
	KUNIT_EXPECT_EQ(test, rsva_mirror_fault(m, c->addr, NPAGES, 0, c->pfns), -EFAULT);
	KUNIT_EXPECT_EQ(test, rsva_mirror_fault(m, c->addr, 1, RSVA_MIRROR_SNAPSHOT,
						c->pfns), -EFAULT);
	KUNIT_EXPECT_EQ(test, rsva_mirror_unregister(m), 0);
	/* A new registration on the exited mm is refused. */
	KUNIT_EXPECT_EQ(test, PTR_ERR(rsva_mirror_register(c->mm, &seen_ops, &c->a)), -ESRCH);
}

#define RACERS 8

struct racer {
	struct mirror_ctx *c;
	struct completion *go;
	struct completion done;
	struct rsva_mirror *m;
	unsigned int churn;	/* register/fault/unregister cycles, or 0 */
	unsigned int fails;
};

static int racer_fn(void *arg)
{
	struct racer *r = arg;
	unsigned long pfns[NPAGES];
	unsigned int i;

	wait_for_completion(r->go);
	if (!r->churn) {
		r->m = rsva_mirror_register(r->c->mm, &seen_ops, &r->c->a);
	} else {
		for (i = 0; i < r->churn; i++) {
			struct rsva_mirror *m = rsva_mirror_register(r->c->mm, &seen_ops,
								     &r->c->a);

			if (IS_ERR(m)) {
				r->fails++;
				continue;
			}
			r->fails += rsva_mirror_fault(m, r->c->addr, NPAGES, 0, pfns) != 0;
			r->fails += !(pfns[NPAGES - 1] & HMM_PFN_VALID);
			r->fails += rsva_mirror_unregister(m) != 0;
		}
	}
	complete(&r->done);
	return 0;
}

/* Starts RACERS threads on @r at once and waits for them. */
static void race(struct kunit *test, struct racer *r, unsigned int churn)
{
	struct mirror_ctx *c = test->priv;
	DECLARE_COMPLETION_ONSTACK(go);
	unsigned int i;

	for (i = 0; i < RACERS; i++) {
		r[i] = (struct racer){ .c = c, .go = &go, .churn = churn };
		init_completion(&r[i].done);
		KUNIT_ASSERT_FALSE(test, IS_ERR(kthread_run(racer_fn, &r[i], "rsva_racer%u", i)));
	}
	complete_all(&go);
	for (i = 0; i < RACERS; i++)
		wait_for_completion(&r[i].done);
}

/*
 * Registrations on one mm racing each other always end in one valid
 * shared mirror with a client each, never in an error or a second mirror;
 * registrations racing unregistrations (the last client's teardown) too.
 */
static void rsva_mirror_client_concurrent_registrations(struct kunit *test)
{
	struct racer *r = kunit_kcalloc(test, RACERS, sizeof(*r), GFP_KERNEL);
	unsigned long clients0, clients, mirrors0 = rsva_test_mirrors(&clients0);
	unsigned int round, i, shared = 0;

	KUNIT_ASSERT_NOT_NULL(test, r);
	for (round = 0; round < 10; round++) {
		race(test, r, 0);
		for (i = 0; i < RACERS; i++)
			KUNIT_ASSERT_FALSE(test, IS_ERR(r[i].m));
		shared += rsva_test_mirrors(&clients) == mirrors0 + 1 &&
			  clients == clients0 + RACERS;
		for (i = 0; i < RACERS; i++)
			KUNIT_EXPECT_EQ(test, rsva_mirror_unregister(r[i].m), 0);
		KUNIT_EXPECT_EQ(test, rsva_test_mirrors(&clients), mirrors0);
	}
	KUNIT_EXPECT_EQ(test, shared, 10U);

	race(test, r, 200);
	for (i = 0; i < RACERS; i++)
		KUNIT_EXPECT_EQ(test, r[i].fails, 0U);
	KUNIT_EXPECT_EQ(test, rsva_test_mirrors(&clients), mirrors0);
	KUNIT_EXPECT_EQ(test, clients, clients0);
}

static struct kunit_case rsva_mirror_client_cases[] = {
	KUNIT_CASE(rsva_mirror_client_bad_input),
	KUNIT_CASE(rsva_mirror_client_fault_and_invalidate),
	KUNIT_CASE(rsva_mirror_client_two_drivers),
	KUNIT_CASE(rsva_mirror_client_outlives_mm),
	KUNIT_CASE(rsva_mirror_client_concurrent_registrations),
	{}
};

static struct kunit_suite rsva_mirror_client_suite = {
	.name = "rsva_c_mirror",
	.init = mirror_init,
	.exit = mirror_exit,
	.test_cases = rsva_mirror_client_cases,
};

kunit_test_suite(rsva_mirror_client_suite);

MODULE_DESCRIPTION("rsva: a C driver's HMM mirror, as KUnit tests");
MODULE_LICENSE("GPL");
