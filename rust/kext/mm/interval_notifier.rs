// SPDX-License-Identifier: GPL-2.0

//! mmu interval notifiers and `hmm_range_fault()`, with the sequence
//! protocol of Documentation/mm/hmm.rst in the types.
//!
//! A device that mirrors part of an address space must never use a
//! translation that an invalidation has revoked. The kernel's protocol:
//! the reader takes a sequence number (`mmu_interval_read_begin()`), faults
//! the range (`hmm_range_fault()` under the mmap read lock), then takes the
//! driver's lock and checks `mmu_interval_read_retry()`, starting over if an
//! invalidation ran; the invalidation callback takes the same lock and
//! calls `mmu_interval_set_seq()`. Here the lock is part of the notifier
//! ([`IntervalNotifier`] owns a `Mutex<T>`): the callback always sets the
//! sequence under it before [`Invalidate::invalidate`] sees the state, and
//! [`IntervalNotifier::fault`] gives the faulted entries and the state to
//! the caller only under it after the retry check passed, so no caller can
//! skip the check. A callback that may not block (`!blockable`) only
//! try-locks, and asks to be called again when the lock is taken.
//!
//! `hmm_range_fault()` walks the notifier's mm and asserts that its mmap
//! lock is held. [`IntervalNotifier::fault`] therefore takes no mm: it
//! faults the one the notifier was registered on, with a user reference
//! (`EFAULT` once the mm has none) and that mm's mmap read lock.

use core::{marker::PhantomData, ptr::null_mut};

use kernel::{
    bindings,
    mm::{Mm, MmWithUser},
    new_mutex,
    prelude::*,
    sync::{
        aref::ARef,
        atomic::{Acquire, Atomic, Release},
        Mutex,
    },
    types::Opaque,
};

use crate::{kext::glue, kext::mm::pagemap, kext::mm::pagemap::Owner};

/// What a mirror does when part of the address space changes.
pub(crate) trait Invalidate: Send + Unpin + 'static {
    /// Forgets what was mirrored of `[start, end)`. Called with the
    /// notifier's lock held, after the sequence was bumped; must not sleep
    /// when the invalidation is not blockable. `migrating_for` is the
    /// owner of device memory whose migration (`MMU_NOTIFY_MIGRATE`) sends
    /// the invalidation: that device's mirror may keep its entries, as the
    /// migration updates them (test_hmm's `dmirror_interval_invalidate()`).
    fn invalidate(&mut self, start: usize, end: usize, migrating_for: Option<Owner>);

    /// The same for the conversion of `[start, end)` to a device-exclusive
    /// entry that `owner` asked for (`MMU_NOTIFY_EXCLUSIVE`, see
    /// [`crate::kext::mm::device_exclusive`]). Returns whether the sequence is
    /// bumped: false when the conversion is the state's own request, which
    /// the requester keeps and must not see as a race in its retry check
    /// ([`IntervalNotifier::read_begin`]; mm/rmap.c: "the caller must
    /// filter this event out to prevent livelocks"). By default everything
    /// is forgotten and the sequence bumped, as for any other invalidation.
    fn invalidate_exclusive(&mut self, start: usize, end: usize, owner: Owner) -> bool {
        let _ = owner;
        self.invalidate(start, end, None);
        true
    }
}

/// A sequence number taken by [`IntervalNotifier::read_begin`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Seq(c_ulong);

/// How [`IntervalNotifier::fault`] treats pages that are not present.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FaultMode {
    /// Report what is mapped, fault nothing in (`HMM_DMIRROR_SNAPSHOT`).
    Snapshot,
    /// Fault pages in for reading.
    Read,
    /// Fault pages in for writing (breaking COW).
    Write,
}

const PFN_VALID: c_ulong = bindings::hmm_pfn_flags_HMM_PFN_VALID as c_ulong;
const PFN_WRITE: c_ulong = bindings::hmm_pfn_flags_HMM_PFN_WRITE as c_ulong;
const PFN_ERROR: c_ulong = bindings::hmm_pfn_flags_HMM_PFN_ERROR as c_ulong;
const PFN_ORDER_SHIFT: u32 = bindings::hmm_pfn_flags_HMM_PFN_ORDER_SHIFT as u32;
const PFN_FLAGS: c_ulong = bindings::hmm_pfn_flags_HMM_PFN_FLAGS as c_ulong;

impl FaultMode {
    fn default_flags(self) -> c_ulong {
        match self {
            FaultMode::Snapshot => 0,
            FaultMode::Read => PFN_VALID,
            FaultMode::Write => PFN_VALID | PFN_WRITE,
        }
    }
}

/// The lifetime of one taking of one notifier's lock, as the proofs of
/// that notifier carry it: invariant, so a proof branded `'a` is accepted
/// only with a state borrowed for exactly `'a`, the one that lock taking
/// handed out. Neither a table of another notifier (nested, its lock has
/// another brand) nor one from outside the closure (borrowed for longer)
/// can take it (see `kext::mm::frame_table::FrameTable`'s setters).
type Brand<'a> = PhantomData<fn(&'a ()) -> &'a ()>;

/// One entry `hmm_range_fault()` wrote: a page frame and its flags, handed
/// out by [`IntervalNotifier::fault`] under the notifier's lock after the
/// retry check, and borrowing that lock (`'a`, a [`Brand`]): while it
/// lives, the frame of a valid entry is mapped in the notifier's mm (its
/// unmapping would send an invalidation, which waits for the lock), so it
/// stays allocated.
#[repr(transparent)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct HmmPfn<'a>(c_ulong, Brand<'a>);

/// Proof that the lock of an [`IntervalNotifier`] is held for `'a` and that
/// no invalidation bumped its sequence since the read the caller checked
/// ([`IntervalNotifier::fault`], [`IntervalNotifier::with_state_unless_changed`]):
/// what the caller read of the address space since then is still mapped.
/// Only this module makes one; `'a` is a [`Brand`].
#[derive(Clone, Copy, Debug)]
pub(crate) struct Unchanged<'a>(Brand<'a>);

impl<'a> HmmPfn<'a> {
    /// The owner of the device-private page of a valid entry; `None` for a
    /// page of system memory or an entry that is not valid.
    pub(crate) fn device_private_owner(self) -> Option<Owner> {
        let pfn = self.pfn()?;
        // SAFETY: The frame is mapped and stays allocated while the entry
        // borrows the notifier's lock (type invariant of `HmmPfn`).
        unsafe { pagemap::device_private_owner(pfn) }
    }

    /// Whether a valid entry is the shared zero page.
    pub(crate) fn is_zero(self) -> bool {
        let Some(pfn) = self.pfn() else {
            return false;
        };
        // SAFETY: Only compares the frame number.
        unsafe { glue::rsva_is_zero_pfn(pfn) }
    }

    /// The proof that the lock is held and no invalidation ran since the
    /// entry was read, for as long as the entry borrows the lock.
    pub(crate) fn unchanged(self) -> Unchanged<'a> {
        Unchanged(PhantomData)
    }

    /// The page is present and may be read.
    pub(crate) fn valid(self) -> bool {
        self.0 & PFN_VALID != 0
    }

    /// The page may be written.
    pub(crate) fn writable(self) -> bool {
        self.valid() && self.0 & PFN_WRITE != 0
    }

    /// The address is not mappable (no VMA, or a fault was refused).
    pub(crate) fn error(self) -> bool {
        self.0 & PFN_ERROR != 0
    }

    /// The page frame number, for a valid entry.
    pub(crate) fn pfn(self) -> Option<usize> {
        self.valid().then_some(self.0 & !PFN_FLAGS)
    }

    /// log2 of the number of pages the mapping covers (9 for a 2 MiB THP).
    pub(crate) fn order(self) -> u32 {
        ((self.0 >> PFN_ORDER_SHIFT) & 0x1f) as u32
    }
}

/// An mmu interval notifier over `[start, start + len)` of one mm, with
/// the state it protects.
///
/// # Invariants
///
/// While `registered` is true, `sub` is inserted in its mm (which it holds
/// with `mmgrab()`) with [`IntervalNotifier::OPS`]; it is removed in drop.
#[pin_data(PinnedDrop)]
pub(crate) struct IntervalNotifier<T: Invalidate> {
    sub: Opaque<bindings::mmu_interval_notifier>,
    #[pin]
    state: Mutex<T>,
    registered: Atomic<bool>,
}

// SAFETY: The C part is used by the notifier core from any thread; the
// state is behind the mutex.
unsafe impl<T: Invalidate> Send for IntervalNotifier<T> {}
// SAFETY: Shared references reach the C part only through the notifier
// core, which serialises itself, and the state only through the mutex.
unsafe impl<T: Invalidate> Sync for IntervalNotifier<T> {}

impl<T: Invalidate> IntervalNotifier<T> {
    const OPS: bindings::mmu_interval_notifier_ops = bindings::mmu_interval_notifier_ops {
        invalidate: Some(Self::invalidate_cb),
        ..pin_init::zeroed()
    };

    /// A notifier holding `state`, not registered yet.
    pub(crate) fn new(state: T) -> impl PinInit<Self> {
        pin_init!(Self {
            sub: Opaque::zeroed(),
            state <- new_mutex!(state),
            registered: Atomic::new(false),
        })
    }

    /// Registers on `mm` over `[start, start + len)`: from now on
    /// invalidations of the range reach the state. Once only (`EBUSY`).
    pub(crate) fn register(self: Pin<&Self>, mm: &MmWithUser, start: usize, len: usize) -> Result {
        if self.registered.load(Acquire) {
            return Err(EBUSY);
        }
        // SAFETY: `sub` is pinned and not inserted; `mm` has users; the ops
        // live forever (a promoted constant).
        let ret = unsafe {
            bindings::mmu_interval_notifier_insert(
                self.sub.get(),
                mm.as_raw(),
                start,
                len,
                &Self::OPS,
            )
        };
        kernel::error::to_result(ret)?;
        // INVARIANT: inserted just above; published after `sub.mm` is set.
        self.registered.store(true, Release);
        Ok(())
    }

    /// The mm the notifier is registered on, with a user reference:
    /// `EINVAL` before [`IntervalNotifier::register`], `EFAULT` once the
    /// mm has no users (after exit_mmap).
    pub(crate) fn user(&self) -> Result<ARef<MmWithUser>> {
        if !self.registered.load(Acquire) {
            return Err(EINVAL);
        }
        // SAFETY: Registered (type invariant): `sub.mm` was set by the
        // insertion, which holds `mmgrab()` on it until the removal in
        // drop, so it outlives `&self`.
        let mm = unsafe { Mm::from_raw(glue::rsva_mni_mm(self.sub.get())) };
        mm.mmget_not_zero().ok_or(EFAULT)
    }

    /// The invalidation callback.
    ///
    /// # Safety
    ///
    /// Called by the notifier core with the `sub` of a registered notifier.
    unsafe extern "C" fn invalidate_cb(
        sub: *mut bindings::mmu_interval_notifier,
        range: *const bindings::mmu_notifier_range,
        cur_seq: c_ulong,
    ) -> bool {
        // SAFETY: `sub` is the field of a live notifier: it is removed
        // (which waits for callbacks) before it is freed.
        let this = unsafe {
            &*kernel::container_of!(
                sub.cast::<Opaque<bindings::mmu_interval_notifier>>(),
                Self,
                sub
            )
        };
        // SAFETY: The core passes a valid range.
        let blockable = unsafe { glue::rsva_mn_range_blockable(range) };
        let mut state = if blockable {
            this.state.lock()
        } else {
            match this.state.try_lock() {
                Some(guard) => guard,
                None => return false,
            }
        };
        // SAFETY: The core passes a valid range.
        let (start, end) = unsafe {
            (
                glue::rsva_mn_range_start(range),
                glue::rsva_mn_range_end(range),
            )
        };
        // SAFETY: The core passes a valid range.
        let bump = match unsafe { Owner::of_exclusive_range(range) } {
            Some(owner) => state.invalidate_exclusive(start, end, owner),
            None => {
                // SAFETY: The core passes a valid range.
                let migrating_for = unsafe { Owner::of_migrate_range(range) };
                state.invalidate(start, end, migrating_for);
                true
            }
        };
        if bump {
            // SAFETY: Under the lock the readers check the sequence with.
            unsafe { glue::rsva_mni_set_seq(sub, cur_seq) };
        }
        true
    }

    /// Begins a read of the address space other than [`IntervalNotifier::fault`]
    /// (a device-exclusive request): takes the sequence, waiting for the
    /// invalidations in progress to end. `EINVAL` before registration.
    pub(crate) fn read_begin(&self) -> Result<Seq> {
        if !self.registered.load(Acquire) {
            return Err(EINVAL);
        }
        // SAFETY: `sub` is registered (`registered` was just read true, and
        // only drop removes it).
        Ok(Seq(unsafe {
            bindings::mmu_interval_read_begin(self.sub.get())
        }))
    }

    /// Calls `f` with the state under the lock if no invalidation bumped the
    /// sequence since `seq` was taken (from this notifier's
    /// [`IntervalNotifier::read_begin`]); `None` otherwise (read again).
    pub(crate) fn with_state_unless_changed<R>(
        &self,
        seq: Seq,
        f: impl for<'a> FnOnce(&'a mut T, Unchanged<'a>) -> R,
    ) -> Option<R> {
        if !self.registered.load(Acquire) {
            return None;
        }
        let mut state = self.state.lock();
        // SAFETY: `sub` is registered (`registered` was just read true, and
        // only drop removes it); checked under the lock that the callback
        // sets the sequence under.
        if unsafe { glue::rsva_mni_read_retry(self.sub.get(), seq.0) } {
            return None;
        }
        Some(f(&mut state, Unchanged(PhantomData)))
    }

    /// Faults `[start, start + 4 KiB * pfns.len())` of the notifier's mm in
    /// `mode` and, once no invalidation ran since, calls `f` with the state
    /// (under the lock) and the entries; retries for up to a second
    /// otherwise (`EBUSY`). `EFAULT` when an address is not mapped in a
    /// fault mode or the mm has no users left, `EPERM` when writing a
    /// read-only page, `EINVAL` before registration, outside the notifier's
    /// range or unaligned.
    ///
    /// With an `owner`, device-private pages of that owner are reported as
    /// they are (valid, with their frame) instead of being faulted back to
    /// system memory (`hmm_range.dev_private_owner`).
    pub(crate) fn fault<R>(
        &self,
        start: usize,
        mode: FaultMode,
        owner: Option<Owner>,
        pfns: &mut [c_ulong],
        f: impl for<'a> FnOnce(&'a mut T, &'a [HmmPfn<'a>]) -> R,
    ) -> Result<R> {
        if start % kernel::page::PAGE_SIZE != 0 {
            return Err(EINVAL);
        }
        let end = pfns
            .len()
            .checked_mul(kernel::page::PAGE_SIZE)
            .and_then(|len| start.checked_add(len))
            .ok_or(EINVAL)?;
        let mm = self.user()?;
        // SAFETY: Reads the jiffies counter.
        let now = unsafe { bindings::jiffies };
        // SAFETY: A pure conversion.
        let deadline = now.wrapping_add(unsafe { bindings::__msecs_to_jiffies(1000) });
        loop {
            // SAFETY: Reads the jiffies counter.
            if (unsafe { bindings::jiffies }.wrapping_sub(deadline) as isize) > 0 {
                return Err(EBUSY);
            }
            // SAFETY: `sub` is registered (`user()` checked).
            let seq = unsafe { bindings::mmu_interval_read_begin(self.sub.get()) };
            let mut range = bindings::hmm_range {
                notifier: self.sub.get(),
                notifier_seq: seq,
                start,
                end,
                hmm_pfns: pfns.as_mut_ptr(),
                default_flags: mode.default_flags(),
                pfn_flags_mask: 0,
                dev_private_owner: owner.map_or(null_mut(), Owner::as_ptr),
            };
            let ret = {
                let _lock = mm.mmap_read_lock();
                // SAFETY: The range is initialised, its array holds one entry
                // a page, and the mmap lock of the mm it walks (the
                // notifier's, `mm`) is held for reading.
                unsafe { bindings::hmm_range_fault(&mut range) }
            };
            if ret == EBUSY.to_errno() {
                continue;
            }
            kernel::error::to_result(ret)?;
            let mut state = self.state.lock();
            // SAFETY: `sub` is registered; checked under the lock that
            // the callback sets the sequence under.
            if unsafe { glue::rsva_mni_read_retry(self.sub.get(), seq) } {
                continue;
            }
            // SAFETY: `HmmPfn` is a transparent `c_ulong`. INVARIANT: the
            // entries are handed out under the lock after the retry check,
            // borrowing the guard.
            let entries = unsafe {
                core::slice::from_raw_parts(pfns.as_ptr().cast::<HmmPfn<'_>>(), pfns.len())
            };
            return Ok(f(&mut state, entries));
        }
    }

    /// Runs `f` on the state, under the lock.
    pub(crate) fn with_state<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        f(&mut self.state.lock())
    }
}

#[pinned_drop]
impl<T: Invalidate> PinnedDrop for IntervalNotifier<T> {
    fn drop(self: Pin<&mut Self>) {
        if self.registered.load(Acquire) {
            // SAFETY: Inserted in `register`; removal waits for callbacks in
            // progress and drops the mm's grab. Safe after exit_mmap.
            unsafe { bindings::mmu_interval_notifier_remove(self.sub.get()) };
        }
    }
}

#[kunit_tests(rsva_interval_notifier)]
mod tests {
    use super::*;
    use kernel::page::PAGE_SIZE;

    /// Counts what was invalidated.
    #[derive(Default)]
    struct Seen {
        calls: usize,
        start: usize,
        end: usize,
    }

    impl Invalidate for Seen {
        fn invalidate(&mut self, start: usize, end: usize, _: Option<Owner>) {
            self.calls += 1;
            self.start = start;
            self.end = end;
        }
    }

    #[test]
    fn snapshot_read_and_invalidate() -> Result {
        let mm = glue::test_mm()?;
        let len = 4 * PAGE_SIZE;
        let touched = glue::test_mmap(&mm, len, true)?;
        let fresh = glue::test_mmap(&mm, len, false)?;
        let n = KBox::pin_init(IntervalNotifier::new(Seen::default()), GFP_KERNEL)?;
        n.as_ref().register(&mm, 0, usize::MAX / 2)?;
        let mut pfns = [0 as c_ulong; 4];

        // Touched pages are present and writable; fresh ones are not.
        let ok = n.fault(touched, FaultMode::Snapshot, None, &mut pfns, |_, e| {
            e.iter()
                .all(|p| p.valid() && p.writable() && p.pfn().is_some())
        })?;
        assert!(ok);
        let none = n.fault(fresh, FaultMode::Snapshot, None, &mut pfns, |_, e| {
            e.iter().all(|p| !p.valid())
        })?;
        assert!(none);
        // Reading faults them in (the zero page: present, read-only).
        let read = n.fault(fresh, FaultMode::Read, None, &mut pfns, |_, e| {
            e.iter().all(|p| p.valid() && !p.writable())
        })?;
        assert!(read);
        let written = n.fault(fresh, FaultMode::Write, None, &mut pfns, |_, e| {
            e.iter().all(|p| p.writable())
        })?;
        assert!(written);

        // Unmapping invalidates the range, under the lock, before it goes.
        let before = n.with_state(|s| s.calls);
        // SAFETY: `mm` is live; unmaps what `map` mapped.
        unsafe { glue::rsva_test_munmap(mm.as_raw(), touched, len) };
        let (calls, start, end) = n.with_state(|s| (s.calls, s.start, s.end));
        assert!(calls > before);
        assert!(start <= touched && end >= touched + len);
        // And a fault there is refused now.
        let gone = n.fault(touched, FaultMode::Read, None, &mut pfns, |_, _| ());
        assert_eq!(gone.err(), Some(EFAULT));
        let snap = n.fault(touched, FaultMode::Snapshot, None, &mut pfns, |_, e| {
            e.iter().all(|p| p.error() || !p.valid())
        })?;
        assert!(snap);
        Ok(())
    }

    #[test]
    fn bad_ranges_are_refused() -> Result {
        let mm = glue::test_mm()?;
        let n = KBox::pin_init(IntervalNotifier::new(Seen::default()), GFP_KERNEL)?;
        let mut pfns = [0 as c_ulong; 2];
        // Not registered yet.
        let r = n.fault(0x10000, FaultMode::Snapshot, None, &mut pfns, |_, _| ());
        assert_eq!(r.err(), Some(EINVAL));
        n.as_ref().register(&mm, 0, usize::MAX / 2)?;
        assert_eq!(n.as_ref().register(&mm, 0, 4096).err(), Some(EBUSY));
        let unaligned = n.fault(0x10001, FaultMode::Snapshot, None, &mut pfns, |_, _| ());
        assert_eq!(unaligned.err(), Some(EINVAL));
        let wraps = n.fault(
            usize::MAX & !4095,
            FaultMode::Snapshot,
            None,
            &mut pfns,
            |_, _| (),
        );
        assert_eq!(wraps.err(), Some(EINVAL));
        Ok(())
    }

    /// `fault()` takes no mm (it used to take one and lock it while
    /// `hmm_range_fault()` walked the notifier's): it walks the notifier's
    /// mm under that mm's mmap lock (lockdep checks `hmm_range_fault()`'s
    /// assertion) and answers `EFAULT` once that mm has no users, even
    /// while the caller holds another mm with users.
    #[test]
    fn fault_uses_the_notifiers_mm() -> Result {
        let mm = glue::test_mm()?;
        let other = glue::test_mm()?;
        let n = KBox::pin_init(IntervalNotifier::new(Seen::default()), GFP_KERNEL)?;
        n.as_ref().register(&mm, 0, usize::MAX / 2)?;
        let addr = glue::test_mmap(&mm, PAGE_SIZE, true)?;
        glue::test_mmap(&other, PAGE_SIZE, true)?;
        let mut pfns = [0 as c_ulong; 1];
        let present = n.fault(addr, FaultMode::Snapshot, None, &mut pfns, |_, e| {
            e.iter().all(|p| p.writable())
        })?;
        assert!(present);
        // The last user of the notifier's mm goes (exit_mmap runs).
        drop(mm);
        let gone = n.fault(addr, FaultMode::Snapshot, None, &mut pfns, |_, _| ());
        assert_eq!(gone.err(), Some(EFAULT));
        drop(other);
        Ok(())
    }

    #[test]
    fn pfn_entries_decode() {
        let e = |v| HmmPfn(v, PhantomData);
        let v = e(PFN_VALID | PFN_WRITE | 0x1234);
        assert!(v.valid() && v.writable() && !v.error());
        assert_eq!(v.pfn(), Some(0x1234));
        let ro = e(PFN_VALID | 7);
        assert!(ro.valid() && !ro.writable());
        let none = e(0);
        assert!(!none.valid() && !none.writable() && none.pfn().is_none());
        let err = e(PFN_ERROR);
        assert!(err.error() && !err.valid());
        let thp = e(PFN_VALID | (9 << PFN_ORDER_SHIFT) | 0x200);
        assert_eq!((thp.order(), thp.pfn()), (9, Some(0x200)));
    }
}
