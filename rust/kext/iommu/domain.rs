// SPDX-License-Identifier: GPL-2.0

//! SVA domains: a process address space shared with devices through a
//! PASID, allocated by the devices' IOMMU driver.
//!
//! C header: [`include/linux/iommu.h`](srctree/include/linux/iommu.h)

use core::ptr::NonNull;

use kernel::{
    bindings,
    device::Device,
    error::{from_err_ptr, to_result},
    mm::MmWithUser,
    prelude::*,
};

use super::iopf::{self, IopfServer};
use crate::kext::glue;

/// An SVA domain of an mm (`iommu_sva_domain_alloc()`, patch 0005). It
/// holds `mmgrab()` on the mm, and its IOMMU driver's mmu notifier on it.
///
/// The domain is freed by [`SvaDomain::free`], never by a destructor:
/// freeing may wait for the notifiers' SRCU grace period (AMD unregisters
/// its notifier), so it must not happen where the owner holds a lock that
/// a notifier takes, nor in a notifier's callback, and the domain's IOMMU
/// driver must still be there. Dropping one leaks it.
///
/// # Invariants
///
/// `0` is an SVA domain allocated for this object and not freed.
pub(crate) struct SvaDomain(NonNull<bindings::iommu_domain>);

// SAFETY: The domain is used through the IOMMU core, which serialises with
// its own locks; it may be freed from any thread.
unsafe impl Send for SvaDomain {}
// SAFETY: Shared access only passes the pointer to the core.
unsafe impl Sync for SvaDomain {}

impl SvaDomain {
    /// Allocates the SVA domain of `mm` for `dev`'s IOMMU, whose I/O page
    /// faults `S` serves. `EOPNOTSUPP` without SVA; the driver's errors.
    ///
    /// # Safety
    ///
    /// The caller frees the domain before `S`'s module is unloaded: its
    /// fault handler is code of that module.
    pub(crate) unsafe fn alloc<S: IopfServer>(dev: &Device, mm: &MmWithUser) -> Result<Self> {
        // SAFETY: `dev` is valid and `mm` has users.
        let raw = unsafe { bindings::iommu_sva_domain_alloc(glue::dev_ptr(dev), mm.as_raw()) };
        let domain = NonNull::new(from_err_ptr(raw)?).ok_or(ENOMEM)?;
        // SAFETY: Just allocated and attached nowhere, so no fault is in
        // flight; by the safety requirements the caller frees it before
        // `S`'s code goes.
        unsafe { iopf::install::<S>(domain.as_ptr()) };
        // INVARIANT: allocated just above.
        Ok(Self(domain))
    }

    /// The domain's address, which names it (only compared).
    pub(crate) fn key(&self) -> usize {
        self.0.as_ptr() as usize
    }

    /// Attaches PASID `pasid` of the group of `dev` to the domain, with the
    /// attach handle `handle`. The IOMMU driver may refuse the domain for
    /// the device (`EINVAL`, ...), or the PASID (`EBUSY`).
    ///
    /// # Safety
    ///
    /// `dev` has a driver bound; `handle` stays valid while the PASID is
    /// attached; `pasid` is the PASID of the domain's mm.
    pub(crate) unsafe fn attach(
        &self,
        dev: &Device,
        pasid: u32,
        handle: *mut bindings::iommu_attach_handle,
    ) -> Result {
        // SAFETY: The domain is live (type invariant); the rest by the
        // safety requirements.
        to_result(unsafe {
            bindings::iommu_attach_device_pasid(self.0.as_ptr(), glue::dev_ptr(dev), pasid, handle)
        })
    }

    /// Detaches PASID `pasid` of the group of `dev` from the domain; the
    /// IOMMU driver drains the PASID's page requests first.
    ///
    /// # Safety
    ///
    /// The PASID of `dev`'s group is attached to this domain
    /// ([`Self::attach`]); not called from a fault handler of the domain.
    pub(crate) unsafe fn detach(&self, dev: &Device, pasid: u32) {
        // SAFETY: By the safety requirements; the domain is live.
        unsafe { bindings::iommu_detach_device_pasid(self.0.as_ptr(), glue::dev_ptr(dev), pasid) };
    }

    /// Frees the domain, which drops its `mmgrab()`.
    ///
    /// # Safety
    ///
    /// The domain is attached nowhere; its IOMMU driver is still there; no
    /// lock is held that an mmu notifier of the mm takes, and this is not an
    /// mmu notifier's callback.
    pub(crate) unsafe fn free(self) {
        // SAFETY: By the safety requirements; the domain is live (type
        // invariant), and `self` is consumed, so it is freed once.
        unsafe { bindings::iommu_domain_free(self.0.as_ptr()) };
    }
}
