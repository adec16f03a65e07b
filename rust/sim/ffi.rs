// SPDX-License-Identifier: GPL-2.0

//! The C entry points of rsva_sim that are not callbacks of a layer type:
//! the bus's DMA ownership hooks, which `rsva_sim_glue.c` calls, and what
//! `include/rsva_sim.h` exports to test modules. Each turns its C pointers
//! into the layer's types and calls the logic.

#![allow(
    unsafe_code,
    reason = "the C entry points, where C pointers become the layer's types"
)]

use kernel::{bindings, device::Device, prelude::*};

use crate::{device::SimDevice, kext::device::bus};

/// The bus's `dma_configure` (from `rsva_sim_glue.c`): DMA-API ownership
/// for a driver without `driver_managed_dma`.
#[no_mangle]
extern "C" fn rsva_sim_dma_configure(
    dev: *mut bindings::device,
    driver_managed_dma: bool,
) -> c_int {
    // SAFETY: The driver core passes a device of the platform's bus, alive
    // during the call.
    let dev = unsafe { Device::from_raw(dev) };
    let Some(sdev) = bus::data_of::<SimDevice>(dev) else {
        return ENODEV.to_errno();
    };
    // SAFETY: `dev` is the device whose DMA-API use `sdev.dma_api` records,
    // alive during the call; the driver core calls this under the device
    // lock.
    match unsafe { sdev.dma_api.configure(dev, driver_managed_dma) } {
        Ok(()) => 0,
        Err(e) => e.to_errno(),
    }
}

/// The bus's `dma_cleanup`: gives back what `dma_configure` took, once.
#[no_mangle]
extern "C" fn rsva_sim_dma_cleanup(dev: *mut bindings::device) {
    // SAFETY: The driver core passes a device of the platform's bus, alive
    // during the call.
    let dev = unsafe { Device::from_raw(dev) };
    if let Some(sdev) = bus::data_of::<SimDevice>(dev) {
        // SAFETY: `dev` is the device whose DMA-API use `sdev.dma_api`
        // records, alive during the call; the driver core calls this under
        // the device lock.
        unsafe { sdev.dma_api.cleanup(dev) };
    }
}

/// `rsva_sim_pasid_state()` of `include/rsva_sim.h`, for test modules.
#[no_mangle]
extern "C" fn rsva_sim_pasid_state(dev: *mut bindings::device, pasid: u32) -> c_int {
    if dev.is_null() {
        return ENODEV.to_errno();
    }
    // SAFETY: Test modules pass a device from `rsva_sim_get_device()`,
    // whose reference they hold for the call; `data_of` refuses other
    // buses' devices.
    let dev = unsafe { Device::from_raw(dev) };
    let Some(sdev) = bus::data_of::<SimDevice>(dev) else {
        return ENODEV.to_errno();
    };
    match sdev.entry_live(pasid) {
        Some(live) => c_int::from(live),
        None => ENOENT.to_errno(),
    }
}
