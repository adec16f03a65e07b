// SPDX-License-Identifier: GPL-2.0

//! A module serving the kernel's SVA bind API (patch 0003).
//!
//! C header: [`include/linux/iommu.h`](srctree/include/linux/iommu.h)
//!
//! While a provider is set, `iommu_sva_bind_device()` binds through it and
//! every handle records the provider that made it, so that
//! `iommu_sva_unbind_device()` and `iommu_sva_get_pasid()` reach the same
//! one. The core pins the provider's module while a handle of it lives.

use kernel::{bindings, error::to_result, prelude::*};

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
        // SAFETY: As in `set`; the core checks that it is the provider.
        to_result(unsafe { bindings::iommu_sva_clear_provider(&self.0) })
    }
}
