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

use core::ptr::NonNull;

use kernel::{bindings, new_spinlock, prelude::*, sync::SpinLock, types::Opaque};

use crate::{
    device::SimDevice,
    glue,
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
/// - `notifier` is registered on the domain's mm from allocation until
///   `free` puts or unregisters it; the memory is freed in `free_notifier`
///   after a put, or by `free` right after the unregistration.
/// - Every device in `attached` outlives the attachment: devices are
///   destroyed only after every domain is detached from them.
#[pin_data]
pub(crate) struct SvaDomain {
    domain: Opaque<bindings::iommu_domain>,
    notifier: Opaque<bindings::mmu_notifier>,
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

static MMU_OPS: CStatic<bindings::mmu_notifier_ops> = CStatic::new(bindings::mmu_notifier_ops {
    release: Some(release),
    arch_invalidate_secondary_tlbs: Some(invalidate_secondary_tlbs),
    free_notifier: Some(free_notifier),
    ..pin_init::zeroed()
});

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
        let d = KBox::pin_init(
            try_pin_init!(Self {
                domain: Opaque::zeroed(),
                notifier: Opaque::zeroed(),
                attached <- new_spinlock!(KVec::new()),
            }),
            GFP_KERNEL,
        )?;
        // SAFETY: The domain is never moved: from here on it is owned through
        // the raw pointer, by the IOMMU core and the notifier.
        let raw = KBox::into_raw(unsafe { Pin::into_inner_unchecked(d) });
        // SAFETY: `raw` is valid and not yet shared.
        unsafe {
            (*(*raw).domain.get()).ops = SVA_DOMAIN_OPS.get();
            (*(*raw).notifier.get()).ops = MMU_OPS.get();
        }
        // SAFETY: The notifier is initialised; `mm` has a user reference.
        let ret = unsafe { bindings::mmu_notifier_register((*raw).notifier.get(), mm) };
        if ret != 0 {
            // SAFETY: Registration failed, nothing else knows `raw`.
            drop(unsafe { KBox::from_raw(raw) });
            return Err(Error::from_errno(ret));
        }
        // SAFETY: `raw` is valid.
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

    /// # Safety
    ///
    /// `mn` must be the notifier of a live `SvaDomain`.
    unsafe fn from_notifier<'a>(mn: *mut bindings::mmu_notifier) -> &'a SvaDomain {
        // SAFETY: By the safety requirements.
        unsafe {
            &*kernel::container_of!(
                mn.cast::<Opaque<bindings::mmu_notifier>>(),
                SvaDomain,
                notifier
            )
        }
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
    let Some(sdev) = (unsafe { SimDevice::from_raw(dev) }) else {
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
    let Some(sdev) = (unsafe { SimDevice::from_raw(dev) }) else {
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
    match Personality::current().notifier_end() {
        // SAFETY: The notifier was registered at allocation; the memory is
        // freed in `free_notifier` once SRCU readers are done.
        NotifierEnd::Put => unsafe { bindings::mmu_notifier_put(sdom.notifier.get()) },
        NotifierEnd::Unregister => {
            // SAFETY: The core set `mm` when it allocated the domain, and
            // the notifier's mmgrab keeps it valid until unregistered.
            let mm = unsafe { (*domain).__bindgen_anon_1.__bindgen_anon_2.mm };
            let raw = core::ptr::from_ref(sdom).cast_mut();
            // SAFETY: The notifier is registered on `mm`. This waits for
            // every notifier callback to end (`synchronize_srcu()`): called
            // from inside one, it never returns, as on AMD.
            unsafe { bindings::mmu_notifier_unregister(sdom.notifier.get(), mm) };
            // SAFETY: Unregistered and its callbacks are done; `raw` came
            // from `KBox::into_raw` in `alloc` and nothing else frees it.
            drop(unsafe { KBox::from_raw(raw) });
        }
    }
}

/// The mm is going away (exit_mmap) or the notifier is unregistered: stop
/// translating for every PASID of the domain and invalidate, blocking the
/// entries (Intel, SMMUv3) or removing them (AMD). Frees nothing,
/// idempotent, and may run concurrently with itself.
///
/// # Safety
///
/// `mn` must be the notifier of a live SVA domain.
unsafe extern "C" fn release(mn: *mut bindings::mmu_notifier, _mm: *mut bindings::mm_struct) {
    // SAFETY: `mn` is the notifier of a live domain: the notifier is freed
    // only after it was unhashed and SRCU readers, such as us, are done.
    let sdom = unsafe { SvaDomain::from_notifier(mn) };
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

/// The CPU page tables of the mm change in `[start, end)`: invalidate the
/// IOTLBs before the pages can be freed.
///
/// # Safety
///
/// `mn` must be the notifier of a live SVA domain.
unsafe extern "C" fn invalidate_secondary_tlbs(
    mn: *mut bindings::mmu_notifier,
    _mm: *mut bindings::mm_struct,
    start: c_ulong,
    end: c_ulong,
) {
    // SAFETY: As in `release`.
    let sdom = unsafe { SvaDomain::from_notifier(mn) };
    sdom.for_each_attachment(|dev, pasid| dev.flush_range(pasid, start as u64, end as u64));
}

/// Frees the domain, after the last put and an SRCU grace period.
///
/// # Safety
///
/// `mn` must be the notifier of an `SvaDomain`, called once.
unsafe extern "C" fn free_notifier(mn: *mut bindings::mmu_notifier) {
    // SAFETY: Called once, after the last `mmu_notifier_put()` and an SRCU
    // grace period: nothing uses the domain any more.
    let raw = unsafe {
        kernel::container_of!(
            mn.cast::<Opaque<bindings::mmu_notifier>>(),
            SvaDomain,
            notifier
        )
    };
    // SAFETY: `raw` came from `KBox::into_raw` in `alloc`.
    drop(unsafe { KBox::from_raw(raw) });
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
