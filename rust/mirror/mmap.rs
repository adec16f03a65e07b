// SPDX-License-Identifier: GPL-2.0

//! mmap of `/dev/rsva_mirror0`, as test_hmm's `dmirror_fops_mmap()`: the
//! mapping gets fresh zeroed pages, inserted at mmap time
//! (`vm_insert_page()`, which makes the VMA `VM_MIXEDMAP`). Nothing of the
//! opener's memory is reached through it, so any process holding the file
//! may map it. hmm-tests' `mixedmap` snapshots such a mapping.

#![forbid(unsafe_code)]

use kernel::{
    mm::virt::VmaNew,
    page::{Page, PAGE_SIZE},
    prelude::*,
};

/// The largest mapping, in pages (64 MiB): each is allocated at mmap time (test_hmm
/// has no limit, so a mapping of the whole address space there allocates
/// until memory runs out).
pub(crate) const MAX_PAGES: usize = 16384;

/// Fills the new mapping `vma` with zeroed pages, charged to the caller's
/// memory cgroup. `ENOMEM` for a mapping of more than [`MAX_PAGES`] (which
/// bounds the time it takes too) or when a page cannot be had; the mmap
/// then fails and what was inserted is unmapped with the VMA.
pub(crate) fn mmap(vma: &VmaNew) -> Result {
    let (start, end) = (vma.start(), vma.end());
    if (end - start) / PAGE_SIZE > MAX_PAGES {
        return Err(ENOMEM);
    }
    let mixed = vma.set_mixedmap();
    let mut addr = start;
    while addr < end {
        let page = Page::alloc_page(GFP_KERNEL_ACCOUNT | __GFP_ZERO)?;
        // The mapping takes its own reference; ours goes with `page`.
        mixed.vm_insert_page(addr, &page)?;
        addr += PAGE_SIZE;
    }
    Ok(())
}
