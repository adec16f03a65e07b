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

use kernel::{bindings, new_mutex, prelude::*, sync::Mutex};

use crate::{
    dma_owner::{DeviceClaim, GroupClaim},
    glue::{self, Rwsem, RwsemGuard},
};

/// The core answers `EPERM` when anything holds the group; when that is
/// the DMA API (drivers bound to its devices: the group is on its default
/// domain), not another owner, the C API answers `EBUSY`.
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

/// The claims made through the C API.
#[pin_data]
pub(crate) struct Claims {
    #[pin]
    list: Mutex<KVec<Claim>>,
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
    /// `dev` must be null or a valid device.
    pub(crate) unsafe fn claim_group(
        &self,
        dev: *mut bindings::device,
        owner: *mut c_void,
    ) -> Result {
        self.claim(dev, || {
            // SAFETY: `dev` is valid (checked non-null by `claim`); the C
            // caller keeps `owner` as its identity until it releases the claim.
            unsafe { GroupClaim::with_cookie(dev, owner) }.map(Claim::Group)
        })
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
        self.claim(dev, || {
            // SAFETY: As in `claim_group`.
            unsafe { DeviceClaim::with_cookie(dev, owner) }.map(Claim::Device)
        })
    }

    /// Makes a claim with `make` and keeps it, excluding rsva's binds.
    fn claim(&self, dev: *mut bindings::device, make: impl FnOnce() -> Result<Claim>) -> Result {
        if dev.is_null() {
            return Err(EINVAL);
        }
        let _owners = RwsemGuard::lock(Rwsem::Owner, true);
        let mut list = self.list.lock();
        list.reserve(1, GFP_KERNEL)?;
        let claim = make().map_err(|e| busy_if_dma_api(dev, e))?;
        list.push(claim, GFP_KERNEL)?;
        Ok(())
    }

    /// Releases one claim of the group of `dev` by `owner` (`group`), or of
    /// `dev` itself; `ENOENT` when there is none.
    ///
    /// # Safety
    ///
    /// As for [`Self::claim_group`].
    pub(crate) unsafe fn release(
        &self,
        dev: *mut bindings::device,
        owner: *mut c_void,
        group: bool,
    ) -> Result {
        if dev.is_null() {
            return Err(EINVAL);
        }
        // SAFETY: `dev` is valid.
        let dev_group = unsafe { glue::rsva_dev_group(dev) };
        // No need to exclude binds: a release only lets them succeed.
        let mut list = self.list.lock();
        let i = list
            .iter()
            .rposition(|c| match c {
                Claim::Group(g) => group && g.group() == dev_group && g.owner() == owner,
                Claim::Device(d) => !group && d.dev() == dev && d.owner() == owner,
            })
            .ok_or(ENOENT)?;
        // Dropping the guard releases the claim.
        drop(list.remove(i));
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
