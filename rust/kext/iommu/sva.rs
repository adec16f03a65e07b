// SPDX-License-Identifier: GPL-2.0

//! A module serving the kernel's SVA bind API (patch 0003).
//!
//! C header: [`include/linux/iommu.h`](srctree/include/linux/iommu.h)
//!
//! While a provider is set, `iommu_sva_bind_device()` binds through it and
//! every handle records the provider that made it, so that
//! `iommu_sva_unbind_device()` and `iommu_sva_get_pasid()` reach the same
//! one. The core pins the provider's module while a handle of it lives.

use kernel::{
    bindings,
    device::{Bound, Device},
    error::to_result,
    prelude::*,
    sync::{
        aref::ARef,
        atomic::{Atomic, Relaxed},
        Arc,
    },
    types::Opaque,
};

use crate::kext::{glue, handles::Token};

/// An SVA provider: the table of callbacks the IOMMU core calls.
///
/// # Invariants
///
/// The table's callbacks implement the provider contract of
/// `struct iommu_sva_provider`, and the table is never written after
/// construction.
pub(crate) struct Provider(bindings::iommu_sva_provider);

// SAFETY: Never written after construction; only its address is used.
unsafe impl Sync for Provider {}

impl Provider {
    /// A provider with the callbacks of `table`.
    ///
    /// # Safety
    ///
    /// The callbacks of `table` must implement the contract of
    /// `struct iommu_sva_provider` in `include/linux/iommu.h`, and `owner`
    /// must be the module that holds them.
    pub(crate) const unsafe fn new(table: bindings::iommu_sva_provider) -> Self {
        // INVARIANT: By the safety requirements.
        Self(table)
    }

    /// The C table, which the handles this provider makes name.
    pub(crate) fn as_raw(&self) -> *const bindings::iommu_sva_provider {
        &self.0
    }

    /// Makes this the provider of the SVA API. `EBUSY` while the IOMMU core
    /// has bonds of its own, or another provider is set.
    pub(crate) fn set(&'static self) -> Result {
        // SAFETY: The table is complete and lives forever (type invariant).
        to_result(unsafe { bindings::iommu_sva_set_provider(&self.0) })
    }

    /// Stops serving the SVA API: calls the table's `drain` with every
    /// bind held off. `EBUSY` while a handle this provider made is bound,
    /// `EINVAL` when it is not the provider.
    pub(crate) fn clear(&'static self) -> Result {
        // SAFETY: The table is complete and lives forever (type
        // invariant); the core checks that it is the provider.
        to_result(unsafe { bindings::iommu_sva_clear_provider(&self.0) })
    }
}

/// The handle of an SVA bond, as the IOMMU core sees it
/// (`struct iommu_sva`): the device, the provider that made it, and the
/// attach handle of its PASID attachment. It holds a reference to the
/// device; the core's callers hold its address ([`SvaHandle::as_ptr`]),
/// and the callers of a module's own C API may hold a [`Token`] naming it
/// ([`SvaHandle::set_token`]) instead.
///
/// # Invariants
///
/// `raw.dev` is `dev`'s and `raw.provider` the provider's, written at
/// construction and never after; the rest is written by the IOMMU core
/// only, through [`SvaHandle::attach_handle`]. `token` is 0 or the value
/// of a [`Token`].
#[repr(C)]
pub(crate) struct SvaHandle {
    raw: Opaque<bindings::iommu_sva>,
    dev: ARef<Device>,
    token: Atomic<usize>,
}

// SAFETY: The fields rsva writes do not change after construction; the
// IOMMU core writes the attach handle under its own locks; the device
// reference may be dropped on any thread.
unsafe impl Send for SvaHandle {}
// SAFETY: Shared references only read `dev` and `provider`, which do
// not change after construction, or give the attach handle's address to
// the IOMMU core, which writes it under its own locks.
unsafe impl Sync for SvaHandle {}

impl SvaHandle {
    /// The handle of a bond of `dev` made by `provider`.
    pub(crate) fn new(dev: &Device, provider: &'static Provider) -> Result<Arc<Self>> {
        // INVARIANT: the only writes of `dev` and `provider`.
        Ok(Arc::new(
            Self {
                raw: Opaque::new(bindings::iommu_sva {
                    dev: glue::dev_ptr(dev),
                    provider: provider.as_raw(),
                    ..pin_init::zeroed()
                }),
                dev: dev.into(),
                token: Atomic::new(0),
            },
            GFP_KERNEL,
        )?)
    }

    /// The address drivers hold.
    pub(crate) fn as_ptr(&self) -> *mut bindings::iommu_sva {
        self.raw.get()
    }

    /// The device of the bond.
    pub(crate) fn device(&self) -> &Device {
        &self.dev
    }

    /// The address drivers hold, to be compared.
    pub(crate) fn addr(&self) -> HandleAddr {
        HandleAddr(self.as_ptr() as usize)
    }

    /// The token that names this handle in a C API that hands out tokens,
    /// if it has one now.
    pub(crate) fn token(&self) -> Option<Token> {
        Token::from_raw(self.token.load(Relaxed))
    }

    /// Names this handle `token` from now on, or by its address only
    /// (`None`). The caller serialises the changes (and the look-ups that
    /// must see them) with a lock of its own.
    pub(crate) fn set_token(&self, token: Option<Token>) {
        // INVARIANT: 0 or a token's value.
        self.token.store(token.map_or(0, Token::raw), Relaxed);
    }

    /// The device of the bond, bound to its driver as `promise` says, if
    /// `promise` was given for this handle: by its address or by its
    /// current token.
    pub(crate) fn bound_device<'a>(
        &'a self,
        promise: &'a BoundByCaller,
    ) -> Option<&'a Device<Bound>> {
        let named = promise.handle == self.as_ptr() as usize
            || self.token().is_some_and(|t| t.raw() == promise.handle);
        if !named {
            return None;
        }
        // SAFETY: The caller that passed this handle promised that its
        // device is bound during the call (`BoundByCaller::new`), which
        // `promise`'s borrow does not outlive.
        Some(unsafe { self.dev.as_bound() })
    }

    /// The attach handle of the PASID attachment this handle made, for
    /// [`super::domain::SvaDomain::attach`].
    pub(crate) fn attach_handle(&self) -> *mut bindings::iommu_attach_handle {
        // SAFETY: A place computation inside the live structure; nothing
        // is read or written.
        unsafe { &raw mut (*self.raw.get()).handle }
    }
}

/// The address of an SVA handle a caller passed: only compared with
/// [`SvaHandle::addr`], never dereferenced, so it may be anything.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct HandleAddr(usize);

impl HandleAddr {
    /// The address `handle`.
    pub(crate) fn of(handle: *const bindings::iommu_sva) -> Self {
        Self(handle as usize)
    }

    /// The address, as a registry key.
    pub(crate) fn key(self) -> usize {
        self.0
    }
}

/// A C caller's promise, for the length of one call, that the device of
/// the SVA handle it passes (an address or a token) is bound to its
/// driver: the contract of `iommu_sva_unbind_device()` and
/// `rsva_sva_unbind_device()`, whose callers unbind before their driver's
/// `remove()` returns. Not `Clone`, and made by the C entry points only.
pub(crate) struct BoundByCaller {
    handle: usize,
}

impl BoundByCaller {
    /// The promise of the caller that passed `handle`.
    ///
    /// # Safety
    ///
    /// If `handle` is an [`SvaHandle`] or its token, the handle's device is
    /// bound to its driver for as long as the promise lives; the promise is
    /// dropped before the C call that gave it returns.
    pub(crate) unsafe fn new<P>(handle: *const P) -> Self {
        Self {
            handle: handle as usize,
        }
    }
}
