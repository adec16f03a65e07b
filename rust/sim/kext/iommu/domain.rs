// SPDX-License-Identifier: GPL-2.0

//! The domains an IOMMU driver allocates for the IOMMU core: SVA domains
//! ([`SvaDomain`]), whose callbacks come from [`SvaDomainOps`], and paging
//! domains that map nothing ([`PagingDomain`]).
//!
//! C header: [`include/linux/iommu.h`](srctree/include/linux/iommu.h)

use core::ops::Deref;

use kernel::{
    bindings,
    device::Device,
    mm::{
        mmu_notifier::{MmuNotifier, MmuNotifierOps},
        Mm, MmWithUser,
    },
    prelude::*,
    sync::{Arc, ArcBorrow},
    types::Opaque,
};

use kernel::types::ForeignOwnable;

use super::driver::device_data;
#[cfg(doc)]
use super::driver::IommuDriver;

/// What an SVA domain of a driver does (`struct iommu_domain_ops` of the
/// domain, and the domain's mmu notifier), given the driver's data `Self`
/// of the domain.
pub(crate) trait SvaDomainOps: Send + Sync + Sized + 'static {
    /// The data of the devices of the driver that allocates the domains
    /// ([`IommuDriver::DeviceData`]).
    type DeviceData: ForeignOwnable + Send + Sync;

    /// `set_dev_pasid`: attaches `pasid` of `dev` to `domain`, whose mm is
    /// `mm`; `old` is the SVA domain attached to it until now, if the
    /// domain attached was one (it may be `domain` itself).
    fn set_dev_pasid(
        domain: &SvaDomain<Self>,
        dev: &Device,
        data: <Self::DeviceData as ForeignOwnable>::Borrowed<'_>,
        pasid: u32,
        mm: &Mm,
        old: Option<&SvaDomain<Self>>,
    ) -> Result;

    /// `free`: the IOMMU core gives its reference back, attached nowhere
    /// any more. The domain's notifier is still registered: the driver
    /// ends it ([`SvaDomain::put_notifier`] or
    /// [`SvaDomain::unregister_notifier`]).
    fn free(domain: Arc<SvaDomain<Self>>);

    /// The mm goes away, or the notifier is unregistered while the mm has
    /// users ([`MmuNotifierOps::release`]): at most once per domain,
    /// possibly after the driver ended the notifier.
    fn release(domain: &SvaDomain<Self>);

    /// The CPU page tables of the mm change in `[start, end)`, and the
    /// pages may be freed once this returns
    /// ([`MmuNotifierOps::invalidate_secondary_tlbs`]); may be atomic.
    fn invalidate_secondary_tlbs(domain: &SvaDomain<Self>, start: usize, end: usize);
}

/// An SVA domain: the `struct iommu_domain` the IOMMU core knows, the
/// driver's data `T` of it, and an mmu notifier on its mm.
///
/// It lives in an [`Arc`]. From [`IommuDriver::domain_alloc_sva`] until
/// [`SvaDomainOps::free`], the IOMMU core holds one reference (given with
/// [`SvaDomain::into_raw`]); the notifier's registration holds another from
/// [`SvaDomain::new`] until the driver ends it: put, the reference goes in
/// `free_notifier`, after an SRCU grace period (module exit waits for those
/// with `mmu_notifier_synchronize()`); unregistered, it goes as the
/// unregistration returns. Dropping the last reference frees the domain.
/// The core holds `mmgrab()` on the mm while it uses the domain.
///
/// # Invariants
///
/// - `raw.ops` is `SvaDomain::<T>::OPS`, set before the core sees `raw`.
/// - A `struct iommu_domain` of type `IOMMU_DOMAIN_SVA` that the IOMMU
///   core attaches to a PASID of a device of a driver `D` whose
///   [`IommuDriver::SvaDomain`] is `T` is the `raw` of an `SvaDomain<T>`:
///   the core attaches a domain only to devices of the ops that allocated
///   it, and `D`'s allocate SVA domains with `D`'s
///   [`IommuDriver::domain_alloc_sva`] only, which returns an
///   `SvaDomain<T>`. Such a device's driver data is a `T::DeviceData`
///   (`D::DeviceData` is `T::DeviceData`).
#[pin_data]
pub(crate) struct SvaDomain<T: SvaDomainOps> {
    raw: Opaque<bindings::iommu_domain>,
    notifier: MmuNotifier<Self>,
    #[pin]
    data: T,
}

// SAFETY: The C domain is written by the IOMMU core under its own locks,
// and read here only for `mm`, which does not change after allocation; the
// notifier is `Send`; `T` is.
unsafe impl<T: SvaDomainOps> Send for SvaDomain<T> {}
// SAFETY: Shared references read only `mm` of the C domain, which does not
// change after allocation; the notifier and `T` are `Sync`.
unsafe impl<T: SvaDomainOps> Sync for SvaDomain<T> {}

kernel::impl_has_mmu_notifier!(impl{T: SvaDomainOps} HasMmuNotifier for SvaDomain<T> { self.notifier });

impl<T: SvaDomainOps> SvaDomain<T> {
    /// The domain's ops.
    const OPS: bindings::iommu_domain_ops = bindings::iommu_domain_ops {
        set_dev_pasid: Some(Self::set_dev_pasid_callback),
        free: Some(Self::free_callback),
        ..pin_init::zeroed()
    };

    /// [`Self::OPS`], which lives as long as the code.
    const fn ops() -> &'static bindings::iommu_domain_ops {
        &Self::OPS
    }

    /// A new SVA domain of `mm`, with `data`, its notifier registered on
    /// `mm`: for [`IommuDriver::domain_alloc_sva`].
    pub(crate) fn new(data: impl PinInit<T, Error>, mm: &MmWithUser) -> Result<Arc<Self>> {
        let domain = Arc::pin_init(
            try_pin_init!(Self {
                // INVARIANT: the ops are set before the core sees it.
                raw: Opaque::new(bindings::iommu_domain {
                    ops: Self::ops(),
                    ..pin_init::zeroed()
                }),
                notifier: MmuNotifier::new(),
                data <- data,
            }),
            GFP_KERNEL,
        )?;
        MmuNotifier::register(&domain, mm)?;
        Ok(domain)
    }

    /// Gives the IOMMU core its reference, until [`SvaDomainOps::free`].
    pub(super) fn into_raw(this: Arc<Self>) -> *mut bindings::iommu_domain {
        let this = Arc::into_raw(this);
        // SAFETY: `this` is valid while the core's reference lives; only the
        // field's address is computed.
        unsafe { (*this).raw.get() }
    }

    /// The domain whose `raw` is at `ptr`.
    ///
    /// # Safety
    ///
    /// `ptr` is the `raw` of a live `SvaDomain<T>`, which stays alive for
    /// `'a`.
    unsafe fn from_raw<'a>(ptr: *mut bindings::iommu_domain) -> &'a Self {
        // SAFETY: By the safety requirements, `ptr` is the `raw` field of
        // a live `Self` (`Opaque` is `repr(transparent)`), alive for `'a`.
        unsafe { &*kernel::container_of!(ptr.cast::<Opaque<bindings::iommu_domain>>(), Self, raw) }
    }

    /// The SVA domain of `T` attached to a PASID, or `None` when `ptr` is
    /// null or a domain of another type.
    ///
    /// # Safety
    ///
    /// `ptr` is null or a valid domain attached to a PASID of a device of
    /// a driver whose SVA domains are `T`'s, which the core keeps for `'a`.
    pub(super) unsafe fn from_attached<'a>(ptr: *mut bindings::iommu_domain) -> Option<&'a Self> {
        if ptr.is_null() {
            return None;
        }
        // SAFETY: `ptr` is a valid domain (the safety requirements); the
        // core set its type before attaching it and does not change it.
        if unsafe { (*ptr).type_ } != bindings::IOMMU_DOMAIN_SVA {
            return None;
        }
        // SAFETY: An SVA domain attached to a PASID of a device of a
        // driver whose SVA domains are `T`'s is the `raw` of a live
        // `SvaDomain<T>` (type invariant), which the core keeps for `'a`.
        Some(unsafe { Self::from_raw(ptr) })
    }

    /// Ends the notifier's registration without waiting; its reference goes
    /// after an SRCU grace period. For [`SvaDomainOps::free`]; see
    /// [`MmuNotifier::put`].
    pub(crate) fn put_notifier(&self) -> bool {
        self.notifier.put()
    }

    /// Ends the notifier's registration and waits until no callback runs
    /// any more (calling [`SvaDomainOps::release`] first if the mm has
    /// users). For [`SvaDomainOps::free`]: process context, not from a
    /// notifier's callback of the mm, which it would wait for forever; see
    /// [`MmuNotifier::unregister`].
    pub(crate) fn unregister_notifier(this: &Arc<Self>) -> bool {
        MmuNotifier::unregister(this)
    }

    /// `set_dev_pasid` of the domain.
    ///
    /// # Safety
    ///
    /// Called by the IOMMU core with a domain of these ops, after it set
    /// the domain's mm, a device of the driver that allocated the domain,
    /// probed and not released, and the domain attached to the PASID until
    /// now, or null.
    unsafe extern "C" fn set_dev_pasid_callback(
        domain: *mut bindings::iommu_domain,
        dev: *mut bindings::device,
        pasid: bindings::ioasid_t,
        old: *mut bindings::iommu_domain,
    ) -> c_int {
        // SAFETY: A domain with these ops is the `raw` of an `SvaDomain<T>`
        // (type invariant), which the core keeps during the call.
        let this = unsafe { Self::from_raw(domain) };
        // SAFETY: The core passes a valid device of the driver that
        // allocated the domain, whose data is a `T::DeviceData` (type
        // invariant), probed and not released, for the duration of the call.
        let Some(data) = (unsafe { device_data::<T::DeviceData>(dev) }) else {
            return ENODEV.to_errno();
        };
        // SAFETY: The core passes a valid device, alive during the call.
        let device = unsafe { Device::from_raw(dev) };
        // SAFETY: The core set `mm` when it allocated the domain, and
        // changes it no more.
        let mm = unsafe { (*domain).__bindgen_anon_1.__bindgen_anon_2.mm };
        if mm.is_null() {
            return EINVAL.to_errno();
        }
        // SAFETY: The domain holds `mmgrab()` on its mm for as long as it
        // lives, which is past the call.
        let mm = unsafe { Mm::from_raw(mm) };
        // SAFETY: `old` is null or the domain attached to a PASID of a
        // device of the driver that allocated this domain, whose SVA domains
        // are `T`'s, which the core keeps for the call.
        let old = unsafe { Self::from_attached(old) };
        match T::set_dev_pasid(this, device, data, pasid, mm, old) {
            Ok(()) => 0,
            Err(e) => e.to_errno(),
        }
    }

    /// `free` of the domain: the core's reference goes to the driver.
    ///
    /// # Safety
    ///
    /// Called by the IOMMU core, once, with a domain of these ops, which
    /// it uses no more.
    unsafe extern "C" fn free_callback(domain: *mut bindings::iommu_domain) {
        // SAFETY: A domain with these ops is the `raw` of an `SvaDomain<T>`
        // (type invariant), alive while the core's reference lives.
        let this = unsafe { Self::from_raw(domain) };
        // SAFETY: The core's reference, from `Arc::into_raw` in
        // `into_raw`, given back once, here.
        T::free(unsafe { Arc::from_raw(core::ptr::from_ref(this)) });
    }
}

impl<T: SvaDomainOps> Deref for SvaDomain<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.data
    }
}

#[vtable]
impl<T: SvaDomainOps> MmuNotifierOps for SvaDomain<T> {
    fn release(this: ArcBorrow<'_, Self>) {
        T::release(&this);
    }

    fn invalidate_secondary_tlbs(this: ArcBorrow<'_, Self>, start: usize, end: usize) {
        T::invalidate_secondary_tlbs(&this, start, end);
    }
}

/// A paging domain that maps nothing (the driver's devices have no DMA
/// without a PASID), for a kernel driver that manages its device's DMA
/// itself, or VFIO, to allocate and attach. It owns the C domain: given
/// to the core, which frees it with its `free`; dropped before, it frees
/// it.
///
/// # Invariants
///
/// `0.ops` is [`PagingDomain::OPS`].
pub(crate) struct PagingDomain(KBox<Opaque<bindings::iommu_domain>>);

impl PagingDomain {
    /// The domain's ops.
    const OPS: bindings::iommu_domain_ops = bindings::iommu_domain_ops {
        attach_dev: Some(Self::attach_nop),
        free: Some(Self::free_callback),
        ..pin_init::zeroed()
    };

    /// [`Self::OPS`], which lives as long as the code.
    const fn ops() -> &'static bindings::iommu_domain_ops {
        &Self::OPS
    }

    /// A new paging domain.
    pub(crate) fn new() -> Result<Self> {
        let raw = Opaque::new(bindings::iommu_domain {
            ops: Self::ops(),
            ..pin_init::zeroed()
        });
        // INVARIANT: its ops are set.
        Ok(Self(KBox::new(raw, GFP_KERNEL)?))
    }

    /// Gives the domain to the IOMMU core, which frees it with its `free`.
    pub(super) fn into_raw(self) -> *mut bindings::iommu_domain {
        KBox::into_raw(self.0).cast()
    }

    /// `attach_dev`: nothing to program.
    ///
    /// # Safety
    ///
    /// Called by the IOMMU core.
    unsafe extern "C" fn attach_nop(
        _domain: *mut bindings::iommu_domain,
        _dev: *mut bindings::device,
        _old: *mut bindings::iommu_domain,
    ) -> c_int {
        0
    }

    /// `free`.
    ///
    /// # Safety
    ///
    /// Called by the IOMMU core, once, with a domain of these ops, which it
    /// uses no more.
    unsafe extern "C" fn free_callback(domain: *mut bindings::iommu_domain) {
        // SAFETY: A domain with these ops comes from `KBox::into_raw` in
        // `into_raw` (`Opaque` is `repr(transparent)`); the core frees it
        // once and uses it no more.
        drop(unsafe { KBox::from_raw(domain.cast::<Opaque<bindings::iommu_domain>>()) });
    }
}

#[kunit_tests(rsva_sim_iommu_domain)]
pub(super) mod tests {
    use super::*;
    use crate::kext::iommu::{driver::IommuDriver, iopf::IopfPort};
    use core::ptr::NonNull;
    use kernel::{
        iommu::dma_owner::Group,
        sync::{
            aref::ARef,
            atomic::{Atomic, Relaxed},
        },
    };

    /// A driver whose SVA domains are [`TestDomain`]s.
    pub(crate) struct TestDriver;

    #[vtable]
    impl IommuDriver for TestDriver {
        type DeviceData = ();
        type SvaDomain = TestDomain;

        fn probe_device(_dev: &Device, _iopf: IopfPort) -> Result {
            Err(ENODEV)
        }

        fn device_group(_dev: &Device, _data: ()) -> Result<ARef<Group>> {
            Err(ENODEV)
        }

        fn block_pasid(
            _dev: &Device,
            _data: (),
            _pasid: u32,
            _old: Option<&SvaDomain<TestDomain>>,
        ) -> Result {
            Ok(())
        }

        fn domain_alloc_sva(
            _dev: &Device,
            _data: (),
            mm: &MmWithUser,
        ) -> Result<Arc<SvaDomain<TestDomain>>> {
            SvaDomain::new(TestDomain::new(), mm)
        }
    }

    /// Counts what it hears; its end ends the notifier by a put.
    #[pin_data]
    pub(crate) struct TestDomain {
        released: Atomic<u32>,
        invalidated: Atomic<u32>,
        freed: Atomic<u32>,
    }

    impl TestDomain {
        fn new() -> impl PinInit<Self, Error> {
            try_pin_init!(Self {
                released: Atomic::new(0),
                invalidated: Atomic::new(0),
                freed: Atomic::new(0),
            })
        }
    }

    impl SvaDomainOps for TestDomain {
        type DeviceData = ();

        fn set_dev_pasid(
            _domain: &SvaDomain<Self>,
            _dev: &Device,
            _data: (),
            _pasid: u32,
            _mm: &Mm,
            _old: Option<&SvaDomain<Self>>,
        ) -> Result {
            Err(EINVAL)
        }

        fn free(domain: Arc<SvaDomain<Self>>) {
            domain.freed.add(1, Relaxed);
            domain.put_notifier();
        }

        fn release(domain: &SvaDomain<Self>) {
            domain.released.add(1, Relaxed);
        }

        fn invalidate_secondary_tlbs(domain: &SvaDomain<Self>, _start: usize, _end: usize) {
            domain.invalidated.add(1, Relaxed);
        }
    }

    /// A new mm with no mappings and one user, ours.
    fn new_mm() -> Result<ARef<MmWithUser>> {
        // SAFETY: `mm_alloc()` may be called from any process context.
        let mm = NonNull::new(unsafe { bindings::mm_alloc() }).ok_or(ENOMEM)?;
        // SAFETY: We own the user reference `mm_alloc()` returned, which the
        // `ARef` gives back with `mmput()`.
        Ok(unsafe { ARef::from_raw(mm.cast()) })
    }

    /// Waits for the `free_notifier` calls of the notifiers put so far.
    fn synchronize() {
        // SAFETY: No lock held; process context.
        unsafe { bindings::mmu_notifier_synchronize() };
    }

    /// The core's view of a domain leads back to it, through its ops: the
    /// `free` callback returns the core's reference to the driver, which
    /// ends the notifier; the mm going tells the domain once.
    #[test]
    fn the_cores_reference_comes_back_through_free() -> Result {
        let mm = new_mm()?;
        let domain = SvaDomain::new(TestDomain::new(), &mm)?;
        let raw = SvaDomain::into_raw(domain.clone());
        // SAFETY: `raw` is the domain's, alive (`domain`).
        let ops = unsafe { (*raw).ops };
        // SAFETY: The ops of a domain live as long as the code.
        let (attach, set_pasid) = unsafe { ((*ops).attach_dev, (*ops).set_dev_pasid) };
        assert!(attach.is_none() && set_pasid.is_some());
        // SAFETY: `raw` is the `raw` of a live `SvaDomain<TestDomain>`.
        let back = unsafe { SvaDomain::<TestDomain>::from_raw(raw) };
        assert!(core::ptr::eq(back, &*domain));
        // The mm goes: `release`, once.
        drop(mm);
        assert_eq!(domain.released.load(Relaxed), 1);
        // SAFETY: `ops` are the domain's, which has a `free`.
        let free = unsafe { (*ops).free };
        assert!(free.is_some());
        if let Some(free) = free {
            // SAFETY: As the core would, once, with the reference
            // `into_raw` gave it.
            unsafe { free(raw) };
        }
        assert_eq!(domain.freed.load(Relaxed), 1);
        // The put in `free` ended the notifier: nothing left to end.
        assert!(!domain.put_notifier());
        synchronize();
        Ok(())
    }

    /// Only an SVA domain is taken for one of the driver's: the blocked,
    /// identity and paging domains, and null, are not.
    #[test]
    fn only_sva_domains_are_recognised_as_attached() -> Result {
        let mm = new_mm()?;
        let domain = SvaDomain::new(TestDomain::new(), &mm)?;
        let raw = domain.raw.get();
        // SAFETY: Null.
        assert!(unsafe { SvaDomain::<TestDomain>::from_attached(core::ptr::null_mut()) }.is_none());
        for t in [
            bindings::IOMMU_DOMAIN_BLOCKED,
            bindings::IOMMU_DOMAIN_IDENTITY,
            bindings::IOMMU_DOMAIN_UNMANAGED,
        ] {
            // SAFETY: The domain is ours, not seen by the core.
            unsafe { (*raw).type_ = t };
            // SAFETY: A valid domain, alive (`domain`).
            assert!(unsafe { SvaDomain::<TestDomain>::from_attached(raw) }.is_none());
        }
        // SAFETY: The domain is ours, not seen by the core.
        unsafe { (*raw).type_ = bindings::IOMMU_DOMAIN_SVA };
        // SAFETY: The `raw` of a live `SvaDomain<TestDomain>`.
        let found = unsafe { SvaDomain::<TestDomain>::from_attached(raw) };
        assert!(found.is_some_and(|d| core::ptr::eq(d, &*domain)));
        assert!(SvaDomain::unregister_notifier(&domain));
        assert_eq!(domain.released.load(Relaxed), 1);
        drop(mm);
        assert_eq!(domain.released.load(Relaxed), 1);
        Ok(())
    }

    /// A paging domain goes back to the driver's `free`, which frees it.
    #[test]
    fn a_paging_domain_is_freed_by_its_ops() -> Result {
        let raw = PagingDomain::new()?.into_raw();
        // SAFETY: Just allocated, not given to the core.
        let ops = unsafe { (*raw).ops };
        // SAFETY: The ops of a domain live as long as the code.
        let (attach, set_pasid) = unsafe { ((*ops).attach_dev, (*ops).set_dev_pasid) };
        assert!(attach.is_some() && set_pasid.is_none());
        // SAFETY: The ops of a paging domain.
        let free = unsafe { (*ops).free };
        assert!(free.is_some());
        if let Some(free) = free {
            // SAFETY: As the core would, once; kmemleak sees a leak
            // otherwise.
            unsafe { free(raw) };
        }
        Ok(())
    }
}
