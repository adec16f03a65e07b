// SPDX-License-Identifier: GPL-2.0

//! Device-private memory: a `struct dev_pagemap` of type
//! `MEMORY_DEVICE_PRIVATE` (`include/linux/memremap.h`).
//!
//! A device whose memory the CPU cannot address gives the kernel `struct
//! page`s for it with `memremap_pages()` over a free physical address range
//! (`request_free_mem_region()`); migration (`super::migrate`) then puts
//! those pages in a process's page table as device-private entries. The
//! core calls back into the driver through `dev_pagemap_ops`:
//!
//! - `folio_free` when the last reference to a device folio is dropped: the
//!   driver takes the pages back into its allocator. It runs in whatever
//!   context dropped the reference (under page table locks, in reclaim), so
//!   it must not sleep.
//! - `migrate_to_ram` when the CPU touches a device-private entry: the
//!   driver migrates the page back to system memory. It runs in the page
//!   fault, with the mmap lock held for reading and the faulting page
//!   locked and referenced; it may sleep and allocate.
//!
//! [`Pagemap<T>`] dispatches both to [`PagemapOps`] implemented by `T`, the
//! driver's data of one pagemap (here: one chunk of device memory).

use core::{marker::PhantomData, num::NonZeroUsize, ptr::NonNull};

use kernel::{
    bindings,
    mm::virt::VmaRef,
    page::Page,
    prelude::*,
    sync::atomic::{Atomic, Full, Relaxed},
    types::Opaque,
};

use crate::kext::{glue, mm::interval_notifier::HmmPfn};

/// The identity of a device, as the core compares it: the `owner` of its
/// private memory (`dev_pagemap.owner`, which `hmm_range.dev_private_owner`
/// and `migrate_vma.pgmap_owner` are compared with), and the `owner` of the
/// invalidations its own requests cause (`MMU_NOTIFY_MIGRATE`,
/// `MMU_NOTIFY_EXCLUSIVE`), by which its mmu notifier recognises them.
/// Only compared and passed to the core, never dereferenced; never null.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Owner(NonZeroUsize);

impl Owner {
    /// The owner named by the address of `anchor`, which must not move
    /// while pages of that owner exist (it lives in a pinned allocation) for
    /// the identity to stay unique. A wrong anchor only makes owners
    /// compare wrongly: nothing is dereferenced through it.
    pub(crate) fn of<A>(anchor: &A) -> Self {
        Self(NonNull::from(anchor).addr())
    }

    /// The owner named by `token`, which must differ from the owner of
    /// every other device that may work on the same mm (a driver's own
    /// pointer, or a number no kernel pointer can be).
    pub(crate) const fn new(token: NonZeroUsize) -> Self {
        Self(token)
    }

    /// The pointer the core compares.
    pub(crate) fn as_ptr(self) -> *mut c_void {
        core::ptr::without_provenance_mut(self.0.get())
    }

    /// The owner `p` names, if not null.
    pub(crate) fn from_ptr(p: *mut c_void) -> Option<Self> {
        NonZeroUsize::new(p.addr()).map(Self)
    }

    /// The owner of `range` when it is the conversion of a page to a
    /// device-exclusive entry (`MMU_NOTIFY_EXCLUSIVE`); `None` for any other
    /// event, or a conversion without an owner.
    ///
    /// # Safety
    ///
    /// `range` must be valid for reads during the call (the range an mmu
    /// notifier callback is given is, while the callback runs).
    pub(crate) unsafe fn of_exclusive_range(
        range: *const bindings::mmu_notifier_range,
    ) -> Option<Self> {
        // SAFETY: The caller guarantees that `range` is valid for reads.
        let (event, owner) = unsafe { ((*range).event, (*range).owner) };
        if event != bindings::mmu_notifier_event_MMU_NOTIFY_EXCLUSIVE {
            return None;
        }
        Self::from_ptr(owner)
    }

    /// The owner of `range` when it is a migration of device memory
    /// (`MMU_NOTIFY_MIGRATE`); `None` for any other event, or a migration
    /// without an owner.
    ///
    /// # Safety
    ///
    /// `range` must be valid for reads during the call (the range an mmu
    /// notifier callback is given is, while the callback runs).
    pub(crate) unsafe fn of_migrate_range(
        range: *const bindings::mmu_notifier_range,
    ) -> Option<Self> {
        // SAFETY: The caller guarantees that `range` is valid for reads.
        let (event, owner) = unsafe { ((*range).event, (*range).owner) };
        if event != bindings::mmu_notifier_event_MMU_NOTIFY_MIGRATE {
            return None;
        }
        Self::from_ptr(owner)
    }
}

/// What a CPU fault on a device page returns when it cannot migrate the
/// page back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FaultError {
    /// No system memory (`VM_FAULT_OOM`).
    Oom,
    /// The migration could not be set up (`VM_FAULT_SIGBUS`).
    Sigbus,
}

/// The callbacks of a [`Pagemap<T>`], implemented by its data `T`.
pub(crate) trait PagemapOps: Sized + Send + Sync + 'static {
    /// The device folio of `1 << order` pages at page `index` of `pagemap`
    /// lost its last reference: the pages are free again and may be handed
    /// out by [`Pagemap::init_folio`] (the pagemap counts them free before
    /// this call). The data the implementation keeps for the pages (the
    /// system pages holding their contents) may be freed here and only here:
    /// a mirror may cache its frames while the device pages are mapped. Called in any context (under
    /// spinlocks, in reclaim): must not sleep.
    fn folio_free(pagemap: &Pagemap<Self>, index: usize, order: u32);

    /// The CPU touched a device page of `pagemap` (`fault`), which is
    /// locked and referenced during the call; the implementation
    /// migrates it (and any neighbours it chooses) back to system memory.
    /// Runs in the page fault with the mmap lock held for reading: may
    /// sleep and allocate, must not take the mmap lock.
    fn migrate_to_ram(pagemap: &Pagemap<Self>, fault: &DeviceFault<'_>) -> Result<(), FaultError>;
}

/// A `MEMORY_DEVICE_PRIVATE` pagemap over a free iomem region, with the
/// driver's data `T` that its callbacks reach.
///
/// It holds the iomem region (`request_free_mem_region()`) and the
/// `memremap_pages()` mapping of it. Dropping it calls `memunmap_pages()`,
/// which waits until every page of it has been freed (`folio_free`), then
/// releases the region: its owner must have migrated every page back to
/// system memory first, or the drop blocks until the processes mapping them
/// unmap them.
///
/// # Invariants
///
/// `pgmap` was set up by [`Pagemap::new`] (type `MEMORY_DEVICE_PRIVATE`, one
/// range `[start, start + size)` of the region it requested, `ops` pointing
/// to [`Pagemap::OPS`]) and is mapped by `memremap_pages()` until drop.
/// `out` has a bit per page, set from [`Pagemap::init_folio`] until the
/// core's `folio_free` of the folio: a page whose bit is clear is free.
#[pin_data(PinnedDrop)]
pub(crate) struct Pagemap<T: PagemapOps> {
    #[pin]
    data: T,
    #[pin]
    pgmap: Opaque<bindings::dev_pagemap>,
    start: u64,
    size: usize,
    owner: Owner,
    out: KVVec<Atomic<u64>>,
}

// SAFETY: The C part is used by the core from any thread; `T` is `Send`.
unsafe impl<T: PagemapOps> Send for Pagemap<T> {}
// SAFETY: Shared access reaches `T` (`Sync`) and constant fields.
unsafe impl<T: PagemapOps> Sync for Pagemap<T> {}

const PAGE_SHIFT: u32 = kernel::page::PAGE_SHIFT as u32;

impl<T: PagemapOps> Pagemap<T> {
    const OPS: bindings::dev_pagemap_ops = bindings::dev_pagemap_ops {
        folio_free: Some(Self::folio_free_cb),
        migrate_to_ram: Some(Self::migrate_to_ram_cb),
        memory_failure: None,
        // Without a split callback the core gives the new folios the
        // pagemap and mapping of the old one, which is all `T` needs: it
        // keys its per-page state by index, not by `zone_device_data`.
        folio_split: None,
    };

    /// Requests a free iomem region of `size` bytes (named `name` in
    /// `/proc/iomem`) and maps it as device-private pages of `owner`, whose
    /// callbacks reach `data`. `size` must be a multiple of the memory
    /// section size (128 MiB on x86-64).
    pub(crate) fn new(
        size: usize,
        name: &'static CStr,
        owner: Owner,
        data: impl PinInit<T, Error>,
    ) -> impl PinInit<Self, Error> {
        let init = move |slot: *mut Self| -> Result {
            let words = (size >> PAGE_SHIFT).div_ceil(64);
            let mut out = KVVec::with_capacity(words, GFP_KERNEL)?;
            for _ in 0..words {
                out.push(Atomic::new(0u64), GFP_KERNEL)?;
            }
            let mut start = 0u64;
            // SAFETY: `name` is a static string; `start` is written on
            // success.
            let ret =
                unsafe { glue::rsva_devmem_region_request(size, name.as_char_ptr(), &mut start) };
            if ret < 0 {
                return Err(Error::from_errno(ret as c_int));
            }
            // SAFETY: `slot` is valid for writes (pin-init contract).
            let data_slot = unsafe { &raw mut (*slot).data };
            // SAFETY: `data_slot` is valid and pinned; on error it is
            // left uninitialised, which `__init` allows.
            if let Err(e) = unsafe { data.__init(data_slot) } {
                // SAFETY: Requested just above.
                unsafe { glue::rsva_devmem_region_release(start, size) };
                return Err(e);
            }
            // SAFETY: `slot` is valid for writes.
            let pgmap = Opaque::cast_into(unsafe { &raw const (*slot).pgmap });
            // SAFETY: `pgmap` is valid for writes and pinned; the fields are
            // set before `memremap_pages()` reads them.
            let ret = unsafe {
                core::ptr::write_bytes(pgmap, 0, 1);
                (*pgmap).type_ = bindings::memory_type_MEMORY_DEVICE_PRIVATE;
                (*pgmap).nr_range = 1;
                *(*pgmap).__bindgen_anon_1.range.as_mut() = bindings::range {
                    start,
                    end: start + size as u64 - 1,
                };
                (*pgmap).ops = &Self::OPS;
                (*pgmap).owner = owner.as_ptr();
                (&raw mut (*slot).start).write(start);
                (&raw mut (*slot).size).write(size);
                (&raw mut (*slot).owner).write(owner);
                (&raw mut (*slot).out).write(out);
                bindings::memremap_pages(pgmap, bindings::NUMA_NO_NODE)
            };
            let err = kernel::error::from_err_ptr(ret)
                .err()
                .or(ret.is_null().then_some(EFAULT));
            if let Some(e) = err {
                // SAFETY: Initialised above and not handed out.
                unsafe { core::ptr::drop_in_place(data_slot) };
                // SAFETY: Written above; nothing else refers to it.
                unsafe { core::ptr::drop_in_place(&raw mut (*slot).out) };
                // SAFETY: Requested above; not mapped.
                unsafe { glue::rsva_devmem_region_release(start, size) };
                return Err(e);
            }
            // INVARIANT: set up and mapped just above.
            Ok(())
        };
        // SAFETY: On success every field is initialised; on failure nothing
        // is left to drop and the region is released.
        unsafe { pin_init::pin_init_from_closure(init) }
    }

    /// The driver's data.
    pub(crate) fn data(&self) -> &T {
        &self.data
    }

    /// The owner the pages were mapped with.
    pub(crate) fn owner(&self) -> Owner {
        self.owner
    }

    /// The number of pages.
    pub(crate) fn npages(&self) -> usize {
        self.size >> PAGE_SHIFT
    }

    /// The frame number of page `index`.
    pub(crate) fn pfn(&self, index: usize) -> usize {
        (self.start >> PAGE_SHIFT) as usize + index
    }

    fn raw(&self) -> *mut bindings::dev_pagemap {
        self.pgmap.get()
    }

    /// Hands out the free pages `[index, index + (1 << order))` as one
    /// device folio: locked, with one reference, which [`DeviceFolio`]
    /// holds (and which migration takes over). `None`, handing out
    /// nothing, when `index` is not aligned to `1 << order`, the run is not
    /// in the pagemap, or a page of it is not free (handed out, and the
    /// core's `folio_free` of its folio did not come yet).
    pub(crate) fn init_folio(&self, index: usize, order: u32) -> Option<DeviceFolio> {
        let n = 1usize.checked_shl(order)?;
        if index % n != 0 || index.checked_add(n)? > self.npages() {
            return None;
        }
        if !self.mark_out(index, n) {
            return None;
        }
        let pfn = self.pfn(index);
        // SAFETY: The pages are this mapped pagemap's (type invariant:
        // mapped until drop) and were free: their bits were clear, and are
        // set now until their `folio_free`.
        unsafe { glue::rsva_zone_device_folio_init(pfn, self.raw(), order) };
        // INVARIANT: just initialised: locked, one reference.
        Some(DeviceFolio { pfn, order })
    }

    /// The bits of pages `[index, index + n)` (a run aligned to `n`, a power
    /// of two): `(word, mask)` per word they touch.
    fn bits(index: usize, n: usize) -> impl Iterator<Item = (usize, u64)> {
        let (first, last) = (index / 64, (index + n - 1) / 64);
        (first..=last).map(move |w| {
            let mask = if n >= 64 {
                u64::MAX
            } else {
                ((1u64 << n) - 1) << (index % 64)
            };
            (w, mask)
        })
    }

    /// Sets the bits of the free pages `[index, index + n)`; false, setting
    /// none, when one is set.
    fn mark_out(&self, index: usize, n: usize) -> bool {
        for (w, mask) in Self::bits(index, n) {
            let set = self.out.get(w).is_some_and(|word| {
                Self::update(word, |old| (old & mask == 0).then_some(old | mask))
            });
            if !set {
                // Undoes what this call set, in the words before this one.
                for (u, m) in Self::bits(index, n).take_while(|&(u, _)| u < w) {
                    if let Some(word) = self.out.get(u) {
                        Self::update(word, |old| Some(old & !m));
                    }
                }
                return false;
            }
        }
        true
    }

    /// Clears the bits of pages `[index, index + n)`: they are free.
    fn mark_free(&self, index: usize, n: usize) {
        for (w, mask) in Self::bits(index, n) {
            if let Some(word) = self.out.get(w) {
                Self::update(word, |old| Some(old & !mask));
            }
        }
    }

    /// Replaces `word` by `f(word)` atomically; false, changing nothing,
    /// when `f` returns `None`.
    fn update(word: &Atomic<u64>, f: impl Fn(u64) -> Option<u64>) -> bool {
        let mut old = word.load(Relaxed);
        loop {
            let Some(new) = f(old) else {
                return false;
            };
            match word.cmpxchg(old, new, Full) {
                Ok(_) => return true,
                Err(now) => old = now,
            }
        }
    }

    /// Whether page `index` is handed out (its folio not freed yet).
    pub(crate) fn is_out(&self, index: usize) -> bool {
        self.out
            .get(index / 64)
            .is_some_and(|w| w.load(Relaxed) & (1 << (index % 64)) != 0)
    }

    /// The pagemap of type `Pagemap<T>` and owner `owner` that the
    /// device-private page of `e` belongs to, and the page's index in it,
    /// for as long as `e` borrows its notifier's lock (the page is mapped).
    pub(crate) fn of_hmm_pfn<'a>(owner: Owner, e: HmmPfn<'a>) -> Option<(&'a Self, usize)> {
        let pfn = e.pfn()?;
        // SAFETY: The frame of a valid `HmmPfn` is mapped and stays
        // allocated while the entry borrows the lock (its type invariant).
        unsafe { Self::of_pfn(owner, pfn) }
    }

    /// The pagemap of type `Pagemap<T>` and owner `owner` that the
    /// device-private page `pfn` belongs to, and the page's index in it.
    ///
    /// # Safety
    ///
    /// `pfn` is a valid frame that stays allocated for `'a` (the caller
    /// holds a reference, the page lock, or the lock of a mirror that an
    /// invalidation would take before the page could be unmapped).
    pub(super) unsafe fn of_pfn<'a>(owner: Owner, pfn: usize) -> Option<(&'a Self, usize)> {
        // SAFETY: A valid frame, by the safety requirements.
        let pgmap = unsafe { glue::rsva_pfn_device_private_pgmap(pfn) };
        if pgmap.is_null() {
            return None;
        }
        // SAFETY: The page's pagemap lives while the page does.
        let (ops, pg_owner) = unsafe { ((*pgmap).ops, (*pgmap).owner) };
        let free = if ops.is_null() {
            None
        } else {
            // SAFETY: A pagemap's ops are valid while it is mapped.
            unsafe { (*ops).folio_free }
        };
        // The callbacks identify a `Pagemap<T>` (the kernel is built with one
        // codegen unit, so a function has one address); the owner, the
        // device.
        let is_ours = free.map(|f| f as usize) == Some(Self::folio_free_cb as usize)
            && Owner::from_ptr(pg_owner) == Some(owner);
        if !is_ours {
            return None;
        }
        // SAFETY: `pgmap` is the `pgmap` field of a `Pagemap<T>` (its ops are
        // `Pagemap<T>`'s), alive while its page is.
        let this = unsafe {
            &*kernel::container_of!(pgmap.cast::<Opaque<bindings::dev_pagemap>>(), Self, pgmap)
        };
        let index = pfn.checked_sub(this.pfn(0))?;
        (index < this.npages()).then_some((this, index))
    }

    /// `dev_pagemap_ops.folio_free`.
    ///
    /// # Safety
    ///
    /// Called by the core with a folio of a pagemap set up by
    /// [`Pagemap::new`] with these ops.
    unsafe extern "C" fn folio_free_cb(folio: *mut bindings::folio) {
        // SAFETY: The core passes a valid device folio.
        let (pgmap, pfn, order) = unsafe {
            (
                glue::rsva_folio_pgmap(folio),
                glue::rsva_folio_pfn(folio),
                glue::rsva_folio_order(folio),
            )
        };
        // SAFETY: The folio's pagemap is the `pgmap` of a live `Pagemap<T>`:
        // ours are the only ones with these ops, and `memunmap_pages()` in
        // drop waits for every page's `folio_free`.
        let this = unsafe {
            &*kernel::container_of!(pgmap.cast::<Opaque<bindings::dev_pagemap>>(), Self, pgmap)
        };
        let index = pfn - this.pfn(0);
        // Free from now on: `T` may hand the pages out again at once.
        this.mark_free(index, 1 << order);
        T::folio_free(this, index, order);
    }

    /// `dev_pagemap_ops.migrate_to_ram`.
    ///
    /// # Safety
    ///
    /// Called by the core's page fault with a fault on a device-private
    /// page of a pagemap set up by [`Pagemap::new`] with these ops, locked
    /// and referenced, the mmap lock held for reading.
    unsafe extern "C" fn migrate_to_ram_cb(vmf: *mut bindings::vm_fault) -> bindings::vm_fault_t {
        // SAFETY: The core passes a valid fault on a referenced page.
        let pfn = unsafe { glue::rsva_vmf_pfn(vmf) };
        // SAFETY: `pfn` is the faulting page's, which the fault references.
        let pgmap = unsafe { glue::rsva_pfn_device_private_pgmap(pfn) };
        // SAFETY: The page's pagemap is the `pgmap` of a live `Pagemap<T>`
        // (these ops are only ours); the page's reference keeps it mapped.
        let this = unsafe {
            &*kernel::container_of!(pgmap.cast::<Opaque<bindings::dev_pagemap>>(), Self, pgmap)
        };
        let fault = DeviceFault {
            vmf,
            pfn,
            _p: PhantomData,
        };
        match T::migrate_to_ram(this, &fault) {
            Ok(()) => 0,
            Err(FaultError::Oom) => bindings::vm_fault_reason_VM_FAULT_OOM,
            Err(FaultError::Sigbus) => bindings::vm_fault_reason_VM_FAULT_SIGBUS,
        }
    }
}

#[pinned_drop]
impl<T: PagemapOps> PinnedDrop for Pagemap<T> {
    fn drop(self: Pin<&mut Self>) {
        // SAFETY: Mapped by `new` (type invariant); waits for the last page
        // to be freed, after which no callback runs.
        unsafe { bindings::memunmap_pages(self.raw()) };
        // SAFETY: Requested by `new`, no longer mapped.
        unsafe { glue::rsva_devmem_region_release(self.start, self.size) };
    }
}

/// The frame of `page`.
pub(crate) fn page_pfn(page: &Page) -> usize {
    // SAFETY: `page` is an allocated page.
    unsafe { glue::rsva_page_pfn(page.as_ptr()) }
}

/// A device folio just handed out by [`Pagemap::init_folio`]: locked, with
/// the one reference it was handed out with, owned here. Dropping it
/// unlocks it and drops that reference, which gives the pages back through
/// [`PagemapOps::folio_free`]; migration takes both over instead
/// (`super::migrate`).
///
/// # Invariants
///
/// `pfn` is the first page of a locked device folio of `order` whose
/// reference this object owns.
pub(crate) struct DeviceFolio {
    pfn: usize,
    order: u32,
}

impl DeviceFolio {
    /// The first frame.
    pub(crate) fn pfn(&self) -> usize {
        self.pfn
    }

    /// log2 of the number of pages.
    pub(crate) fn order(&self) -> u32 {
        self.order
    }

    /// Gives up the lock and the reference to the caller, who hands them to
    /// the core: the first frame.
    pub(crate) fn into_pfn(self) -> usize {
        let pfn = self.pfn;
        core::mem::forget(self);
        pfn
    }
}

impl Drop for DeviceFolio {
    fn drop(&mut self) {
        // SAFETY: Locked and referenced, owned here (type invariant).
        unsafe { glue::rsva_pfn_unlock_put(self.pfn) };
    }
}

/// A CPU fault on a device-private page, given to
/// [`PagemapOps::migrate_to_ram`]. Valid for the call: the fault holds the
/// mmap lock for reading and the page's lock and a reference.
pub(crate) struct DeviceFault<'a> {
    vmf: *mut bindings::vm_fault,
    pfn: usize,
    _p: PhantomData<&'a ()>,
}

impl<'a> DeviceFault<'a> {
    /// log2 of the number of pages of the faulting page's folio.
    pub(crate) fn folio_order(&self) -> u32 {
        // SAFETY: The page is referenced during the call.
        unsafe { glue::rsva_pfn_folio_order(self.pfn) }
    }

    /// The faulting address.
    pub(crate) fn address(&self) -> usize {
        // SAFETY: `vmf` is valid during the call.
        unsafe { glue::rsva_vmf_address(self.vmf) }
    }

    /// Whether the page is mapped by a PTE (not a PMD): only that page may
    /// migrate then, whatever its folio's order.
    pub(crate) fn pte_mapped(&self) -> bool {
        // SAFETY: `vmf` is valid during the call.
        unsafe { glue::rsva_vmf_pte_mapped(self.vmf) }
    }

    /// The faulting VMA, whose mm's mmap lock is held for reading.
    pub(crate) fn vma(&self) -> &'a VmaRef {
        // SAFETY: The fault holds the mmap lock for reading during the call.
        unsafe { VmaRef::from_raw(glue::rsva_vmf_vma(self.vmf)) }
    }

    /// The faulting page, locked and referenced, for `migrate_vma.fault_page`.
    pub(super) fn page(&self) -> *mut bindings::page {
        // SAFETY: `vmf` is valid during the call.
        unsafe { glue::rsva_vmf_page(self.vmf) }
    }
}

/// The owner of the device-private page `pfn`, or `None` for a page of
/// system memory.
///
/// # Safety
///
/// As [`Pagemap::of_pfn`]: `pfn` is a valid frame that stays allocated
/// during the call.
pub(super) unsafe fn device_private_owner(pfn: usize) -> Option<Owner> {
    // SAFETY: A valid frame, by the safety requirements.
    let pgmap = unsafe { glue::rsva_pfn_device_private_pgmap(pfn) };
    if pgmap.is_null() {
        return None;
    }
    // SAFETY: The page's pagemap lives while the page does.
    Owner::from_ptr(unsafe { (*pgmap).owner })
}

#[kunit_tests(rsva_pagemap)]
mod tests {
    use super::*;
    use kernel::sync::atomic::{Atomic, Relaxed};

    /// Records the frees.
    struct Frees {
        count: Atomic<usize>,
        last: Atomic<usize>,
    }

    impl PagemapOps for Frees {
        fn folio_free(pagemap: &Pagemap<Self>, index: usize, order: u32) {
            let d = pagemap.data();
            d.count.fetch_add(1, Relaxed);
            d.last.store(index << 8 | order as usize, Relaxed);
        }

        fn migrate_to_ram(_: &Pagemap<Self>, _: &DeviceFault<'_>) -> Result<(), FaultError> {
            Err(FaultError::Sigbus)
        }
    }

    /// One memory section: the smallest pagemap.
    const SIZE: usize = 128 << 20;

    #[test]
    fn pages_are_handed_out_found_and_freed() -> Result {
        let anchor = KBox::new(0u8, GFP_KERNEL)?;
        let owner = Owner::of(&*anchor);
        let other = Owner::of(&owner);
        let pm = KBox::pin_init(
            Pagemap::new(
                SIZE,
                c"rsva_kunit",
                owner,
                Ok::<_, Error>(Frees {
                    count: Atomic::new(0),
                    last: Atomic::new(0),
                }),
            ),
            GFP_KERNEL,
        )?;
        assert_eq!(pm.npages(), SIZE >> PAGE_SHIFT);
        assert_eq!(pm.owner(), owner);

        let page = pm.init_folio(3, 0).ok_or(EINVAL)?;
        assert_eq!((page.pfn(), page.order()), (pm.pfn(3), 0));
        assert!(pm.is_out(3) && !pm.is_out(2) && !pm.is_out(4));
        // A page handed out is not handed out again, alone or in a folio;
        // nor is a misaligned or out-of-range run.
        assert!(pm.init_folio(3, 0).is_none());
        assert!(pm.init_folio(0, 9).is_none());
        assert!(pm.init_folio(1, 1).is_none());
        assert!(pm.init_folio(pm.npages(), 0).is_none());
        assert!(pm.init_folio(pm.npages() - 256, 9).is_none());
        // The refused folio left no page marked.
        assert!(!pm.is_out(0) && !pm.is_out(511));
        // SAFETY: The folio is referenced (`page`) during the calls.
        let found = unsafe { Pagemap::<Frees>::of_pfn(owner, page.pfn()) };
        assert!(found.is_some_and(|(p, i)| core::ptr::eq(p, &*pm) && i == 3));
        // SAFETY: The folio is referenced (`page`) during the call.
        assert!(unsafe { Pagemap::<Frees>::of_pfn(other, page.pfn()) }.is_none());
        // SAFETY: The folio is referenced (`page`) during the call.
        assert_eq!(unsafe { device_private_owner(page.pfn()) }, Some(owner));
        // A page of system memory is nobody's device page.
        let sys = kernel::page::Page::alloc_page(GFP_KERNEL)?;
        let sys_pfn = page_pfn(&sys);
        // SAFETY: `sys` is allocated during the calls.
        assert_eq!(unsafe { device_private_owner(sys_pfn) }, None);
        // SAFETY: `sys` is allocated during the call.
        assert!(unsafe { Pagemap::<Frees>::of_pfn(owner, sys_pfn) }.is_none());

        // Dropping the reference gives the page back, through the callback.
        drop(page);
        assert!(!pm.is_out(3));
        assert_eq!(pm.data().count.load(Relaxed), 1);
        assert_eq!(pm.data().last.load(Relaxed), 3 << 8);

        // A PMD-sized folio is one folio, freed as one.
        let thp = pm.init_folio(512, 9).ok_or(EINVAL)?;
        assert!(pm.is_out(512) && pm.is_out(1023) && !pm.is_out(1024));
        assert!(pm.init_folio(1000, 0).is_none());
        // SAFETY: `thp` is referenced during the call.
        assert_eq!(unsafe { glue::rsva_pfn_folio_order(thp.pfn() + 7) }, 9);
        drop(thp);
        assert_eq!(pm.data().count.load(Relaxed), 2);
        assert_eq!(pm.data().last.load(Relaxed), 512 << 8 | 9);

        // The same page is handed out again after its free.
        drop(pm.init_folio(3, 0).ok_or(EINVAL)?);
        assert_eq!(pm.data().count.load(Relaxed), 3);
        // `memunmap_pages()`: every page is free, so it does not wait.
        drop(pm);
        Ok(())
    }
}
