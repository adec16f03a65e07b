/* SPDX-License-Identifier: GPL-2.0 */
/*
 * rsva: helpers that rsva.ko exports to KUnit test modules only (namespace
 * EXPORTED_FOR_KUNIT_TESTING, and only with CONFIG_KUNIT).
 */
#ifndef _RSVA_TEST_H
#define _RSVA_TEST_H

#include <linux/types.h>

struct mm_struct;

/*
 * Maps @len bytes of anonymous memory in @mm from the calling kthread,
 * touched (zeroed) when @touch; returns the address or an errno value.
 */
unsigned long rsva_test_mmap(struct mm_struct *mm, unsigned long len, bool touch);

/* Unmaps [@addr, @addr + @len) of @mm from the calling kthread. */
void rsva_test_munmap(struct mm_struct *mm, unsigned long addr, unsigned long len);

/*
 * The number of mm's that rsva mirrors (one shared mirror each), and the
 * number of their clients in *@clients when @clients is not NULL.
 */
unsigned long rsva_test_mirrors(unsigned long *clients);

/* Switches serving the kernel's SVA API on or off, as debugfs rsva/serve. */
int rsva_test_set_serving(bool on);

/*
 * The number of devices rsva watches, for the SVA domains it keeps and the
 * unbinds that stop callbacks queued.
 */
unsigned long rsva_test_watches(void);

/*
 * Holds back (@hold true) the work items that settle an mm's PASID lease on
 * rsva's workqueue after its release (the unbinds its stop callbacks queued,
 * the free of the domains kept for it): a held item waits before it starts.
 * With @hold false, lets them go and waits until every item queued on
 * rsva's workqueue so far has run.
 */
void rsva_test_hold_settle(bool hold);

/* The number of unbinds queued by stop callbacks that settling a lease did. */
unsigned long rsva_test_settle_unbinds(void);

/*
 * Whether the mm whose PASID is @pasid is on the IOMMU core's list for
 * kernel page-table invalidation: 1 or 0 while rsva leases @pasid,
 * -ENOENT otherwise.
 */
int rsva_test_tracked(u32 pasid);

/*
 * The uid that @pasid's lease is charged to, and in *@held (unless NULL)
 * how many PASIDs that uid holds through rsva; -ENOENT when rsva does not
 * lease @pasid.
 */
long long rsva_test_pasid_uid(u32 pasid, u32 *held);

#endif /* _RSVA_TEST_H */
