// SPDX-License-Identifier: GPL-2.0

//! The platform's bus (`rsva_sim_bus`, a static `struct bus_type` of
//! `rsva_sim_glue.c`), the IOMMU that serves it, and the devices on it.
//!
//! C header: [`rust/sim/rsva_sim_glue.h`](../../../rsva_sim_glue.h)
//!
//! The order in which they go is carried by references: a [`BusDevice`]
//! holds its [`Bus`], which holds the IOMMU and the bus registration, so
//! the device leaves the bus before the IOMMU is unregistered, and the
//! IOMMU before the bus. A device holds a reference to its data (the
//! platform's model of the device) until the driver core releases it, so
//! whoever holds the device may look at its data ([`data_of`]).

use core::{any::TypeId, ptr::NonNull};

use kernel::{
    bindings,
    device::Device,
    error::to_result,
    iommu::dma_owner::Group,
    prelude::*,
    sync::{
        aref::ARef,
        atomic::{Atomic, Relaxed},
        Arc,
    },
};

use crate::glue;

/// Whether the platform's bus is registered.
static BUS_REGISTERED: Atomic<bool> = Atomic::new(false);

/// The registration of the platform's bus: registered while this lives.
///
/// It holds no reference; dropping it unregisters the bus
/// (`bus_unregister()`).
///
/// # Invariants
///
/// The bus is registered, by this object (there is one at a time).
struct Registration(());

impl Registration {
    /// Registers the bus; `EBUSY` while another registration lives.
    fn register() -> Result<Self> {
        if BUS_REGISTERED.xchg(true, Relaxed) {
            return Err(EBUSY);
        }
        // SAFETY: Registers the module's static bus type, which is not
        // registered (checked above: no other `Registration` lives).
        if let Err(e) = to_result(unsafe { glue::rsva_sim_bus_register() }) {
            BUS_REGISTERED.store(false, Relaxed);
            return Err(e);
        }
        // INVARIANT: registered just above, by this object.
        Ok(Self(()))
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        // SAFETY: Registered by this object (type invariant), unregistered
        // once here. Every device of the bus is gone: each holds the `Bus`
        // that owns this registration.
        unsafe { glue::rsva_sim_bus_unregister() };
        BUS_REGISTERED.store(false, Relaxed);
    }
}

/// An IOMMU that serves the platform's bus.
///
/// # Safety
///
/// Once the value is initialised (in place, as a [`Bus`]'s IOMMU, so while
/// the bus is registered), [`BusIommu::iommu_device`] returns the same
/// `struct iommu_device` every time, registered with the IOMMU core for the
/// platform's bus (`rsva_sim_iommu_register()`), and it stays registered
/// until the value is dropped.
pub(crate) unsafe trait BusIommu: Send + Sync {
    /// The IOMMU device that new devices of the bus are attached to.
    fn iommu_device(&self) -> *mut bindings::iommu_device;
}

/// The platform's bus and its IOMMU.
///
/// Holds the bus registration and the IOMMU `I`; dropping it (when the last
/// [`Arc`] goes, after every [`BusDevice`]) drops the IOMMU first, which
/// unregisters it, then unregisters the bus.
///
/// # Invariants
///
/// The bus is registered while `iommu` lives (field order: `iommu` drops
/// first).
#[pin_data]
pub(crate) struct Bus<I> {
    #[pin]
    iommu: I,
    registration: Registration,
}

impl<I: BusIommu> Bus<I> {
    /// Registers the bus, then initialises `iommu` (which registers itself
    /// for the bus). `EBUSY` while another [`Bus`] lives.
    pub(crate) fn new(iommu: impl PinInit<I, Error>) -> Result<Arc<Self>> {
        Arc::pin_init(
            // INVARIANT: the registration is made before the IOMMU and
            // dropped after it.
            try_pin_init!(Self {
                registration: Registration::register()?,
                iommu <- iommu,
            }),
            GFP_KERNEL,
        )
    }
}

/// What a device of the bus holds as its data: the data's type, checked
/// by [`data_of`], and the reference.
#[repr(C)]
struct Tagged<T> {
    /// First, so that it is at the same offset whatever `T` is.
    type_id: TypeId,
    data: Arc<T>,
}

/// Releases a device's data, from the device's release in C.
///
/// # Safety
///
/// `data` came from `KBox::<Tagged<T>>::into_raw()` and is released once.
unsafe extern "C" fn release_data<T: 'static>(data: *mut c_void) {
    // SAFETY: By the safety requirements.
    drop(unsafe { KBox::from_raw(data.cast::<Tagged<T>>()) });
}

/// A device on the platform's bus, attached to the bus's IOMMU (the core
/// probes it when it is added), whose data is a `T`.
///
/// Holds the device's registration (the reference `device_initialize()`
/// took), its [`Bus`] and a reference to its data. Dropping it removes the
/// device from the bus (`device_unregister()`, which releases it through
/// the IOMMU core first and drops the registration's reference), then drops
/// the bus (unregistered with the last device). The device itself holds
/// another reference to its data, dropped when the driver core releases it.
///
/// # Invariants
///
/// - `dev` is a device of the platform's bus, registered from creation
///   until drop, whose data is a `Tagged<T>` holding `data`.
/// - `_bus` is the bus `dev` is on.
pub(crate) struct BusDevice<T: 'static, I> {
    dev: NonNull<bindings::device>,
    data: Arc<T>,
    /// Only held: the device goes before its bus.
    _bus: Arc<Bus<I>>,
}

// SAFETY: A device may be removed from any thread; the data and the bus
// are `Send` and `Sync` by the bounds.
unsafe impl<T: Send + Sync, I: Send + Sync> Send for BusDevice<T, I> {}
// SAFETY: Shared references only lend the device (which may be used from
// any thread), the data and the bus, `Sync` by the bounds.
unsafe impl<T: Send + Sync, I: Send + Sync> Sync for BusDevice<T, I> {}

impl<T: Send + Sync + 'static, I: BusIommu> BusDevice<T, I> {
    /// Creates device `rsva_sim<id>` on `bus` with `pasid_bits`-bit PASIDs
    /// and `data` as its data, and adds it (the IOMMU core probes it).
    pub(crate) fn add(
        bus: &Arc<Bus<I>>,
        id: u32,
        pasid_bits: u32,
        data: Arc<T>,
    ) -> Result<Arc<Self>> {
        let tagged = KBox::new(
            Tagged {
                type_id: TypeId::of::<T>(),
                data: data.clone(),
            },
            GFP_KERNEL,
        )?;
        let tagged = KBox::into_raw(tagged);
        // SAFETY: The IOMMU device is registered for the bus, which is
        // registered (`BusIommu`'s contract, while `bus` lives). The C side
        // owns `tagged` from here, failure included, and releases it once
        // with `release_data::<T>`, which matches its type.
        let dev = glue::from_err_ptr(unsafe {
            glue::rsva_sim_device_create(
                bus.iommu.iommu_device(),
                id,
                pasid_bits,
                tagged.cast(),
                Some(release_data::<T>),
            )
        })?;
        let dev = NonNull::new(dev).ok_or(ENODEV)?;
        // INVARIANT: created and registered just above, with `data`; on
        // `bus`.
        let this = Self {
            dev,
            data,
            _bus: bus.clone(),
        };
        // On failure `this` is dropped, which removes the device.
        Ok(Arc::new(this, GFP_KERNEL)?)
    }

    /// The device.
    pub(crate) fn device(&self) -> &Device {
        // SAFETY: `dev` is registered while `self` lives (type invariant),
        // with the registration's reference; the returned reference does
        // not outlive `self`.
        unsafe { Device::from_raw(self.dev.as_ptr()) }
    }

    /// The device's data.
    pub(crate) fn data(&self) -> &Arc<T> {
        &self.data
    }
}

impl<T: 'static, I> Drop for BusDevice<T, I> {
    fn drop(&mut self) {
        // SAFETY: `dev` is registered (type invariant) and removed once,
        // here; the IOMMU and the bus are still registered (`self._bus`
        // drops after this).
        unsafe { glue::rsva_sim_device_destroy(self.dev.as_ptr()) };
    }
}

/// The data of `dev` if it is a device of the platform's bus whose data is
/// a `T`, with the device's reference to it (clone it to keep the data
/// past the borrow); `None` for a device of another bus or with other data.
pub(crate) fn data_of<T: 'static>(dev: &Device) -> Option<&Arc<T>> {
    let raw = core::ptr::from_ref(dev)
        .cast_mut()
        .cast::<bindings::device>();
    // SAFETY: `dev` is a valid device; the helper only reads its bus and,
    // for a device of the platform's bus, its data.
    let data = unsafe { glue::rsva_sim_device_data(raw) };
    if data.is_null() {
        return None;
    }
    // SAFETY: The data of a device of the platform's bus is a `Tagged<_>`
    // (`BusDevice::add`), `#[repr(C)]` with its `TypeId` first, which the
    // device owns until its release; `dev` holds a reference to the device,
    // so it is not released yet.
    let type_id = unsafe { *data.cast::<TypeId>() };
    if type_id != TypeId::of::<T>() {
        return None;
    }
    // SAFETY: The data is a `Tagged<T>` (its `TypeId` says so), owned by
    // the device until its release, which cannot come while `dev` is
    // borrowed: the returned reference does not outlive `dev`.
    Some(unsafe { &(*data.cast::<Tagged<T>>()).data })
}

/// For KUnit: device `rsva_sim<id>` of the platform's bus, with a
/// reference, or `None` when there is no such device.
#[cfg(CONFIG_KUNIT)]
pub(crate) fn find_device(id: u32) -> Option<ARef<Device>> {
    // SAFETY: Looks the device up by name on the module's bus; returns it
    // with a reference, or null.
    let raw = NonNull::new(unsafe { glue::rsva_sim_get_device(id) })?;
    // SAFETY: `raw` is a valid device with a reference, which the `ARef`
    // takes over; `Device` is `repr(transparent)` over `struct device`.
    Some(unsafe { ARef::from_raw(raw.cast()) })
}

/// A new IOMMU group for devices of the bus (`iommu_group_alloc()`), with
/// the reference it was allocated with.
pub(crate) fn alloc_group() -> Result<ARef<Group>> {
    // SAFETY: Allocates a group; returns a referenced group or an ERR_PTR.
    let group = glue::from_err_ptr(unsafe { bindings::iommu_group_alloc() })?;
    let group = NonNull::new(group).ok_or(ENOMEM)?;
    // SAFETY: `iommu_group_alloc()` returned a reference, which the `ARef`
    // owns; `Group` is `repr(transparent)` over `struct iommu_group`.
    Ok(unsafe { ARef::from_raw(group.cast()) })
}

/// Whether an owner claimed the DMA of `group` through the DMA ownership
/// API (`iommu_group_dma_owner_claimed()`).
pub(crate) fn dma_owner_claimed(group: &Group) -> bool {
    // SAFETY: `group` is a referenced group; the call only reads it under
    // the group's lock.
    unsafe { bindings::iommu_group_dma_owner_claimed(group.as_raw()) }
}

#[kunit_tests(rsva_sim_bus)]
mod tests {
    use super::*;

    /// The module's bus is registered while the suite runs: a second
    /// registration is refused, and refusing it leaves the first alone.
    #[test]
    fn one_registration_at_a_time() {
        assert!(matches!(Registration::register(), Err(e) if e == EBUSY));
        assert!(BUS_REGISTERED.load(Relaxed));
    }

    /// A new group has no DMA owner; dropping the reference frees it.
    #[test]
    fn new_group_is_unowned() -> Result {
        let group = alloc_group()?;
        assert!(!dma_owner_claimed(&group));
        Ok(())
    }

    /// Device 0 of the module's bus has data of the module's type only: any
    /// other type gets `None`.
    #[test]
    fn data_of_checks_bus_and_type() {
        let dev = find_device(0);
        // The suite runs once the module is live, with at least one device.
        assert!(dev.is_some());
        let Some(dev) = dev else {
            return;
        };
        assert!(data_of::<u64>(&dev).is_none());
        assert!(data_of::<Tagged<u8>>(&dev).is_none());
    }
}
