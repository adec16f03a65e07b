// SPDX-License-Identifier: GPL-2.0

//! A mirror device's memory, as test_hmm simulates it: device-private pages
//! in chunks of [`CHUNK_SIZE`] (one [`Pagemap`] each, added when the free
//! pages run out), an allocator of single pages and of PMD-sized folios,
//! and for every page handed out a system page that holds its data (the
//! device cannot really be written; test_hmm keeps the same page in
//! `zone_device_data`, here it is kept by index in the chunk).
//!
//! Lifetimes:
//!
//! - A device page is free (in its chunk's free lists) or handed out. It is
//!   handed out by [`DeviceMemory::alloc`] as a locked [`DeviceFolio`] with
//!   one reference, together with its backing pages, which the chunk keeps
//!   from then on; the reference goes to a migration, which leaves it to
//!   the process's page table (or drops it if the page did not move).
//! - When the last reference goes (the process unmapped it, exited, or the
//!   page was migrated back), the core calls `folio_free`
//!   ([`PagemapOps::folio_free`]): the chunk frees the backing pages and
//!   puts the device pages back in its free lists. It may run in atomic
//!   context, so it only takes the chunk's spinlock.
//! - A chunk lives while its [`DeviceMemory`] keeps it and while an eviction
//!   holds it; its pagemap is unmapped (`memunmap_pages()`) only after
//!   every page of it has been freed: [`DeviceMemory::release`] migrates
//!   every page in use back to system memory first
//!   (`migrate_device_pfns()`), as often as needed.

#![forbid(unsafe_code)]

use kernel::{
    new_mutex, new_spinlock,
    page::{Page, PAGE_SIZE},
    prelude::*,
    sync::{Arc, Mutex, SpinLock},
    time::{delay::fsleep, Delta},
};

use crate::kext::mm::{
    interval_notifier::HmmPfn,
    migrate::{Buffers, DeviceCollected, SysFolio, PMD_NR},
    pagemap::{DeviceFolio, Owner, Pagemap},
};

/// The size of a chunk of device memory (test_hmm's `DEVMEM_CHUNK_SIZE`).
pub(crate) const CHUNK_SIZE: usize = 256 << 20;

/// Pages of a chunk.
const CHUNK_PAGES: usize = CHUNK_SIZE / PAGE_SIZE;

/// The order of a PMD-sized folio.
pub(crate) const PMD_ORDER: u32 = 9;

/// The allocator state of one chunk.
///
/// # Invariants
///
/// Every page of the chunk is in exactly one of: `free_small` (one page),
/// a block of `free_large` (the [`PMD_NR`] pages from a `PMD_NR`-aligned
/// index), or handed out, in which case `backing` holds its system page;
/// `in_use` counts the pages handed out. The free lists never grow beyond
/// their capacity (`CHUNK_PAGES` and `CHUNK_PAGES / PMD_NR`).
struct ChunkState {
    free_small: KVVec<u32>,
    free_large: KVVec<u32>,
    backing: KVVec<Option<Page>>,
    in_use: usize,
}

impl ChunkState {
    /// Every page free, in PMD-sized blocks (handed out lowest first).
    fn new() -> Result<Self> {
        let mut free_large = KVVec::with_capacity(CHUNK_PAGES / PMD_NR, GFP_KERNEL)?;
        for block in (0..CHUNK_PAGES / PMD_NR).rev() {
            free_large.push((block * PMD_NR) as u32, GFP_KERNEL)?;
        }
        let mut backing = KVVec::with_capacity(CHUNK_PAGES, GFP_KERNEL)?;
        for _ in 0..CHUNK_PAGES {
            backing.push(None, GFP_KERNEL)?;
        }
        // INVARIANT: every page is in a free block.
        Ok(Self {
            free_small: KVVec::with_capacity(CHUNK_PAGES, GFP_KERNEL)?,
            free_large,
            backing,
            in_use: 0,
        })
    }

    /// A free index for a folio of [`PMD_NR`] pages (`large`) or of one,
    /// splitting a block for a page when no single page is free.
    fn take(&mut self, large: bool) -> Option<usize> {
        if large {
            return self.free_large.pop().map(|i| i as usize);
        }
        if let Some(i) = self.free_small.pop() {
            return Some(i as usize);
        }
        let block = self.free_large.pop()?;
        for k in (1..PMD_NR as u32).rev() {
            // Within capacity (type invariant): cannot fail.
            let _ = self.free_small.push_within_capacity(block + k);
        }
        Some(block as usize)
    }
}

/// One chunk of device memory: the data of its [`Pagemap`].
#[pin_data]
pub(crate) struct Chunk {
    #[pin]
    state: SpinLock<ChunkState>,
}

impl Chunk {
    fn new() -> Result<impl PinInit<Self, Error>> {
        let state = ChunkState::new()?;
        Ok(try_pin_init!(Self {
            state <- new_spinlock!(state),
        }? Error))
    }

    /// Hands out a free index for the pages of `backing` and keeps them as
    /// their data; gives `backing` back when no such run is free.
    fn take(&self, backing: Backing) -> core::result::Result<usize, Backing> {
        let n = backing.len();
        let mut s = self.state.lock();
        let Some(index) = s.take(n == PMD_NR) else {
            return Err(backing);
        };
        match backing {
            Backing::Page(page) => {
                if let Some(slot) = s.backing.get_mut(index) {
                    *slot = Some(page);
                }
            }
            Backing::Pmd(mut pages) => {
                for k in (0..n).rev() {
                    if let Some(slot) = s.backing.get_mut(index + k) {
                        *slot = pages.pop();
                    }
                }
            }
        }
        // INVARIANT: the pages left the free lists and have backing pages.
        s.in_use += n;
        Ok(index)
    }

    /// The pages handed out.
    fn in_use(&self) -> usize {
        self.state.lock().in_use
    }

    /// The indices of the pages handed out, ascending (a folio's pages
    /// together), at most as many as there were when the call began.
    fn in_use_indices(&self) -> Result<KVVec<usize>> {
        let n = self.in_use();
        let mut out = KVVec::with_capacity(n, GFP_KERNEL)?;
        let s = self.state.lock();
        for (i, b) in s.backing.iter().enumerate() {
            if b.is_some() && out.push_within_capacity(i).is_err() {
                break;
            }
        }
        Ok(out)
    }

    /// Calls `f` with the system page holding the data of page `index`
    /// (under the chunk's spinlock: `f` must not sleep); false if the page
    /// is not handed out. The page is freed only by [`Chunk::folio_free`]
    /// (the contract of `PagemapOps::folio_free`).
    pub(crate) fn with_backing(&self, index: usize, f: &mut dyn FnMut(&Page)) -> bool {
        let s = self.state.lock();
        match s.backing.get(index) {
            Some(Some(page)) => {
                f(page);
                true
            }
            _ => false,
        }
    }

    /// Copies the data of page `index` into page `k` of `to`.
    pub(crate) fn copy_out(&self, index: usize, to: &mut SysFolio, k: usize) {
        let s = self.state.lock();
        if let Some(Some(page)) = s.backing.get(index) {
            to.copy_from(k, page);
        }
    }
}

impl Chunk {
    /// `folio_free`: the device folio at `index`, of `1 << order` pages,
    /// was freed; its data pages go and it returns to the free lists.
    /// Any context (chunk spinlock only).
    pub(crate) fn folio_free(&self, index: usize, order: u32) {
        let n = 1usize << order;
        let mut s = self.state.lock();
        for slot in s.backing.iter_mut().skip(index).take(n) {
            // Freed here: `__free_pages()` may run in atomic context.
            *slot = None;
        }
        s.in_use = s.in_use.saturating_sub(n);
        // INVARIANT: the pages go back to the free lists, within capacity.
        if n == PMD_NR {
            let _ = s.free_large.push_within_capacity(index as u32);
        } else {
            for k in 0..n {
                let _ = s.free_small.push_within_capacity((index + k) as u32);
            }
        }
    }
}

/// The device-private page of `e`, if it is one of `owner`'s, read through
/// the system page holding its data: calls `f` with that page and returns
/// true (a mirror's [`crate::mirror::hmm::BackingOf`]). `e` borrows the
/// mirror's lock: the page is mapped.
pub(crate) fn backing_of(owner: Owner, e: HmmPfn<'_>, f: &mut dyn FnMut(&Page)) -> bool {
    let Some((pagemap, index)) = Pagemap::<Chunk>::of_hmm_pfn(owner, e) else {
        return false;
    };
    pagemap.data().with_backing(index, f)
}

/// The system pages that hold the data of a device folio: one page, or
/// [`PMD_NR`] in order.
pub(crate) enum Backing {
    /// For a single device page.
    Page(Page),
    /// For a PMD-sized device folio.
    Pmd(KVec<Page>),
}

impl Backing {
    fn len(&self) -> usize {
        match self {
            Backing::Page(_) => 1,
            Backing::Pmd(pages) => pages.len(),
        }
    }
}

/// The chunks of a device's memory, under their mutex.
type Chunks = Mutex<KVec<Arc<Pagemap<Chunk>>>>;

/// The memory of one mirror device, whose owner identity is the address of
/// its (boxed) list of chunks. Dropping it gives every chunk up
/// ([`DeviceMemory::release`]).
pub(crate) struct DeviceMemory {
    chunks: Pin<KBox<Chunks>>,
    name: &'static CStr,
}

impl DeviceMemory {
    /// No memory yet; chunks are named `name` in `/proc/iomem`.
    pub(crate) fn new(name: &'static CStr) -> Result<Self> {
        Ok(Self {
            chunks: KBox::pin_init(new_mutex!(KVec::new()), GFP_KERNEL)?,
            name,
        })
    }

    /// The owner of the device's pages: the address of the list of chunks,
    /// which does not move while the device memory lives.
    pub(crate) fn owner(&self) -> Owner {
        Owner::of(&*self.chunks)
    }

    /// The number of chunks.
    pub(crate) fn chunks(&self) -> usize {
        self.chunks.lock().len()
    }

    /// The pages handed out, in the chunks the device has.
    pub(crate) fn in_use(&self) -> usize {
        self.chunks.lock().iter().map(|c| c.data().in_use()).sum()
    }

    /// A device folio of [`PMD_NR`] pages or of one, whose data are the
    /// pages `backing`: from a chunk with a free run, else from a new chunk.
    /// `ENOMEM` when no chunk can be added.
    pub(crate) fn alloc(&self, mut backing: Backing) -> Result<DeviceFolio> {
        let order = match backing.len() {
            1 => 0,
            PMD_NR => PMD_ORDER,
            _ => return Err(EINVAL),
        };
        let mut chunks = self.chunks.lock();
        for pagemap in chunks.iter() {
            match pagemap.data().take(backing) {
                Ok(index) => return hand_out(pagemap, index, order),
                Err(unkept) => backing = unkept,
            }
        }
        chunks.reserve(1, GFP_KERNEL)?;
        let pagemap = Arc::pin_init(
            Pagemap::new(CHUNK_SIZE, self.name, self.owner(), Chunk::new()?),
            GFP_KERNEL,
        )?;
        pr_info!(
            "{}: added a {} MiB chunk of device memory ({} in all)\n",
            self.name.to_str().unwrap_or("?"),
            CHUNK_SIZE >> 20,
            chunks.len() + 1
        );
        let index = pagemap.data().take(backing).map_err(|_| ENOMEM)?;
        let folio = hand_out(&pagemap, index, order)?;
        match chunks.push_within_capacity(pagemap) {
            Ok(()) => Ok(folio),
            Err(unkept) => {
                // The page first: the chunk's unmapping waits for it.
                drop(folio);
                drop(unkept);
                Err(ENOMEM)
            }
        }
    }

    /// Migrates every page of the device in use back to system memory, once
    /// (test_hmm does it when a file of the device is closed). Pages that
    /// are busy (locked by a migration) stay.
    pub(crate) fn evict(&self) {
        let chunks: KVec<Arc<Pagemap<Chunk>>> = {
            let g = self.chunks.lock();
            let mut v = KVec::new();
            for c in g.iter() {
                if v.push(c.clone(), GFP_KERNEL).is_err() {
                    break;
                }
            }
            v
        };
        for c in chunks.iter() {
            if let Err(e) = evict_chunk(c) {
                pr_warn!("evicting device memory: {e:?}\n");
            }
        }
    }

    /// Gives every chunk up: migrates its pages back to system memory until
    /// none is in use, then unmaps it (`HMM_DMIRROR_RELEASE`, and the
    /// device's end). Later allocations add new chunks.
    pub(crate) fn release(&self) {
        let chunks = core::mem::take(&mut *self.chunks.lock());
        for c in chunks.iter() {
            let mut rounds = 0u32;
            while c.data().in_use() > 0 {
                // By the pages in use, then (if some keep escaping, say
                // being reallocated into a folio as they are listed) the
                // whole chunk, as test_hmm always does.
                let evicted = if rounds < 10 {
                    evict_chunk(c)
                } else {
                    evict_whole_chunk(c)
                };
                if let Err(e) = evicted {
                    pr_warn!("evicting device memory: {e:?}\n");
                }
                if c.data().in_use() == 0 {
                    break;
                }
                rounds = rounds.saturating_add(1);
                if rounds >= 10_000 {
                    // A page nobody maps and nobody frees (a reference
                    // leaked): unmapping the chunk would wait forever, so
                    // it is leaked instead, loudly.
                    pr_err!(
                        "{} device pages never freed: leaking their chunk\n",
                        c.data().in_use()
                    );
                    core::mem::forget(c.clone());
                    break;
                }
                fsleep(Delta::from_millis(1));
            }
        }
        // `memunmap_pages()` as the last references go.
        drop(chunks);
    }
}

/// The device folio of the run at `index` that the chunk of `pagemap` just
/// took (with its data pages). A run the pagemap does not see as free (its
/// allocator and the chunk's free lists disagree: never) goes back to the
/// free lists, with its data pages, and `EBUSY` is returned.
fn hand_out(pagemap: &Pagemap<Chunk>, index: usize, order: u32) -> Result<DeviceFolio> {
    match pagemap.init_folio(index, order) {
        Some(folio) => Ok(folio),
        None => {
            pagemap.data().folio_free(index, order);
            Err(EBUSY)
        }
    }
}

impl Drop for DeviceMemory {
    fn drop(&mut self) {
        self.release();
    }
}

/// Migrates the pages of `pagemap` in use back to system memory (test_hmm's
/// `dmirror_device_evict_chunk()`, for the pages in use only).
fn evict_chunk(pagemap: &Pagemap<Chunk>) -> Result {
    let indices = pagemap.data().in_use_indices()?;
    if indices.is_empty() {
        return Ok(());
    }
    let mut bufs = Buffers::new(indices.len())?;
    let c = DeviceCollected::pages_of(pagemap, &indices, &mut bufs)?;
    copy_back(pagemap.owner(), c);
    Ok(())
}

/// Migrates every page of `pagemap` back to system memory (test_hmm's
/// `dmirror_device_evict_chunk()`).
fn evict_whole_chunk(pagemap: &Pagemap<Chunk>) -> Result {
    let mut bufs = Buffers::new(pagemap.npages())?;
    let c = DeviceCollected::range_of(pagemap, &mut bufs)?;
    copy_back(pagemap.owner(), c);
    Ok(())
}

/// Gives the collected device pages of `owner` system destinations holding
/// their data, and migrates them.
fn copy_back(owner: Owner, mut c: DeviceCollected<'_>) {
    for i in 0..c.len() {
        let s = c.src(i);
        let order = if s.compound() { PMD_ORDER } else { 0 };
        let folio = {
            let Some((from, index)) = c.src_device::<Chunk>(i, owner) else {
                continue;
            };
            let Some(mut folio) = SysFolio::alloc(None, 0, order, true) else {
                continue;
            };
            for k in 0..s.nr_pages() {
                from.data().copy_out(index + k, &mut folio, k);
            }
            folio
        };
        c.set_dst(i, folio, s.write());
    }
    c.migrate();
}

#[kunit_tests(rsva_devmem)]
mod tests {
    use super::*;
    use crate::{
        kext::glue,
        kext::mm::interval_notifier::{FaultMode, IntervalNotifier, Invalidate},
        kext::mm::migrate::{clear_page, copy_to_page, Collected, Dst, Source},
    };

    struct Nothing;

    impl Invalidate for Nothing {
        fn invalidate(&mut self, _: usize, _: usize, _: Option<Owner>) {}
    }

    const N: usize = 8;

    /// Whether every page of `[addr, addr + N pages)` is one of `owner`'s
    /// device pages (`device`) or none is.
    fn on_device(
        n: &IntervalNotifier<Nothing>,
        addr: usize,
        owner: Owner,
        device: bool,
    ) -> Result<bool> {
        let mut pfns = [0 as c_ulong; N];
        n.fault(addr, FaultMode::Snapshot, Some(owner), &mut pfns, |_, e| {
            e.iter()
                .all(|&p| p.pfn().is_some() && backing_of(owner, p, &mut |_| ()) == device)
        })
    }

    /// A migration to a device's memory through the abstractions, an
    /// abandoned one, and the device giving its memory up.
    #[test]
    fn pages_move_to_the_device_and_back() -> Result {
        let mem = DeviceMemory::new(c"rsva_kunit_devmem")?;
        let owner = mem.owner();
        let mm = glue::test_mm()?;
        let addr = glue::test_mmap(&mm, N * PAGE_SIZE, true)?;
        let end = addr + N * PAGE_SIZE;
        let n = KBox::pin_init(IntervalNotifier::new(Nothing), GFP_KERNEL)?;
        n.as_ref().register(&mm, 0, usize::MAX / 2)?;
        assert!(on_device(&n, addr, owner, false)?);
        let mut bufs = Buffers::new(N)?;
        {
            let guard = mm.mmap_read_lock();
            let vma = guard.vma_lookup(addr).ok_or(EINVAL)?;
            let mut c = Collected::setup(vma, addr, end, Source::System, false, owner, &mut bufs)?;
            for i in 0..c.len() {
                assert!(c.src(i).migrate());
                let mut page = Page::alloc_page(GFP_KERNEL)?;
                match c.src_page(i, 0) {
                    Some(src) => copy_to_page(&mut page, src),
                    None => clear_page(&mut page),
                }
                let folio = mem.alloc(Backing::Page(page))?;
                let write = c.src(i).write();
                assert!(c.set_dst(i, Dst::Device(folio), write));
            }
            let m = c.pages();
            assert_eq!(m.migrated(), N);
            m.finalize();
        }
        assert_eq!((mem.in_use(), mem.chunks()), (N, 1));
        assert!(on_device(&n, addr, owner, true)?);

        // Collected back, then abandoned: nothing moves.
        {
            let guard = mm.mmap_read_lock();
            let vma = guard.vma_lookup(addr).ok_or(EINVAL)?;
            let c = Collected::setup(
                vma,
                addr,
                end,
                Source::DevicePrivate,
                false,
                owner,
                &mut bufs,
            )?;
            assert!(c.src(0).migrate());
            drop(c);
        }
        assert!(on_device(&n, addr, owner, true)?);

        // The device gives its memory up: every page comes back.
        mem.release();
        assert_eq!((mem.in_use(), mem.chunks()), (0, 0));
        assert!(on_device(&n, addr, owner, false)?);
        Ok(())
    }
}
