// SPDX-License-Identifier: GPL-2.0

//! The SVA domain of the simulated IOMMU: one process address space (mm)
//! shared with devices through PASIDs.
//!
//! Its lifetime follows the rules worked out for SVA (the threads *Re:
//! [PATCH v4 01/26] mm/mmu_notifiers: pass private data down to
//! alloc_notifier()*, Jason Gunthorpe, Jean-Philippe Brucker, March 2020,
//! and the `struct hmm` lifetime review, Jason Gunthorpe, Ralph Campbell,
//! May 2019): the domain registers an mmu notifier on the mm (which holds
//! `mmgrab()`); the notifier's `release` only stops the PASIDs of the
//! domain from translating and invalidates the IOTLBs, frees nothing, and
//! may run more than once; `arch_invalidate_secondary_tlbs` flushes the
//! IOTLBs before the CPU page tables change; the domain is freed by the
//! IOMMU core through `free`. How `release` stops the PASIDs and how `free`
//! gives the notifier back depend on the personality (`personality.rs`):
//! Intel and SMMUv3 put the notifier and free the memory in
//! `free_notifier`, after an SRCU grace period (module exit waits for those
//! with `mmu_notifier_synchronize()`); AMD unregisters it, synchronously,
//! and frees the memory at once.

#![forbid(unsafe_code)]

use kernel::{
    device::Device,
    mm::{Mm, MmWithUser},
    new_spinlock,
    prelude::*,
    sync::{atomic::Relaxed, Arc, ArcBorrow, SpinLock},
};

use crate::{
    device::SimDevice,
    kext::iommu::domain::{SvaDomain, SvaDomainOps},
    personality::{NotifierEnd, OnRelease, Personality},
};

/// One (device, PASID) the domain is attached to; the device is kept for
/// as long as the attachment.
struct Attachment {
    dev: Arc<SimDevice>,
    pasid: u32,
}

/// The platform's data of an SVA domain ([`SvaDomain`] holds the C domain
/// and the mm notifier): the (device, PASID) pairs it is attached to.
#[pin_data]
pub(crate) struct SimSvaDomain {
    #[pin]
    attached: SpinLock<KVec<Attachment>>,
}

/// The name of a domain in the PASID tables (only compared).
fn key(domain: &SvaDomain<SimSvaDomain>) -> *const c_void {
    core::ptr::from_ref(domain).cast()
}

impl SimSvaDomain {
    /// Allocates an SVA domain for `mm` and registers its notifier.
    pub(crate) fn alloc(mm: &MmWithUser) -> Result<Arc<SvaDomain<Self>>> {
        SvaDomain::new(
            try_pin_init!(Self {
                attached <- new_spinlock!(KVec::new()),
            }),
            mm,
        )
    }

    /// Forgets every attachment of `pasid` of `dev`; the device references
    /// go after the lock is dropped.
    fn detach(&self, dev: &SimDevice, pasid: u32) {
        loop {
            let gone = {
                let mut attached = self.attached.lock();
                let Some(i) = attached
                    .iter()
                    .position(|a| core::ptr::eq(&*a.dev, dev) && a.pasid == pasid)
                else {
                    return;
                };
                let last = attached.len() - 1;
                attached.swap(i, last);
                attached.pop()
            };
            drop(gone);
        }
    }

    fn for_each_attachment(&self, mut f: impl FnMut(&SimDevice, u32)) {
        for a in self.attached.lock().iter() {
            f(&a.dev, a.pasid);
        }
    }

    /// Detaches every (device, PASID), calling `f` on each under the lock
    /// (AMD's release: `remove_dev_pasid()` on the whole list).
    fn detach_all(&self, mut f: impl FnMut(&SimDevice, u32)) {
        let gone = {
            let mut attached = self.attached.lock();
            for a in attached.iter() {
                f(&a.dev, a.pasid);
            }
            core::mem::replace(&mut *attached, KVec::new())
        };
        drop(gone);
    }
}

/// Removes the PASID entry of `sdev` and detaches `old` (the blocked
/// domain's `set_dev_pasid`, which is how the core detaches a PASID).
pub(crate) fn block_pasid(sdev: &SimDevice, pasid: u32, old: Option<&SvaDomain<SimSvaDomain>>) {
    sdev.remove(pasid);
    if let Some(old) = old {
        // As every driver does before the PASID can be reused
        // (`intel_iommu_drain_pasid_prq()`, AMD's and SMMUv3's
        // `iopf_queue_flush_dev()`): nothing of the PASID is handled after
        // this returns.
        sdev.iopf_put(pasid);
        old.detach(sdev, pasid);
    }
}

impl SvaDomainOps for SimSvaDomain {
    type DeviceData = Arc<SimDevice>;

    /// Attaches a PASID of a device: page requests enabled for a PASID that
    /// had no SVA domain, then the PASID table entry.
    fn set_dev_pasid(
        sdom: &SvaDomain<Self>,
        _dev: &Device,
        sdev: ArcBorrow<'_, SimDevice>,
        pasid: u32,
        mm: &Mm,
        old: Option<&SvaDomain<Self>>,
    ) -> Result {
        // A PASID that had no SVA domain gets page requests enabled.
        if old.is_none() {
            sdev.iopf_get()?;
        }
        let undo = |e: Error| {
            if old.is_none() {
                sdev.iopf_put(pasid);
            }
            e
        };
        {
            let mut attached = sdom.attached.lock();
            let a = Attachment {
                dev: sdev.into(),
                pasid,
            };
            if let Err(e) = attached.push(a, GFP_ATOMIC) {
                drop(attached);
                return Err(undo(e.into()));
            }
        }
        if let Err(e) = sdev.install(pasid, mm, key(sdom)) {
            sdom.detach(&sdev, pasid);
            return Err(undo(e));
        }
        if let Some(old) = old {
            if !core::ptr::eq(old, sdom) {
                old.detach(&sdev, pasid);
            }
        }
        Ok(())
    }

    /// Puts the notifier, which frees the domain after an SRCU grace
    /// period (Intel, SMMUv3), or unregisters it, waiting for the grace
    /// period here, and frees the domain at once (AMD).
    fn free(sdom: Arc<SvaDomain<Self>>) {
        match Personality::current().notifier_end() {
            NotifierEnd::Put => {
                sdom.put_notifier();
            }
            // This waits for every notifier callback to end: called from
            // inside one, it never returns, as on AMD.
            NotifierEnd::Unregister => {
                SvaDomain::unregister_notifier(&sdom);
            }
        }
    }

    /// The mm is going away (exit_mmap) or the notifier is unregistered:
    /// stop translating for every PASID of the domain and invalidate,
    /// blocking the entries (Intel, SMMUv3) or removing them (AMD). Frees
    /// nothing, idempotent, and may run concurrently with itself.
    fn release(sdom: &SvaDomain<Self>) {
        let key = key(sdom);
        let count = |dev: &SimDevice| dev.counters.releases.add(1, Relaxed);
        match Personality::current().on_release() {
            OnRelease::Block(how) => sdom.for_each_attachment(|dev, pasid| {
                dev.block(pasid, key, how);
                count(dev);
            }),
            OnRelease::Remove => sdom.detach_all(|dev, pasid| {
                dev.remove(pasid);
                count(dev);
            }),
        }
    }

    /// The CPU page tables of the mm change in `[start, end)`: invalidate
    /// the IOTLBs before the pages can be freed.
    fn invalidate_secondary_tlbs(sdom: &SvaDomain<Self>, start: usize, end: usize) {
        sdom.for_each_attachment(|dev, pasid| dev.flush_range(pasid, start as u64, end as u64));
    }
}
