// SPDX-License-Identifier: GPL-2.0

//! The HMM mirror: a device's copy of part of a process's page table.
//!
//! The rules of the `struct hmm` lifetime thread (Jason Gunthorpe reviewing
//! Ralph Campbell's patches, linux-mm, May 2019):
//!
//! - A mirror holds `mmgrab()` on its mm for its whole life (an
//!   [`ARef<Mm>`]): no "dead" flag, no mm pointer that may become null.
//! - Every fault takes a user reference with `mmget_not_zero()` first and
//!   answers `EFAULT` once the mm is gone; the mirror itself stays valid and
//!   can be dropped (which removes its interval notifier) after exit_mmap.
//! - The mirror's table only caches frames: the interval notifier clears
//!   the entries an invalidation covers, under the mirror's lock, and every
//!   use of an entry happens under that lock after the retry check
//!   ([`IntervalNotifier`]), so a frame the CPU page table dropped is never
//!   used.
//! - A frame is written only under that lock, while its entry is there.
//!   Under the lock no page fault may happen (a fault can wait for an
//!   invalidation, which waits for the lock), so a WRITE whose user page is
//!   not present copies it into a bounce page outside the lock first, then
//!   takes the lock, checks the entry again (faulting the frame again if an
//!   invalidation cleared it) and copies the bounce page into the frame, as
//!   test_hmm does. Written after the lock, the frame could be one that a
//!   fork() made the child's, so the write would be lost to the process.
//! - A READ whose user page is not present references the frame under the
//!   lock and copies it to user memory after: at worst it returns what the
//!   page held when an invalidation ran, as a device read racing the CPU
//!   would.
//!
//! Device-exclusive access (`HMM_DMIRROR_EXCLUSIVE`, `CHECK_EXCLUSIVE`) is
//! in `exclusive.rs`.
//!
//! The operations follow `lib/test_hmm.c` (`HMM_DMIRROR_READ`, `WRITE`,
//! `SNAPSHOT`), with the same results, but fault, copy and snapshot in
//! batches of [`BATCH`] pages, copy without test_hmm's bounce buffer
//! whenever user memory is present (between the page and user memory,
//! under the lock), and snapshot through the mirror's own notifier instead
//! of one per batch.

#![allow(
    unsafe_code,
    reason = "a mirrored page is mapped while no invalidation ran since it was mirrored"
)]

use core::{any::Any, ptr::null_mut};

use kernel::{
    bindings,
    mm::MmWithUser,
    page::{Page, PAGE_SIZE},
    prelude::*,
    rbtree::{RBTree, RBTreeNode},
    sync::aref::ARef,
    sync::atomic::{Atomic, Relaxed},
    uaccess::{UserPtr, UserSlice},
};

use crate::{
    kext::glue,
    kext::mm::interval_notifier::{FaultMode, HmmPfn, Seq},
    kext::mm::pagemap::{self, Owner},
    mirror::registry::{span, Client, DeviceTable, MirrorClient},
};

mod exclusive;

/// Pages faulted, or snapshot in a large request, at a time.
pub(crate) const BATCH: usize = 512;

/// Pages a snapshot of at most [`SNAPSHOT_ON_STACK`] pages asks
/// `hmm_range_fault()` for at a time, in arrays on the stack (as test_hmm's
/// `dmirror_snapshot()` always does).
const SNAPSHOT_BATCH: usize = 64;

/// The largest snapshot done with arrays on the stack. Allocating arrays of
/// [`BATCH`] entries costs about as much as snapshotting 2,000 pages in
/// passes of [`SNAPSHOT_BATCH`] instead of [`BATCH`] (measured by
/// `rsva_mirror_bench` in a KASAN kernel under TCG).
const SNAPSHOT_ON_STACK: usize = 2048;

/// Pages a copy looks at under one taking of the lock; a READ keeps the
/// references to the pages it copies after the lock in an array of this
/// size on the stack.
const COPY_BATCH: usize = 64;

/// `debugfs/rsva/mirrors`: pages READ and WRITE copied under the lock
/// without a page fault; pages whose user side needed a fault, so was
/// copied outside the lock (READ: from a page referenced under it; WRITE:
/// into a bounce page, then into the frame under it); and bounced WRITE
/// pages whose entry an invalidation cleared before the lock was taken
/// again, so were faulted again.
pub(crate) static COPIED_UNDER_LOCK: Atomic<u64> = Atomic::new(0);
pub(crate) static COPIED_AFTER_LOCK: Atomic<u64> = Atomic::new(0);
pub(crate) static BOUNCE_REFAULTS: Atomic<u64> = Atomic::new(0);

/// Pages a table chunk covers.
const CHUNK: usize = 512;

/// A zeroed table chunk, initialised in place (not built on the stack).
fn new_chunk(flags: kernel::alloc::Flags) -> Result<KBox<[usize; CHUNK]>> {
    KBox::init(pin_init::init_zeroed(), flags)
}

/// An entry of the table: `pfn << SHIFT | flags`, or 0. `PRESENT`: the
/// frame is mirrored, `WRITE`: writable; `ATOMIC`: made device-exclusive
/// by `HMM_DMIRROR_EXCLUSIVE` (present, not writable, as test_hmm's
/// `DPT_XA_TAG_ATOMIC`; see `exclusive.rs`).
const PRESENT: usize = 1;
const WRITE: usize = 2;
const ATOMIC: usize = 4;
const SHIFT: u32 = 3;

/// The frame of a present entry.
const fn frame(e: usize) -> usize {
    e >> SHIFT
}

/// `HMM_DMIRROR_PROT_*` of lib/test_hmm_uapi.h.
pub(crate) mod prot {
    pub(crate) const ERROR: u8 = 0xff;
    pub(crate) const NONE: u8 = 0x00;
    pub(crate) const READ: u8 = 0x01;
    pub(crate) const WRITE: u8 = 0x02;
    pub(crate) const PMD: u8 = 0x04;
    pub(crate) const PUD: u8 = 0x08;
    pub(crate) const ZERO: u8 = 0x10;
    pub(crate) const DEV_PRIVATE_LOCAL: u8 = 0x20;
    pub(crate) const DEV_PRIVATE_REMOTE: u8 = 0x30;
}

/// The snapshot code of an entry, as test_hmm's `dmirror_mkentry()`, for a
/// mirror whose device memory is `owner`'s. Called under the mirror's lock
/// after the retry check (the entry's page is mapped).
pub(crate) fn prot_of(e: HmmPfn, owner: Option<Owner>) -> u8 {
    if e.error() {
        return prot::ERROR;
    }
    let Some(pfn) = e.pfn() else {
        return prot::NONE;
    };
    // SAFETY: The page is mapped: the caller holds the lock invalidations
    // take and no invalidation ran since the entry was read.
    let device = unsafe { pagemap::device_private_owner(pfn) };
    // SAFETY: Only compares the frame number.
    let zero = unsafe { glue::rsva_is_zero_pfn(pfn) };
    let mut p = match device {
        Some(o) if Some(o) == owner => prot::DEV_PRIVATE_LOCAL,
        Some(_) => prot::DEV_PRIVATE_REMOTE,
        None if zero => prot::ZERO,
        None => prot::NONE,
    };
    p |= if e.writable() {
        prot::WRITE
    } else {
        prot::READ
    };
    match e.order() {
        9 => p | prot::PMD,
        18 => p | prot::PUD,
        _ => p,
    }
}

/// The mirrored frames, in chunks of [`CHUNK`] pages keyed by page index /
/// [`CHUNK`]; chunks are allocated before faults (not under the lock, which
/// invalidations from reclaim take) and only their entries change after.
///
/// A mirror with device memory keeps the frames of its own device-private
/// pages as the frames of the system pages that hold their data (test_hmm's
/// `BACKING_PAGE()`), so that READ and WRITE reach them as any other page.
pub(crate) struct MirrorTable {
    chunks: RBTree<usize, KBox<[usize; CHUNK]>>,
    owner: Option<Owner>,
}

impl MirrorTable {
    /// An empty table, of a device whose memory is `owner`'s, if any.
    pub(crate) fn new(owner: Option<Owner>) -> Self {
        Self {
            chunks: RBTree::new(),
            owner,
        }
    }

    /// Mirrors page `page` (index in the address space) as frame `pfn`,
    /// writable if `write`; ignored without a chunk for it (see
    /// [`Mirror::prepare`]).
    pub(crate) fn set_frame(&mut self, page: usize, pfn: usize, write: bool) {
        self.set(page, pfn << SHIFT | PRESENT | if write { WRITE } else { 0 });
    }

    /// Forgets the frames of `[start, end)`.
    pub(crate) fn invalidate(&mut self, start: usize, end: usize) {
        let (first, last) = (start / PAGE_SIZE, end.saturating_sub(1) / PAGE_SIZE);
        for (&key, chunk) in self.chunks.iter_mut() {
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

    fn entry(&self, page: usize) -> usize {
        self.chunks
            .get(&(page / CHUNK))
            .map_or(0, |c| c[page % CHUNK])
    }

    fn set(&mut self, page: usize, value: usize) {
        if let Some(c) = self.chunks.get_mut(&(page / CHUNK)) {
            c[page % CHUNK] = value;
        }
    }
}

impl DeviceTable for MirrorTable {
    /// The owner of the device memory of the table's device.
    fn owner(&self) -> Option<Owner> {
        self.owner
    }

    fn invalidate(&mut self, start: usize, end: usize) {
        MirrorTable::invalidate(self, start, end);
    }

    fn as_any(&mut self) -> &mut dyn Any {
        self
    }
}

/// How a mirror reads its device's own device-private pages: the frame of
/// the system page that holds the data of device page `pfn` of `owner`, or
/// `None` if `pfn` is not one. Called under the mirror's lock with the page
/// mapped.
pub(crate) type BackingOf = fn(Owner, usize) -> Option<usize>;

/// The device memory of a mirror's device.
#[derive(Clone, Copy)]
pub(crate) struct DeviceView {
    /// The owner of the device's memory.
    pub(crate) owner: Owner,
    /// Where the device keeps the data of its pages.
    pub(crate) backing: BackingOf,
}

/// A mirror of one mm: a table client of the mm's shared mirror.
pub(crate) struct Mirror {
    client: MirrorClient,
    device: Option<DeviceView>,
}

/// Where a pass over a batch under the lock stopped.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Stop {
    /// At the end of the batch.
    End,
    /// At a page that is not mirrored (or read-only, for a WRITE): the
    /// rest of the request is faulted.
    Unmirrored,
    /// At a page whose user side is not present: it is copied outside the
    /// lock.
    UserFault,
}

/// The first page (index in the address space) and the number of pages of
/// the batch at page `done` of a copy of `npages` pages at `start`: at most
/// [`COPY_BATCH`], within one table chunk.
fn batch(start: usize, npages: usize, done: usize) -> (usize, usize) {
    let (first, n) = chunk_batch(start, npages, done);
    (first, n.min(COPY_BATCH))
}

/// As [`batch`], up to the end of the table chunk: a WRITE collects no
/// pages, so it copies a whole chunk under one hold of the lock, as
/// test_hmm writes a whole request under its mutex. An invalidation in
/// the middle of a request (khugepaged collapsing the range, say) then
/// finds the lock held instead of clearing entries between two batches,
/// which cost the request a second fault round (hmm-tests'
/// `anon_write_child` asserts exactly one).
fn chunk_batch(start: usize, npages: usize, done: usize) -> (usize, usize) {
    let first = start / PAGE_SIZE + done;
    (first, (CHUNK - first % CHUNK).min(npages - done))
}

/// The user address of page `done` of a copy at `uptr`.
fn user_at(uptr: u64, done: usize) -> u64 {
    uptr + (done * PAGE_SIZE) as u64
}

/// The table of a client, which a [`Mirror`] always is.
fn table(c: &mut Client) -> Result<&mut MirrorTable> {
    c.table::<MirrorTable>().ok_or(EINVAL)
}

impl Mirror {
    /// Mirrors `mm` (its user address space) for a device with the device
    /// memory `device`, if any.
    pub(crate) fn new(mm: &MmWithUser, device: Option<DeviceView>) -> Result<Self> {
        let owner = device.map(|d| d.owner);
        Ok(Self {
            client: MirrorClient::new(
                mm,
                Client::Table(KBox::new(MirrorTable::new(owner), GFP_KERNEL)?),
            )?,
            device,
        })
    }

    /// The owner of the device memory of the mirror's device.
    pub(crate) fn owner(&self) -> Option<Owner> {
        self.device.map(|d| d.owner)
    }

    /// The mirrored mm with a user reference; `EINVAL` once it has none
    /// (as test_hmm's migrations answer).
    pub(crate) fn mm_user(&self) -> Result<ARef<MmWithUser>> {
        self.client.mm().mmget_not_zero().ok_or(EINVAL)
    }

    /// Runs `f` on the table, under the mirror's lock.
    fn with_table<R>(&self, f: impl FnOnce(&mut MirrorTable) -> R) -> Result<R> {
        self.client.with(|c| table(c).map(f))?
    }

    /// A sequence number for [`Mirror::with_table_unchanged`].
    pub(crate) fn read_begin(&self) -> Result<Seq> {
        self.client.read_begin()
    }

    /// Runs `f` on the table under the mirror's lock if no invalidation ran
    /// since `seq`; `Ok(None)` otherwise.
    pub(crate) fn with_table_unchanged<R>(
        &self,
        seq: Seq,
        f: impl FnOnce(&mut MirrorTable) -> R,
    ) -> Result<Option<R>> {
        self.client
            .with_unless_changed(seq, |c| table(c).map(f))?
            .transpose()
    }

    /// Makes the table chunks of `[first, first + n)` pages exist.
    pub(crate) fn prepare(&self, first: usize, n: usize) -> Result {
        for key in first / CHUNK..=(first + n - 1) / CHUNK {
            if self.with_table(|t| t.chunks.get(&key).is_some())? {
                continue;
            }
            // Charged to the caller's memory cgroup: the table grows with
            // the addresses a process asks for.
            let chunk = new_chunk(GFP_KERNEL_ACCOUNT)?;
            let node = RBTreeNode::new(key, chunk, GFP_KERNEL_ACCOUNT)?;
            self.with_table(|t| {
                if t.chunks.get(&key).is_none() {
                    drop(t.chunks.insert(node));
                }
            })?;
        }
        Ok(())
    }

    /// Faults `[start, start + npages pages)` into the table, for writing
    /// if `write`. `EFAULT` for a page that cannot be mapped or a dead mm,
    /// `EPERM` when writing a read-only page.
    pub(crate) fn fault(&self, start: usize, npages: usize, write: bool) -> Result {
        span(start, npages)?;
        let mode = if write {
            FaultMode::Write
        } else {
            FaultMode::Read
        };
        let mut pfns = KVec::from_elem(0 as c_ulong, BATCH.min(npages), GFP_KERNEL)?;
        let mut done = 0;
        while done < npages {
            let n = BATCH.min(npages - done);
            let first = start / PAGE_SIZE + done;
            self.prepare(first, n)?;
            let addr = start + done * PAGE_SIZE;
            let device = self.device;
            // hmm reports the device's own pages as they are, also when a
            // write is asked for and the page is read-only (shared after a
            // fork): such a batch is faulted again without an owner, which
            // moves those pages back to system memory and breaks COW.
            let mut owner = self.owner();
            loop {
                let done_batch =
                    self.client
                        .fault(addr, mode, owner, &mut pfns[..n], |c, entries| {
                            let t = table(c)?;
                            for (i, e) in entries.iter().enumerate() {
                                // The device's own pages are read through the
                                // system pages that hold their data; no other
                                // device's page can be here (hmm faults them
                                // back to system memory for a fault), and a frame
                                // of device memory is never mirrored: it cannot
                                // be read.
                                let theirs = match e.pfn() {
                                    // SAFETY: The page is mapped: we hold the
                                    // lock invalidations take, after the retry
                                    // check.
                                    Some(pfn) => unsafe { pagemap::device_private_owner(pfn) },
                                    None => None,
                                };
                                if theirs.is_some() && write && !e.writable() {
                                    return Ok(false);
                                }
                                let pfn = match e.pfn() {
                                    Some(pfn) if theirs.is_some() => Some(
                                        device
                                            .and_then(|d| (d.backing)(d.owner, pfn))
                                            .ok_or(EFAULT)?,
                                    ),
                                    other => other,
                                };
                                let value = pfn.map_or(0, |pfn| {
                                    pfn << SHIFT | PRESENT | if e.writable() { WRITE } else { 0 }
                                });
                                t.set(first + i, value);
                            }
                            Ok::<bool, Error>(true)
                        })??;
                if done_batch || owner.is_none() {
                    break;
                }
                owner = None;
            }
            done += n;
        }
        Ok(())
    }

    /// Faults the rest of a copy of `npages` pages at `start`, from page
    /// `done` on, for writing if `write`: the copy stopped at a page that is
    /// not mirrored, and test_hmm's `dmirror_read()` / `dmirror_write()`
    /// fault the rest of the request there too. Invalidations may keep
    /// undoing the faults: after the first, a signal ends the request
    /// (`EINTR`) instead of more rounds.
    fn refault(
        &self,
        start: usize,
        npages: usize,
        done: usize,
        faults: &mut u64,
        write: bool,
    ) -> Result {
        if *faults > 0 && current!().signal_pending() {
            return Err(EINTR);
        }
        *faults += 1;
        self.fault(start + done * PAGE_SIZE, npages - done, write)
    }

    /// Under the lock, from page `first` on (at most `out.len()`, within
    /// one chunk), up to the first page that is not mirrored: copies pages
    /// to user memory at `uptr` while that needs no page fault, then takes
    /// references on the rest, into `out`, for a copy after the lock.
    /// Returns the pages copied and the pages referenced.
    fn read_or_collect(
        &self,
        first: usize,
        uptr: u64,
        out: &mut [*mut bindings::page],
    ) -> Result<(usize, usize)> {
        self.with_table(|t| {
            let Some(chunk) = t.chunks.get(&(first / CHUNK)) else {
                return (0, 0);
            };
            let from = first % CHUNK;
            let (mut copied, mut got) = (0, 0);
            for &e in chunk.iter().skip(from).take(out.len()) {
                if e & PRESENT == 0 {
                    break;
                }
                if got == 0 {
                    let at = user_at(uptr, copied);
                    // SAFETY: The frame is mapped: no invalidation ran since
                    // it was mirrored (they clear entries under this lock).
                    if unsafe { glue::rsva_pfn_copy_user_nofault(frame(e), at, true) } {
                        copied += 1;
                        continue;
                    }
                }
                let Some(slot) = out.get_mut(got) else {
                    break;
                };
                // SAFETY: As above.
                *slot = unsafe { glue::rsva_pfn_page_get(frame(e)) };
                got += 1;
            }
            (copied, got)
        })
    }

    /// Under the lock, from page `first` on (at most `n`, within one
    /// chunk), up to the first page that is not mirrored writable: writes
    /// `bounce` (the user data of page `first`, copied before) into the
    /// first frame, then copies the following pages from user memory at
    /// `uptr` (page `first`'s) while that needs no page fault. Returns the
    /// pages written and where it stopped.
    fn write_under_lock(
        &self,
        first: usize,
        uptr: u64,
        n: usize,
        bounce: Option<&Page>,
    ) -> Result<(usize, Stop)> {
        self.with_table(|t| {
            let from = first % CHUNK;
            let Some(entries) = t
                .chunks
                .get(&(first / CHUNK))
                .and_then(|chunk| chunk.get(from..from + n))
            else {
                return (0, Stop::Unmirrored);
            };
            for (i, &e) in entries.iter().enumerate() {
                if e & PRESENT == 0 || e & WRITE == 0 {
                    return (i, Stop::Unmirrored);
                }
                let copied = match bounce {
                    Some(b) if i == 0 => {
                        // SAFETY: The frame is mapped writable: no
                        // invalidation ran since it was mirrored (they clear
                        // entries under this lock). The bounce page is the
                        // caller's own.
                        unsafe { glue::rsva_pfn_copy_page(frame(e), b.as_ptr()) };
                        true
                    }
                    _ => {
                        let at = user_at(uptr, i);
                        // SAFETY: As above.
                        unsafe { glue::rsva_pfn_copy_user_nofault(frame(e), at, false) }
                    }
                };
                if !copied {
                    return (i, Stop::UserFault);
                }
            }
            (n, Stop::End)
        })
    }

    /// `HMM_DMIRROR_READ`: the mirror's view of `npages` pages at `start`,
    /// into user memory at `uptr`, [`COPY_BATCH`] pages at a time
    /// ([`Mirror::read_or_collect`]; the pages whose user side must be
    /// faulted in are referenced under the lock and copied after it). At
    /// the first page that is not mirrored, the rest is faulted
    /// ([`Mirror::refault`]). Returns the pages copied and the number of
    /// faults, as test_hmm's `cpages` and `faults`. Allocates nothing: an
    /// allocation costs more than a small request's copy in a debug kernel.
    pub(crate) fn read(&self, start: usize, npages: usize, uptr: u64) -> Result<(u64, u64)> {
        self.read_inner(start, npages, uptr, true)
    }

    /// [`Mirror::read`] of what is mirrored now, faulting nothing: `ENOENT`
    /// at the first page that is not mirrored (test_hmm's `dmirror_do_read()`,
    /// which a migration to the device returns its data with). Returns the
    /// pages copied.
    pub(crate) fn read_mirrored(&self, start: usize, npages: usize, uptr: u64) -> Result<u64> {
        Ok(self.read_inner(start, npages, uptr, false)?.0)
    }

    fn read_inner(
        &self,
        start: usize,
        npages: usize,
        uptr: u64,
        may_fault: bool,
    ) -> Result<(u64, u64)> {
        span(start, npages)?;
        let mut pages = [null_mut(); COPY_BATCH];
        let (mut done, mut faults) = (0usize, 0u64);
        while done < npages {
            let (first, n) = batch(start, npages, done);
            let (fast, got) = self.read_or_collect(first, user_at(uptr, done), &mut pages[..n])?;
            COPIED_UNDER_LOCK.fetch_add(fast as u64, Relaxed);
            COPIED_AFTER_LOCK.fetch_add(got as u64, Relaxed);
            done += fast;
            // SAFETY: `got` pages are referenced (the call drops them); the
            // address is a user address.
            let copied = unsafe {
                glue::rsva_pages_copy_to_user(pages.as_mut_ptr(), got, user_at(uptr, done))
            };
            done += copied;
            if copied < got {
                return Err(EFAULT);
            }
            if fast + got < n {
                if !may_fault {
                    return Err(ENOENT);
                }
                self.refault(start, npages, done, &mut faults, false)?;
            }
        }
        Ok((done as u64, faults))
    }

    /// `HMM_DMIRROR_WRITE`: writes `npages` pages from user memory at
    /// `uptr` through the mirror at `start`, a table chunk at a time
    /// ([`chunk_batch`], [`Mirror::write_under_lock`]). A page whose user
    /// side is not present is copied into a bounce page outside the lock
    /// (allocated once, at the first such page), then into its frame under
    /// the lock if the frame's entry is still there; at the first page that
    /// is not mirrored writable, the rest is faulted for writing
    /// ([`Mirror::refault`]). Returns as [`Mirror::read`].
    pub(crate) fn write(&self, start: usize, npages: usize, uptr: u64) -> Result<(u64, u64)> {
        span(start, npages)?;
        let mut bounce: Option<Page> = None;
        // The bounce page holds the user data of page `done`.
        let mut pending = false;
        let (mut done, mut faults) = (0usize, 0u64);
        while done < npages {
            let (first, n) = chunk_batch(start, npages, done);
            let from_bounce = bounce.as_ref().filter(|_| pending);
            let (written, stop) =
                self.write_under_lock(first, user_at(uptr, done), n, from_bounce)?;
            let bounced = usize::from(pending && written > 0);
            pending &= bounced == 0;
            COPIED_AFTER_LOCK.fetch_add(bounced as u64, Relaxed);
            COPIED_UNDER_LOCK.fetch_add((written - bounced) as u64, Relaxed);
            done += written;
            match stop {
                Stop::End => {}
                Stop::UserFault => {
                    let page = match bounce.take() {
                        Some(page) => page,
                        None => Page::alloc_page(GFP_KERNEL)?,
                    };
                    let addr = UserPtr::from_addr(user_at(uptr, done) as usize);
                    let mut from = UserSlice::new(addr, PAGE_SIZE).reader();
                    // SAFETY: The page is this request's own: nothing else
                    // reads or writes it.
                    unsafe { page.copy_from_user_slice_raw(&mut from, 0, PAGE_SIZE)? };
                    bounce = Some(page);
                    pending = true;
                }
                Stop::Unmirrored => {
                    if pending {
                        BOUNCE_REFAULTS.fetch_add(1, Relaxed);
                    }
                    self.refault(start, npages, done, &mut faults, true)?;
                }
            }
        }
        Ok((done as u64, faults))
    }

    /// `HMM_DMIRROR_SNAPSHOT`: the protection code of each of `npages`
    /// pages at `start` (faulting nothing), one byte each at `uptr`. Small
    /// requests use arrays on the stack, large ones [`BATCH`] pages at a
    /// time in allocated ones (fewer passes of `hmm_range_fault()`).
    pub(crate) fn snapshot(&self, start: usize, npages: usize, uptr: u64) -> Result<u64> {
        span(start, npages)?;
        if npages <= SNAPSHOT_ON_STACK {
            let mut pfns = [0 as c_ulong; SNAPSHOT_BATCH];
            let mut perms = [0u8; SNAPSHOT_BATCH];
            return self.snapshot_with(start, npages, uptr, &mut pfns, &mut perms);
        }
        let mut pfns = KVec::from_elem(0 as c_ulong, BATCH, GFP_KERNEL)?;
        let mut perms = KVec::from_elem(0u8, BATCH, GFP_KERNEL)?;
        self.snapshot_with(start, npages, uptr, &mut pfns, &mut perms)
    }

    /// [`Mirror::snapshot`], `pfns.len()` pages at a time (`perms` is as
    /// long).
    fn snapshot_with(
        &self,
        start: usize,
        npages: usize,
        uptr: u64,
        pfns: &mut [c_ulong],
        perms: &mut [u8],
    ) -> Result<u64> {
        let mut done = 0;
        while done < npages {
            let n = pfns.len().min(npages - done);
            let addr = start + done * PAGE_SIZE;
            let owner = self.owner();
            self.client.fault(
                addr,
                FaultMode::Snapshot,
                owner,
                &mut pfns[..n],
                |_, entries| {
                    for (p, &e) in perms.iter_mut().zip(entries) {
                        *p = prot_of(e, owner);
                    }
                },
            )?;
            let mut w = kernel::uaccess::UserSlice::new(
                kernel::uaccess::UserPtr::from_addr((uptr + done as u64) as usize),
                n,
            )
            .writer();
            w.write_slice(&perms[..n])?;
            done += n;
        }
        Ok(done as u64)
    }
}

#[kunit_tests(rsva_hmm_mirror)]
mod tests {
    use super::*;

    fn table_with(keys: &[usize]) -> Result<MirrorTable> {
        let mut t = MirrorTable::new(None);
        for &k in keys {
            let chunk = new_chunk(GFP_KERNEL)?;
            drop(t.chunks.insert(RBTreeNode::new(k, chunk, GFP_KERNEL)?));
        }
        Ok(t)
    }

    #[test]
    fn invalidation_clears_exactly_its_range() -> Result {
        let mut t = table_with(&[0, 1, 7])?;
        for page in 0..2 * CHUNK {
            t.set(page, page << SHIFT | PRESENT);
        }
        t.set(7 * CHUNK + 3, 1 << SHIFT | PRESENT | WRITE);
        // Pages 10..=600, across the first two chunks.
        t.invalidate(10 * PAGE_SIZE, 601 * PAGE_SIZE);
        assert_eq!(t.entry(9), 9 << SHIFT | PRESENT);
        assert_eq!(t.entry(10), 0);
        assert_eq!(t.entry(600), 0);
        assert_eq!(t.entry(601), 601 << SHIFT | PRESENT);
        // Unaligned ends cover the pages they touch.
        t.invalidate(700 * PAGE_SIZE + 1, 700 * PAGE_SIZE + 2);
        assert_eq!(t.entry(700), 0);
        assert_eq!(t.entry(701), 701 << SHIFT | PRESENT);
        // exit_mmap invalidates everything.
        t.invalidate(0, usize::MAX);
        assert_eq!(t.entry(7 * CHUNK + 3), 0);
        assert_eq!(t.entry(2 * CHUNK - 1), 0);
        // Pages without a chunk read as absent, and setting them is ignored.
        t.set(3 * CHUNK, PRESENT);
        assert_eq!(t.entry(3 * CHUNK), 0);
        Ok(())
    }

    #[test]
    fn spans_are_checked() {
        assert_eq!(span(0x1000, 1), Ok(0x2000));
        assert_eq!(span(0x1001, 1), Err(EINVAL));
        assert_eq!(span(0x1000, 0), Err(EINVAL));
        assert_eq!(span(usize::MAX & !0xfff, 2), Err(EINVAL));
        assert_eq!(span(0, usize::MAX), Err(EINVAL));
    }
}
