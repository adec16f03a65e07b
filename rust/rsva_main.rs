// SPDX-License-Identifier: GPL-2.0

//! rsva: shared virtual addressing (SVA), PASIDs, HMM mirroring and IOMMU
//! DMA ownership, with the lifetime rules of the C implementation enforced by
//! types, and a C API for drivers (`include/rsva.h`).
//!
//! This is the crate root of `rsva.ko`: the module and its parts.
//!
//! - [`sva`]: PASID leases, SVA bonds, I/O page faults, and serving the
//!   kernel's SVA API.
//! - [`mirror`]: the HMM mirror and the mirror devices.
//! - [`dma`]: DMA ownership claims.
//! - [`ffi`]: the C API, every `#[no_mangle]` function.
//! - [`kext`]: the abstraction layer over the kernel's C code, shaped like
//!   `rust/kernel/`; the only place besides [`ffi`] with `unsafe` code.
//! - [`debugfs`]: the files under `/sys/kernel/debug/rsva/`.

// Unsafe code is denied in the whole crate and allowed, file by file, only
// in the abstraction layer (`kext`), the C entry points (`ffi`) and the
// logic files whose contracts no type carries yet, each saying why.
#![deny(unsafe_code)]

use kernel::prelude::*;

mod debugfs;
mod dma;
mod ffi;
mod kext;
mod mirror;
mod sva;

use kext::glue;
use mirror::{dev as mirror_dev, registry};
use sva::{
    pasid::PasidRange,
    provider::Service, //
};

module! {
    type: Rsva,
    name: "rsva",
    authors: ["The rsva developers"],
    description: "Shared virtual addressing, PASIDs, HMM mirror and DMA ownership in Rust",
    license: "GPL",
    params: {
        serve: bool {
            default: true,
            description: "Serve the kernel's SVA API (iommu_sva_bind_device) from load on",
        },
        pasids_per_user: u32 {
            default: 16384,
            description: "PASIDs one user may hold through rsva; beyond it binds fail with EDQUOT",
        },
    },
}

/// The module. Fields drop in order: the mirror device, the debugfs files,
/// the service, and the glue.
struct Rsva {
    _mirror: mirror_dev::MirrorDevices,
    _debugfs: debugfs::Files,
    _service: ffi::Published,
    _glue: glue::Glue,
}

impl kernel::Module for Rsva {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        let glue = glue::Glue::init()?;
        // Before the debugfs files, which read the nodes.
        let mirror = mirror_dev::MirrorDevices::register()?;
        let service = ffi::Published::new(KBox::pin_init(
            Service::new(
                PasidRange::FULL,
                module_parameters::pasids_per_user.value(),
                &ffi::provider::PROVIDER,
            ),
            GFP_KERNEL,
        )?);
        if module_parameters::serve.value() {
            if let Err(e) = service.get().set_serving(true) {
                pr_info!("not serving the SVA API: {e:?}\n");
            }
        }
        let debugfs = debugfs::Files::new()?;
        pr_info!(
            "rsva {} loaded, {}serving the SVA API\n",
            debugfs::VERSION,
            if service.get().serving() { "" } else { "not " }
        );
        Ok(Self {
            _mirror: mirror,
            _debugfs: debugfs,
            _service: service,
            _glue: glue,
        })
    }
}

impl Drop for Rsva {
    fn drop(&mut self) {
        ffi::mirror::exit();
        registry::exit();
        pr_info!("rsva unloaded\n");
    }
}
