// SPDX-License-Identifier: GPL-2.0
/*
 * rsva_sim_drivers: two drivers of the simulated bus for the DMA ownership
 * tests. rsva_sim_dma_api uses the DMA API (its bus takes DMA-API ownership
 * of the device's group in dma_configure); rsva_sim_own_dma manages DMA
 * itself (driver_managed_dma) and takes none. Writing 1 to the fail_probe
 * parameter makes the next probes fail with -ENXIO, after dma_configure,
 * to test that the ownership is given back. debugfs rsva_sim_drivers/claim
 * claims and releases groups through rsva's C API for the tests.
 */
#include <linux/capability.h>
#include <linux/debugfs.h>
#include <linux/device.h>
#include <linux/module.h>
#include <linux/pci.h>
#include <linux/uaccess.h>
#include <rsva.h>
#include <rsva_sim.h>

static bool fail_probe;
module_param(fail_probe, bool, 0644);
MODULE_PARM_DESC(fail_probe, "Fail every probe with -ENXIO (tests)");

static int drivers_probe(struct device *dev)
{
	return READ_ONCE(fail_probe) ? -ENXIO : 0;
}

static struct rsva_sim_driver dma_api_driver = {
	.driver = { .name = "rsva_sim_dma_api" },
	.probe = drivers_probe,
};

static struct rsva_sim_driver own_dma_driver = {
	.driver = { .name = "rsva_sim_own_dma" },
	.driver_managed_dma = true,
	.probe = drivers_probe,
};

/*
 * The DMA ownership hook, debugfs rsva_sim_drivers/claim: writing
 * "OP OWNER DEV" runs OP (claim-group, release-group, claim-device,
 * release-device) through rsva's C API for owner "a" or "b" on DEV (simN,
 * or a PCI device name); the write fails with the call's errno. Reading
 * lists the simulated devices with rsva_dma_claimed().
 */
static const char drivers_owners[2];

static struct device *drivers_find_device(const char *name)
{
	unsigned int id;

	if (sscanf(name, "sim%u", &id) == 1)
		return rsva_sim_get_device(id);
	return bus_find_device_by_name(&pci_bus_type, NULL, name);
}

static ssize_t drivers_claim_write(struct file *file, const char __user *ubuf,
				   size_t len, loff_t *ppos)
{
	char buf[64], op[16], owner[2], name[32];
	struct device *dev;
	const void *who;
	int ret;

	if (!capable(CAP_SYS_ADMIN))
		return -EPERM;
	if (len >= sizeof(buf))
		return -EINVAL;
	if (copy_from_user(buf, ubuf, len))
		return -EFAULT;
	buf[len] = '\0';
	if (sscanf(buf, "%15s %1s %31s", op, owner, name) != 3 ||
	    (owner[0] != 'a' && owner[0] != 'b'))
		return -EINVAL;
	who = &drivers_owners[owner[0] - 'a'];
	dev = drivers_find_device(name);
	if (!dev)
		return -ENODEV;
	if (!strcmp(op, "claim-group"))
		ret = rsva_dma_claim_group(dev, who);
	else if (!strcmp(op, "release-group"))
		ret = rsva_dma_release_group(dev, who);
	else if (!strcmp(op, "claim-device"))
		ret = rsva_dma_claim_device(dev, who);
	else if (!strcmp(op, "release-device"))
		ret = rsva_dma_release_device(dev, who);
	else
		ret = -EINVAL;
	put_device(dev);
	return ret ?: len;
}

static ssize_t drivers_claim_read(struct file *file, char __user *ubuf,
				  size_t len, loff_t *ppos)
{
	char buf[256];
	struct device *dev;
	unsigned int id;
	int n = 0;

	for (id = 0; id < 8; id++) {
		dev = rsva_sim_get_device(id);
		if (!dev)
			continue;
		n += scnprintf(buf + n, sizeof(buf) - n, "rsva_sim%u %d\n", id,
			       rsva_dma_claimed(dev));
		put_device(dev);
	}
	return simple_read_from_buffer(ubuf, len, ppos, buf, n);
}

static const struct file_operations drivers_claim_fops = {
	.owner = THIS_MODULE,
	.read = drivers_claim_read,
	.write = drivers_claim_write,
};

static struct dentry *drivers_dir;

static int __init drivers_init(void)
{
	int ret = rsva_sim_driver_register(&dma_api_driver);

	if (ret)
		return ret;
	ret = rsva_sim_driver_register(&own_dma_driver);
	if (ret) {
		rsva_sim_driver_unregister(&dma_api_driver);
		return ret;
	}
	drivers_dir = debugfs_create_dir("rsva_sim_drivers", NULL);
	debugfs_create_file("claim", 0600, drivers_dir, NULL, &drivers_claim_fops);
	return 0;
}
module_init(drivers_init);

static void __exit drivers_exit(void)
{
	debugfs_remove(drivers_dir);
	rsva_sim_driver_unregister(&own_dma_driver);
	rsva_sim_driver_unregister(&dma_api_driver);
}
module_exit(drivers_exit);

MODULE_DESCRIPTION("Drivers of the simulated SVA bus for the DMA ownership tests");
MODULE_LICENSE("GPL");
