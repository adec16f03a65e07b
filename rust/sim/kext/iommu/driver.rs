// SPDX-License-Identifier: GPL-2.0

//! IOMMU drivers: the `struct iommu_ops` of a driver, built from the
//! [`IommuDriver`] trait as `miscdevice.rs` builds a `file_operations` from
//! `MiscDevice`, and the [`Registration`] of the IOMMU for a bus.
//!
//! The IOMMU core calls the driver for a device between the device's
//! `probe_device` and its `release_device`. The driver's data of the
//! device ([`IommuDriver::DeviceData`], returned by
//! [`IommuDriver::probe_device`]) is kept by the core in the device's
//! `dev_iommu` (`dev_iommu_priv_set()`) for that time, with the device's
//! port to the IOMMU's page fault queue ([`IopfPort`], given to
//! `probe_device`), and every callback in between borrows it;
//! `release_device` closes the port (the device leaves the queue) and drops
//! the data.
//!
//! C header: [`include/linux/iommu.h`](srctree/include/linux/iommu.h)

use core::{marker::PhantomData, ptr::null_mut};

use kernel::{
    bindings,
    device::Device,
    error::{to_result, VTABLE_DEFAULT_ERROR},
    iommu::dma_owner::Group,
    mm::MmWithUser,
    prelude::*,
    sync::{
        aref::ARef,
        atomic::{Atomic, Relaxed},
        Arc,
    },
    types::{ForeignOwnable, Opaque},
};

use super::{
    domain::{PagingDomain, SvaDomain, SvaDomainOps},
    iopf::{IopfPort, IopfQueue},
};
use crate::{glue, kext::device::bus::BusIommu};

// The prototypes name kernel structures only behind pointers; their layout
// does not cross the boundary.
#[expect(improper_ctypes)]
extern "C" {
    fn rsva_sim_iommu_register(
        iommu: *mut bindings::iommu_device,
        ops: *const bindings::iommu_ops,
        nb: *mut bindings::notifier_block,
    ) -> c_int;
    fn rsva_sim_iommu_unregister(
        iommu: *mut bindings::iommu_device,
        nb: *mut bindings::notifier_block,
    );
    fn rsva_sim_dev_iommu_priv(dev: *mut bindings::device) -> *mut c_void;
}

/// The borrowed form of a driver's data of a device.
pub(crate) type DeviceDataRef<'a, T> =
    <<T as IommuDriver>::DeviceData as ForeignOwnable>::Borrowed<'a>;

/// The answer to a group of page requests, as the IOMMU core hands it to
/// the driver (`struct iommu_page_response`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PageResponse {
    /// The PASID of the group.
    pub(crate) pasid: u32,
    /// The group's index.
    pub(crate) grpid: u32,
    /// `enum iommu_page_response_code`.
    pub(crate) code: u32,
}

/// An IOMMU driver: what the IOMMU core calls for the devices of its
/// IOMMU (`struct iommu_ops`).
///
/// The driver has a static identity domain, which is the devices' default
/// domain (DMA-API users get direct mapping), and a static blocked domain,
/// which is how the core detaches a PASID ([`IommuDriver::block_pasid`]).
/// Every callback runs in process context, with a device the core probed
/// with [`IommuDriver::probe_device`] and has not released yet.
#[vtable]
pub(crate) trait IommuDriver: Sized + 'static {
    /// The driver's data of a device, from `probe_device` to
    /// `release_device`.
    type DeviceData: ForeignOwnable + Send + Sync;

    /// The data of the driver's SVA domains.
    type SvaDomain: SvaDomainOps<DeviceData = Self::DeviceData>;

    /// `probe_device`: `dev` is served by this driver's IOMMU; returns the
    /// driver's data of it. `ENODEV` refuses the device. `iopf` is the
    /// device's port to the IOMMU's page fault queue, which the core's
    /// release of the device closes.
    fn probe_device(dev: &Device, iopf: IopfPort) -> Result<Self::DeviceData>;

    /// `device_group`: the IOMMU group of `dev`.
    fn device_group(dev: &Device, data: DeviceDataRef<'_, Self>) -> Result<ARef<Group>>;

    /// `set_dev_pasid` of the blocked domain: `pasid` of `dev` stops
    /// translating; `old` is the SVA domain attached to it until now, if
    /// the domain attached was one.
    fn block_pasid(
        _dev: &Device,
        _data: DeviceDataRef<'_, Self>,
        _pasid: u32,
        _old: Option<&SvaDomain<Self::SvaDomain>>,
    ) -> Result {
        build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// `domain_alloc_sva`: a new SVA domain of `mm` for `dev`.
    fn domain_alloc_sva(
        _dev: &Device,
        _data: DeviceDataRef<'_, Self>,
        _mm: &MmWithUser,
    ) -> Result<Arc<SvaDomain<Self::SvaDomain>>> {
        build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// `domain_alloc_paging`: a new paging domain for `dev`, which the core
    /// makes `IOMMU_DOMAIN_UNMANAGED`.
    fn domain_alloc_paging(_dev: &Device, _data: DeviceDataRef<'_, Self>) -> Result<PagingDomain> {
        build_error!(VTABLE_DEFAULT_ERROR)
    }

    /// `page_response`: the core answers a group of page requests that
    /// `dev` sent.
    fn page_response(_dev: &Device, _data: DeviceDataRef<'_, Self>, _response: PageResponse) {
        build_error!(VTABLE_DEFAULT_ERROR)
    }
}

/// What the core keeps as a device's `dev_iommu` private data, from
/// `probe_device` to `release_device`.
struct Probed {
    /// `into_foreign()` of the driver's data of the device.
    data: *mut c_void,
    /// The device's port to the IOMMU's page fault queue, closed by
    /// `release_device`.
    iopf: IopfPort,
}

/// The driver's data of `dev`, borrowed.
///
/// # Safety
///
/// `dev` is a valid device that the `probe_device` of a driver whose
/// [`IommuDriver::DeviceData`] is `D` probed and that is not released yet,
/// and stays so for `'a` (the IOMMU core calls the device's callbacks
/// between the two, so a callback's duration qualifies).
pub(super) unsafe fn device_data<'a, D: ForeignOwnable>(
    dev: *mut bindings::device,
) -> Option<D::Borrowed<'a>> {
    // SAFETY: `dev` is valid (the safety requirements); the helper reads
    // `dev->iommu->priv`.
    let probed = unsafe { rsva_sim_dev_iommu_priv(dev) }.cast::<Probed>();
    if probed.is_null() {
        return None;
    }
    // SAFETY: The driver's `probe_device` set the private data to a
    // `Probed` whose `data` is `into_foreign()` of a `D`, and only its
    // `release_device`, which does not come before `'a` ends (the safety
    // requirements), frees the one and takes the other back.
    Some(unsafe { D::borrow((*probed).data) })
}

/// The `extern "C"` callbacks of `T`'s `struct iommu_ops` and of its static
/// domains.
struct Callbacks<T>(PhantomData<T>);

impl<T: IommuDriver> Callbacks<T> {
    /// `attach_dev` of the static domains: nothing to program.
    const STATIC_DOMAIN_OPS: bindings::iommu_domain_ops = bindings::iommu_domain_ops {
        attach_dev: Some(Self::attach_nop),
        ..pin_init::zeroed()
    };

    /// The blocked domain's, which also detaches PASIDs.
    const BLOCKED_OPS: bindings::iommu_domain_ops = bindings::iommu_domain_ops {
        attach_dev: Some(Self::attach_nop),
        set_dev_pasid: if T::HAS_BLOCK_PASID {
            Some(Self::blocked_set_dev_pasid)
        } else {
            None
        },
        ..pin_init::zeroed()
    };

    /// [`Self::STATIC_DOMAIN_OPS`], which lives as long as the code.
    const fn static_domain_ops() -> &'static bindings::iommu_domain_ops {
        &Self::STATIC_DOMAIN_OPS
    }

    /// [`Self::BLOCKED_OPS`], which lives as long as the code.
    const fn blocked_ops() -> &'static bindings::iommu_domain_ops {
        &Self::BLOCKED_OPS
    }

    /// The `struct iommu_ops` of `T`, whose static domains are `identity`
    /// and `blocked`. `owner` stays null on purpose: the core takes a module
    /// reference per probed device, which would keep the module from ever
    /// being unloaded while it has devices; instead the devices of the IOMMU
    /// (and so every domain) are gone before it is unregistered.
    fn iommu_ops(
        identity: *mut bindings::iommu_domain,
        blocked: *mut bindings::iommu_domain,
    ) -> bindings::iommu_ops {
        bindings::iommu_ops {
            probe_device: Some(Self::probe_device),
            release_device: Some(Self::release_device),
            device_group: Some(Self::device_group),
            domain_alloc_sva: if T::HAS_DOMAIN_ALLOC_SVA {
                Some(Self::domain_alloc_sva)
            } else {
                None
            },
            domain_alloc_paging: if T::HAS_DOMAIN_ALLOC_PAGING {
                Some(Self::domain_alloc_paging)
            } else {
                None
            },
            page_response: if T::HAS_PAGE_RESPONSE {
                Some(Self::page_response)
            } else {
                None
            },
            identity_domain: identity,
            blocked_domain: blocked,
            default_domain: identity,
            ..pin_init::zeroed()
        }
    }

    /// `attach_dev` of the static domains.
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

    /// `probe_device`.
    ///
    /// # Safety
    ///
    /// Called by the IOMMU core with a valid device whose fwspec names the
    /// IOMMU of `T`'s registration, before anything else of the device.
    unsafe extern "C" fn probe_device(dev: *mut bindings::device) -> *mut bindings::iommu_device {
        let iommu = REGISTERED.load(Relaxed) as *mut bindings::iommu_device;
        if iommu.is_null() {
            return glue::err_ptr(ENODEV);
        }
        // SAFETY: The core calls `T`'s `probe_device` only while `T`'s ops
        // are registered, so the one registration of the module, which
        // `REGISTERED` names, is a `Registration<T>`, live for the call;
        // `iommu` is the first field of the `#[repr(C)]` `RawIommu` that
        // its `raw` wraps (`Opaque` is transparent).
        let registration = unsafe {
            &*kernel::container_of!(iommu.cast::<Opaque<RawIommu>>(), Registration<T>, raw)
        };
        // SAFETY: The core passes a valid device, alive during the call.
        let device = unsafe { Device::from_raw(dev) };
        match Self::probe(device, &registration.prq) {
            Ok(probed) => {
                // SAFETY: `dev` is valid and being probed, so it has its
                // `dev_iommu` and the core holds `iommu_probe_device_lock`;
                // the core keeps the `dev_iommu` until after
                // `release_device`, which takes the data back.
                unsafe { bindings::dev_iommu_priv_set(dev, KBox::into_raw(probed).cast()) };
                iommu
            }
            Err(e) => glue::err_ptr(e),
        }
    }

    /// The device's port to `queue` and the driver's data of it, for the
    /// core to keep while it has the device probed.
    fn probe(device: &Device, queue: &Arc<IopfQueue>) -> Result<KBox<Probed>> {
        // SAFETY: The core is probing the device. On success, the port goes
        // with the `Probed` record, which `release_device` closes before
        // the core stops having the device probed; on failure, it is closed
        // here, before the core learns of the failure.
        let port = unsafe { IopfPort::new(device, queue.clone())? };
        let mut probed = KBox::new(
            Probed {
                data: null_mut(),
                iopf: port.clone(),
            },
            GFP_KERNEL,
        )?;
        match T::probe_device(device, port) {
            Ok(data) => {
                probed.data = data.into_foreign();
                Ok(probed)
            }
            Err(e) => {
                // The driver may have kept a clone.
                probed.iopf.release();
                Err(e)
            }
        }
    }

    /// `release_device`: closes the device's port to the page fault queue,
    /// which takes the device out of the queue if it is still in, and drops
    /// the driver's data of the device (the core frees the `dev_iommu` that
    /// points at them just after).
    ///
    /// # Safety
    ///
    /// Called by the IOMMU core, once, with a device probed by
    /// [`Self::probe_device`], after its last other callback.
    unsafe extern "C" fn release_device(dev: *mut bindings::device) {
        // SAFETY: The core passes a valid device; the helper reads
        // `dev->iommu->priv`.
        let probed = unsafe { rsva_sim_dev_iommu_priv(dev) }.cast::<Probed>();
        if probed.is_null() {
            return;
        }
        // SAFETY: Set by `probe_device` to `KBox::into_raw()` of a
        // `Probed`, taken back once, here: the core calls `release_device`
        // once per probe and frees the device's `dev_iommu`, and with it
        // the pointer, right after; no callback of the device borrows the
        // record any more.
        let probed = unsafe { KBox::from_raw(probed) };
        // While the device is still probed: a member of the port left does
        // nothing from here.
        probed.iopf.release();
        // SAFETY: `data` is `into_foreign()` of a `T::DeviceData`, set by
        // `probe_device` and taken back once, here, with its record.
        drop(unsafe { T::DeviceData::from_foreign(probed.data) });
    }

    /// `device_group`: the group of the device, with a reference.
    ///
    /// # Safety
    ///
    /// Called by the IOMMU core with a device probed by
    /// [`Self::probe_device`] and not released.
    unsafe extern "C" fn device_group(dev: *mut bindings::device) -> *mut bindings::iommu_group {
        // SAFETY: The core passes a valid device, probed and not released,
        // for the duration of the call.
        let Some(data) = (unsafe { device_data::<T::DeviceData>(dev) }) else {
            return glue::err_ptr(ENODEV);
        };
        // SAFETY: The core passes a valid device, alive during the call.
        let device = unsafe { Device::from_raw(dev) };
        match T::device_group(device, data) {
            // The reference goes to the core (`device_group`'s contract).
            Ok(group) => ARef::into_raw(group).as_ptr().cast(),
            Err(e) => glue::err_ptr(e),
        }
    }

    /// `set_dev_pasid` of the blocked domain.
    ///
    /// # Safety
    ///
    /// Called by the IOMMU core with a device probed by
    /// [`Self::probe_device`] and not released, and the domain attached to
    /// the PASID until now, or null.
    unsafe extern "C" fn blocked_set_dev_pasid(
        _domain: *mut bindings::iommu_domain,
        dev: *mut bindings::device,
        pasid: bindings::ioasid_t,
        old: *mut bindings::iommu_domain,
    ) -> c_int {
        // SAFETY: The core passes a valid device, probed and not released,
        // for the duration of the call.
        let Some(data) = (unsafe { device_data::<T::DeviceData>(dev) }) else {
            return ENODEV.to_errno();
        };
        // SAFETY: The core passes a valid device, alive during the call.
        let device = unsafe { Device::from_raw(dev) };
        // SAFETY: `old` is null or the domain attached to a PASID of a
        // device of `T`, which the core keeps for the call.
        let old = unsafe { SvaDomain::<T::SvaDomain>::from_attached(old) };
        match T::block_pasid(device, data, pasid, old) {
            Ok(()) => 0,
            Err(e) => e.to_errno(),
        }
    }

    /// `domain_alloc_sva`: the driver's SVA domain, the core's reference
    /// to it given to the core until the domain's `free`.
    ///
    /// # Safety
    ///
    /// Called by the IOMMU core with a device probed by
    /// [`Self::probe_device`] and not released, and an mm whose user
    /// reference its caller holds.
    unsafe extern "C" fn domain_alloc_sva(
        dev: *mut bindings::device,
        mm: *mut bindings::mm_struct,
    ) -> *mut bindings::iommu_domain {
        // SAFETY: The core passes a valid device, probed and not released,
        // for the duration of the call.
        let Some(data) = (unsafe { device_data::<T::DeviceData>(dev) }) else {
            return glue::err_ptr(ENODEV);
        };
        // SAFETY: The core passes a valid device, alive during the call.
        let device = unsafe { Device::from_raw(dev) };
        // SAFETY: The caller of `iommu_sva_domain_alloc()` holds a user
        // reference on `mm` during the call.
        let mm = unsafe { MmWithUser::from_raw(mm) };
        match T::domain_alloc_sva(device, data, mm) {
            Ok(domain) => SvaDomain::into_raw(domain),
            Err(e) => glue::err_ptr(e),
        }
    }

    /// `domain_alloc_paging`.
    ///
    /// # Safety
    ///
    /// Called by the IOMMU core with a device probed by
    /// [`Self::probe_device`] and not released.
    unsafe extern "C" fn domain_alloc_paging(
        dev: *mut bindings::device,
    ) -> *mut bindings::iommu_domain {
        // SAFETY: The core passes a valid device, probed and not released,
        // for the duration of the call.
        let Some(data) = (unsafe { device_data::<T::DeviceData>(dev) }) else {
            return glue::err_ptr(ENODEV);
        };
        // SAFETY: The core passes a valid device, alive during the call.
        let device = unsafe { Device::from_raw(dev) };
        match T::domain_alloc_paging(device, data) {
            Ok(domain) => domain.into_raw(),
            Err(e) => glue::err_ptr(e),
        }
    }

    /// `page_response`.
    ///
    /// # Safety
    ///
    /// Called by the IOMMU core with a device probed by
    /// [`Self::probe_device`] and not released, and a valid response.
    unsafe extern "C" fn page_response(
        dev: *mut bindings::device,
        _evt: *mut bindings::iopf_fault,
        msg: *mut bindings::iommu_page_response,
    ) {
        // SAFETY: The core passes a valid device, probed and not released,
        // for the duration of the call.
        let Some(data) = (unsafe { device_data::<T::DeviceData>(dev) }) else {
            return;
        };
        // SAFETY: The core passes a valid device, alive during the call.
        let device = unsafe { Device::from_raw(dev) };
        // SAFETY: The core passes a valid response, for the duration of the
        // call.
        let msg = unsafe { &*msg };
        let response = PageResponse {
            pasid: msg.pasid,
            grpid: msg.grpid,
            code: msg.code,
        };
        T::page_response(device, data, response);
    }
}

/// The address of the `struct iommu_device` of the module's one
/// [`Registration`], null while there is none.
///
/// `probe_device` must name the IOMMU of the device, which the core knows
/// from the device's fwspec but does not tell the driver; a registration
/// for a bus serves every device of the bus, and the module has one bus, so
/// it has one registration, and this is it.
static REGISTERED: Atomic<usize> = Atomic::new(0);

/// The C structures of a registration: the IOMMU, the bus notifier the
/// core registers for it, its ops and their static domains.
#[repr(C)]
struct RawIommu {
    iommu: bindings::iommu_device,
    nb: bindings::notifier_block,
    ops: bindings::iommu_ops,
    identity: bindings::iommu_domain,
    blocked: bindings::iommu_domain,
}

/// The IOMMU of driver `T`, registered with the IOMMU core for the
/// module's bus while this lives, with its ops and static domains, and
/// its page request queue ([`IopfQueue`]), which it shares with the ports
/// of the devices it probes ([`IopfPort`]).
///
/// It holds no reference: the module's devices on the bus must be removed
/// before it is dropped (the core would call `T`'s code for them, and the
/// ops and static domains are in this object). As the IOMMU of a
/// [`Bus`](crate::kext::device::bus::Bus), which every device of the bus
/// holds, it is. Dropping it unregisters the
/// IOMMU, then drops its reference to the queue. There is one at a time in
/// the module ([`REGISTERED`]).
///
/// # Invariants
///
/// - `raw` is registered with the IOMMU core, with `raw.ops` built for `T`
///   by [`Callbacks::iommu_ops`], from `register` until drop, and
///   [`REGISTERED`] holds the address of `raw.iommu` for that time.
/// - `prq` is dropped after `raw` is unregistered (field order after the
///   pinned drop).
#[pin_data(PinnedDrop)]
pub(crate) struct Registration<T: IommuDriver> {
    #[pin]
    raw: Opaque<RawIommu>,
    prq: Arc<IopfQueue>,
    _driver: PhantomData<T>,
}

// SAFETY: The IOMMU core synchronises every access to the registered
// structures; Rust only passes their addresses; it may be unregistered
// from any thread.
unsafe impl<T: IommuDriver> Send for Registration<T> {}
// SAFETY: Shared references only pass the registered structures'
// addresses to the IOMMU core, which synchronises every access to them.
unsafe impl<T: IommuDriver> Sync for Registration<T> {}

impl<T: IommuDriver> Registration<T> {
    /// Registers the IOMMU for the module's bus, with room for
    /// `max_pasids` PASIDs per device; the devices added to the bus after
    /// this are probed with `T`. `EBUSY` while another registration lives;
    /// the core's errors.
    pub(crate) fn register(max_pasids: u32) -> impl PinInit<Self, Error> {
        try_pin_init!(Self {
            prq: IopfQueue::new(c"rsva_sim")?,
            raw <- Opaque::try_ffi_init(move |raw: *mut RawIommu| {
                if REGISTERED
                    .cmpxchg(0, raw as usize, Relaxed)
                    .is_err()
                {
                    return Err(EBUSY);
                }
                // SAFETY: `raw` is valid for writes and pinned; all-zeroes
                // is the initial state of the structures; the static
                // domains' ops are constants that live as long as the code.
                unsafe {
                    raw.write(core::mem::zeroed());
                    (*raw).iommu.max_pasids = max_pasids;
                    (*raw).identity.type_ = bindings::IOMMU_DOMAIN_IDENTITY;
                    (*raw).identity.ops = Callbacks::<T>::static_domain_ops();
                    (*raw).blocked.type_ = bindings::IOMMU_DOMAIN_BLOCKED;
                    (*raw).blocked.ops = Callbacks::<T>::blocked_ops();
                    (*raw).ops = Callbacks::<T>::iommu_ops(
                        &raw mut (*raw).identity,
                        &raw mut (*raw).blocked,
                    );
                }
                // SAFETY: The structures are initialised just above and
                // pinned; the drop unregisters them before their memory
                // goes. INVARIANT: on success, registered, and
                // `REGISTERED` names it.
                let ret = to_result(unsafe {
                    rsva_sim_iommu_register(
                        &raw mut (*raw).iommu,
                        &raw const (*raw).ops,
                        &raw mut (*raw).nb,
                    )
                });
                if ret.is_err() {
                    REGISTERED.store(0, Relaxed);
                }
                ret
            }),
            _driver: PhantomData,
        })
    }

    /// The `struct iommu_device`, for adding devices to the bus.
    pub(crate) fn raw(&self) -> *mut bindings::iommu_device {
        // SAFETY: `raw` is valid for as long as `self`; only the field's
        // address is computed.
        unsafe { &raw mut (*self.raw.get()).iommu }
    }
}

// SAFETY: Once initialised, `raw.iommu` is registered with the IOMMU core
// for the platform's bus (`rsva_sim_iommu_register()`) until drop (type
// invariant), and `raw` is pinned, so `iommu_device()` returns the same
// address every time.
unsafe impl<T: IommuDriver> BusIommu for Registration<T> {
    fn iommu_device(&self) -> *mut bindings::iommu_device {
        self.raw()
    }
}

#[pinned_drop]
impl<T: IommuDriver> PinnedDrop for Registration<T> {
    fn drop(self: Pin<&mut Self>) {
        let raw = self.raw.get();
        // SAFETY: Registered (type invariant), unregistered once, here; the
        // module removed every device of the bus before (the type's
        // requirement).
        unsafe { rsva_sim_iommu_unregister(&raw mut (*raw).iommu, &raw mut (*raw).nb) };
        REGISTERED.store(0, Relaxed);
    }
}

#[kunit_tests(rsva_sim_iommu_driver)]
mod tests {
    use super::*;
    use crate::kext::iommu::domain::tests::TestDriver;

    /// The ops built for a driver set exactly the callbacks it implements,
    /// and its static domains are the ones given.
    #[test]
    fn ops_follow_the_drivers_vtable() {
        let mut identity: bindings::iommu_domain = pin_init::zeroed();
        let mut blocked: bindings::iommu_domain = pin_init::zeroed();
        let ops = Callbacks::<TestDriver>::iommu_ops(&raw mut identity, &raw mut blocked);
        assert!(ops.probe_device.is_some());
        assert!(ops.release_device.is_some());
        assert!(ops.device_group.is_some());
        assert!(ops.domain_alloc_sva.is_some());
        assert!(ops.domain_alloc_paging.is_none());
        assert!(ops.page_response.is_none());
        assert!(ops.owner.is_null());
        assert!(core::ptr::eq(ops.identity_domain, &raw mut identity));
        assert!(core::ptr::eq(ops.default_domain, &raw mut identity));
        assert!(core::ptr::eq(ops.blocked_domain, &raw mut blocked));
        let blocked_ops = Callbacks::<TestDriver>::blocked_ops();
        assert!(blocked_ops.set_dev_pasid.is_some());
        assert!(blocked_ops.attach_dev.is_some());
        assert!(Callbacks::<TestDriver>::static_domain_ops()
            .set_dev_pasid
            .is_none());
    }

    /// The module has one IOMMU for its one bus: a second registration is
    /// refused while the module's lives, and nothing of it stays.
    #[test]
    fn a_second_registration_is_refused() {
        let before = REGISTERED.load(Relaxed);
        // The module is live while its suites run: its IOMMU is registered.
        assert_ne!(before, 0);
        let r = KBox::pin_init(Registration::<TestDriver>::register(16), GFP_KERNEL);
        assert_eq!(r.err(), Some(EBUSY));
        assert_eq!(REGISTERED.load(Relaxed), before);
    }
}
