/* SPDX-License-Identifier: GPL-2.0 */
/*
 * rsva: C helpers for the Rust crate (rust/kext/glue.rs), for what Rust cannot
 * reach: static inlines, macros, and fields whose bindgen layout is not
 * trusted (see Documentation/simulated-platform.rst on task_struct).
 * Internal to rsva.ko; nothing here is exported.
 */
#ifndef _RSVA_GLUE_H
#define _RSVA_GLUE_H

#include <linux/types.h>
#include <rsva_test.h>

struct device;
struct iommu_domain;
struct iommu_group;
struct mm_struct;

struct rsva_mm_ref;

int rsva_glue_init(void);
void rsva_glue_exit(void);
void rsva_glue_flush(void);
struct workqueue_struct *rsva_glue_wq(void);
bool rsva_module_get(void);
void rsva_module_put(void);
struct rsva_mm_ref *rsva_mm_ref_get(struct mm_struct *mm);
struct mm_struct *rsva_mm_ref_mm(struct rsva_mm_ref *ref);
void rsva_mm_ref_put(struct rsva_mm_ref *ref);

u32 rsva_current_uid(void);
struct mm_struct *rsva_current_mm(void);
bool rsva_in_task(void);

u32 rsva_mm_pasid(struct mm_struct *mm);
int rsva_mm_set_pasid(struct mm_struct *mm, u32 pasid);
void rsva_assert_mmap_unlocked(struct mm_struct *mm);
struct mm_struct *rsva_test_mm_alloc(void);

u32 rsva_dev_max_pasids(struct device *dev);

bool rsva_domain_of_iommu(struct iommu_domain *domain, struct device *dev);
int rsva_keep_for(struct device *dev);
void rsva_unkeep_for(struct device *dev);
bool rsva_kept_for(struct device *dev);
/* For KUnit: the gate of rsva_test_hold_settle() and the count of its unbinds. */
void rsva_test_settle_gate(void);
void rsva_test_settled_unbinds(unsigned long n);
/*
 * In Rust (rust/ffi/sva.rs): the unbinds queued for @dev, and the domains
 * kept for it.
 */
void rsva_device_gone(struct device *dev);

void rsva_rwsem_lock(int which, bool write);
void rsva_rwsem_unlock(int which, bool write);

struct device *rsva_test_free_pci_device(void);
int rsva_test_bus_register(void);
void rsva_test_bus_unregister(void);
int rsva_test_bus_driver_register(void);
void rsva_test_bus_driver_unregister(void);
struct device *rsva_test_bus_device_add(void);
void rsva_test_bus_device_del(struct device *dev);
struct device *rsva_test_device_new(void);
void rsva_test_device_free(struct device *dev);

struct mmu_interval_notifier;
struct mmu_notifier_range;

void rsva_mni_set_seq(struct mmu_interval_notifier *sub, unsigned long seq);
bool rsva_mni_read_retry(struct mmu_interval_notifier *sub, unsigned long seq);
struct mm_struct *rsva_mni_mm(const struct mmu_interval_notifier *sub);
bool rsva_mn_range_blockable(const struct mmu_notifier_range *range);
unsigned long rsva_mn_range_start(const struct mmu_notifier_range *range);
unsigned long rsva_mn_range_end(const struct mmu_notifier_range *range);

struct page;

struct page *rsva_pfn_page_get(unsigned long pfn);
bool rsva_page_copy_to_user(struct page *page, u64 uaddr);
void rsva_page_put(struct page *page);
void rsva_pfn_copy_page(unsigned long pfn, struct page *from);
bool rsva_pfn_copy_user_nofault(unsigned long pfn, u64 uaddr, bool to_user);
bool rsva_is_zero_pfn(unsigned long pfn);

struct folio;

unsigned long rsva_page_pfn(const struct page *page);
void rsva_folio_unlock_put(struct folio *folio);
void rsva_test_touch(struct mm_struct *mm, unsigned long addr, unsigned long len);
struct dev_pagemap;
struct vm_area_struct;
struct vm_fault;

long rsva_devmem_region_request(unsigned long size, const char *name, u64 *start);
void rsva_devmem_region_release(u64 start, unsigned long size);
struct dev_pagemap *rsva_pfn_device_private_pgmap(unsigned long pfn);
struct dev_pagemap *rsva_folio_pgmap(struct folio *folio);
unsigned long rsva_folio_pfn(struct folio *folio);
unsigned int rsva_folio_order(struct folio *folio);
unsigned int rsva_pfn_folio_order(unsigned long pfn);
void rsva_zone_device_folio_init(unsigned long pfn, struct dev_pagemap *pgmap,
				 unsigned int order);
void rsva_pfn_unlock_put(unsigned long pfn);
unsigned long rsva_sys_folio_alloc_locked(struct vm_area_struct *vma,
					  unsigned long addr, unsigned int order,
					  bool nofail);
void rsva_copy_highpage_pfn(unsigned long to, unsigned long from);
void rsva_clear_highpage_pfn(unsigned long pfn);
unsigned long rsva_migrate_pfn(unsigned long pfn);
unsigned long rsva_migrate_pfn_to_pfn(unsigned long mpfn);
unsigned long rsva_vmf_pfn(const struct vm_fault *vmf);
struct page *rsva_vmf_page(const struct vm_fault *vmf);
struct vm_area_struct *rsva_vmf_vma(const struct vm_fault *vmf);
unsigned long rsva_vmf_address(const struct vm_fault *vmf);
bool rsva_vmf_pte_mapped(const struct vm_fault *vmf);

size_t rsva_iopf_c_offset(unsigned int field);

#endif /* _RSVA_GLUE_H */
