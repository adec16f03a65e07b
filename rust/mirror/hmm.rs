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
//!   use of an entry happens under that lock after the retry check, so a
//!   frame the CPU page table dropped is never used. The table's type
//!   ([`FrameTable`]) carries this: entries are set from proofs of the
//!   notifier, frames are reached only as
//!   [`Frame`](crate::kext::mm::frame_table::Frame)s borrowed from it, and
//!   the table is pinned in the state of the mirror's notifier and reached
//!   only as `Pin<&mut FrameTable>` ([`Mirror::with_table`]), so it cannot
//!   be swapped out from under the lock or for another mirror's table.
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

#![forbid(unsafe_code)]

use kernel::{
    mm::MmWithUser,
    page::{Page, PAGE_SIZE},
    prelude::*,
    sync::aref::ARef,
    sync::atomic::{Atomic, Relaxed},
    uaccess::{UserPtr, UserSlice},
};

use crate::{
    kext::mm::frame_table::{BouncePage, FrameTable, PageRef, TableChunk, CHUNK},
    kext::mm::interval_notifier::{FaultMode, HmmPfn, Seq, Unchanged},
    kext::mm::pagemap::Owner,
    mirror::registry::{span, Client, ClientRef, MirrorClient},
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
/// mirror whose device memory is `owner`'s (the entry borrows the mirror's
/// lock, after the retry check: its page is mapped).
pub(crate) fn prot_of(e: HmmPfn<'_>, owner: Option<Owner>) -> u8 {
    if e.error() {
        return prot::ERROR;
    }
    if e.pfn().is_none() {
        return prot::NONE;
    }
    let device = e.device_private_owner();
    let zero = e.is_zero();
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

/// How a mirror reads its device's own device-private pages: calls `f`
/// with the system page that holds the data of the device page of `e`, a
/// page of `owner` (under the mirror's lock, with the page mapped), and
/// returns true; false if `e` is not one of `owner`'s pages.
pub(crate) type BackingOf = fn(Owner, HmmPfn<'_>, f: &mut dyn FnMut(&Page)) -> bool;

/// The device memory of a mirror's device.
#[derive(Clone, Copy)]
pub(crate) struct DeviceView {
    /// The owner of the device's memory.
    pub(crate) owner: Owner,
    /// Where the device keeps the data of its pages.
    pub(crate) backing: BackingOf,
}

/// A mirror of one mm: a table client of the mm's shared mirror. Its
/// table holds the frames it mirrors ([`FrameTable`], which keeps them
/// under the protocol of the mirror's notifier), in chunks of [`CHUNK`]
/// pages allocated before faults (not under the lock, which invalidations
/// from reclaim take).
///
/// A mirror with device memory keeps the frames of its own device-private
/// pages as the frames of the system pages that hold their data (test_hmm's
/// `BACKING_PAGE()`), so that READ and WRITE reach them as any other page.
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

/// The table of a client, which a [`Mirror`] always is, pinned where the
/// mirror keeps it.
fn table(c: ClientRef<'_>) -> Result<Pin<&mut FrameTable>> {
    c.table().ok_or(EINVAL)
}

impl Mirror {
    /// Mirrors `mm` (its user address space) for a device with the device
    /// memory `device`, if any.
    pub(crate) fn new(mm: &MmWithUser, device: Option<DeviceView>) -> Result<Self> {
        let owner = device.map(|d| d.owner);
        Ok(Self {
            client: MirrorClient::new(
                mm,
                Client::Table(KBox::pin_init(FrameTable::new(owner), GFP_KERNEL)?),
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

    /// Runs `f` on the table, under the mirror's lock. The table is pinned
    /// in the mirror's state: `f` sets and clears entries through the
    /// `Pin`, reads frames through its `&FrameTable`, and can neither move
    /// the table out nor put another in its place.
    fn with_table<R>(&self, f: impl FnOnce(Pin<&mut FrameTable>) -> R) -> Result<R> {
        self.client.with(|c| table(c).map(f))?
    }

    /// A sequence number for [`Mirror::with_table_unchanged`].
    pub(crate) fn read_begin(&self) -> Result<Seq> {
        self.client.read_begin()
    }

    /// Runs `f` on the table under the mirror's lock, with the proof, if no
    /// invalidation ran since `seq`; `Ok(None)` otherwise.
    pub(crate) fn with_table_unchanged<R>(
        &self,
        seq: Seq,
        f: impl for<'a> FnOnce(Pin<&'a mut FrameTable>, Unchanged<'a>) -> R,
    ) -> Result<Option<R>> {
        self.client
            .with_unless_changed(seq, |c, unchanged| table(c).map(|t| f(t, unchanged)))?
            .transpose()
    }

    /// Makes the table chunks of `[first, first + n)` pages exist.
    pub(crate) fn prepare(&self, first: usize, n: usize) -> Result {
        for key in first / CHUNK..=(first + n - 1) / CHUNK {
            if self.with_table(|t| t.has_chunk(key * CHUNK))? {
                continue;
            }
            // Charged to the caller's memory cgroup: the table grows with
            // the addresses a process asks for.
            let chunk = TableChunk::new(key, GFP_KERNEL_ACCOUNT)?;
            self.with_table(|t| t.insert_chunk(chunk))?;
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
                            let mut t = table(c)?;
                            for (i, &e) in entries.iter().enumerate() {
                                // The device's own pages are read through the
                                // system pages that hold their data; no other
                                // device's page can be here (hmm faults them
                                // back to system memory for a fault), and a frame
                                // of device memory is never mirrored: it cannot
                                // be read.
                                let theirs = e.device_private_owner().is_some();
                                if theirs && write && !e.writable() {
                                    return Ok(false);
                                }
                                if !theirs {
                                    t.set_faulted(first + i, e);
                                    continue;
                                }
                                let d = device.ok_or(EFAULT)?;
                                let writable = e.writable();
                                let found = (d.backing)(d.owner, e, &mut |data| {
                                    t.set_data(first + i, data, writable, e.unchanged())
                                });
                                if !found {
                                    return Err(EFAULT);
                                }
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
        out: &mut [Option<PageRef>],
    ) -> Result<(usize, usize)> {
        self.with_table(|t| {
            let (mut copied, mut got) = (0, 0);
            for frame in t.frames(first, out.len()) {
                if got == 0 && frame.copy_to_user_nofault(user_at(uptr, copied)) {
                    copied += 1;
                    continue;
                }
                let (Some(slot), Some(page)) = (out.get_mut(got), frame.get_page()) else {
                    break;
                };
                *slot = Some(page);
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
        bounce: Option<&BouncePage>,
    ) -> Result<(usize, Stop)> {
        self.with_table(|t| {
            let mut i = 0;
            for frame in t.frames(first, n) {
                if !frame.writable() {
                    return (i, Stop::Unmirrored);
                }
                let copied = match bounce {
                    Some(b) if i == 0 => frame.copy_from_bounce(b),
                    _ => frame.copy_from_user_nofault(user_at(uptr, i)),
                };
                if !copied {
                    return (i, Stop::UserFault);
                }
                i += 1;
            }
            if i < n {
                return (i, Stop::Unmirrored);
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
        let mut pages: [Option<PageRef>; COPY_BATCH] = [const { None }; COPY_BATCH];
        let (mut done, mut faults) = (0usize, 0u64);
        while done < npages {
            let (first, n) = batch(start, npages, done);
            let (fast, got) = self.read_or_collect(first, user_at(uptr, done), &mut pages[..n])?;
            COPIED_UNDER_LOCK.fetch_add(fast as u64, Relaxed);
            COPIED_AFTER_LOCK.fetch_add(got as u64, Relaxed);
            done += fast;
            // Copied in order up to the first user page that faults; every
            // reference is dropped.
            let mut copied = 0;
            for (i, slot) in pages.iter_mut().take(got).enumerate() {
                let Some(page) = slot.take() else {
                    continue;
                };
                if copied == i && page.copy_to_user(user_at(uptr, done + i)) {
                    copied += 1;
                }
            }
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
        let mut bounce: Option<BouncePage> = None;
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
                    let mut page = match bounce.take() {
                        Some(page) => page,
                        None => BouncePage::new(GFP_KERNEL)?,
                    };
                    let addr = UserPtr::from_addr(user_at(uptr, done) as usize);
                    page.fill(&mut UserSlice::new(addr, PAGE_SIZE).reader())?;
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

    #[test]
    fn spans_are_checked() {
        assert_eq!(span(0x1000, 1), Ok(0x2000));
        assert_eq!(span(0x1001, 1), Err(EINVAL));
        assert_eq!(span(0x1000, 0), Err(EINVAL));
        assert_eq!(span(usize::MAX & !0xfff, 2), Err(EINVAL));
        assert_eq!(span(0, usize::MAX), Err(EINVAL));
    }
}
