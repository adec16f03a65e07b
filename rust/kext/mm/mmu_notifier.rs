// SPDX-License-Identifier: GPL-2.0

//! mmu notifiers embedded in reference-counted objects.
//!
//! C header: [`include/linux/mmu_notifier.h`](srctree/include/linux/mmu_notifier.h)
//!
//! An [`MmuNotifier<T>`] is a field of a `T` that lives in an [`Arc`]. Once
//! registered on an mm ([`MmuNotifier::register`]), the notifier core holds
//! a reference to the `T`: the core's callbacks reach the object through
//! it, and it is dropped in the notifier's `free_notifier`, which the core
//! calls after [`MmuNotifier::put`] and an SRCU grace period, when no
//! callback can run any more. Neither `put` nor the callbacks wait for
//! anything, so `put` may be called from the notifier's own `release`,
//! and the object outlives every callback without any lock.
//!
//! The object is told of the mm's `release` ([`MmuNotifierOps::release`]):
//! exit_mmap, or the last `mmu_notifier_unregister()` of another notifier
//! of the mm. It comes at most once per registration, but may come after
//! the object ended the registration itself (a `put` that raced it), so a
//! `release` must be idempotent with respect to the object's own end.
//!
//! Module exit must wait for the `free_notifier` calls of its objects:
//! `mmu_notifier_synchronize()`.

use core::marker::PhantomData;

use kernel::{
    bindings,
    mm::MmWithUser,
    prelude::*,
    sync::{
        atomic::{Atomic, Relaxed},
        Arc, ArcBorrow,
    },
    types::Opaque,
};

/// Not registered yet.
const NEW: u32 = 0;
/// Registered on an mm: the core holds a reference to the object.
const REGISTERED: u32 = 1;
/// Put: the core drops its reference after a grace period.
const PUT: u32 = 2;

/// An mmu notifier, a field of a `T` kept in an [`Arc`].
///
/// # Invariants
///
/// - `notifier.ops` is [`MmuNotifier::<T>::OPS`], whose callbacks reach the
///   `T` that holds this field ([`HasMmuNotifier`]).
/// - While `state` is [`REGISTERED`], `notifier` is registered on an mm
///   and the registration holds a reference to the `T` (from
///   [`Arc::into_raw`]), which `free_notifier` gives back. `state` moves
///   from [`NEW`] to [`REGISTERED`] once, and from there to [`PUT`] once.
#[repr(C)]
pub(crate) struct MmuNotifier<T> {
    notifier: Opaque<bindings::mmu_notifier>,
    state: Atomic<u32>,
    _object: PhantomData<fn() -> T>,
}

// SAFETY: The C structure is written before registration (by one thread,
// `state` moving from `NEW`), then only by the notifier core under its own
// locks; `state` is atomic.
unsafe impl<T> Send for MmuNotifier<T> {}
// SAFETY: As for `Send`.
unsafe impl<T> Sync for MmuNotifier<T> {}

/// Types that hold an [`MmuNotifier<Self>`] field.
///
/// Implement it with [`impl_has_mmu_notifier!`].
///
/// # Safety
///
/// [`HasMmuNotifier::mmu_notifier_container_of`] must return the address
/// of the object whose [`HasMmuNotifier::mmu_notifier`] field is at `ptr`.
pub(crate) unsafe trait HasMmuNotifier: Sized {
    /// The notifier field.
    fn mmu_notifier(&self) -> &MmuNotifier<Self>;

    /// The object holding the notifier field at `ptr`.
    ///
    /// # Safety
    ///
    /// `ptr` must point at the notifier field of a live `Self`.
    unsafe fn mmu_notifier_container_of(ptr: *const MmuNotifier<Self>) -> *const Self;
}

/// Implements [`HasMmuNotifier`] for a type and its [`MmuNotifier`] field:
/// `impl_has_mmu_notifier!(impl{T: Bound} HasMmuNotifier for Type<T> { self.field });`.
macro_rules! impl_has_mmu_notifier {
    (impl$({$($generics:tt)*})? HasMmuNotifier for $self:ty { self.$field:ident }) => {
        // SAFETY: `mmu_notifier_container_of` inverts `mmu_notifier`: both
        // name the field `$field`, whose type the first checks.
        unsafe impl$(<$($generics)*>)? $crate::kext::mm::mmu_notifier::HasMmuNotifier for $self {
            fn mmu_notifier(&self) -> &$crate::kext::mm::mmu_notifier::MmuNotifier<Self> {
                &self.$field
            }

            unsafe fn mmu_notifier_container_of(
                ptr: *const $crate::kext::mm::mmu_notifier::MmuNotifier<Self>,
            ) -> *const Self {
                // SAFETY: The caller passes the `$field` of a live `Self`.
                unsafe { kernel::container_of!(ptr, Self, $field) }
            }
        }
    };
}
pub(crate) use impl_has_mmu_notifier;

/// What an object learns from its [`MmuNotifier`].
pub(crate) trait MmuNotifierOps: HasMmuNotifier + Send + Sync + 'static {
    /// The mm goes away (`release`): process context, inside the notifier
    /// core's SRCU read side, so it must not wait for the notifiers' grace
    /// period (`mmu_notifier_synchronize()`, `mmu_notifier_unregister()`)
    /// or free what another notifier's callback may use. Called at most
    /// once per registration, possibly after [`MmuNotifier::put`].
    fn release(this: ArcBorrow<'_, Self>);
}

impl<T: MmuNotifierOps> MmuNotifier<T> {
    /// The callbacks: `release`, and `free_notifier` to drop the reference.
    const OPS: bindings::mmu_notifier_ops = bindings::mmu_notifier_ops {
        release: Some(Self::release_callback),
        free_notifier: Some(Self::free_callback),
        ..pin_init::zeroed()
    };

    /// [`Self::OPS`], promoted to a constant that lives for the module's
    /// lifetime (a `'static` borrow of a generic constant needs a function).
    const fn ops() -> &'static bindings::mmu_notifier_ops {
        &Self::OPS
    }

    /// A notifier that is not registered.
    pub(crate) fn new() -> Self {
        // INVARIANT: `ops` set, not registered.
        Self {
            notifier: Opaque::new(bindings::mmu_notifier {
                ops: Self::ops(),
                ..pin_init::zeroed()
            }),
            state: Atomic::new(NEW),
            _object: PhantomData,
        }
    }

    /// Registers the notifier of `this` on `mm`; the registration holds a
    /// reference to `this` until its `free_notifier`, after
    /// [`Self::put`]. `EBUSY` if it was registered before. Takes the mmap
    /// lock for writing.
    pub(crate) fn register(this: &Arc<T>, mm: &MmWithUser) -> Result {
        let n = this.mmu_notifier();
        if n.state.cmpxchg(NEW, REGISTERED, Relaxed).is_err() {
            return Err(EBUSY);
        }
        let raw = Arc::into_raw(this.clone());
        // SAFETY: The structure is initialised, with `OPS` (type
        // invariant), and no other thread registers it (`state`); `mm` has
        // users. The registration keeps the reference taken just above.
        let ret = unsafe { bindings::mmu_notifier_register(n.notifier.get(), mm.as_raw()) };
        if ret != 0 {
            // SAFETY: Not registered: the reference returns to us.
            drop(unsafe { Arc::from_raw(raw) });
            // INVARIANT: not registered; it stays unusable, as after a put.
            n.state.store(PUT, Relaxed);
            return Err(Error::from_errno(ret));
        }
        Ok(())
    }

    /// Ends the registration, if this is the first call since it was
    /// registered: no callback runs once the SRCU readers of now are done,
    /// and the reference goes then. Waits for nothing, so it may be called
    /// from the object's [`MmuNotifierOps::release`]. Returns whether this
    /// call ended it.
    pub(crate) fn put(&self) -> bool {
        if self.state.cmpxchg(REGISTERED, PUT, Relaxed).is_err() {
            return false;
        }
        // SAFETY: Registered (`state`), and put once, here.
        unsafe { bindings::mmu_notifier_put(self.notifier.get()) };
        true
    }

    /// `release` of the C notifier.
    ///
    /// # Safety
    ///
    /// `mn` is the notifier of a registered `MmuNotifier<T>`.
    unsafe extern "C" fn release_callback(
        mn: *mut bindings::mmu_notifier,
        _mm: *mut bindings::mm_struct,
    ) {
        // SAFETY: `notifier` is the first field of the `repr(C)` wrapper,
        // which is a field of a live `T`: the registration holds a
        // reference to it until `free_callback`, which runs after SRCU
        // readers such as this one.
        let this = unsafe { ArcBorrow::from_raw(T::mmu_notifier_container_of(mn.cast())) };
        T::release(this);
    }

    /// `free_notifier` of the C notifier: the registration's reference goes.
    ///
    /// # Safety
    ///
    /// `mn` is the notifier of an `MmuNotifier<T>` that was put, called once.
    unsafe extern "C" fn free_callback(mn: *mut bindings::mmu_notifier) {
        // SAFETY: As in `release_callback`; this is the reference that
        // `register` gave the registration.
        drop(unsafe { Arc::from_raw(T::mmu_notifier_container_of(mn.cast())) });
    }
}

#[kunit_tests(rsva_mmu_notifier)]
mod tests {
    use super::*;
    use crate::kext::glue;

    /// Counts its `release` calls and its drop.
    struct Watcher {
        notifier: MmuNotifier<Watcher>,
        released: Atomic<u32>,
        put_in_release: bool,
        dropped: &'static Atomic<u32>,
    }

    impl_has_mmu_notifier!(impl HasMmuNotifier for Watcher { self.notifier });

    impl MmuNotifierOps for Watcher {
        fn release(this: ArcBorrow<'_, Self>) {
            this.released.add(1, Relaxed);
            if this.put_in_release {
                this.notifier.put();
            }
        }
    }

    impl Drop for Watcher {
        fn drop(&mut self) {
            self.dropped.add(1, Relaxed);
        }
    }

    fn watcher(put_in_release: bool, dropped: &'static Atomic<u32>) -> Result<Arc<Watcher>> {
        Arc::new(
            Watcher {
                notifier: MmuNotifier::new(),
                released: Atomic::new(0),
                put_in_release,
                dropped,
            },
            GFP_KERNEL,
        )
        .map_err(Into::into)
    }

    /// Waits for the `free_notifier` calls of the notifiers put so far.
    fn synchronize() {
        // SAFETY: No locks held.
        unsafe { bindings::mmu_notifier_synchronize() };
    }

    #[test]
    fn the_mm_going_releases_once_and_the_object_outlives_the_callbacks() -> Result {
        static DROPPED: Atomic<u32> = Atomic::new(0);
        let w = watcher(true, &DROPPED)?;
        let mm = glue::test_mm()?;
        MmuNotifier::register(&w, &mm)?;
        assert_eq!(MmuNotifier::register(&w, &mm), Err(EBUSY));
        // exit_mmap: `release`, which puts the notifier.
        drop(mm);
        assert_eq!(w.released.load(Relaxed), 1);
        // Put already, in `release`.
        assert!(!w.notifier.put());
        // The registration's reference goes in `free_notifier`, after a
        // grace period, then the object.
        drop(w);
        synchronize();
        assert_eq!(DROPPED.load(Relaxed), 1);
        Ok(())
    }

    #[test]
    fn a_put_notifier_hears_nothing_and_lets_the_object_go() -> Result {
        static DROPPED: Atomic<u32> = Atomic::new(0);
        let w = watcher(false, &DROPPED)?;
        let mm = glue::test_mm()?;
        MmuNotifier::register(&w, &mm)?;
        assert!(w.notifier.put());
        assert!(!w.notifier.put());
        synchronize();
        drop(mm);
        assert_eq!(w.released.load(Relaxed), 0);
        assert_eq!(DROPPED.load(Relaxed), 0);
        drop(w);
        assert_eq!(DROPPED.load(Relaxed), 1);
        Ok(())
    }
}
