/* SPDX-License-Identifier: GPL-2.0 */
/*
 * rsva: shared virtual addressing in Rust - the C API for drivers.
 *
 * Every function returns 0 or a positive value on success and a negative
 * errno on failure; none of them crashes on bad input:
 *
 * - A NULL or ERR_PTR() pointer argument gets -EINVAL (an ERR_PTR() for
 *   the functions that return a pointer, %IOMMU_PASID_INVALID from
 *   rsva_sva_get_pasid()) before anything follows it.
 * - Handles (struct rsva_sva, struct rsva_mirror) are opaque tokens, not
 *   addresses: rsva looks them up in its registries and never follows
 *   them. A token is never handed out twice, and no NULL, ERR_PTR() or
 *   pointer to a kernel object is ever one: a foreign pointer, or a handle
 *   that was unbound (its last reference) or unregistered already, gets
 *   -ENOENT, even when a later bond or mirror reuses the memory of the one
 *   it named. (The kernel's iommu_sva_bind_device() hands out the address
 *   of its struct iommu_sva instead; its handles are not rsva's.)
 * - A @dev or @mm must be a device or mm the caller holds a reference to;
 *   a device without IOMMU group gets -ENODEV, an mm without users -ESRCH.
 *
 * Callbacks. A mirror's hooks (&struct rsva_mirror_ops) run under the
 * mirror's lock and must not sleep (an invalidation may come from atomic
 * context): from them, rsva_pasid_range_check(), rsva_sva_get_pasid(),
 * rsva_pasid_get_mm(), rsva_sva_serving() and rsva_dma_claimed() work;
 * every other function answers -EDEADLK there (they may sleep, and the
 * mirror functions would take the mirror's lock again).
 * A bond's stop callback (rsva_sva_stop_t) runs in process context, inside
 * its mm's release (an SRCU read section of the mmu notifiers): it may
 * unbind its own handle and the other handles of its mm (the unbind is
 * queued and done from rsva's workqueue once the release is over, since
 * detaching a PASID drains its page requests, and a fault handler may be
 * waiting for that grace period) and call
 * the functions that do not bind; binding, and unbinding a handle of
 * another address space, answer -EDEADLK there (they may wait for locks
 * whose holders wait for that grace period). Its mm has no users left by
 * then, so mirroring that mm answers -ESRCH.
 */
#ifndef _RSVA_H
#define _RSVA_H

#include <linux/types.h>

struct device;
struct mm_struct;
struct rsva_mirror;
struct rsva_sva;

/* Width of a PCIe PASID in bits, and the largest PASID a device can carry. */
#define RSVA_PASID_BITS		20
#define RSVA_PASID_MAX		((1U << RSVA_PASID_BITS) - 1)

/**
 * rsva_pasid_range_check() - validate a range that PASIDs may be drawn from
 * @min: the smallest PASID of the range; 0 is reserved for DMA without PASID
 * @max: the largest PASID of the range, at least @min
 *
 * Context: any context.
 * Return: the number of PASIDs in [@min, @max], or -EINVAL when @min is 0,
 * @max is below @min, or @max exceeds %RSVA_PASID_MAX.
 */
int rsva_pasid_range_check(u32 min, u32 max);

/**
 * typedef rsva_sva_stop_t - a driver's stop callback for a bond
 * @handle: the bond's handle, as returned by rsva_sva_bind_device_stop()
 * @data: the driver's data given at bind
 *
 * Stops the device's work on the PASID of @handle. Called when the bound
 * address space goes away (its exit_mmap), before the IOMMU clears the
 * PASID entry; at most once per bond, and never after the last
 * rsva_sva_unbind_device() of @handle returned (which waits for a callback
 * that runs, so the callback must not wait for a lock held around that
 * unbind), even while iommu_sva_bind_device() still holds the bond.
 * What it may call: see the top of this file.
 *
 * Context: process context, may sleep; the mmap lock is not held; inside
 * the mm's mmu notifier release (nothing may wait for mmu notifiers).
 */
typedef void (*rsva_sva_stop_t)(struct rsva_sva *handle, void *data);

/**
 * rsva_sva_bind_device() - bind an address space to a device through rsva
 * @dev: a device with an IOMMU group and a driver bound
 * @mm: the address space; the caller holds a user reference (mmget)
 *
 * As iommu_sva_bind_device(): one bond per (@dev, @mm), so binding again
 * returns the same handle with one more reference; every bind needs one
 * rsva_sva_unbind_device(). The handle is a token of the bond's, the same
 * for every bind while rsva's API holds references to the bond; after the
 * last unbind it is dead for good (-ENOENT), and binding the same @dev and
 * @mm again returns a new one. The PASID is the mm's, shared by all its bonds
 * and kept until the mm is freed. Works while rsva serves SVA
 * (rsva_sva_serving()). Each bind pins rsva until its unbind: a driver
 * that leaks a bond keeps rsva loaded. A new PASID lease is charged to the
 * real uid of the calling task, not to @mm's user (a kernel thread's binds
 * to its own, usually root), and one lease is one charge, whether the
 * PASID was allocated for it or adopted (Documentation/sva.rst). A group
 * claimed by an owner that manages DMA itself (VFIO, iommufd, a claim
 * through this API) gets no PASID; one whose driver attached an unmanaged
 * domain of its own does, as with iommu_sva_bind_device(). The bond may be
 * the one that iommu_sva_bind_device() holds for the same device and mm
 * (rsva serves that API too: same PASID), but the two APIs name it by
 * different handles, and each API's references are dropped only through
 * it.
 *
 * Context: process context, may sleep; the mmap lock must not be held.
 * Return: the handle, or an ERR_PTR: -EINVAL (NULL or ERR_PTR() @dev or
 * @mm), -EDEADLK (called from a mirror's hook or a stop callback), -ESRCH
 * (@mm has no users left), -ENODEV (no IOMMU group, or rsva is not
 * serving), -EOPNOTSUPP (no PASID or SVA support), -EOVERFLOW (the mm's
 * PASID does not fit the device), -ENOSPC (no PASID left), -EDQUOT (the
 * calling task's user holds rsva's pasids_per_user limit), -EBUSY (an
 * owner that manages DMA claimed the group, the IOMMU refused the PASID,
 * or the mm cannot be shared with devices), -ENOMEM.
 */
struct rsva_sva *rsva_sva_bind_device(struct device *dev, struct mm_struct *mm);

/**
 * rsva_sva_bind_device_stop() - bind, with a stop callback
 * @dev: as for rsva_sva_bind_device()
 * @mm: as for rsva_sva_bind_device()
 * @stop: called when @mm goes away, before the PASID entry is cleared
 * @data: passed to @stop
 *
 * As rsva_sva_bind_device(). The callback belongs to the bond: binding an
 * existing bond again with another callback fails.
 *
 * Context: as rsva_sva_bind_device().
 * Return: as rsva_sva_bind_device(); also -EINVAL for a NULL or ERR_PTR()
 * @stop and -EBUSY when the bond exists with another callback.
 */
struct rsva_sva *rsva_sva_bind_device_stop(struct device *dev, struct mm_struct *mm,
					   rsva_sva_stop_t stop, void *data);

/**
 * rsva_sva_bind_current() - bind the current task's address space
 * @dev: as for rsva_sva_bind_device()
 *
 * Binds current->mm: a user task's own, or the one a kernel thread uses
 * between kthread_use_mm() and kthread_unuse_mm() (the PASID is then
 * charged to the kernel thread's user, root). The mm needs users, as for
 * rsva_sva_bind_device().
 *
 * Context: process context of a user task, or of a kernel thread under
 * kthread_use_mm(); may sleep.
 * Return: as rsva_sva_bind_device(); -EINVAL in a kernel thread without an
 * mm.
 */
struct rsva_sva *rsva_sva_bind_current(struct device *dev);

/**
 * rsva_sva_unbind_device() - drop one reference to a bond
 * @handle: a handle returned by one of rsva's bind functions
 *
 * The last reference kills @handle for good and stops the bond's callback
 * from running; unless iommu_sva_bind_device() holds the bond too, it
 * also detaches the PASID from the device and frees the SVA domain when
 * no other device uses it. The PASID stays with the mm. Safe after the mm died. The caller's
 * driver is bound to the handle's device during the call, as for
 * iommu_sva_unbind_device(): rsva frees the SVA domain through the device's
 * IOMMU driver.
 *
 * Context: process context, may sleep; also a stop callback
 * (&typedef rsva_sva_stop_t) for a handle of its address space, where the
 * unbind is queued: it returns 0 (or -ENOMEM, or -ENODEV while rsva is
 * unloaded), the PASID is detached once the mm's release is over, or when
 * the device's driver goes if that comes first, and an error found then is
 * logged.
 * Return: 0; -EINVAL for NULL or an ERR_PTR(), -ENOENT for a handle that
 * rsva's bind functions did not return (iommu_sva_bind_device()'s
 * included: unbind those with iommu_sva_unbind_device(), which in turn
 * leaves rsva's references alone) or whose last reference is unbound,
 * -EDEADLK from a mirror's hook.
 */
int rsva_sva_unbind_device(struct rsva_sva *handle);

/**
 * rsva_sva_get_pasid() - the PASID of a bond
 * @handle: a handle returned by one of rsva's bind functions
 *
 * Context: process context (a mirror's hooks and stop callbacks included).
 * Return: the PASID, or IOMMU_PASID_INVALID for NULL, an ERR_PTR(), an
 * unknown handle or one whose last reference is unbound.
 */
u32 rsva_sva_get_pasid(struct rsva_sva *handle);

/**
 * rsva_pasid_get_mm() - the address space a PASID belongs to
 * @pasid: a PASID rsva gave to an mm
 *
 * For fault and completion handlers that only have the PASID: the mm is
 * returned with an mmgrab() reference, which the caller drops with
 * mmdrop(); mmget_not_zero() on it tells whether the mm is still alive.
 *
 * Context: any context but hard interrupts. In a softirq it does not wait
 * for the lock of rsva's PASID map (the task it interrupted may hold it).
 * Return: the mm, or an ERR_PTR: -EINVAL for PASID 0 or one beyond
 * %RSVA_PASID_MAX, -ENOENT when no live mm of rsva's has @pasid, -EBUSY in
 * a softirq when the map is busy (try again later).
 */
struct mm_struct *rsva_pasid_get_mm(u32 pasid);

/**
 * rsva_sva_serving() - whether rsva serves the kernel's SVA API
 *
 * While it does, iommu_sva_bind_device() binds through rsva, and rsva's
 * own bind functions work.
 *
 * Context: any context.
 * Return: true while rsva serves.
 */
bool rsva_sva_serving(void);

/**
 * rsva_dma_claim_group() - claim the IOMMU group of a device for DMA
 * @dev: a device of the group
 * @owner: the owner's identity (any non-NULL pointer it keeps)
 *
 * As iommu_group_claim_dma_owner(): the group's devices are blocked from
 * DMA until the claim is released, and neither the DMA API (drivers
 * without driver_managed_dma) nor SVA binds can use the group meanwhile.
 * rsva keeps the claim until rsva_dma_release_group() or its unload.
 *
 * A claim ends by itself when the group's last device is removed (before
 * the IOMMU core takes it out of the group); its release then still
 * answers 0.
 *
 * Context: process context, may sleep.
 * Return: 0; -EINVAL for NULL or ERR_PTR() @dev or @owner, -ENODEV when
 * @dev has no group or is being removed (for a group claim: when every
 * device of the group is), -EPERM when another owner holds it, -EBUSY when
 * drivers using the DMA API hold it (the kernel itself answers -EPERM
 * there), the group is not on its default domain or has a PASID attached
 * (an SVA bond), or while more than 16 devices of rsva's watched buses are
 * being removed at once, -EDEADLK from a mirror's hook, -ENOMEM, -ENOSPC
 * when claims live on devices of eight other buses (rsva watches the bus
 * of each claimed device, eight buses at most).
 */
int rsva_dma_claim_group(struct device *dev, const void *owner);

/**
 * rsva_dma_release_group() - release a claim of rsva_dma_claim_group()
 * @dev: a device of the claimed group
 * @owner: the owner that claimed it
 *
 * Context: process context, may sleep.
 * Return: 0; -EINVAL for NULL or ERR_PTR() @dev or @owner, -ENOENT when
 * @owner holds no group claim through rsva on that group (never claimed,
 * or released already), -EDEADLK from a mirror's hook.
 */
int rsva_dma_release_group(struct device *dev, const void *owner);

/**
 * rsva_dma_claim_device() - claim a device (its group) for DMA
 * @dev: the device
 * @owner: the owner's identity; the same owner may claim a device again
 *
 * As iommu_device_claim_dma_owner(); each claim needs one
 * rsva_dma_release_device(). A claim ends by itself when @dev is removed
 * (before the IOMMU core takes it out of its group, and rsva then drops its
 * reference to @dev); its release then still answers 0, and finds the
 * claim by @dev's address without following it.
 *
 * Context: process context, may sleep.
 * Return: as rsva_dma_claim_group().
 */
int rsva_dma_claim_device(struct device *dev, const void *owner);

/**
 * rsva_dma_release_device() - release one claim of rsva_dma_claim_device()
 * @dev: the device
 * @owner: the owner that claimed it
 *
 * Context: process context, may sleep.
 * Return: 0; -EINVAL for NULL or ERR_PTR() @dev or @owner, -ENOENT when
 * @owner holds no device claim through rsva on @dev, -EDEADLK from a
 * mirror's hook.
 */
int rsva_dma_release_device(struct device *dev, const void *owner);

/**
 * rsva_dma_claimed() - whether a device's group is claimed for DMA
 * @dev: the device
 *
 * True while an owner that manages DMA itself holds the group (claimed
 * through this API, or by VFIO or iommufd: iommu_group_has_dma_owner()),
 * whoever claimed it; false when it is free or used by drivers, through
 * the DMA API or through an unmanaged domain a driver attached itself.
 *
 * Context: process context (a mirror's hooks included).
 * Return: 1 or 0; -EINVAL for NULL or an ERR_PTR(), -ENODEV when @dev has
 * no group.
 */
int rsva_dma_claimed(struct device *dev);

/**
 * struct rsva_mirror_ops - what a driver's HMM mirror is told
 * @invalidate: the pages of [@start, @end) of the mirrored mm are about to
 *	change: the device must forget every one of them it uses before
 *	returning. Called under the mirror's lock (the one @update runs
 *	under), from any context the mm's page tables change in, reclaim and
 *	the OOM reaper included: must not sleep or allocate. Required. What
 *	it may call of rsva's: see the top of this file.
 * @update: called by rsva_mirror_fault(), under the same lock, with
 *	entries that no invalidation touched since they were faulted: the
 *	place to program the device's page table. The entries are in
 *	hmm_range_fault()'s encoding (%HMM_PFN_VALID, %HMM_PFN_WRITE,
 *	hmm_pfn_to_page()). Must not sleep. May be NULL.
 */
struct rsva_mirror_ops {
	void (*invalidate)(void *priv, unsigned long start, unsigned long end);
	void (*update)(void *priv, unsigned long start,
		       const unsigned long *hmm_pfns, unsigned long npages);
};

/* Flags of rsva_mirror_fault(). */
#define RSVA_MIRROR_WRITE	0x1	/* fault for writing (breaks COW) */
#define RSVA_MIRROR_SNAPSHOT	0x2	/* report what is mapped, fault nothing */

/**
 * rsva_mirror_register() - mirror an address space
 * @mm: the address space; the caller holds a reference (mmgrab or mmget)
 * @ops: the driver's hooks; must live until rsva_mirror_unregister()
 * @priv: passed to the hooks
 *
 * All of rsva's mirrors of one mm (drivers' and /dev/rsva_mirror0's) share
 * one interval notifier over the whole user address space and one
 * mmgrab(), made by the first registration and dropped by the last
 * unregistration; concurrent registrations always end in one valid mirror.
 * The mirror does not keep @mm's pages or address space alive: once @mm
 * exits, rsva_mirror_fault() answers -EFAULT.
 *
 * Context: process context, may sleep; the mmap lock must not be held.
 * Return: the mirror, or an ERR_PTR: -EINVAL (NULL or ERR_PTR() @mm, @ops
 * or hook, no @ops->invalidate), -ESRCH (@mm has no users left), -EDEADLK
 * (called from a mirror's hook), -ENOMEM.
 */
struct rsva_mirror *rsva_mirror_register(struct mm_struct *mm,
					 const struct rsva_mirror_ops *ops,
					 void *priv);

/**
 * rsva_mirror_unregister() - stop mirroring
 * @mirror: a mirror from rsva_mirror_register()
 *
 * No hook of @mirror runs after this returns. Safe after the mm exited.
 *
 * Context: process context, may sleep.
 * Return: 0; -EINVAL for NULL or an ERR_PTR(), -ENOENT for a mirror that
 * is not (or no longer) registered, -EDEADLK from a mirror's hook.
 */
int rsva_mirror_unregister(struct rsva_mirror *mirror);

/**
 * rsva_mirror_fault() - fault a range of the mirrored mm
 * @mirror: a mirror from rsva_mirror_register()
 * @start: the first address, page aligned
 * @npages: the number of pages, at least 1
 * @flags: 0 (fault for reading), %RSVA_MIRROR_WRITE or %RSVA_MIRROR_SNAPSHOT
 * @hmm_pfns: an array of @npages entries, written in hmm_range_fault()'s
 *	encoding
 *
 * Faults the range with hmm_range_fault() and retries until no
 * invalidation ran in between; then calls @ops->update with the entries,
 * under the mirror's lock. After this returns, @hmm_pfns only tells what
 * was mapped: a driver that uses pages after the lock is dropped relies on
 * @ops->invalidate.
 *
 * Context: process context, may sleep; the mmap lock must not be held.
 * Return: 0; -EINVAL (NULL or ERR_PTR() argument, unaligned @start,
 * @npages 0, a range that wraps, unknown or conflicting @flags), -EDEADLK
 * (called from a mirror's hook), -ENOENT (@mirror is not
 * registered), -EFAULT (the mm exited, or an address is not mapped or not
 * readable), -EPERM (writing a read-only page), -EBUSY (invalidations kept
 * racing the fault for a second), -ENOMEM.
 */
int rsva_mirror_fault(struct rsva_mirror *mirror, unsigned long start,
		      unsigned long npages, unsigned int flags,
		      unsigned long *hmm_pfns);

#endif /* _RSVA_H */
