// SPDX-License-Identifier: GPL-2.0

//! A device of the simulated SVA platform: its PASID table, its IOTLB, its
//! fault log, its page request interface, and the address translation its
//! DMA engine goes through.
//!
//! Translation works as an SVA IOMMU does: the IOTLB first; on a miss, the
//! PASID table names the SVA domain and so the mm, and the page tables of
//! that mm are walked as an IOMMU's walker does, without faulting: present
//! and permission bits only (`get_user_pages_remote()` with `FOLL_NOFAULT`,
//! under the mmap read lock, `mmget_not_zero()` first so a dead mm is a
//! fault). When the walk fails, the device either sends a page request
//! through the kernel's I/O page fault path and waits for the response
//! (block on fault, `prq.rs`), or ends the descriptor with a partial
//! completion (report). A page is referenced only while it is accessed;
//! the IOTLB keeps a bare page frame number that only invalidations keep
//! right. The walk, the page references and the frame numbers are
//! `kext/mm/remote.rs`'s.

#![forbid(unsafe_code)]

use kernel::{
    device::Device,
    iommu::dma_owner::{DmaApiUse, Group},
    mm::{Mm, MmWithUser},
    new_condvar, new_mutex, new_spinlock,
    page::{PAGE_SHIFT, PAGE_SIZE},
    prelude::*,
    sync::{
        aref::ARef,
        atomic::{Atomic, Relaxed},
        Arc, CondVar, CondVarTimeoutResult, Mutex, SpinLock,
    },
    time::msecs_to_jiffies,
    xarray::{AllocKind, XArray},
};

use crate::{
    fault_log::{Fault, FaultLog, FaultReason},
    iotlb::{Iotlb, IotlbStats},
    kext::{
        device::bus,
        iommu::iopf::{IopfMember, IopfPort, PageRequest},
        mm::remote::{self, PageRef, Pfn},
    },
    personality::Blocked,
    prq::{self, Answer, PendingTable, PrqCounters, Response, GROUP_PAGES},
};

/// An IOMMU group of the platform: `group_size` consecutive devices share one.
#[pin_data]
pub(crate) struct SimGroup {
    /// The group, allocated when its first device is probed.
    #[pin]
    group: Mutex<Option<ARef<Group>>>,
    pub(crate) id: u32,
}

impl SimGroup {
    pub(crate) fn new(id: u32) -> Result<Arc<Self>> {
        Arc::pin_init(
            pin_init!(Self {
                group <- kernel::new_mutex!(None),
                id,
            }),
            GFP_KERNEL,
        )
    }

    /// The group for a device being probed, with a reference for the caller
    /// (the IOMMU core's `device_group` contract).
    pub(crate) fn get(&self) -> Result<ARef<Group>> {
        let mut group = self.group.lock();
        if let Some(g) = &*group {
            return Ok(g.clone());
        }
        let g = bus::alloc_group()?;
        *group = Some(g.clone());
        Ok(g)
    }

    /// Whether an owner claimed the group's DMA; false before the group's
    /// first device, when there is no group yet.
    pub(crate) fn dma_owner_claimed(&self) -> bool {
        self.group
            .lock()
            .as_ref()
            .is_some_and(|g| bus::dma_owner_claimed(g))
    }
}

/// What the PASID table holds for one PASID: the SVA domain attached to it
/// and its address space, on which the entry holds an `mmgrab()` reference
/// of its own (dropped with the entry).
pub(crate) struct PasidEntry {
    mm: ARef<Mm>,
    /// The address of the attached domain, only compared.
    domain: usize,
    /// Set by the mm's release when the personality keeps the entry: the
    /// process is exiting and the entry no longer translates.
    blocked: Option<Blocked>,
}

/// Per-device counters.
pub(crate) struct DeviceCounters {
    pub(crate) bytes: Atomic<u64>,
    pub(crate) releases: Atomic<u64>,
    pub(crate) stale_translations: Atomic<u64>,
    /// Faults the IOMMU did not report (entries blocked by a release).
    pub(crate) faults_suppressed: Atomic<u64>,
    /// PASID detaches that drained the PASID's page requests (Intel).
    pub(crate) pasid_drains: Atomic<u64>,
    /// Accesses to a walked page that an invalidation covered after the
    /// walk began: the device used a translation the IOMMU was told to
    /// forget. Always a bug of the simulator.
    pub(crate) stale_walk_accesses: Atomic<u64>,
}

impl DeviceCounters {
    fn new() -> Self {
        Self {
            bytes: Atomic::new(0),
            releases: Atomic::new(0),
            stale_translations: Atomic::new(0),
            faults_suppressed: Atomic::new(0),
            pasid_drains: Atomic::new(0),
            stale_walk_accesses: Atomic::new(0),
        }
    }
}

/// The device's page requests: enabled (the device in the IOMMU's iopf
/// queue) while an SVA domain is attached to one of its PASIDs.
struct Iopf {
    /// PASIDs with an SVA domain attached.
    users: u32,
    /// The device's port to the IOMMU's iopf queue, from the IOMMU's probe.
    port: Option<IopfPort>,
    /// The device in the queue, while `users` is not zero.
    member: Option<IopfMember>,
}

/// One simulated SVA-capable device.
#[pin_data]
pub(crate) struct SimDevice {
    pub(crate) id: u32,
    pub(crate) group: Arc<SimGroup>,
    pub(crate) pasid_bits: u32,
    #[pin]
    table: XArray<KBox<PasidEntry>>,
    #[pin]
    iotlb: SpinLock<Iotlb<Pfn>>,
    #[pin]
    faults: SpinLock<FaultLog>,
    /// Page requests, enabled while a PASID has an SVA domain; a report
    /// takes it inside `prq_report`.
    #[pin]
    iopf: Mutex<Iopf>,
    /// Held while a page request group is checked against the PASID table
    /// and reported; a PASID's drain takes it after removing the entry, so
    /// that nothing of the PASID is reported after the drain began.
    #[pin]
    prq_report: Mutex<()>,
    #[pin]
    pending: SpinLock<PendingTable>,
    #[pin]
    answered: CondVar,
    pub(crate) prq: PrqCounters,
    pub(crate) counters: DeviceCounters,
    /// The DMA API's use of the group by the driver bound to the device.
    pub(crate) dma_api: DmaApiUse,
}

impl SimDevice {
    pub(crate) fn new(id: u32, group: Arc<SimGroup>, pasid_bits: u32) -> Result<Arc<Self>> {
        Arc::pin_init(
            try_pin_init!(Self {
                id,
                group,
                pasid_bits,
                table <- XArray::new(AllocKind::Alloc),
                iotlb <- new_spinlock!(Iotlb::new()),
                faults <- new_spinlock!(FaultLog::new()),
                iopf <- new_mutex!(Iopf {
                    users: 0,
                    port: None,
                    member: None,
                }),
                prq_report <- new_mutex!(()),
                pending <- new_spinlock!(PendingTable::new()),
                answered <- new_condvar!("rsva_sim::SimDevice::answered"),
                prq: PrqCounters::new(),
                counters: DeviceCounters::new(),
                dma_api: DmaApiUse::new(),
            }),
            GFP_KERNEL,
        )
    }

    /// Keeps the device's port to the IOMMU's iopf queue, which the
    /// IOMMU's `probe_device` hands over.
    pub(crate) fn set_iopf_port(&self, port: IopfPort) {
        self.iopf.lock().port = Some(port);
    }

    /// The simulated device behind `dev`, with a reference, or `None` for
    /// a device of another bus: for the IOMMU's `probe_device`.
    pub(crate) fn of(dev: &Device) -> Option<Arc<SimDevice>> {
        bus::data_of::<SimDevice>(dev).cloned()
    }

    /// The PASID width of this device.
    pub(crate) fn max_pasids(&self) -> u32 {
        1u32 << self.pasid_bits
    }

    /// Points `pasid` at an SVA domain whose address space is `mm`.
    pub(crate) fn install(&self, pasid: u32, mm: &Mm, domain: *const c_void) -> Result {
        let entry = KBox::new(
            PasidEntry {
                mm: mm.into(),
                domain: domain as usize,
                blocked: None,
            },
            GFP_KERNEL,
        )?;
        let index = usize::try_from(pasid).map_err(|_| EINVAL)?;
        self.table
            .lock()
            .store(index, entry, GFP_KERNEL)
            .map_err(|e| e.error)?;
        self.iotlb.lock().flush_pasid(pasid);
        Ok(())
    }

    /// Removes the entry of `pasid` (detach); harmless when there is none.
    pub(crate) fn remove(&self, pasid: u32) {
        if let Ok(index) = usize::try_from(pasid) {
            drop(self.table.lock().remove(index));
        }
        self.iotlb.lock().flush_pasid(pasid);
    }

    /// Blocks the entry of `pasid`, the way `how` says, if it still belongs
    /// to `domain`: it stays in the table, so that unbind finds it, but no
    /// longer translates. Safe to call any number of times; frees nothing.
    pub(crate) fn block(&self, pasid: u32, domain: *const c_void, how: Blocked) {
        if let Ok(index) = usize::try_from(pasid) {
            let mut table = self.table.lock();
            if let Some(entry) = table.get_mut(index) {
                if entry.domain == domain as usize {
                    entry.blocked = Some(how);
                }
            }
        }
        self.iotlb.lock().flush_pasid(pasid);
    }

    /// Invalidates cached translations of `pasid` in `[start, end)`,
    /// unless the `test_skip_invalidation` parameter breaks the IOMMU on
    /// purpose.
    pub(crate) fn flush_range(&self, pasid: u32, start: u64, end: u64) {
        if crate::module_parameters::test_skip_invalidation.value() {
            return;
        }
        self.iotlb.lock().flush_range(pasid, start, end);
    }

    /// Whether the entry of `pasid` translates (`Some(true)`), was blocked
    /// by the mm's release (`Some(false)`), or is absent (`None`).
    pub(crate) fn entry_live(&self, pasid: u32) -> Option<bool> {
        let table = self.table.lock();
        table
            .get(usize::try_from(pasid).ok()?)
            .map(|e| e.blocked.is_none())
    }

    /// Visits the PASID table in PASID order: `(pasid, None)` for an entry
    /// that translates, `(pasid, Some(how))` for one a release blocked.
    /// Costs what the entries cost, not what the PASID width does: a
    /// lookup of every PASID of 20 bits took seconds under KASAN and TCG,
    /// for each read of `pasid_table`, which the tests poll.
    pub(crate) fn for_each_entry(&self, mut f: impl FnMut(u32, Option<Blocked>)) {
        let table = self.table.lock();
        let mut from = 0;
        while let Some((index, e)) = table.find_next(from) {
            let Ok(pasid) = u32::try_from(index) else {
                return;
            };
            f(pasid, e.blocked);
            from = index + 1;
        }
    }

    pub(crate) fn iotlb_stats(&self) -> (IotlbStats, usize) {
        let t = self.iotlb.lock();
        (t.stats(), t.occupancy())
    }

    pub(crate) fn fault_total(&self) -> u64 {
        self.faults.lock().total()
    }

    /// Visits the fault log, oldest first.
    pub(crate) fn for_each_fault(&self, f: impl FnMut(&Fault)) {
        let log = self.faults.lock();
        log.iter().for_each(f);
    }

    fn fault(&self, pasid: u32, addr: u64, write: bool, reason: FaultReason) -> Fault {
        let fault = Fault {
            pasid,
            addr,
            write,
            reason,
        };
        if reason.reported() {
            self.faults.lock().push(fault);
        } else if reason != FaultReason::NotPresent {
            self.counters.faults_suppressed.add(1, Relaxed);
        }
        if reason == FaultReason::StaleTranslation {
            self.counters.stale_translations.add(1, Relaxed);
            pr_err!(
                "rsva_sim{}: DMA through a stale IOTLB entry: pasid {} addr {:#x}\n",
                self.id,
                pasid,
                addr
            );
        }
        fault
    }

    /// The mm of `pasid` with a user reference, taken under the table lock
    /// while the entry (and so its mmgrab) keeps the mm valid.
    fn mm_of(
        &self,
        pasid: u32,
        addr: u64,
        write: bool,
    ) -> core::result::Result<ARef<MmWithUser>, Fault> {
        let index = usize::try_from(pasid)
            .map_err(|_| self.fault(pasid, addr, write, FaultReason::NoPasid))?;
        let table = self.table.lock();
        let reason = match table.get(index) {
            None => FaultReason::NoPasid,
            Some(PasidEntry {
                blocked: Some(how), ..
            }) => how.fault(),
            Some(e) => {
                // The entry's mmgrab keeps the mm valid.
                match e.mm.mmget_not_zero() {
                    Some(mm) => return Ok(mm),
                    None => FaultReason::MmGone,
                }
            }
        };
        drop(table);
        Err(self.fault(pasid, addr, write, reason))
    }

    /// One DMA access of the device through `pasid`: reads `buf.len()` bytes
    /// at `addr` into `buf`, or writes them from `buf` when `write`. The
    /// access must not cross a page boundary. `paging` says what to do when
    /// a page is not present, and counts the page requests sent.
    pub(crate) fn dma(
        &self,
        pasid: u32,
        addr: u64,
        buf: &mut [u8],
        write: bool,
        paging: &mut Paging,
    ) -> core::result::Result<(), Fault> {
        let page_size = PAGE_SIZE as u64;
        let offset = addr % page_size;
        if buf.is_empty() {
            return Ok(());
        }
        if offset + buf.len() as u64 > page_size {
            return Err(self.fault(pasid, addr, write, FaultReason::NotMapped));
        }
        // Pages after this one that the stream touches: up to the last byte
        // of the access and of what follows it, below the top of the
        // address space.
        let last = addr
            .saturating_add(buf.len() as u64 - 1)
            .saturating_add(paging.ahead);
        let after = (last >> PAGE_SHIFT) - (addr >> PAGE_SHIFT);
        let (mut races, mut requests) = (0, 0);
        loop {
            match self.translate_and_access(pasid, addr, buf, write, after)? {
                Step::Done => return Ok(()),
                Step::Raced => {
                    races += 1;
                    if races == WALK_TRIES {
                        return Err(self.fault(pasid, addr, write, FaultReason::WalkRaced));
                    }
                }
                Step::NotPresent if !paging.block => {
                    return Err(self.fault(pasid, addr, write, FaultReason::NotPresent));
                }
                Step::NotPresent => {
                    if requests == PRQ_TRIES {
                        return Err(self.fault(pasid, addr, write, FaultReason::WalkRaced));
                    }
                    requests += 1;
                    self.page_request(pasid, addr, write, after, paging)?;
                }
            }
        }
    }

    /// One try of [`SimDevice::dma`].
    fn translate_and_access(
        &self,
        pasid: u32,
        addr: u64,
        buf: &mut [u8],
        write: bool,
        after: u64,
    ) -> core::result::Result<Step, Fault> {
        let offset = addr % PAGE_SIZE as u64;
        let vpn = addr >> PAGE_SHIFT;

        // Fast path: a cached translation, used under the IOTLB lock so that
        // an invalidation waits for the access to end.
        let seq = {
            let mut tlb = self.iotlb.lock();
            if let Some(pfn) = tlb.lookup(pasid, vpn, write) {
                // A page the IOMMU was told to forget has no reference left
                // and is refused.
                let Some(page) = PageRef::try_get(pfn) else {
                    drop(tlb);
                    return Err(self.fault(pasid, addr, write, FaultReason::StaleTranslation));
                };
                let r = self.access(page, offset, buf, write);
                drop(tlb);
                r.map_err(|_| self.fault(pasid, addr, write, FaultReason::NotMapped))?;
                return Ok(Step::Done);
            }
            tlb.seq()
        };

        // Miss: walk the page tables as the IOMMU's walker does, for this
        // page and the next ones the stream touches (as an IOMMU fetches a
        // cache line of page table entries).
        let mut pages: [Option<PageRef>; WALK_PAGES] = Default::default();
        // At most WALK_PAGES.
        let pages = &mut pages[..=after.min(WALK_PAGES as u64 - 1) as usize];
        let mm = self.mm_of(pasid, addr, write)?;
        let walked = remote::walk(&mm, addr, write, pages);
        // Dropping the user reference may run exit_mmap() and so the
        // notifier's release here: no lock of ours is held.
        drop(mm);
        // The references left in `pages` are dropped when it goes, after
        // the IOTLB lock: cached, only invalidations keep them right.
        let Some((Some(page), rest)) = pages[..walked].split_first_mut() else {
            return Ok(Step::NotPresent);
        };

        let mut tlb = self.iotlb.lock();
        // An invalidation came during the walk: the CPU may have dropped the
        // page since, and a real IOMMU's invalidation would have waited for
        // this access. Neither cache nor use the translation; walk again.
        if !tlb.insert(seq, pasid, vpn, page.pfn(), write) {
            drop(tlb);
            return Ok(Step::Raced);
        }
        for (k, p) in rest.iter().enumerate() {
            if let Some(p) = p {
                // Same sequence: cannot fail.
                tlb.insert(seq, pasid, vpn + 1 + k as u64, p.pfn(), write);
            }
        }
        // The check that the above holds: never counts.
        if tlb.invalidated_since(seq, pasid, vpn) {
            self.counters.stale_walk_accesses.add(1, Relaxed);
        }
        let r = self.access_ref(page, offset, buf, write);
        drop(tlb);
        r.map_err(|_| self.fault(pasid, addr, write, FaultReason::NotMapped))?;
        Ok(Step::Done)
    }

    /// Copies `n` bytes from `src` to `dst` through `pasid`, page to page,
    /// when both translations are cached (each side within one page):
    /// `Ok(false)`, copying nothing, when either is not, and the caller
    /// goes through [`SimDevice::dma`] for each side.
    pub(crate) fn copy_cached(
        &self,
        pasid: u32,
        src: u64,
        dst: u64,
        n: usize,
    ) -> core::result::Result<bool, Fault> {
        let page = PAGE_SIZE as u64;
        if src % page + n as u64 > page || dst % page + n as u64 > page {
            return Ok(false);
        }
        let tlb = self.iotlb.lock();
        let (Some(spfn), Some(dpfn)) = (
            tlb.peek(pasid, src >> PAGE_SHIFT, false),
            tlb.peek(pasid, dst >> PAGE_SHIFT, true),
        ) else {
            return Ok(false);
        };
        // A page the IOMMU was told to forget has no reference left and is
        // refused.
        let (spage, dpage) = (PageRef::try_get(spfn), PageRef::try_get(dpfn));
        let (spage, dpage) = match (spage, dpage) {
            (Some(s), Some(d)) => (s, d),
            (s, d) => {
                let stale = if s.is_none() {
                    (src, false)
                } else {
                    (dst, true)
                };
                drop((s, d));
                drop(tlb);
                return Err(self.fault(pasid, stale.0, stale.1, FaultReason::StaleTranslation));
            }
        };
        // Both ranges are within their page (checked above).
        let r = PageRef::copy(
            &dpage,
            (dst % page) as usize,
            &spage,
            (src % page) as usize,
            n,
        );
        drop(tlb);
        if r.is_err() {
            drop((spage, dpage));
            return Err(self.fault(pasid, dst, true, FaultReason::NotMapped));
        }
        self.iotlb.lock().count_hits(2);
        drop((spage, dpage));
        self.counters.bytes.add(2 * n as u64, Relaxed);
        Ok(true)
    }

    /// Copies between `buf` and a referenced page, then drops the reference.
    fn access(&self, page: PageRef, offset: u64, buf: &mut [u8], write: bool) -> Result {
        self.access_ref(&page, offset, buf, write)
    }

    /// Copies between `buf` and a referenced page.
    fn access_ref(&self, page: &PageRef, offset: u64, buf: &mut [u8], write: bool) -> Result {
        // Below PAGE_SIZE: the caller checked.
        page.access(offset as usize, buf, write)?;
        self.counters.bytes.add(buf.len() as u64, Relaxed);
        Ok(())
    }

    /// Asks the OS to make the page of `addr` present (writable when
    /// `write`) and waits for the answer: `Ok` on SUCCESS, after which the
    /// access walks again, a reported fault otherwise. The group also asks
    /// for the `after` pages the access stream reaches next (at most
    /// [`GROUP_PAGES`] in all); when such a group is refused, the page of
    /// `addr` is asked for alone, so that the fault names the first page
    /// that cannot be had.
    fn page_request(
        &self,
        pasid: u32,
        addr: u64,
        write: bool,
        after: u64,
        paging: &mut Paging,
    ) -> core::result::Result<(), Fault> {
        let page = PAGE_SIZE as u64;
        let base = addr & !(page - 1);
        // At most GROUP_PAGES.
        let mut n = after.min(GROUP_PAGES as u64 - 1) as usize + 1;
        loop {
            let r = self.send_group(pasid, base, n, write, paging)?;
            match r {
                Some(Response::Success) => return Ok(()),
                Some(_) if n > 1 => n = 1,
                Some(_) => {
                    return Err(self.fault(pasid, addr, write, FaultReason::RequestDenied));
                }
                // The PASID has no live entry any more: as a walk would.
                None => return Err(self.fault_of_entry(pasid, addr, write)),
            }
        }
    }

    /// Sends one page request group of `n` pages from `base` (the first
    /// page last, with the last-page flag) and waits for its response;
    /// `None` when the PASID no longer translates, so nothing was sent.
    fn send_group(
        &self,
        pasid: u32,
        base: u64,
        n: usize,
        write: bool,
        paging: &mut Paging,
    ) -> core::result::Result<Option<Response>, Fault> {
        let slot = {
            // The entry is checked, and the group reported, under
            // `prq_report`, which the drain of a PASID takes after removing
            // its entry: nothing of the PASID is reported once its drain
            // began. A live entry has an SVA domain attached, so the device
            // is in the iopf queue (`iopf_get` came before the entry, and
            // `iopf_put` comes after its removal).
            let _report = self.prq_report.lock();
            if self.entry_live(pasid) != Some(true) {
                return Ok(None);
            }
            let iopf = self.iopf.lock();
            let Some(member) = &iopf.member else {
                // Not with a live entry (see above); but then nothing can
                // be sent, and nothing would answer.
                return Err(self.fault(pasid, base, write, FaultReason::RequestDenied));
            };
            let Some((slot, grpid)) = self.pending.lock().alloc(pasid) else {
                return Err(self.fault(pasid, base, write, FaultReason::RequestDenied));
            };
            for i in (0..n).rev() {
                let request = PageRequest {
                    pasid,
                    grpid,
                    addr: base + (i * PAGE_SIZE) as u64,
                    write,
                    last: i == 0,
                };
                // On error the core answered the group INVALID through
                // `page_response` (no fault handler for the PASID), or the
                // core released the device, which then gets no answer: the
                // wait below sees the one, and times out on the other, a
                // bug (counted in `timeouts`) that the live entry excludes.
                let _ = member.report(&request);
                self.prq.requests.add(1, Relaxed);
                paging.requests += 1;
            }
            self.prq.groups.add(1, Relaxed);
            slot
        };
        Ok(Some(self.wait_response(pasid, base, write, slot)?))
    }

    /// Waits for the response of the group in `slot`.
    fn wait_response(
        &self,
        pasid: u32,
        addr: u64,
        write: bool,
        slot: usize,
    ) -> core::result::Result<Response, Fault> {
        let mut pending = self.pending.lock();
        let mut left = msecs_to_jiffies(prq::RESPONSE_TIMEOUT_MS);
        loop {
            if let Some(r) = pending.take(slot) {
                return Ok(r);
            }
            if left == 0 {
                pending.abandon(slot);
                drop(pending);
                self.prq.timeouts.add(1, Relaxed);
                pr_err!(
                    "rsva_sim{}: no response to a page request: pasid {} addr {:#x}\n",
                    self.id,
                    pasid,
                    addr
                );
                return Err(self.fault(pasid, addr, write, FaultReason::RequestDenied));
            }
            // The engine runs in a work item: no signal wakes it early.
            left = match self.answered.wait_interruptible_timeout(&mut pending, left) {
                CondVarTimeoutResult::Timeout => 0,
                CondVarTimeoutResult::Woken { jiffies }
                | CondVarTimeoutResult::Signal { jiffies } => jiffies,
            };
        }
    }

    /// The IOMMU's `page_response` for this device: the answer to a group.
    pub(crate) fn page_response(&self, pasid: u32, grpid: u32, code: u32) {
        let r = Response::from_code(code);
        let answer = self.pending.lock().answer(pasid, grpid, r);
        match answer {
            Answer::Delivered => {
                self.prq.count(r);
                self.answered.notify_all();
            }
            Answer::Stray => {
                self.prq.stray.add(1, Relaxed);
                pr_err!(
                    "rsva_sim{}: page response to no pending group: pasid {} grpid {}\n",
                    self.id,
                    pasid,
                    grpid
                );
            }
        }
    }

    /// An SVA domain is attached to one more PASID: page requests are
    /// enabled from the first (the device joins the IOMMU's iopf queue).
    pub(crate) fn iopf_get(&self) -> Result {
        let mut guard = self.iopf.lock();
        let iopf = &mut *guard;
        if iopf.users == 0 {
            // Probed by the IOMMU, as every device it calls is.
            let port = iopf.port.as_ref().ok_or(ENODEV)?;
            iopf.member = Some(port.add()?);
        }
        iopf.users += 1;
        Ok(())
    }

    /// The SVA domain of `pasid` is detached (its entry already removed):
    /// drains the PASID's page requests, so that none is handled after the
    /// detach returns (none is reported any more: the entry is gone, and a
    /// report in progress ends before `prq_report` is taken here), then
    /// disables page requests with the last PASID.
    pub(crate) fn iopf_put(&self, pasid: u32) {
        drop(self.prq_report.lock());
        let mut iopf = self.iopf.lock();
        if iopf.users == 0 {
            return;
        }
        if let Some(member) = &iopf.member {
            member.flush();
        }
        let undrained = self.pending.lock().answer_all(pasid, Response::Invalid);
        if undrained > 0 {
            self.prq.undrained.add(undrained, Relaxed);
            self.answered.notify_all();
            pr_err!(
                "rsva_sim{}: {} page request groups of pasid {} unanswered after the drain\n",
                self.id,
                undrained,
                pasid
            );
        }
        self.counters.pasid_drains.add(1, Relaxed);
        iopf.users -= 1;
        if iopf.users == 0 {
            // Out of the queue: nothing is reported any more.
            iopf.member = None;
        }
    }

    /// The fault a walk through the entry of `pasid` gets when the entry
    /// does not translate.
    fn fault_of_entry(&self, pasid: u32, addr: u64, write: bool) -> Fault {
        match self.mm_of(pasid, addr, write) {
            Err(f) => f,
            Ok(_) => self.fault(pasid, addr, write, FaultReason::NotMapped),
        }
    }
}

/// What the device does when a page is not present, for one access stream
/// of a descriptor, and how many page requests that took.
pub(crate) struct Paging {
    /// Send a page request and wait (block on fault); otherwise end the
    /// descriptor with a partial completion.
    pub(crate) block: bool,
    /// Bytes the stream touches after the current access.
    pub(crate) ahead: u64,
    /// Pages requested so far.
    pub(crate) requests: u64,
}

impl Paging {
    /// Blocking on faults, no stream ahead.
    pub(crate) fn blocking() -> Self {
        Self {
            block: true,
            ahead: 0,
            requests: 0,
        }
    }
}

/// How one try of an access ended.
enum Step {
    Done,
    /// An invalidation overtook the page walk: walk again.
    Raced,
    /// The walk found the page not present, or not writable for a write.
    NotPresent,
}

/// Pages one walk translates at most: the one accessed and those the
/// stream touches next.
const WALK_PAGES: usize = remote::WALK_MAX;

/// How many times a DMA access walks the page tables while invalidations
/// keep overtaking the walk, before it faults `walk-raced`.
const WALK_TRIES: usize = 4;

/// How many page requests one access sends, each answered SUCCESS and
/// each followed by a walk that still finds the page missing (reclaimed or
/// unmapped meanwhile), before it faults `walk-raced`.
const PRQ_TRIES: usize = 8;

#[kunit_tests(rsva_sim_pasid_table)]
mod tests {
    use super::*;
    use crate::{kext::mm::test_mm, prq::Response};
    use kernel::time::{Instant, Monotonic};

    /// Device 0 of a new group, with 4 PASID bits, and an mm of its own;
    /// `None` (the case checks nothing) when either cannot be allocated.
    fn device_and_mm() -> Option<(Arc<SimDevice>, ARef<MmWithUser>)> {
        let group = SimGroup::new(0).ok()?;
        let dev = SimDevice::new(0, group, 4);
        assert!(dev.is_ok());
        Some((dev.ok()?, test_mm().ok()?))
    }

    /// The table logic the SVA domain's release relies on: blocking only
    /// marks the entry, twice is the same as once, another domain's block
    /// changes nothing, and only detach removes the entry.
    #[test]
    fn release_clears_idempotently_and_detach_removes() {
        let Some((dev, mm)) = device_and_mm() else {
            return;
        };
        let (mine, other) = (0x1000 as *const c_void, 0x2000 as *const c_void);
        let how = Blocked::FaultsIgnored;
        let state = |pasid| {
            let mut found = None;
            dev.for_each_entry(|p, blocked| {
                if p == pasid {
                    found = Some(blocked.is_some());
                }
            });
            found
        };

        assert!(dev.install(5, &mm, mine).is_ok());
        assert_eq!(state(5), Some(false));
        dev.block(5, other, how);
        assert_eq!(state(5), Some(false));
        dev.block(5, mine, how);
        assert_eq!(state(5), Some(true));
        dev.block(5, mine, how);
        assert_eq!(state(5), Some(true));
        dev.remove(5);
        assert_eq!(state(5), None);
        dev.remove(5);
        dev.block(5, mine, how);
        assert_eq!(state(5), None);
    }

    /// A walk of a table of 20-bit PASIDs visits its entries in order,
    /// the highest PASID too, without looking up the PASIDs between them:
    /// it takes well under the time a million lookups take.
    #[test]
    fn a_walk_of_the_table_visits_only_its_entries() -> Result {
        let dev = SimDevice::new(0, SimGroup::new(0)?, 20)?;
        let mm = test_mm()?;
        let last = dev.max_pasids() - 1;
        for pasid in [last, 1, 7] {
            dev.install(pasid, &mm, 0x1000 as *const c_void)?;
        }
        // Visited under the table's spinlock: no allocation there.
        let (mut seen, mut n) = ([0u32; 4], 0);
        let t0 = Instant::<Monotonic>::now();
        dev.for_each_entry(|pasid, _| {
            if let Some(slot) = seen.get_mut(n) {
                *slot = pasid;
            }
            n += 1;
        });
        let took = t0.elapsed();
        assert_eq!(seen.get(..n), Some(&[1, 7, last][..]));
        assert!(took.as_millis() < 100);
        Ok(())
    }

    /// A blocked or missing PASID does not translate: the access is a
    /// fault, logged when the IOMMU reports it (a missing entry) and only
    /// counted when it does not (a blocked one), and nothing is
    /// dereferenced.
    #[test]
    fn cleared_or_missing_pasid_faults() {
        let Some((dev, mm)) = device_and_mm() else {
            return;
        };
        let key = 0x1000 as *const c_void;
        let mut buf = [0u8; 8];
        let r = dev.dma(3, 0x1000, &mut buf, false, &mut Paging::blocking());
        assert_eq!(r.map_err(|f| f.reason), Err(FaultReason::NoPasid));
        assert!(dev.install(3, &mm, key).is_ok());
        dev.block(3, key, Blocked::FaultsIgnored);
        let r = dev.dma(3, 0x1000, &mut buf, true, &mut Paging::blocking());
        assert_eq!(r.map_err(|f| f.reason), Err(FaultReason::PasidCleared));
        dev.block(3, key, Blocked::Abort);
        let r = dev.dma(3, 0x1000, &mut buf, false, &mut Paging::blocking());
        assert_eq!(r.map_err(|f| f.reason), Err(FaultReason::Aborted));
        assert_eq!(dev.fault_total(), 1);
        assert_eq!(dev.counters.faults_suppressed.load(Relaxed), 2);
    }

    /// A device the IOMMU did not probe has no port to its iopf queue: its
    /// page requests cannot be enabled, and a group for a live entry is
    /// refused, with nothing sent.
    #[test]
    fn without_page_requests_nothing_is_sent() {
        let Some((dev, mm)) = device_and_mm() else {
            return;
        };
        assert_eq!(dev.iopf_get().err(), Some(ENODEV));
        assert!(dev.install(3, &mm, 0x1000 as *const c_void).is_ok());
        let r = dev.send_group(3, 0x1000, 1, false, &mut Paging::blocking());
        assert_eq!(r.map_err(|f| f.reason), Err(FaultReason::RequestDenied));
        assert_eq!(dev.prq.requests.load(Relaxed), 0);
        assert_eq!(dev.prq.groups.load(Relaxed), 0);
    }

    /// With page requests enabled, a group reaches the IOMMU core, whose
    /// answer comes back through the IOMMU's `page_response`: INVALID, as
    /// no SVA domain is attached to the PASID in the core (only the
    /// device's table has an entry). Every group sent is answered once.
    #[test]
    fn a_group_reaches_the_core_and_is_answered() -> Result {
        // The suite runs once the module is live, with at least one device,
        // which nothing binds yet.
        let dev = bus::find_device(0);
        assert!(dev.is_some());
        let Some(sdev) = dev.as_deref().and_then(SimDevice::of) else {
            return Ok(());
        };
        let mm = test_mm()?;
        let pasid = sdev.max_pasids() - 1;
        let counts = |d: &SimDevice| {
            let p = &d.prq;
            [&p.requests, &p.groups, &p.invalid, &p.stray, &p.timeouts].map(|c| c.load(Relaxed))
        };
        let before = counts(&sdev);
        sdev.iopf_get()?;
        let sent = sdev
            .install(pasid, &mm, 0x1000 as *const c_void)
            .map(|()| sdev.send_group(pasid, 0x10000, 1, true, &mut Paging::blocking()));
        sdev.remove(pasid);
        sdev.iopf_put(pasid);
        assert!(matches!(sent, Ok(Ok(Some(Response::Invalid)))));
        let after = counts(&sdev);
        assert_eq!(after[0] - before[0], 1);
        assert_eq!(after[1] - before[1], 1);
        assert_eq!(after[2] - before[2], 1);
        assert_eq!(after[3..], before[3..]);
        Ok(())
    }
}
