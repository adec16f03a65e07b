// SPDX-License-Identifier: GPL-2.0

//! A mutex in a `static` that initialises itself on first use.
//!
//! The kernel crate's `global_lock!` (`rust/kernel/sync/lock/global.rs`)
//! makes a `static` lock whose C state must be initialised by an `unsafe`
//! call (`GlobalLock::init()`) once, before any other use: its user promises
//! both. [`GlobalMutex<T>`] keeps that promise itself: the first
//! [`GlobalMutex::lock`] initialises the mutex (one thread does, the others
//! wait for it), so the `static` needs no initialisation call and no
//! `unsafe` where it is declared or used.
//!
//! As any `static`, it is never dropped: a module empties what it holds on
//! exit (`core::mem::take()` under the lock).

use core::{cell::UnsafeCell, mem::MaybeUninit};

use kernel::{
    prelude::*,
    processor::cpu_relax,
    sync::{
        atomic::{Acquire, Atomic, Relaxed, Release},
        LockClassKey, Mutex, MutexGuard,
    },
};

/// The mutex is not initialised and no thread initialises it.
const UNINIT: u32 = 0;
/// One thread initialises the mutex.
const BUSY: u32 = 1;
/// The mutex is initialised.
const READY: u32 = 2;

/// A [`Mutex<T>`] for a `static`, initialised by its first [`lock`], with
/// the value `make()` returns, named `name` for lockdep in the class `key`.
///
/// It holds nothing but the mutex (and, until the first lock, how to make
/// it); as a `static` it is never dropped.
///
/// # Examples
///
/// ```ignore
/// static TABLE: GlobalMutex<KVec<u32>> =
///     GlobalMutex::new(KVec::new, c"table", kernel::static_lock_class!());
///
/// TABLE.lock().push(1, GFP_KERNEL)?;
/// ```
///
/// # Invariants
///
/// `mutex` is initialised exactly when `state` is [`READY`]; only the thread
/// that moved `state` from [`UNINIT`] to [`BUSY`] writes it, once, and it is
/// never moved or dropped after (it is reached only through `&'static self`).
///
/// [`lock`]: GlobalMutex::lock
pub(crate) struct GlobalMutex<T> {
    state: Atomic<u32>,
    mutex: UnsafeCell<MaybeUninit<Mutex<T>>>,
    make: fn() -> T,
    name: &'static CStr,
    key: Pin<&'static LockClassKey>,
}

// SAFETY: Shared access reaches the initialised mutex only, as a `&Mutex<T>`,
// which is `Sync` when `T` is `Send`; the one write of it is ordered before
// every read by `state` (released after the write, acquired before a read).
unsafe impl<T: Send> Sync for GlobalMutex<T> {}

impl<T> GlobalMutex<T> {
    /// A mutex that will hold `make()`, named `name` for lockdep in the
    /// class `key` (`kernel::static_lock_class!()`, one per `static`).
    pub(crate) const fn new(
        make: fn() -> T,
        name: &'static CStr,
        key: Pin<&'static LockClassKey>,
    ) -> Self {
        // INVARIANT: not initialised, and `state` says so.
        Self {
            state: Atomic::new(UNINIT),
            mutex: UnsafeCell::new(MaybeUninit::uninit()),
            make,
            name,
            key,
        }
    }

    /// Locks the mutex (sleeps), initialising it first if nothing locked
    /// it before.
    pub(crate) fn lock(&'static self) -> MutexGuard<'static, T> {
        self.get().lock()
    }

    /// The mutex, initialised.
    fn get(&'static self) -> &'static Mutex<T> {
        if self.state.load(Acquire) != READY {
            self.init_slow();
        }
        // SAFETY: `state` was read `READY` with acquire ordering (here or in
        // `init_slow`): the mutex is initialised and nothing writes it any
        // more (type invariant).
        unsafe { (*self.mutex.get()).assume_init_ref() }
    }

    /// Initialises the mutex, or waits for the thread that does; returns
    /// once it is [`READY`].
    #[cold]
    fn init_slow(&'static self) {
        if self.state.cmpxchg(UNINIT, BUSY, Relaxed).is_ok() {
            let init = Mutex::new((self.make)(), self.name, self.key);
            let slot = self.mutex.get().cast::<Mutex<T>>();
            // SAFETY: `slot` is valid for writes and pinned: it is part of
            // `*self`, which is borrowed for `'static` and so never moves.
            // Only this thread writes it (it moved `state` to `BUSY`), and
            // nothing reads it before `state` is `READY`.
            match unsafe { init.__init(slot) } {
                Ok(()) => {}
                Err(never) => match never {},
            }
            // INVARIANT: initialised just above; published with `READY`.
            self.state.store(READY, Release);
            return;
        }
        // Another thread initialises it: a few instructions, never sleeping.
        while self.state.load(Acquire) != READY {
            cpu_relax();
        }
    }
}

#[kunit_tests(rsva_global_mutex)]
mod tests {
    use super::*;

    fn three() -> u32 {
        3
    }

    static COUNTER: GlobalMutex<u32> =
        GlobalMutex::new(three, c"rsva_kunit_counter", kernel::static_lock_class!());

    #[test]
    fn first_lock_initialises_with_its_value() {
        // The suite may run more than once per load: read, then count on.
        let first = *COUNTER.lock();
        assert!(first >= 3);
        {
            let mut g = COUNTER.lock();
            *g += 1;
        }
        assert_eq!(*COUNTER.lock(), first + 1);
        assert_eq!(COUNTER.state.load(Relaxed), READY);
    }
}
