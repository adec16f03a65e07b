// SPDX-License-Identifier: GPL-2.0

//! The C side of rsva: every `#[no_mangle]` function of the module, whose
//! prototypes and kernel-doc are in `include/rsva.h` (and, for KUnit,
//! `include/rsva_test.h`). Nothing below calls into this module: it is the
//! top of the crate's layers, and owns the module's
//! service ([`service()`]).
//!
//! - [`sva`]: PASIDs, SVA binds and DMA ownership claims.
//! - [`mirror`]: the HMM mirror for C drivers.
//! - [`provider`]: the IOMMU core's calls while rsva serves its SVA API.
//! - [`checks`]: what every entry point checks first (NULL and `ERR_PTR()`
//!   arguments, calls from inside a mirror's hook).

#![allow(
    unsafe_code,
    reason = "the C entry points and the module's published state"
)]

pub(crate) mod checks;
pub(crate) mod mirror;
pub(crate) mod provider;
pub(crate) mod sva;

use core::pin::Pin;

use kernel::{
    prelude::*,
    sync::atomic::{Acquire, Atomic, Release},
};

use crate::sva::provider::Service;

/// The module's service; set while the module is initialised.
static SERVICE: Atomic<*const Service> = Atomic::new(core::ptr::null());

/// The service, unless the module is being loaded or unloaded.
pub(crate) fn service() -> Option<&'static Service> {
    let s = SERVICE.load(Acquire);
    // SAFETY: Set by `Published::new` to a pinned service that lives until
    // `Published` drops, which runs only when no C caller can reach rsva
    // any more (no provider, no users of the module) and the debugfs files
    // are gone.
    (!s.is_null()).then(|| unsafe { &*s })
}

/// The module's service, reachable from the C API and the IOMMU core's
/// calls while this lives; it owns the service and, when dropped, stops
/// serving, lets go of it, and shuts it down (no provider, leases ended,
/// notifiers done) before it is freed.
///
/// # Invariants
///
/// `SERVICE` points at the boxed service from `new` until the drop.
pub(crate) struct Published(Pin<KBox<Service>>);

impl Published {
    /// Publishes `service`.
    pub(crate) fn new(service: Pin<KBox<Service>>) -> Self {
        // INVARIANT: The box does not move its contents, and keeps them
        // until `drop` has unpublished them.
        SERVICE.store(core::ptr::from_ref(service.as_ref().get_ref()), Release);
        Self(service)
    }

    /// The service.
    pub(crate) fn get(&self) -> &Service {
        &self.0
    }
}

impl Drop for Published {
    fn drop(&mut self) {
        // Before the service is unreachable: clearing the provider calls its
        // `drain`, which finds the service.
        self.0.stop_serving();
        SERVICE.store(core::ptr::null(), Release);
        self.0.shut_down();
    }
}
