// SPDX-License-Identifier: GPL-2.0
/*
 * rsva_sim: the C side of the simulated SVA platform.
 *
 * The platform's logic is in Rust (rust/sim/). This file holds what Rust
 * cannot define or reach directly: the bus its devices sit on, device
 * creation through the IOMMU core's mock-device path, the prototypes of the
 * IOMMU core's bus registration (private to drivers/iommu, exported under
 * CONFIG_IOMMUFD_TEST), and wrappers of static inline helpers.
 */
#include <linux/device.h>
#include <linux/err.h>
#include <linux/highmem.h>
#include <linux/iommu.h>
#include <linux/mm.h>
#include <linux/mmu_notifier.h>
#include <linux/moduleparam.h>
#include <linux/sched.h>
#include <linux/property.h>
#include <linux/slab.h>
#include <linux/uacce.h>
#include <rsva_sim.h>

/*
 * The IOMMU core's registration of an IOMMU for a bus and of a mock device,
 * exported under CONFIG_IOMMUFD_TEST: private to drivers/iommu (Kbuild
 * adds it to the include path of this file only).
 */
#include "iommu-priv.h"
#include "rsva_sim_glue.h"

/* mm_alloc() is exported for KUnit only; rsva_sim's KUnit suites use it. */
MODULE_IMPORT_NS("EXPORTED_FOR_KUNIT_TESTING");

/*
 * The IOMMU driver whose SVA domains the simulator imitates (see
 * rust/sim/personality.rs). A string parameter, which the Rust module
 * macro cannot declare; Rust reads it once at load.
 */
static char rsva_sim_iommu[8] = "intel";
module_param_string(iommu, rsva_sim_iommu, sizeof(rsva_sim_iommu), 0444);
MODULE_PARM_DESC(iommu, "SVA domains behave as those of this IOMMU driver: intel (default), amd or arm (SMMUv3)");

const char *rsva_sim_iommu_param(void)
{
	return rsva_sim_iommu;
}

#define to_rsva_sim_driver(d) container_of_const(d, struct rsva_sim_driver, driver)

static int rsva_sim_bus_dma_configure(struct device *dev)
{
	return rsva_sim_dma_configure(dev, to_rsva_sim_driver(dev->driver)->driver_managed_dma);
}

static void rsva_sim_bus_dma_cleanup(struct device *dev)
{
	rsva_sim_dma_cleanup(dev);
}

static int rsva_sim_bus_probe(struct device *dev)
{
	const struct rsva_sim_driver *drv = to_rsva_sim_driver(dev->driver);

	return drv->probe ? drv->probe(dev) : 0;
}

static void rsva_sim_bus_remove(struct device *dev)
{
	const struct rsva_sim_driver *drv = to_rsva_sim_driver(dev->driver);

	if (drv->remove)
		drv->remove(dev);
}

static const struct bus_type rsva_sim_bus = {
	.name = "rsva_sim",
	.probe = rsva_sim_bus_probe,
	.remove = rsva_sim_bus_remove,
	.dma_configure = rsva_sim_bus_dma_configure,
	.dma_cleanup = rsva_sim_bus_dma_cleanup,
};

int rsva_sim_driver_register(struct rsva_sim_driver *drv)
{
	drv->driver.bus = &rsva_sim_bus;
	return driver_register(&drv->driver);
}
EXPORT_SYMBOL_GPL(rsva_sim_driver_register);

void rsva_sim_driver_unregister(struct rsva_sim_driver *drv)
{
	driver_unregister(&drv->driver);
}
EXPORT_SYMBOL_GPL(rsva_sim_driver_unregister);

/*
 * A device of the simulated bus and the Rust object that models it, which
 * the device owns until it is released (rust/sim/kext/device/bus.rs).
 */
struct rsva_sim_device {
	struct device dev;
	void *data;
	void (*release_data)(void *data);
};

static void rsva_sim_device_release(struct device *dev)
{
	struct rsva_sim_device *sdev = container_of(dev, struct rsva_sim_device, dev);

	sdev->release_data(sdev->data);
	kfree(sdev);
}

int rsva_sim_bus_register(void)
{
	return bus_register(&rsva_sim_bus);
}

void rsva_sim_bus_unregister(void)
{
	bus_unregister(&rsva_sim_bus);
}

int rsva_sim_iommu_register(struct iommu_device *iommu,
			    const struct iommu_ops *ops,
			    struct notifier_block *nb)
{
	int rc;

	/* The core links each probed device to the IOMMU in sysfs. */
	rc = iommu_device_sysfs_add(iommu, NULL, NULL, "rsva_sim_iommu");
	if (rc)
		return rc;
	rc = iommu_device_register_bus(iommu, ops, &rsva_sim_bus, nb);
	if (rc)
		iommu_device_sysfs_remove(iommu);
	return rc;
}

void rsva_sim_iommu_unregister(struct iommu_device *iommu,
			       struct notifier_block *nb)
{
	iommu_device_unregister_bus(iommu, &rsva_sim_bus, nb);
	iommu_device_sysfs_remove(iommu);
}

/*
 * Creates and adds a device of the bus. The device owns @data from the
 * call on, failure included: @release_data releases it once, when the
 * device is released (at once on failure).
 */
struct device *rsva_sim_device_create(struct iommu_device *iommu,
				      unsigned int id, unsigned int pasid_bits,
				      void *data, void (*release_data)(void *data))
{
	struct property_entry props[] = {
		PROPERTY_ENTRY_U32("pasid-num-bits", pasid_bits),
		{}
	};
	struct rsva_sim_device *sdev;
	int rc;

	sdev = kzalloc_obj(*sdev);
	if (!sdev) {
		release_data(data);
		return ERR_PTR(-ENOMEM);
	}

	device_initialize(&sdev->dev);
	sdev->dev.bus = &rsva_sim_bus;
	sdev->dev.release = rsva_sim_device_release;
	sdev->data = data;
	sdev->release_data = release_data;
	rc = dev_set_name(&sdev->dev, "rsva_sim%u", id);
	if (rc)
		goto err_put;
	rc = device_create_managed_software_node(&sdev->dev, props, NULL);
	if (rc)
		goto err_put;
	/* Sets the fwspec to our IOMMU and adds the device: the core probes it. */
	rc = iommu_mock_device_add(&sdev->dev, iommu);
	if (rc)
		goto err_put;
	return &sdev->dev;

err_put:
	put_device(&sdev->dev);
	return ERR_PTR(rc);
}

/* The IOMMU driver's data of @dev (rust/sim/kext/iommu/driver.rs). */
void *rsva_sim_dev_iommu_priv(struct device *dev)
{
	return dev_iommu_priv_get(dev);
}

void rsva_sim_device_destroy(struct device *dev)
{
	device_unregister(dev);
}

void *rsva_sim_device_data(struct device *dev)
{
	if (!dev || dev->bus != &rsva_sim_bus)
		return NULL;
	return container_of(dev, struct rsva_sim_device, dev)->data;
}

void rsva_sim_page_access(struct page *page, unsigned int offset, void *buf,
			  unsigned int len, bool write)
{
	void *va = kmap_local_page(page);

	if (write)
		memcpy(va + offset, buf, len);
	else
		memcpy(buf, va + offset, len);
	kunmap_local(va);
}

void rsva_sim_page_copy(struct page *dst, unsigned int doff, struct page *src,
			unsigned int soff, unsigned int len)
{
	void *s = kmap_local_page(src);
	void *d = kmap_local_page(dst);

	memcpy(d + doff, s + soff, len);
	kunmap_local(d);
	kunmap_local(s);
}

/*
 * A reference on the folio of @pfn's page for the duration of an access, or
 * NULL when the folio is free (a translation the IOMMU should have
 * forgotten). Pages of a large folio (THP) have no reference count of their
 * own: the folio's is the one to take, as gup's try_get_folio() does.
 */
struct page *rsva_sim_pfn_get_page(unsigned long pfn)
{
	struct page *page = pfn_to_page(pfn);
	struct folio *folio = page_folio(page);

	if (!folio_try_get(folio))
		return NULL;
	if (unlikely(page_folio(page) != folio)) {
		/* Split or freed and reused meanwhile. */
		folio_put(folio);
		return NULL;
	}
	return page;
}

#if IS_ENABLED(CONFIG_KUNIT)
struct mm_struct *rsva_sim_test_mm_alloc(void)
{
	return mm_alloc();
}
#endif

unsigned long rsva_sim_page_to_pfn(struct page *page)
{
	return page_to_pfn(page);
}

void rsva_sim_put_page(struct page *page)
{
	put_page(page);
}

/*
 * current->mm, read in C: on this configuration bindgen's layout of
 * struct task_struct does not match the compiler's, so the field cannot be
 * read from Rust (see Documentation/simulated-platform.rst).
 */
struct mm_struct *rsva_sim_current_mm(void)
{
	return current->mm;
}

/* Offsets of the fields Rust writes or reads, checked by KUnit. */
size_t rsva_sim_c_offset(enum rsva_sim_field field)
{
	switch (field) {
	case RSVA_SIM_DOMAIN_OPS:
		return offsetof(struct iommu_domain, ops);
	case RSVA_SIM_DOMAIN_MM:
		return offsetof(struct iommu_domain, mm);
	case RSVA_SIM_IOMMU_MAX_PASIDS:
		return offsetof(struct iommu_device, max_pasids);
	case RSVA_SIM_NOTIFIER_OPS:
		return offsetof(struct mmu_notifier, ops);
	case RSVA_SIM_UACCE_PRIV:
		return offsetof(struct uacce_device, priv);
	case RSVA_SIM_UACCE_ALGS:
		return offsetof(struct uacce_device, algs);
	case RSVA_SIM_UACCE_API_VER:
		return offsetof(struct uacce_device, api_ver);
	case RSVA_SIM_QUEUE_PRIV:
		return offsetof(struct uacce_queue, priv);
	case RSVA_SIM_IFACE_FLAGS:
		return offsetof(struct uacce_interface, flags);
	case RSVA_SIM_IFACE_OPS:
		return offsetof(struct uacce_interface, ops);
	}
	return SIZE_MAX;
}

int rsva_sim_err(const void *ptr)
{
	return IS_ERR(ptr) ? PTR_ERR(ptr) : 0;
}

void *rsva_sim_err_ptr(int err)
{
	return ERR_PTR(err);
}

/*
 * For test modules (selftests/modules/), include/rsva_sim.h: the simulated
 * devices, and what their PASID tables hold.
 */
struct device *rsva_sim_get_device(unsigned int id)
{
	char name[16];

	snprintf(name, sizeof(name), "rsva_sim%u", id);
	return bus_find_device_by_name(&rsva_sim_bus, NULL, name);
}
EXPORT_SYMBOL_GPL(rsva_sim_get_device);

EXPORT_SYMBOL_GPL(rsva_sim_pasid_state);
