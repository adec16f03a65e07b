// SPDX-License-Identifier: GPL-2.0

//! Migration between system memory and device-private memory
//! (`include/linux/migrate.h`, `mm/migrate_device.c`).
//!
//! Migrating a range of a VMA takes three steps, each a call into the core:
//! `migrate_vma_setup()` collects the pages, locks them and replaces their
//! page table entries with migration entries; the driver then allocates a
//! destination for each page it wants to move and copies the data;
//! `migrate_vma_pages()` points the page tables at the destinations; the
//! driver may then map the pages in its own page table; and
//! `migrate_vma_finalize()` restores the entries of the pages that did not
//! move, unlocks everything and drops the references. The order is a type
//! here: [`Collected::setup`] returns a [`Collected`], whose
//! [`Collected::pages`] returns a [`Migrated`], whose
//! [`Migrated::finalize`] ends the migration; dropping either finalizes, so
//! no page stays locked. The same holds for device pages named by frame
//! ([`DeviceCollected`]: `migrate_device_range()`/`migrate_device_pfns()`,
//! `migrate_device_pages()`, `migrate_device_finalize()`), which a driver
//! uses to take its memory back without knowing where it is mapped.
//!
//! Destinations are owned folios, locked with one reference ([`SysFolio`],
//! [`DeviceFolio`]); placing one in the destination array hands both to the
//! core, which keeps the folio where the migration succeeded and frees it
//! (unlock and put, for a device folio through its pagemap's `folio_free`)
//! where it did not.

use core::marker::PhantomData;

use kernel::{bindings, mm::virt::VmaRef, page::Page, prelude::*};

use super::pagemap::{page_pfn, DeviceFault, DeviceFolio, Owner, Pagemap, PagemapOps};
use crate::kext::glue;

const PAGE_SHIFT: u32 = kernel::page::PAGE_SHIFT as u32;

/// Pages of a PMD-sized folio.
pub(crate) const PMD_NR: usize = 512;

/// One entry of a migration's source or destination array
/// (`migrate_pfn()` and the `MIGRATE_PFN_*` flags).
#[repr(transparent)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub(crate) struct MigratePfn(c_ulong);

impl MigratePfn {
    /// The entry names a page (`MIGRATE_PFN_VALID`); a source entry without
    /// one is an empty or zero-page mapping.
    pub(crate) fn valid(self) -> bool {
        self.0 & bindings::MIGRATE_PFN_VALID as c_ulong != 0
    }

    /// The core may migrate this entry (`MIGRATE_PFN_MIGRATE`): after
    /// [`Collected::pages`], it did.
    pub(crate) fn migrate(self) -> bool {
        self.0 & bindings::MIGRATE_PFN_MIGRATE as c_ulong != 0
    }

    /// The mapping was writable (`MIGRATE_PFN_WRITE`).
    pub(crate) fn write(self) -> bool {
        self.0 & bindings::MIGRATE_PFN_WRITE as c_ulong != 0
    }

    /// The entry is the first of a PMD-sized folio (`MIGRATE_PFN_COMPOUND`);
    /// the following [`PMD_NR`]` - 1` entries belong to it.
    pub(crate) fn compound(self) -> bool {
        self.0 & bindings::MIGRATE_PFN_COMPOUND as c_ulong != 0
    }

    /// The pages the entry covers: [`PMD_NR`] for a compound entry, else 1.
    pub(crate) fn nr_pages(self) -> usize {
        if self.compound() {
            PMD_NR
        } else {
            1
        }
    }

    /// The frame, for a valid entry.
    fn pfn(self) -> Option<usize> {
        // SAFETY: Pure arithmetic on the entry.
        let pfn = unsafe { glue::rsva_migrate_pfn_to_pfn(self.0) };
        (pfn != c_ulong::MAX).then_some(pfn)
    }

    fn of_folio(pfn: usize, order: u32, write: bool) -> Self {
        // SAFETY: Pure arithmetic on the frame number.
        let mut e = unsafe { glue::rsva_migrate_pfn(pfn) };
        if write {
            e |= bindings::MIGRATE_PFN_WRITE as c_ulong;
        }
        if order > 0 {
            e |= bindings::MIGRATE_PFN_COMPOUND as c_ulong;
        }
        Self(e)
    }
}

/// The most pages whose arrays [`Buffers`] holds in itself, without an
/// allocation: a CPU fault on a device page (one page) allocates nothing.
const INLINE: usize = 8;

/// The migrate entries of up to `len()` pages: held inline for a few pages,
/// allocated for more.
enum Entries {
    Inline([c_ulong; INLINE], usize),
    Heap(KVVec<c_ulong>),
}

impl Entries {
    /// `n` zeroed entries.
    fn new(n: usize) -> Result<Self> {
        if n <= INLINE {
            return Ok(Self::Inline([0; INLINE], n));
        }
        Ok(Self::Heap(KVVec::from_elem(0, n, GFP_KERNEL)?))
    }
}

impl core::ops::Deref for Entries {
    type Target = [c_ulong];

    fn deref(&self) -> &[c_ulong] {
        match self {
            Self::Inline(a, n) => a.get(..*n).unwrap_or(&[]),
            Self::Heap(v) => v,
        }
    }
}

impl core::ops::DerefMut for Entries {
    fn deref_mut(&mut self) -> &mut [c_ulong] {
        match self {
            Self::Inline(a, n) => a.get_mut(..*n).unwrap_or(&mut []),
            Self::Heap(v) => v,
        }
    }
}

/// The source and destination arrays of migrations of up to `len()` pages,
/// reused from one migration to the next. Up to [`INLINE`] pages they are
/// part of the value, which the caller keeps where it is (the arrays are
/// borrowed for the whole migration): an allocation costs as much as a
/// whole fault in a debug kernel.
pub(crate) struct Buffers {
    src: Entries,
    dst: Entries,
}

impl Buffers {
    /// Arrays for `n` pages.
    pub(crate) fn new(n: usize) -> Result<Self> {
        Ok(Self {
            src: Entries::new(n)?,
            dst: Entries::new(n)?,
        })
    }

    /// The most pages one migration may cover.
    pub(crate) fn len(&self) -> usize {
        self.src.len()
    }
}

/// The arrays of one migration of `n` pages. The core reads and writes them
/// only during the calls this module makes, through pointers taken for each
/// call.
struct Arrays<'a> {
    bufs: &'a mut Buffers,
    n: usize,
}

impl Arrays<'_> {
    fn src(&self, i: usize) -> MigratePfn {
        MigratePfn(self.bufs.src.get(i).copied().unwrap_or(0))
    }

    fn dst(&self, i: usize) -> MigratePfn {
        MigratePfn(self.bufs.dst.get(i).copied().unwrap_or(0))
    }

    fn src_page(&self, i: usize, k: usize) -> Option<SrcPage<'_>> {
        let e = self.src(i);
        if !e.migrate() || k >= e.nr_pages() {
            return None;
        }
        Some(SrcPage {
            pfn: e.pfn()? + k,
            _p: PhantomData,
        })
    }

    /// Whether entry `i` migrates: its own source does, or it is inside a
    /// migrating compound entry (whose folio the core splits when the
    /// destinations are small pages).
    fn migrates(&self, i: usize) -> bool {
        if self.src(i).migrate() {
            return true;
        }
        (1..PMD_NR.min(i + 1)).any(|back| {
            let head = self.src(i - back);
            head.migrate() && head.compound()
        })
    }

    fn set_dst(&mut self, i: usize, dst: Dst, write: bool) -> bool {
        let free = i < self.n && self.dst(i).0 == 0 && self.migrates(i);
        if !free {
            // Dropped: unlocked and put.
            return false;
        }
        let (pfn, order) = match dst {
            Dst::Sys(f) => {
                let order = f.order();
                (f.into_pfn(), order)
            }
            Dst::Device(f) => {
                let order = f.order();
                (f.into_pfn(), order)
            }
        };
        self.bufs.dst[i] = MigratePfn::of_folio(pfn, order, write).0;
        true
    }

    fn count_migrated(&self) -> usize {
        (0..self.n)
            .filter(|&i| self.src(i).valid() && self.src(i).migrate())
            .count()
    }

    fn ptrs(&mut self) -> (*mut c_ulong, *mut c_ulong) {
        (self.bufs.src.as_mut_ptr(), self.bufs.dst.as_mut_ptr())
    }
}

/// A source page of a migration, locked and referenced by it: it stays
/// allocated, and its data stable, while the migration that gave it lives.
#[derive(Clone, Copy)]
pub(crate) struct SrcPage<'a> {
    pfn: usize,
    _p: PhantomData<&'a ()>,
}

impl SrcPage<'_> {
    /// The frame.
    pub(crate) fn pfn(self) -> usize {
        self.pfn
    }
}

/// Copies `from` into `to`, a page that is the caller's alone.
pub(crate) fn copy_to_page(to: &mut Page, from: SrcPage<'_>) {
    // SAFETY: Both are allocated pages: `to` is owned and not shared (`&mut`),
    // `from` is held by its migration.
    unsafe { glue::rsva_copy_highpage_pfn(page_pfn(to), from.pfn) };
}

/// Zeroes `to`, a page that is the caller's alone.
pub(crate) fn clear_page(to: &mut Page) {
    // SAFETY: `to` is an allocated page, not shared (`&mut`).
    unsafe { glue::rsva_clear_highpage_pfn(page_pfn(to)) };
}

/// A new folio of system memory for a migration's destination: locked,
/// with one reference, owned here; dropping it unlocks and frees it.
///
/// # Invariants
///
/// `pfn` is the first page of a locked folio of `order` that nothing else
/// references or maps.
pub(crate) struct SysFolio {
    pfn: usize,
    order: u32,
}

impl SysFolio {
    /// A folio of `1 << order` pages for `addr` of `vma` (any node without a
    /// VMA); `None` when memory is short (and `nofail` is false or the order
    /// is not 0).
    pub(crate) fn alloc(
        vma: Option<&VmaRef>,
        addr: usize,
        order: u32,
        nofail: bool,
    ) -> Option<Self> {
        let vma = vma.map_or(core::ptr::null_mut(), |v| v.as_ptr());
        // SAFETY: `vma` is null or a VMA whose mm's lock the caller holds
        // (a `&VmaRef`).
        let pfn = unsafe { glue::rsva_sys_folio_alloc_locked(vma, addr, order, nofail) };
        if pfn == 0 {
            // Not `then_some()`: its argument, a `SysFolio` whose drop
            // unlocks and puts its frame, would be built and dropped here.
            return None;
        }
        // INVARIANT: a new locked folio with one reference.
        Some(Self { pfn, order })
    }

    /// log2 of the number of pages.
    pub(crate) fn order(&self) -> u32 {
        self.order
    }

    /// Copies `from` into page `k` of the folio (ignored past its end).
    pub(crate) fn copy_from(&mut self, k: usize, from: &Page) {
        if k >> self.order != 0 {
            return;
        }
        // SAFETY: Page `k` is in the folio, which nothing else maps (type
        // invariant); `from` is an allocated page.
        unsafe { glue::rsva_copy_highpage_pfn(self.pfn + k, page_pfn(from)) };
    }

    fn into_pfn(self) -> usize {
        let pfn = self.pfn;
        core::mem::forget(self);
        pfn
    }
}

impl Drop for SysFolio {
    fn drop(&mut self) {
        // SAFETY: Locked, with the one reference owned here.
        unsafe { glue::rsva_pfn_unlock_put(self.pfn) };
    }
}

/// A destination of a migration.
pub(crate) enum Dst {
    /// System memory.
    Sys(SysFolio),
    /// Device-private memory.
    Device(DeviceFolio),
}

/// Which pages [`Collected::setup`] collects.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Source {
    /// System memory (`MIGRATE_VMA_SELECT_SYSTEM`), to move to a device.
    System,
    /// The device-private pages of the owner (`..._DEVICE_PRIVATE`), to
    /// move back.
    DevicePrivate,
}

/// A migration of a VMA range after `migrate_vma_setup()`: the source pages
/// are locked and unmapped (their data is stable); the driver now chooses
/// destinations ([`Collected::set_dst`]) and copies.
pub(crate) struct Collected<'a> {
    args: bindings::migrate_vma,
    arrays: Arrays<'a>,
    _vma: PhantomData<&'a VmaRef>,
}

impl<'a> Collected<'a> {
    /// `migrate_vma_setup()` over `[start, end)` of `vma` (page aligned,
    /// inside the VMA, at most `bufs.len()` pages), collecting `source`
    /// pages (for [`Source::DevicePrivate`], those of `owner`), whole PMD
    /// folios as one compound entry when `compound`. The invalidation it
    /// sends is `MMU_NOTIFY_MIGRATE` with `owner`. `vma` must come from an
    /// mmap read lock (not a per-VMA lock): the core asserts it.
    pub(crate) fn setup(
        vma: &'a VmaRef,
        start: usize,
        end: usize,
        source: Source,
        compound: bool,
        owner: Owner,
        bufs: &'a mut Buffers,
    ) -> Result<Self> {
        let flags = Self::flags(source, compound);
        Self::setup_inner(vma, start, end, flags, owner, bufs, None)
    }

    fn flags(source: Source, compound: bool) -> c_ulong {
        let mut flags = match source {
            Source::System => bindings::migrate_vma_direction_MIGRATE_VMA_SELECT_SYSTEM,
            Source::DevicePrivate => {
                bindings::migrate_vma_direction_MIGRATE_VMA_SELECT_DEVICE_PRIVATE
            }
        };
        if compound {
            flags |= bindings::migrate_vma_direction_MIGRATE_VMA_SELECT_COMPOUND;
        }
        flags as c_ulong
    }

    /// [`Collected::setup`] from a CPU fault on a device page of `owner`
    /// (which the core has locked): collects that owner's device pages of
    /// `[start, end)`, which must hold the faulting address.
    pub(crate) fn setup_fault(
        fault: &'a DeviceFault<'a>,
        start: usize,
        end: usize,
        compound: bool,
        owner: Owner,
        bufs: &'a mut Buffers,
    ) -> Result<Self> {
        if fault.address() < start || fault.address() >= end {
            return Err(EINVAL);
        }
        let page = fault.page();
        let flags = Self::flags(Source::DevicePrivate, compound);
        Self::setup_inner(fault.vma(), start, end, flags, owner, bufs, Some(page))
    }

    fn setup_inner(
        vma: &'a VmaRef,
        start: usize,
        end: usize,
        flags: c_ulong,
        owner: Owner,
        bufs: &'a mut Buffers,
        fault_page: Option<*mut bindings::page>,
    ) -> Result<Self> {
        if start >= end || (start | end) & (kernel::page::PAGE_SIZE - 1) != 0 {
            return Err(EINVAL);
        }
        let n = (end - start) >> PAGE_SHIFT;
        if n > bufs.len() {
            return Err(EINVAL);
        }
        bufs.dst[..n].fill(0);
        let mut arrays = Arrays { bufs, n };
        let (src, dst) = arrays.ptrs();
        let mut args = bindings::migrate_vma {
            vma: vma.as_ptr(),
            dst,
            src,
            cpages: 0,
            npages: 0,
            start,
            end,
            pgmap_owner: owner.as_ptr(),
            flags,
            fault_page: fault_page.unwrap_or(core::ptr::null_mut()),
        };
        // SAFETY: `args` names a VMA whose mm's mmap lock is held (a
        // `&VmaRef` for `'a`), arrays of `n` entries, and a fault page the
        // core locked, if any. On error nothing was collected.
        kernel::error::to_result(unsafe { bindings::migrate_vma_setup(&mut args) })?;
        Ok(Self {
            args,
            arrays,
            _vma: PhantomData,
        })
    }

    /// The first address.
    pub(crate) fn start(&self) -> usize {
        self.args.start
    }

    /// The number of entries.
    pub(crate) fn len(&self) -> usize {
        self.arrays.n
    }

    /// The VMA.
    pub(crate) fn vma(&self) -> &'a VmaRef {
        // SAFETY: `args.vma` came from a `&'a VmaRef`.
        unsafe { VmaRef::from_raw(self.args.vma) }
    }

    /// Source entry `i` (0 past the end).
    pub(crate) fn src(&self, i: usize) -> MigratePfn {
        self.arrays.src(i)
    }

    /// Page `k` of the source folio of entry `i`, if the entry migrates and
    /// names a page (not an empty or zero-page mapping).
    pub(crate) fn src_page(&self, i: usize, k: usize) -> Option<SrcPage<'_>> {
        self.arrays.src_page(i, k)
    }

    /// The pagemap of type `T` and owner `owner` holding the device page of
    /// source entry `i`, and its index there.
    pub(crate) fn src_device<T: PagemapOps>(
        &self,
        i: usize,
        owner: Owner,
    ) -> Option<(&Pagemap<T>, usize)> {
        let page = self.arrays.src_page(i, 0)?;
        // SAFETY: The source page is locked and referenced by the migration
        // while `self` lives.
        unsafe { Pagemap::<T>::of_pfn(owner, page.pfn()) }
    }

    /// Makes `dst` the destination of entry `i` (a migrating entry without
    /// one yet), writable if `write`: the core takes it over. False, with
    /// `dst` freed, otherwise.
    pub(crate) fn set_dst(&mut self, i: usize, dst: Dst, write: bool) -> bool {
        self.arrays.set_dst(i, dst, write)
    }

    /// `migrate_vma_pages()`: the pages with a destination move. (Dropping
    /// a [`Collected`] instead abandons the migration: nothing moves.)
    pub(crate) fn pages(mut self) -> Migrated<'a> {
        let (src, dst) = self.arrays.ptrs();
        self.args.src = src;
        self.args.dst = dst;
        // SAFETY: Collected by `migrate_vma_setup()` and not finalized.
        unsafe { bindings::migrate_vma_pages(&mut self.args) };
        let this = core::mem::ManuallyDrop::new(self);
        // SAFETY: `this` is not dropped; its fields are moved out once.
        let (args, arrays) =
            unsafe { (core::ptr::read(&this.args), core::ptr::read(&this.arrays)) };
        Migrated {
            args,
            arrays,
            _vma: PhantomData,
        }
    }
}

impl Drop for Collected<'_> {
    fn drop(&mut self) {
        // Abandoned before `migrate_vma_pages()`: nothing moved. Without
        // `MIGRATE_PFN_MIGRATE` finalize restores every source and frees
        // every destination; with it, it would map the destinations.
        let n = self.arrays.n;
        for s in &mut self.arrays.bufs.src[..n] {
            *s &= !(bindings::MIGRATE_PFN_MIGRATE as c_ulong);
        }
        let (src, dst) = self.arrays.ptrs();
        self.args.src = src;
        self.args.dst = dst;
        // SAFETY: Collected and not finalized: restores every entry, unlocks
        // and puts the pages (and frees the destinations set).
        unsafe { bindings::migrate_vma_finalize(&mut self.args) };
    }
}

/// A migration after `migrate_vma_pages()`: entry `i` moved if its source
/// still has `MIGRATE_PFN_MIGRATE`. The destinations are still locked: the
/// driver maps them in its page table now, then finalizes.
pub(crate) struct Migrated<'a> {
    args: bindings::migrate_vma,
    arrays: Arrays<'a>,
    _vma: PhantomData<&'a VmaRef>,
}

impl Migrated<'_> {
    /// The first address.
    pub(crate) fn start(&self) -> usize {
        self.args.start
    }

    /// The number of entries.
    pub(crate) fn len(&self) -> usize {
        self.arrays.n
    }

    /// Source entry `i`.
    pub(crate) fn src(&self, i: usize) -> MigratePfn {
        self.arrays.src(i)
    }

    /// Destination entry `i`.
    pub(crate) fn dst(&self, i: usize) -> MigratePfn {
        self.arrays.dst(i)
    }

    /// The entries that moved (as test_hmm counts them: valid and
    /// migrating sources).
    pub(crate) fn migrated(&self) -> usize {
        self.arrays.count_migrated()
    }

    /// The pagemap of type `T` and owner `owner` holding the device folio
    /// that entry `i` moved to, and its index there.
    pub(crate) fn dst_device<T: PagemapOps>(
        &self,
        i: usize,
        owner: Owner,
    ) -> Option<(&Pagemap<T>, usize)> {
        if !self.src(i).migrate() {
            return None;
        }
        let pfn = self.dst(i).pfn()?;
        // SAFETY: The destination is locked and referenced by the migration
        // while `self` lives.
        unsafe { Pagemap::<T>::of_pfn(owner, pfn) }
    }

    /// `migrate_vma_finalize()`.
    pub(crate) fn finalize(self) {}
}

impl Drop for Migrated<'_> {
    fn drop(&mut self) {
        let (src, dst) = self.arrays.ptrs();
        self.args.src = src;
        self.args.dst = dst;
        // SAFETY: Pages migrated and not finalized yet.
        unsafe { bindings::migrate_vma_finalize(&mut self.args) };
    }
}

/// Device pages collected by frame (`migrate_device_pfns()`), to move back
/// to system memory wherever they are mapped; the same steps as
/// [`Collected`]: destinations, [`DeviceCollected::pages`], finalize (on
/// drop).
pub(crate) struct DeviceCollected<'a> {
    arrays: Arrays<'a>,
    moved: bool,
    done: bool,
}

impl<'a> DeviceCollected<'a> {
    /// Collects pages `indices` (ascending) of `pagemap`, at most
    /// `bufs.len()`: those that are in use are locked and unmapped; a
    /// folio's first page takes the entries of the rest of it.
    pub(crate) fn pages_of<T: PagemapOps>(
        pagemap: &Pagemap<T>,
        indices: &[usize],
        bufs: &'a mut Buffers,
    ) -> Result<Self> {
        let n = indices.len();
        if n > bufs.len() || indices.iter().any(|&i| i >= pagemap.npages()) {
            return Err(EINVAL);
        }
        for (s, &i) in bufs.src.iter_mut().zip(indices) {
            *s = pagemap.pfn(i);
        }
        bufs.dst[..n].fill(0);
        let mut arrays = Arrays { bufs, n };
        let (src, _) = arrays.ptrs();
        // SAFETY: `src` holds `n` frames of a mapped device-private pagemap.
        kernel::error::to_result(unsafe { bindings::migrate_device_pfns(src, n) })?;
        Ok(Self {
            arrays,
            moved: false,
            done: false,
        })
    }

    /// Collects every page of `pagemap` (`migrate_device_range()`).
    pub(crate) fn range_of<T: PagemapOps>(
        pagemap: &Pagemap<T>,
        bufs: &'a mut Buffers,
    ) -> Result<Self> {
        let n = pagemap.npages();
        if n > bufs.len() {
            return Err(EINVAL);
        }
        bufs.dst[..n].fill(0);
        let mut arrays = Arrays { bufs, n };
        let (src, _) = arrays.ptrs();
        // SAFETY: The frames are those of a mapped device-private pagemap;
        // `src` holds `n` entries.
        kernel::error::to_result(unsafe {
            bindings::migrate_device_range(src, pagemap.pfn(0), n)
        })?;
        Ok(Self {
            arrays,
            moved: false,
            done: false,
        })
    }

    /// The number of entries.
    pub(crate) fn len(&self) -> usize {
        self.arrays.n
    }

    /// Source entry `i`.
    pub(crate) fn src(&self, i: usize) -> MigratePfn {
        self.arrays.src(i)
    }

    /// See [`Collected::src_device`].
    pub(crate) fn src_device<T: PagemapOps>(
        &self,
        i: usize,
        owner: Owner,
    ) -> Option<(&Pagemap<T>, usize)> {
        let page = self.arrays.src_page(i, 0)?;
        // SAFETY: The source page is locked and referenced by the migration
        // while `self` lives.
        unsafe { Pagemap::<T>::of_pfn(owner, page.pfn()) }
    }

    /// See [`Collected::set_dst`].
    pub(crate) fn set_dst(&mut self, i: usize, dst: SysFolio, write: bool) -> bool {
        self.arrays.set_dst(i, Dst::Sys(dst), write)
    }

    /// `migrate_device_pages()` then `migrate_device_finalize()`; returns
    /// the entries that moved.
    pub(crate) fn migrate(mut self) -> usize {
        let n = self.arrays.n;
        let (src, dst) = self.arrays.ptrs();
        // SAFETY: Collected by `migrate_device_*()` and not finalized.
        unsafe { bindings::migrate_device_pages(src, dst, n) };
        self.moved = true;
        let moved = self.arrays.count_migrated();
        self.finish();
        moved
    }

    fn finish(&mut self) {
        if self.done {
            return;
        }
        self.done = true;
        if !self.moved {
            // Abandoned: see `Collected`'s drop.
            let n = self.arrays.n;
            for s in &mut self.arrays.bufs.src[..n] {
                *s &= !(bindings::MIGRATE_PFN_MIGRATE as c_ulong);
            }
        }
        let n = self.arrays.n;
        let (src, dst) = self.arrays.ptrs();
        // SAFETY: Collected and not finalized yet (`done`).
        unsafe { bindings::migrate_device_finalize(src, dst, n) };
    }
}

impl Drop for DeviceCollected<'_> {
    fn drop(&mut self) {
        self.finish();
    }
}

#[kunit_tests(rsva_migrate)]
mod tests {
    use super::*;

    #[test]
    fn entries_decode() {
        let none = MigratePfn::default();
        assert!(!none.valid() && !none.migrate() && !none.write() && !none.compound());
        assert_eq!(none.pfn(), None);
        let e = MigratePfn::of_folio(0x1234, 0, true);
        assert!(e.valid() && e.write() && !e.compound() && !e.migrate());
        assert_eq!((e.pfn(), e.nr_pages()), (Some(0x1234), 1));
        let thp = MigratePfn::of_folio(0x200, 9, false);
        assert!(thp.valid() && !thp.write() && thp.compound());
        assert_eq!((thp.pfn(), thp.nr_pages()), (Some(0x200), PMD_NR));
    }

    #[test]
    fn destinations_only_on_migrating_entries() -> Result {
        let mut bufs = Buffers::new(4)?;
        bufs.src[1] =
            MigratePfn::of_folio(0x10, 0, false).0 | bindings::MIGRATE_PFN_MIGRATE as c_ulong;
        let mut a = Arrays {
            bufs: &mut bufs,
            n: 4,
        };
        // Entry 0 does not migrate: the folio is refused (and freed).
        let f = SysFolio::alloc(None, 0, 0, false).ok_or(ENOMEM)?;
        assert!(!a.set_dst(0, Dst::Sys(f), true));
        assert_eq!(a.dst(0), MigratePfn::default());
        // Entry 1 does, once.
        let f = SysFolio::alloc(None, 0, 0, false).ok_or(ENOMEM)?;
        assert!(a.set_dst(1, Dst::Sys(f), true));
        assert!(a.dst(1).valid() && a.dst(1).write());
        let f = SysFolio::alloc(None, 0, 0, false).ok_or(ENOMEM)?;
        assert!(!a.set_dst(1, Dst::Sys(f), false));
        // Past the end.
        let f = SysFolio::alloc(None, 0, 0, false).ok_or(ENOMEM)?;
        assert!(!a.set_dst(7, Dst::Sys(f), false));
        // The destination the core would have taken over is freed here.
        let pfn = a.dst(1).pfn().ok_or(EINVAL)?;
        // SAFETY: The folio was handed to entry 1 and nothing else has it.
        unsafe { glue::rsva_pfn_unlock_put(pfn) };
        Ok(())
    }
}
