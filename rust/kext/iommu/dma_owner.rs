// SPDX-License-Identifier: GPL-2.0

//! DMA ownership of IOMMU groups and devices.
//!
//! A group is used either by the kernel's DMA API (drivers bound to its
//! devices, through their bus's `dma_configure`) or by one owner that
//! manages DMA itself (VFIO claims the group, iommufd the device), never by
//! both: claiming attaches the blocking domain and needs the group to be on
//! its default domain with no PASID attached; the core serialises both on
//! the group mutex (drivers/iommu/iommu.c). This file gives the two sides
//! types (the thread *Re: [PATCH v6 02/11] driver core: Add dma_cleanup
//! callback in bus_type*, Robin Murphy, Lu Baolu, February 2022):
//!
//! - [`DmaOwner`]: an owner identity, whose address is the cookie the core
//!   compares; [`GroupClaim`] and [`DeviceClaim`]: a claim by an owner,
//!   made on creation and released on drop, so never released twice and
//!   never outliving its owner.
//! - [`DmaApiUse`]: a device's use of the DMA API's default domain, for a
//!   bus's `dma_configure` / `dma_cleanup`: taken for drivers without
//!   `driver_managed_dma`, given back exactly once per successful
//!   configure (the driver core also calls `dma_cleanup` after a failed
//!   probe), and per device, so the removal of one device never gives back
//!   what a sibling holds.
//!
//! Errors are the core's: `EPERM` (another owner holds the group), `EBUSY`
//! (the group is not on its default domain, has PASIDs attached, or is
//! used by the DMA API), `ENODEV` (no group).
//!
//! This file is compiled into rsva.ko (claims, the C API) and into
//! rsva_sim.ko (its bus's `dma_configure`), which cannot share Rust items.

use core::{marker::PhantomData, ptr::NonNull};

use kernel::{
    bindings,
    error::to_result,
    prelude::*,
    sync::atomic::{Atomic, Relaxed},
};

/// An owner of DMA: its address is the cookie the IOMMU core records.
///
/// # Invariants
///
/// The value is pinned (`_pin`), so its address names it for its lifetime.
#[pin_data]
pub(crate) struct DmaOwner {
    /// A non-zero size, so that two owners have two addresses.
    _id: u8,
    #[pin]
    _pin: core::marker::PhantomPinned,
}

impl DmaOwner {
    /// A new owner identity.
    pub(crate) fn new() -> impl PinInit<Self> {
        pin_init!(Self {
            _id: 0,
            _pin: core::marker::PhantomPinned,
        })
    }

    fn cookie(&self) -> *mut c_void {
        core::ptr::from_ref(self).cast_mut().cast()
    }
}

/// A counted reference to the IOMMU group of a device.
///
/// # Invariants
///
/// Holds a reference (`iommu_group_get()`) on a valid group.
struct GroupRef(NonNull<bindings::iommu_group>);

impl GroupRef {
    /// The group of `dev`, or `ENODEV`.
    ///
    /// # Safety
    ///
    /// `dev` must be a valid device.
    unsafe fn of(dev: *mut bindings::device) -> Result<Self> {
        // SAFETY: `dev` is valid.
        let group = unsafe { bindings::iommu_group_get(dev) };
        // INVARIANT: `iommu_group_get()` returned a referenced group.
        NonNull::new(group).map(Self).ok_or(ENODEV)
    }
}

impl Drop for GroupRef {
    fn drop(&mut self) {
        // SAFETY: The reference taken in `of`.
        unsafe { bindings::iommu_group_put(self.0.as_ptr()) };
    }
}

// SAFETY: Group references may be dropped on any thread.
unsafe impl Send for GroupRef {}
// SAFETY: Only the pointer is shared.
unsafe impl Sync for GroupRef {}

/// The group of a device claimed by an owner; released when dropped.
///
/// # Invariants
///
/// `group` is claimed for `owner` (`iommu_group_claim_dma_owner()`) while
/// this lives, and `owner` outlives it.
pub(crate) struct GroupClaim<'a> {
    group: GroupRef,
    owner: *mut c_void,
    _owner: PhantomData<&'a DmaOwner>,
}

// SAFETY: The claim may be released on any thread; `owner` is a cookie.
unsafe impl Send for GroupClaim<'_> {}
// SAFETY: Shared access only compares pointers.
unsafe impl Sync for GroupClaim<'_> {}

impl<'a> GroupClaim<'a> {
    /// Claims the group of `dev` for `owner`.
    ///
    /// # Safety
    ///
    /// `dev` must be a valid device.
    pub(crate) unsafe fn new(dev: *mut bindings::device, owner: &'a DmaOwner) -> Result<Self> {
        // SAFETY: By the safety requirements; `owner` outlives the claim.
        unsafe { Self::with_cookie(dev, owner.cookie()) }
    }

    /// Claims the group of `dev` for the owner cookie `owner` (the C API).
    ///
    /// # Safety
    ///
    /// `dev` must be a valid device; `owner` must be non-null and stay the
    /// owner's identity for as long as the claim lives.
    pub(crate) unsafe fn with_cookie(
        dev: *mut bindings::device,
        owner: *mut c_void,
    ) -> Result<Self> {
        if owner.is_null() {
            return Err(EINVAL);
        }
        // SAFETY: `dev` is valid.
        let group = unsafe { GroupRef::of(dev) }?;
        // SAFETY: `group` is referenced; `owner` is non-null.
        to_result(unsafe { bindings::iommu_group_claim_dma_owner(group.0.as_ptr(), owner) })?;
        // INVARIANT: claimed just above.
        Ok(Self {
            group,
            owner,
            _owner: PhantomData,
        })
    }

    /// The group.
    pub(crate) fn group(&self) -> *mut bindings::iommu_group {
        self.group.0.as_ptr()
    }

    /// The owner cookie.
    pub(crate) fn owner(&self) -> *mut c_void {
        self.owner
    }
}

impl Drop for GroupClaim<'_> {
    fn drop(&mut self) {
        // SAFETY: Claimed in `with_cookie` and released once, here.
        unsafe { bindings::iommu_group_release_dma_owner(self.group.0.as_ptr()) };
    }
}

/// A device claimed by an owner (the device's group, counted per claim);
/// released when dropped.
///
/// # Invariants
///
/// `dev` is claimed for `owner` (`iommu_device_claim_dma_owner()`) while
/// this lives; the device reference is held.
pub(crate) struct DeviceClaim<'a> {
    dev: NonNull<bindings::device>,
    owner: *mut c_void,
    _owner: PhantomData<&'a DmaOwner>,
}

// SAFETY: As for `GroupClaim`.
unsafe impl Send for DeviceClaim<'_> {}
// SAFETY: As for `GroupClaim`.
unsafe impl Sync for DeviceClaim<'_> {}

impl<'a> DeviceClaim<'a> {
    /// Claims `dev` for `owner`; the same owner may claim it again.
    ///
    /// # Safety
    ///
    /// `dev` must be a valid device.
    pub(crate) unsafe fn new(dev: *mut bindings::device, owner: &'a DmaOwner) -> Result<Self> {
        // SAFETY: By the safety requirements; `owner` outlives the claim.
        unsafe { Self::with_cookie(dev, owner.cookie()) }
    }

    /// Claims `dev` for the owner cookie `owner` (the C API).
    ///
    /// # Safety
    ///
    /// As for [`GroupClaim::with_cookie`].
    pub(crate) unsafe fn with_cookie(
        dev: *mut bindings::device,
        owner: *mut c_void,
    ) -> Result<Self> {
        let dev = NonNull::new(dev).ok_or(EINVAL)?;
        if owner.is_null() {
            return Err(EINVAL);
        }
        // SAFETY: `dev` is valid; the core checks for a group itself.
        to_result(unsafe { bindings::iommu_device_claim_dma_owner(dev.as_ptr(), owner) })?;
        // SAFETY: `dev` is valid; the reference is dropped with the claim.
        unsafe { bindings::get_device(dev.as_ptr()) };
        // INVARIANT: claimed and referenced just above.
        Ok(Self {
            dev,
            owner,
            _owner: PhantomData,
        })
    }

    /// The device.
    pub(crate) fn dev(&self) -> *mut bindings::device {
        self.dev.as_ptr()
    }

    /// The owner cookie.
    pub(crate) fn owner(&self) -> *mut c_void {
        self.owner
    }
}

impl Drop for DeviceClaim<'_> {
    fn drop(&mut self) {
        // SAFETY: Claimed in `with_cookie` and released once, here; then
        // the reference taken there is dropped.
        unsafe {
            bindings::iommu_device_release_dma_owner(self.dev.as_ptr());
            bindings::put_device(self.dev.as_ptr());
        }
    }
}

/// A device's use of the DMA API's default domain, for its bus's
/// `dma_configure` / `dma_cleanup`.
///
/// # Invariants
///
/// `used` is true exactly while this device holds one DMA-API use of its
/// group (`iommu_device_use_default_domain()`).
pub(crate) struct DmaApiUse {
    used: Atomic<bool>,
}

impl DmaApiUse {
    /// No use.
    pub(crate) const fn new() -> Self {
        Self {
            used: Atomic::new(false),
        }
    }

    /// `dma_configure`: takes DMA-API ownership of the group for a driver
    /// that does not manage DMA itself. `EBUSY` when an owner claimed the
    /// group or a PASID is attached to it while others use it.
    ///
    /// # Safety
    ///
    /// `dev` must be a valid device, and this its `DmaApiUse`; called by the
    /// driver core under the device lock.
    pub(crate) unsafe fn configure(
        &self,
        dev: *mut bindings::device,
        driver_managed_dma: bool,
    ) -> Result {
        if driver_managed_dma || self.used.load(Relaxed) {
            return Ok(());
        }
        // SAFETY: `dev` is valid.
        to_result(unsafe { bindings::iommu_device_use_default_domain(dev) })?;
        self.used.store(true, Relaxed);
        Ok(())
    }

    /// `dma_cleanup`: gives back what [`Self::configure`] took, once.
    ///
    /// # Safety
    ///
    /// As for [`Self::configure`].
    pub(crate) unsafe fn cleanup(&self, dev: *mut bindings::device) {
        if self.used.xchg(false, Relaxed) {
            // SAFETY: `dev` is valid and holds one use (type invariant).
            unsafe { bindings::iommu_device_unuse_default_domain(dev) };
        }
    }
}
