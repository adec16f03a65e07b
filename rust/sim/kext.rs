// SPDX-License-Identifier: GPL-2.0

//! rsva_sim's abstractions of kernel facilities that the kernel crate does
//! not have and that rsva's layer (`rust/kext/`, another module) cannot
//! lend it: the platform's bus, the kernel's SVA bind API as a driver uses
//! it, a wait queue that C owns, and the mmu notifiers' barrier; and, laid
//! out as `rust/kernel/` is, the IOMMU driver side of the IOMMU core
//! ([`iommu`]).

pub(crate) mod iommu;

use core::ptr::NonNull;

use kernel::{
    bindings,
    error::to_result,
    prelude::*,
    sync::atomic::{Atomic, Relaxed},
};

use crate::glue;

/// An SVA bond made with `iommu_sva_bind_device()`, whichever
/// implementation serves it; unbound on drop.
///
/// # Invariants
///
/// `handle` was returned by `iommu_sva_bind_device()` and is not unbound;
/// `pasid` is its PASID.
pub(crate) struct SvaBond {
    handle: NonNull<bindings::iommu_sva>,
    pasid: u32,
}

// SAFETY: A bond may be unbound from any thread.
unsafe impl Send for SvaBond {}
// SAFETY: Shared references only read the PASID.
unsafe impl Sync for SvaBond {}

impl SvaBond {
    /// Binds `mm` to `dev`. `ENODEV` for a bond without a PASID; the bind's
    /// errors.
    ///
    /// # Safety
    ///
    /// `dev` is a valid device with a driver bound, which stays bound
    /// until the bond is dropped; `mm` is a valid mm with a user reference
    /// held by the caller.
    pub(crate) unsafe fn bind(
        dev: *mut bindings::device,
        mm: *mut bindings::mm_struct,
    ) -> Result<Self> {
        // SAFETY: By the safety requirements.
        let handle = unsafe { bindings::iommu_sva_bind_device(dev, mm) };
        let handle = NonNull::new(glue::from_err_ptr(handle)?).ok_or(ENODEV)?;
        // SAFETY: `handle` is a live bond.
        let pasid = unsafe { bindings::iommu_sva_get_pasid(handle.as_ptr()) };
        // INVARIANT: just bound; its PASID.
        let bond = SvaBond { handle, pasid };
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

impl Drop for SvaBond {
    fn drop(&mut self) {
        // SAFETY: Not unbound yet (type invariant); unbound once here. The
        // device is still bound (`bind()`'s safety requirements).
        unsafe { bindings::iommu_sva_unbind_device(self.handle.as_ptr()) };
    }
}

/// A wait queue head that C owns (uacce's `q->wait`, which `poll()` sleeps
/// on), for as long as this lives.
///
/// # Invariants
///
/// `0` is an initialised wait queue head that stays valid while this
/// lives.
pub(crate) struct ForeignWaitQueue(NonNull<bindings::wait_queue_head>);

// SAFETY: Waking a wait queue is allowed from any thread.
unsafe impl Send for ForeignWaitQueue {}
// SAFETY: Shared references only wake the queue, which takes its own lock.
unsafe impl Sync for ForeignWaitQueue {}

impl ForeignWaitQueue {
    /// The wait queue head at `wq`.
    ///
    /// # Safety
    ///
    /// `wq` is an initialised wait queue head that stays valid until the
    /// returned value is dropped.
    pub(crate) unsafe fn new(wq: *mut bindings::wait_queue_head) -> Option<Self> {
        // INVARIANT: by the safety requirements.
        NonNull::new(wq).map(Self)
    }

    /// Wakes one interruptible waiter (`wake_up_interruptible()`).
    pub(crate) fn wake(&self) {
        // SAFETY: The head is valid while `self` lives (type invariant).
        unsafe {
            bindings::__wake_up(
                self.0.as_ptr(),
                bindings::TASK_INTERRUPTIBLE,
                1,
                core::ptr::null_mut(),
            )
        };
    }
}

/// Whether the platform's bus is registered.
static BUS_REGISTERED: Atomic<bool> = Atomic::new(false);

/// The platform's bus (`rsva_sim_bus`, a static `bus_type` of
/// `rsva_sim_glue.c`), registered while this lives.
///
/// # Invariants
///
/// The bus is registered, by this object (there is one at a time).
pub(crate) struct Bus(());

impl Bus {
    /// Registers the bus; `EBUSY` while another [`Bus`] lives.
    pub(crate) fn register() -> Result<Self> {
        if BUS_REGISTERED.xchg(true, Relaxed) {
            return Err(EBUSY);
        }
        // SAFETY: Registers the module's static bus type, not registered
        // (checked above).
        if let Err(e) = to_result(unsafe { glue::rsva_sim_bus_register() }) {
            BUS_REGISTERED.store(false, Relaxed);
            return Err(e);
        }
        // INVARIANT: registered just above.
        Ok(Bus(()))
    }
}

impl Drop for Bus {
    fn drop(&mut self) {
        // SAFETY: Registered by this object (type invariant), so
        // unregistered once; the module removes its devices from the bus
        // before (the field order of `RsvaSim`).
        unsafe { glue::rsva_sim_bus_unregister() };
        BUS_REGISTERED.store(false, Relaxed);
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
