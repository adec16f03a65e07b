// SPDX-License-Identifier: GPL-2.0
/*
 * rsva: C helpers for the Rust crate; prototypes and purpose in
 * rsva_glue.h, users in rust/kext/glue.rs.
 */
#include <kunit/visibility.h>
#include <linux/cred.h>
#include <linux/highmem.h>
#include <linux/hmm.h>
#include <linux/kthread.h>
#include <linux/mman.h>
#include <linux/device.h>
#include <linux/list.h>
#include <linux/iommu.h>
#include <linux/ioport.h>
#include <linux/lockdep.h>
#include <linux/memremap.h>
#include <linux/migrate.h>
#include <linux/mm.h>
#include <linux/mmu_context.h>
#include <linux/mmu_notifier.h>
#include <linux/module.h>
#include <linux/pagemap.h>
#include <linux/pci.h>
#include <linux/pagemap.h>
#include <linux/rwsem.h>
#include <linux/sched.h>
#include <linux/sched/mm.h>
#include <linux/slab.h>
#include <linux/user_namespace.h>
#include <linux/workqueue.h>

#include "rsva_glue.h"

/* mm_alloc() is exported for KUnit only; rsva's KUnit suites use it. */
MODULE_IMPORT_NS("EXPORTED_FOR_KUNIT_TESTING");

/* Taken for reading by rsva's own bind entry points, for writing by the switch. */
static DECLARE_RWSEM(rsva_serve_rwsem);

/*
 * Taken for reading by every rsva bind (across its ownership check and the
 * PASID attach), for writing by rsva's DMA ownership claims: a claim and a
 * bind on one group cannot pass each other.
 */
static DECLARE_RWSEM(rsva_owner_rwsem);

/* Runs the mmdrop()s that may not run where their reference was dropped. */
static struct workqueue_struct *rsva_wq;

int rsva_glue_init(void)
{
	rsva_wq = alloc_workqueue("rsva", WQ_UNBOUND, 0);
	return rsva_wq ? 0 : -ENOMEM;
}

void rsva_glue_exit(void)
{
	destroy_workqueue(rsva_wq);
}

/* Waits for the deferred mmdrop()s and frees queued so far. */
void rsva_glue_flush(void)
{
	flush_workqueue(rsva_wq);
}

struct workqueue_struct *rsva_glue_wq(void)
{
	return rsva_wq;
}

bool rsva_module_get(void)
{
	return try_module_get(THIS_MODULE);
}

void rsva_module_put(void)
{
	module_put(THIS_MODULE);
}

/*
 * An mmgrab() reference that may be dropped in any context. The last
 * mmdrop() runs __mmdrop(), which frees page tables (taking locks that are
 * not softirq-safe) and may IPI other CPUs: outside task context it is
 * moved to rsva's workqueue. The work item is allocated with the
 * reference, so dropping it cannot fail.
 */
struct rsva_mm_ref {
	struct work_struct work;
	struct mm_struct *mm;
};

static void rsva_mm_ref_work(struct work_struct *work)
{
	struct rsva_mm_ref *ref = container_of(work, struct rsva_mm_ref, work);

	mmdrop(ref->mm);
	kfree(ref);
}

struct rsva_mm_ref *rsva_mm_ref_get(struct mm_struct *mm)
{
	struct rsva_mm_ref *ref = kzalloc_obj(*ref);

	if (!ref)
		return NULL;
	INIT_WORK(&ref->work, rsva_mm_ref_work);
	mmgrab(mm);
	ref->mm = mm;
	return ref;
}

struct mm_struct *rsva_mm_ref_mm(struct rsva_mm_ref *ref)
{
	return ref->mm;
}

void rsva_mm_ref_put(struct rsva_mm_ref *ref)
{
	if (in_task()) {
		rsva_mm_ref_work(&ref->work);
		return;
	}
	queue_work(rsva_wq, &ref->work);
}

u32 rsva_current_uid(void)
{
	return from_kuid(&init_user_ns, current_uid());
}

struct mm_struct *rsva_current_mm(void)
{
	return current->mm;
}

/* Whether the caller runs in task context, not in an interrupt (soft or hard). */
bool rsva_in_task(void)
{
	return in_task();
}

/* The mm's PASID as ENQCMD and the IOMMU core see it, or IOMMU_PASID_INVALID. */
u32 rsva_mm_pasid(struct mm_struct *mm)
{
	struct iommu_mm_data *iommu_mm = READ_ONCE(mm->iommu_mm);

	return iommu_mm ? iommu_mm->pasid : IOMMU_PASID_INVALID;
}

/*
 * Publish @pasid as the mm's PASID exactly as the IOMMU core does
 * (iommu_alloc_mm_data()): from now on the core owns it and frees it in
 * __mmdrop() -> mm_pasid_drop(). rsva serialises its callers; the core
 * does not publish while rsva serves the SVA API.
 */
int rsva_mm_set_pasid(struct mm_struct *mm, u32 pasid)
{
	struct iommu_mm_data *iommu_mm;

	if (mm->iommu_mm || !arch_pgtable_dma_compat(mm))
		return -EBUSY;
	iommu_mm = kzalloc_obj(*iommu_mm);
	if (!iommu_mm)
		return -ENOMEM;
	iommu_mm->pasid = pasid;
	iommu_mm->mm = mm;
	INIT_LIST_HEAD(&iommu_mm->sva_domains);
	INIT_LIST_HEAD(&iommu_mm->mm_list_elm);
	/* Readers (ENQCMD's #GP fixup) must see the fields initialised. */
	smp_store_release(&mm->iommu_mm, iommu_mm);
	return 0;
}

void rsva_assert_mmap_unlocked(struct mm_struct *mm)
{
	lockdep_assert_not_held(&mm->mmap_lock);
}

#if IS_ENABLED(CONFIG_KUNIT)
struct mm_struct *rsva_test_mm_alloc(void)
{
	return mm_alloc();
}
#endif

u32 rsva_dev_max_pasids(struct device *dev)
{
	return dev->iommu ? dev->iommu->max_pasids : 0;
}

/*
 * Whether @dev is probed by the IOMMU that allocated @domain: the IOMMU core
 * holds that IOMMU driver's module while it has such a device.
 */
bool rsva_domain_of_iommu(struct iommu_domain *domain, struct device *dev)
{
	return dev->iommu && dev->iommu->iommu_dev &&
	       dev->iommu->iommu_dev->ops == domain->owner;
}

/*
 * Device watches. rsva keeps an mm's SVA domain for reuse when its last
 * bond goes (see rust/sva/bond.rs); the domain belongs to the IOMMU driver
 * of the device it was last attached through, which may be a module. A
 * devres action on that device frees the kept domains when the device is
 * deleted or its driver unbound, while the IOMMU driver is still there.
 * An unbind that a stop callback queued in an mm's release watches its
 * device the same way; rsva's bus watch (DriverWatch of rust/sva/bond.rs)
 * does both earlier, when the driver's unbind begins, for the devices
 * rsva_kept_for() finds watched, and the action does what came after.
 *
 * Each watch pins rsva, so the action never outlives rsva's code. The pin
 * is dropped by a second devres action, registered first so that it runs
 * after rsva_watch_release() returned, whose function is the kernel's
 * symbol_put_addr(): the last reference to rsva is never dropped by rsva's
 * own code, which could otherwise still be running (its return) when an
 * unload that the put allowed frees it (review finding 15).
 */
struct rsva_watch {
	struct list_head node;
	struct device *dev;
	unsigned int kept;
};

static LIST_HEAD(rsva_watches);
static DEFINE_MUTEX(rsva_watches_lock);

static void rsva_watch_release(void *data)
{
	/* Does what is queued and kept for the device, which unkeeps it. */
	rsva_device_gone(data);
}

/* The address symbol_put_addr() finds rsva by: any function of rsva. */
#define RSVA_WATCH_PIN ((void *)rsva_watch_release)
#ifdef CONFIG_MODULE_UNLOAD
#define RSVA_WATCH_PUT symbol_put_addr
#else
/* Modules are never unloaded; module_put() does nothing either. */
static void rsva_watch_put_nop(void *addr)
{
}

#define RSVA_WATCH_PUT rsva_watch_put_nop
#endif

/* One more domain kept for @dev: watch @dev unless it is watched. */
int rsva_keep_for(struct device *dev)
{
	struct rsva_watch *w;
	int ret;

	guard(mutex)(&rsva_watches_lock);
	list_for_each_entry(w, &rsva_watches, node) {
		if (w->dev == dev) {
			w->kept++;
			return 0;
		}
	}
	w = kzalloc_obj(*w);
	if (!w)
		return -ENOMEM;
	if (!try_module_get(THIS_MODULE)) {
		kfree(w);
		return -ENODEV;
	}
	/* Runs second, after rsva_watch_release(), in the kernel's code. */
	ret = devm_add_action(dev, RSVA_WATCH_PUT, RSVA_WATCH_PIN);
	if (ret) {
		module_put(THIS_MODULE);
		kfree(w);
		return ret;
	}
	ret = devm_add_action(dev, rsva_watch_release, dev);
	if (ret) {
		/* Still there unless the device's actions run: then it puts. */
		if (!devm_remove_action_nowarn(dev, RSVA_WATCH_PUT, RSVA_WATCH_PIN))
			module_put(THIS_MODULE);
		kfree(w);
		return ret;
	}
	w->dev = dev;
	w->kept = 1;
	list_add(&w->node, &rsva_watches);
	return 0;
}

/*
 * Whether @dev is watched (a domain kept or an unbind queued for it): a
 * driver about to be unbound has nothing of rsva's to settle otherwise.
 */
bool rsva_kept_for(struct device *dev)
{
	struct rsva_watch *w;

	guard(mutex)(&rsva_watches_lock);
	list_for_each_entry(w, &rsva_watches, node) {
		if (w->dev == dev)
			return true;
	}
	return false;
}

/* One domain kept for @dev less: the last one ends the watch. */
void rsva_unkeep_for(struct device *dev)
{
	struct rsva_watch *w;

	guard(mutex)(&rsva_watches_lock);
	list_for_each_entry(w, &rsva_watches, node) {
		if (w->dev != dev)
			continue;
		if (--w->kept)
			return;
		list_del(&w->node);
		kfree(w);
		/*
		 * Fails when the actions were taken off the device to run
		 * (devres_release_all() takes them all at once): the second
		 * one puts rsva then. Otherwise remove both and put here,
		 * unless the second one already ran.
		 */
		if (!devm_remove_action_nowarn(dev, rsva_watch_release, dev) &&
		    !devm_remove_action_nowarn(dev, RSVA_WATCH_PUT, RSVA_WATCH_PIN))
			module_put(THIS_MODULE);
		return;
	}
}

#if IS_ENABLED(CONFIG_KUNIT)
unsigned long rsva_test_watches(void)
{
	struct rsva_watch *w;
	unsigned long n = 0;

	guard(mutex)(&rsva_watches_lock);
	list_for_each_entry(w, &rsva_watches, node)
		n++;
	return n;
}

/*
 * For KUnit: the work items that settle an mm's PASID lease on rsva's
 * workqueue (the unbinds its stop callbacks queued in its release, the free
 * of its kept domains) wait at this gate while a test holds it, so that a
 * test can have them still pending when something else happens (a device's
 * driver going away). The unbinds such a settle did are counted.
 */
static DECLARE_WAIT_QUEUE_HEAD(rsva_settle_gate_wq);
static bool rsva_settle_held;
static atomic_long_t rsva_settle_unbinds = ATOMIC_LONG_INIT(0);

void rsva_test_hold_settle(bool hold)
{
	WRITE_ONCE(rsva_settle_held, hold);
	if (hold)
		return;
	wake_up_all(&rsva_settle_gate_wq);
	flush_workqueue(rsva_wq);
}
EXPORT_SYMBOL_IF_KUNIT(rsva_test_hold_settle);

unsigned long rsva_test_settle_unbinds(void)
{
	return atomic_long_read(&rsva_settle_unbinds);
}
EXPORT_SYMBOL_IF_KUNIT(rsva_test_settle_unbinds);

void rsva_test_settle_gate(void)
{
	wait_event(rsva_settle_gate_wq, !READ_ONCE(rsva_settle_held));
}

void rsva_test_settled_unbinds(unsigned long n)
{
	atomic_long_add(n, &rsva_settle_unbinds);
}
#endif

static struct rw_semaphore *rsva_rwsem(int which)
{
	return which ? &rsva_owner_rwsem : &rsva_serve_rwsem;
}

void rsva_rwsem_lock(int which, bool write)
{
	if (write)
		down_write(rsva_rwsem(which));
	else
		down_read(rsva_rwsem(which));
}

void rsva_rwsem_unlock(int which, bool write)
{
	if (write)
		up_write(rsva_rwsem(which));
	else
		up_read(rsva_rwsem(which));
}

#if IS_ENABLED(CONFIG_KUNIT)
/*
 * For KUnit: a bus of its own (one at a time) and devices on it, for
 * rust/kext/device/bus_notifier.rs.
 */
static const struct bus_type rsva_test_bus = { .name = "rsva_test_bus" };

int rsva_test_bus_register(void)
{
	return bus_register(&rsva_test_bus);
}

void rsva_test_bus_unregister(void)
{
	bus_unregister(&rsva_test_bus);
}

static void rsva_test_bus_dev_release(struct device *dev)
{
	kfree(dev);
}

struct device *rsva_test_bus_device_add(void)
{
	static atomic_t n = ATOMIC_INIT(0);
	struct device *dev = kzalloc_obj(*dev);
	int ret;

	if (!dev)
		return ERR_PTR(-ENOMEM);
	device_initialize(dev);
	dev->bus = &rsva_test_bus;
	dev->release = rsva_test_bus_dev_release;
	ret = dev_set_name(dev, "rsva_test%d", atomic_inc_return(&n));
	if (!ret)
		ret = device_add(dev);
	if (ret) {
		put_device(dev);
		return ERR_PTR(ret);
	}
	return dev;
}

void rsva_test_bus_device_del(struct device *dev)
{
	device_unregister(dev);
}

/* Takes every device of rsva_test_bus (the bus has no match()). */
static struct device_driver rsva_test_bus_driver = {
	.name = "rsva_test_driver",
	.bus = &rsva_test_bus,
};

int rsva_test_bus_driver_register(void)
{
	return driver_register(&rsva_test_bus_driver);
}

void rsva_test_bus_driver_unregister(void)
{
	driver_unregister(&rsva_test_bus_driver);
}

/* For KUnit: a device without IOMMU group, and its removal. */
struct device *rsva_test_device_new(void)
{
	return root_device_register("rsva_test");
}

void rsva_test_device_free(struct device *dev)
{
	root_device_unregister(dev);
}

/* For KUnit: a PCI device with an IOMMU group and no driver, referenced. */
struct device *rsva_test_free_pci_device(void)
{
	struct pci_dev *pdev = NULL;

	while ((pdev = pci_get_device(PCI_ANY_ID, PCI_ANY_ID, pdev))) {
		if (pdev->dev.iommu_group && !pdev->dev.driver) {
			get_device(&pdev->dev);
			pci_dev_put(pdev);
			return &pdev->dev;
		}
	}
	return NULL;
}
#endif

/* mmu interval notifiers (rust/kext/mm/interval_notifier.rs): the static inlines. */
void rsva_mni_set_seq(struct mmu_interval_notifier *sub, unsigned long seq)
{
	mmu_interval_set_seq(sub, seq);
}

bool rsva_mni_read_retry(struct mmu_interval_notifier *sub, unsigned long seq)
{
	return mmu_interval_read_retry(sub, seq);
}

/* The mm @sub is inserted in (and holds mmgrab() on until it is removed). */
struct mm_struct *rsva_mni_mm(const struct mmu_interval_notifier *sub)
{
	return sub->mm;
}

bool rsva_mn_range_blockable(const struct mmu_notifier_range *range)
{
	return mmu_notifier_range_blockable(range);
}

unsigned long rsva_mn_range_start(const struct mmu_notifier_range *range)
{
	return range->start;
}

unsigned long rsva_mn_range_end(const struct mmu_notifier_range *range)
{
	return range->end;
}

#if IS_ENABLED(CONFIG_KUNIT)
/* For KUnit: anonymous memory in @mm, mapped and touched from a kthread. */
unsigned long rsva_test_mmap(struct mm_struct *mm, unsigned long len, bool touch)
{
	unsigned long addr;

	kthread_use_mm(mm);
	addr = vm_mmap(NULL, 0, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, 0);
	if (!IS_ERR_VALUE(addr) && touch &&
	    clear_user((void __user *)addr, len)) {
		vm_munmap(addr, len);
		addr = -EFAULT;
	}
	kthread_unuse_mm(mm);
	return addr;
}
EXPORT_SYMBOL_IF_KUNIT(rsva_test_mmap);

void rsva_test_munmap(struct mm_struct *mm, unsigned long addr, unsigned long len)
{
	kthread_use_mm(mm);
	vm_munmap(addr, len);
	kthread_unuse_mm(mm);
}
EXPORT_SYMBOL_IF_KUNIT(rsva_test_munmap);
#endif

/*
 * The HMM mirror (rust/mirror/hmm.rs): pages of mirrored frames. A frame is
 * written only under the mirror's lock, which invalidations take, while its
 * entry is there: rsva_pfn_copy_user_nofault() and rsva_pfn_copy_page().
 * A page referenced under the lock is only read after it.
 */

/*
 * A reference to the page of @pfn, which the caller knows to be mapped:
 * the mirror's lock is held and no invalidation ran since it was faulted.
 */
struct page *rsva_pfn_page_get(unsigned long pfn)
{
	struct page *page = pfn_to_page(pfn);

	get_page(page);
	return page;
}

/*
 * Copies @page, referenced by rsva_pfn_page_get(), to user memory at @uaddr,
 * faulting the user page in if needed (after the mirror's lock). False when
 * user memory faulted. Never the other way: after the lock the page may be
 * shared with a forked child, or no longer the process's.
 */
bool rsva_page_copy_to_user(struct page *page, u64 uaddr)
{
	void *kaddr = kmap_local_page(page);
	unsigned long left = copy_to_user(u64_to_user_ptr(uaddr), kaddr, PAGE_SIZE);

	kunmap_local(kaddr);
	return !left;
}

/* Drops a reference rsva_pfn_page_get() took. */
void rsva_page_put(struct page *page)
{
	put_page(page);
}

/*
 * Copies the page of @pfn, which the caller knows to be mapped (see
 * rsva_pfn_page_get()), to or from user memory at @uaddr without taking a
 * page fault: the caller holds the mirror's lock, which invalidations take.
 * False when the user page is not there to be read or written right now.
 */
bool rsva_pfn_copy_user_nofault(unsigned long pfn, u64 uaddr, bool to_user)
{
	void *kaddr = kmap_local_page(pfn_to_page(pfn));
	void __user *u = u64_to_user_ptr(uaddr);
	long err;

	err = to_user ? copy_to_user_nofault(u, kaddr, PAGE_SIZE) :
			copy_from_user_nofault(kaddr, u, PAGE_SIZE);
	kunmap_local(kaddr);
	return !err;
}

/*
 * Writes @from (a WRITE's bounce page, filled from user memory outside the
 * lock) into the page of @pfn, which the caller knows to be mapped writable
 * under the mirror's lock (see rsva_pfn_page_get()).
 */
void rsva_pfn_copy_page(unsigned long pfn, struct page *from)
{
	copy_highpage(pfn_to_page(pfn), from);
}

bool rsva_is_zero_pfn(unsigned long pfn)
{
	return is_zero_pfn(pfn);
}

/* Device-exclusive access and migration (rust/mm/). */
unsigned long rsva_page_pfn(const struct page *page)
{
	return page_to_pfn(page);
}

/*
 * Ends what make_device_exclusive() returned: unlocks @folio and drops the
 * reference it took. From here on a CPU access to the page may restore its
 * PTE, which ends the device's exclusive access.
 */
void rsva_folio_unlock_put(struct folio *folio)
{
	folio_unlock(folio);
	folio_put(folio);
}

#if IS_ENABLED(CONFIG_KUNIT)
/* For KUnit: writes zeroes to [@addr, @addr + @len) of @mm from a kthread. */
void rsva_test_touch(struct mm_struct *mm, unsigned long addr, unsigned long len)
{
	kthread_use_mm(mm);
	if (clear_user((void __user *)addr, len))
		pr_warn("rsva: KUnit could not touch %#lx\n", addr);
	kthread_unuse_mm(mm);
}
#endif

/*
 * Device-private memory and migration (rust/kext/mm/pagemap.rs,
 * rust/kext/mm/migrate.rs): the static inlines and macros they need. Pages are
 * named by frame number; the callers know the frames to be pinned (a
 * reference, a mapping they hold the lock of, or a migration's lock).
 */

/* A free region of @size bytes of iomem for device memory; its start, or an errno. */
long rsva_devmem_region_request(unsigned long size, const char *name, u64 *start)
{
	struct resource *res;

	res = request_free_mem_region(&iomem_resource, size, name);
	if (IS_ERR(res))
		return PTR_ERR(res);
	if (!res)
		return -ENOMEM;
	*start = res->start;
	return 0;
}

void rsva_devmem_region_release(u64 start, unsigned long size)
{
	release_mem_region(start, size);
}

/* The pagemap of the device-private page @pfn, or NULL if it is none. */
struct dev_pagemap *rsva_pfn_device_private_pgmap(unsigned long pfn)
{
	struct page *page = pfn_to_page(pfn);

	return is_device_private_page(page) ? page_pgmap(page) : NULL;
}

struct dev_pagemap *rsva_folio_pgmap(struct folio *folio)
{
	return folio->pgmap;
}

unsigned long rsva_folio_pfn(struct folio *folio)
{
	return folio_pfn(folio);
}

unsigned int rsva_folio_order(struct folio *folio)
{
	return folio_order(folio);
}

/* The order of the folio holding the page @pfn. */
unsigned int rsva_pfn_folio_order(unsigned long pfn)
{
	return folio_order(page_folio(pfn_to_page(pfn)));
}

/*
 * Hands out the free device page @pfn as the first page of a locked folio
 * of @order, refcount 1. The page is the folio whatever a larger folio it
 * was part of left in it (zone_device_page_init() clears that): page_folio()
 * would follow the stale head of that folio.
 */
void rsva_zone_device_folio_init(unsigned long pfn, struct dev_pagemap *pgmap,
				 unsigned int order)
{
	zone_device_folio_init((struct folio *)pfn_to_page(pfn), pgmap, order);
}

/* Unlocks the page @pfn and drops the reference its allocation gave. */
void rsva_pfn_unlock_put(unsigned long pfn)
{
	struct folio *folio = page_folio(pfn_to_page(pfn));

	folio_unlock(folio);
	folio_put(folio);
}

/*
 * A locked system folio of @order for @addr of @vma (any node when @vma is
 * NULL), refcount 1: its first frame, or 0.
 */
unsigned long rsva_sys_folio_alloc_locked(struct vm_area_struct *vma,
					  unsigned long addr, unsigned int order,
					  bool nofail)
{
	gfp_t gfp = GFP_HIGHUSER_MOVABLE | (nofail && !order ? __GFP_NOFAIL : 0);
	struct folio *folio;

	if (order)
		gfp |= __GFP_NOWARN;
	folio = vma ? vma_alloc_folio(gfp, order, vma, addr) : folio_alloc(gfp, order);
	if (!folio)
		return 0;
	folio_lock(folio);
	return folio_pfn(folio);
}

void rsva_copy_highpage_pfn(unsigned long to, unsigned long from)
{
	copy_highpage(pfn_to_page(to), pfn_to_page(from));
}

void rsva_clear_highpage_pfn(unsigned long pfn)
{
	clear_highpage(pfn_to_page(pfn));
}

unsigned long rsva_migrate_pfn(unsigned long pfn)
{
	return migrate_pfn(pfn);
}

/* The frame of a migrate_pfn() entry, or ULONG_MAX when it names none. */
unsigned long rsva_migrate_pfn_to_pfn(unsigned long mpfn)
{
	struct page *page = migrate_pfn_to_page(mpfn);

	return page ? page_to_pfn(page) : ULONG_MAX;
}

/* The fields of a device-private fault (migrate_to_ram()). */
unsigned long rsva_vmf_pfn(const struct vm_fault *vmf)
{
	return page_to_pfn(vmf->page);
}

struct page *rsva_vmf_page(const struct vm_fault *vmf)
{
	return vmf->page;
}

struct vm_area_struct *rsva_vmf_vma(const struct vm_fault *vmf)
{
	return vmf->vma;
}

unsigned long rsva_vmf_address(const struct vm_fault *vmf)
{
	return vmf->address;
}

/* Whether the faulting device page is mapped by a PTE, not a PMD. */
bool rsva_vmf_pte_mapped(const struct vm_fault *vmf)
{
	return vmf->pte;
}

/*
 * For KUnit (rust/sva/iopf.rs): where the C compiler put the fields rsva's I/O
 * page fault handler reads through bindgen's layout, in the order of the
 * test; SIZE_MAX past the last.
 */
size_t rsva_iopf_c_offset(unsigned int field)
{
	static const size_t offsets[] = {
		offsetof(struct iopf_group, faults),
		offsetof(struct iopf_group, work),
		offsetof(struct iopf_group, attach_handle),
		offsetof(struct iopf_group, fault_param),
		offsetof(struct iopf_fault, fault),
		offsetof(struct iopf_fault, list),
		offsetof(struct iommu_fault, prm),
		offsetof(struct iommu_fault_page_request, flags),
		offsetof(struct iommu_fault_page_request, perm),
		offsetof(struct iommu_fault_page_request, addr),
		offsetof(struct iommu_attach_handle, domain),
		offsetof(struct iommu_domain, iopf_handler),
		offsetof(struct iommu_domain, mm),
		offsetof(struct iommu_fault_param, queue),
		offsetof(struct iopf_queue, wq),
	};

	return field < ARRAY_SIZE(offsets) ? offsets[field] : SIZE_MAX;
}
