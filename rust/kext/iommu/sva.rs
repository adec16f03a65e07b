// SPDX-License-Identifier: GPL-2.0

//! A module serving the kernel's SVA bind API (patch 0003).
//!
//! C header: [`include/linux/iommu.h`](srctree/include/linux/iommu.h)
//!
//! While a provider is set, `iommu_sva_bind_device()` binds through it and
//! every handle records the provider that made it, so that
//! `iommu_sva_unbind_device()` and `iommu_sva_get_pasid()` reach the same
//! one. The core pins the provider's module while a handle of it lives.

use kernel::{bindings, device::Device, error::to_result, prelude::*, types::Opaque};

use crate::kext::glue;

/// An SVA provider: the table of callbacks the IOMMU core calls.
///
/// # Invariants
///
/// The table's callbacks implement the provider contract of
/// `struct iommu_sva_provider`, and the table is never written after
/// construction.
pub(crate) struct Provider(bindings::iommu_sva_provider);

// SAFETY: Never written after construction; only its address is used.
unsafe impl Sync for Provider {}

impl Provider {
    /// A provider with the callbacks of `table`.
    ///
    /// # Safety
    ///
    /// The callbacks of `table` must implement the contract of
    /// `struct iommu_sva_provider` in `include/linux/iommu.h`, and `owner`
    /// must be the module that holds them.
    pub(crate) const unsafe fn new(table: bindings::iommu_sva_provider) -> Self {
        // INVARIANT: By the safety requirements.
        Self(table)
    }

    /// The C table, which the handles this provider makes name.
    pub(crate) fn as_raw(&self) -> *const bindings::iommu_sva_provider {
        &self.0
    }

    /// Makes this the provider of the SVA API. `EBUSY` while the IOMMU core
    /// has bonds of its own, or another provider is set.
    pub(crate) fn set(&'static self) -> Result {
        // SAFETY: The table is complete and lives forever (type invariant).
        to_result(unsafe { bindings::iommu_sva_set_provider(&self.0) })
    }

    /// Stops serving the SVA API: calls the table's `drain` with every
    /// bind held off. `EBUSY` while a handle this provider made is bound,
    /// `EINVAL` when it is not the provider.
    pub(crate) fn clear(&'static self) -> Result {
        // SAFETY: The table is complete and lives forever (type
        // invariant); the core checks that it is the provider.
        to_result(unsafe { bindings::iommu_sva_clear_provider(&self.0) })
    }
}

/// The handle of an SVA bond, as drivers and the IOMMU core see it
/// (`struct iommu_sva`): the device, the provider that made it, and the
/// attach handle of its PASID attachment.
///
/// # Invariants
///
/// `dev` and `provider` are written at construction and never after; the
/// rest is written by the IOMMU core only, through
/// [`SvaHandle::attach_handle`].
#[repr(transparent)]
pub(crate) struct SvaHandle(Opaque<bindings::iommu_sva>);

// SAFETY: The fields rsva writes do not change after construction; the
// IOMMU core writes the attach handle under its own locks.
unsafe impl Send for SvaHandle {}
// SAFETY: Shared references only read `dev` and `provider`, which do
// not change after construction, or give the attach handle's address to
// the IOMMU core, which writes it under its own locks.
unsafe impl Sync for SvaHandle {}

impl SvaHandle {
    /// The handle of a bond of `dev` made by `provider`.
    pub(crate) fn new(dev: &Device, provider: &'static Provider) -> Self {
        // INVARIANT: the only writes of `dev` and `provider`.
        Self(Opaque::new(bindings::iommu_sva {
            dev: glue::dev_ptr(dev),
            provider: provider.as_raw(),
            ..pin_init::zeroed()
        }))
    }

    /// The address drivers hold.
    pub(crate) fn as_ptr(&self) -> *mut bindings::iommu_sva {
        self.0.get()
    }

    /// The attach handle of the PASID attachment this handle made, for
    /// [`super::domain::SvaDomain::attach`].
    pub(crate) fn attach_handle(&self) -> *mut bindings::iommu_attach_handle {
        // SAFETY: A place computation inside the live structure; nothing
        // is read or written.
        unsafe { &raw mut (*self.0.get()).handle }
    }
}
