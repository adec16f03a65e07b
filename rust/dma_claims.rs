// SPDX-License-Identifier: GPL-2.0

//! DMA ownership claims made through rsva's C API.
//!
//! C callers name their owner with a pointer (a cookie, as for
//! `iommu_group_claim_dma_owner()`); rsva keeps each claim as a
//! [`GroupClaim`] or [`DeviceClaim`] guard, so a claim is released once and
//! only by a matching release call (`ENOENT` otherwise), and all of them go
//! at module exit. Claims hold [`Rwsem::Owner`] for writing, so a claim and
//! an rsva SVA bind on the same group cannot pass each other (a bind checks
//! the group's domain and attaches its PASID under it for reading).
//!
//! A claim kept by a careless driver may outlive its device. Each kept
//! claim watches its device's bus: when the device (for a group claim: the
//! last device of the group) is about to be removed, the claim ends there,
//! while the device is still in its group (the IOMMU core warns about a
//! group left empty while owned, and `iommu_device_release_dma_owner()`
//! would find no group later). The record stays until its release call
//! (which then succeeds) or module exit.
//!
//! Lock order: [`Rwsem::Owner`] -> the bus's notifier lock (watching) ;
//! the bus's notifier lock (a removal) -> [`Kept::claim`] -> the group
//! mutex. The list's mutex is never held while a watch starts or ends.

use kernel::{
    bindings,
    error::from_err_ptr,
    new_mutex,
    prelude::*,
    sync::{
        atomic::{Atomic, Relaxed},
        Mutex,
    },
    types::Opaque,
};

use crate::{
    c_api::is_err_or_null,
    dma_owner::{DeviceClaim, GroupClaim},
    glue::{self, Rwsem, RwsemGuard},
};

/// The core answers `EPERM` when anything holds the group; when that is
/// not another owner but drivers bound to its devices (through the DMA API,
/// on the default domain or on a domain such a driver attached), the C
/// API answers `EBUSY`.
fn busy_if_dma_api(dev: *mut bindings::device, e: Error) -> Error {
    // SAFETY: Callers pass a valid device.
    if e == EPERM && !unsafe { glue::rsva_dev_user_owned(dev) } {
        return EBUSY;
    }
    e
}

enum Claim {
    Group(GroupClaim<'static>),
    Device(DeviceClaim<'static>),
}

/// A claim made through the C API, and the watch of its device's bus.
///
/// # Invariants
///
/// - `nb` is registered on `bus` (unless null) from [`Kept::new`] until
///   drop; `claim` is `None` once its device (or group) went away.
/// - `dev` is the device named at claim time for a device claim (null for
///   a group claim) and `group` the claimed group; both are only compared
///   once the claim ended.
#[pin_data(PinnedDrop)]
struct Kept {
    #[pin]
    nb: Opaque<bindings::notifier_block>,
    bus: Atomic<*const bindings::bus_type>,
    dev: *mut bindings::device,
    group: *mut bindings::iommu_group,
    owner: *mut c_void,
    #[pin]
    claim: Mutex<Option<Claim>>,
}

// SAFETY: The raw pointers are compared, or passed to the driver core from
// any thread; the claim is under its mutex.
unsafe impl Send for Kept {}
// SAFETY: As for `Send`.
unsafe impl Sync for Kept {}

impl Kept {
    /// Keeps `claim`, made through `dev`, and watches `dev`'s bus.
    ///
    /// # Safety
    ///
    /// `dev` must be a valid device.
    unsafe fn new(dev: *mut bindings::device, claim: Claim) -> Result<Pin<KBox<Self>>> {
        let (claimed, group, owner) = match &claim {
            Claim::Group(g) => (core::ptr::null_mut(), g.group(), g.owner()),
            // SAFETY: `dev` is valid.
            Claim::Device(d) => (d.dev(), unsafe { glue::rsva_dev_group(dev) }, d.owner()),
        };
        let kept = KBox::pin_init(
            pin_init!(Self {
                nb: Opaque::zeroed(),
                bus: Atomic::new(core::ptr::null()),
                dev: claimed,
                group,
                owner,
                claim <- new_mutex!(Some(claim)),
            }),
            GFP_KERNEL,
        )?;
        // SAFETY: Not registered yet.
        unsafe { (*kept.nb.get()).notifier_call = Some(device_removed) };
        // SAFETY: `dev` is valid; `nb` is initialised and pinned in the box.
        let bus = unsafe { glue::rsva_bus_watch(dev, kept.nb.get()) };
        // On failure `kept` drops with no watch, releasing the claim.
        let bus = from_err_ptr(bus.cast_mut())?;
        // INVARIANT: registered on `bus` just above.
        kept.bus.store(bus.cast_const(), Relaxed);
        Ok(kept)
    }

    /// Whether this is a claim of `owner` on `dev` (a device claim) or on
    /// `group` (a group claim).
    fn is(
        &self,
        owner: *mut c_void,
        dev: *mut bindings::device,
        group: Option<*mut bindings::iommu_group>,
    ) -> bool {
        self.owner == owner
            && match group {
                Some(g) => self.dev.is_null() && self.group == g,
                None => !self.dev.is_null() && self.dev == dev,
            }
    }
}

#[pinned_drop]
impl PinnedDrop for Kept {
    fn drop(self: Pin<&mut Self>) {
        // SAFETY: Registered in `new` unless null; a removal in progress is
        // waited for (the notifier's rw-semaphore).
        unsafe { glue::rsva_bus_unwatch(self.bus.load(Relaxed), self.nb.get()) };
    }
}

/// A bus event of a watched device's bus: ends the claim when its device
/// (or the last device of its group) is about to be removed.
///
/// # Safety
///
/// `nb` is the notifier of a live [`Kept`]; `data` is a valid device.
unsafe extern "C" fn device_removed(
    nb: *mut bindings::notifier_block,
    action: c_ulong,
    data: *mut c_void,
) -> c_int {
    // SAFETY: Registered in `Kept::new` and unregistered before it drops.
    let kept =
        unsafe { &*kernel::container_of!(nb.cast::<Opaque<bindings::notifier_block>>(), Kept, nb) };
    let mut claim = kept.claim.lock();
    let dev = match claim.as_ref() {
        Some(Claim::Device(d)) => d.dev(),
        _ => core::ptr::null_mut(),
    };
    // SAFETY: `data` is a valid device; `dev` and the group are the
    // claim's, held by it.
    if claim.is_some() && unsafe { glue::rsva_claim_ends(action, data.cast(), dev, kept.group) } {
        // Dropping the guard releases the claim and its device reference.
        drop(claim.take());
    }
    0
}

/// The claims made through the C API.
#[pin_data]
pub(crate) struct Claims {
    #[pin]
    list: Mutex<KVec<Pin<KBox<Kept>>>>,
}

impl Claims {
    /// No claims.
    pub(crate) fn new() -> impl PinInit<Self> {
        pin_init!(Self {
            list <- new_mutex!(KVec::new()),
        })
    }

    /// Claims the group of `dev` for `owner`.
    ///
    /// # Safety
    ///
    /// `dev` must be a valid device.
    pub(crate) unsafe fn claim_group(
        &self,
        dev: *mut bindings::device,
        owner: *mut c_void,
    ) -> Result {
        let make = || {
            // SAFETY: `dev` is valid; the C caller keeps `owner` as its
            // identity until it releases the claim.
            unsafe { GroupClaim::with_cookie(dev, owner) }.map(Claim::Group)
        };
        // SAFETY: `dev` is valid.
        unsafe { self.claim(dev, make) }
    }

    /// Claims `dev` for `owner` (again, if it holds it already).
    ///
    /// # Safety
    ///
    /// As for [`Self::claim_group`].
    pub(crate) unsafe fn claim_device(
        &self,
        dev: *mut bindings::device,
        owner: *mut c_void,
    ) -> Result {
        let make = || {
            // SAFETY: As in `claim_group`.
            unsafe { DeviceClaim::with_cookie(dev, owner) }.map(Claim::Device)
        };
        // SAFETY: `dev` is valid.
        unsafe { self.claim(dev, make) }
    }

    /// Makes a claim with `make` and keeps it, excluding rsva's binds.
    ///
    /// # Safety
    ///
    /// `dev` must be a valid device.
    unsafe fn claim(
        &self,
        dev: *mut bindings::device,
        make: impl FnOnce() -> Result<Claim>,
    ) -> Result {
        if is_err_or_null(dev) {
            return Err(EINVAL);
        }
        let _owners = RwsemGuard::lock(Rwsem::Owner, true);
        self.list.lock().reserve(1, GFP_KERNEL)?;
        let claim = make().map_err(|e| busy_if_dma_api(dev, e))?;
        // SAFETY: `dev` is valid.
        let kept = unsafe { Kept::new(dev, claim) }?;
        // On failure the claim is dropped: released.
        self.list.lock().push(kept, GFP_KERNEL)?;
        Ok(())
    }

    /// Releases one claim of the group of `dev` by `owner` (`group`), or of
    /// `dev` itself; `ENOENT` when there is none. A claim that ended with
    /// its device is released too (that is, forgotten). A device claim is
    /// found by comparing `dev`, which is not dereferenced.
    ///
    /// # Safety
    ///
    /// As for [`Self::claim_group`], for a group claim.
    pub(crate) unsafe fn release(
        &self,
        dev: *mut bindings::device,
        owner: *mut c_void,
        group: bool,
    ) -> Result {
        if is_err_or_null(dev) {
            return Err(EINVAL);
        }
        // SAFETY: `dev` is valid.
        let dev_group = group.then(|| unsafe { glue::rsva_dev_group(dev) });
        // No need to exclude binds: a release only lets them succeed.
        let kept = {
            let mut list = self.list.lock();
            let i = list
                .iter()
                .rposition(|k| k.is(owner, dev, dev_group))
                .ok_or(ENOENT)?;
            list.remove(i)?
        };
        // Dropping it ends the watch (not under the list's lock), then
        // releases the claim.
        drop(kept);
        Ok(())
    }
}

#[kunit_tests(rsva_dma_owner)]
mod tests {
    use super::*;
    use crate::dma_owner::DmaOwner;

    /// A PCI device of the VM (q35 under intel-iommu) with a group and no
    /// driver; `put_device()` when dropped.
    struct TestDev(*mut bindings::device);

    impl TestDev {
        fn pci() -> Result<Self> {
            // SAFETY: Returns a referenced device or null.
            let dev = unsafe { glue::rsva_test_free_pci_device() };
            (!dev.is_null()).then_some(Self(dev)).ok_or(ENODEV)
        }

        fn user_owned(&self) -> bool {
            // SAFETY: The device is referenced.
            unsafe { glue::rsva_dev_user_owned(self.0) }
        }
    }

    impl Drop for TestDev {
        fn drop(&mut self) {
            // SAFETY: The reference `pci()` returned.
            unsafe { bindings::put_device(self.0) };
        }
    }

    fn owner() -> Result<Pin<KBox<DmaOwner>>> {
        KBox::pin_init(DmaOwner::new(), GFP_KERNEL)
    }

    #[test]
    fn group_claims_exclude_other_owners() -> Result {
        let dev = TestDev::pci()?;
        let (a, b) = (owner()?, owner()?);
        assert!(!dev.user_owned());
        // SAFETY: `dev` is referenced for the whole test.
        let claim = unsafe { GroupClaim::new(dev.0, &a) }?;
        assert!(dev.user_owned());
        // SAFETY: As above.
        assert_eq!(unsafe { GroupClaim::new(dev.0, &b) }.err(), Some(EPERM));
        // SAFETY: As above.
        assert_eq!(unsafe { DeviceClaim::new(dev.0, &b) }.err(), Some(EPERM));
        drop(claim);
        assert!(!dev.user_owned());
        // SAFETY: As above.
        let claim = unsafe { GroupClaim::new(dev.0, &b) }?;
        assert!(dev.user_owned());
        drop(claim);
        assert!(!dev.user_owned());
        Ok(())
    }

    #[test]
    fn device_claims_nest_for_one_owner() -> Result {
        let dev = TestDev::pci()?;
        let (a, b) = (owner()?, owner()?);
        // SAFETY: `dev` is referenced for the whole test.
        let first = unsafe { DeviceClaim::new(dev.0, &a) }?;
        // SAFETY: As above.
        let second = unsafe { DeviceClaim::new(dev.0, &a) }?;
        // SAFETY: As above.
        assert_eq!(unsafe { GroupClaim::new(dev.0, &b) }.err(), Some(EPERM));
        drop(first);
        // One claim left: still owned.
        assert!(dev.user_owned());
        drop(second);
        assert!(!dev.user_owned());
        Ok(())
    }

    #[test]
    fn claims_need_a_device_an_owner_and_a_group() -> Result {
        let dev = TestDev::pci()?;
        // SAFETY: A null device is refused before use.
        let null_dev = unsafe { DeviceClaim::with_cookie(core::ptr::null_mut(), dev.0.cast()) };
        assert_eq!(null_dev.err(), Some(EINVAL));
        // SAFETY: `dev` is referenced; a null owner is refused.
        let null_owner = unsafe { GroupClaim::with_cookie(dev.0, core::ptr::null_mut()) };
        assert_eq!(null_owner.err(), Some(EINVAL));
        // SAFETY: As above.
        let null_owner = unsafe { DeviceClaim::with_cookie(dev.0, core::ptr::null_mut()) };
        assert_eq!(null_owner.err(), Some(EINVAL));
        let a = owner()?;
        // SAFETY: Registers a device without IOMMU group.
        let nogroup = unsafe { glue::rsva_test_device_new() };
        let nogroup = kernel::error::from_err_ptr(nogroup)?;
        // SAFETY: `nogroup` is registered until freed below.
        let g = unsafe { GroupClaim::new(nogroup, &a) }.err();
        // SAFETY: As above.
        let d = unsafe { DeviceClaim::new(nogroup, &a) }.err();
        // SAFETY: Registered above.
        unsafe { glue::rsva_test_device_free(nogroup) };
        assert_eq!((g, d), (Some(ENODEV), Some(ENODEV)));
        Ok(())
    }
}
