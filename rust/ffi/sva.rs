// SPDX-License-Identifier: GPL-2.0

//! The C API of rsva: `extern "C"` functions whose prototypes and kernel-doc
//! are in `include/rsva.h` and which `rsva_exports.c` exports to modules.
//!
//! Each function turns C arguments into the typed Rust ones, calls the Rust
//! implementation and turns its result back into a kernel-style return:
//! an errno, an `ERR_PTR`, or `IOMMU_PASID_INVALID`.
//!
//! No function trusts a careless caller further than it must: a NULL or
//! `ERR_PTR()` argument gets `EINVAL` ([`check_ptr`]) before anything
//! dereferences it, handles are looked up in registries and never
//! dereferenced, and the functions that may sleep answer `EDEADLK` when
//! called from a mirror's hook ([`may_sleep`]) instead of sleeping there or
//! taking the mirror's lock again.

use core::ptr::NonNull;

use kernel::{
    bindings,
    device::{Bound, Device, Normal},
    iommu::dma_owner::{Group, OwnerCookie},
    mm::{Mm, MmWithUser},
    prelude::*,
    sync::aref::ARef,
};

use crate::{
    ffi::checks::{check_ptr, is_err_or_null, may_sleep},
    ffi::service,
    kext::{glue, handles::Token, iommu::sva::BoundByCaller},
    sva::bond::StopHook,
    sva::pasid::{PasidRange, PASID_INVALID},
    sva::provider::Service,
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

/// `struct rsva_sva`: what an SVA handle of rsva's C API points to, for C
/// callers; nothing, as the handle is a [`Token`] of the bond's, never
/// followed (see [`crate::kext::handles`]).
#[repr(C)]
pub(crate) struct RsvaSva {
    _opaque: [u8; 0],
}

/// Binds with `f` after the checks every bind function makes: a context
/// that may sleep and a valid `dev`; returns the bond's token as the
/// handle, or an `ERR_PTR`.
fn to_handle(
    dev: *mut bindings::device,
    f: impl FnOnce(&'static Service, &Device<Bound>) -> Result<Token>,
) -> *mut RsvaSva {
    let checked = may_sleep().and_then(|()| check_ptr(dev));
    let bound = checked.and_then(|()| {
        let s = service().ok_or(ENODEV)?;
        // SAFETY: C callers pass a valid device with a driver bound, and
        // keep it bound until they unbind (`include/rsva.h`).
        let dev = unsafe { Device::<Normal>::from_raw(dev).as_bound() };
        f(s, dev)
    });
    match bound {
        Ok(token) => token.as_ptr(),
        Err(e) => e.to_ptr(),
    }
}

/// The live mm a C caller named for a bind by `s`: `EINVAL` for NULL or
/// an `ERR_PTR()`, then the errors of [`Service::may_bind`], then `ESRCH`
/// when it has no users left.
fn live_mm(s: &Service, mm: *mut bindings::mm_struct) -> Result<ARef<MmWithUser>> {
    check_ptr(mm)?;
    s.may_bind()?;
    // SAFETY: C callers pass a valid mm and hold a reference on it.
    unsafe { Mm::from_raw(mm) }.mmget_not_zero().ok_or(ESRCH)
}

/// See `rsva_sva_bind_device()` in `include/rsva.h`.
#[no_mangle]
extern "C" fn rsva_sva_bind_device(
    dev: *mut bindings::device,
    mm: *mut bindings::mm_struct,
) -> *mut RsvaSva {
    to_handle(dev, |s, dev| {
        let mm = live_mm(s, mm)?;
        s.bind(dev, &mm, None)
    })
}

/// A C driver's stop callback (`rsva_sva_stop_t` of `include/rsva.h`).
pub(crate) type StopFn = unsafe extern "C" fn(handle: *mut RsvaSva, data: *mut c_void);

/// A C driver's stop callback and its data, as a bond carries it.
struct CStop {
    f: StopFn,
    data: usize,
}

impl StopHook for CStop {
    fn stop(&self, handle: Token) {
        // SAFETY: The driver gave `f` and `data` for the bond `handle`
        // names and keeps them valid until its last unbind returns, which
        // waits for a running callback (`include/rsva.h`).
        unsafe { (self.f)(handle.as_ptr(), self.data as *mut c_void) }
    }

    fn key(&self) -> (usize, usize) {
        (self.f as usize, self.data)
    }
}

/// See `rsva_sva_bind_device_stop()` in `include/rsva.h`.
#[no_mangle]
extern "C" fn rsva_sva_bind_device_stop(
    dev: *mut bindings::device,
    mm: *mut bindings::mm_struct,
    stop: Option<StopFn>,
    data: *mut c_void,
) -> *mut RsvaSva {
    to_handle(dev, |s, dev| {
        check_ptr(mm)?;
        let f = stop.ok_or(EINVAL)?;
        check_ptr(f as *const c_void)?;
        let mm = live_mm(s, mm)?;
        let stop: KBox<dyn StopHook> = KBox::new(
            CStop {
                f,
                data: data as usize,
            },
            GFP_KERNEL,
        )?;
        s.bind(dev, &mm, Some(stop))
    })
}

/// See `rsva_sva_bind_current()` in `include/rsva.h`.
#[no_mangle]
extern "C" fn rsva_sva_bind_current(dev: *mut bindings::device) -> *mut RsvaSva {
    to_handle(dev, |s, dev| s.bind_current(dev))
}

/// See `rsva_sva_unbind_device()` in `include/rsva.h`.
#[no_mangle]
extern "C" fn rsva_sva_unbind_device(handle: *mut RsvaSva) -> c_int {
    let checked = may_sleep().and_then(|()| check_ptr(handle));
    // SAFETY: `rsva_sva_unbind_device()`'s contract (`include/rsva.h`): the
    // caller's driver is bound to the handle's device during the call; the
    // promise ends with this function.
    let promise = unsafe { BoundByCaller::new(handle) };
    match checked
        .and_then(|()| service().ok_or(ENODEV))
        .and_then(|s| s.unbind(Token::from_ptr(handle).ok_or(ENOENT)?, &promise))
    {
        Ok(()) => {
            // SAFETY: The module reference the bind kept; the caller, a
            // module that uses rsva's symbols, keeps rsva loaded meanwhile.
            unsafe { glue::ModuleRef::put() };
            0
        }
        Err(e) => e.to_errno(),
    }
}

/// See `rsva_sva_get_pasid()` in `include/rsva.h`.
#[no_mangle]
extern "C" fn rsva_sva_get_pasid(handle: *mut RsvaSva) -> u32 {
    if is_err_or_null(handle) {
        return PASID_INVALID;
    }
    service()
        .zip(Token::from_ptr(handle))
        .and_then(|(s, token)| s.sva.lookup_token(token).ok())
        .map_or(PASID_INVALID, |b| b.pasid())
}

/// See `rsva_pasid_get_mm()` in `include/rsva.h`.
#[no_mangle]
extern "C" fn rsva_pasid_get_mm(pasid: u32) -> *mut bindings::mm_struct {
    if pasid == 0 || pasid > crate::sva::pasid::PASID_MAX {
        return EINVAL.to_ptr();
    }
    match service()
        .ok_or(ENOENT)
        .and_then(|s| s.sva.pasids.find_mm(pasid))
    {
        // The caller owns the `mmgrab` and drops it with `mmdrop()`.
        Ok(mm) => kernel::sync::aref::ARef::into_raw(mm).as_ptr().cast(),
        Err(e) => e.to_ptr(),
    }
}

/// See `rsva_sva_serving()` in `include/rsva.h`.
#[no_mangle]
extern "C" fn rsva_sva_serving() -> bool {
    service().is_some_and(|s| s.serving())
}

/// Runs a claim operation of the C API on `dev` for `owner`, after the
/// checks they all make: a context that may sleep, a valid `dev` and
/// `owner`.
fn claim_op(
    dev: *mut bindings::device,
    owner: *const c_void,
    f: impl FnOnce(&'static Service, OwnerCookie) -> Result,
) -> c_int {
    let checked = may_sleep()
        .and_then(|()| check_ptr(dev))
        .and_then(|()| check_ptr(owner));
    let done = checked.and_then(|()| {
        let s = service().ok_or(ENODEV)?;
        let owner = NonNull::new(owner.cast_mut()).ok_or(EINVAL)?;
        // SAFETY: The C caller keeps `owner` as its identity until it
        // releases its claims (`include/rsva.h`).
        f(s, unsafe { OwnerCookie::from_raw(owner) })
    });
    match done {
        Ok(()) => 0,
        Err(e) => e.to_errno(),
    }
}

/// The device a C caller passed to a claim function.
///
/// # Safety
///
/// `dev` must be a valid device (`claim_op()` checked it is not NULL or an
/// `ERR_PTR()`).
unsafe fn claimed_dev<'a>(dev: *mut bindings::device) -> &'a Device {
    // SAFETY: By the safety requirements.
    unsafe { Device::from_raw(dev) }
}

/// See `rsva_dma_claim_group()` in `include/rsva.h`.
#[no_mangle]
extern "C" fn rsva_dma_claim_group(dev: *mut bindings::device, owner: *const c_void) -> c_int {
    claim_op(dev, owner, |s, owner| {
        // SAFETY: C callers pass a valid device.
        s.claims.claim_group(unsafe { claimed_dev(dev) }, owner)
    })
}

/// See `rsva_dma_release_group()` in `include/rsva.h`.
#[no_mangle]
extern "C" fn rsva_dma_release_group(dev: *mut bindings::device, owner: *const c_void) -> c_int {
    claim_op(dev, owner, |s, owner| {
        // SAFETY: C callers pass a valid device: a group claim outlives
        // the group's last device only as a record, and the device named
        // here must be one of the group.
        s.claims.release_group(unsafe { claimed_dev(dev) }, owner)
    })
}

/// See `rsva_dma_claim_device()` in `include/rsva.h`.
#[no_mangle]
extern "C" fn rsva_dma_claim_device(dev: *mut bindings::device, owner: *const c_void) -> c_int {
    claim_op(dev, owner, |s, owner| {
        // SAFETY: C callers pass a valid device.
        s.claims.claim_device(unsafe { claimed_dev(dev) }, owner)
    })
}

/// See `rsva_dma_release_device()` in `include/rsva.h`: the device may be
/// gone, so only its address is used.
#[no_mangle]
extern "C" fn rsva_dma_release_device(dev: *mut bindings::device, owner: *const c_void) -> c_int {
    claim_op(dev, owner, |s, owner| {
        s.claims.release_device(dev as usize, owner)
    })
}

/// See `rsva_dma_claimed()` in `include/rsva.h`.
#[no_mangle]
extern "C" fn rsva_dma_claimed(dev: *mut bindings::device) -> c_int {
    if let Err(e) = check_ptr(dev) {
        return e.to_errno();
    }
    // SAFETY: C callers pass a valid device.
    match Group::of(unsafe { Device::from_raw(dev) }) {
        Ok(group) => c_int::from(group.has_dma_owner()),
        Err(e) => e.to_errno(),
    }
}

/// Called by the devres action of a watched device whose driver goes away:
/// does the unbinds queued for it and frees the domains kept for it, while
/// its IOMMU driver is still there ([`Sva::device_gone`]); while rsva is
/// being loaded or unloaded, waits for its workqueue only.
///
/// [`Sva::device_gone`]: crate::sva::bond::Sva::device_gone
#[no_mangle]
extern "C" fn rsva_device_gone(dev: *mut bindings::device) {
    match service() {
        Some(s) => s.sva.device_gone(dev as usize),
        None => glue::flush_deferred(),
    }
}

/// See `rsva_test_tracked()` in `include/rsva_test.h`.
#[cfg(CONFIG_KUNIT)]
#[no_mangle]
extern "C" fn rsva_test_tracked(pasid: u32) -> c_int {
    let Some(s) = service() else {
        return ENODEV.to_errno();
    };
    let mut found = ENOENT.to_errno();
    s.sva.pasids.for_each(|m| {
        if m.pasid() == pasid {
            found = c_int::from(m.tracked());
        }
    });
    found
}

/// See `rsva_test_pasid_uid()` in `include/rsva_test.h`.
#[cfg(CONFIG_KUNIT)]
#[no_mangle]
extern "C" fn rsva_test_pasid_uid(pasid: u32, held: *mut u32) -> i64 {
    let Some(s) = service() else {
        return ENODEV.to_errno().into();
    };
    let mut found = None;
    s.sva.pasids.for_each(|m| {
        if m.pasid() == pasid {
            found = Some(m.uid());
        }
    });
    let Some(uid) = found else {
        return ENOENT.to_errno().into();
    };
    if !held.is_null() {
        // SAFETY: KUnit callers pass null or a valid pointer.
        unsafe { *held = s.sva.pasids.held_by(uid) };
    }
    uid.into()
}

/// See `rsva_test_set_serving()` in `include/rsva_test.h`.
#[cfg(CONFIG_KUNIT)]
#[no_mangle]
extern "C" fn rsva_test_set_serving(on: bool) -> c_int {
    match service().ok_or(ENODEV).and_then(|s| s.set_serving(on)) {
        Ok(()) => 0,
        Err(e) => e.to_errno(),
    }
}
