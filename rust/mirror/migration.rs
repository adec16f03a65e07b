// SPDX-License-Identifier: GPL-2.0

//! Migration of a mirrored process's pages to a mirror device's memory and
//! back, with test_hmm's semantics (`dmirror_migrate_to_device()`,
//! `dmirror_migrate_to_system()`, `dmirror_devmem_fault()`):
//!
//! - [`to_device`] (`HMM_DMIRROR_MIGRATE_TO_DEV`) moves anonymous pages of
//!   readable VMAs, a PMD-sized folio whole when a free PMD-sized run of
//!   device memory exists, else page by page; the pages that moved are
//!   mirrored (through the system pages holding their data), then the
//!   request is read back as `HMM_DMIRROR_READ` would, without faulting
//!   (`ENOENT` at a page that is not mirrored).
//! - [`to_system`] (`HMM_DMIRROR_MIGRATE_TO_SYS`) and [`fault_to_ram`] (the
//!   CPU touching a device page) move the device's pages back: the mirror
//!   tables of the device forget them first (they ignored the migration's
//!   invalidation), then the data is copied into new system pages.
//! - `HMM_DMIRROR_FLAG_FAIL_ALLOC` makes the next allocation of an ioctl's
//!   migration fail (a whole THP falls back to single pages, a single page
//!   stays where it is, or, back to system memory, `ENOMEM`).

#![forbid(unsafe_code)]

use kernel::{
    mm::{
        virt::{flags as vm_flags, VmaRef},
        Mm,
    },
    page::{Page, PAGE_SIZE},
    prelude::*,
    sync::atomic::{Atomic, Relaxed},
};

use crate::{
    kext::mm::{
        migrate::{
            clear_page, copy_to_page, Buffers, Collected, Dst, Migrated, Source, SysFolio, PMD_NR,
        },
        pagemap::{DeviceFault, FaultError, Owner, Pagemap, PagemapOps},
    },
    mirror::devmem::{Backing, Chunk, DeviceMemory, PMD_ORDER},
    mirror::hmm::Mirror,
    mirror::registry::{span, with_device_tables},
};

/// `HMM_DMIRROR_FLAG_FAIL_ALLOC`.
pub(crate) const FLAG_FAIL_ALLOC: u64 = 1;

/// Takes `HMM_DMIRROR_FLAG_FAIL_ALLOC` from `flags`: whether this
/// allocation is to fail.
fn fail_alloc(flags: Option<&Atomic<u64>>) -> bool {
    let Some(f) = flags else {
        return false;
    };
    let mut cur = f.load(Relaxed);
    while cur & FLAG_FAIL_ALLOC != 0 {
        match f.cmpxchg(cur, cur & !FLAG_FAIL_ALLOC, Relaxed) {
            Ok(_) => return true,
            Err(now) => cur = now,
        }
    }
    false
}

/// The next step of a walk over `[addr, end)`: the VMA at `addr`, which
/// must be readable (`EINVAL` otherwise, as test_hmm), and the end of the
/// step (at most [`PMD_NR`] pages, within the VMA).
fn step<'a>(
    guard: &'a kernel::mm::MmapReadGuard<'_>,
    addr: usize,
    end: usize,
) -> Result<(&'a VmaRef, usize)> {
    let vma = guard.vma_lookup(addr).ok_or(EINVAL)?;
    if vma.flags() & vm_flags::READ == 0 {
        return Err(EINVAL);
    }
    let next = end
        .min(addr.saturating_add(PMD_NR * PAGE_SIZE))
        .min(vma.end());
    Ok((vma, next))
}

/// `HMM_DMIRROR_MIGRATE_TO_DEV`: moves `npages` pages at `start` into
/// `memory`, mirrors them in `mirror`, and reads the request back into
/// user memory at `uptr`. Returns the pages read back.
pub(crate) fn to_device(
    mirror: &Mirror,
    memory: &DeviceMemory,
    start: usize,
    npages: usize,
    uptr: u64,
    flags: &Atomic<u64>,
) -> Result<u64> {
    let end = span(start, npages)?;
    let owner = memory.owner();
    let mm = mirror.mm_user()?;
    let mut bufs = Buffers::new(PMD_NR)?;
    let mut addr = start;
    while addr < end {
        // Set when an invalidation ran while pages moved: the range is then
        // mirrored by a fault, after the mmap lock is dropped.
        let mut refault = None;
        let guard = mm.mmap_read_lock();
        while addr < end {
            let (vma, next) = step(&guard, addr, end)?;
            let n = (next - addr) / PAGE_SIZE;
            mirror.prepare(addr / PAGE_SIZE, n)?;
            let mut c = Collected::setup(vma, addr, next, Source::System, true, owner, &mut bufs)?;
            // From here on the pages are locked and unmapped: an
            // invalidation of the mm (a zap of the migration entries, say)
            // changes the sequence, and the new pages are then not mirrored
            // from the migration.
            let seq = mirror.read_begin()?;
            alloc_and_copy(&mut c, memory, flags);
            let m = c.pages();
            // The tables of the device kept their entries through the
            // migration's invalidation (`FrameTable::invalidate`): those of
            // the pages that moved name the system pages finalize frees, so
            // they go first, in every table of the device on the mm. This
            // mirror's table then mirrors the moved pages through their
            // data pages, unless an invalidation ran since.
            forget_moved(&mm, &m, owner);
            let mapped = mirror.with_table_unchanged(seq, |mut t, unchanged| {
                let first = m.start() / PAGE_SIZE;
                for_each_moved(&m, owner, |i, data, write| {
                    t.set_data(first + i, data, write, unchanged)
                });
            })?;
            m.finalize();
            let at = addr;
            addr = next;
            if mapped.is_none() {
                refault = Some((at, n));
                break;
            }
        }
        drop(guard);
        if let Some((at, n)) = refault {
            mirror.fault(at, n, false)?;
        }
    }
    drop(mm);
    mirror.read_mirrored(start, npages, uptr)
}

/// Calls `f(entry, data page, writable)` for each page that moved to
/// device memory of `owner` in `m`.
fn for_each_moved(m: &Migrated<'_>, owner: Owner, mut f: impl FnMut(usize, &Page, bool)) {
    for i in 0..m.len() {
        let Some((pagemap, index)) = m.dst_device::<Chunk>(i, owner) else {
            continue;
        };
        let dst = m.dst(i);
        for k in 0..dst.nr_pages() {
            pagemap
                .data()
                .with_backing(index + k, &mut |data| f(i + k, data, dst.write()));
        }
    }
}

/// The device tables of `owner` on `mm` forget the pages that moved in `m`
/// (those [`for_each_moved`] mirrors): their old pages are freed when `m`
/// finalizes.
fn forget_moved(mm: &Mm, m: &Migrated<'_>, owner: Owner) {
    let start = m.start();
    with_device_tables(mm, owner, |mut t| {
        for i in 0..m.len() {
            let dst = m.dst(i);
            if m.src(i).migrate() && dst.valid() {
                let from = start + i * PAGE_SIZE;
                t.as_mut().forget(from, from + dst.nr_pages() * PAGE_SIZE);
            }
        }
    });
}

/// A system page holding the data of page `k` of source entry `i` (zero
/// for an empty or zero-page mapping).
fn backing_page(c: &Collected<'_>, i: usize, k: usize) -> Result<Page> {
    let mut page = Page::alloc_page(GFP_KERNEL)?;
    match c.src_page(i, k) {
        Some(src) => copy_to_page(&mut page, src),
        None => clear_page(&mut page),
    }
    Ok(page)
}

/// The system pages holding the data of source entry `i` (`nr` pages).
fn backing_for(c: &Collected<'_>, i: usize, nr: usize) -> Result<Backing> {
    if nr == 1 {
        return Ok(Backing::Page(backing_page(c, i, 0)?));
    }
    let mut pages = KVec::with_capacity(nr, GFP_KERNEL)?;
    for k in 0..nr {
        pages.push(backing_page(c, i, k)?, GFP_KERNEL)?;
    }
    Ok(Backing::Pmd(pages))
}

/// test_hmm's `dmirror_migrate_alloc_and_copy()`: a device destination for
/// every system page that may migrate, holding its data.
fn alloc_and_copy(c: &mut Collected<'_>, memory: &DeviceMemory, flags: &Atomic<u64>) {
    let mut i = 0;
    while i < c.len() {
        let s = c.src(i);
        if !s.migrate() {
            i += 1;
            continue;
        }
        let nr = s.nr_pages();
        let folio = if fail_alloc(Some(flags)) {
            None
        } else {
            backing_for(c, i, nr).and_then(|b| memory.alloc(b)).ok()
        };
        if let Some(folio) = folio {
            c.set_dst(i, Dst::Device(folio), s.write());
        } else if nr > 1 {
            // The whole folio did not fit: page by page (the core splits
            // the source folio).
            for k in 0..nr.min(c.len() - i) {
                let Ok(folio) = backing_page(c, i, k).and_then(|p| memory.alloc(Backing::Page(p)))
                else {
                    break;
                };
                c.set_dst(i + k, Dst::Device(folio), s.write());
            }
        }
        i += nr;
    }
}

/// The device tables of the mm of `c` forget the pages that may migrate
/// back to system memory: their device pages are freed once the migration
/// is done, and the tables ignored the migration's invalidation.
fn forget_moving(c: &Collected<'_>, owner: Owner) {
    let start = c.start();
    with_device_tables(c.vma().mm(), owner, |mut t| {
        let mut i = 0;
        while i < c.len() {
            let s = c.src(i);
            let nr = s.nr_pages();
            if s.migrate() {
                let from = start + i * PAGE_SIZE;
                t.as_mut().forget(from, from + nr * PAGE_SIZE);
            }
            i += nr;
        }
    });
}

/// test_hmm's `dmirror_devmem_fault_alloc_and_copy()`: a system destination
/// for every device page of `owner` that may migrate, holding its data.
/// `Err(Oom)` when memory is short for a single page.
fn alloc_and_copy_to_sys(
    c: &mut Collected<'_>,
    owner: Owner,
    flags: Option<&Atomic<u64>>,
) -> Result<(), FaultError> {
    let vma = c.vma();
    let mut i = 0;
    while i < c.len() {
        let s = c.src(i);
        let nr = s.nr_pages();
        let addr = c.start() + i * PAGE_SIZE;
        let order = if nr > 1 { PMD_ORDER } else { 0 };
        let whole = {
            let Some((from, index)) = c.src_device::<Chunk>(i, owner) else {
                i += 1;
                continue;
            };
            let folio = if fail_alloc(flags) {
                None
            } else {
                SysFolio::alloc(Some(vma), addr, order, false)
            };
            match folio {
                Some(mut folio) => {
                    for k in 0..nr {
                        from.data().copy_out(index + k, &mut folio, k);
                    }
                    Ok(folio)
                }
                None if nr == 1 => return Err(FaultError::Oom),
                None => {
                    // Page by page (the core splits the device folio).
                    let mut pages =
                        KVec::with_capacity(nr, GFP_KERNEL).map_err(|_| FaultError::Oom)?;
                    for k in 0..nr.min(c.len() - i) {
                        let mut one = SysFolio::alloc(Some(vma), addr + k * PAGE_SIZE, 0, false)
                            .ok_or(FaultError::Oom)?;
                        from.data().copy_out(index + k, &mut one, 0);
                        pages.push(one, GFP_KERNEL).map_err(|_| FaultError::Oom)?;
                    }
                    Err(pages)
                }
            }
        };
        match whole {
            Ok(folio) => {
                c.set_dst(i, Dst::Sys(folio), s.write());
            }
            Err(pages) => {
                for (k, one) in pages.into_iter().enumerate() {
                    c.set_dst(i + k, Dst::Sys(one), s.write());
                }
            }
        }
        i += nr;
    }
    Ok(())
}

/// `HMM_DMIRROR_MIGRATE_TO_SYS`: moves the pages of `memory` among the
/// `npages` pages at `start` of `mirror`'s mm back to system memory.
/// Returns the pages moved (`cpages`).
pub(crate) fn to_system(
    mirror: &Mirror,
    memory: &DeviceMemory,
    start: usize,
    npages: usize,
    flags: &Atomic<u64>,
) -> Result<u64> {
    let end = span(start, npages)?;
    let owner = memory.owner();
    let mm = mirror.mm_user()?;
    let mut bufs = Buffers::new(PMD_NR)?;
    let guard = mm.mmap_read_lock();
    let mut moved = 0u64;
    let mut addr = start;
    while addr < end {
        let (vma, next) = step(&guard, addr, end)?;
        let mut c = Collected::setup(
            vma,
            addr,
            next,
            Source::DevicePrivate,
            true,
            owner,
            &mut bufs,
        )?;
        forget_moving(&c, owner);
        if alloc_and_copy_to_sys(&mut c, owner, Some(flags)).is_err() {
            return Err(ENOMEM);
        }
        let m = c.pages();
        moved += m.migrated() as u64;
        m.finalize();
        addr = next;
    }
    Ok(moved)
}

/// A chunk of a mirror device's memory, as the core calls it: its pages
/// freed, the CPU touching one.
impl PagemapOps for Chunk {
    fn folio_free(pagemap: &Pagemap<Self>, index: usize, order: u32) {
        pagemap.data().folio_free(index, order);
    }

    fn migrate_to_ram(pagemap: &Pagemap<Self>, fault: &DeviceFault<'_>) -> Result<(), FaultError> {
        fault_to_ram(pagemap, fault)
    }
}

/// The CPU touched a device page of `pagemap` (test_hmm's
/// `dmirror_devmem_fault()`): moves it back to system memory, with the rest
/// of its folio when the folio is mapped whole (by a PMD).
fn fault_to_ram(pagemap: &Pagemap<Chunk>, fault: &DeviceFault<'_>) -> Result<(), FaultError> {
    let owner = pagemap.owner();
    let order = if fault.pte_mapped() {
        0
    } else {
        fault.folio_order()
    };
    let size = PAGE_SIZE << order;
    let start = fault.address() & !(size - 1);
    let mut bufs = Buffers::new(1 << order).map_err(|_| FaultError::Oom)?;
    let mut c = Collected::setup_fault(fault, start, start + size, order > 0, owner, &mut bufs)
        .map_err(|_| FaultError::Sigbus)?;
    forget_moving(&c, owner);
    alloc_and_copy_to_sys(&mut c, owner, None)?;
    c.pages().finalize();
    Ok(())
}
