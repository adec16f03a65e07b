// SPDX-License-Identifier: GPL-2.0

//! rsva serving the kernel's SVA API.
//!
//! With patches/0003, a module can serve `iommu_sva_bind_device()`,
//! `iommu_sva_unbind_device()` and `iommu_sva_get_pasid()`: while rsva is
//! set as the provider, uacce, IDXD and every other caller bind through
//! [`Sva`]. The IOMMU core records the provider in each handle, so a
//! handle is always unbound by the implementation that made it, and it
//! pins this module while a handle lives.
//!
//! [`Service::set_serving`] is the switch (module parameter `serve` at
//! load, `debugfs/rsva/serve` at run time). Turning it on is refused while
//! the IOMMU core has bonds of its own, turning it off while rsva has any;
//! turning it off ends rsva's PASID leases (the PASIDs stay with their
//! mms) in the provider's `drain`, which the IOMMU core calls with every
//! bind held off, before its own first bind: the two implementations never
//! manage one mm at the same time. rsva's own entry points
//! (`rsva_sva_bind_device()`, ...) work only while it serves, hold the
//! serve lock for reading so the switch cannot pass them, and pin the
//! module from bind to unbind, as the IOMMU core does for its handles.
//!
//! One bond serves both APIs (the same handle), counting its users per
//! [`Api`]: a handle is unbound only through the API that bound it
//! (`EINVAL` otherwise), so the core's count of rsva's handles and the
//! module references stay balanced.

use core::ptr::NonNull;

use kernel::{
    bindings,
    error::to_result,
    mm::{Mm, MmWithUser},
    prelude::*,
    sync::{
        atomic::{Acquire, Atomic, Relaxed, Release},
        Arc,
    },
};

use crate::{
    dma::claims::Claims,
    kext::glue::{self, Rwsem, RwsemGuard},
    sva::bond::{Api, Bond, StopFn, Sva},
    sva::pasid::{PasidRange, PASID_INVALID},
};

/// The provider table given to the IOMMU core.
pub(crate) struct ProviderOps(bindings::iommu_sva_provider);

// SAFETY: Never written after initialisation; only its address is used.
unsafe impl Sync for ProviderOps {}

pub(crate) static PROVIDER: ProviderOps = ProviderOps(bindings::iommu_sva_provider {
    owner: <crate::LocalModule as kernel::ModuleMetadata>::THIS_MODULE.as_ptr(),
    bind: Some(provider_bind),
    unbind: Some(provider_unbind),
    get_pasid: Some(provider_get_pasid),
    drain: Some(provider_drain),
});

/// rsva's SVA service, whether it serves the kernel's SVA API, and the DMA
/// ownership claims made through its C API.
#[pin_data]
pub(crate) struct Service {
    #[pin]
    pub(crate) sva: Sva,
    serving: Atomic<bool>,
    #[pin]
    pub(crate) claims: Claims,
}

/// The module's service; set while the module is initialised.
static SERVICE: Atomic<*const Service> = Atomic::new(core::ptr::null());

/// The service, unless the module is being loaded or unloaded.
pub(crate) fn service() -> Option<&'static Service> {
    let s = SERVICE.load(Acquire);
    // SAFETY: Set by `Service::publish` to a pinned service that lives until
    // `unpublish`, which runs only when no C caller can reach rsva any more
    // (no provider, no users of the module) and the debugfs files are gone.
    (!s.is_null()).then(|| unsafe { &*s })
}

impl Service {
    /// A service that does not serve yet.
    pub(crate) fn new(range: PasidRange, limit: u32) -> impl PinInit<Self> {
        pin_init!(Self {
            sva <- Sva::new(range, limit, &PROVIDER.0),
            serving: Atomic::new(false),
            claims <- Claims::new(),
        })
    }

    /// Makes the service reachable from callbacks and the C API.
    pub(crate) fn publish(self: Pin<&Self>) {
        SERVICE.store(core::ptr::from_ref(self.get_ref()), Release);
    }

    /// Undoes [`Self::publish`], stops serving and ends every PASID lease,
    /// waiting for the work items and the notifiers; the service may then
    /// be dropped. Module exit: no bond is left (each pins the module).
    pub(crate) fn shut_down(&self) {
        if let Err(e) = self.set_serving(false) {
            pr_err!("still serving at unload: {e:?}\n");
        }
        SERVICE.store(core::ptr::null(), Release);
        self.sva.pasids.end_all();
        glue::flush_deferred();
        // SAFETY: No locks held; waits for the leases' `free_notifier`.
        unsafe { bindings::mmu_notifier_synchronize() };
    }

    /// Whether rsva serves the kernel's SVA API.
    pub(crate) fn serving(&self) -> bool {
        self.serving.load(Relaxed)
    }

    /// Turns serving on or off. `EBUSY` when the IOMMU core has live bonds
    /// (on) or rsva has (off), or another provider is set. Process context,
    /// no locks held.
    pub(crate) fn set_serving(&self, on: bool) -> Result {
        if on {
            // The leases that switching off ended keep their charges until
            // they are freed, after the notifiers' grace period: wait for
            // that, so that an mm whose PASID the next lease adopts is
            // charged once, not twice for a while (review finding 15).
            glue::flush_deferred();
            // SAFETY: Process context, no locks held (the callers').
            unsafe { bindings::mmu_notifier_synchronize() };
        }
        let _switch = RwsemGuard::lock(Rwsem::Serve, true);
        if on == self.serving() {
            return Ok(());
        }
        if on {
            // SAFETY: `PROVIDER` is static and complete.
            to_result(unsafe { bindings::iommu_sva_set_provider(&PROVIDER.0) })?;
        } else {
            if self.sva.live() != 0 {
                return Err(EBUSY);
            }
            // SAFETY: As above; refused while handles of ours are bound.
            // Our `provider_drain` ends every lease before the core binds.
            to_result(unsafe { bindings::iommu_sva_clear_provider(&PROVIDER.0) })?;
        }
        self.serving.store(on, Relaxed);
        Ok(())
    }

    /// Binds through rsva's own entry points: only while serving (`ENODEV`
    /// otherwise, and while the module is being unloaded). `EINVAL` for a
    /// null device or mm, `ESRCH` for a dead mm. The bond pins the module
    /// until [`Self::unbind`].
    pub(crate) fn bind(
        &self,
        dev: *mut bindings::device,
        mm: *mut bindings::mm_struct,
        stop: Option<(StopFn, usize)>,
    ) -> Result<Arc<Bond>> {
        // Not even the serve lock inside an mm's release (see `Sva::bind`).
        if crate::sva::bond::in_stop_callback() {
            return Err(EDEADLK);
        }
        let _read = RwsemGuard::lock(Rwsem::Serve, false);
        if !self.serving() {
            return Err(ENODEV);
        }
        let pin = glue::ModuleRef::get()?;
        // SAFETY: Our callers pass a valid device and mm, referenced, or null.
        let bond = unsafe { self.bind_unlocked(dev, mm, stop, Api::Own) }?;
        pin.keep();
        Ok(bond)
    }

    /// Unbinds a handle of rsva's own entry points, and unpins the module.
    ///
    /// # Safety
    ///
    /// Called from a module that uses rsva's symbols (rsva outlives it).
    pub(crate) unsafe fn unbind(&self, handle: *const bindings::iommu_sva) -> Result {
        self.sva.unbind(handle, Api::Own)?;
        // SAFETY: The reference the bind kept; our caller keeps rsva.
        unsafe { glue::ModuleRef::put() };
        Ok(())
    }

    /// # Safety
    ///
    /// `dev` and `mm` must be null or valid, with references held by the
    /// caller, and `dev` must have a driver bound until unbind.
    unsafe fn bind_unlocked(
        &self,
        dev: *mut bindings::device,
        mm: *mut bindings::mm_struct,
        stop: Option<(StopFn, usize)>,
        api: Api,
    ) -> Result<Arc<Bond>> {
        let dev = NonNull::new(dev).ok_or(EINVAL)?;
        if mm.is_null() {
            return Err(EINVAL);
        }
        // SAFETY: `mm` is valid and referenced by the caller.
        let mm: &Mm = unsafe { Mm::from_raw(mm) };
        let mm: kernel::sync::aref::ARef<MmWithUser> = mm.mmget_not_zero().ok_or(ESRCH)?;
        // SAFETY: By the safety requirements.
        unsafe { self.sva.bind(dev, &mm, stop, api) }
    }

    /// Binds the current task's mm (`EINVAL` in a kernel thread).
    pub(crate) fn bind_current(&self, dev: *mut bindings::device) -> Result<Arc<Bond>> {
        let mm = glue::current_mm();
        if mm.is_null() {
            return Err(EINVAL);
        }
        self.bind(dev, mm, None)
    }
}

/// `iommu_sva_bind_device()` while rsva serves.
///
/// # Safety
///
/// Called by the IOMMU core with a device that has a group and an mm whose
/// user reference the caller holds.
unsafe extern "C" fn provider_bind(
    dev: *mut bindings::device,
    mm: *mut bindings::mm_struct,
) -> *mut bindings::iommu_sva {
    let Some(s) = service() else {
        return ENODEV.to_ptr();
    };
    // SAFETY: By the core's contract; it holds its provider lock, so the
    // switch cannot pass this bind.
    match unsafe { s.bind_unlocked(dev, mm, None, Api::Kernel) } {
        Ok(bond) => bond.handle(),
        Err(e) => e.to_ptr(),
    }
}

/// `iommu_sva_unbind_device()` for a handle rsva made: an errno, and the
/// core leaves its count alone, for a handle that holds no reference from
/// `iommu_sva_bind_device()`.
///
/// # Safety
///
/// Called by the IOMMU core with a handle whose provider is rsva.
unsafe extern "C" fn provider_unbind(handle: *mut bindings::iommu_sva) -> c_int {
    let Some(s) = service() else {
        return ENODEV.to_errno();
    };
    match s.sva.unbind(handle, Api::Kernel) {
        Ok(()) => 0,
        Err(e) => {
            pr_err!(
                "iommu_sva_unbind_device() of SVA handle {:p} refused: {e:?}\n",
                handle
            );
            e.to_errno()
        }
    }
}

/// Called by `iommu_sva_clear_provider()` with every bind held off: ends
/// every PASID lease, so the IOMMU core's first bind of each of those mms
/// finds it untracked.
///
/// # Safety
///
/// Called by the IOMMU core, in process context.
unsafe extern "C" fn provider_drain() {
    if let Some(s) = service() {
        s.sva.pasids.end_all();
    }
    // Leases that the mms' releases ended untrack from rsva's workqueue.
    glue::flush_deferred();
}

/// `iommu_sva_get_pasid()` for a handle rsva made.
///
/// # Safety
///
/// Called by the IOMMU core with a handle whose provider is rsva.
unsafe extern "C" fn provider_get_pasid(handle: *mut bindings::iommu_sva) -> u32 {
    service()
        .and_then(|s| s.sva.lookup(handle).ok())
        .map_or(PASID_INVALID, |b| b.pasid())
}
