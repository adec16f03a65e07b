// SPDX-License-Identifier: GPL-2.0

//! The C API of rsva: `extern "C"` functions whose prototypes and kernel-doc
//! are in `include/rsva.h` and which `rsva_exports.c` exports to modules.
//!
//! Each function turns C arguments into the typed Rust ones, calls the Rust
//! implementation and turns its result back into a kernel-style return:
//! an errno, an `ERR_PTR`, or `IOMMU_PASID_INVALID`.

use kernel::{bindings, prelude::*};

use crate::{
    pasid::{PasidRange, PASID_INVALID},
    provider::{service, Service},
    sva_bind::{Bond, StopFn},
};

/// Validates a PASID range for a C caller; see `rsva_pasid_range_check()`.
///
/// Returns the number of PASIDs in `[min, max]`, or `-EINVAL`.
#[no_mangle]
extern "C" fn rsva_pasid_range_check(min: u32, max: u32) -> c_int {
    PasidRange::new(min, max)
        .and_then(|r| c_int::try_from(r.count()).map_err(|_| EOVERFLOW))
        .unwrap_or_else(|e| e.to_errno())
}

fn to_handle(
    f: impl FnOnce(&'static Service) -> Result<kernel::sync::Arc<Bond>>,
) -> *mut bindings::iommu_sva {
    match service().ok_or(ENODEV).and_then(f) {
        Ok(bond) => bond.handle(),
        Err(e) => e.to_ptr(),
    }
}

/// See `rsva_sva_bind_device()` in `include/rsva.h`.
#[no_mangle]
extern "C" fn rsva_sva_bind_device(
    dev: *mut bindings::device,
    mm: *mut bindings::mm_struct,
) -> *mut bindings::iommu_sva {
    to_handle(|s| s.bind(dev, mm, None))
}

/// See `rsva_sva_bind_device_stop()` in `include/rsva.h`.
#[no_mangle]
extern "C" fn rsva_sva_bind_device_stop(
    dev: *mut bindings::device,
    mm: *mut bindings::mm_struct,
    stop: Option<StopFn>,
    data: *mut c_void,
) -> *mut bindings::iommu_sva {
    to_handle(|s| {
        let stop = stop.ok_or(EINVAL)?;
        s.bind(dev, mm, Some((stop, data as usize)))
    })
}

/// See `rsva_sva_bind_current()` in `include/rsva.h`.
#[no_mangle]
extern "C" fn rsva_sva_bind_current(dev: *mut bindings::device) -> *mut bindings::iommu_sva {
    to_handle(|s| s.bind_current(dev))
}

/// See `rsva_sva_unbind_device()` in `include/rsva.h`.
#[no_mangle]
extern "C" fn rsva_sva_unbind_device(handle: *mut bindings::iommu_sva) -> c_int {
    if handle.is_null() {
        return EINVAL.to_errno();
    }
    // SAFETY: Called by a C module that uses rsva's symbols.
    match service()
        .ok_or(ENODEV)
        .and_then(|s| unsafe { s.unbind(handle) })
    {
        Ok(()) => 0,
        Err(e) => e.to_errno(),
    }
}

/// See `rsva_sva_get_pasid()` in `include/rsva.h`.
#[no_mangle]
extern "C" fn rsva_sva_get_pasid(handle: *mut bindings::iommu_sva) -> u32 {
    service()
        .and_then(|s| s.sva.lookup(handle).ok())
        .map_or(PASID_INVALID, |b| b.pasid())
}

/// See `rsva_pasid_get_mm()` in `include/rsva.h`.
#[no_mangle]
extern "C" fn rsva_pasid_get_mm(pasid: u32) -> *mut bindings::mm_struct {
    if pasid == 0 || pasid > crate::pasid::PASID_MAX {
        return EINVAL.to_ptr();
    }
    match service().and_then(|s| s.sva.pasids.find_mm(pasid)) {
        // The caller owns the `mmgrab` and drops it with `mmdrop()`.
        Some(mm) => kernel::sync::aref::ARef::into_raw(mm).as_ptr().cast(),
        None => ENOENT.to_ptr(),
    }
}

/// See `rsva_sva_serving()` in `include/rsva.h`.
#[no_mangle]
extern "C" fn rsva_sva_serving() -> bool {
    service().is_some_and(|s| s.serving())
}

/// Runs a claim operation of the C API on `dev`.
fn claim_op(dev: *mut bindings::device, f: impl FnOnce(&'static Service) -> Result) -> c_int {
    if dev.is_null() {
        return EINVAL.to_errno();
    }
    match service().ok_or(ENODEV).and_then(f) {
        Ok(()) => 0,
        Err(e) => e.to_errno(),
    }
}

/// See `rsva_dma_claim_group()` in `include/rsva.h`.
#[no_mangle]
extern "C" fn rsva_dma_claim_group(dev: *mut bindings::device, owner: *const c_void) -> c_int {
    // SAFETY: C callers pass a valid device (checked non-null).
    claim_op(dev, |s| unsafe {
        s.claims.claim_group(dev, owner.cast_mut())
    })
}

/// See `rsva_dma_release_group()` in `include/rsva.h`.
#[no_mangle]
extern "C" fn rsva_dma_release_group(dev: *mut bindings::device, owner: *const c_void) -> c_int {
    // SAFETY: As above.
    claim_op(dev, |s| unsafe {
        s.claims.release(dev, owner.cast_mut(), true)
    })
}

/// See `rsva_dma_claim_device()` in `include/rsva.h`.
#[no_mangle]
extern "C" fn rsva_dma_claim_device(dev: *mut bindings::device, owner: *const c_void) -> c_int {
    // SAFETY: As above.
    claim_op(dev, |s| unsafe {
        s.claims.claim_device(dev, owner.cast_mut())
    })
}

/// See `rsva_dma_release_device()` in `include/rsva.h`.
#[no_mangle]
extern "C" fn rsva_dma_release_device(dev: *mut bindings::device, owner: *const c_void) -> c_int {
    // SAFETY: As above.
    claim_op(dev, |s| unsafe {
        s.claims.release(dev, owner.cast_mut(), false)
    })
}

/// See `rsva_dma_claimed()` in `include/rsva.h`.
#[no_mangle]
extern "C" fn rsva_dma_claimed(dev: *mut bindings::device) -> c_int {
    if dev.is_null() {
        return EINVAL.to_errno();
    }
    // SAFETY: C callers pass a valid device.
    if unsafe { crate::glue::rsva_dev_group(dev) }.is_null() {
        return ENODEV.to_errno();
    }
    // SAFETY: As above.
    c_int::from(unsafe { crate::glue::rsva_dev_user_owned(dev) })
}
