// SPDX-License-Identifier: GPL-2.0

//! `HMM_DMIRROR_EXCLUSIVE` and `HMM_DMIRROR_CHECK_EXCLUSIVE`: device-exclusive
//! access with the results of test_hmm's `dmirror_exclusive()` and
//! `dmirror_check_atomic()`, through [`crate::kext::mm::device_exclusive`].
//!
//! For each page the mirror follows the sequence protocol of its faults
//! around the request, as nouveau's `nouveau_atomic_range_fault()`: it
//! takes the mirror's sequence ([`MirrorClient::read_begin`], which waits
//! for invalidations in progress), makes the page exclusive naming its
//! client's [`Owner`] under the mmap read lock, then, still holding the
//! folio lock, takes the mirror's lock and maps the frame, marked
//! `ATOMIC`, only if no invalidation bumped the sequence since. Its own
//! conversion (`MMU_NOTIFY_EXCLUSIVE` naming this client) neither clears
//! its entry nor bumps the sequence (`Clients::invalidate_exclusive`); any
//! other invalidation does: another thread's `MADV_DONTNEED` (a zap under
//! the mmap read lock, which the folio lock does not stop), the
//! copy-on-write or the huge page split of the conversion's own fault,
//! another device taking the page. Then the page, left device-exclusive
//! by the request, is faulted back writable for the mirror (which restores
//! its PTE outside the next request's window: otherwise that request's own
//! fault would undo the conversion inside it and count as a race every
//! time) and asked for again. test_hmm passes no owner and maps the page
//! without any check, so a zap racing the request leaves it a frame the
//! process no longer maps.
//!
//! The entry is present but not writable: READ uses it, WRITE faults the
//! page writable again (the CPU takes it back), as in test_hmm. The CPU's
//! next access to the page is an `MMU_NOTIFY_CLEAR` invalidation, which
//! clears the entry; CHECK_EXCLUSIVE answers `EPERM` while an entry of the
//! range is still `ATOMIC`.
//!
//! [`MirrorClient::read_begin`]: crate::mirror::registry::MirrorClient::read_begin

#![forbid(unsafe_code)]

use kernel::{mm::MmWithUser, page::PAGE_SIZE, prelude::*};

use super::{table, Mirror};
use crate::{
    kext::mm::{device_exclusive::ExclusiveLock, frame_table::CHUNK, pagemap::Owner},
    mirror::registry::span,
};

/// Times a page is asked for again because an invalidation ran during the
/// request, before `EBUSY`. One is the rule (a conversion that broke
/// copy-on-write or split a huge page); more need other threads undoing
/// the request again and again.
const RETRIES: usize = 16;

impl Mirror {
    /// `HMM_DMIRROR_EXCLUSIVE`: makes `npages` pages at `start` exclusive to
    /// this mirror, page by page as test_hmm, under the mmap read lock, then
    /// copies what the mirror holds of them to user memory at `uptr`.
    /// Returns the pages copied (`cpages`).
    ///
    /// Errors: `EINVAL` for a bad span or once the mm has no users (as
    /// test_hmm); those of [`ExclusiveLock::make_exclusive`] at the first
    /// page that cannot be made exclusive (the pages before it stay so);
    /// `EBUSY` after [`RETRIES`] invalidations of one page, `EINTR` for a
    /// signal between two; `ENOENT` when the CPU took a page back before
    /// it was copied (as test_hmm's `dmirror_do_read()`); `EFAULT` for
    /// `uptr`; `ENOMEM`.
    pub(crate) fn exclusive(&self, start: usize, npages: usize, uptr: u64) -> Result<u64> {
        span(start, npages)?;
        let owner = self.client.exclusive_owner()?;
        let mm = self.client.user().map_err(|_| EINVAL)?;
        let mut done = 0;
        while done < npages {
            let first = start / PAGE_SIZE + done;
            let n = (CHUNK - first % CHUNK).min(npages - done);
            self.prepare(first, n)?;
            for page in first..first + n {
                self.exclusive_page(&mm, page, owner)?;
            }
            done += n;
        }
        self.read_mirrored(start, npages, uptr)
    }

    /// Makes page `page` (its index in the address space) exclusive and
    /// maps it `ATOMIC`, asking again while invalidations run during the
    /// request.
    fn exclusive_page(&self, mm: &MmWithUser, page: usize, owner: Owner) -> Result {
        let addr = page * PAGE_SIZE;
        let mut retries = 0;
        loop {
            let seq = self.client.read_begin()?;
            let mapped = {
                let lock = ExclusiveLock::new(mm);
                let got = lock.make_exclusive(addr, owner)?;
                self.client
                    .with_unless_changed(seq, |c, unchanged| {
                        table(c).map(|mut t| t.set_exclusive(page, &got, unchanged))
                    })?
                    .transpose()?
                    .is_some()
                // `got` goes here, after the mirror's lock: the folio is
                // unlocked and from now on the CPU may take the page back,
                // which clears the entry under the mirror's lock.
            };
            if mapped {
                return Ok(());
            }
            retries += 1;
            if retries > RETRIES {
                return Err(EBUSY);
            }
            if current!().signal_pending() {
                return Err(EINTR);
            }
            // Restores the PTE the request left device-exclusive (and
            // breaks copy-on-write) outside the next request's window.
            self.fault(addr, 1, true)?;
        }
    }

    /// `HMM_DMIRROR_CHECK_EXCLUSIVE`: `EPERM` while a page of `npages` at
    /// `start` is still exclusive to this mirror (the CPU did not take it
    /// back), as test_hmm's `dmirror_check_atomic()`.
    pub(crate) fn check_exclusive(&self, start: usize, npages: usize) -> Result {
        let end = span(start, npages)?;
        let (first, last) = (start / PAGE_SIZE, end / PAGE_SIZE);
        if self.with_table(|t| t.any_atomic(first, last))? {
            return Err(EPERM);
        }
        Ok(())
    }
}
