// SPDX-License-Identifier: GPL-2.0

//! What rsva asks of an IOMMU group beyond `kernel::iommu::dma_owner::Group`
//! (patch 0012): [`GroupExt`], written as methods of `Group` would be.

use kernel::{bindings, device::Device, iommu::dma_owner::Group, prelude::*};

use crate::kext::glue;

/// Questions about the devices of a [`Group`].
pub(crate) trait GroupExt {
    /// Whether `dev` is in this group.
    fn holds(&self, dev: &Device) -> bool;

    /// How many devices the group has. Takes the group mutex, so it may
    /// sleep.
    fn device_count(&self) -> usize;

    /// The address of the group of `dev` (0 for none), only compared: a
    /// field read in place (on the fast path of a DMA release), without
    /// the reference `Group::of()` takes.
    fn addr_of(dev: &Device) -> usize;
}

impl GroupExt for Group {
    #[inline]
    fn holds(&self, dev: &Device) -> bool {
        Self::addr_of(dev) == self.as_raw() as usize
    }

    fn device_count(&self) -> usize {
        let mut count: usize = 0;
        // SAFETY: The group is valid while `self` is; `count_device` is
        // called with `data`, a `usize` that lives across the call, and
        // keeps nothing.
        unsafe {
            bindings::iommu_group_for_each_dev(
                self.as_raw(),
                core::ptr::from_mut(&mut count).cast(),
                Some(count_device),
            )
        };
        count
    }

    #[inline]
    fn addr_of(dev: &Device) -> usize {
        let dev = glue::dev_ptr(dev);
        // SAFETY: `dev` is a valid `struct device` for the call; the read is
        // a `READ_ONCE()` (the IOMMU core sets the field as the device joins
        // or leaves its group), and the address is only compared.
        unsafe { (&raw const (*dev).iommu_group).read_volatile() as usize }
    }
}

/// An `iommu_group_for_each_dev()` callback that counts in `*data`, a
/// `usize`.
///
/// # Safety
///
/// `data` must point at a `usize` that nothing else accesses during the
/// walk.
unsafe extern "C" fn count_device(_dev: *mut bindings::device, data: *mut c_void) -> c_int {
    // SAFETY: By the safety requirements.
    let count = unsafe { &mut *data.cast::<usize>() };
    *count = count.saturating_add(1);
    0
}
