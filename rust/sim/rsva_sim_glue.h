/* SPDX-License-Identifier: GPL-2.0 */
/*
 * rsva_sim: prototypes of rsva_sim_glue.c, for its Rust callers
 * (declared again in rust/sim/glue.rs, and the IOMMU's in
 * rust/sim/kext/iommu/driver.rs) and for the compiler's checks.
 */
#ifndef _RSVA_SIM_GLUE_H
#define _RSVA_SIM_GLUE_H

#include <linux/types.h>

struct bus_type;
struct device;
struct iommu_device;
struct iommu_ops;
struct notifier_block;
struct mm_struct;
struct page;

/* rsva_sim_glue.c */

const char *rsva_sim_iommu_param(void);
int rsva_sim_bus_register(void);
void rsva_sim_bus_unregister(void);
int rsva_sim_iommu_register(struct iommu_device *iommu,
			    const struct iommu_ops *ops,
			    struct notifier_block *nb);
void rsva_sim_iommu_unregister(struct iommu_device *iommu,
			       struct notifier_block *nb);
struct device *rsva_sim_device_create(struct iommu_device *iommu,
				      unsigned int id, unsigned int pasid_bits,
				      void *data, void (*release_data)(void *data));
void *rsva_sim_dev_iommu_priv(struct device *dev);
void rsva_sim_device_destroy(struct device *dev);
void *rsva_sim_device_data(struct device *dev);
void rsva_sim_page_access(struct page *page, unsigned int offset, void *buf,
			  unsigned int len, bool write);
void rsva_sim_page_copy(struct page *dst, unsigned int doff, struct page *src,
			unsigned int soff, unsigned int len);
struct page *rsva_sim_pfn_get_page(unsigned long pfn);
unsigned long rsva_sim_page_to_pfn(struct page *page);
void rsva_sim_put_page(struct page *page);
struct mm_struct *rsva_sim_test_mm_alloc(void);
int rsva_sim_err(const void *ptr);

/* In Rust (rust/sim/device.rs, through rust/kext/iommu/dma_owner.rs): the bus's DMA ownership. */
int rsva_sim_dma_configure(struct device *dev, bool driver_managed_dma);
void rsva_sim_dma_cleanup(struct device *dev);
struct mm_struct *rsva_sim_current_mm(void);

/* Fields whose offsets Rust and C must agree on (rust/sim/glue.rs). */
enum rsva_sim_field {
	RSVA_SIM_DOMAIN_OPS,
	RSVA_SIM_DOMAIN_MM,
	RSVA_SIM_IOMMU_MAX_PASIDS,
	RSVA_SIM_NOTIFIER_OPS,
	RSVA_SIM_UACCE_PRIV,
	RSVA_SIM_UACCE_ALGS,
	RSVA_SIM_UACCE_API_VER,
	RSVA_SIM_QUEUE_PRIV,
	RSVA_SIM_IFACE_FLAGS,
	RSVA_SIM_IFACE_OPS,
};

size_t rsva_sim_c_offset(enum rsva_sim_field field);
void *rsva_sim_err_ptr(int err);

#endif /* _RSVA_SIM_GLUE_H */
