// SPDX-License-Identifier: GPL-2.0

//! rsva_sim: a simulated SVA platform, so that shared virtual addressing
//! runs for real in a VM whose emulated devices have no PASID capability.
//!
//! It registers a software IOMMU with the kernel's IOMMU core for a bus of
//! its own (`iommu.rs`), creates `devices` devices on it in IOMMU groups of
//! `group_size` (`device.rs`), each with a PASID table, an IOTLB that obeys
//! invalidations and a fault log, and gives each a DSA-like accelerator
//! (`accel.rs`, `queue.rs`, `engine.rs`) whose DMA engine works in the
//! submitter's address space through its PASID. Its SVA domains behave
//! like those of the IOMMU driver named by `iommu` (`personality.rs`).
//! Binds go through
//! `iommu_sva_bind_device()`, so whichever implementation serves that API
//! is what runs. See Documentation/simulated-platform.rst.

// Unsafe code is denied in the whole crate and allowed, file by file, only
// in the abstraction layer (`kext`), the C declarations (`glue`), the C
// entry points (`ffi`) and the logic files whose contracts no type carries
// yet, each saying why.
#![deny(unsafe_code)]

use kernel::{prelude::*, sync::Arc};

mod accel;
mod debugfs;
mod device;
mod engine;
mod fault_log;
mod ffi;
mod glue;
mod iommu;
mod iotlb;
mod kext;
mod personality;
mod prq;
mod queue;
mod sva_domain;
mod uapi;

use accel::{Accel, SimBusDevice, MAX_ACCELS};
use device::{SimDevice, SimGroup};
use iommu::SimIommu;
use kext::{
    device::bus::{Bus, BusDevice},
    NotifierSync,
};

module! {
    type: RsvaSim,
    name: "rsva_sim",
    authors: ["The rsva developers"],
    description: "Simulated SVA platform: software IOMMU with PASIDs and a DSA-like accelerator",
    license: "GPL",
    params: {
        devices: u32 {
            default: 2,
            description: "Number of simulated accelerators (1-8)",
        },
        group_size: u32 {
            default: 1,
            description: "Devices per IOMMU group (1-8)",
        },
        pasid_bits: u32 {
            default: 20,
            description: "PASID width of each device in bits (1-20)",
        },
        test_skip_invalidation: bool {
            default: false,
            description: "Test only: ignore IOTLB range invalidations, to show that the tests catch it",
        },
    },
}

/// The devices on the bus, removed from it last first when dropped.
struct Devices(KVec<Arc<SimBusDevice>>);

impl Drop for Devices {
    fn drop(&mut self) {
        while let Some(dev) = self.0.pop() {
            drop(dev);
        }
    }
}

/// The module. Fields drop in order: user interfaces first, then the
/// devices (the last one takes the IOMMU and the bus with it), the groups,
/// and last the notifier barrier.
struct RsvaSim {
    _debugfs: debugfs::Debugfs,
    _accels: KVec<Pin<KBox<Accel>>>,
    _devices: Devices,
    _groups: KVec<Arc<SimGroup>>,
    _sync: NotifierSync,
}

fn param_in(value: u32, min: u32, max: u32, name: &str) -> Result<u32> {
    if (min..=max).contains(&value) {
        Ok(value)
    } else {
        pr_err!("{name}={value} is outside [{min}, {max}]\n");
        Err(EINVAL)
    }
}

impl kernel::Module for RsvaSim {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        let ndev = param_in(
            module_parameters::devices.value(),
            1,
            MAX_ACCELS as u32,
            "devices",
        )?;
        let gsize = param_in(
            module_parameters::group_size.value(),
            1,
            MAX_ACCELS as u32,
            "group_size",
        )?;
        let bits = param_in(module_parameters::pasid_bits.value(), 1, 20, "pasid_bits")?;
        let personality = personality::Personality::init_from_param()?;

        let sync = NotifierSync;
        let mut groups = KVec::new();
        for g in 0..ndev.div_ceil(gsize) {
            groups.push(SimGroup::new(g)?, GFP_KERNEL)?;
        }
        let bus = Bus::new(SimIommu::register(1 << 20))?;
        let mut devices = Devices(KVec::new());
        let mut sims = KVec::new();
        for id in 0..ndev {
            let group = groups[(id / gsize) as usize].clone();
            let sim = SimDevice::new(id, group, bits)?;
            let dev = BusDevice::add(&bus, id, bits, sim)?;
            sims.push(dev.data().clone(), GFP_KERNEL)?;
            devices.0.push(dev, GFP_KERNEL)?;
        }
        let mut accels = KVec::new();
        for dev in devices.0.iter() {
            accels.push(Accel::new(dev.clone())?, GFP_KERNEL)?;
        }
        let debugfs = debugfs::Debugfs::new(&sims, &groups)?;
        pr_info!(
            "{ndev} devices, {gsize} per IOMMU group, {bits}-bit PASIDs, {} SVA domains\n",
            personality.name()
        );
        Ok(Self {
            _debugfs: debugfs,
            _accels: accels,
            _devices: devices,
            _groups: groups,
            _sync: sync,
        })
    }
}
