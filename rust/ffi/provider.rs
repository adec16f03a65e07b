// SPDX-License-Identifier: GPL-2.0

//! The callbacks through which the IOMMU core's `iommu_sva_bind_device()`,
//! `iommu_sva_unbind_device()` and `iommu_sva_get_pasid()` reach rsva while
//! it serves them (patch 0003), and the provider table that names them.

use core::ptr::NonNull;

use kernel::{
    bindings,
    device::{Device, Normal},
    mm::MmWithUser,
    prelude::*,
};

use crate::{
    ffi::service,
    kext::{
        glue,
        iommu::sva::{BoundByCaller, HandleAddr, Provider},
    },
    sva::pasid::PASID_INVALID,
};

/// rsva as the SVA provider.
// SAFETY: The callbacks below implement the provider contract, and the
// owner is this module.
pub(crate) static PROVIDER: Provider = unsafe {
    Provider::new(bindings::iommu_sva_provider {
        owner: <crate::LocalModule as kernel::ModuleMetadata>::THIS_MODULE.as_ptr(),
        bind: Some(provider_bind),
        unbind: Some(provider_unbind),
        get_pasid: Some(provider_get_pasid),
        drain: Some(provider_drain),
    })
};

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
    let Some(dev) = NonNull::new(dev) else {
        return EINVAL.to_ptr();
    };
    // SAFETY: The core passes a device with a driver bound (its rule for
    // PASID attachments), which the caller keeps bound until it unbinds.
    let dev = unsafe { Device::<Normal>::from_raw(dev.as_ptr()).as_bound() };
    if mm.is_null() {
        return EINVAL.to_ptr();
    }
    // SAFETY: The core's caller holds a user reference on `mm`.
    let mm = unsafe { MmWithUser::from_raw(mm) };
    match s.bind_kernel(dev, mm) {
        Ok(bond) => bond.handle().as_ptr(),
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
    // SAFETY: `iommu_sva_unbind_device()`'s contract: the caller's driver
    // is bound to the handle's device during the call; the promise ends
    // with this function.
    let promise = unsafe { BoundByCaller::new(handle) };
    match s.sva.unbind_kernel(HandleAddr::of(handle), &promise) {
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
        .and_then(|s| s.sva.lookup(HandleAddr::of(handle)).ok())
        .map_or(PASID_INVALID, |b| b.pasid())
}
