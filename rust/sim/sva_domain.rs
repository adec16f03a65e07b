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

#![allow(
    unsafe_code,
    reason = "the SVA domain's callbacks have no layer type yet"
)]

use core::ptr::NonNull;

use kernel::{
    bindings,
    mm::{
        mmu_notifier::{MmuNotifier, MmuNotifierOps},
        MmWithUser,
    },
    new_spinlock,
    prelude::*,
    sync::{Arc, ArcBorrow, SpinLock},
    types::Opaque,
};

use crate::{
    device::SimDevice,
    ffi, glue,
    glue::CStatic,
    personality::{NotifierEnd, OnRelease, Personality},
};

/// One (device, PASID) the domain is attached to.
struct Attachment {
    dev: *const SimDevice,
    pasid: u32,
}

/// An SVA domain.
///
/// # Invariants
///
/// - `domain` is the `struct iommu_domain` the IOMMU core knows; its `ops`
///   are [`SVA_DOMAIN_OPS`].
/// - The domain lives in an [`Arc`]: the IOMMU core holds one reference
///   from allocation until `free`, and `notifier`'s registration another,
///   from allocation until `free` puts the notifier (then the reference
///   goes in `free_notifier`, after an SRCU grace period) or unregisters
///   it (then it goes as the unregistration returns).
/// - Every device in `attached` outlives the attachment: devices are
///   destroyed only after every domain is detached from them.
#[pin_data]
pub(crate) struct SvaDomain {
    domain: Opaque<bindings::iommu_domain>,
    notifier: MmuNotifier<SvaDomain>,
    #[pin]
    attached: SpinLock<KVec<Attachment>>,
}

// SAFETY: The raw device pointers are only dereferenced under `attached`'s
// lock, while the invariants keep them valid, from any thread.
unsafe impl Send for Attachment {}

pub(crate) static SVA_DOMAIN_OPS: CStatic<bindings::iommu_domain_ops> =
    CStatic::new(bindings::iommu_domain_ops {
        set_dev_pasid: Some(set_dev_pasid),
        free: Some(free),
        ..pin_init::zeroed()
    });

kernel::impl_has_mmu_notifier!(impl HasMmuNotifier for SvaDomain { self.notifier });

// SAFETY: The C domain is written by the IOMMU core under its own locks
// and read here only for `ops` and `mm`, which do not change after
// allocation; the attachments are under a spinlock.
unsafe impl Send for SvaDomain {}
// SAFETY: Shared references read only `ops` and `mm` of the C domain,
// which do not change after allocation, and reach the attachments only
// under their spinlock.
unsafe impl Sync for SvaDomain {}

impl SvaDomain {
    /// Allocates an SVA domain for `mm` and registers its notifier.
    ///
    /// # Safety
    ///
    /// `mm` must be valid with a user reference held by the caller
    /// (`iommu_sva_bind_device()`'s contract).
    pub(crate) unsafe fn alloc(
        mm: *mut bindings::mm_struct,
    ) -> Result<*mut bindings::iommu_domain> {
        let d = Arc::pin_init(
            try_pin_init!(Self {
                domain: Opaque::zeroed(),
                notifier: MmuNotifier::new(),
                attached <- new_spinlock!(KVec::new()),
            }),
            GFP_KERNEL,
        )?;
        // SAFETY: Not shared yet.
        unsafe { (*d.domain.get()).ops = SVA_DOMAIN_OPS.get() };
        // SAFETY: The caller holds a user reference on `mm`.
        MmuNotifier::register(&d, unsafe { MmWithUser::from_raw(mm) })?;
        // The IOMMU core's reference, given back in `free`.
        let raw = Arc::into_raw(d);
        // SAFETY: `raw` is valid while the core's reference lives.
        Ok(unsafe { (*raw).domain.get() })
    }

    /// The SVA domain behind a domain of ours, or `None` for any other.
    ///
    /// # Safety
    ///
    /// `domain` must be null or a valid IOMMU domain.
    unsafe fn from_domain<'a>(domain: *mut bindings::iommu_domain) -> Option<&'a SvaDomain> {
        if domain.is_null() {
            return None;
        }
        // SAFETY: `domain` is valid by the safety requirements.
        if unsafe { (*domain).ops } != SVA_DOMAIN_OPS.get().cast_const() {
            return None;
        }
        // SAFETY: A domain with our SVA ops is the `domain` field of an
        // `SvaDomain`, alive while the core uses it.
        Some(unsafe {
            &*kernel::container_of!(
                domain.cast::<Opaque<bindings::iommu_domain>>(),
                SvaDomain,
                domain
            )
        })
    }

    fn key(&self) -> *const c_void {
        core::ptr::from_ref(self).cast()
    }

    fn detach(&self, dev: &SimDevice, pasid: u32) {
        let me = dev as *const SimDevice;
        self.attached
            .lock()
            .retain(|a| !(a.dev == me && a.pasid == pasid));
    }

    fn for_each_attachment(&self, mut f: impl FnMut(&SimDevice, u32)) {
        for a in self.attached.lock().iter() {
            // SAFETY: Devices outlive their attachments (type invariant).
            f(unsafe { &*a.dev }, a.pasid);
        }
    }

    /// Detaches every (device, PASID), calling `f` on each under the lock
    /// (AMD's release: `remove_dev_pasid()` on the whole list).
    fn detach_all(&self, mut f: impl FnMut(&SimDevice, u32)) {
        let mut attached = self.attached.lock();
        for a in attached.iter() {
            // SAFETY: Devices outlive their attachments (type invariant).
            f(unsafe { &*a.dev }, a.pasid);
        }
        attached.clear();
    }
}

/// Removes the PASID entry of `dev` and detaches `old` (the blocked
/// domain's `set_dev_pasid`, which is how the core detaches a PASID).
///
/// # Safety
///
/// `dev` must be a valid device and `old` null or a valid domain.
pub(crate) unsafe fn block_pasid(
    dev: *mut bindings::device,
    pasid: u32,
    old: *mut bindings::iommu_domain,
) -> c_int {
    // SAFETY: By the safety requirements.
    let Some(sdev) = (unsafe { ffi::sim_device(dev) }) else {
        return ENODEV.to_errno();
    };
    sdev.remove(pasid);
    // SAFETY: By the safety requirements.
    if let Some(old) = unsafe { SvaDomain::from_domain(old) } {
        // As every driver does before the PASID can be reused
        // (`intel_iommu_drain_pasid_prq()`, AMD's and SMMUv3's
        // `iopf_queue_flush_dev()`): nothing of the PASID is handled after
        // this returns.
        sdev.iopf_put(pasid);
        old.detach(sdev, pasid);
    }
    0
}

/// `set_dev_pasid` of an SVA domain: attaches a PASID of a device.
///
/// # Safety
///
/// Called by the IOMMU core with one of our SVA domains, a valid device and
/// null or a valid old domain.
unsafe extern "C" fn set_dev_pasid(
    domain: *mut bindings::iommu_domain,
    dev: *mut bindings::device,
    pasid: bindings::ioasid_t,
    old: *mut bindings::iommu_domain,
) -> c_int {
    // SAFETY: The core passes a valid device.
    let Some(sdev) = (unsafe { ffi::sim_device(dev) }) else {
        return ENODEV.to_errno();
    };
    // SAFETY: `domain` is one of our SVA domains (these are its ops).
    let Some(sdom) = (unsafe { SvaDomain::from_domain(domain) }) else {
        return EINVAL.to_errno();
    };
    // SAFETY: The core set `mm` when it allocated the SVA domain.
    let Some(mm) = NonNull::new(unsafe { (*domain).__bindgen_anon_1.__bindgen_anon_2.mm }) else {
        return EINVAL.to_errno();
    };
    let me = sdev as *const SimDevice;
    // SAFETY: The core passes null or a valid domain.
    let old = unsafe { SvaDomain::from_domain(old) };
    // A PASID that had no SVA domain gets page requests enabled.
    if old.is_none() {
        if let Err(e) = sdev.iopf_get() {
            return e.to_errno();
        }
    }
    let undo = |e: Error| {
        if old.is_none() {
            sdev.iopf_put(pasid);
        }
        e.to_errno()
    };
    {
        let mut attached = sdom.attached.lock();
        if let Err(e) = attached.push(Attachment { dev: me, pasid }, GFP_ATOMIC) {
            drop(attached);
            return undo(e.into());
        }
    }
    // SAFETY: The core set `mm` when it allocated the SVA domain, and the
    // domain's notifier holds an `mmgrab()` on it while the domain lives.
    let mm = unsafe { kernel::mm::Mm::from_raw(mm.as_ptr()) };
    if let Err(e) = sdev.install(pasid, mm, sdom.key()) {
        sdom.detach(sdev, pasid);
        return undo(e);
    }
    if let Some(old) = old {
        if !core::ptr::eq(old, sdom) {
            old.detach(sdev, pasid);
        }
    }
    0
}

/// `free` of an SVA domain: puts the notifier, which frees the domain
/// after an SRCU grace period (Intel, SMMUv3), or unregisters it, waiting
/// for the grace period here, and frees the domain at once (AMD).
///
/// # Safety
///
/// Called by the IOMMU core once per domain.
unsafe extern "C" fn free(domain: *mut bindings::iommu_domain) {
    // SAFETY: The core frees only domains it got from us, once.
    let Some(sdom) = (unsafe { SvaDomain::from_domain(domain) }) else {
        return;
    };
    // SAFETY: The core's reference, from `Arc::into_raw` in `alloc`; it
    // frees a domain once.
    let sdom = unsafe { Arc::from_raw(core::ptr::from_ref(sdom)) };
    match Personality::current().notifier_end() {
        NotifierEnd::Put => {
            sdom.notifier.put();
        }
        // This waits for every notifier callback to end: called from
        // inside one, it never returns, as on AMD.
        NotifierEnd::Unregister => {
            MmuNotifier::unregister(&sdom);
        }
    }
}

#[vtable]
impl MmuNotifierOps for SvaDomain {
    /// The mm is going away (exit_mmap) or the notifier is unregistered:
    /// stop translating for every PASID of the domain and invalidate,
    /// blocking the entries (Intel, SMMUv3) or removing them (AMD). Frees
    /// nothing, idempotent, and may run concurrently with itself.
    fn release(sdom: ArcBorrow<'_, Self>) {
        let key = sdom.key();
        let count = |dev: &SimDevice| dev.counters.releases.add(1, kernel::sync::atomic::Relaxed);
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
    fn invalidate_secondary_tlbs(sdom: ArcBorrow<'_, Self>, start: usize, end: usize) {
        sdom.for_each_attachment(|dev, pasid| dev.flush_range(pasid, start as u64, end as u64));
    }
}

/// Allocates an SVA domain for the IOMMU core (`domain_alloc_sva`).
///
/// # Safety
///
/// `mm` must be valid, with a user reference held by the caller.
pub(crate) unsafe extern "C" fn domain_alloc_sva(
    _dev: *mut bindings::device,
    mm: *mut bindings::mm_struct,
) -> *mut bindings::iommu_domain {
    // SAFETY: The core's caller holds a user reference on `mm`.
    match unsafe { SvaDomain::alloc(mm) } {
        Ok(d) => d,
        Err(e) => glue::err_ptr(e),
    }
}
