// SPDX-License-Identifier: GPL-2.0

//! SVA domains: a process address space shared with devices through a
//! PASID, allocated by the devices' IOMMU driver.
//!
//! C header: [`include/linux/iommu.h`](srctree/include/linux/iommu.h)

use core::ptr::NonNull;

use kernel::{
    bindings,
    device::{Bound, Device},
    error::{from_err_ptr, to_result},
    iommu::dma_owner::Group,
    mm::MmWithUser,
    prelude::*,
    sync::{aref::ARef, Arc},
    ModuleMetadata,
};

use super::{
    iopf::{self, IopfServer},
    pasid::{mm_pasid, PASID_INVALID},
    sva::SvaHandle,
};
use crate::kext::glue::{self, DeviceWatch};

/// What shows that a device's IOMMU driver is there, so that an SVA
/// domain of that IOMMU may be freed: the device is bound to its driver
/// (the IOMMU core releases a device from its IOMMU only after its driver
/// is gone), or a [`DeviceWatch`] of it lasts (its devres action runs when
/// the driver goes, before that release).
#[derive(Clone, Copy)]
pub(crate) enum IommuPresent<'a> {
    /// A device bound to its driver.
    Bound(&'a Device<Bound>),
    /// A device watched while its driver is bound.
    Watched(&'a DeviceWatch),
}

impl IommuPresent<'_> {
    /// The device.
    pub(crate) fn device(&self) -> &Device {
        match self {
            Self::Bound(dev) => dev,
            Self::Watched(w) => w.device(),
        }
    }

    /// A watch of the device, which keeps showing it after this proof is
    /// gone. `ENOMEM`, or `ENODEV` while rsva is being unloaded; `EBUSY`
    /// for a watched device, which may be one whose devres actions are
    /// running already (a new watch would join the running one's entry and
    /// never see the driver go).
    pub(crate) fn watch(&self) -> Result<DeviceWatch> {
        match self {
            Self::Bound(dev) => DeviceWatch::new(dev),
            Self::Watched(_) => Err(EBUSY),
        }
    }
}

/// A PASID of an IOMMU group attached to an [`SvaDomain`].
struct Attachment {
    group: ARef<Group>,
    /// The handle whose attach handle the IOMMU core keeps for the PASID,
    /// held for that.
    _handle: Arc<SvaHandle>,
}

/// A reference to the module that holds the fault handlers of the SVA
/// domains it allocates.
///
/// # Invariants
///
/// Holds one reference to this module (`try_module_get()`).
struct ModulePin;

impl ModulePin {
    /// Pins this module; `ENODEV` while it is being unloaded.
    fn new() -> Result<Self> {
        let module = <crate::LocalModule as ModuleMetadata>::THIS_MODULE.as_ptr();
        // SAFETY: `module` is this module, which runs this code.
        if !unsafe { bindings::try_module_get(module) } {
            return Err(ENODEV);
        }
        // INVARIANT: just got.
        Ok(Self)
    }
}

impl Drop for ModulePin {
    fn drop(&mut self) {
        let module = <crate::LocalModule as ModuleMetadata>::THIS_MODULE.as_ptr();
        // SAFETY: The reference taken in `new` (type invariant). Whoever
        // drops this runs rsva code on behalf of a caller that pins rsva
        // too, or on rsva's workqueue, which unloading drains: this is not
        // the reference that lets rsva's text go under it.
        unsafe { bindings::module_put(module) };
    }
}

/// An SVA domain of an mm (`iommu_sva_domain_alloc()`, patch 0005), with
/// the PASIDs of IOMMU groups attached to it. It holds `mmgrab()` on the
/// mm and its IOMMU driver's mmu notifier on it (through the IOMMU core),
/// a reference to this module (its fault handler is code of this module,
/// see [`iopf::install`]), and the handles of its attachments.
///
/// The domain is freed by [`SvaDomain::free`], never by a destructor:
/// freeing may wait for the notifiers' SRCU grace period (AMD unregisters
/// its notifier), so it must not happen where the owner holds a lock that
/// a notifier takes, nor in a notifier's callback, and the domain's IOMMU
/// driver must still be there ([`IommuPresent`]). Dropping one leaks it
/// and keeps this module loaded.
///
/// # Invariants
///
/// - `raw` is an SVA domain allocated for this object and not freed, whose
///   fault handler is `S`'s of [`SvaDomain::alloc`].
/// - `pasid` is the PASID of the domain's mm, which cannot change while
///   the domain grabs the mm.
/// - `attached` lists exactly the groups whose PASID `pasid` is attached
///   to the domain, each with the handle whose attach handle the IOMMU
///   core keeps for it.
pub(crate) struct SvaDomain {
    raw: NonNull<bindings::iommu_domain>,
    pasid: u32,
    attached: KVec<Attachment>,
    _module: ModulePin,
}

// SAFETY: The domain is used through the IOMMU core, which serialises with
// its own locks; it may be freed from any thread.
unsafe impl Send for SvaDomain {}
// SAFETY: Shared references only read the domain's address and PASID.
unsafe impl Sync for SvaDomain {}

impl SvaDomain {
    /// Allocates the SVA domain of `mm` for `dev`'s IOMMU, whose I/O page
    /// faults `S` serves. `EINVAL` if `mm` has no PASID, `EOPNOTSUPP`
    /// without SVA, `ENODEV` while this module is being unloaded; the
    /// driver's errors.
    pub(crate) fn alloc<S: IopfServer>(dev: &Device<Bound>, mm: &MmWithUser) -> Result<Self> {
        let pasid = mm_pasid(mm);
        if pasid == PASID_INVALID {
            return Err(EINVAL);
        }
        let module = ModulePin::new()?;
        // SAFETY: `dev` is valid and `mm` has users.
        let raw = unsafe { bindings::iommu_sva_domain_alloc(glue::dev_ptr(dev), mm.as_raw()) };
        let domain = NonNull::new(from_err_ptr(raw)?).ok_or(ENOMEM)?;
        // SAFETY: Just allocated and attached nowhere, so no fault is in
        // flight; `S`'s code is this module's, which the domain pins until
        // it is freed.
        unsafe { iopf::install::<S>(domain.as_ptr()) };
        // INVARIANT: allocated just above with `S`'s handler; the mm's
        // PASID; attached nowhere.
        Ok(Self {
            raw: domain,
            pasid,
            attached: KVec::new(),
            _module: module,
        })
    }

    /// The domain's address, which names it (only compared).
    pub(crate) fn key(&self) -> usize {
        self.raw.as_ptr() as usize
    }

    /// Attaches the PASID of the group of `dev` to the domain, with the
    /// attach handle of `handle`, which the domain keeps until
    /// [`Self::detach`]. `ENODEV` for a device without group, `EBUSY` if
    /// the group's PASID is attached already (here or elsewhere); the IOMMU
    /// driver may refuse the domain for the device (`EINVAL`, ...).
    pub(crate) fn attach(&mut self, dev: &Device<Bound>, handle: &Arc<SvaHandle>) -> Result {
        let group = Group::of(dev)?;
        if self
            .attached
            .iter()
            .any(|a| a.group.as_raw() == group.as_raw())
        {
            return Err(EBUSY);
        }
        self.attached.reserve(1, GFP_KERNEL)?;
        // SAFETY: The domain is live (type invariant); `dev` has a driver
        // bound; the attach handle is `handle`'s, which the domain keeps
        // while the PASID is attached; `pasid` is the domain's mm's.
        to_result(unsafe {
            bindings::iommu_attach_device_pasid(
                self.raw.as_ptr(),
                glue::dev_ptr(dev),
                self.pasid,
                handle.attach_handle(),
            )
        })?;
        // INVARIANT: attached just above with `handle`. Cannot fail:
        // reserved above.
        self.attached.push(
            Attachment {
                group,
                _handle: handle.clone(),
            },
            GFP_KERNEL,
        )?;
        Ok(())
    }

    /// Detaches the PASID of the group of `dev` from the domain; the IOMMU
    /// driver drains the PASID's page requests first, so this must not be
    /// called from a fault handler of the domain. `ENOENT` if that group's
    /// PASID is not attached to the domain (or `dev` left its group).
    pub(crate) fn detach(&mut self, dev: &Device) -> Result {
        let group = Group::of(dev).map_err(|_| ENOENT)?;
        let i = self
            .attached
            .iter()
            .position(|a| a.group.as_raw() == group.as_raw())
            .ok_or(ENOENT)?;
        // SAFETY: The PASID of `dev`'s group is attached to this live
        // domain (type invariants), and `dev` is in that group (checked
        // just above; the group reference keeps it from being freed).
        unsafe {
            bindings::iommu_detach_device_pasid(self.raw.as_ptr(), glue::dev_ptr(dev), self.pasid)
        };
        // INVARIANT: detached just above; the handle goes after.
        let last = self.attached.len() - 1;
        self.attached.swap(i, last);
        drop(self.attached.pop());
        Ok(())
    }

    /// Frees the domain, which drops its `mmgrab()` and its module
    /// reference, if it is attached nowhere and `present`'s device is one
    /// of its IOMMU. Otherwise the domain is leaked (with a warning in the
    /// log) rather than freed under the IOMMU core.
    ///
    /// Process context; no lock may be held that an mmu notifier of the mm
    /// takes, and this is not an mmu notifier's callback.
    pub(crate) fn free(self, present: IommuPresent<'_>) {
        // SAFETY: The domain is live (type invariant); the device is
        // referenced by `present`; the helper only compares pointers.
        let ours = unsafe {
            glue::rsva_domain_of_iommu(self.raw.as_ptr(), glue::dev_ptr(present.device()))
        };
        if !self.attached.is_empty() || !ours {
            pr_warn!(
                "rsva: SVA domain of PASID {} leaked ({} attachments, {})\n",
                self.pasid,
                self.attached.len(),
                if ours { "its IOMMU" } else { "another IOMMU" }
            );
            core::mem::forget(self);
            return;
        }
        // SAFETY: The domain is live (type invariant) and attached nowhere
        // (checked above); its IOMMU driver is there: `present`'s device
        // is bound or watched, and it belongs to the domain's IOMMU
        // (checked above); `self` is consumed, so it is freed once.
        unsafe { bindings::iommu_domain_free(self.raw.as_ptr()) };
    }
}
