// SPDX-License-Identifier: GPL-2.0

//! The software IOMMU of the simulated platform, registered with the
//! kernel's IOMMU core for the devices of the `rsva_sim` bus.
//!
//! Route: `iommu_device_register_bus()` on a bus of our own, and devices
//! added with `iommu_mock_device_add()` (which points their fwspec at this
//! IOMMU), as the iommufd selftest's mock IOMMU does; both are exported when
//! `CONFIG_IOMMUFD_TEST=y`. See Documentation/simulated-platform.rst.
//!
//! Domains: the default domain is a static identity domain (DMA-API users
//! get direct mapping), the blocked domain is static and is also how the
//! core detaches a PASID (its `set_dev_pasid`), SVA domains are allocated
//! per address space (`sva_domain.rs`), and paging domains
//! (`iommu_paging_domain_alloc()`, `IOMMU_DOMAIN_UNMANAGED`) can be
//! allocated and attached, as a kernel driver that manages its device's
//! DMA itself or VFIO does, but map nothing: the devices' DMA without a
//! PASID is not simulated.

#![allow(
    unsafe_code,
    reason = "the IOMMU driver's callbacks have no layer type yet"
)]

use kernel::{bindings, error::to_result, prelude::*, sync::aref::ARef, types::Opaque};

use crate::{
    ffi,
    glue::{self, CStatic},
    kext::device::bus::BusIommu,
    sva_domain,
};

static IDENTITY_OPS: CStatic<bindings::iommu_domain_ops> =
    CStatic::new(bindings::iommu_domain_ops {
        attach_dev: Some(attach_nop),
        ..pin_init::zeroed()
    });

static IDENTITY: CStatic<bindings::iommu_domain> = CStatic::new(bindings::iommu_domain {
    type_: bindings::IOMMU_DOMAIN_IDENTITY,
    ops: IDENTITY_OPS.get().cast_const(),
    ..pin_init::zeroed()
});

static PAGING_OPS: CStatic<bindings::iommu_domain_ops> = CStatic::new(bindings::iommu_domain_ops {
    attach_dev: Some(attach_nop),
    free: Some(paging_free),
    ..pin_init::zeroed()
});

static BLOCKED_OPS: CStatic<bindings::iommu_domain_ops> =
    CStatic::new(bindings::iommu_domain_ops {
        attach_dev: Some(attach_nop),
        set_dev_pasid: Some(blocked_set_dev_pasid),
        ..pin_init::zeroed()
    });

static BLOCKED: CStatic<bindings::iommu_domain> = CStatic::new(bindings::iommu_domain {
    type_: bindings::IOMMU_DOMAIN_BLOCKED,
    ops: BLOCKED_OPS.get().cast_const(),
    ..pin_init::zeroed()
});

/// The IOMMU's ops. `owner` stays null on purpose: the core takes a module
/// reference per probed device, which would keep the module from ever being
/// unloaded while it owns devices; instead the module removes its devices
/// (and so every domain) before its text goes away.
static OPS: CStatic<bindings::iommu_ops> = CStatic::new(bindings::iommu_ops {
    probe_device: Some(probe_device),
    release_device: Some(release_device),
    device_group: Some(device_group),
    domain_alloc_sva: Some(sva_domain::domain_alloc_sva),
    domain_alloc_paging: Some(domain_alloc_paging),
    page_response: Some(page_response),
    identity_domain: IDENTITY.get(),
    blocked_domain: BLOCKED.get(),
    default_domain: IDENTITY.get(),
    ..pin_init::zeroed()
});

/// `attach_dev` of the static domains: nothing to program.
///
/// # Safety
///
/// Called by the IOMMU core.
unsafe extern "C" fn attach_nop(
    _domain: *mut bindings::iommu_domain,
    _dev: *mut bindings::device,
    _old: *mut bindings::iommu_domain,
) -> c_int {
    0
}

/// `domain_alloc_paging`: a paging domain (the core makes it
/// `IOMMU_DOMAIN_UNMANAGED`), which maps nothing.
///
/// # Safety
///
/// Called by the IOMMU core.
unsafe extern "C" fn domain_alloc_paging(
    _dev: *mut bindings::device,
) -> *mut bindings::iommu_domain {
    let domain = bindings::iommu_domain {
        ops: PAGING_OPS.get().cast_const(),
        ..pin_init::zeroed()
    };
    match KBox::new(domain, GFP_KERNEL) {
        Ok(d) => KBox::into_raw(d),
        Err(e) => glue::err_ptr(e.into()),
    }
}

/// `free` of a paging domain.
///
/// # Safety
///
/// Called by the IOMMU core, once, with a domain of `domain_alloc_paging`.
unsafe extern "C" fn paging_free(domain: *mut bindings::iommu_domain) {
    // SAFETY: From `KBox::into_raw` in `domain_alloc_paging`; the core
    // frees each domain once and uses it no more.
    drop(unsafe { KBox::from_raw(domain) });
}

/// `set_dev_pasid` of the blocked domain: detaches a PASID.
///
/// # Safety
///
/// Called by the IOMMU core with a valid device and null or a valid domain.
unsafe extern "C" fn blocked_set_dev_pasid(
    _domain: *mut bindings::iommu_domain,
    dev: *mut bindings::device,
    pasid: bindings::ioasid_t,
    old: *mut bindings::iommu_domain,
) -> c_int {
    // SAFETY: The core passes a valid device and null or a valid domain.
    unsafe { sva_domain::block_pasid(dev, pasid, old) }
}

/// `probe_device`: our devices are served by this IOMMU.
///
/// # Safety
///
/// `dev` must be a valid device whose fwspec names this IOMMU.
unsafe extern "C" fn probe_device(dev: *mut bindings::device) -> *mut bindings::iommu_device {
    // SAFETY: The core passes a valid device.
    match unsafe { ffi::sim_device(dev) } {
        Some(sdev) => sdev.iommu(),
        None => glue::err_ptr(ENODEV),
    }
}

/// `release_device`: nothing is kept per device in the core.
///
/// # Safety
///
/// Called by the IOMMU core.
unsafe extern "C" fn release_device(_dev: *mut bindings::device) {}

/// `device_group`: the group of the device, with a reference.
///
/// # Safety
///
/// `dev` must be a valid device.
unsafe extern "C" fn device_group(dev: *mut bindings::device) -> *mut bindings::iommu_group {
    // SAFETY: The core passes a valid device.
    match unsafe { ffi::sim_device(dev) } {
        Some(sdev) => match sdev.group.get() {
            Ok(group) => ARef::into_raw(group).as_ptr().cast(),
            Err(e) => glue::err_ptr(e),
        },
        None => glue::err_ptr(ENODEV),
    }
}

/// `page_response`: the answer to a page request group reaches the
/// device that sent it.
///
/// # Safety
///
/// Called by the IOMMU core with a valid device of ours and a valid
/// response.
unsafe extern "C" fn page_response(
    dev: *mut bindings::device,
    _evt: *mut bindings::iopf_fault,
    msg: *mut bindings::iommu_page_response,
) {
    // SAFETY: The core passes a valid device.
    let Some(sdev) = (unsafe { ffi::sim_device(dev) }) else {
        return;
    };
    // SAFETY: The core passes a valid response, for the duration of the call.
    let msg = unsafe { &*msg };
    sdev.page_response(msg.pasid, msg.grpid, msg.code);
}

/// The IOMMU device and the bus notifier the core registers for it.
#[repr(C)]
struct RawIommu {
    iommu: bindings::iommu_device,
    nb: bindings::notifier_block,
}

/// The IOMMU, registered with the core while this object lives, and its
/// page request queue.
///
/// # Invariants
///
/// - `raw` is registered with the IOMMU core from `register` until drop.
/// - `prq` is a queue from `iopf_queue_alloc()`, freed on drop, after the
///   IOMMU is unregistered (every device removed from it by then).
#[pin_data(PinnedDrop)]
pub(crate) struct SimIommu {
    #[pin]
    raw: Opaque<RawIommu>,
    prq: PrqQueue,
}

/// An I/O page fault queue (`struct iopf_queue`): its workqueue runs the
/// fault handlers of the domains attached to its devices.
///
/// # Invariants
///
/// `0` came from `iopf_queue_alloc()` and is freed on drop.
struct PrqQueue(*mut bindings::iopf_queue);

impl PrqQueue {
    fn new() -> Result<Self> {
        // SAFETY: The name is a static C string.
        let q = unsafe { bindings::iopf_queue_alloc(c"rsva_sim".as_char_ptr()) };
        if q.is_null() {
            return Err(ENOMEM);
        }
        // INVARIANT: allocated above.
        Ok(Self(q))
    }
}

impl Drop for PrqQueue {
    fn drop(&mut self) {
        // SAFETY: From `iopf_queue_alloc()` by the type invariant; no device
        // reports into it any more.
        unsafe { bindings::iopf_queue_free(self.0) };
    }
}

// SAFETY: The IOMMU core synchronises every access to the registered
// structures; Rust only passes their addresses.
unsafe impl Send for SimIommu {}
// SAFETY: Shared references only pass the registered structures'
// addresses to the IOMMU core, which synchronises every access to them.
unsafe impl Sync for SimIommu {}

impl SimIommu {
    /// Registers the IOMMU for the `rsva_sim` bus; devices may be added
    /// after this. `max_pasids` bounds the PASIDs of every device.
    pub(crate) fn register(max_pasids: u32) -> impl PinInit<Self, Error> {
        try_pin_init!(Self {
            prq: PrqQueue::new()?,
            raw <- Opaque::try_ffi_init(move |raw: *mut RawIommu| {
                // SAFETY: `raw` is valid for writes and pinned; all-zeroes is
                // the initial state of both structures; the OPS table is
                // static. INVARIANT: on success, the IOMMU is registered.
                unsafe {
                    raw.write(core::mem::zeroed());
                    (*raw).iommu.max_pasids = max_pasids;
                    to_result(glue::rsva_sim_iommu_register(
                        &raw mut (*raw).iommu,
                        OPS.get(),
                        &raw mut (*raw).nb,
                    ))
                }
            }),
        })
    }

    /// The page request queue, for the devices.
    pub(crate) fn prq(&self) -> *mut bindings::iopf_queue {
        self.prq.0
    }

    /// The `struct iommu_device`, for adding devices.
    pub(crate) fn raw(&self) -> *mut bindings::iommu_device {
        // SAFETY: `raw` is valid for as long as `self`.
        unsafe { &raw mut (*self.raw.get()).iommu }
    }
}

// SAFETY: `register()` registers `raw`'s IOMMU device for the platform's
// bus, and it stays registered until drop (type invariant); `raw` is pinned,
// so the address is the same every time.
unsafe impl BusIommu for SimIommu {
    fn iommu_device(&self) -> *mut bindings::iommu_device {
        self.raw()
    }
}

#[pinned_drop]
impl PinnedDrop for SimIommu {
    fn drop(self: Pin<&mut Self>) {
        let raw = self.raw.get();
        // SAFETY: Registered by the type invariant; the module removed every
        // device of the bus before.
        unsafe { glue::rsva_sim_iommu_unregister(&raw mut (*raw).iommu, &raw mut (*raw).nb) };
    }
}
