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
//! One bond serves both APIs, counting its users per
//! [`Api`](crate::sva::bond::Api), and is named
//! differently by each: by the address of its `struct iommu_sva` in the
//! kernel's, by a token in rsva's own (a bond's token dies with the last
//! reference of rsva's API, so a stale one never names a later bond). A
//! reference is unbound only through the API that took it, so the core's
//! count of rsva's handles and the module references stay balanced.

#![forbid(unsafe_code)]

use kernel::{
    device::{Bound, Device},
    mm::MmWithUser,
    prelude::*,
    sync::{
        atomic::{Atomic, Relaxed},
        Arc,
    },
};

use crate::{
    dma::claims::Claims,
    kext::glue::{self, Rwsem, RwsemGuard},
    kext::handles::Token,
    kext::iommu::sva::{BoundByCaller, Provider},
    sva::bond::{Bond, Stop, Sva},
    sva::pasid::PasidRange,
};

/// rsva's SVA service, whether it serves the kernel's SVA API, and the DMA
/// ownership claims made through its C API.
#[pin_data]
pub(crate) struct Service {
    #[pin]
    pub(crate) sva: Sva,
    provider: &'static Provider,
    serving: Atomic<bool>,
    #[pin]
    pub(crate) claims: Claims,
}

impl Service {
    /// A service that does not serve yet, and serves the kernel's SVA API
    /// through `provider` when it does.
    pub(crate) fn new(
        range: PasidRange,
        limit: u32,
        provider: &'static Provider,
    ) -> impl PinInit<Self, Error> {
        try_pin_init!(Self {
            sva <- Sva::new(range, limit, provider),
            provider,
            serving: Atomic::new(false),
            claims <- Claims::new(),
        })
    }

    /// Stops serving; module exit, before the C API lets go of the
    /// service.
    pub(crate) fn stop_serving(&self) {
        if let Err(e) = self.set_serving(false) {
            pr_err!("still serving at unload: {e:?}\n");
        }
    }

    /// Ends every PASID lease, waiting for the work items and the
    /// notifiers; the service may then be dropped. Module exit, after
    /// [`Self::stop_serving`]: no bond is left (each pins the module).
    pub(crate) fn shut_down(&self) {
        self.sva.pasids.end_all();
        glue::flush_deferred();
        glue::synchronize_notifiers();
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
            glue::synchronize_notifiers();
        }
        let _switch = RwsemGuard::lock(Rwsem::Serve, true);
        if on == self.serving() {
            return Ok(());
        }
        if on {
            self.provider.set()?;
        } else {
            if self.sva.live() != 0 {
                return Err(EBUSY);
            }
            // Refused while handles of ours are bound. The provider's
            // `drain` ends every lease before the core binds.
            self.provider.clear()?;
        }
        self.serving.store(on, Relaxed);
        Ok(())
    }

    /// The errors a bind through rsva's own entry points would give before
    /// it looks at its mm: `EDEADLK` inside an mm's release, `ENODEV`
    /// while not serving. For callers that must turn a C mm into a live one
    /// first, so that they answer as [`Self::bind`] would.
    pub(crate) fn may_bind(&self) -> Result {
        if crate::sva::bond::in_stop_callback() {
            return Err(EDEADLK);
        }
        if !self.serving() {
            return Err(ENODEV);
        }
        Ok(())
    }

    /// Binds through rsva's own entry points: only while serving (`ENODEV`
    /// otherwise, and while the module is being unloaded). Returns the
    /// bond's token ([`Sva::bind_own`]). The reference pins the module until
    /// [`Self::unbind`]. `dev` stays bound to its driver until then (the
    /// IOMMU core's rule for PASID attachments).
    pub(crate) fn bind(&self, dev: &Device<Bound>, mm: &MmWithUser, stop: Stop) -> Result<Token> {
        // Not even the serve lock inside an mm's release (see `Sva::bind`).
        if crate::sva::bond::in_stop_callback() {
            return Err(EDEADLK);
        }
        let _read = RwsemGuard::lock(Rwsem::Serve, false);
        if !self.serving() {
            return Err(ENODEV);
        }
        let pin = glue::ModuleRef::get()?;
        let token = self.sva.bind_own(&self.claims, dev, mm, stop)?;
        pin.keep();
        Ok(token)
    }

    /// Binds for the kernel's `iommu_sva_bind_device()`, which holds its
    /// provider lock, so that the switch cannot pass the bind.
    pub(crate) fn bind_kernel(&self, dev: &Device<Bound>, mm: &MmWithUser) -> Result<Arc<Bond>> {
        self.sva.bind_kernel(&self.claims, dev, mm)
    }

    /// Unbinds a token of rsva's own entry points, whose caller promises
    /// its device bound; the caller unpins the module once this succeeded.
    pub(crate) fn unbind(&self, token: Token, promise: &BoundByCaller) -> Result {
        self.sva.unbind_own(token, promise)
    }

    /// Binds the current task's mm (`EINVAL` in a kernel thread).
    pub(crate) fn bind_current(&self, dev: &Device<Bound>) -> Result<Token> {
        if glue::current_mm().is_null() {
            return Err(EINVAL);
        }
        self.may_bind()?;
        let mm = glue::current_mm_user().ok_or(ESRCH)?;
        self.bind(dev, &mm, None)
    }
}
