// SPDX-License-Identifier: GPL-2.0
/*
 * rsva_client: a C module that uses rsva's exported API the way a driver
 * does, on the devices of the simulated platform (rsva_sim). Its KUnit
 * suites run when it is loaded and check each answer, so a broken export,
 * prototype, errno or lifetime rule turns the test run red.
 */
#include <kunit/test.h>
#include <linux/capability.h>
#include <linux/completion.h>
#include <linux/cred.h>
#include <linux/delay.h>
#include <linux/debugfs.h>
#include <linux/device.h>
#include <linux/device/driver.h>
#include <linux/err.h>
#include <linux/errno.h>
#include <linux/iommu.h>
#include <linux/kthread.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/notifier.h>
#include <linux/rwsem.h>
#include <linux/sched.h>
#include <linux/sched/mm.h>
#include <linux/slab.h>
#include <linux/uaccess.h>
#include <linux/workqueue.h>
#include <rsva.h>
#include <rsva_sim.h>
#include <rsva_test.h>

/* mm_alloc() is exported for KUnit only. */
MODULE_IMPORT_NS("EXPORTED_FOR_KUNIT_TESTING");

static void rsva_client_range_valid(struct kunit *test)
{
	KUNIT_EXPECT_EQ(test, rsva_pasid_range_check(1, RSVA_PASID_MAX),
			(int)RSVA_PASID_MAX);
	KUNIT_EXPECT_EQ(test, rsva_pasid_range_check(1, 1), 1);
	KUNIT_EXPECT_EQ(test, rsva_pasid_range_check(100, 163), 64);
}

static void rsva_client_range_invalid(struct kunit *test)
{
	KUNIT_EXPECT_EQ(test, rsva_pasid_range_check(0, 10), -EINVAL);
	KUNIT_EXPECT_EQ(test, rsva_pasid_range_check(11, 10), -EINVAL);
	KUNIT_EXPECT_EQ(test, rsva_pasid_range_check(1, RSVA_PASID_MAX + 1),
			-EINVAL);
	KUNIT_EXPECT_EQ(test, rsva_pasid_range_check(U32_MAX, U32_MAX),
			-EINVAL);
}

/* Per-test state: two simulated devices and an address space. */
struct client_ctx {
	struct device *dev0;
	struct device *dev1;
	struct mm_struct *mm;
};

static int client_init(struct kunit *test)
{
	struct client_ctx *c = kunit_kzalloc(test, sizeof(*c), GFP_KERNEL);

	KUNIT_ASSERT_NOT_NULL(test, c);
	c->dev0 = rsva_sim_get_device(0);
	c->dev1 = rsva_sim_get_device(1);
	KUNIT_ASSERT_NOT_NULL(test, c->dev0);
	KUNIT_ASSERT_NOT_NULL(test, c->dev1);
	c->mm = mm_alloc();
	KUNIT_ASSERT_NOT_NULL(test, c->mm);
	KUNIT_ASSERT_TRUE(test, rsva_sva_serving());
	test->priv = c;
	return 0;
}

static void client_exit(struct kunit *test)
{
	struct client_ctx *c = test->priv;

	if (c->mm)
		mmput(c->mm);
	put_device(c->dev1);
	put_device(c->dev0);
}

/* One bond per (device, mm): the same handle, counted. */
static void rsva_client_bind_refcount(struct kunit *test)
{
	struct client_ctx *c = test->priv;
	struct rsva_sva *h1, *h2;
	struct mm_struct *found;
	u32 pasid;

	h1 = rsva_sva_bind_device(c->dev0, c->mm);
	KUNIT_ASSERT_FALSE(test, IS_ERR(h1));
	h2 = rsva_sva_bind_device(c->dev0, c->mm);
	KUNIT_EXPECT_PTR_EQ(test, h1, h2);
	pasid = rsva_sva_get_pasid(h1);
	KUNIT_EXPECT_NE(test, pasid, IOMMU_PASID_INVALID);
	KUNIT_EXPECT_EQ(test, rsva_sim_pasid_state(c->dev0, pasid), 1);

	found = rsva_pasid_get_mm(pasid);
	KUNIT_EXPECT_PTR_EQ(test, found, c->mm);
	if (!IS_ERR(found))
		mmdrop(found);

	KUNIT_EXPECT_EQ(test, rsva_sva_unbind_device(h1), 0);
	/* One reference left: still attached. */
	KUNIT_EXPECT_EQ(test, rsva_sim_pasid_state(c->dev0, pasid), 1);
	KUNIT_EXPECT_EQ(test, rsva_sva_unbind_device(h2), 0);
	KUNIT_EXPECT_EQ(test, rsva_sim_pasid_state(c->dev0, pasid), -ENOENT);
	/* Double unbind. */
	KUNIT_EXPECT_EQ(test, rsva_sva_unbind_device(h1), -ENOENT);
	KUNIT_EXPECT_EQ(test, rsva_sva_get_pasid(h1), IOMMU_PASID_INVALID);

	/* The mm keeps its PASID across unbind and bind. */
	h1 = rsva_sva_bind_device(c->dev0, c->mm);
	KUNIT_ASSERT_FALSE(test, IS_ERR(h1));
	KUNIT_EXPECT_EQ(test, rsva_sva_get_pasid(h1), pasid);
	KUNIT_EXPECT_EQ(test, rsva_sva_unbind_device(h1), 0);
}

/* Devices bound to one mm share its PASID; each has its own bond. */
static void rsva_client_two_devices_share_the_pasid(struct kunit *test)
{
	struct client_ctx *c = test->priv;
	struct rsva_sva *h0, *h1;
	u32 pasid;

	h0 = rsva_sva_bind_device(c->dev0, c->mm);
	KUNIT_ASSERT_FALSE(test, IS_ERR(h0));
	h1 = rsva_sva_bind_device(c->dev1, c->mm);
	KUNIT_ASSERT_FALSE(test, IS_ERR(h1));
	KUNIT_EXPECT_PTR_NE(test, h0, h1);
	pasid = rsva_sva_get_pasid(h0);
	KUNIT_EXPECT_EQ(test, rsva_sva_get_pasid(h1), pasid);
	KUNIT_EXPECT_EQ(test, rsva_sim_pasid_state(c->dev0, pasid), 1);
	KUNIT_EXPECT_EQ(test, rsva_sim_pasid_state(c->dev1, pasid), 1);
	KUNIT_EXPECT_EQ(test, rsva_sva_unbind_device(h0), 0);
	KUNIT_EXPECT_EQ(test, rsva_sim_pasid_state(c->dev0, pasid), -ENOENT);
	KUNIT_EXPECT_EQ(test, rsva_sim_pasid_state(c->dev1, pasid), 1);
	KUNIT_EXPECT_EQ(test, rsva_sva_unbind_device(h1), 0);
}

/*
 * The kernel's API is served by rsva: its handles name rsva's bonds. The
 * two APIs name one bond by different handles (an address and a token),
 * with one PASID, and each API's references keep it attached.
 */
static void rsva_client_kernel_api_is_served(struct kunit *test)
{
	struct client_ctx *c = test->priv;
	struct iommu_sva *core;
	struct rsva_sva *own;
	u32 pasid;

	core = iommu_sva_bind_device(c->dev0, c->mm);
	KUNIT_ASSERT_FALSE(test, IS_ERR(core));
	pasid = iommu_sva_get_pasid(core);
	KUNIT_EXPECT_EQ(test, rsva_sim_pasid_state(c->dev0, pasid), 1);
	own = rsva_sva_bind_device(c->dev0, c->mm);
	KUNIT_ASSERT_FALSE(test, IS_ERR(own));
	KUNIT_EXPECT_PTR_NE(test, (void *)own, (void *)core);
	KUNIT_EXPECT_EQ(test, rsva_sva_get_pasid(own), pasid);
	/* The kernel's reference keeps the bond after rsva's last unbind... */
	KUNIT_EXPECT_EQ(test, rsva_sva_unbind_device(own), 0);
	KUNIT_EXPECT_EQ(test, rsva_sim_pasid_state(c->dev0, pasid), 1);
	KUNIT_EXPECT_EQ(test, iommu_sva_get_pasid(core), pasid);
	/* ...whose handle is dead all the same. */
	KUNIT_EXPECT_EQ(test, rsva_sva_get_pasid(own), IOMMU_PASID_INVALID);
	KUNIT_EXPECT_EQ(test, rsva_sva_unbind_device(own), -ENOENT);
	/* rsva's reference keeps it after the kernel's last unbind. */
	own = rsva_sva_bind_device(c->dev0, c->mm);
	KUNIT_ASSERT_FALSE(test, IS_ERR(own));
	KUNIT_EXPECT_PTR_EQ(test, iommu_sva_bind_device(c->dev0, c->mm), core);
	iommu_sva_unbind_device(core);
	KUNIT_EXPECT_EQ(test, rsva_sim_pasid_state(c->dev0, pasid), 1);
	iommu_sva_unbind_device(core);
	KUNIT_EXPECT_EQ(test, rsva_sim_pasid_state(c->dev0, pasid), 1);
	KUNIT_EXPECT_EQ(test, rsva_sva_get_pasid(own), pasid);
	KUNIT_EXPECT_EQ(test, rsva_sva_unbind_device(own), 0);
	KUNIT_EXPECT_EQ(test, rsva_sim_pasid_state(c->dev0, pasid), -ENOENT);
	KUNIT_EXPECT_EQ(test, rsva_sva_get_pasid(own), IOMMU_PASID_INVALID);
}

static void rsva_client_bad_input(struct kunit *test)
{
	struct client_ctx *c = test->priv;
	struct iommu_sva foreign = {};
	struct mm_struct *dead;
	struct device *nogroup;

	KUNIT_EXPECT_EQ(test, PTR_ERR(rsva_sva_bind_device(NULL, c->mm)), -EINVAL);
	KUNIT_EXPECT_EQ(test, PTR_ERR(rsva_sva_bind_device(c->dev0, NULL)), -EINVAL);
	KUNIT_EXPECT_EQ(test, PTR_ERR(rsva_sva_bind_device_stop(c->dev0, c->mm, NULL, NULL)),
			-EINVAL);
	/* A kernel thread has no mm of its own. */
	KUNIT_EXPECT_EQ(test, PTR_ERR(rsva_sva_bind_current(c->dev0)), -EINVAL);

	/* An mm without users. */
	dead = mm_alloc();
	KUNIT_ASSERT_NOT_NULL(test, dead);
	mmgrab(dead);
	mmput(dead);
	KUNIT_EXPECT_EQ(test, PTR_ERR(rsva_sva_bind_device(c->dev0, dead)), -ESRCH);
	mmdrop(dead);

	/* A device without IOMMU group. */
	nogroup = root_device_register("rsva_client_nogroup");
	KUNIT_ASSERT_FALSE(test, IS_ERR(nogroup));
	KUNIT_EXPECT_EQ(test, PTR_ERR(rsva_sva_bind_device(nogroup, c->mm)), -ENODEV);
	root_device_unregister(nogroup);

	KUNIT_EXPECT_EQ(test, rsva_sva_unbind_device(NULL), -EINVAL);
	KUNIT_EXPECT_EQ(test, rsva_sva_unbind_device((struct rsva_sva *)&foreign), -ENOENT);
	KUNIT_EXPECT_EQ(test, rsva_sva_get_pasid(NULL), IOMMU_PASID_INVALID);
	KUNIT_EXPECT_EQ(test, rsva_sva_get_pasid((struct rsva_sva *)&foreign),
			IOMMU_PASID_INVALID);
	KUNIT_EXPECT_EQ(test, PTR_ERR(rsva_pasid_get_mm(0)), -EINVAL);
	KUNIT_EXPECT_EQ(test, PTR_ERR(rsva_pasid_get_mm(RSVA_PASID_MAX + 1)), -EINVAL);
	KUNIT_EXPECT_EQ(test, PTR_ERR(rsva_pasid_get_mm(RSVA_PASID_MAX)), -ENOENT);
}

/* What a stop callback saw. */
struct stop_record {
	struct device *dev;
	u32 pasid;
	int calls;
	int entry_at_stop;
};

static void client_stop(struct rsva_sva *handle, void *data)
{
	struct stop_record *r = data;

	r->calls++;
	r->entry_at_stop = rsva_sim_pasid_state(r->dev, r->pasid);
}

/*
 * The mm goes away while bound: the driver's stop callback runs first,
 * while the IOMMU still translates the PASID, then the IOMMU clears the
 * entry; the bond outlives the mm until unbind.
 */
static void rsva_client_stop_runs_before_the_entry_is_cleared(struct kunit *test)
{
	struct client_ctx *c = test->priv;
	struct stop_record r = { .dev = c->dev0 };
	struct rsva_sva *h, *other;

	h = rsva_sva_bind_device_stop(c->dev0, c->mm, client_stop, &r);
	KUNIT_ASSERT_FALSE(test, IS_ERR(h));
	r.pasid = rsva_sva_get_pasid(h);
	KUNIT_EXPECT_EQ(test, r.calls, 0);

	/* Another callback for the same bond is refused; none is fine. */
	other = rsva_sva_bind_device_stop(c->dev0, c->mm, client_stop, &h);
	KUNIT_EXPECT_EQ(test, PTR_ERR(other), -EBUSY);
	KUNIT_EXPECT_PTR_EQ(test, rsva_sva_bind_device(c->dev0, c->mm), h);
	KUNIT_EXPECT_EQ(test, rsva_sva_unbind_device(h), 0);

	/* The last user goes: exit_mmap runs the notifiers. */
	mmput(c->mm);
	c->mm = NULL;
	KUNIT_EXPECT_EQ(test, r.calls, 1);
	KUNIT_EXPECT_EQ(test, r.entry_at_stop, 1);
	KUNIT_EXPECT_EQ(test, rsva_sim_pasid_state(c->dev0, r.pasid), 0);

	/* Unbind after the mm died. */
	KUNIT_EXPECT_EQ(test, rsva_sva_unbind_device(h), 0);
	KUNIT_EXPECT_EQ(test, r.calls, 1);
	KUNIT_EXPECT_EQ(test, rsva_sim_pasid_state(c->dev0, r.pasid), -ENOENT);
}

/* After unbind the callback is never called. */
static void rsva_client_no_stop_after_unbind(struct kunit *test)
{
	struct client_ctx *c = test->priv;
	struct stop_record r = { .dev = c->dev0 };
	struct rsva_sva *h;

	h = rsva_sva_bind_device_stop(c->dev0, c->mm, client_stop, &r);
	KUNIT_ASSERT_FALSE(test, IS_ERR(h));
	KUNIT_EXPECT_EQ(test, rsva_sva_unbind_device(h), 0);
	mmput(c->mm);
	c->mm = NULL;
	KUNIT_EXPECT_EQ(test, r.calls, 0);
}

/*
 * The stop callback belongs to rsva's references: after the last of them
 * is unbound it never runs, even while the kernel's API holds the bond on
 * and the mm dies; a new bind through rsva's API, with a new handle,
 * brings it back.
 */
static void rsva_client_no_stop_after_rsva_unbind_kernel_bound(struct kunit *test)
{
	struct client_ctx *c = test->priv;
	struct stop_record r = { .dev = c->dev0 };
	struct rsva_sva *h, *again;
	struct iommu_sva *core;
	u32 pasid;

	h = rsva_sva_bind_device_stop(c->dev0, c->mm, client_stop, &r);
	KUNIT_ASSERT_FALSE(test, IS_ERR(h));
	pasid = rsva_sva_get_pasid(h);
	core = iommu_sva_bind_device(c->dev0, c->mm);
	KUNIT_ASSERT_FALSE(test, IS_ERR(core));
	KUNIT_EXPECT_EQ(test, rsva_sva_unbind_device(h), 0);
	again = rsva_sva_bind_device_stop(c->dev0, c->mm, client_stop, &r);
	KUNIT_ASSERT_FALSE(test, IS_ERR(again));
	KUNIT_EXPECT_PTR_NE(test, again, h);
	KUNIT_EXPECT_EQ(test, rsva_sva_get_pasid(again), pasid);
	KUNIT_EXPECT_EQ(test, rsva_sva_unbind_device(again), 0);
	mmput(c->mm);
	c->mm = NULL;
	KUNIT_EXPECT_EQ(test, r.calls, 0);
	KUNIT_EXPECT_EQ(test, iommu_sva_get_pasid(core), pasid);
	iommu_sva_unbind_device(core);
	KUNIT_EXPECT_EQ(test, rsva_sim_pasid_state(c->dev0, pasid), -ENOENT);
	KUNIT_EXPECT_EQ(test, r.calls, 0);
}

/*
 * A handle holds the references of the API that bound it: rsva's handles
 * are tokens that the kernel's API cannot take (another type), and a
 * handle of the kernel's API passed to rsva's is refused and changes
 * nothing, so the IOMMU core's count of rsva's handles and rsva's module
 * references stay balanced and serving can still be switched off.
 */
static void rsva_client_handles_stay_with_their_api(struct kunit *test)
{
	struct client_ctx *c = test->priv;
	struct rsva_sva *own;
	struct iommu_sva *h;
	u32 pasid;

	own = rsva_sva_bind_device(c->dev0, c->mm);
	KUNIT_ASSERT_FALSE(test, IS_ERR(own));
	pasid = rsva_sva_get_pasid(own);
	h = iommu_sva_bind_device(c->dev0, c->mm);
	KUNIT_ASSERT_FALSE(test, IS_ERR(h));
	KUNIT_EXPECT_EQ(test, iommu_sva_get_pasid(h), pasid);
	iommu_sva_unbind_device(h);
	KUNIT_EXPECT_EQ(test, rsva_sim_pasid_state(c->dev0, pasid), 1);
	KUNIT_EXPECT_EQ(test, rsva_sva_unbind_device(own), 0);
	KUNIT_EXPECT_EQ(test, rsva_sim_pasid_state(c->dev0, pasid), -ENOENT);

	h = iommu_sva_bind_device(c->dev0, c->mm);
	KUNIT_ASSERT_FALSE(test, IS_ERR(h));
	KUNIT_EXPECT_EQ(test, rsva_sva_unbind_device((struct rsva_sva *)h), -ENOENT);
	KUNIT_EXPECT_EQ(test, rsva_sva_get_pasid((struct rsva_sva *)h), IOMMU_PASID_INVALID);
	KUNIT_EXPECT_EQ(test, rsva_sim_pasid_state(c->dev0, pasid), 1);
	iommu_sva_unbind_device(h);
	KUNIT_EXPECT_EQ(test, rsva_sim_pasid_state(c->dev0, pasid), -ENOENT);

	/* Nothing is left counted on either side. */
	KUNIT_EXPECT_EQ(test, rsva_test_set_serving(false), 0);
	KUNIT_EXPECT_EQ(test, rsva_test_set_serving(true), 0);
}

/* A stop callback that unbinds the bond it stops. */
struct unbinding_stop {
	int calls;
	int unbind_ret;
};

static void client_stop_unbinds(struct rsva_sva *handle, void *data)
{
	struct unbinding_stop *r = data;

	r->calls++;
	r->unbind_ret = rsva_sva_unbind_device(handle);
}

/*
 * A stop callback may unbind its handle (it runs inside the mm's release,
 * where waiting for the notifiers' grace period would deadlock exit_mmap):
 * the unbind is queued, exit_mmap finishes, and the PASID is detached from
 * rsva's workqueue after the release, not inside it (detaching drains the
 * PASID's page requests: lockdep reports srcu -> stop_lock -> MmBonds ->
 * group mutex -> iopf workqueue -> srcu if it is done inside).
 */
static void rsva_client_stop_may_unbind(struct kunit *test)
{
	struct client_ctx *c = test->priv;
	struct unbinding_stop r = {};
	struct rsva_sva *h;
	int tries;
	u32 pasid;

	h = rsva_sva_bind_device_stop(c->dev0, c->mm, client_stop_unbinds, &r);
	KUNIT_ASSERT_FALSE(test, IS_ERR(h));
	pasid = rsva_sva_get_pasid(h);
	mmput(c->mm);
	c->mm = NULL;
	KUNIT_EXPECT_EQ(test, r.calls, 1);
	KUNIT_EXPECT_EQ(test, r.unbind_ret, 0);
	for (tries = 0; tries < 100 && rsva_sim_pasid_state(c->dev0, pasid) != -ENOENT; tries++)
		msleep(20);
	KUNIT_EXPECT_EQ(test, rsva_sim_pasid_state(c->dev0, pasid), -ENOENT);
	KUNIT_EXPECT_EQ(test, rsva_sva_get_pasid(h), IOMMU_PASID_INVALID);
	KUNIT_EXPECT_EQ(test, rsva_sva_unbind_device(h), -ENOENT);
}

/*
 * A kept domain is watched by the device it was detached from only while
 * it is kept: reused by another device's bond, it is not watched any more,
 * so when the mm dies (the bond outlives it) and the first device's driver
 * goes, no watch is left behind that would later be ended on a device
 * that may be gone.
 */
static void rsva_client_kept_domain_watch_follows_reuse(struct kunit *test)
{
	struct client_ctx *c = test->priv;
	unsigned long watches = rsva_test_watches();
	struct rsva_sva *h;
	u32 pasid;

	h = rsva_sva_bind_device(c->dev0, c->mm);
	KUNIT_ASSERT_FALSE(test, IS_ERR(h));
	pasid = rsva_sva_get_pasid(h);
	KUNIT_EXPECT_EQ(test, rsva_sva_unbind_device(h), 0);
	/* Kept for the next bind, watched by dev0. */
	KUNIT_EXPECT_EQ(test, rsva_test_watches(), watches + 1);

	h = rsva_sva_bind_device(c->dev1, c->mm);
	KUNIT_ASSERT_FALSE(test, IS_ERR(h));
	KUNIT_EXPECT_EQ(test, rsva_test_watches(), watches);

	mmput(c->mm);
	c->mm = NULL;
	device_release_driver(c->dev0);
	KUNIT_EXPECT_EQ(test, rsva_test_watches(), watches);
	KUNIT_EXPECT_GE(test, device_attach(c->dev0), 0);

	KUNIT_EXPECT_EQ(test, rsva_sva_unbind_device(h), 0);
	KUNIT_EXPECT_EQ(test, rsva_sim_pasid_state(c->dev1, pasid), -ENOENT);
	KUNIT_EXPECT_EQ(test, rsva_test_watches(), watches);
}

/*
 * A kept domain used again by the device it was kept for keeps that
 * device's watch while in use: an mm that binds and unbinds one device
 * over and over makes one watch (two devres actions and a module pin), not
 * one per cycle. The watch still ends when the domain is freed, here by
 * the mm's death.
 */
static void rsva_client_kept_domain_keeps_its_watch_on_its_device(struct kunit *test)
{
	struct client_ctx *c = test->priv;
	unsigned long watches = rsva_test_watches();
	u32 pasid = IOMMU_PASID_INVALID;
	struct rsva_sva *h;
	int i, tries;

	for (i = 0; i < 3; i++) {
		h = rsva_sva_bind_device(c->dev0, c->mm);
		KUNIT_ASSERT_FALSE(test, IS_ERR(h));
		if (!i)
			pasid = rsva_sva_get_pasid(h);
		KUNIT_EXPECT_EQ(test, rsva_sva_get_pasid(h), pasid);
		/* Watched from the first unbind on, in use or kept. */
		KUNIT_EXPECT_EQ(test, rsva_test_watches(), watches + !!i);
		KUNIT_EXPECT_EQ(test, rsva_sva_unbind_device(h), 0);
		KUNIT_EXPECT_EQ(test, rsva_test_watches(), watches + 1);
	}
	mmput(c->mm);
	c->mm = NULL;
	for (tries = 0; tries < 100 && rsva_test_watches() != watches; tries++)
		msleep(20);
	KUNIT_EXPECT_EQ(test, rsva_test_watches(), watches);
	KUNIT_EXPECT_EQ(test, rsva_sim_pasid_state(c->dev0, pasid), -ENOENT);
}

/*
 * DMA ownership through rsva's C API: one owner at a time, SVA binds
 * refused on a claimed group, a claim refused while an SVA bond lives and
 * accepted once it is unbound, every release exactly once.
 */
static void rsva_client_dma_claims(struct kunit *test)
{
	static const char a, b;
	struct client_ctx *c = test->priv;
	struct rsva_sva *h;
	struct device *nogroup;

	KUNIT_EXPECT_EQ(test, rsva_dma_claimed(c->dev0), 0);
	KUNIT_ASSERT_EQ(test, rsva_dma_claim_group(c->dev0, &a), 0);
	KUNIT_EXPECT_EQ(test, rsva_dma_claimed(c->dev0), 1);
	KUNIT_EXPECT_EQ(test, rsva_dma_claim_group(c->dev0, &b), -EPERM);
	KUNIT_EXPECT_EQ(test, rsva_dma_claim_device(c->dev0, &b), -EPERM);
	/* An SVA bind on a claimed group is refused. */
	KUNIT_EXPECT_EQ(test, PTR_ERR(rsva_sva_bind_device(c->dev0, c->mm)), -EBUSY);
	KUNIT_EXPECT_EQ(test, rsva_dma_release_group(c->dev0, &b), -ENOENT);
	KUNIT_EXPECT_EQ(test, rsva_dma_release_group(c->dev0, &a), 0);
	KUNIT_EXPECT_EQ(test, rsva_dma_release_group(c->dev0, &a), -ENOENT);
	KUNIT_EXPECT_EQ(test, rsva_dma_claimed(c->dev0), 0);

	/* The same owner twice on a device: two claims, two releases. */
	KUNIT_EXPECT_EQ(test, rsva_dma_claim_device(c->dev0, &a), 0);
	KUNIT_EXPECT_EQ(test, rsva_dma_claim_device(c->dev0, &a), 0);
	KUNIT_EXPECT_EQ(test, rsva_dma_release_device(c->dev0, &a), 0);
	KUNIT_EXPECT_EQ(test, rsva_dma_claimed(c->dev0), 1);
	KUNIT_EXPECT_EQ(test, rsva_dma_release_device(c->dev0, &a), 0);
	KUNIT_EXPECT_EQ(test, rsva_dma_release_device(c->dev0, &a), -ENOENT);
	KUNIT_EXPECT_EQ(test, rsva_dma_claimed(c->dev0), 0);

	/* An SVA bond blocks a claim; after unbind (domain kept) it works. */
	h = rsva_sva_bind_device(c->dev0, c->mm);
	KUNIT_ASSERT_FALSE(test, IS_ERR(h));
	KUNIT_EXPECT_EQ(test, rsva_dma_claim_group(c->dev0, &a), -EBUSY);
	KUNIT_EXPECT_EQ(test, rsva_dma_claimed(c->dev0), 0);
	KUNIT_EXPECT_EQ(test, rsva_sva_unbind_device(h), 0);
	KUNIT_EXPECT_EQ(test, rsva_dma_claim_group(c->dev0, &a), 0);
	KUNIT_EXPECT_EQ(test, rsva_dma_release_group(c->dev0, &a), 0);

	/* Bad input. */
	KUNIT_EXPECT_EQ(test, rsva_dma_claim_group(NULL, &a), -EINVAL);
	KUNIT_EXPECT_EQ(test, rsva_dma_claim_group(c->dev0, NULL), -EINVAL);
	KUNIT_EXPECT_EQ(test, rsva_dma_claim_device(c->dev0, NULL), -EINVAL);
	KUNIT_EXPECT_EQ(test, rsva_dma_release_device(NULL, &a), -EINVAL);
	KUNIT_EXPECT_EQ(test, rsva_dma_claimed(NULL), -EINVAL);
	nogroup = root_device_register("rsva_client_nogroup");
	KUNIT_ASSERT_FALSE(test, IS_ERR(nogroup));
	KUNIT_EXPECT_EQ(test, rsva_dma_claim_group(nogroup, &a), -ENODEV);
	KUNIT_EXPECT_EQ(test, rsva_dma_claim_device(nogroup, &a), -ENODEV);
	KUNIT_EXPECT_EQ(test, rsva_dma_claimed(nogroup), -ENODEV);
	root_device_unregister(nogroup);
}

/*
 * Review finding 11. A kernel driver that manages its device's DMA itself
 * (no DMA API: some DRM and remoteproc drivers) attaches an unmanaged
 * domain of its own and may bind SVA; the C implementation lets it. A
 * driver of the simulated bus that uses the DMA API (its bus takes DMA-API
 * ownership of the group in dma_configure, which keeps owners such as VFIO
 * out) is bound to the test's device; it attaches such a domain in probe
 * and detaches it in remove.
 */
struct own_domain {
	struct device *dev;
	struct iommu_domain *domain;
	int attach_ret;
};

static struct own_domain own_domain_state;

static int own_domain_probe(struct device *dev)
{
	struct own_domain *o = &own_domain_state;

	/* Binds to the test's device only (the simulated bus matches all). */
	if (dev != READ_ONCE(o->dev))
		return -ENXIO;
	o->domain = iommu_paging_domain_alloc(dev);
	if (IS_ERR(o->domain)) {
		o->attach_ret = PTR_ERR(o->domain);
		o->domain = NULL;
		return o->attach_ret;
	}
	o->attach_ret = iommu_attach_device(o->domain, dev);
	if (o->attach_ret) {
		iommu_domain_free(o->domain);
		o->domain = NULL;
	}
	return o->attach_ret;
}

static void own_domain_remove(struct device *dev)
{
	struct own_domain *o = &own_domain_state;

	if (!o->domain)
		return;
	iommu_detach_device(o->domain, dev);
	iommu_domain_free(o->domain);
	o->domain = NULL;
}

static struct rsva_sim_driver own_domain_driver = {
	.driver = { .name = "rsva_client_own_domain" },
	.probe = own_domain_probe,
	.remove = own_domain_remove,
};

static void rsva_client_kernel_driver_domain_binds(struct kunit *test)
{
	static const char a;
	struct client_ctx *c = test->priv;
	struct own_domain *o = &own_domain_state;
	struct iommu_domain *domain;
	struct iommu_sva *h;
	struct rsva_sva *h2;
	u32 pasid;

	WRITE_ONCE(o->dev, c->dev0);
	KUNIT_ASSERT_EQ(test, rsva_sim_driver_register(&own_domain_driver), 0);
	if (!c->dev0->driver)
		KUNIT_EXPECT_GE(test, device_attach(c->dev0), 0);
	KUNIT_EXPECT_PTR_EQ(test, (void *)c->dev0->driver, (void *)&own_domain_driver.driver);
	KUNIT_EXPECT_EQ(test, o->attach_ret, 0);
	if (!o->domain)
		goto out;
	domain = iommu_get_domain_for_dev(c->dev0);
	KUNIT_EXPECT_PTR_EQ(test, domain, o->domain);
	KUNIT_EXPECT_EQ(test, domain->type, IOMMU_DOMAIN_UNMANAGED);
	/* Used by a driver, not claimed by an owner. */
	KUNIT_EXPECT_EQ(test, rsva_dma_claimed(c->dev0), 0);
	KUNIT_EXPECT_EQ(test, rsva_dma_claim_group(c->dev0, &a), -EBUSY);

	/* The C implementation binds it... */
	KUNIT_EXPECT_EQ(test, rsva_test_set_serving(false), 0);
	h = iommu_sva_bind_device(c->dev0, c->mm);
	KUNIT_EXPECT_FALSE(test, IS_ERR(h));
	if (!IS_ERR(h)) {
		pasid = iommu_sva_get_pasid(h);
		KUNIT_EXPECT_EQ(test, rsva_sim_pasid_state(c->dev0, pasid), 1);
		iommu_sva_unbind_device(h);
	}
	KUNIT_EXPECT_EQ(test, rsva_test_set_serving(true), 0);
	/* ...and so does rsva, through both APIs. */
	h = iommu_sva_bind_device(c->dev0, c->mm);
	KUNIT_EXPECT_FALSE(test, IS_ERR(h));
	h2 = rsva_sva_bind_device(c->dev0, c->mm);
	KUNIT_EXPECT_FALSE(test, IS_ERR(h2));
	if (!IS_ERR(h)) {
		pasid = iommu_sva_get_pasid(h);
		KUNIT_EXPECT_EQ(test, rsva_sim_pasid_state(c->dev0, pasid), 1);
		KUNIT_EXPECT_PTR_EQ(test, iommu_get_domain_for_dev(c->dev0), o->domain);
		iommu_sva_unbind_device(h);
	}
	if (!IS_ERR(h2)) {
		pasid = rsva_sva_get_pasid(h2);
		KUNIT_EXPECT_EQ(test, rsva_sva_unbind_device(h2), 0);
		KUNIT_EXPECT_EQ(test, rsva_sim_pasid_state(c->dev0, pasid), -ENOENT);
	}
out:
	/* remove detaches the driver's domain; the kept SVA domain goes too. */
	device_release_driver(c->dev0);
	rsva_sim_driver_unregister(&own_domain_driver);
	WRITE_ONCE(o->dev, NULL);
	KUNIT_EXPECT_PTR_EQ(test, iommu_get_domain_for_dev(c->dev0),
			    iommu_get_domain_for_dev(c->dev1));
}

/*
 * Review finding 11, the other side: a group claimed by an owner that
 * manages DMA itself, as VFIO and iommufd claim it for user space, gets no
 * PASID from rsva, neither on the claim's blocking domain nor on the
 * unmanaged domain the owner attaches then (user space drives the device
 * and could reach the mm through the PASID; releasing the claim with a
 * PASID attached WARNs). The IOMMU core's C implementation does not check
 * this: it binds.
 */
static void rsva_client_user_owned_group_gets_no_pasid(struct kunit *test)
{
	static const char vfio;
	struct client_ctx *c = test->priv;
	struct iommu_group *group = iommu_group_get(c->dev1);
	struct iommu_domain *domain;
	struct iommu_sva *h;
	struct rsva_sva *own;

	KUNIT_ASSERT_NOT_NULL(test, group);
	KUNIT_ASSERT_EQ(test, iommu_group_claim_dma_owner(group, (void *)&vfio), 0);
	KUNIT_EXPECT_EQ(test, rsva_dma_claimed(c->dev1), 1);
	KUNIT_EXPECT_EQ(test, PTR_ERR(iommu_sva_bind_device(c->dev1, c->mm)), -EBUSY);
	KUNIT_EXPECT_EQ(test, PTR_ERR(rsva_sva_bind_device(c->dev1, c->mm)), -EBUSY);

	domain = iommu_paging_domain_alloc(c->dev1);
	KUNIT_EXPECT_FALSE(test, IS_ERR(domain));
	if (IS_ERR(domain)) {
		iommu_group_release_dma_owner(group);
		iommu_group_put(group);
		return;
	}
	KUNIT_EXPECT_EQ(test, iommu_attach_group(domain, group), 0);
	KUNIT_EXPECT_EQ(test, iommu_get_domain_for_dev(c->dev1)->type, IOMMU_DOMAIN_UNMANAGED);
	KUNIT_EXPECT_EQ(test, rsva_dma_claimed(c->dev1), 1);
	KUNIT_EXPECT_EQ(test, PTR_ERR(iommu_sva_bind_device(c->dev1, c->mm)), -EBUSY);
	KUNIT_EXPECT_EQ(test, PTR_ERR(rsva_sva_bind_device(c->dev1, c->mm)), -EBUSY);
	KUNIT_EXPECT_EQ(test, rsva_sim_pasid_state(c->dev1, 1), -ENOENT);

	/* The C implementation attaches a PASID behind the owner's back. */
	KUNIT_EXPECT_EQ(test, rsva_test_set_serving(false), 0);
	h = iommu_sva_bind_device(c->dev1, c->mm);
	KUNIT_EXPECT_FALSE(test, IS_ERR(h));
	if (!IS_ERR(h))
		iommu_sva_unbind_device(h);
	KUNIT_EXPECT_EQ(test, rsva_test_set_serving(true), 0);

	iommu_detach_group(domain, group);
	iommu_domain_free(domain);
	iommu_group_release_dma_owner(group);
	iommu_group_put(group);
	KUNIT_EXPECT_EQ(test, rsva_dma_claimed(c->dev1), 0);
	own = rsva_sva_bind_device(c->dev1, c->mm);
	KUNIT_ASSERT_FALSE(test, IS_ERR(own));
	KUNIT_EXPECT_EQ(test, rsva_sva_unbind_device(own), 0);
}

/*
 * Review finding 15: an mm is on the IOMMU core's list for kernel
 * page-table invalidation (iommu_sva_present) while it has bonds, as in
 * the C implementation, not for as long as rsva leases its PASID: with
 * only a kept domain, attached nowhere, no device can use a kernel
 * page-table entry, and every kernel page-table free would flush it.
 */
static void rsva_client_only_bound_mms_are_tracked(struct kunit *test)
{
	struct client_ctx *c = test->priv;
	struct rsva_sva *h0, *h1;
	u32 pasid;

	h0 = rsva_sva_bind_device(c->dev0, c->mm);
	KUNIT_ASSERT_FALSE(test, IS_ERR(h0));
	pasid = rsva_sva_get_pasid(h0);
	KUNIT_EXPECT_EQ(test, rsva_test_tracked(pasid), 1);
	h1 = rsva_sva_bind_device(c->dev1, c->mm);
	KUNIT_ASSERT_FALSE(test, IS_ERR(h1));
	KUNIT_EXPECT_EQ(test, rsva_sva_unbind_device(h0), 0);
	KUNIT_EXPECT_EQ(test, rsva_test_tracked(pasid), 1);
	KUNIT_EXPECT_EQ(test, rsva_sva_unbind_device(h1), 0);
	/* Leased, domains kept, no bond: off the list. */
	KUNIT_EXPECT_EQ(test, rsva_test_tracked(pasid), 0);
	h0 = rsva_sva_bind_device(c->dev0, c->mm);
	KUNIT_ASSERT_FALSE(test, IS_ERR(h0));
	KUNIT_EXPECT_EQ(test, rsva_sva_get_pasid(h0), pasid);
	KUNIT_EXPECT_EQ(test, rsva_test_tracked(pasid), 1);
	KUNIT_EXPECT_EQ(test, rsva_sva_unbind_device(h0), 0);
	KUNIT_EXPECT_EQ(test, rsva_test_tracked(pasid), 0);
	/* The lease ends with the mm. */
	mmput(c->mm);
	c->mm = NULL;
	KUNIT_EXPECT_EQ(test, rsva_test_tracked(pasid), -ENOENT);
}

/*
 * Review finding 15, the charging policy (Documentation/sva.rst, rsva.h):
 * a lease is charged to the real uid of the task that binds, whoever owns
 * the mm (rsva cannot tell the mm's user without CONFIG_MEMCG's mm->owner;
 * drivers bind in the process's context, as uacce and IDXD do at open).
 * A kernel thread's binds are charged to its uid; one lease is one
 * charge, also when the mm's PASID is adopted (allocated before, by
 * rsva's previous lease or by the C code).
 */
struct charge_binder {
	struct completion done;
	struct device *dev;
	struct mm_struct *mm;
	struct rsva_sva *h;
	u32 uid;
};

static int charge_binder_fn(void *data)
{
	struct charge_binder *b = data;
	struct cred *cred = prepare_creds();

	if (cred) {
		cred->uid = KUIDT_INIT(b->uid);
		cred->euid = KUIDT_INIT(b->uid);
		commit_creds(cred);
		b->h = rsva_sva_bind_device(b->dev, b->mm);
	} else {
		b->h = ERR_PTR(-ENOMEM);
	}
	complete(&b->done);
	return 0;
}

static void rsva_client_leases_are_charged_to_the_binder(struct kunit *test)
{
	struct client_ctx *c = test->priv;
	struct charge_binder b = { .dev = c->dev1, .uid = 4242 };
	struct task_struct *t;
	struct rsva_sva *h;
	u32 pasid, pasid2, held = 0;

	/* KUnit's kernel thread: uid 0. */
	h = rsva_sva_bind_device(c->dev0, c->mm);
	KUNIT_ASSERT_FALSE(test, IS_ERR(h));
	pasid = rsva_sva_get_pasid(h);
	KUNIT_EXPECT_EQ(test, rsva_test_pasid_uid(pasid, &held), 0LL);
	KUNIT_EXPECT_GE(test, held, 1U);

	/* Another kernel thread, uid 4242, binding an mm KUnit made. */
	b.mm = mm_alloc();
	KUNIT_ASSERT_NOT_NULL(test, b.mm);
	init_completion(&b.done);
	t = kthread_run(charge_binder_fn, &b, "rsva_client_uid");
	KUNIT_ASSERT_FALSE(test, IS_ERR(t));
	KUNIT_EXPECT_TRUE(test, wait_for_completion_timeout(&b.done, 30 * HZ));
	KUNIT_ASSERT_FALSE(test, IS_ERR_OR_NULL(b.h));
	pasid2 = rsva_sva_get_pasid(b.h);
	KUNIT_EXPECT_EQ(test, rsva_test_pasid_uid(pasid2, &held), 4242LL);
	KUNIT_EXPECT_EQ(test, held, 1U);
	KUNIT_EXPECT_EQ(test, rsva_sva_unbind_device(b.h), 0);
	/* Unbound, still leased: still charged; the mm's end uncharges. */
	KUNIT_EXPECT_EQ(test, rsva_test_pasid_uid(pasid2, &held), 4242LL);
	KUNIT_EXPECT_EQ(test, held, 1U);
	mmput(b.mm);
	KUNIT_EXPECT_EQ(test, rsva_test_pasid_uid(pasid2, NULL), (long long)-ENOENT);

	/* Switching off ends the lease; binding again adopts the PASID. */
	KUNIT_EXPECT_EQ(test, rsva_sva_unbind_device(h), 0);
	KUNIT_EXPECT_EQ(test, rsva_test_pasid_uid(pasid, &held), 0LL);
	KUNIT_ASSERT_EQ(test, rsva_test_set_serving(false), 0);
	KUNIT_ASSERT_EQ(test, rsva_test_set_serving(true), 0);
	KUNIT_EXPECT_EQ(test, rsva_test_pasid_uid(pasid, NULL), (long long)-ENOENT);
	h = rsva_sva_bind_device(c->dev0, c->mm);
	KUNIT_ASSERT_FALSE(test, IS_ERR(h));
	KUNIT_EXPECT_EQ(test, rsva_sva_get_pasid(h), pasid);
	/* Switching off ended every lease: this is uid 0's one charge. */
	KUNIT_EXPECT_EQ(test, rsva_test_pasid_uid(pasid, &held), 0LL);
	KUNIT_EXPECT_EQ(test, held, 1U);
	KUNIT_EXPECT_EQ(test, rsva_sva_unbind_device(h), 0);
}

/*
 * rsva's SVA binds against its DMA claims on the same group, from two
 * threads: a bind checks that the group is not claimed and then attaches
 * its PASID, and a claim that came in between would own a group with a
 * PASID attached (its release then warns). Each side raises its flag only
 * while it holds what it got, so seeing the other's flag up is an overlap.
 */
struct claim_race {
	struct device *dev;
	atomic_t claimed, bound;
	int claims, overlaps;
};

static int claim_race_fn(void *data)
{
	static const char owner;
	struct claim_race *r = data;

	while (!kthread_should_stop()) {
		if (!rsva_dma_claim_group(r->dev, &owner)) {
			atomic_set(&r->claimed, 1);
			/* Flag up before looking at the binder's flag. */
			smp_mb();
			r->overlaps += atomic_read(&r->bound);
			atomic_set(&r->claimed, 0);
			r->claims++;
			WARN_ON(rsva_dma_release_group(r->dev, &owner));
		}
		cond_resched();
	}
	return 0;
}

static void rsva_client_binds_and_claims_never_overlap(struct kunit *test)
{
	struct client_ctx *c = test->priv;
	struct claim_race r = { .dev = c->dev0 };
	int i, binds = 0, overlaps = 0;
	struct task_struct *t;
	struct rsva_sva *h;

	t = kthread_run(claim_race_fn, &r, "rsva_client_claims");
	KUNIT_ASSERT_FALSE(test, IS_ERR(t));
	for (i = 0; i < 300; i++) {
		h = rsva_sva_bind_device(c->dev0, c->mm);
		if (IS_ERR(h)) {
			KUNIT_EXPECT_EQ(test, PTR_ERR(h), -EBUSY);
			continue;
		}
		atomic_set(&r.bound, 1);
		/* Flag up before looking at the claimer's flag. */
		smp_mb();
		overlaps += atomic_read(&r.claimed);
		overlaps += rsva_dma_claimed(c->dev0) != 0;
		atomic_set(&r.bound, 0);
		binds++;
		KUNIT_EXPECT_EQ(test, rsva_sva_unbind_device(h), 0);
	}
	kthread_stop(t);
	kunit_info(test, "%d binds, %d claims\n", binds, r.claims);
	KUNIT_EXPECT_EQ(test, overlaps + r.overlaps, 0);
	KUNIT_EXPECT_GT(test, binds, 0);
	KUNIT_EXPECT_GT(test, r.claims, 0);
	KUNIT_EXPECT_EQ(test, rsva_dma_claimed(c->dev0), 0);
}

static struct kunit_case rsva_client_cases[] = {
	KUNIT_CASE(rsva_client_range_valid),
	KUNIT_CASE(rsva_client_range_invalid),
	{}
};

static struct kunit_suite rsva_client_suite = {
	.name = "rsva_c_api",
	.test_cases = rsva_client_cases,
};

static struct kunit_case rsva_client_bond_cases[] = {
	KUNIT_CASE(rsva_client_bind_refcount),
	KUNIT_CASE(rsva_client_two_devices_share_the_pasid),
	KUNIT_CASE(rsva_client_kernel_api_is_served),
	KUNIT_CASE(rsva_client_bad_input),
	KUNIT_CASE(rsva_client_stop_runs_before_the_entry_is_cleared),
	KUNIT_CASE(rsva_client_no_stop_after_unbind),
	KUNIT_CASE(rsva_client_no_stop_after_rsva_unbind_kernel_bound),
	KUNIT_CASE(rsva_client_handles_stay_with_their_api),
	KUNIT_CASE(rsva_client_stop_may_unbind),
	KUNIT_CASE(rsva_client_kept_domain_watch_follows_reuse),
	KUNIT_CASE(rsva_client_kept_domain_keeps_its_watch_on_its_device),
	KUNIT_CASE(rsva_client_dma_claims),
	KUNIT_CASE(rsva_client_binds_and_claims_never_overlap),
	KUNIT_CASE(rsva_client_kernel_driver_domain_binds),
	KUNIT_CASE(rsva_client_user_owned_group_gets_no_pasid),
	KUNIT_CASE(rsva_client_only_bound_mms_are_tracked),
	KUNIT_CASE(rsva_client_leases_are_charged_to_the_binder),
	{}
};

static struct kunit_suite rsva_client_bond_suite = {
	.name = "rsva_c_bonds",
	.init = client_init,
	.exit = client_exit,
	.test_cases = rsva_client_bond_cases,
};

kunit_test_suites(&rsva_client_suite, &rsva_client_bond_suite);

/*
 * The benchmark hook, debugfs rsva_client/bench: writing "bind DEV N" binds
 * and unbinds the writer's mm on simulated device DEV N times through
 * iommu_sva_bind_device(), so whichever implementation serves that API
 * (debugfs rsva/serve) is measured; "pasid DEV N" gives each cycle a fresh
 * mm that is bound, dies while bound and is then unbound, as a process
 * that exits does (exit_mmap comes before the driver's release), so every
 * cycle also allocates and frees a PASID; "claim DEV N" and "claimc DEV N"
 * claim and release DEV's group through rsva and directly, "dclaim" and
 * "dclaimc" DEV itself, "alloc", "notify" and "locks" add an allocation, a
 * bus notifier or three lock pairs to the direct group cycle, "devref" a
 * device reference to the direct device cycle; "hold DEV N" and
 * "drop DEV 1" keep bound address spaces (below); "leak DEV 1" binds the
 * writer's mm through rsva's API and never unbinds it, as a buggy driver
 * would (rsva must then refuse to unload). The write returns when done;
 * the caller times it.
 */
static int client_bench(struct device *dev, bool fresh_mm, unsigned int n)
{
	struct iommu_sva *h;
	struct mm_struct *mm;
	unsigned int i;

	for (i = 0; i < n; i++) {
		mm = fresh_mm ? mm_alloc() : current->mm;
		if (!mm)
			return fresh_mm ? -ENOMEM : -EINVAL;
		h = iommu_sva_bind_device(dev, mm);
		if (fresh_mm)
			mmput(mm);
		if (IS_ERR(h))
			return PTR_ERR(h);
		iommu_sva_unbind_device(h);
		cond_resched();
	}
	return 0;
}

/*
 * The DMA ownership cycles of the benchmark: a group or a device (@what),
 * claimed and released through rsva's C API or the core's functions
 * called directly; "alloc", "notifier" and "locks" are the direct group
 * cycle plus a 64-byte allocation and free, plus a bus notifier
 * registration and unregistration, or plus the locks rsva's cycle takes
 * (an rw-semaphore for writing, a mutex twice), for the costs of this
 * kernel's debug options; "devref" is the direct device cycle plus the
 * device reference that rsva's device claims hold (get_device() and
 * put_device()).
 */
enum client_claim { CLAIM_GROUP, CLAIM_DEVICE, CLAIM_ALLOC, CLAIM_NOTIFIER, CLAIM_LOCKS,
		    CLAIM_DEVICE_REF };

static DECLARE_RWSEM(client_bench_rwsem);
static DEFINE_MUTEX(client_bench_mutex);

static int client_nop_notifier(struct notifier_block *nb, unsigned long action, void *data)
{
	return NOTIFY_DONE;
}

static int client_claim_cycle(struct device *dev, struct iommu_group *group,
			      enum client_claim what, bool direct)
{
	static struct notifier_block nb = { .notifier_call = client_nop_notifier };
	static const char owner;
	void *p;
	int ret;

	switch (what) {
	case CLAIM_GROUP:
		if (!direct) {
			ret = rsva_dma_claim_group(dev, &owner);
			return ret ?: rsva_dma_release_group(dev, &owner);
		}
		break;
	case CLAIM_DEVICE:
		if (!direct) {
			ret = rsva_dma_claim_device(dev, &owner);
			return ret ?: rsva_dma_release_device(dev, &owner);
		}
		ret = iommu_device_claim_dma_owner(dev, (void *)&owner);
		if (!ret)
			iommu_device_release_dma_owner(dev);
		return ret;
	case CLAIM_ALLOC:
		p = kzalloc(64, GFP_KERNEL);
		if (!p)
			return -ENOMEM;
		kfree(p);
		break;
	case CLAIM_NOTIFIER:
		ret = bus_register_notifier(dev->bus, &nb);
		if (ret)
			return ret;
		bus_unregister_notifier(dev->bus, &nb);
		break;
	case CLAIM_DEVICE_REF:
		get_device(dev);
		ret = iommu_device_claim_dma_owner(dev, (void *)&owner);
		if (!ret)
			iommu_device_release_dma_owner(dev);
		put_device(dev);
		return ret;
	case CLAIM_LOCKS:
		down_write(&client_bench_rwsem);
		mutex_lock(&client_bench_mutex);
		mutex_unlock(&client_bench_mutex);
		up_write(&client_bench_rwsem);
		mutex_lock(&client_bench_mutex);
		mutex_unlock(&client_bench_mutex);
		break;
	}
	ret = iommu_group_claim_dma_owner(group, (void *)&owner);
	if (!ret)
		iommu_group_release_dma_owner(group);
	return ret;
}

/* @n cycles of claim and release (client_claim_cycle()). */
static int client_bench_claims(struct device *dev, enum client_claim what, bool direct,
			       unsigned int n)
{
	struct iommu_group *group;
	unsigned int i;
	int ret = 0;

	group = iommu_group_get(dev);
	if (!group)
		return -ENODEV;
	for (i = 0; i < n && !ret; i++) {
		ret = client_claim_cycle(dev, group, what, direct);
		cond_resched();
	}
	iommu_group_put(group);
	return ret;
}

/*
 * Bonds kept for the scaling benchmark: "hold DEV N" binds N more fresh mms
 * to DEV and keeps them bound, so that "bind" can be timed against as many
 * live bound address spaces; "drop DEV 1" unbinds them all.
 */
struct held_bond {
	struct list_head node;
	struct work_struct put_work;
	struct mm_struct *mm;
	struct iommu_sva *handle;
};

static LIST_HEAD(held_bonds);
static DEFINE_MUTEX(held_lock);

static int client_hold(struct device *dev, unsigned int n)
{
	struct held_bond *b;
	unsigned int i;
	int ret;

	guard(mutex)(&held_lock);
	for (i = 0; i < n; i++) {
		b = kzalloc_obj(*b, GFP_KERNEL);
		if (!b)
			return -ENOMEM;
		b->mm = mm_alloc();
		if (!b->mm) {
			kfree(b);
			return -ENOMEM;
		}
		b->handle = iommu_sva_bind_device(dev, b->mm);
		if (IS_ERR(b->handle)) {
			ret = PTR_ERR(b->handle);
			mmput(b->mm);
			kfree(b);
			return ret;
		}
		list_add_tail(&b->node, &held_bonds);
		cond_resched();
	}
	return 0;
}

static void held_bond_put(struct work_struct *work)
{
	struct held_bond *b = container_of(work, struct held_bond, put_work);

	mmput(b->mm);
	kfree(b);
}

/*
 * Unbinds every held bond, then puts the mms from an unbound workqueue:
 * each mm's exit waits for an SRCU grace period, and exits running side by
 * side share them (one after the other, 10,000 would take minutes).
 * Returns when every mm is gone.
 */
static void client_drop(void)
{
	struct workqueue_struct *wq;
	struct held_bond *b, *tmp;

	guard(mutex)(&held_lock);
	wq = alloc_workqueue("rsva_client_put", WQ_UNBOUND, 0);
	list_for_each_entry_safe(b, tmp, &held_bonds, node) {
		list_del(&b->node);
		iommu_sva_unbind_device(b->handle);
		INIT_WORK(&b->put_work, held_bond_put);
		if (wq)
			queue_work(wq, &b->put_work);
		else
			held_bond_put(&b->put_work);
		cond_resched();
	}
	if (wq)
		destroy_workqueue(wq);
}

static ssize_t client_bench_write(struct file *file, const char __user *ubuf,
				  size_t len, loff_t *ppos)
{
	unsigned int id, n;
	struct device *dev;
	char buf[32], mode[8];
	int ret = 0;

	if (!capable(CAP_SYS_ADMIN))
		return -EPERM;
	if (len >= sizeof(buf))
		return -EINVAL;
	if (copy_from_user(buf, ubuf, len))
		return -EFAULT;
	buf[len] = '\0';
	if (sscanf(buf, "%7s %u %u", mode, &id, &n) != 3 || !n || n > 1000000)
		return -EINVAL;
	dev = rsva_sim_get_device(id);
	if (!dev)
		return -ENODEV;
	if (!strcmp(mode, "bind") || !strcmp(mode, "pasid"))
		ret = client_bench(dev, !strcmp(mode, "pasid"), n);
	else if (!strcmp(mode, "claim") || !strcmp(mode, "claimc"))
		ret = client_bench_claims(dev, CLAIM_GROUP, !strcmp(mode, "claimc"), n);
	else if (!strcmp(mode, "dclaim") || !strcmp(mode, "dclaimc"))
		ret = client_bench_claims(dev, CLAIM_DEVICE, !strcmp(mode, "dclaimc"), n);
	else if (!strcmp(mode, "alloc"))
		ret = client_bench_claims(dev, CLAIM_ALLOC, true, n);
	else if (!strcmp(mode, "notify"))
		ret = client_bench_claims(dev, CLAIM_NOTIFIER, true, n);
	else if (!strcmp(mode, "locks"))
		ret = client_bench_claims(dev, CLAIM_LOCKS, true, n);
	else if (!strcmp(mode, "devref"))
		ret = client_bench_claims(dev, CLAIM_DEVICE_REF, true, n);
	else if (!strcmp(mode, "hold"))
		ret = client_hold(dev, n);
	else if (!strcmp(mode, "drop"))
		client_drop();
	else if (!strcmp(mode, "leak"))
		ret = PTR_ERR_OR_ZERO(rsva_sva_bind_device(dev, current->mm));
	else
		ret = -EINVAL;
	put_device(dev);
	return ret ?: len;
}

static const struct file_operations client_bench_fops = {
	.owner = THIS_MODULE,
	.write = client_bench_write,
};

static struct dentry *client_dir;

static int __init rsva_client_init(void)
{
	pr_info("rsva_client: rsva_pasid_range_check(1, %u) = %d\n",
		RSVA_PASID_MAX, rsva_pasid_range_check(1, RSVA_PASID_MAX));
	client_dir = debugfs_create_dir("rsva_client", NULL);
	debugfs_create_file("bench", 0200, client_dir, NULL, &client_bench_fops);
	return 0;
}
module_init(rsva_client_init);

static void __exit rsva_client_exit(void)
{
	debugfs_remove(client_dir);
	client_drop();
}
module_exit(rsva_client_exit);

MODULE_DESCRIPTION("C client of the rsva API (tests)");
MODULE_LICENSE("GPL");
