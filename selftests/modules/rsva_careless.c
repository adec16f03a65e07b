// SPDX-License-Identifier: GPL-2.0
/*
 * rsva_careless: a C module that calls every function of include/rsva.h the
 * way a careless driver would: NULL, ERR_PTR(), foreign pointers, stale and
 * released handles, twice in a row, from kthreads with and without an mm,
 * from several kthreads at once, from a softirq, and from inside rsva's own
 * callbacks (a bond's stop, a mirror's invalidate and update). Its KUnit
 * suite runs when it is loaded; every case checks the errno rsva.h
 * documents, and a KASAN report, a lockdep splat, a WARN or a hang turns the
 * run red.
 *
 * debugfs rsva_careless/claims keeps device claims for the unload test of
 * vm/check-plan.sh (review finding 12): "claim N" claims rsva_sim device N
 * through rsva without keeping a reference to it (so the device may go
 * away claimed), "release N" releases that claim; the claims left are not
 * released at module exit, on purpose: rsva keeps them until its unload.
 * "late N" claims device N through rsva while it is being removed: from
 * its bus's BUS_NOTIFY_DEL_DEVICE, after rsva's own notifier (registered
 * by the bus's first claim through rsva), while the device is still in its
 * IOMMU group; rsva_careless/late reads the claim's errno, which must be
 * -ENODEV. A claim that passed would be released, at module exit, on a
 * device that left its group.
 */
#include <kunit/test.h>
#include <linux/capability.h>
#include <linux/completion.h>
#include <linux/debugfs.h>
#include <linux/device.h>
#include <linux/err.h>
#include <linux/errno.h>
#include <linux/iommu.h>
#include <linux/jiffies.h>
#include <linux/kthread.h>
#include <linux/mm.h>
#include <linux/mmu_context.h>
#include <linux/module.h>
#include <linux/sched/mm.h>
#include <linux/slab.h>
#include <linux/timer.h>
#include <linux/uaccess.h>
#include <rsva.h>
#include <rsva_sim.h>
#include <rsva_test.h>

/* mm_alloc() and rsva_test_*() are exported for KUnit only. */
MODULE_IMPORT_NS("EXPORTED_FOR_KUNIT_TESTING");

/* Pointers no caller should pass, but careless ones do: NULL, ERR_PTR()s. */
static void * const careless_bad[] = {
	NULL, (void *)(long)-ENOMEM, (void *)(long)-EINVAL, (void *)(long)-MAX_ERRNO,
};

/*
 * rsva_sim's functions, through symbol_get(): calling them directly would
 * keep rsva_sim loaded as long as this module, and the unload test removes
 * rsva_sim's devices while this module has them claimed.
 */
static struct device *careless_sim_device(unsigned int id)
{
	struct device *(*get)(unsigned int id) = symbol_get(rsva_sim_get_device);
	struct device *dev;

	if (!get)
		return NULL;
	dev = get(id);
	symbol_put(rsva_sim_get_device);
	return dev;
}

static int careless_sim_pasid_state(struct device *dev, u32 pasid)
{
	int (*state)(struct device *dev, u32 pasid) = symbol_get(rsva_sim_pasid_state);
	int ret;

	if (!state)
		return -ENODEV;
	ret = state(dev, pasid);
	symbol_put(rsva_sim_pasid_state);
	return ret;
}

struct careless_ctx {
	struct device *dev0;
	struct device *dev1;
	struct mm_struct *mm;
};

static int careless_init(struct kunit *test)
{
	struct careless_ctx *c = kunit_kzalloc(test, sizeof(*c), GFP_KERNEL);

	KUNIT_ASSERT_NOT_NULL(test, c);
	c->dev0 = careless_sim_device(0);
	c->dev1 = careless_sim_device(1);
	KUNIT_ASSERT_NOT_NULL(test, c->dev0);
	KUNIT_ASSERT_NOT_NULL(test, c->dev1);
	c->mm = mm_alloc();
	KUNIT_ASSERT_NOT_NULL(test, c->mm);
	KUNIT_ASSERT_TRUE(test, rsva_sva_serving());
	test->priv = c;
	return 0;
}

static void careless_exit(struct kunit *test)
{
	struct careless_ctx *c = test->priv;

	if (c->mm)
		mmput(c->mm);
	put_device(c->dev1);
	put_device(c->dev0);
}

static void careless_stop_nop(struct rsva_sva *handle, void *data)
{
}

/* The SVA functions with NULL and ERR_PTR() in each pointer argument. */
static void careless_sva_bad_pointers(struct kunit *test)
{
	struct careless_ctx *c = test->priv;
	int i;

	for (i = 0; i < ARRAY_SIZE(careless_bad); i++) {
		void *bad = careless_bad[i];

		KUNIT_EXPECT_EQ(test, PTR_ERR(rsva_sva_bind_device(bad, c->mm)), -EINVAL);
		KUNIT_EXPECT_EQ(test, PTR_ERR(rsva_sva_bind_device(c->dev0, bad)), -EINVAL);
		KUNIT_EXPECT_EQ(test, PTR_ERR(rsva_sva_bind_device_stop(bad, c->mm,
									careless_stop_nop, NULL)),
				-EINVAL);
		KUNIT_EXPECT_EQ(test, PTR_ERR(rsva_sva_bind_device_stop(c->dev0, bad,
									careless_stop_nop, NULL)),
				-EINVAL);
		KUNIT_EXPECT_EQ(test, PTR_ERR(rsva_sva_bind_current(bad)), -EINVAL);
		KUNIT_EXPECT_EQ(test, rsva_sva_unbind_device(bad), -EINVAL);
		KUNIT_EXPECT_EQ(test, rsva_sva_get_pasid(bad), IOMMU_PASID_INVALID);
	}
	KUNIT_EXPECT_EQ(test, PTR_ERR(rsva_sva_bind_device_stop(c->dev0, c->mm, NULL, NULL)),
			-EINVAL);
	KUNIT_EXPECT_EQ(test, PTR_ERR(rsva_sva_bind_device_stop(c->dev0, c->mm,
								(rsva_sva_stop_t)ERR_PTR(-ENOMEM),
								NULL)),
			-EINVAL);
	KUNIT_EXPECT_EQ(test, PTR_ERR(rsva_pasid_get_mm(0)), -EINVAL);
	KUNIT_EXPECT_EQ(test, PTR_ERR(rsva_pasid_get_mm(RSVA_PASID_MAX + 1)), -EINVAL);
	KUNIT_EXPECT_EQ(test, PTR_ERR(rsva_pasid_get_mm(U32_MAX)), -EINVAL);
	KUNIT_EXPECT_EQ(test, rsva_pasid_range_check(0, 0), -EINVAL);
	/* Nothing was bound by any of them. */
	KUNIT_EXPECT_EQ(test, careless_sim_pasid_state(c->dev0, 1), -ENOENT);
}

/*
 * Foreign pointers (real kernel objects that are not rsva's handles),
 * stale handles, double unbinds, a device without group, a dead mm.
 */
static void careless_sva_foreign_and_stale(struct kunit *test)
{
	struct careless_ctx *c = test->priv;
	struct rsva_sva *h, *h2;
	struct iommu_sva *foreign, *core;
	struct mm_struct *dead;
	struct device *nogroup;
	u32 pasid;

	/* A real iommu_sva that rsva did not make, naming a real device. */
	foreign = kunit_kzalloc(test, sizeof(*foreign), GFP_KERNEL);
	KUNIT_ASSERT_NOT_NULL(test, foreign);
	foreign->dev = c->dev0;
	KUNIT_EXPECT_EQ(test, rsva_sva_unbind_device((struct rsva_sva *)foreign), -ENOENT);
	KUNIT_EXPECT_EQ(test, rsva_sva_get_pasid((struct rsva_sva *)foreign), IOMMU_PASID_INVALID);
	/* Other objects passed as a handle, and odd values never handed out. */
	KUNIT_EXPECT_EQ(test, rsva_sva_unbind_device((struct rsva_sva *)c->mm), -ENOENT);
	KUNIT_EXPECT_EQ(test, rsva_sva_unbind_device((struct rsva_sva *)c->dev0), -ENOENT);
	KUNIT_EXPECT_EQ(test, rsva_sva_get_pasid((struct rsva_sva *)c->dev0),
			IOMMU_PASID_INVALID);
	KUNIT_EXPECT_EQ(test, rsva_sva_unbind_device((struct rsva_sva *)(LONG_MAX - 4)),
			-ENOENT);
	KUNIT_EXPECT_EQ(test, rsva_sva_get_pasid((struct rsva_sva *)(LONG_MAX - 2)),
			IOMMU_PASID_INVALID);

	/* Two binds, two unbinds, then the handle is stale. */
	h = rsva_sva_bind_device(c->dev0, c->mm);
	KUNIT_ASSERT_FALSE(test, IS_ERR(h));
	h2 = rsva_sva_bind_device(c->dev0, c->mm);
	KUNIT_EXPECT_PTR_EQ(test, h, h2);
	pasid = rsva_sva_get_pasid(h);
	KUNIT_EXPECT_EQ(test, rsva_sva_unbind_device(h), 0);
	KUNIT_EXPECT_EQ(test, rsva_sva_unbind_device(h), 0);
	KUNIT_EXPECT_EQ(test, rsva_sva_unbind_device(h), -ENOENT);
	KUNIT_EXPECT_EQ(test, rsva_sva_unbind_device(h), -ENOENT);
	KUNIT_EXPECT_EQ(test, rsva_sva_get_pasid(h), IOMMU_PASID_INVALID);
	KUNIT_EXPECT_EQ(test, careless_sim_pasid_state(c->dev0, pasid), -ENOENT);

	/* A handle of the kernel's API is not one of rsva's, live or unbound. */
	core = iommu_sva_bind_device(c->dev0, c->mm);
	KUNIT_ASSERT_FALSE(test, IS_ERR(core));
	KUNIT_EXPECT_EQ(test, rsva_sva_unbind_device((struct rsva_sva *)core), -ENOENT);
	iommu_sva_unbind_device(core);
	KUNIT_EXPECT_EQ(test, rsva_sva_unbind_device((struct rsva_sva *)core), -ENOENT);

	/* A device without IOMMU group, an mm without users. */
	nogroup = root_device_register("rsva_careless_nogroup");
	KUNIT_ASSERT_FALSE(test, IS_ERR(nogroup));
	KUNIT_EXPECT_EQ(test, PTR_ERR(rsva_sva_bind_device(nogroup, c->mm)), -ENODEV);
	root_device_unregister(nogroup);
	dead = mm_alloc();
	KUNIT_ASSERT_NOT_NULL(test, dead);
	mmgrab(dead);
	mmput(dead);
	KUNIT_EXPECT_EQ(test, PTR_ERR(rsva_sva_bind_device(c->dev0, dead)), -ESRCH);
	mmdrop(dead);

	/* The PASID stays with the mm but maps back only while leased. */
	dead = rsva_pasid_get_mm(pasid);
	KUNIT_EXPECT_PTR_EQ(test, dead, c->mm);
	if (!IS_ERR(dead))
		mmdrop(dead);
}

/* The DMA ownership functions with bad pointers, twice, for others. */
static void careless_dma_bad_pointers(struct kunit *test)
{
	static const char a, b;
	struct careless_ctx *c = test->priv;
	struct device *nogroup;
	int i;

	for (i = 0; i < ARRAY_SIZE(careless_bad); i++) {
		void *bad = careless_bad[i];

		KUNIT_EXPECT_EQ(test, rsva_dma_claim_group(bad, &a), -EINVAL);
		KUNIT_EXPECT_EQ(test, rsva_dma_claim_device(bad, &a), -EINVAL);
		KUNIT_EXPECT_EQ(test, rsva_dma_release_group(bad, &a), -EINVAL);
		KUNIT_EXPECT_EQ(test, rsva_dma_release_device(bad, &a), -EINVAL);
		KUNIT_EXPECT_EQ(test, rsva_dma_claimed(bad), -EINVAL);
		KUNIT_EXPECT_EQ(test, rsva_dma_claim_group(c->dev0, bad), -EINVAL);
		KUNIT_EXPECT_EQ(test, rsva_dma_claim_device(c->dev0, bad), -EINVAL);
		KUNIT_EXPECT_EQ(test, rsva_dma_release_group(c->dev0, bad), -EINVAL);
		KUNIT_EXPECT_EQ(test, rsva_dma_release_device(c->dev0, bad), -EINVAL);
	}
	KUNIT_EXPECT_EQ(test, rsva_dma_claimed(c->dev0), 0);

	/* Releases of what was never claimed, by whom did not claim. */
	KUNIT_EXPECT_EQ(test, rsva_dma_release_group(c->dev0, &a), -ENOENT);
	KUNIT_EXPECT_EQ(test, rsva_dma_release_device(c->dev0, &a), -ENOENT);
	KUNIT_ASSERT_EQ(test, rsva_dma_claim_device(c->dev0, &a), 0);
	KUNIT_EXPECT_EQ(test, rsva_dma_release_device(c->dev0, &b), -ENOENT);
	KUNIT_EXPECT_EQ(test, rsva_dma_release_group(c->dev0, &a), -ENOENT);
	KUNIT_EXPECT_EQ(test, rsva_dma_release_device(c->dev1, &a), -ENOENT);
	KUNIT_EXPECT_EQ(test, rsva_dma_claimed(c->dev0), 1);
	KUNIT_EXPECT_EQ(test, rsva_dma_release_device(c->dev0, &a), 0);
	KUNIT_EXPECT_EQ(test, rsva_dma_release_device(c->dev0, &a), -ENOENT);
	KUNIT_ASSERT_EQ(test, rsva_dma_claim_group(c->dev0, &a), 0);
	KUNIT_EXPECT_EQ(test, rsva_dma_claim_group(c->dev0, &a), -EPERM);
	KUNIT_EXPECT_EQ(test, rsva_dma_release_group(c->dev0, &a), 0);
	KUNIT_EXPECT_EQ(test, rsva_dma_release_group(c->dev0, &a), -ENOENT);
	KUNIT_EXPECT_EQ(test, rsva_dma_claimed(c->dev0), 0);

	nogroup = root_device_register("rsva_careless_nogroup");
	KUNIT_ASSERT_FALSE(test, IS_ERR(nogroup));
	KUNIT_EXPECT_EQ(test, rsva_dma_claim_group(nogroup, &a), -ENODEV);
	KUNIT_EXPECT_EQ(test, rsva_dma_claim_device(nogroup, &a), -ENODEV);
	KUNIT_EXPECT_EQ(test, rsva_dma_claimed(nogroup), -ENODEV);
	KUNIT_EXPECT_EQ(test, rsva_dma_release_device(nogroup, &a), -ENOENT);
	root_device_unregister(nogroup);
}

static void careless_invalidate_nop(void *priv, unsigned long start, unsigned long end)
{
}

static const struct rsva_mirror_ops careless_nop_ops = {
	.invalidate = careless_invalidate_nop,
};

/* The mirror functions with bad pointers, foreign and stale handles. */
static void careless_mirror_bad_pointers(struct kunit *test)
{
	struct careless_ctx *c = test->priv;
	struct rsva_mirror_ops no_invalidate = {}, bad_invalidate = {
		.invalidate = (typeof(bad_invalidate.invalidate))ERR_PTR(-ENOMEM),
	}, bad_update = {
		.invalidate = careless_invalidate_nop,
		.update = (typeof(bad_update.update))ERR_PTR(-ENOMEM),
	};
	struct rsva_mirror *m;
	unsigned long pfn, addr;
	struct mm_struct *dead;
	int i;

	addr = rsva_test_mmap(c->mm, PAGE_SIZE, true);
	KUNIT_ASSERT_FALSE(test, IS_ERR_VALUE(addr));
	m = rsva_mirror_register(c->mm, &careless_nop_ops, NULL);
	KUNIT_ASSERT_FALSE(test, IS_ERR(m));
	KUNIT_EXPECT_EQ(test, rsva_mirror_fault(m, addr, 1, 0, &pfn), 0);

	for (i = 0; i < ARRAY_SIZE(careless_bad); i++) {
		void *bad = careless_bad[i];

		KUNIT_EXPECT_EQ(test, PTR_ERR(rsva_mirror_register(bad, &careless_nop_ops,
								   NULL)),
				-EINVAL);
		KUNIT_EXPECT_EQ(test, PTR_ERR(rsva_mirror_register(c->mm, bad, NULL)),
				-EINVAL);
		KUNIT_EXPECT_EQ(test, rsva_mirror_unregister(bad), -EINVAL);
		KUNIT_EXPECT_EQ(test, rsva_mirror_fault(bad, addr, 1, 0, &pfn), -EINVAL);
		KUNIT_EXPECT_EQ(test, rsva_mirror_fault(m, addr, 1, 0, bad), -EINVAL);
	}
	KUNIT_EXPECT_EQ(test, PTR_ERR(rsva_mirror_register(c->mm, &no_invalidate, NULL)),
			-EINVAL);
	KUNIT_EXPECT_EQ(test, PTR_ERR(rsva_mirror_register(c->mm, &bad_invalidate, NULL)),
			-EINVAL);
	KUNIT_EXPECT_EQ(test, PTR_ERR(rsva_mirror_register(c->mm, &bad_update, NULL)),
			-EINVAL);
	dead = mm_alloc();
	KUNIT_ASSERT_NOT_NULL(test, dead);
	mmgrab(dead);
	mmput(dead);
	KUNIT_EXPECT_EQ(test, PTR_ERR(rsva_mirror_register(dead, &careless_nop_ops, NULL)),
			-ESRCH);
	mmdrop(dead);

	/* Foreign objects as handles: never followed. */
	KUNIT_EXPECT_EQ(test, rsva_mirror_unregister((struct rsva_mirror *)c->mm), -ENOENT);
	KUNIT_EXPECT_EQ(test, rsva_mirror_unregister((struct rsva_mirror *)&pfn), -ENOENT);
	KUNIT_EXPECT_EQ(test, rsva_mirror_fault((struct rsva_mirror *)c->dev0, addr, 1, 0, &pfn),
			-ENOENT);

	/* Still registered after all that; then stale. */
	KUNIT_EXPECT_EQ(test, rsva_mirror_fault(m, addr, 1, 0, &pfn), 0);
	KUNIT_EXPECT_EQ(test, rsva_mirror_unregister(m), 0);
	KUNIT_EXPECT_EQ(test, rsva_mirror_unregister(m), -ENOENT);
	KUNIT_EXPECT_EQ(test, rsva_mirror_fault(m, addr, 1, 0, &pfn), -ENOENT);
	rsva_test_munmap(c->mm, addr, PAGE_SIZE);
}

/*
 * The stale handle cases stop looking for a reuse of its address after this
 * long: under KASAN and TCG a round of the SVA case costs about 10 ms, and
 * the KUnit runner waits uninterruptibly, so that the hung task detector
 * (45 s here) would report 4096 rounds without a reuse. Each round checks
 * the stale handle, reused or not.
 */
#define CARELESS_REUSE_SECS	15

/*
 * Review finding 13: a stale mirror handle must stay stale when the freed
 * mirror's memory is reused by a new one. Registers and unregisters until
 * a new mirror has the stale handle's value (an address registry hands out
 * the same address again) or a bound (rounds, time) is reached; the stale handle must
 * unregister nothing, the live one must still work.
 */
static void careless_mirror_stale_handle_reused(struct kunit *test)
{
	struct careless_ctx *c = test->priv;
	struct rsva_mirror *anchor, *stale, *m = NULL;
	unsigned long tries, deadline;

	/* Keeps the mm's shared mirror: each round adds and removes a client. */
	anchor = rsva_mirror_register(c->mm, &careless_nop_ops, NULL);
	KUNIT_ASSERT_FALSE(test, IS_ERR(anchor));
	stale = rsva_mirror_register(c->mm, &careless_nop_ops, NULL);
	KUNIT_ASSERT_FALSE(test, IS_ERR(stale));
	KUNIT_ASSERT_EQ(test, rsva_mirror_unregister(stale), 0);
	/*
	 * KASAN keeps freed objects in a quarantine (1/32 of the memory)
	 * before reuse: push the freed mirror out of it with 96 MiB of frees.
	 */
	for (tries = 0; tries < 24576; tries++)
		kfree(kmalloc(4096, GFP_KERNEL));
	deadline = jiffies + CARELESS_REUSE_SECS * HZ;
	for (tries = 1; tries <= 4096 && time_before(jiffies, deadline); tries++) {
		m = rsva_mirror_register(c->mm, &careless_nop_ops, NULL);
		KUNIT_ASSERT_FALSE(test, IS_ERR(m));
		if (m == stale)
			break;
		KUNIT_ASSERT_EQ(test, rsva_mirror_unregister(m), 0);
		m = NULL;
		cond_resched();
	}
	kunit_info(test, "%s after %lu registrations\n",
		   m ? "the stale handle came back" : "the stale handle never came back",
		   tries);
	KUNIT_EXPECT_EQ(test, rsva_mirror_unregister(stale), -ENOENT);
	if (m)
		KUNIT_EXPECT_EQ(test, rsva_mirror_unregister(m), 0);
	KUNIT_EXPECT_EQ(test, rsva_mirror_unregister(anchor), 0);
	KUNIT_EXPECT_EQ(test, rsva_test_mirrors(NULL), 0UL);
}

/*
 * Review finding 13 for SVA handles: a handle whose last reference is
 * unbound stays dead when the same device and mm are bound again, even
 * when the new bond sits where the old one did (an address registry would
 * take the stale handle for it). First with the bond kept by the kernel's
 * API meanwhile (the same bond, named anew), then across new bonds: binds
 * and unbinds until a new bond's struct iommu_sva (which
 * iommu_sva_bind_device() returns for the same bond) has the old one's
 * address, or a bound (rounds, time) is reached. The stale handle must unbind nothing and
 * read no PASID, the live one must still work.
 */
static void careless_sva_stale_handle_reused(struct kunit *test)
{
	struct careless_ctx *c = test->priv;
	struct rsva_sva *stale, *h = NULL;
	struct iommu_sva *old, *core;
	unsigned long tries, deadline;
	u32 pasid;

	stale = rsva_sva_bind_device(c->dev0, c->mm);
	KUNIT_ASSERT_FALSE(test, IS_ERR(stale));
	pasid = rsva_sva_get_pasid(stale);
	old = iommu_sva_bind_device(c->dev0, c->mm);
	KUNIT_ASSERT_FALSE(test, IS_ERR(old));
	KUNIT_EXPECT_EQ(test, iommu_sva_get_pasid(old), pasid);
	KUNIT_EXPECT_EQ(test, rsva_sva_unbind_device(stale), 0);
	/* The bond lives on (the kernel's reference), its rsva handle not. */
	KUNIT_EXPECT_EQ(test, careless_sim_pasid_state(c->dev0, pasid), 1);
	KUNIT_EXPECT_EQ(test, rsva_sva_get_pasid(stale), IOMMU_PASID_INVALID);
	h = rsva_sva_bind_device(c->dev0, c->mm);
	KUNIT_ASSERT_FALSE(test, IS_ERR(h));
	KUNIT_EXPECT_PTR_NE(test, h, stale);
	KUNIT_EXPECT_EQ(test, rsva_sva_unbind_device(stale), -ENOENT);
	KUNIT_EXPECT_EQ(test, rsva_sva_get_pasid(stale), IOMMU_PASID_INVALID);
	KUNIT_EXPECT_EQ(test, rsva_sva_get_pasid(h), pasid);
	KUNIT_EXPECT_EQ(test, rsva_sva_unbind_device(h), 0);
	iommu_sva_unbind_device(old);
	KUNIT_EXPECT_EQ(test, careless_sim_pasid_state(c->dev0, pasid), -ENOENT);
	h = NULL;

	/* Past KASAN's quarantine, as careless_mirror_stale_handle_reused(). */
	for (tries = 0; tries < 24576; tries++)
		kfree(kmalloc(4096, GFP_KERNEL));
	deadline = jiffies + CARELESS_REUSE_SECS * HZ;
	for (tries = 1; tries <= 4096 && time_before(jiffies, deadline); tries++) {
		h = rsva_sva_bind_device(c->dev0, c->mm);
		KUNIT_ASSERT_FALSE(test, IS_ERR(h));
		KUNIT_EXPECT_PTR_NE(test, h, stale);
		core = iommu_sva_bind_device(c->dev0, c->mm);
		KUNIT_ASSERT_FALSE(test, IS_ERR(core));
		iommu_sva_unbind_device(core);
		if (core == old)
			break;
		KUNIT_ASSERT_EQ(test, rsva_sva_unbind_device(h), 0);
		KUNIT_EXPECT_EQ(test, rsva_sva_get_pasid(stale), IOMMU_PASID_INVALID);
		h = NULL;
		cond_resched();
	}
	kunit_info(test, "%s after %lu binds\n",
		   h ? "a new bond took the stale handle's address" :
		   "no new bond took the stale handle's address", tries);
	KUNIT_EXPECT_EQ(test, rsva_sva_unbind_device(stale), -ENOENT);
	KUNIT_EXPECT_EQ(test, rsva_sva_get_pasid(stale), IOMMU_PASID_INVALID);
	if (h) {
		KUNIT_EXPECT_EQ(test, rsva_sva_get_pasid(h), pasid);
		KUNIT_EXPECT_EQ(test, careless_sim_pasid_state(c->dev0, pasid), 1);
		KUNIT_EXPECT_EQ(test, rsva_sva_unbind_device(h), 0);
		KUNIT_EXPECT_EQ(test, rsva_sva_unbind_device(h), -ENOENT);
	}
	KUNIT_EXPECT_EQ(test, careless_sim_pasid_state(c->dev0, pasid), -ENOENT);
}

/*
 * A kernel thread without an mm (KUnit's) gets -EINVAL from
 * rsva_sva_bind_current(); one under kthread_use_mm() binds the mm it
 * uses, as a user task binds its own.
 */
static void careless_bind_current_in_kthreads(struct kunit *test)
{
	struct careless_ctx *c = test->priv;
	struct mm_struct *found;
	struct rsva_sva *h, *h2;
	u32 pasid;

	KUNIT_ASSERT_NULL(test, current->mm);
	KUNIT_EXPECT_EQ(test, PTR_ERR(rsva_sva_bind_current(c->dev0)), -EINVAL);

	kthread_use_mm(c->mm);
	h = rsva_sva_bind_current(c->dev0);
	kthread_unuse_mm(c->mm);
	KUNIT_ASSERT_FALSE(test, IS_ERR(h));
	/* The same bond as binding the mm by name. */
	h2 = rsva_sva_bind_device(c->dev0, c->mm);
	KUNIT_EXPECT_PTR_EQ(test, h, h2);
	pasid = rsva_sva_get_pasid(h);
	KUNIT_EXPECT_NE(test, pasid, IOMMU_PASID_INVALID);
	KUNIT_EXPECT_EQ(test, careless_sim_pasid_state(c->dev0, pasid), 1);
	found = rsva_pasid_get_mm(pasid);
	KUNIT_EXPECT_PTR_EQ(test, found, c->mm);
	if (!IS_ERR(found))
		mmdrop(found);
	KUNIT_EXPECT_EQ(test, rsva_sva_unbind_device(h2), 0);
	KUNIT_EXPECT_EQ(test, rsva_sva_unbind_device(h), 0);
	KUNIT_EXPECT_EQ(test, rsva_sva_unbind_device(h), -ENOENT);
	/* After kthread_unuse_mm() the thread has no mm again. */
	KUNIT_EXPECT_EQ(test, PTR_ERR(rsva_sva_bind_current(c->dev0)), -EINVAL);
}

/* Several kthreads binding and unbinding at once. */
#define CARELESS_THREADS	4
#define CARELESS_ROUNDS		200

struct careless_worker {
	struct completion done;
	struct device *dev;
	struct mm_struct *mm;
	bool use_mm;
	u32 pasid;
	int errors;
};

static int careless_worker_fn(void *data)
{
	struct careless_worker *w = data;
	struct rsva_sva *h, *h2;
	int i;

	if (w->use_mm)
		kthread_use_mm(w->mm);
	for (i = 0; i < CARELESS_ROUNDS; i++) {
		h = w->use_mm ? rsva_sva_bind_current(w->dev) : rsva_sva_bind_device(w->dev, w->mm);
		if (IS_ERR(h)) {
			w->errors++;
			continue;
		}
		h2 = rsva_sva_bind_device(w->dev, w->mm);
		if (h2 != h)
			w->errors++;
		if (!w->pasid)
			w->pasid = rsva_sva_get_pasid(h);
		else if (rsva_sva_get_pasid(h) != w->pasid)
			w->errors++;
		if (!IS_ERR(h2) && rsva_sva_unbind_device(h2))
			w->errors++;
		if (rsva_sva_unbind_device(h))
			w->errors++;
		cond_resched();
	}
	if (w->use_mm)
		kthread_unuse_mm(w->mm);
	complete(&w->done);
	return 0;
}

static void careless_concurrent_kthreads(struct kunit *test)
{
	struct careless_ctx *c = test->priv;
	struct careless_worker w[CARELESS_THREADS] = {};
	struct mm_struct *own;
	struct task_struct *t;
	struct rsva_sva *keep;
	u32 pasid, own_pasid = 0;
	int i;

	own = mm_alloc();
	KUNIT_ASSERT_NOT_NULL(test, own);
	/* One bond kept across the storm: its count must come out exact. */
	keep = rsva_sva_bind_device(c->dev0, c->mm);
	KUNIT_ASSERT_FALSE(test, IS_ERR(keep));
	pasid = rsva_sva_get_pasid(keep);
	for (i = 0; i < CARELESS_THREADS; i++) {
		init_completion(&w[i].done);
		/* Threads 0-1: dev0 and dev1, the shared mm; 2-3 likewise, 3 its own mm. */
		w[i].dev = i & 1 ? c->dev1 : c->dev0;
		w[i].mm = i == 3 ? own : c->mm;
		w[i].use_mm = i >= 2;
		t = kthread_run(careless_worker_fn, &w[i], "rsva_careless/%d", i);
		if (IS_ERR(t)) {
			KUNIT_FAIL(test, "kthread_run: %ld", PTR_ERR(t));
			complete(&w[i].done);
		}
	}
	for (i = 0; i < CARELESS_THREADS; i++) {
		KUNIT_EXPECT_TRUE(test, wait_for_completion_timeout(&w[i].done, 120 * HZ));
		KUNIT_EXPECT_EQ_MSG(test, w[i].errors, 0, "thread %d", i);
		if (i < 3)
			KUNIT_EXPECT_EQ(test, w[i].pasid, pasid);
		else
			own_pasid = w[i].pasid;
	}
	KUNIT_EXPECT_NE(test, own_pasid, pasid);
	/* Every bind was matched: the kept bond has exactly one user left. */
	KUNIT_EXPECT_EQ(test, careless_sim_pasid_state(c->dev0, pasid), 1);
	KUNIT_EXPECT_EQ(test, careless_sim_pasid_state(c->dev1, pasid), -ENOENT);
	KUNIT_EXPECT_EQ(test, careless_sim_pasid_state(c->dev1, own_pasid), -ENOENT);
	KUNIT_EXPECT_EQ(test, rsva_sva_unbind_device(keep), 0);
	KUNIT_EXPECT_EQ(test, rsva_sva_unbind_device(keep), -ENOENT);
	KUNIT_EXPECT_EQ(test, careless_sim_pasid_state(c->dev0, pasid), -ENOENT);
	mmput(own);
}

/*
 * What a mirror's hooks get from the C API: the functions that do not
 * sleep work; the others answer -EDEADLK instead of sleeping under the
 * mirror's lock (or taking it again).
 */
struct careless_hook_record {
	struct careless_ctx *c;
	struct rsva_sva *sva;
	struct rsva_mirror *self;
	unsigned long addr;
	u32 pasid;
	int calls;
	/* Legal calls, answers expected. */
	int bad_pasid, bad_mm, bad_serving, bad_claimed, bad_range;
	/* Illegal calls: the errno each got. */
	long bind, bind_current, unbind, claim, release, reg, unreg, fault;
};

static void careless_hook_calls(struct careless_hook_record *r)
{
	struct mm_struct *mm;
	unsigned long pfn;

	r->calls++;
	r->bad_pasid += rsva_sva_get_pasid(r->sva) != r->pasid;
	mm = rsva_pasid_get_mm(r->pasid);
	r->bad_mm += mm != r->c->mm;
	if (!IS_ERR(mm))
		mmdrop(mm);
	r->bad_serving += !rsva_sva_serving();
	r->bad_claimed += rsva_dma_claimed(r->c->dev0) != 0;
	r->bad_range += rsva_pasid_range_check(1, 2) != 2;

	r->bind = PTR_ERR(rsva_sva_bind_device(r->c->dev1, r->c->mm));
	r->bind_current = PTR_ERR(rsva_sva_bind_current(r->c->dev1));
	r->unbind = rsva_sva_unbind_device(r->sva);
	r->claim = rsva_dma_claim_device(r->c->dev1, r);
	r->release = rsva_dma_release_device(r->c->dev1, r);
	r->reg = PTR_ERR(rsva_mirror_register(r->c->mm, &careless_nop_ops, NULL));
	r->unreg = rsva_mirror_unregister(r->self);
	r->fault = rsva_mirror_fault(r->self, r->addr, 1, 0, &pfn);
}

static void careless_hook_invalidate(void *priv, unsigned long start, unsigned long end)
{
	careless_hook_calls(priv);
}

static void careless_hook_update(void *priv, unsigned long start,
				 const unsigned long *pfns, unsigned long npages)
{
	careless_hook_calls(priv);
}

static const struct rsva_mirror_ops careless_hook_ops = {
	.invalidate = careless_hook_invalidate,
	.update = careless_hook_update,
};

static void careless_expect_hook_record(struct kunit *test, struct careless_hook_record *r,
					int calls)
{
	KUNIT_EXPECT_EQ(test, r->calls, calls);
	KUNIT_EXPECT_EQ(test, r->bad_pasid, 0);
	KUNIT_EXPECT_EQ(test, r->bad_mm, 0);
	KUNIT_EXPECT_EQ(test, r->bad_serving, 0);
	KUNIT_EXPECT_EQ(test, r->bad_claimed, 0);
	KUNIT_EXPECT_EQ(test, r->bad_range, 0);
	KUNIT_EXPECT_EQ(test, r->bind, -EDEADLK);
	KUNIT_EXPECT_EQ(test, r->bind_current, -EDEADLK);
	KUNIT_EXPECT_EQ(test, r->unbind, -EDEADLK);
	KUNIT_EXPECT_EQ(test, r->claim, -EDEADLK);
	KUNIT_EXPECT_EQ(test, r->release, -EDEADLK);
	KUNIT_EXPECT_EQ(test, r->reg, -EDEADLK);
	KUNIT_EXPECT_EQ(test, r->unreg, -EDEADLK);
	KUNIT_EXPECT_EQ(test, r->fault, -EDEADLK);
}

static void careless_calls_from_mirror_hooks(struct kunit *test)
{
	struct careless_ctx *c = test->priv;
	struct careless_hook_record r = { .c = c };
	unsigned long pfns[2];

	r.addr = rsva_test_mmap(c->mm, 2 * PAGE_SIZE, true);
	KUNIT_ASSERT_FALSE(test, IS_ERR_VALUE(r.addr));
	r.sva = rsva_sva_bind_device(c->dev0, c->mm);
	KUNIT_ASSERT_FALSE(test, IS_ERR(r.sva));
	r.pasid = rsva_sva_get_pasid(r.sva);
	r.self = rsva_mirror_register(c->mm, &careless_hook_ops, &r);
	KUNIT_ASSERT_FALSE(test, IS_ERR(r.self));

	/* update, from rsva_mirror_fault() */
	KUNIT_EXPECT_EQ(test, rsva_mirror_fault(r.self, r.addr, 2, 0, pfns), 0);
	careless_expect_hook_record(test, &r, 1);
	/* invalidate, from munmap */
	rsva_test_munmap(c->mm, r.addr, 2 * PAGE_SIZE);
	KUNIT_EXPECT_GE(test, r.calls, 2);
	careless_expect_hook_record(test, &r, r.calls);

	/* None of the refused calls did anything. */
	KUNIT_EXPECT_EQ(test, careless_sim_pasid_state(c->dev1, r.pasid), -ENOENT);
	KUNIT_EXPECT_EQ(test, rsva_dma_claimed(c->dev1), 0);
	KUNIT_EXPECT_EQ(test, rsva_mirror_unregister(r.self), 0);
	KUNIT_EXPECT_EQ(test, rsva_sva_unbind_device(r.sva), 0);
	KUNIT_EXPECT_EQ(test, rsva_sva_unbind_device(r.sva), -ENOENT);
	KUNIT_EXPECT_EQ(test, rsva_test_mirrors(NULL), 0UL);
}

/* What a stop callback gets from the C API (not its own unbind). */
struct careless_stop_record {
	struct careless_ctx *c;
	int calls;
	u32 pasid_at_bind, pasid;
	struct mm_struct *mm, *fresh;
	long bind_dying, bind_other, mirror_dying;
	bool serving;
};

static void careless_stop(struct rsva_sva *handle, void *data)
{
	struct careless_stop_record *r = data;
	struct rsva_sva *other;
	struct rsva_mirror *m;

	r->calls++;
	r->pasid = rsva_sva_get_pasid(handle);
	r->mm = rsva_pasid_get_mm(r->pasid);
	r->serving = rsva_sva_serving();
	/*
	 * Inside the mm's release rsva binds nothing (-EDEADLK); the dying
	 * mm has no users left: no new mirror.
	 */
	r->bind_dying = PTR_ERR_OR_ZERO(rsva_sva_bind_device(r->c->dev1, r->c->mm));
	m = rsva_mirror_register(r->c->mm, &careless_nop_ops, NULL);
	r->mirror_dying = PTR_ERR_OR_ZERO(m);
	if (!IS_ERR(m))
		rsva_mirror_unregister(m);
	/* Not another mm either. */
	other = rsva_sva_bind_device(r->c->dev1, r->fresh);
	r->bind_other = PTR_ERR_OR_ZERO(other);
	if (!IS_ERR(other))
		r->bind_other = rsva_sva_unbind_device(other);
}

static void careless_calls_from_stop(struct kunit *test)
{
	struct careless_ctx *c = test->priv;
	struct careless_stop_record r = { .c = c };
	struct rsva_sva *h;

	r.fresh = mm_alloc();
	KUNIT_ASSERT_NOT_NULL(test, r.fresh);
	h = rsva_sva_bind_device_stop(c->dev0, c->mm, careless_stop, &r);
	KUNIT_ASSERT_FALSE(test, IS_ERR(h));
	r.pasid_at_bind = rsva_sva_get_pasid(h);
	mmput(c->mm);
	mmput(r.fresh);
	KUNIT_EXPECT_EQ(test, r.calls, 1);
	KUNIT_EXPECT_EQ(test, r.pasid, r.pasid_at_bind);
	KUNIT_EXPECT_PTR_EQ(test, r.mm, c->mm);
	if (!IS_ERR(r.mm))
		mmdrop(r.mm);
	c->mm = NULL;
	KUNIT_EXPECT_TRUE(test, r.serving);
	KUNIT_EXPECT_EQ(test, r.bind_dying, -EDEADLK);
	KUNIT_EXPECT_EQ(test, r.mirror_dying, -ESRCH);
	KUNIT_EXPECT_EQ(test, r.bind_other, -EDEADLK);
	KUNIT_EXPECT_EQ(test, rsva_sva_unbind_device(h), 0);
	KUNIT_EXPECT_EQ(test, rsva_sva_unbind_device(h), -ENOENT);
}

/*
 * Review finding 6: rsva_pasid_get_mm() is documented for any context but
 * hard interrupts. Call it from a softirq (a timer) for a bound mm, with
 * lockdep watching the locks it takes against process context's; -EBUSY
 * (the map's lock was taken) is a documented answer there.
 */
struct careless_softirq {
	struct timer_list timer;
	struct completion done;
	u32 pasid;
	struct mm_struct *mm;
};

static void careless_softirq_fn(struct timer_list *t)
{
	struct careless_softirq *s = timer_container_of(s, t, timer);

	s->mm = rsva_pasid_get_mm(s->pasid);
	complete(&s->done);
}

static void careless_pasid_get_mm_from_softirq(struct kunit *test)
{
	struct careless_ctx *c = test->priv;
	struct careless_softirq s = {};
	struct rsva_sva *h, *h1;
	int i, busy;

	h = rsva_sva_bind_device(c->dev0, c->mm);
	KUNIT_ASSERT_FALSE(test, IS_ERR(h));
	s.pasid = rsva_sva_get_pasid(h);
	for (i = 0, busy = 0; i < 3 && busy < 100; i++) {
		init_completion(&s.done);
		timer_setup_on_stack(&s.timer, careless_softirq_fn, 0);
		mod_timer(&s.timer, jiffies + 1);
		KUNIT_EXPECT_TRUE(test, wait_for_completion_timeout(&s.done, 10 * HZ));
		timer_delete_sync(&s.timer);
		timer_destroy_on_stack(&s.timer);
		/* A softirq that interrupted a holder of the lock is told so. */
		if (PTR_ERR(s.mm) == -EBUSY) {
			busy++;
			i--;
			continue;
		}
		KUNIT_EXPECT_PTR_EQ(test, s.mm, c->mm);
		if (!IS_ERR_OR_NULL(s.mm))
			mmdrop(s.mm);
		/* Process context takes the same locks in between. */
		h1 = rsva_sva_bind_device(c->dev1, c->mm);
		KUNIT_ASSERT_FALSE(test, IS_ERR(h1));
		KUNIT_EXPECT_EQ(test, rsva_sva_get_pasid(h1), s.pasid);
		KUNIT_EXPECT_EQ(test, rsva_sva_unbind_device(h1), 0);
	}
	KUNIT_EXPECT_LT(test, busy, 100);
	KUNIT_EXPECT_EQ(test, rsva_sva_unbind_device(h), 0);
	KUNIT_EXPECT_EQ(test, careless_sim_pasid_state(c->dev1, s.pasid), -ENOENT);
}

static struct kunit_case careless_cases[] = {
	KUNIT_CASE(careless_sva_bad_pointers),
	KUNIT_CASE(careless_sva_foreign_and_stale),
	KUNIT_CASE(careless_dma_bad_pointers),
	KUNIT_CASE(careless_mirror_bad_pointers),
	KUNIT_CASE_SLOW(careless_mirror_stale_handle_reused),
	KUNIT_CASE_SLOW(careless_sva_stale_handle_reused),
	KUNIT_CASE(careless_bind_current_in_kthreads),
	KUNIT_CASE(careless_concurrent_kthreads),
	KUNIT_CASE(careless_calls_from_mirror_hooks),
	KUNIT_CASE(careless_calls_from_stop),
	KUNIT_CASE(careless_pasid_get_mm_from_softirq),
	{}
};

static struct kunit_suite careless_suite = {
	.name = "rsva_careless",
	.init = careless_init,
	.exit = careless_exit,
	.test_cases = careless_cases,
};

kunit_test_suites(&careless_suite);

/* Claims kept for vm/check-plan.sh, by rsva_sim device number. */
#define CARELESS_DEVS	4

static struct device *held_dev[CARELESS_DEVS];
static const char held_owner;
static DEFINE_MUTEX(held_lock);

/* The claim made during a removal ("late N"). */
static struct device *late_dev;
static const struct bus_type *late_bus;
static const char late_owner;
/* 1 until the claim is made, then its errno. */
static int late_ret = 1;
static bool late_armed, late_removed;

static int careless_late_notify(struct notifier_block *nb, unsigned long action,
				void *data)
{
	if (data != late_dev)
		return NOTIFY_DONE;
	if (action == BUS_NOTIFY_DEL_DEVICE)
		WRITE_ONCE(late_ret, rsva_dma_claim_device(late_dev, &late_owner));
	else if (action == BUS_NOTIFY_REMOVED_DEVICE)
		WRITE_ONCE(late_removed, true);
	return NOTIFY_DONE;
}

static struct notifier_block late_nb = {
	.notifier_call = careless_late_notify,
};

/*
 * Called with held_lock. The notifier is registered after rsva's: the
 * device's bus must have had a claim through rsva. Once the device is
 * removed the notifier is left on the bus's chain, which goes with the bus.
 */
static int careless_arm_late(unsigned int id)
{
	struct device *dev;
	int ret;

	if (late_armed)
		return -EBUSY;
	dev = careless_sim_device(id);
	if (!dev)
		return -ENODEV;
	/* As for "claim": the address only, no reference. */
	late_dev = dev;
	late_bus = dev->bus;
	put_device(dev);
	ret = bus_register_notifier(late_bus, &late_nb);
	if (!ret)
		late_armed = true;
	return ret;
}

static ssize_t careless_late_read(struct file *file, char __user *ubuf, size_t len,
				  loff_t *ppos)
{
	char buf[16];
	int n = scnprintf(buf, sizeof(buf), "%d\n", READ_ONCE(late_ret));

	return simple_read_from_buffer(ubuf, len, ppos, buf, n);
}

static const struct file_operations careless_late_fops = {
	.owner = THIS_MODULE,
	.read = careless_late_read,
};

static int careless_claims_cmd(const char *cmd, unsigned int id)
{
	struct device *dev;
	int ret;

	if (id >= CARELESS_DEVS)
		return -EINVAL;
	guard(mutex)(&held_lock);
	if (!strcmp(cmd, "claim")) {
		if (held_dev[id])
			return -EBUSY;
		dev = careless_sim_device(id);
		if (!dev)
			return -ENODEV;
		ret = rsva_dma_claim_device(dev, &held_owner);
		/*
		 * The reference is not kept: the device may go away while
		 * claimed, which is the point. Its address names the claim.
		 */
		put_device(dev);
		if (!ret)
			held_dev[id] = dev;
		return ret;
	}
	if (!strcmp(cmd, "release")) {
		if (!held_dev[id])
			return -ENOENT;
		ret = rsva_dma_release_device(held_dev[id], &held_owner);
		held_dev[id] = NULL;
		return ret;
	}
	if (!strcmp(cmd, "late"))
		return careless_arm_late(id);
	return -EINVAL;
}

static ssize_t careless_claims_write(struct file *file, const char __user *ubuf,
				     size_t len, loff_t *ppos)
{
	char buf[32], cmd[8];
	unsigned int id;
	int ret;

	if (!capable(CAP_SYS_ADMIN))
		return -EPERM;
	if (len >= sizeof(buf))
		return -EINVAL;
	if (copy_from_user(buf, ubuf, len))
		return -EFAULT;
	buf[len] = '\0';
	if (sscanf(buf, "%7s %u", cmd, &id) != 2)
		return -EINVAL;
	ret = careless_claims_cmd(cmd, id);
	return ret ?: len;
}

static const struct file_operations careless_claims_fops = {
	.owner = THIS_MODULE,
	.write = careless_claims_write,
};

static struct dentry *careless_dir;

static int __init rsva_careless_init(void)
{
	careless_dir = debugfs_create_dir("rsva_careless", NULL);
	debugfs_create_file("claims", 0200, careless_dir, NULL, &careless_claims_fops);
	debugfs_create_file("late", 0400, careless_dir, NULL, &careless_late_fops);
	return 0;
}
module_init(rsva_careless_init);

static void __exit rsva_careless_exit(void)
{
	/* Claims left in held_dev[] stay with rsva until its unload. */
	debugfs_remove(careless_dir);
	if (late_armed && !READ_ONCE(late_removed))
		bus_unregister_notifier(late_bus, &late_nb);
	/* A claim made during the removal is released as a driver would. */
	if (!late_ret)
		rsva_dma_release_device(late_dev, &late_owner);
}
module_exit(rsva_careless_exit);

MODULE_DESCRIPTION("A careless C caller of the rsva API (tests)");
MODULE_LICENSE("GPL");
