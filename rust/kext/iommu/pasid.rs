// SPDX-License-Identifier: GPL-2.0

//! PASIDs of the system-wide space, and the list of SVA mms, for SVA
//! providers.
//!
//! C header: [`include/linux/iommu.h`](srctree/include/linux/iommu.h)

use kernel::{
    bindings,
    error::to_result,
    mm::{Mm, MmWithUser},
    new_mutex,
    prelude::*,
    rbtree::{RBTree, RBTreeNode, RBTreeNodeReservation},
    sync::{
        atomic::{Atomic, Relaxed},
        Mutex,
    },
};

use crate::kext::{
    glue::{self, MmGrab},
    sync::global::GlobalMutex,
};

/// `IOMMU_PASID_INVALID`: no PASID (bindgen types the C macro as `i32`).
pub(crate) const PASID_INVALID: u32 = u32::MAX;

/// The PASID an mm has (`mm->iommu_mm->pasid`), or [`PASID_INVALID`].
pub(crate) fn mm_pasid(mm: &MmWithUser) -> u32 {
    // SAFETY: `mm` is live; the helper only reads.
    unsafe { glue::rsva_mm_pasid(mm.as_raw()) }
}

/// A PASID taken from the system-wide space; freed when dropped, in any
/// context, unless given to an mm.
pub(crate) struct GlobalPasid(u32);

impl GlobalPasid {
    /// Allocates a free PASID in `[min, max]` (patch 0004), or fails with
    /// `ENOSPC`.
    pub(crate) fn alloc(min: u32, max: u32) -> Result<Self> {
        // SAFETY: Allocates from the global IDA; no pointers involved.
        let pasid = unsafe { bindings::iommu_alloc_global_pasid_range(min, max) };
        if pasid == PASID_INVALID {
            return Err(ENOSPC);
        }
        Ok(Self(pasid))
    }

    /// Publishes the PASID as `mm`'s; the IOMMU core frees it from now on.
    /// `EBUSY` if the mm has a PASID already, or cannot share its page
    /// tables with a device (x86 LAM); `ENOMEM`.
    pub(crate) fn give_to(self, mm: &MmWithUser) -> Result<u32> {
        // SAFETY: `mm` is a live mm; the helper checks it has no PASID yet.
        to_result(unsafe { glue::rsva_mm_set_pasid(mm.as_raw(), self.0) })?;
        let pasid = self.0;
        core::mem::forget(self);
        Ok(pasid)
    }
}

impl Drop for GlobalPasid {
    fn drop(&mut self) {
        // SAFETY: Allocated in `alloc` and not given away (`give_to` forgets
        // it); `iommu_free_global_pasid()` may be called in any context.
        unsafe { bindings::iommu_free_global_pasid(self.0) };
    }
}

/// The mms on the IOMMU core's list of SVA mms, by address: at most one
/// [`SvaListing`] puts an mm there (the list links `mm->iommu_mm`, one
/// entry per mm). A tree: an mm's first bind and last unbind look it up
/// while thousands of other mms may be bound. Its mutex initialises itself
/// on first use.
static LISTED: GlobalMutex<RBTree<usize, ()>> =
    GlobalMutex::new(RBTree::new, c"LISTED", kernel::static_lock_class!());

/// Frees the set of listed mms; once, at module exit, after every listing
/// is gone.
pub(crate) fn exit() {
    let left = core::mem::take(&mut *LISTED.lock());
    if !left.is_empty() {
        pr_warn!(
            "rsva: {} mms left on the list of SVA mms\n",
            left.keys().count()
        );
    }
}

/// An mm's place on the IOMMU core's list of SVA mms, whose secondary TLBs
/// are flushed when kernel page tables change (`iommu_sva_track_mm()`,
/// patch 0003). It holds the mm with a [`MmGrab`] (the list entry is the
/// mm's `iommu_mm`, freed with the mm). Taking the mm off the list takes a
/// mutex of the IOMMU core: [`SvaListing::unlist`] runs in process
/// context, outside mmu notifier callbacks, and a listing is dropped off
/// the list (its drop then waits for nothing and may run in any context).
///
/// # Invariants
///
/// - `place` is [`Place::On`] exactly while this object has put the mm on
///   the list and not taken it off; then the mm's address is in `LISTED`
///   on this object's behalf, so no other listing puts it there twice.
/// - `seen` is whether `place` is [`Place::On`], written under its lock.
#[pin_data(PinnedDrop)]
pub(crate) struct SvaListing {
    mm: MmGrab,
    #[pin]
    place: Mutex<Place>,
    seen: Atomic<bool>,
}

/// Where a listing's mm is: off the list, with the node of `LISTED` that
/// it had there (if it was ever on), so that an mm's binds and unbinds do
/// not allocate one each time; or on the list, its node in `LISTED`.
enum Place {
    Off(Option<RBTreeNodeReservation<usize, ()>>),
    On,
}

impl SvaListing {
    /// A listing of the grabbed mm, not on the list yet.
    pub(crate) fn new(mm: MmGrab) -> impl PinInit<Self> {
        pin_init!(Self {
            mm,
            place <- new_mutex!(Place::Off(None)),
            seen: Atomic::new(false),
        })
    }

    /// The mm.
    pub(crate) fn mm(&self) -> &Mm {
        self.mm.mm()
    }

    /// Puts the mm on the list, if it is not there through this listing.
    /// `EINVAL` if the mm has no PASID, `EBUSY` if another listing put it
    /// there, `ENOMEM`. Process context.
    pub(crate) fn list(&self) -> Result {
        let mut place = self.place.lock();
        let Place::Off(spare) = &mut *place else {
            return Ok(());
        };
        let mm = self.mm().as_raw();
        // SAFETY: The mm is live (`self.mm` grabs it); the helper only
        // reads `mm->iommu_mm`.
        if unsafe { glue::rsva_mm_pasid(mm) } == PASID_INVALID {
            return Err(EINVAL);
        }
        let key = mm as usize;
        let node = match spare.take() {
            Some(node) => node,
            None => RBTreeNodeReservation::new(GFP_KERNEL)?,
        };
        let mut listed = LISTED.lock();
        if listed.get(&key).is_some() {
            *spare = Some(node);
            return Err(EBUSY);
        }
        listed.insert(node.into_node(key, ()));
        // SAFETY: `mm->iommu_mm` is set (checked above; it lives as long as
        // the mm, which `self.mm` grabs) and the mm is not on the list: it
        // was not in `LISTED`, which every listing joins before it lists
        // its mm and leaves only after taking it off, under `LISTED`'s
        // lock, held here.
        unsafe { bindings::iommu_sva_track_mm(mm) };
        drop(listed);
        // INVARIANT: on the list, and in `LISTED`, on this object's behalf.
        *place = Place::On;
        self.seen.store(true, Relaxed);
        Ok(())
    }

    /// Takes the mm off the list if this listing put it there. Process
    /// context, outside mmu notifier callbacks.
    pub(crate) fn unlist(&self) {
        let mut place = self.place.lock();
        if !matches!(*place, Place::On) {
            return;
        }
        let mm = self.mm().as_raw();
        let key = mm as usize;
        let mut listed = LISTED.lock();
        // SAFETY: `place` is `On`, so this listing put the mm on the list and
        // it is still there (type invariants); `LISTED`'s lock, held here,
        // keeps any other listing from putting it there meanwhile, and the
        // mm and its `iommu_mm` are grabbed.
        unsafe { bindings::iommu_sva_untrack_mm(mm) };
        let node = listed.remove_node(&key);
        drop(listed);
        // INVARIANT: off the list and out of `LISTED`.
        *place = Place::Off(node.map(RBTreeNode::into_reservation));
        self.seen.store(false, Relaxed);
    }

    /// Whether the mm is on the list through this listing (a snapshot).
    pub(crate) fn listed(&self) -> bool {
        self.seen.load(Relaxed)
    }
}

#[pinned_drop]
impl PinnedDrop for SvaListing {
    fn drop(self: Pin<&mut Self>) {
        // Nothing else uses the listing: `seen` is exact. A listing still
        // on the list here is a bug of its owner, but must not leave the
        // list pointing at a freed `iommu_mm`.
        if self.seen.load(Relaxed) {
            self.unlist();
        }
    }
}

#[kunit_tests(rsva_sva_listing)]
mod tests {
    use super::*;
    use crate::kext::glue::test_mm;

    /// A listing of `mm`.
    fn listing(mm: &Mm) -> Result<Pin<KBox<SvaListing>>> {
        KBox::pin_init(SvaListing::new(MmGrab::new(mm)?), GFP_KERNEL)
    }

    #[test]
    fn an_mm_without_pasid_is_not_listed() -> Result {
        let mm = test_mm()?;
        let l = listing(&mm)?;
        assert_eq!(l.list(), Err(EINVAL));
        assert!(!l.listed());
        Ok(())
    }

    #[test]
    fn an_mm_is_listed_by_one_listing_at_a_time() -> Result {
        let mm = test_mm()?;
        GlobalPasid::alloc(1, (1 << 20) - 1)?.give_to(&mm)?;
        let (a, b) = (listing(&mm)?, listing(&mm)?);
        a.list()?;
        assert!(a.listed());
        // Listed twice, the core's list would be corrupted.
        assert_eq!(b.list(), Err(EBUSY));
        assert!(!b.listed());
        // Listing again through the same listing does nothing.
        a.list()?;
        a.unlist();
        assert!(!a.listed());
        b.list()?;
        assert!(b.listed());
        // Dropped while listed, a listing takes the mm off the list.
        drop(b);
        a.list()?;
        assert!(a.listed());
        a.unlist();
        Ok(())
    }
}
