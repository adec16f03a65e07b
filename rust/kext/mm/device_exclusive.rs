// SPDX-License-Identifier: GPL-2.0

//! Device-exclusive access to anonymous pages: `make_device_exclusive()`
//! (include/linux/rmap.h, mm/rmap.c).
//!
//! A device that needs atomic access to a page of a process (the CPU must
//! not touch it while the device works on it) asks the kernel to replace
//! the page's PTE with a device-exclusive entry. The page stays the
//! process's: the CPU's next access faults, and the fault restores the PTE
//! after an `MMU_NOTIFY_CLEAR` invalidation of the page, which tells the
//! device its access ended.
//!
//! The conversion itself is an `MMU_NOTIFY_EXCLUSIVE` invalidation of the
//! page whose `owner` is the [`Owner`] the device named. The device must
//! recognise its own ([`Owner::of_exclusive_range`]) and keep the page for it: a
//! driver that maps the page only once no invalidation of it ran since it
//! asked would otherwise ask again forever ("the caller must filter this
//! event out to prevent livelocks", mm/rmap.c).
//!
//! Only anonymous, non-hugetlb pages of a writable VMA can be made
//! exclusive; a PMD-mapped transparent huge page is split first.

use core::{marker::PhantomData, num::NonZeroUsize, ptr::NonNull};

use kernel::{
    bindings,
    error::from_err_ptr,
    mm::{MmWithUser, MmapReadGuard},
    prelude::*,
};

use super::pagemap::Owner;
use crate::kext::glue;

/// The mmap read lock of an mm, held to make its pages device-exclusive
/// (`make_device_exclusive()` asserts it). While it is held no munmap,
/// mprotect or fork of the mm can run; zaps under the read lock
/// (`MADV_DONTNEED`) and the CPU's own faults still can.
///
/// # Invariants
///
/// `_guard` holds the mmap read lock of `mm`.
pub(crate) struct ExclusiveLock<'a> {
    mm: &'a MmWithUser,
    _guard: MmapReadGuard<'a>,
}

impl<'a> ExclusiveLock<'a> {
    /// Takes the mmap read lock of `mm` (sleeps).
    pub(crate) fn new(mm: &'a MmWithUser) -> Self {
        // INVARIANT: the guard is the one of `mm`'s lock.
        Self {
            mm,
            _guard: mm.mmap_read_lock(),
        }
    }

    /// Makes the page mapped at `addr` (rounded down to its page) exclusive
    /// to the device `owner` names, faulting it in writable first (which
    /// breaks copy-on-write and undoes another device's exclusive entry).
    ///
    /// Errors as `make_device_exclusive()`: `EFAULT` where no VMA maps
    /// `addr` or the VMA cannot be written (`PROT_READ`, `PROT_NONE`),
    /// `EOPNOTSUPP` for a page that is not anonymous (a file, shmem, the
    /// device's own mapping when shared) or a hugetlb page, `EINTR` when a
    /// fatal signal came while waiting for the folio lock, `ENOMEM`.
    pub(crate) fn make_exclusive(&self, addr: usize, owner: Owner) -> Result<ExclusivePage<'_>> {
        let mut folio = core::ptr::null_mut();
        // SAFETY: `mm` has users (`MmWithUser`) and its mmap lock is held
        // for reading (type invariant); `folio` is valid for a write; the
        // owner is only compared by mmu notifiers.
        let page = unsafe {
            bindings::make_device_exclusive(self.mm.as_raw(), addr, owner.as_ptr(), &mut folio)
        };
        let page = from_err_ptr(page)?;
        match (NonNull::new(page), NonNull::new(folio)) {
            // INVARIANT: on success `make_device_exclusive()` returns the
            // page with its folio locked and referenced, for the caller.
            (Some(page), Some(folio)) => Ok(ExclusivePage {
                folio,
                page,
                _lock: PhantomData,
            }),
            // Never: success sets both.
            _ => Err(EINVAL),
        }
    }
}

/// A page made exclusive to a device by [`ExclusiveLock::make_exclusive`],
/// whose PTE now holds a device-exclusive entry.
///
/// It holds the lock and the reference on the page's folio that
/// `make_device_exclusive()` returned with it. The lock keeps the CPU from
/// taking the page back (the fault that restores the PTE locks the folio
/// first) and keeps reclaim and migration away; the reference keeps the
/// folio from being freed. Neither keeps a zap under the mmap read lock
/// (`MADV_DONTNEED` by another thread) from removing the entry: a device
/// that maps the page must do so under the lock its invalidation callback
/// takes, and only if no invalidation of the page reached it since it
/// asked.
///
/// Dropping it unlocks the folio and drops the reference (`folio_unlock()`,
/// `folio_put()`). From then on a CPU access restores the PTE after an
/// `MMU_NOTIFY_CLEAR` invalidation of the page: the device, which holds no
/// reference of its own, must stop using the page when that reaches it.
///
/// # Invariants
///
/// `folio` is locked and holds one reference, both taken by
/// `make_device_exclusive()` for this object and given back when it is
/// dropped; `page` is a page of `folio`.
pub(crate) struct ExclusivePage<'a> {
    folio: NonNull<bindings::folio>,
    page: NonNull<bindings::page>,
    /// Borrows the [`ExclusiveLock`] it came from: the mmap read lock is
    /// held while the page is.
    _lock: PhantomData<&'a ()>,
}

impl ExclusivePage<'_> {
    /// The page's frame number.
    pub(crate) fn pfn(&self) -> usize {
        // SAFETY: `page` is a page of a folio this object holds a reference
        // on (type invariant); only its frame number is computed.
        unsafe { glue::rsva_page_pfn(self.page.as_ptr()) }
    }
}

impl Drop for ExclusivePage<'_> {
    fn drop(&mut self) {
        // SAFETY: The folio is locked and referenced for this object (type
        // invariant); both are given back here, once.
        unsafe { glue::rsva_folio_unlock_put(self.folio.as_ptr()) };
    }
}

#[kunit_tests(rsva_device_exclusive)]
mod tests {
    use super::*;
    use crate::kext::mm::interval_notifier::{FaultMode, IntervalNotifier, Invalidate};
    use kernel::page::PAGE_SIZE;

    /// What reached a notifier.
    #[derive(Default)]
    struct Seen {
        /// The last conversion: its start and owner.
        exclusive: Option<(usize, Owner)>,
        /// Other invalidations, and the last one's range.
        others: usize,
        last: (usize, usize),
    }

    impl Invalidate for Seen {
        fn invalidate(&mut self, start: usize, end: usize, _: Option<Owner>) {
            self.others += 1;
            self.last = (start, end);
        }

        fn invalidate_exclusive(&mut self, start: usize, _end: usize, owner: Owner) -> bool {
            self.exclusive = Some((start, owner));
            true
        }
    }

    fn owner(token: usize) -> Result<Owner> {
        NonZeroUsize::new(token).map(Owner::new).ok_or(EINVAL)
    }

    /// The page is the one mapped there, the conversion names its owner,
    /// and the CPU's access afterwards is an ordinary invalidation that
    /// gives the same page back to the process.
    #[test]
    fn conversion_names_its_owner_and_the_cpu_takes_the_page_back() -> Result {
        let mm = glue::test_mm()?;
        let addr = glue::test_mmap(&mm, 2 * PAGE_SIZE, true)?;
        let n = KBox::pin_init(IntervalNotifier::new(Seen::default()), GFP_KERNEL)?;
        n.as_ref().register(&mm, 0, usize::MAX / 2)?;
        let mut pfns = [0 as c_ulong; 1];
        let before = n.fault(addr, FaultMode::Snapshot, None, &mut pfns, |_, e| {
            e[0].pfn()
        })?;
        assert!(before.is_some());
        let me = owner(0x5a)?;
        {
            let lock = ExclusiveLock::new(&mm);
            // Rounded down to the page.
            let page = lock.make_exclusive(addr + 8, me)?;
            assert_eq!(Some(page.pfn()), before);
        }
        assert_eq!(n.with_state(|s| s.exclusive), Some((addr, me)));
        // The entry is not a present page now: a snapshot sees none.
        let present = n.fault(addr, FaultMode::Snapshot, None, &mut pfns, |_, e| {
            e[0].valid()
        })?;
        assert!(!present);
        let others = n.with_state(|s| s.others);
        // SAFETY: `mm` is live; the page is mapped there.
        unsafe { glue::rsva_test_touch(mm.as_raw(), addr, PAGE_SIZE) };
        let (after, (start, end)) = n.with_state(|s| (s.others, s.last));
        assert!(after > others);
        assert!(start <= addr && end >= addr + PAGE_SIZE);
        let back = n.fault(addr, FaultMode::Snapshot, None, &mut pfns, |_, e| {
            e[0].pfn()
        })?;
        assert_eq!(back, before);
        Ok(())
    }

    /// Nothing mapped: `EFAULT`, and no conversion reaches the notifier.
    #[test]
    fn unmapped_addresses_are_refused() -> Result {
        let mm = glue::test_mm()?;
        let addr = glue::test_mmap(&mm, PAGE_SIZE, true)?;
        let n = KBox::pin_init(IntervalNotifier::new(Seen::default()), GFP_KERNEL)?;
        n.as_ref().register(&mm, 0, usize::MAX / 2)?;
        // SAFETY: `mm` is live; unmaps what `test_mmap` mapped.
        unsafe { glue::rsva_test_munmap(mm.as_raw(), addr, PAGE_SIZE) };
        let lock = ExclusiveLock::new(&mm);
        assert_eq!(lock.make_exclusive(addr, owner(1)?).err(), Some(EFAULT));
        drop(lock);
        assert_eq!(n.with_state(|s| s.exclusive), None);
        Ok(())
    }

    #[test]
    fn only_exclusive_events_have_owners() {
        let mut range = bindings::mmu_notifier_range {
            event: bindings::mmu_notifier_event_MMU_NOTIFY_CLEAR,
            owner: core::ptr::without_provenance_mut(7),
            ..Default::default()
        };
        // SAFETY: A valid range on the stack.
        assert_eq!(unsafe { Owner::of_exclusive_range(&range) }, None);
        range.event = bindings::mmu_notifier_event_MMU_NOTIFY_EXCLUSIVE;
        // SAFETY: `range` lives on the stack for the whole call.
        assert_eq!(unsafe { Owner::of_exclusive_range(&range) }, owner(7).ok());
        range.owner = core::ptr::null_mut();
        // SAFETY: `range` lives on the stack for the whole call.
        assert_eq!(unsafe { Owner::of_exclusive_range(&range) }, None);
    }
}
