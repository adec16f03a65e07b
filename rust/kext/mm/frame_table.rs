// SPDX-License-Identifier: GPL-2.0

//! A device's table of mirrored frames: a cache of a process's page table
//! that a device reads and writes through, kept by `hmm_range_fault()` and
//! an mmu interval notifier (Documentation/mm/hmm.rst).
//!
//! The table stores, per page of the address space, the frame the page was
//! mapped to when it was faulted, and nothing keeps that frame allocated:
//! the process may unmap it at any time. What makes a cached frame usable is
//! the notifier's protocol, which this type carries:
//!
//! - an entry is set only from a value that proves the frame is mapped now,
//!   under the notifier's lock: an [`HmmPfn`] handed out by
//!   [`IntervalNotifier::fault`] after its retry check, or an [`Unchanged`]
//!   proof from [`IntervalNotifier::with_state_unless_changed`] together
//!   with a page the caller holds (a device page's data page, a page made
//!   device-exclusive), of the same taking of the lock as the table (the
//!   proofs' lifetime is invariant, see [`FrameTable::set_faulted`]);
//! - the notifier's invalidation clears the entries it covers, under the
//!   same lock, before the page can be unmapped and freed
//!   ([`FrameTable::invalidate`]);
//! - a frame is reached only as a [`Frame<'a>`] borrowed from the table, so
//!   only while the lock (which gave the `&FrameTable`) is held: its copies
//!   are safe. A copy after the lock goes through a counted reference taken
//!   under it ([`Frame::get_page`], [`PageRef`]);
//! - the table stays in the notifier's state: it is pinned there and no
//!   `&mut FrameTable` exists ([`FrameTable`]).
//!
//! [`IntervalNotifier::fault`]: super::interval_notifier::IntervalNotifier::fault
//! [`IntervalNotifier::with_state_unless_changed`]:
//!     super::interval_notifier::IntervalNotifier::with_state_unless_changed

use core::{
    marker::{PhantomData, PhantomPinned},
    ptr::NonNull,
};

use kernel::{
    bindings,
    page::{Page, PAGE_SIZE},
    prelude::*,
    rbtree::{RBTree, RBTreeNode},
    uaccess::UserSliceReader,
};

use super::{
    device_exclusive::ExclusivePage,
    interval_notifier::{HmmPfn, Unchanged},
    pagemap::{page_pfn, Owner},
};
use crate::kext::glue;

/// Pages a table chunk covers.
pub(crate) const CHUNK: usize = 512;

/// An entry: `pfn << SHIFT | flags`, or 0. `PRESENT`: the frame is
/// mirrored; `WRITE`: writable; `ATOMIC`: made device-exclusive for the
/// table (present, not writable).
const PRESENT: usize = 1;
const WRITE: usize = 2;
const ATOMIC: usize = 4;
const SHIFT: u32 = 3;

/// A zeroed chunk of the table (keyed by page index / [`CHUNK`]), allocated
/// before it is inserted: the table's lock is taken by invalidations from
/// reclaim, so nothing is allocated under it.
pub(crate) struct TableChunk {
    key: usize,
    node: RBTreeNode<usize, KBox<[usize; CHUNK]>>,
}

impl TableChunk {
    /// A chunk for pages `[key * CHUNK, (key + 1) * CHUNK)`.
    pub(crate) fn new(key: usize, flags: kernel::alloc::Flags) -> Result<Self> {
        let entries = KBox::init(pin_init::init_zeroed(), flags)?;
        Ok(Self {
            key,
            node: RBTreeNode::new(key, entries, flags)?,
        })
    }
}

/// The frames a device mirrors of one mm, in chunks of [`CHUNK`] pages.
///
/// It owns its entries and chunks; dropping it frees them (nothing else:
/// the frames are not referenced).
///
/// The table never moves and is never replaced where it is: it is made
/// only in place ([`FrameTable::new`] is an initializer, so no code outside
/// this file holds a `FrameTable` value), it is `!Unpin` (`PhantomPinned`),
/// and whoever reaches it gets a `Pin<&mut FrameTable>` (to set or clear
/// entries) or a `&FrameTable` (to read frames), never a `&mut FrameTable`
/// nor a `&mut` to its chunks (it projects by hand: `#[pin_data]`'s
/// `project()` would have the struct's visibility).
/// So safe code can neither take a table out of its notifier's state nor
/// put another one in its place: `core::mem::swap(&mut *a, &mut *b)`,
/// `core::mem::replace(&mut *t, ..)` and `Pin::set(&mut t, ..)` do not
/// compile on a table (no `&mut FrameTable` for the first two, no
/// `FrameTable` value for the third), and a check below this type fails
/// the build if it ever becomes `Unpin`. Nor does setting an entry of a
/// table with the proofs of a notifier whose state does not hold it: the
/// setters take the table as `&mut Pin<&'a mut FrameTable>` and a proof
/// branded with the same, invariant, `'a`, which only the state that the
/// proof's taking of the lock borrowed has. The mirror keeps it as a
/// `Pin<KBox<FrameTable>>` that only its registry holds, and hands it to
/// the mirror's code under the lock as a `Pin<&mut FrameTable>`
/// (`mirror/registry.rs`'s `ClientRef`).
///
/// # Invariants
///
/// The table is part of the state of the [`IntervalNotifier`] registered on
/// the mm whose proofs set its entries, from its first entry until it is
/// dropped, and is reached only under that notifier's lock: it is pinned
/// where that state put it and set only with that state's proofs (see
/// above; the registry inserts a table in one mirror's state and takes it
/// out only to drop it). A present
/// entry's frame is mapped in that mm, or is the data page that the device
/// memory of `owner` keeps for one of its pages mapped there (freed only by
/// the `folio_free` of that page, see [`PagemapOps::folio_free`]): every
/// invalidation of the page clears the entry first
/// ([`FrameTable::invalidate`]), except a migration by the table's own
/// device, which keeps the entries of the pages it does not move and
/// replaces or forgets ([`FrameTable::forget`]) those it moves before the
/// old pages are freed (test_hmm's `dmirror_interval_invalidate()`;
/// `mirror/migration.rs`).
///
/// [`IntervalNotifier`]: super::interval_notifier::IntervalNotifier
/// [`PagemapOps::folio_free`]: super::pagemap::PagemapOps::folio_free
pub(crate) struct FrameTable {
    chunks: RBTree<usize, KBox<[usize; CHUNK]>>,
    owner: Option<Owner>,
    _pin: PhantomPinned,
}

// Fails the build if `FrameTable` is `Unpin`: `Pin<&mut FrameTable>` would
// then give out `&mut FrameTable`, and a table could be swapped out of its
// notifier's state. The path below is ambiguous exactly when both impls
// apply, that is, when `FrameTable: Unpin`.
const _: () = {
    trait AmbiguousIfUnpin<A> {
        fn check() {}
    }
    impl<T: ?Sized> AmbiguousIfUnpin<()> for T {}
    impl<T: ?Sized + Unpin> AmbiguousIfUnpin<u8> for T {}
    let _ = <FrameTable as AmbiguousIfUnpin<_>>::check;
};

impl FrameTable {
    /// An empty table of a device whose memory is `owner`'s, if any, to
    /// be made in place (`KBox::pin_init`): a table is never a value that
    /// safe code could move or swap.
    pub(crate) fn new(owner: Option<Owner>) -> impl PinInit<Self> {
        // A value is its own initializer; the opaque type keeps it one.
        Self {
            chunks: RBTree::new(),
            owner,
            _pin: PhantomPinned,
        }
    }

    /// The chunks, to change in place. Private: no `&mut` to a part of the
    /// table leaves this file (`#[pin_data]`'s `project()` would hand one
    /// to the whole crate, which could then swap two tables' chunks).
    fn chunks_mut(self: Pin<&mut Self>) -> &mut RBTree<usize, KBox<[usize; CHUNK]>> {
        // SAFETY: The chunks are not structurally pinned: the table needs
        // only itself to stay where it is. The reference changes entries
        // and the tree in place and does not leave this file, and nothing
        // here moves the table out of `self`.
        unsafe { &mut self.get_unchecked_mut().chunks }
    }

    /// The owner of the device memory of the table's device.
    pub(crate) fn owner(&self) -> Option<Owner> {
        self.owner
    }

    /// Whether the chunk of page `page` exists.
    pub(crate) fn has_chunk(&self, page: usize) -> bool {
        self.chunks.get(&(page / CHUNK)).is_some()
    }

    /// Inserts `chunk` unless its key has one already (then it is dropped).
    pub(crate) fn insert_chunk(self: Pin<&mut Self>, chunk: TableChunk) {
        let chunks = self.chunks_mut();
        if chunks.get(&chunk.key).is_none() {
            drop(chunks.insert(chunk.node));
        }
    }

    /// The invalidation of `[start, end)` by the notifier: forgets its
    /// frames, unless it is a migration of the table's own device memory
    /// (`migrating_for` is `owner`): that migration updates the entries of
    /// the pages it moves itself, and those it does not move stay mapped.
    pub(crate) fn invalidate(
        self: Pin<&mut Self>,
        start: usize,
        end: usize,
        migrating_for: Option<Owner>,
    ) {
        if migrating_for.is_some() && migrating_for == self.owner {
            return;
        }
        self.forget(start, end);
    }

    /// Forgets the frames of `[start, end)`.
    pub(crate) fn forget(self: Pin<&mut Self>, start: usize, end: usize) {
        if end <= start {
            return;
        }
        let (first, last) = (start / PAGE_SIZE, (end - 1) / PAGE_SIZE);
        for (&key, chunk) in self.chunks_mut().iter_mut() {
            let base = key * CHUNK;
            if base > last || base + CHUNK <= first {
                continue;
            }
            let from = first.saturating_sub(base);
            let to = (last - base).min(CHUNK - 1);
            for e in &mut chunk[from..=to] {
                *e = 0;
            }
        }
    }

    /// Sets the entry of page `page` (index in the address space; ignored
    /// without a chunk for it).
    fn put(self: Pin<&mut Self>, page: usize, value: usize) {
        if let Some(c) = self.chunks_mut().get_mut(&(page / CHUNK)) {
            c[page % CHUNK] = value;
        }
    }

    /// Mirrors page `page` as `hmm_range_fault()` found it (`e`, which
    /// proves it mapped): its frame, writable if the entry is, or nothing
    /// for an entry that is not valid. A device-private page has no frame
    /// the CPU can reach: the entry is cleared and false returned (the
    /// device's own pages are mirrored through their data pages,
    /// [`FrameTable::set_data`]).
    ///
    /// `'a` is the brand of the taking of the lock that handed out `e`
    /// (invariant): `self` must be the table that the same taking borrowed
    /// from the notifier's state, for all of `'a`. A table of another
    /// notifier, or one borrowed from outside the closure that got `e`,
    /// does not compile here; so for [`FrameTable::set_data`] and
    /// [`FrameTable::set_exclusive`] with their [`Unchanged<'a>`].
    pub(crate) fn set_faulted<'a>(
        self: &mut Pin<&'a mut Self>,
        page: usize,
        e: HmmPfn<'a>,
    ) -> bool {
        let Some(pfn) = e.pfn() else {
            self.as_mut().put(page, 0);
            return true;
        };
        if e.device_private_owner().is_some() {
            self.as_mut().put(page, 0);
            return false;
        }
        let write = if e.writable() { WRITE } else { 0 };
        self.as_mut().put(page, pfn << SHIFT | PRESENT | write);
        true
    }

    /// Mirrors page `page`, a page of the device's own memory mapped in the
    /// mm (proved by `unchanged`, under the lock), as `data`, the system
    /// page its device memory keeps its contents in (test_hmm's
    /// `BACKING_PAGE()`), writable if `write`.
    pub(crate) fn set_data<'a>(
        self: &mut Pin<&'a mut Self>,
        page: usize,
        data: &Page,
        write: bool,
        _: Unchanged<'a>,
    ) {
        let write = if write { WRITE } else { 0 };
        self.as_mut()
            .put(page, page_pfn(data) << SHIFT | PRESENT | write);
    }

    /// Mirrors page `page` as `p`, made exclusive to the device and held
    /// (locked) by the caller, with no invalidation since it was asked for
    /// (`unchanged`): present, `ATOMIC`, not writable.
    pub(crate) fn set_exclusive<'a>(
        self: &mut Pin<&'a mut Self>,
        page: usize,
        p: &ExclusivePage<'_>,
        _: Unchanged<'a>,
    ) {
        self.as_mut().put(page, p.pfn() << SHIFT | PRESENT | ATOMIC);
    }

    /// The mirrored frames from page `first` on, at most `max` and within
    /// `first`'s chunk, up to the first page that is not mirrored; they
    /// borrow the table (and so the lock that gave it).
    pub(crate) fn frames(&self, first: usize, max: usize) -> impl Iterator<Item = Frame<'_>> {
        let entries = self
            .chunks
            .get(&(first / CHUNK))
            .map_or(&[][..], |c| &c[first % CHUNK..]);
        entries
            .iter()
            .take(max)
            .take_while(|&&e| e & PRESENT != 0)
            .map(|&e| Frame {
                e,
                _table: PhantomData,
            })
    }

    /// Whether an entry of pages `[first, last)` is `ATOMIC`.
    pub(crate) fn any_atomic(&self, first: usize, last: usize) -> bool {
        self.chunks.iter().any(|(&key, chunk)| {
            let base = key * CHUNK;
            if base >= last || base + CHUNK <= first {
                return false;
            }
            let from = first.saturating_sub(base);
            let to = (last - base).min(CHUNK);
            chunk[from..to].iter().any(|&e| e & ATOMIC != 0)
        })
    }

    /// The raw entry of page `page` (0 when not mirrored), for tests.
    #[cfg(CONFIG_KUNIT)]
    fn entry(&self, page: usize) -> usize {
        self.chunks
            .get(&(page / CHUNK))
            .map_or(0, |c| c[page % CHUNK])
    }
}

/// A frame of a present entry, borrowed from its [`FrameTable`]: while it
/// lives the table's lock is held, so the frame is mapped (or kept, for a
/// device page's data page) and its copies are safe.
///
/// # Invariants
///
/// `e` is a present entry of a table borrowed for `'a` (see
/// [`FrameTable`]'s invariants).
#[derive(Clone, Copy)]
pub(crate) struct Frame<'a> {
    e: usize,
    _table: PhantomData<&'a FrameTable>,
}

impl Frame<'_> {
    fn pfn(self) -> usize {
        self.e >> SHIFT
    }

    /// Whether the frame is mirrored writable.
    pub(crate) fn writable(self) -> bool {
        self.e & WRITE != 0
    }

    /// Copies the frame to user memory at `uaddr` (a user address of the
    /// current task) without taking a page fault; false when the user page
    /// is not there to be written right now.
    pub(crate) fn copy_to_user_nofault(self, uaddr: u64) -> bool {
        // SAFETY: The frame is mapped and stays so while the table is
        // borrowed (type invariant); the copy takes no fault.
        unsafe { glue::rsva_pfn_copy_user_nofault(self.pfn(), uaddr, true) }
    }

    /// Copies user memory at `uaddr` into the frame without taking a page
    /// fault; false when the user page is not there to be read right now or
    /// the frame is not mirrored writable (nothing is written then).
    pub(crate) fn copy_from_user_nofault(self, uaddr: u64) -> bool {
        if !self.writable() {
            return false;
        }
        // SAFETY: The frame is mapped writable and stays so while the table
        // is borrowed (type invariant); the copy takes no fault.
        unsafe { glue::rsva_pfn_copy_user_nofault(self.pfn(), uaddr, false) }
    }

    /// Copies `from` into the frame; false, writing nothing, when the frame
    /// is not mirrored writable.
    pub(crate) fn copy_from_bounce(self, from: &BouncePage) -> bool {
        if !self.writable() {
            return false;
        }
        // SAFETY: The frame is mapped writable and stays so while the table
        // is borrowed (type invariant); `from` is an allocated page that
        // nothing writes while it is borrowed.
        unsafe { glue::rsva_pfn_copy_page(self.pfn(), from.0.as_ptr()) };
        true
    }

    /// A counted reference to the frame's page, to copy from after the
    /// lock (`None` never happens: a frame has a page).
    pub(crate) fn get_page(self) -> Option<PageRef> {
        // SAFETY: The frame is mapped and stays so while the table is
        // borrowed (type invariant): its page has references.
        let page = unsafe { glue::rsva_pfn_page_get(self.pfn()) };
        // INVARIANT: `rsva_pfn_page_get()` took a reference, for this object.
        NonNull::new(page).map(PageRef)
    }
}

/// A page of the caller's own, never shared, that holds a copy of user
/// memory to write into a frame under the lock (which no page fault may
/// happen under): filled outside the lock ([`BouncePage::fill`]), copied
/// under it ([`Frame::copy_from_bounce`]). Dropping it frees the page.
///
/// # Invariants
///
/// The page is written only through `&mut self`: no other reference to it
/// is ever handed out.
pub(crate) struct BouncePage(Page);

impl BouncePage {
    /// A new page.
    pub(crate) fn new(flags: kernel::alloc::Flags) -> Result<Self> {
        Ok(Self(Page::alloc_page(flags)?))
    }

    /// Fills the page from `reader` (a page of user memory, faulted in if
    /// needed).
    pub(crate) fn fill(&mut self, reader: &mut UserSliceReader) -> Result {
        // SAFETY: Nothing else reads or writes the page while it is borrowed
        // mutably (type invariant).
        unsafe { self.0.copy_from_user_slice_raw(reader, 0, PAGE_SIZE) }
    }
}

/// A counted reference to a page (`get_page()`), taken by
/// [`Frame::get_page`]: the page stays allocated while it lives, whatever
/// the process does with it. Dropping it drops the reference (`put_page()`,
/// which frees the page if it was the last).
///
/// # Invariants
///
/// `0` is a page this object holds one reference on.
pub(crate) struct PageRef(NonNull<bindings::page>);

impl PageRef {
    /// Copies the page to user memory at `uaddr` (a user address of the
    /// current task), faulting the user page in if needed: not under a lock
    /// that invalidations take. False when the user page cannot be written.
    pub(crate) fn copy_to_user(&self, uaddr: u64) -> bool {
        // SAFETY: The page is referenced (type invariant).
        unsafe { glue::rsva_page_copy_to_user(self.0.as_ptr(), uaddr) }
    }
}

impl Drop for PageRef {
    fn drop(&mut self) {
        // SAFETY: The reference is this object's (type invariant), given
        // back once.
        unsafe { glue::rsva_page_put(self.0.as_ptr()) };
    }
}

#[kunit_tests(rsva_frame_table)]
mod tests {
    use super::*;
    use crate::kext::mm::interval_notifier::{FaultMode, IntervalNotifier, Invalidate};

    fn table_with(keys: &[usize]) -> Result<Pin<KBox<FrameTable>>> {
        let mut t = KBox::pin_init(FrameTable::new(None), GFP_KERNEL)?;
        for &k in keys {
            t.as_mut().insert_chunk(TableChunk::new(k, GFP_KERNEL)?);
        }
        Ok(t)
    }

    #[test]
    fn invalidation_clears_exactly_its_range() -> Result {
        let mut t = table_with(&[0, 1, 7])?;
        for page in 0..2 * CHUNK {
            t.as_mut().put(page, page << SHIFT | PRESENT);
        }
        t.as_mut().put(7 * CHUNK + 3, 1 << SHIFT | PRESENT | WRITE);
        // Pages 10..=600, across the first two chunks.
        t.as_mut().invalidate(10 * PAGE_SIZE, 601 * PAGE_SIZE, None);
        assert_eq!(t.entry(9), 9 << SHIFT | PRESENT);
        assert_eq!(t.entry(10), 0);
        assert_eq!(t.entry(600), 0);
        assert_eq!(t.entry(601), 601 << SHIFT | PRESENT);
        // Unaligned ends cover the pages they touch.
        t.as_mut()
            .invalidate(700 * PAGE_SIZE + 1, 700 * PAGE_SIZE + 2, None);
        assert_eq!(t.entry(700), 0);
        assert_eq!(t.entry(701), 701 << SHIFT | PRESENT);
        // exit_mmap invalidates everything.
        t.as_mut().invalidate(0, usize::MAX, None);
        assert_eq!(t.entry(7 * CHUNK + 3), 0);
        assert_eq!(t.entry(2 * CHUNK - 1), 0);
        // Pages without a chunk read as absent, and setting them is ignored.
        t.as_mut().put(3 * CHUNK, PRESENT);
        assert_eq!(t.entry(3 * CHUNK), 0);
        // A second chunk for a key is dropped, not swapped in.
        t.as_mut().put(5, 5 << SHIFT | PRESENT);
        t.as_mut().insert_chunk(TableChunk::new(0, GFP_KERNEL)?);
        assert_eq!(t.entry(5), 5 << SHIFT | PRESENT);
        Ok(())
    }

    #[test]
    fn own_migrations_keep_their_entries() -> Result {
        let owner = Owner::new(core::num::NonZeroUsize::new(0x77).ok_or(EINVAL)?);
        let other = Owner::new(core::num::NonZeroUsize::new(0x78).ok_or(EINVAL)?);
        let mut t = KBox::pin_init(FrameTable::new(Some(owner)), GFP_KERNEL)?;
        t.as_mut().insert_chunk(TableChunk::new(0, GFP_KERNEL)?);
        t.as_mut().put(1, 1 << SHIFT | PRESENT);
        t.as_mut().invalidate(0, 4 * PAGE_SIZE, Some(owner));
        assert_eq!(t.entry(1), 1 << SHIFT | PRESENT);
        t.as_mut().invalidate(0, 4 * PAGE_SIZE, Some(other));
        assert_eq!(t.entry(1), 0);
        t.as_mut().put(1, 1 << SHIFT | PRESENT);
        t.as_mut().forget(PAGE_SIZE, 2 * PAGE_SIZE);
        assert_eq!(t.entry(1), 0);
        Ok(())
    }

    #[test]
    fn frames_run_to_the_first_hole_within_a_chunk() -> Result {
        let mut t = table_with(&[0, 1])?;
        for page in [3, 4, 5, 7, CHUNK - 1, CHUNK] {
            t.as_mut().put(
                page,
                page << SHIFT | PRESENT | if page == 4 { WRITE } else { 0 },
            );
        }
        let run: KVec<(usize, bool)> = {
            let mut v = KVec::new();
            for f in t.frames(3, 100) {
                v.push((f.pfn(), f.writable()), GFP_KERNEL)?;
            }
            v
        };
        assert_eq!(&run[..], &[(3, false), (4, true), (5, false)]);
        assert_eq!(t.frames(3, 2).count(), 2);
        assert_eq!(t.frames(6, 10).count(), 0);
        // Never past the chunk's end.
        assert_eq!(t.frames(CHUNK - 1, 10).count(), 1);
        // No chunk: nothing.
        assert_eq!(t.frames(5 * CHUNK, 10).count(), 0);
        // A read-only frame is never written.
        let page = BouncePage::new(GFP_KERNEL)?;
        let ro = t.frames(3, 1).next().ok_or(EINVAL)?;
        assert!(!ro.copy_from_bounce(&page));
        assert!(!ro.copy_from_user_nofault(0));
        Ok(())
    }

    #[test]
    fn atomic_entries_are_found_in_their_range_only() -> Result {
        let mut t = table_with(&[0, 3])?;
        let at = 3 * CHUNK + 10;
        t.as_mut().put(at, 5 << SHIFT | PRESENT | ATOMIC);
        t.as_mut().put(4, 6 << SHIFT | PRESENT);
        t.as_mut().put(5, 7 << SHIFT | PRESENT | WRITE);
        assert!(t.any_atomic(at, at + 1));
        assert!(t.any_atomic(0, usize::MAX / PAGE_SIZE));
        assert!(!t.any_atomic(at + 1, at + 100));
        assert!(!t.any_atomic(0, at));
        // Present entries, writable or not, are not exclusive.
        assert!(!t.any_atomic(4, 6));
        // Invalidation clears them like any entry.
        t.as_mut()
            .invalidate(at * PAGE_SIZE, (at + 1) * PAGE_SIZE, None);
        assert!(!t.any_atomic(0, usize::MAX / PAGE_SIZE));
        Ok(())
    }

    /// A notifier's state that is one table, pinned in its box as a
    /// mirror's.
    struct Table(Pin<KBox<FrameTable>>);

    impl Invalidate for Table {
        fn invalidate(&mut self, start: usize, end: usize, migrating_for: Option<Owner>) {
            self.0.as_mut().invalidate(start, end, migrating_for);
        }
    }

    /// Frames set from a fault are the pages mapped there, their copies and
    /// references reach them, and an unmapping clears them.
    #[test]
    fn faulted_frames_are_the_mapped_pages_until_invalidated() -> Result {
        const N: usize = 4;
        let mm = glue::test_mm()?;
        let addr = glue::test_mmap(&mm, N * PAGE_SIZE, true)?;
        let first = addr / PAGE_SIZE;
        let n = KBox::pin_init(
            IntervalNotifier::new(Table(KBox::pin_init(FrameTable::new(None), GFP_KERNEL)?)),
            GFP_KERNEL,
        )?;
        n.as_ref().register(&mm, 0, usize::MAX / 2)?;
        let chunk = TableChunk::new(first / CHUNK, GFP_KERNEL)?;
        n.with_state(|s| s.0.as_mut().insert_chunk(chunk));
        // The test mm is not the current task's: fault without copies.
        let mut pfns = [0 as c_ulong; N];
        let set = n.fault(addr, FaultMode::Write, None, &mut pfns, |s, e| {
            let mut t = s.0.as_mut();
            e.iter()
                .enumerate()
                .all(|(i, &p)| t.set_faulted(first + i, p))
        })?;
        assert!(set);
        let run = n.with_state(|s| s.0.frames(first, N).all(|f| f.writable() && f.pfn() != 0));
        assert!(run);
        let mirrored = n.with_state(|s| s.0.frames(first, N).count());
        // Within one chunk unless the mapping straddles two.
        assert!(mirrored == N || first % CHUNK + N > CHUNK);
        // A reference taken under the lock outlives it.
        let page = n.with_state(|s| s.0.frames(first, 1).next().and_then(|f| f.get_page()));
        assert!(page.is_some());
        drop(page);
        // A bad user address is refused by the copies, not followed.
        let refused = n.with_state(|s| {
            s.0.frames(first, 1)
                .next()
                .is_some_and(|f| !f.copy_to_user_nofault(0) && !f.copy_from_user_nofault(0))
        });
        assert!(refused);
        // SAFETY: `mm` is live; unmaps what `test_mmap` mapped.
        unsafe { glue::rsva_test_munmap(mm.as_raw(), addr, N * PAGE_SIZE) };
        assert_eq!(n.with_state(|s| s.0.frames(first, N).count()), 0);
        Ok(())
    }
}
