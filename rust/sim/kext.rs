// SPDX-License-Identifier: GPL-2.0

//! rsva_sim's abstraction layer: its abstractions of kernel facilities that
//! the kernel crate does not have and that rsva's layer (`rust/kext/`,
//! another module) cannot lend it, laid out as `rust/kernel/` is. Here: the
//! kernel's SVA bind API as a driver uses it and the mmu notifiers'
//! barrier; in the submodules, the IOMMU driver side of the IOMMU core
//! ([`iommu`]), the platform's bus and its devices ([`device::bus`]), misc
//! devices whose files see their registration's data ([`miscdevice`]),
//! uacce devices ([`uacce`]), the current task's mm ([`mm`]), the byte
//! views of the user interface ([`transmute`]).

#![allow(unsafe_code, reason = "the abstraction layer over the kernel's C code")]

pub(crate) mod device;
pub(crate) mod iommu;
pub(crate) mod miscdevice;
pub(crate) mod mm;
pub(crate) mod transmute;
pub(crate) mod uacce;

use core::ptr::NonNull;

use kernel::{bindings, mm::MmWithUser, prelude::*, sync::Arc};

use device::bus::{BusDevice, BusIommu};

use crate::glue;

/// An SVA bond made with `iommu_sva_bind_device()`, whichever
/// implementation serves it, for a device of the platform's bus.
///
/// Holds the bond's handle and the device's registration, so that the
/// device stays on the bus (and so known to the IOMMU core) while the bond
/// lives. Dropping it unbinds (`iommu_sva_unbind_device()`), then drops
/// the registration.
///
/// # Invariants
///
/// `handle` was returned by `iommu_sva_bind_device()` for `_dev`'s device
/// and is not unbound; `pasid` is its PASID.
pub(crate) struct SvaBond<T: 'static, I> {
    handle: NonNull<bindings::iommu_sva>,
    pasid: u32,
    /// Only held: the device stays on the bus while the bond lives.
    _dev: Arc<BusDevice<T, I>>,
}

// SAFETY: A bond may be unbound from any thread; the registration is
// `Send` when `T` and `I` are.
unsafe impl<T: Send + Sync, I: Send + Sync> Send for SvaBond<T, I> {}
// SAFETY: Shared references only read the PASID.
unsafe impl<T: Send + Sync, I: Send + Sync> Sync for SvaBond<T, I> {}

impl<T: Send + Sync + 'static, I: BusIommu> SvaBond<T, I> {
    /// Binds `mm` to `dev`. `ENODEV` for a bond without a PASID; the bind's
    /// errors.
    pub(crate) fn bind(dev: &Arc<BusDevice<T, I>>, mm: &MmWithUser) -> Result<Self> {
        let raw = core::ptr::from_ref(dev.device()).cast_mut().cast();
        // SAFETY: The device is on the bus, probed by the IOMMU core, and
        // stays there while the bond lives (it holds the registration);
        // `mm` has a user reference for the call.
        let handle = unsafe { bindings::iommu_sva_bind_device(raw, mm.as_raw()) };
        let handle = NonNull::new(glue::from_err_ptr(handle)?).ok_or(ENODEV)?;
        // SAFETY: `handle` is a live bond.
        let pasid = unsafe { bindings::iommu_sva_get_pasid(handle.as_ptr()) };
        // INVARIANT: just bound, for `dev`; its PASID.
        let bond = SvaBond {
            handle,
            pasid,
            _dev: dev.clone(),
        };
        // IOMMU_PASID_INVALID is (-1U).
        if pasid == u32::MAX {
            // Dropping the bond unbinds it.
            return Err(ENODEV);
        }
        Ok(bond)
    }

    /// The bond's PASID.
    pub(crate) fn pasid(&self) -> u32 {
        self.pasid
    }
}

impl<T: 'static, I> Drop for SvaBond<T, I> {
    fn drop(&mut self) {
        // SAFETY: Not unbound yet (type invariant); unbound once here. The
        // device is still on the bus: `self._dev` drops after this.
        unsafe { bindings::iommu_sva_unbind_device(self.handle.as_ptr()) };
    }
}

/// When dropped, waits until every mmu notifier put so far was freed (they
/// go through SRCU after `mmu_notifier_put()`): the platform's SVA domains'
/// notifiers call its code until then. Process context, no lock held.
pub(crate) struct NotifierSync;

impl Drop for NotifierSync {
    fn drop(&mut self) {
        // SAFETY: Waits for pending `free_notifier` calls; no requirement
        // beyond process context, which a drop at module exit is.
        unsafe { bindings::mmu_notifier_synchronize() };
    }
}
