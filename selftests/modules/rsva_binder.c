// SPDX-License-Identifier: GPL-2.0
/*
 * rsva_binder: a kernel thread that binds and unbinds rsva_sim device 0
 * through the kernel's SVA API (iommu_sva_bind_device()) in a loop, for
 * the unload test of vm/check-plan.sh (review finding 15): while rsva
 * unloads, binds must be served, by rsva until its exit clears it as the
 * provider and by the IOMMU core's C code after, never fail. It does not
 * use rsva's own API, so that rsva can be unloaded under it.
 *
 * debugfs rsva_binder/loop: writing "start" starts the thread, "stop"
 * stops it; reading gives "binds N errors N enodev N last E": binds that
 * succeeded, binds that failed (of them with -ENODEV), the last errno.
 */
#include <linux/capability.h>
#include <linux/debugfs.h>
#include <linux/device.h>
#include <linux/err.h>
#include <linux/iommu.h>
#include <linux/delay.h>
#include <linux/kthread.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/sched/mm.h>
#include <linux/sched/task.h>
#include <linux/uaccess.h>
#include <rsva_sim.h>

/* mm_alloc() is exported for KUnit only. */
MODULE_IMPORT_NS("EXPORTED_FOR_KUNIT_TESTING");

static DEFINE_MUTEX(binder_lock);
static struct task_struct *binder_task;
static atomic_long_t binder_binds, binder_errors, binder_enodev;
static atomic_t binder_last;

/*
 * Each round binds a fresh mm that dies while bound, as an exiting
 * process's does, and then unbinds it: its PASID's lease has ended, so
 * rsva keeps no domain for it (a kept domain's device watch would pin
 * rsva, which could then never be unloaded under the loop).
 */
static int binder_fn(void *data)
{
	struct device *dev = data;
	struct mm_struct *mm;
	struct iommu_sva *h;

	while (!kthread_should_stop()) {
		mm = mm_alloc();
		if (!mm) {
			atomic_long_inc(&binder_errors);
			atomic_set(&binder_last, -ENOMEM);
			msleep(20);
			continue;
		}
		h = iommu_sva_bind_device(dev, mm);
		mmput(mm);
		if (IS_ERR(h)) {
			atomic_long_inc(&binder_errors);
			if (PTR_ERR(h) == -ENODEV)
				atomic_long_inc(&binder_enodev);
			atomic_set(&binder_last, PTR_ERR(h));
		} else {
			atomic_long_inc(&binder_binds);
			iommu_sva_unbind_device(h);
		}
		cond_resched();
	}
	put_device(dev);
	return 0;
}

static int binder_start(void)
{
	struct task_struct *t;
	struct device *dev;

	if (binder_task)
		return -EBUSY;
	dev = rsva_sim_get_device(0);
	if (!dev)
		return -ENODEV;
	atomic_long_set(&binder_binds, 0);
	atomic_long_set(&binder_errors, 0);
	atomic_long_set(&binder_enodev, 0);
	atomic_set(&binder_last, 0);
	t = kthread_run(binder_fn, dev, "rsva_binder");
	if (IS_ERR(t)) {
		put_device(dev);
		return PTR_ERR(t);
	}
	get_task_struct(t);
	binder_task = t;
	return 0;
}

static void binder_stop(void)
{
	if (!binder_task)
		return;
	kthread_stop(binder_task);
	put_task_struct(binder_task);
	binder_task = NULL;
}

static ssize_t binder_write(struct file *file, const char __user *ubuf,
			    size_t len, loff_t *ppos)
{
	char buf[16];
	int ret;

	if (!capable(CAP_SYS_ADMIN))
		return -EPERM;
	if (len >= sizeof(buf))
		return -EINVAL;
	if (copy_from_user(buf, ubuf, len))
		return -EFAULT;
	buf[len] = '\0';
	guard(mutex)(&binder_lock);
	if (sysfs_streq(buf, "start")) {
		ret = binder_start();
	} else if (sysfs_streq(buf, "stop")) {
		binder_stop();
		ret = 0;
	} else {
		ret = -EINVAL;
	}
	return ret ?: len;
}

static ssize_t binder_read(struct file *file, char __user *ubuf, size_t len,
			   loff_t *ppos)
{
	char buf[128];
	int n;

	n = scnprintf(buf, sizeof(buf), "binds %ld errors %ld enodev %ld last %d\n",
		      atomic_long_read(&binder_binds), atomic_long_read(&binder_errors),
		      atomic_long_read(&binder_enodev), atomic_read(&binder_last));
	return simple_read_from_buffer(ubuf, len, ppos, buf, n);
}

static const struct file_operations binder_fops = {
	.owner = THIS_MODULE,
	.read = binder_read,
	.write = binder_write,
};

static struct dentry *binder_dir;

static int __init rsva_binder_init(void)
{
	binder_dir = debugfs_create_dir("rsva_binder", NULL);
	debugfs_create_file("loop", 0600, binder_dir, NULL, &binder_fops);
	return 0;
}
module_init(rsva_binder_init);

static void __exit rsva_binder_exit(void)
{
	debugfs_remove(binder_dir);
	guard(mutex)(&binder_lock);
	binder_stop();
}
module_exit(rsva_binder_exit);

MODULE_DESCRIPTION("Binds a simulated device in a loop while rsva unloads (tests)");
MODULE_LICENSE("GPL");
