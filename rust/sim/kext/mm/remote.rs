// SPDX-License-Identifier: GPL-2.0

//! Another address space's memory as a device sees it through an IOMMU:
//! the IOMMU's page walk, which never faults, and counted references to
//! the pages it finds.
//!
//! C header: [`include/linux/mm.h`](srctree/include/linux/mm.h)
//!
//! A walk ([`walk`]) hands out [`PageRef`]s: the page stays allocated while
//! one lives, whatever the process does with its mapping. A translation
//! cache keeps a [`Pfn`] instead, which references nothing: only
//! invalidations keep it right. [`PageRef::try_get`] turns it back into a
//! reference, and refuses a page that was freed meanwhile (a translation
//! the IOMMU should have forgotten), so that using a stale translation is
//! caught instead of touching a free page.

use core::ptr::NonNull;

use kernel::{bindings, mm::MmWithUser, page::PAGE_SIZE, prelude::*};

use crate::glue;

/// The page frame number of a page that a walk found mapped, and whether
/// the walk found it writable.
///
/// Made only from a [`PageRef`], so it names a page frame that has a
/// `struct page`; it holds no reference, and the frame may have been freed
/// and reused since.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Pfn {
    pfn: c_ulong,
    writable: bool,
}

/// A counted reference to a page (to its folio), taken by [`walk`] or
/// [`PageRef::try_get`]: the page stays allocated while it lives. Dropping
/// it puts the reference (`put_page()`, which frees the page if it was the
/// last).
///
/// # Invariants
///
/// `page` is a page this object holds one reference on; when `writable`,
/// the walk that found it (or the one its [`Pfn`] came from) allowed
/// writes to it.
pub(crate) struct PageRef {
    page: NonNull<bindings::page>,
    writable: bool,
}

// SAFETY: A page reference may be used and put from any thread.
unsafe impl Send for PageRef {}
// SAFETY: Shared references only copy to and from the page, which the
// kernel allows from any thread (the data races of a device's DMA are the
// process's business).
unsafe impl Sync for PageRef {}

impl PageRef {
    /// The page's frame number, for a translation cache.
    pub(crate) fn pfn(&self) -> Pfn {
        // SAFETY: The page is referenced (type invariant).
        let pfn = unsafe { glue::rsva_sim_page_to_pfn(self.page.as_ptr()) };
        Pfn {
            pfn,
            writable: self.writable,
        }
    }

    /// A new reference to the page of `pfn`, or `None` when its folio is
    /// free (a translation the IOMMU should have forgotten), or was split
    /// or reused meanwhile.
    pub(crate) fn try_get(pfn: Pfn) -> Option<Self> {
        // SAFETY: `pfn` names a page frame with a `struct page` (it came
        // from a `PageRef`); the helper only tries to take a reference on
        // its folio, which fails on a free one.
        let page = NonNull::new(unsafe { glue::rsva_sim_pfn_get_page(pfn.pfn) })?;
        // INVARIANT: referenced just above; writable as the walk found it.
        Some(Self {
            page,
            writable: pfn.writable,
        })
    }

    /// Copies between `buf` and the page at `offset`: from the page into
    /// `buf`, or into the page when `write`. `EINVAL` if the range leaves
    /// the page, `EPERM` for a write to a page not found writable.
    pub(crate) fn access(&self, offset: usize, buf: &mut [u8], write: bool) -> Result {
        if write && !self.writable {
            return Err(EPERM);
        }
        let (off, len) = in_page(offset, buf.len())?;
        // SAFETY: The page is referenced (type invariant) and the range is
        // within it (checked above); `buf` is valid for `len` bytes.
        unsafe {
            glue::rsva_sim_page_access(self.page.as_ptr(), off, buf.as_mut_ptr().cast(), len, write)
        };
        Ok(())
    }

    /// Copies `len` bytes from `src` at `soff` to `dst` at `doff`. `EINVAL`
    /// if either range leaves its page, `EPERM` if `dst` was not found
    /// writable.
    pub(crate) fn copy(dst: &Self, doff: usize, src: &Self, soff: usize, len: usize) -> Result {
        if !dst.writable {
            return Err(EPERM);
        }
        let (doff, n) = in_page(doff, len)?;
        let (soff, _) = in_page(soff, len)?;
        // SAFETY: Both pages are referenced (type invariant); both ranges
        // are within their page (checked above).
        unsafe { glue::rsva_sim_page_copy(dst.page.as_ptr(), doff, src.page.as_ptr(), soff, n) };
        Ok(())
    }
}

impl Drop for PageRef {
    fn drop(&mut self) {
        // SAFETY: The reference is this object's (type invariant), put once.
        unsafe { glue::rsva_sim_put_page(self.page.as_ptr()) };
    }
}

/// `offset` and `len` as C integers, if `[offset, offset + len)` is within
/// a page.
fn in_page(offset: usize, len: usize) -> Result<(c_uint, c_uint)> {
    match offset.checked_add(len) {
        Some(end) if end <= PAGE_SIZE => Ok((
            c_uint::try_from(offset).map_err(|_| EINVAL)?,
            c_uint::try_from(len).map_err(|_| EINVAL)?,
        )),
        _ => Err(EINVAL),
    }
}

/// Walks the page tables of `mm` from the page of `addr` as an IOMMU does:
/// present and permission bits only (`get_user_pages_remote()` with
/// `FOLL_NOFAULT`, under the mmap read lock), for up to `pages.len()`
/// consecutive pages, stopping at the first that does not allow the access
/// (a write when `write`). Returns how many were found, each in `pages`
/// from the start, referenced; the other entries are `None`.
pub(crate) fn walk(
    mm: &MmWithUser,
    addr: u64,
    write: bool,
    pages: &mut [Option<PageRef>],
) -> usize {
    pages.iter_mut().for_each(|p| *p = None);
    let mut raw = [core::ptr::null_mut::<bindings::page>(); WALK_MAX];
    let nr = pages.len().min(WALK_MAX);
    let lock = mm.mmap_read_lock();
    let mut flags = bindings::FOLL_NOFAULT;
    if write {
        flags |= bindings::FOLL_WRITE;
    }
    let start = (addr & !(PAGE_SIZE as u64 - 1)) as c_ulong;
    // SAFETY: `mm` has a user reference and its mmap lock is held for
    // reading; `raw` has room for `nr` page pointers.
    let n = unsafe {
        bindings::get_user_pages_remote(
            mm.as_raw(),
            start,
            nr as c_ulong,
            flags as c_uint,
            raw.as_mut_ptr(),
            core::ptr::null_mut(),
        )
    };
    drop(lock);
    // Negative: none; at most `nr` otherwise.
    let n = usize::try_from(n).unwrap_or(0).min(nr);
    for (slot, &page) in pages.iter_mut().zip(&raw[..n]) {
        // INVARIANT: the walk took a reference on each page it returned,
        // with write permission when `write`.
        *slot = NonNull::new(page).map(|page| PageRef {
            page,
            writable: write,
        });
    }
    n
}

/// The most pages one [`walk`] returns.
pub(crate) const WALK_MAX: usize = 16;

#[kunit_tests(rsva_sim_remote)]
mod tests {
    use super::*;
    use kernel::page::Page;

    /// A reference to `page`, through its frame number.
    fn page_ref(page: &Page, writable: bool) -> Option<PageRef> {
        // SAFETY: `page` is allocated; the helper only computes its number.
        let pfn = unsafe { glue::rsva_sim_page_to_pfn(page.as_ptr()) };
        PageRef::try_get(Pfn { pfn, writable })
    }

    /// Bytes written through one reference are read back through another,
    /// copied between pages, and found again from the frame number.
    #[test]
    fn access_and_copy_reach_the_page() -> Result {
        let (a, b) = (Page::alloc_page(GFP_KERNEL)?, Page::alloc_page(GFP_KERNEL)?);
        let (ra, rb) = (page_ref(&a, true), page_ref(&b, true));
        assert!(ra.is_some() && rb.is_some());
        let (Some(ra), Some(rb)) = (ra, rb) else {
            return Ok(());
        };
        let mut buf = *b"rsva_sim";
        ra.access(PAGE_SIZE - 8, &mut buf, true)?;
        PageRef::copy(&rb, 100, &ra, PAGE_SIZE - 8, 8)?;
        let mut out = [0u8; 8];
        rb.access(100, &mut out, false)?;
        assert_eq!(&out, b"rsva_sim");
        let again = PageRef::try_get(rb.pfn());
        assert!(again.is_some_and(|r| r.pfn() == rb.pfn()));
        Ok(())
    }

    /// Ranges that leave the page and writes to a page not found writable
    /// are refused.
    #[test]
    fn out_of_page_and_read_only_are_refused() -> Result {
        let a = Page::alloc_page(GFP_KERNEL)?;
        let (Some(rw), Some(ro)) = (page_ref(&a, true), page_ref(&a, false)) else {
            return Err(ENOMEM);
        };
        let mut buf = [0u8; 8];
        assert_eq!(rw.access(PAGE_SIZE - 7, &mut buf, false), Err(EINVAL));
        assert_eq!(rw.access(usize::MAX, &mut buf, false), Err(EINVAL));
        assert_eq!(ro.access(0, &mut buf, true), Err(EPERM));
        assert_eq!(ro.access(0, &mut buf, false), Ok(()));
        assert_eq!(PageRef::copy(&ro, 0, &rw, 0, 8), Err(EPERM));
        assert_eq!(PageRef::copy(&rw, 0, &ro, PAGE_SIZE, 1), Err(EINVAL));
        Ok(())
    }

    /// An address space with nothing mapped: the walk finds no page.
    #[test]
    fn walk_of_an_empty_mm_finds_nothing() -> Result {
        let mm = crate::kext::mm::test_mm()?;
        let mut pages: [Option<PageRef>; 4] = Default::default();
        assert_eq!(walk(&mm, 0x10_0000, false, &mut pages), 0);
        assert!(pages.iter().all(Option::is_none));
        Ok(())
    }
}
