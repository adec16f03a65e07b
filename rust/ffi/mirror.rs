// SPDX-License-Identifier: GPL-2.0

//! The HMM mirror's C API (`rsva_mirror_register()`, `_unregister()`,
//! `_fault()` in `include/rsva.h`): drivers' mirrors are clients of the
//! shared mirror of their mm ([`crate::mirror::registry`]).
//!
//! A handle is a [`Token`] of the registry of live handles ([`Handles`]),
//! not an address: no foreign pointer and no stale handle of an
//! unregistered mirror ever names a live mirror, even once the freed
//! client's memory is reused (the ABA of an address registry). The
//! registry validates every handle a driver passes (`ENOENT` otherwise)
//! and hands out a reference, so a fault racing the unregistration of its
//! handle uses a client that stays valid (and finds it gone: `ENOENT`).
//!
//! The driver's hooks are called through [`Hooks`], which records the task
//! in them ([`checks::in_hook`]): the C
//! API's functions that may sleep answer `EDEADLK` there instead of
//! sleeping in a hook (which must not: an invalidation may come from atomic
//! context) or taking the mirror's lock again (a self-deadlock).

use kernel::{bindings, mm::Mm, prelude::*, sync::Arc};

use crate::{
    ffi::checks::{self, check_ptr, may_sleep},
    kext::handles::{Handles, Token},
    kext::mm::interval_notifier::FaultMode,
    kext::sync::global::GlobalMutex,
    mirror::registry::{self, span, Client, ClientRef, DriverHooks, MirrorClient},
};

use core::any::Any;

/// `ops->invalidate` of `struct rsva_mirror_ops`.
type InvalidateFn = unsafe extern "C" fn(*mut c_void, c_ulong, c_ulong);
/// `ops->update` of `struct rsva_mirror_ops`.
type UpdateFn = unsafe extern "C" fn(*mut c_void, c_ulong, *const c_ulong, c_ulong);

/// `struct rsva_mirror_ops`.
#[repr(C)]
struct MirrorOps {
    invalidate: Option<InvalidateFn>,
    update: Option<UpdateFn>,
}

/// `RSVA_MIRROR_WRITE` and `RSVA_MIRROR_SNAPSHOT`.
const WRITE: c_uint = 0x1;
const SNAPSHOT: c_uint = 0x2;

/// A driver's hooks and data, as registered: the mirror client's
/// [`DriverHooks`].
struct Hooks {
    invalidate: InvalidateFn,
    update: Option<UpdateFn>,
    private: *mut c_void,
}

// SAFETY: The hooks may be called from any thread, as
// `rsva_mirror_register()` documents; `private` is only passed back to them.
unsafe impl Send for Hooks {}
// SAFETY: Shared references only read the fields: the hooks may be
// called from any thread, as `rsva_mirror_register()` documents, and
// `private` is only passed back to them.
unsafe impl Sync for Hooks {}

impl DriverHooks for Hooks {
    fn invalidate(&self, start: usize, end: usize) {
        // SAFETY: The driver's hook, registered for this client, which is
        // in its mirror (the registry calls it under the mirror's lock).
        checks::in_hook(|| unsafe { (self.invalidate)(self.private, start, end) });
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

impl Hooks {
    /// Calls `ops->update`, if the driver has one, with `npages` entries.
    ///
    /// # Safety
    ///
    /// Called under the mirror's lock with this client in the mirror;
    /// `entries` points at `npages` entries.
    unsafe fn update(&self, start: usize, entries: *const c_ulong, npages: usize) {
        if let Some(update) = self.update {
            // SAFETY: The driver's hook, registered for this; by the
            // safety requirements.
            checks::in_hook(|| unsafe { update(self.private, start, entries, npages) });
        }
    }
}

/// The registered mirrors, by handle. Its mutex initialises itself on
/// first use.
static HANDLES: GlobalMutex<Handles<MirrorClient>> =
    GlobalMutex::new(Handles::new, c"HANDLES", kernel::static_lock_class!());

/// Unregisters the mirrors drivers left behind, leaving the registry
/// empty; called by module exit.
pub(crate) fn exit() {
    let left = HANDLES.lock().take();
    let n = left.objects().count();
    if n > 0 {
        pr_warn!("{} driver mirrors left registered\n", n);
    }
    for client in left.objects() {
        client.leave();
    }
}

/// The registered client of `handle`, or `ENOENT`.
fn lookup(handle: *const c_void) -> Result<Arc<MirrorClient>> {
    let token = Token::from_ptr(handle).ok_or(ENOENT)?;
    HANDLES.lock().get(token).ok_or(ENOENT)
}

fn register(
    mm: *mut bindings::mm_struct,
    ops: *const MirrorOps,
    private: *mut c_void,
) -> Result<*mut c_void> {
    may_sleep()?;
    check_ptr(mm)?;
    check_ptr(ops)?;
    // SAFETY: The caller passes its ops, which live until unregistration.
    let ops = unsafe { &*ops };
    let invalidate = ops.invalidate.ok_or(EINVAL)?;
    check_ptr(invalidate as *const c_void)?;
    if let Some(update) = ops.update {
        check_ptr(update as *const c_void)?;
    }
    // SAFETY: The caller holds a reference on `mm`.
    let mm = unsafe { Mm::from_raw(mm) }.mmget_not_zero().ok_or(ESRCH)?;
    let hooks: KBox<dyn DriverHooks> = KBox::new(
        Hooks {
            invalidate,
            update: ops.update,
            private,
        },
        GFP_KERNEL,
    )?;
    let client = Arc::new(MirrorClient::new(&mm, Client::Driver(hooks))?, GFP_KERNEL)?;
    let reserved = Handles::reserve(GFP_KERNEL)?;
    Ok(HANDLES.lock().insert(reserved, client).as_ptr())
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
    if let Err(e) = may_sleep().and_then(|()| check_ptr(handle)) {
        return e.to_errno();
    }
    let removed = Token::from_ptr(handle).and_then(|t| HANDLES.lock().remove(t));
    let Some(client) = removed else {
        return ENOENT.to_errno();
    };
    // No hook runs after this, even while a racing fault holds the client;
    // then `client` drops, and with it the hooks (once a racing fault is
    // done with them).
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
    may_sleep()?;
    check_ptr(handle)?;
    check_ptr(pfns)?;
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
    client.fault(start, mode, None, pfns, |c, entries| {
        if let Some(hooks) = match c {
            ClientRef::Driver(d) => d.as_any().downcast_ref::<Hooks>(),
            ClientRef::Table(_) => None,
        } {
            // SAFETY: This client is in its mirror (this runs under its
            // lock); `entries` has `npages` entries.
            unsafe { hooks.update(start, entries.as_ptr().cast(), npages) };
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

/// For KUnit test modules (`include/rsva_test.h`): the number of shared
/// mirrors, and of their clients in `*clients` when it is not null.
#[no_mangle]
extern "C" fn rsva_test_mirrors(clients: *mut c_ulong) -> c_ulong {
    let (mirrors, n) = registry::counts();
    if !clients.is_null() {
        // SAFETY: The caller passes a valid pointer or null.
        unsafe { *clients = n };
    }
    mirrors
}
