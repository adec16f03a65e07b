// SPDX-License-Identifier: GPL-2.0
/*
 * rsva_deferred_unbind: KUnit suite rsva_deferred_unbind. A driver's stop
 * callback runs inside the mm's release and may unbind its own handle
 * there; rsva queues that unbind (rust/sva/bond.rs) and does it from its
 * workqueue once the release is over. When the device's driver goes before
 * the workqueue ran the unbind, it is done when the driver's unbind begins
 * (rsva watches the bus of every bound device: BUS_NOTIFY_UNBIND_DRIVER),
 * before the driver's remove and the bus's dma_cleanup, while the device's
 * driver and IOMMU driver are still there. These cases hold rsva's
 * settling work back (rsva_test_hold_settle()) to have the unbind pending
 * when the driver is unbound, and check that it was done before the driver
 * went, and by whom.
 *
 * Each case runs with a driver that manages DMA itself (driver_managed_dma,
 * as VFIO's) and with one that uses the DMA API. For the latter the driver
 * core gives the group's default domain back (the bus's dma_cleanup,
 * iommu_device_unuse_default_domain()) after the driver's remove and before
 * its devres actions: with the PASID still attached there, the IOMMU core
 * WARNs and keeps the group's ownership count, which the cases check.
 */
#include <kunit/test.h>
#include <linux/completion.h>
#include <linux/delay.h>
#include <linux/device.h>
#include <linux/err.h>
#include <linux/iommu.h>
#include <linux/module.h>
#include <linux/sched/mm.h>
#include <linux/string.h>
#include <linux/workqueue.h>
#include <rsva.h>
#include <rsva_sim.h>
#include <rsva_test.h>

/* mm_alloc() is exported for KUnit only. */
MODULE_IMPORT_NS("EXPORTED_FOR_KUNIT_TESTING");

/* How long the stop callback waits for another task to detach its PASID. */
#define DETACH_WAIT_MS 5000

struct order_ctx {
	struct device *dev;
	struct mm_struct *mm;
	u32 pasid;
	/* The stop callback waits in the release until the PASID is detached. */
	bool wait_in_stop;
	int calls;
	int unbind_ret;
	/* rsva's watches right after the callback queued its unbind. */
	unsigned long watches_queued;
	/* The PASID was detached while the callback waited in the release. */
	bool detached_in_release;
	struct completion queued;
	/* order_driver is registered. */
	bool registered;
	/* The mm whose last user order_release() drops. */
	struct mm_struct *releasing;
	struct work_struct release;
	struct completion released;
	struct delayed_work let_go;
};

/* Unbinds the bond it stops (queued by rsva), then waits if asked to. */
static void order_stop(struct rsva_sva *handle, void *data)
{
	struct order_ctx *o = data;
	int waited;

	o->calls++;
	o->unbind_ret = rsva_sva_unbind_device(handle);
	o->watches_queued = rsva_test_watches();
	complete(&o->queued);
	if (!o->wait_in_stop)
		return;
	for (waited = 0; waited < DETACH_WAIT_MS; waited += 20) {
		if (rsva_sim_pasid_state(o->dev, o->pasid) == -ENOENT) {
			o->detached_in_release = true;
			return;
		}
		msleep(20);
	}
}

/*
 * Drops the mm's last user (its release runs the stop callback), then lets
 * rsva's work go.
 */
static void order_release(struct work_struct *work)
{
	struct order_ctx *o = container_of(work, struct order_ctx, release);

	mmput(o->releasing);
	rsva_test_hold_settle(false);
	complete(&o->released);
}

static void order_let_go(struct work_struct *work)
{
	rsva_test_hold_settle(false);
}

/*
 * The driver bound to the test's device while a case runs: rsva's C API
 * binds a device with a driver, and the unbind must be done before that
 * driver goes. The simulated bus matches every device: it takes the test's
 * only.
 */
static struct device *order_target;

static int order_probe(struct device *dev)
{
	return dev == READ_ONCE(order_target) ? 0 : -ENXIO;
}

static struct rsva_sim_driver order_driver = {
	.driver = { .name = "rsva_deferred_unbind" },
	.probe = order_probe,
};

static int order_init(struct kunit *test)
{
	struct order_ctx *o = kunit_kzalloc(test, sizeof(*o), GFP_KERNEL);

	KUNIT_ASSERT_NOT_NULL(test, o);
	init_completion(&o->queued);
	init_completion(&o->released);
	INIT_WORK(&o->release, order_release);
	INIT_DELAYED_WORK(&o->let_go, order_let_go);
	o->dev = rsva_sim_get_device(0);
	KUNIT_ASSERT_NOT_NULL(test, o->dev);
	test->priv = o;
	o->mm = mm_alloc();
	KUNIT_ASSERT_NOT_NULL(test, o->mm);
	KUNIT_ASSERT_TRUE(test, rsva_sva_serving());
	return 0;
}

/*
 * Binds the driver to the test's device, with DMA managed by the driver
 * (@own_dma: no DMA-API use of the group) or through the DMA API.
 */
static void order_bind_driver(struct kunit *test, bool own_dma)
{
	struct order_ctx *o = test->priv;

	WRITE_ONCE(order_target, o->dev);
	order_driver.driver_managed_dma = own_dma;
	KUNIT_ASSERT_EQ(test, rsva_sim_driver_register(&order_driver), 0);
	o->registered = true;
	if (!o->dev->driver)
		KUNIT_EXPECT_GE(test, device_attach(o->dev), 0);
	KUNIT_ASSERT_PTR_EQ(test, (void *)o->dev->driver, (void *)&order_driver.driver);
}

static void order_exit(struct kunit *test)
{
	struct order_ctx *o = test->priv;

	/* Whatever failed: nothing stays held, the driver is back. */
	rsva_test_hold_settle(false);
	flush_work(&o->release);
	flush_delayed_work(&o->let_go);
	if (o->mm)
		mmput(o->mm);
	rsva_test_hold_settle(false);
	if (o->registered)
		rsva_sim_driver_unregister(&order_driver);
	WRITE_ONCE(order_target, NULL);
	put_device(o->dev);
}

/*
 * Binds the test's driver to the device (own_dma: one that manages DMA
 * itself), then the test's mm with order_stop(); returns the handle.
 */
static struct rsva_sva *order_bind(struct kunit *test, bool own_dma)
{
	struct order_ctx *o = test->priv;
	struct rsva_sva *h;

	order_bind_driver(test, own_dma);
	h = rsva_sva_bind_device_stop(o->dev, o->mm, order_stop, o);
	KUNIT_ASSERT_FALSE(test, IS_ERR(h));
	o->pasid = rsva_sva_get_pasid(h);
	return h;
}

/*
 * Once the driver is gone, the group's DMA ownership was given back whole:
 * a new owner can claim the device (a DMA-API driver's count kept by the
 * IOMMU core would refuse it).
 */
static void order_expect_unowned(struct kunit *test)
{
	struct order_ctx *o = test->priv;
	int ret = iommu_device_claim_dma_owner(o->dev, o);

	KUNIT_EXPECT_EQ(test, ret, 0);
	if (!ret)
		iommu_device_release_dma_owner(o->dev);
}

/*
 * The device's driver goes while the stop callback that queued the unbind
 * still runs in the mm's release (another task), with rsva's settling work
 * held back: the watch of the device's bus does the unbind then, as the
 * driver's unbind begins (device_gone(), the lease still in rsva's map),
 * before the driver's remove and the bus's dma_cleanup: the PASID is
 * detached while the callback still waits, the bond is gone, no watch is
 * left and the group is unowned when device_release_driver() returns, and
 * the held work, let go after the release, finds no unbind to do.
 */
static void unbind_in_release(struct kunit *test, bool own_dma)
{
	struct order_ctx *o = test->priv;
	unsigned long watches = rsva_test_watches();
	unsigned long settled = rsva_test_settle_unbinds();
	struct rsva_sva *h = order_bind(test, own_dma);

	KUNIT_EXPECT_EQ(test, rsva_sim_pasid_state(o->dev, o->pasid), 1);
	o->wait_in_stop = true;
	rsva_test_hold_settle(true);
	o->releasing = o->mm;
	o->mm = NULL;
	queue_work(system_unbound_wq, &o->release);
	KUNIT_ASSERT_NE(test, wait_for_completion_timeout(&o->queued, 10 * HZ), 0);
	KUNIT_EXPECT_EQ(test, o->calls, 1);
	KUNIT_EXPECT_EQ(test, o->unbind_ret, 0);
	/* Queued with a watch of the device, not done. */
	KUNIT_EXPECT_EQ(test, o->watches_queued, watches + 1);
	KUNIT_EXPECT_EQ(test, rsva_sim_pasid_state(o->dev, o->pasid), 1);

	device_release_driver(o->dev);
	KUNIT_EXPECT_NULL(test, o->dev->driver);
	/* Done before the driver went. */
	KUNIT_EXPECT_EQ(test, rsva_sim_pasid_state(o->dev, o->pasid), -ENOENT);
	KUNIT_EXPECT_EQ(test, rsva_sva_get_pasid(h), IOMMU_PASID_INVALID);
	KUNIT_EXPECT_EQ(test, rsva_test_watches(), watches);
	order_expect_unowned(test);

	/* The release finishes and lets rsva's work go. */
	KUNIT_ASSERT_NE(test, wait_for_completion_timeout(&o->released, 30 * HZ), 0);
	KUNIT_EXPECT_TRUE(test, o->detached_in_release);
	rsva_test_hold_settle(false);
	/* The held work found nothing left to unbind. */
	KUNIT_EXPECT_EQ(test, rsva_test_settle_unbinds(), settled);
	KUNIT_EXPECT_EQ(test, o->calls, 1);
	KUNIT_EXPECT_EQ(test, rsva_test_watches(), watches);
	KUNIT_EXPECT_EQ(test, rsva_sim_pasid_state(o->dev, o->pasid), -ENOENT);
}

/*
 * The mm is gone (its lease ended and left rsva's map) and its queued
 * unbind waits on rsva's held workqueue when the device's driver goes: the
 * watch of the device's bus waits for rsva's work as the driver's unbind
 * begins, which runs once let go (300 ms later, by another task), so the
 * unbind is done by that work but before the driver's remove: when
 * device_release_driver() returns, the PASID is detached, the bond gone,
 * no watch left and the group unowned.
 */
static void unbind_of_a_dead_mm(struct kunit *test, bool own_dma)
{
	struct order_ctx *o = test->priv;
	unsigned long watches = rsva_test_watches();
	unsigned long settled = rsva_test_settle_unbinds();
	struct rsva_sva *h = order_bind(test, own_dma);

	rsva_test_hold_settle(true);
	mmput(o->mm);
	o->mm = NULL;
	KUNIT_EXPECT_EQ(test, o->calls, 1);
	KUNIT_EXPECT_EQ(test, o->unbind_ret, 0);
	/* Queued, watched, not done (the entry is only cleared). */
	KUNIT_EXPECT_EQ(test, o->watches_queued, watches + 1);
	KUNIT_EXPECT_EQ(test, rsva_test_watches(), watches + 1);
	KUNIT_EXPECT_EQ(test, rsva_sim_pasid_state(o->dev, o->pasid), 0);
	KUNIT_EXPECT_EQ(test, rsva_test_settle_unbinds(), settled);

	queue_delayed_work(system_unbound_wq, &o->let_go, msecs_to_jiffies(300));
	device_release_driver(o->dev);
	KUNIT_EXPECT_NULL(test, o->dev->driver);
	/* Done, by rsva's work, before the driver went. */
	KUNIT_EXPECT_EQ(test, rsva_sim_pasid_state(o->dev, o->pasid), -ENOENT);
	KUNIT_EXPECT_EQ(test, rsva_test_settle_unbinds(), settled + 1);
	KUNIT_EXPECT_EQ(test, rsva_sva_get_pasid(h), IOMMU_PASID_INVALID);
	KUNIT_EXPECT_EQ(test, rsva_test_watches(), watches);
	order_expect_unowned(test);

	flush_delayed_work(&o->let_go);
	KUNIT_EXPECT_EQ(test, rsva_test_settle_unbinds(), settled + 1);
}

/* The two kinds of driver each case runs with. */
struct order_param {
	/* driver_managed_dma: no DMA-API use of the group. */
	bool own_dma;
	const char *name;
};

static const struct order_param order_params[] = {
	{ .own_dma = true, .name = "driver_managed_dma" },
	{ .own_dma = false, .name = "dma_api" },
};

static void order_param_desc(const struct order_param *p, char *desc)
{
	strscpy(desc, p->name, KUNIT_PARAM_DESC_SIZE);
}

KUNIT_ARRAY_PARAM(order, order_params, order_param_desc);

static bool order_own_dma(struct kunit *test)
{
	const struct order_param *p = test->param_value;

	return p->own_dma;
}

static void rsva_deferred_unbind_in_release(struct kunit *test)
{
	unbind_in_release(test, order_own_dma(test));
}

static void rsva_deferred_unbind_of_a_dead_mm(struct kunit *test)
{
	unbind_of_a_dead_mm(test, order_own_dma(test));
}

static struct kunit_case rsva_deferred_unbind_cases[] = {
	KUNIT_CASE_PARAM(rsva_deferred_unbind_in_release, order_gen_params),
	KUNIT_CASE_PARAM(rsva_deferred_unbind_of_a_dead_mm, order_gen_params),
	{}
};

static struct kunit_suite rsva_deferred_unbind_suite = {
	.name = "rsva_deferred_unbind",
	.init = order_init,
	.exit = order_exit,
	.test_cases = rsva_deferred_unbind_cases,
};

kunit_test_suite(rsva_deferred_unbind_suite);

MODULE_DESCRIPTION("KUnit: rsva's unbinds queued by stop callbacks, against the device's driver going");
MODULE_LICENSE("GPL");
