// SPDX-License-Identifier: GPL-2.0

//! The HMM mirror's C API (`rsva_mirror_register()`, `_unregister()`,
//! `_fault()` in `include/rsva.h`): drivers' mirrors are clients of the
//! shared mirror of their mm ([`crate::mm_mirror`]).
//!
//! A handle is the address of a registered [`MirrorClient`]; the registry
//! of live handles validates every handle a driver passes (a foreign or
//! unregistered one gets `ENOENT`) and hands out a reference, so a fault
//! racing the unregistration of its handle uses a client that stays valid
//! (and finds it gone: `ENOENT`).

use kernel::{
    bindings,
    mm::Mm,
    prelude::*,
    sync::{global_lock, Arc},
};

use crate::{
    interval_notifier::FaultMode,
    mm_mirror::{span, Client, DriverHooks, MirrorClient},
};

/// `struct rsva_mirror_ops`.
#[repr(C)]
struct MirrorOps {
    invalidate: Option<unsafe extern "C" fn(*mut c_void, c_ulong, c_ulong)>,
    update: Option<unsafe extern "C" fn(*mut c_void, c_ulong, *const c_ulong, c_ulong)>,
}

/// `RSVA_MIRROR_WRITE` and `RSVA_MIRROR_SNAPSHOT`.
const WRITE: c_uint = 0x1;
const SNAPSHOT: c_uint = 0x2;

global_lock! {
    // SAFETY: Initialised by `init()` when the module loads, before use.
    unsafe(uninit) static HANDLES: Mutex<KVec<Arc<MirrorClient>>> = KVec::new();
}

/// Initialises the registry of handles; called once by module init.
pub(crate) fn init() {
    // SAFETY: Called once, before any other use of `HANDLES`.
    unsafe { HANDLES.init() };
}

/// Unregisters the mirrors drivers left behind; called by module exit.
pub(crate) fn exit() {
    let left = core::mem::take(&mut *HANDLES.lock());
    if !left.is_empty() {
        pr_warn!("{} driver mirrors left registered\n", left.len());
    }
    for client in &left {
        client.leave();
    }
}

/// Where the client at `handle` is in `handles`, if it is registered.
fn position(handles: &KVec<Arc<MirrorClient>>, handle: *const c_void) -> Option<usize> {
    handles
        .iter()
        .position(|c| Arc::as_ptr(c).cast::<c_void>() == handle)
}

/// The registered client at `handle`, or `ENOENT`.
fn lookup(handle: *const c_void) -> Result<Arc<MirrorClient>> {
    let handles = HANDLES.lock();
    position(&handles, handle)
        .map(|i| handles[i].clone())
        .ok_or(ENOENT)
}

fn register(
    mm: *mut bindings::mm_struct,
    ops: *const MirrorOps,
    private: *mut c_void,
) -> Result<*mut c_void> {
    if mm.is_null() || ops.is_null() {
        return Err(EINVAL);
    }
    // SAFETY: The caller passes its ops, which live until unregistration.
    let ops = unsafe { &*ops };
    let invalidate = ops.invalidate.ok_or(EINVAL)?;
    // SAFETY: The caller holds a reference on `mm`.
    let mm = unsafe { Mm::from_raw(mm) }.mmget_not_zero().ok_or(ESRCH)?;
    let hooks = DriverHooks {
        invalidate,
        update: ops.update,
        private,
    };
    let client = Arc::new(MirrorClient::new(&mm, Client::Driver(hooks))?, GFP_KERNEL)?;
    let handle = Arc::as_ptr(&client).cast_mut().cast::<c_void>();
    HANDLES.lock().push(client, GFP_KERNEL)?;
    Ok(handle)
}

/// See `rsva_mirror_register()` in `include/rsva.h`.
#[no_mangle]
extern "C" fn rsva_mirror_register(
    mm: *mut bindings::mm_struct,
    ops: *const MirrorOps,
    private: *mut c_void,
) -> *mut c_void {
    register(mm, ops, private).unwrap_or_else(|e| e.to_ptr())
}

/// See `rsva_mirror_unregister()` in `include/rsva.h`.
#[no_mangle]
extern "C" fn rsva_mirror_unregister(handle: *mut c_void) -> c_int {
    if handle.is_null() {
        return EINVAL.to_errno();
    }
    let client = {
        let mut handles = HANDLES.lock();
        match position(&handles, handle).map(|i| handles.remove(i)) {
            Some(Ok(client)) => client,
            _ => return ENOENT.to_errno(),
        }
    };
    // No hook runs after this, even while a racing fault holds `client`.
    client.leave();
    0
}

fn fault(
    handle: *mut c_void,
    start: usize,
    npages: usize,
    flags: c_uint,
    pfns: *mut c_ulong,
) -> Result {
    if handle.is_null() || pfns.is_null() {
        return Err(EINVAL);
    }
    span(start, npages)?;
    let mode = match flags {
        0 => FaultMode::Read,
        WRITE => FaultMode::Write,
        SNAPSHOT => FaultMode::Snapshot,
        _ => return Err(EINVAL),
    };
    let client = lookup(handle)?;
    // SAFETY: The caller passes an array of `npages` entries, which it does
    // not touch during the call; its size fits the address space (checked
    // above, in pages).
    let pfns = unsafe { core::slice::from_raw_parts_mut(pfns, npages) };
    client.fault(start, mode, pfns, |c, entries| {
        if let Client::Driver(d) = c {
            if let Some(update) = d.update {
                // SAFETY: The driver's hook, registered for this; `entries`
                // has `npages` entries.
                unsafe { update(d.private, start, entries.as_ptr().cast(), npages) };
            }
        }
    })
}

/// See `rsva_mirror_fault()` in `include/rsva.h`.
#[no_mangle]
extern "C" fn rsva_mirror_fault(
    handle: *mut c_void,
    start: c_ulong,
    npages: c_ulong,
    flags: c_uint,
    pfns: *mut c_ulong,
) -> c_int {
    match fault(handle, start, npages, flags, pfns) {
        Ok(()) => 0,
        Err(e) => e.to_errno(),
    }
}
