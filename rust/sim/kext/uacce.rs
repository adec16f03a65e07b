// SPDX-License-Identifier: GPL-2.0

//! Unified/User-space-access-intended Accelerator Framework (uacce): a
//! device whose queues user space opens, here with `UACCE_DEV_SVA` (uacce
//! binds the opener's mm and hands the driver the PASID).
//!
//! C header: [`include/linux/uacce.h`](srctree/include/linux/uacce.h)
//!
//! Written as the kernel crate's `miscdevice.rs` is: a driver implements
//! [`UacceDriver`], and [`Registration`] builds the `struct uacce_ops` for it
//! as a constant, with `unsafe extern "C"` trampolines that turn uacce's
//! pointers into the driver's types.

use core::ptr::NonNull;

use kernel::{
    bindings,
    device::Device,
    error::to_result,
    new_spinlock,
    prelude::*,
    sync::{Arc, ArcBorrow, SpinLock},
};

use crate::glue;

/// `UACCE_DEV_SVA` of `<linux/uacce.h>` (`BIT(0)`, which bindgen cannot
/// evaluate).
const UACCE_DEV_SVA: c_uint = 1 << 0;

/// The head of a wait queue that C owns, while C lets us wake it.
struct WaitHead(NonNull<bindings::wait_queue_head>);

// SAFETY: A wait queue head may be woken from any thread.
unsafe impl Send for WaitHead {}

/// A handle on a queue's wait queue (uacce's `q->wait`, which `poll()`
/// sleeps on), for the driver to wake when the queue has news.
///
/// Holds a reference to a slot shared with the [`Registration`]'s queue,
/// which empties it in `put_queue`, before uacce frees the queue; from then
/// on [`ForeignWaitQueue::wake`] does nothing. Dropping it drops the
/// reference only.
///
/// # Invariants
///
/// While the slot holds a head, the head is initialised and valid.
#[derive(Clone)]
pub(crate) struct ForeignWaitQueue(Arc<SpinLock<Option<WaitHead>>>);

impl ForeignWaitQueue {
    /// A handle on `head`.
    ///
    /// # Safety
    ///
    /// `head` is a wait queue head that is initialised before any handle
    /// wakes it and stays valid until [`ForeignWaitQueue::revoke`] returns.
    unsafe fn new(head: *mut bindings::wait_queue_head) -> Result<Self> {
        let head = NonNull::new(head).ok_or(EINVAL)?;
        // INVARIANT: by the safety requirements, until `revoke()`.
        Ok(Self(Arc::pin_init(
            new_spinlock!(Some(WaitHead(head)), "rsva_sim::ForeignWaitQueue"),
            GFP_KERNEL,
        )?))
    }

    /// Wakes one interruptible waiter (`wake_up_interruptible()`), unless
    /// the queue is gone.
    pub(crate) fn wake(&self) {
        if let Some(head) = &*self.0.lock() {
            // SAFETY: The slot holds the head, so it is valid (type
            // invariant); the lock keeps `revoke()` from emptying it
            // meanwhile.
            unsafe {
                bindings::__wake_up(
                    head.0.as_ptr(),
                    bindings::TASK_INTERRUPTIBLE,
                    1,
                    core::ptr::null_mut(),
                )
            };
        }
    }

    /// Empties the slot: no handle wakes the head after this returns.
    fn revoke(&self) {
        *self.0.lock() = None;
    }

    /// Whether the slot still holds the head.
    #[cfg(CONFIG_KUNIT)]
    fn is_live(&self) -> bool {
        self.0.lock().is_some()
    }
}

/// A uacce driver: the queues of one device.
pub(crate) trait UacceDriver: Send + Sync + Sized + 'static {
    /// A queue: one open file of the device, bound to one PASID.
    type Queue: Send + Sync;

    /// How many more queues the device can take.
    fn available_instances(&self) -> u32;

    /// A queue for the opener, whose mm uacce bound to `pasid`; `wait` is
    /// the queue's wait queue, for [`UacceDriver::is_q_updated`]'s news.
    /// Called in the opener's context.
    fn get_queue(&self, pasid: u32, wait: ForeignWaitQueue) -> Result<Arc<Self::Queue>>;

    /// The queue is put (on close, or when the device is removed): it must
    /// be idle when this returns, because uacce unbinds the PASID next.
    fn put_queue(queue: Arc<Self::Queue>);

    /// `UACCE_CMD_START_Q`, also after a stop.
    fn start_queue(queue: ArcBorrow<'_, Self::Queue>, wait: ForeignWaitQueue) -> Result;

    /// `UACCE_CMD_PUT_Q`, or the first step of a put: the queue stops.
    fn stop_queue(queue: ArcBorrow<'_, Self::Queue>);

    /// Whether `poll()` reports the queue readable.
    fn is_q_updated(queue: ArcBorrow<'_, Self::Queue>) -> bool;

    /// The device's own ioctls, under uacce's mutex of the whole device.
    fn ioctl(queue: ArcBorrow<'_, Self::Queue>, cmd: u32, arg: usize) -> Result<isize>;
}

/// What a uacce queue's `priv` points at.
struct QueueData<Q> {
    queue: Arc<Q>,
    wait: ForeignWaitQueue,
}

/// A registered uacce device whose driver is `T`.
///
/// Holds the uacce device (from `uacce_alloc()`) and the driver, which
/// uacce's `priv` points at. Dropping it removes the device
/// (`uacce_remove()`: uacce stops and puts every open queue and unbinds it
/// before returning, and drops its reference to the device), then drops the
/// driver.
///
/// # Invariants
///
/// - `raw` came from `uacce_alloc()` with [`Registration::OPS`] and is
///   removed once, in drop; its `priv` points at `*_driver`.
/// - Every queue uacce got from [`Registration::OPS`]' `get_queue` has, until
///   its `put_queue`, a `priv` from `KBox::<QueueData<T::Queue>>::into_raw()`.
pub(crate) struct Registration<T: UacceDriver> {
    raw: NonNull<bindings::uacce_device>,
    /// Only held: uacce's `priv` points at it.
    _driver: KBox<T>,
}

// SAFETY: The uacce device may be removed from any thread; the driver is
// `Send` by its bound.
unsafe impl<T: UacceDriver> Send for Registration<T> {}
// SAFETY: Shared references only lend the driver, `Sync` by its bound.
unsafe impl<T: UacceDriver> Sync for Registration<T> {}

impl<T: UacceDriver> Registration<T> {
    const OPS: bindings::uacce_ops = bindings::uacce_ops {
        get_available_instances: Some(Self::available_instances),
        get_queue: Some(Self::get_queue),
        put_queue: Some(Self::put_queue),
        stop_queue: Some(Self::stop_queue),
        ioctl: Some(Self::ioctl),
        is_q_updated: Some(Self::is_q_updated),
        start_queue: Some(Self::start_queue),
        ..pin_init::zeroed()
    };

    const fn ops() -> &'static bindings::uacce_ops {
        &Self::OPS
    }

    /// Creates and registers the SVA uacce device `/dev/<name>-N` of
    /// `parent`, with the given `algs` and `api_ver` attributes, served by
    /// `driver`.
    pub(crate) fn register(
        parent: &Device,
        name: &CStr,
        algs: &'static CStr,
        api_ver: &'static CStr,
        driver: T,
    ) -> Result<Self> {
        let driver = KBox::new(driver, GFP_KERNEL)?;
        let mut iface = bindings::uacce_interface {
            flags: UACCE_DEV_SVA,
            ops: Self::ops(),
            ..pin_init::zeroed()
        };
        let name = name.to_bytes();
        // Room for the NUL.
        if name.len() >= iface.name.len() {
            return Err(EINVAL);
        }
        for (d, s) in iface.name.iter_mut().zip(name) {
            *d = *s as c_char;
        }
        let parent = core::ptr::from_ref(parent).cast_mut().cast();
        // SAFETY: `parent` is a valid device; `iface` is read during the
        // call only (the ops table is a constant).
        let raw = glue::from_err_ptr(unsafe { bindings::uacce_alloc(parent, &mut iface) })?;
        let raw = NonNull::new(raw).ok_or(ENOMEM)?;
        // SAFETY: `raw` was just allocated and is not registered: nothing
        // else reads it. `driver` is boxed, so the address lasts as long as
        // `this`, which removes the device before dropping it. The strings
        // are static.
        unsafe {
            let u = raw.as_ptr();
            (*u).priv_ = core::ptr::from_ref::<T>(&driver).cast_mut().cast();
            (*u).algs = algs.as_char_ptr();
            (*u).api_ver = api_ver.as_char_ptr();
        }
        // INVARIANT: allocated with `OPS`, `priv` set to the driver; on
        // error `this` is dropped, which removes it.
        let this = Self {
            raw,
            _driver: driver,
        };
        // SAFETY: `raw` is allocated and set up, not registered yet.
        to_result(unsafe { bindings::uacce_register(this.raw.as_ptr()) })?;
        Ok(this)
    }

    /// The driver of a uacce device of ours.
    ///
    /// # Safety
    ///
    /// `uacce` is the device of a live `Registration<T>`.
    unsafe fn driver_of<'a>(uacce: *mut bindings::uacce_device) -> &'a T {
        // SAFETY: By the safety requirements, `priv` points at the
        // registration's driver (type invariant).
        unsafe { &*(*uacce).priv_.cast::<T>() }
    }

    /// The data of a queue set up by `get_queue`.
    ///
    /// # Safety
    ///
    /// `q` is a queue of a device of ours, set up by `get_queue` and not yet
    /// put.
    unsafe fn queue_of<'a>(q: *mut bindings::uacce_queue) -> &'a QueueData<T::Queue> {
        // SAFETY: By the safety requirements and the type invariant, `priv`
        // is a live `QueueData` box.
        unsafe { &*(*q).priv_.cast::<QueueData<T::Queue>>() }
    }

    /// # Safety
    ///
    /// Called by uacce for a device of ours.
    unsafe extern "C" fn available_instances(uacce: *mut bindings::uacce_device) -> c_int {
        // SAFETY: uacce calls this for a device of ours, registered.
        let driver = unsafe { Self::driver_of(uacce) };
        c_int::try_from(driver.available_instances()).unwrap_or(c_int::MAX)
    }

    /// # Safety
    ///
    /// Called by uacce's open, under its mutex, for a device of ours, with
    /// a queue it allocated (`q->wait` is initialised right after this
    /// returns, before the file is installed) and frees only after
    /// `put_queue` (or at once, if this fails).
    unsafe extern "C" fn get_queue(
        uacce: *mut bindings::uacce_device,
        arg: c_ulong,
        q: *mut bindings::uacce_queue,
    ) -> c_int {
        // SAFETY: uacce calls this for a device of ours, registered.
        let driver = unsafe { Self::driver_of(uacce) };
        let Ok(pasid) = u32::try_from(arg) else {
            return EINVAL.to_errno();
        };
        // SAFETY: `q->wait` is initialised before the file can be used,
        // so before the queue has news to wake it with; it stays valid
        // until `put_queue`, which revokes the handle, or, if this fails,
        // until uacce frees `q` below, after the handle was revoked here.
        let wait = match unsafe { ForeignWaitQueue::new(&raw mut (*q).wait) } {
            Ok(w) => w,
            Err(e) => return e.to_errno(),
        };
        let data = driver.get_queue(pasid, wait.clone()).and_then(|queue| {
            let wait = wait.clone();
            Ok(KBox::new(QueueData { queue, wait }, GFP_KERNEL)?)
        });
        match data {
            Ok(data) => {
                // SAFETY: `q` is valid; its `priv` is ours.
                // INVARIANT: set up here, taken back in `put_queue`.
                unsafe { (*q).priv_ = KBox::into_raw(data).cast() };
                0
            }
            Err(e) => {
                wait.revoke();
                e.to_errno()
            }
        }
    }

    /// # Safety
    ///
    /// Called by uacce, under the queue's mutex, for a live queue of ours.
    unsafe extern "C" fn is_q_updated(q: *mut bindings::uacce_queue) -> c_int {
        // SAFETY: uacce asks only about live queues of ours.
        let data = unsafe { Self::queue_of(q) };
        c_int::from(T::is_q_updated(data.queue.as_arc_borrow()))
    }

    /// # Safety
    ///
    /// Called by uacce, under the device's mutex, for a live queue of ours.
    unsafe extern "C" fn start_queue(q: *mut bindings::uacce_queue) -> c_int {
        // SAFETY: uacce starts only live queues of ours.
        let data = unsafe { Self::queue_of(q) };
        match T::start_queue(data.queue.as_arc_borrow(), data.wait.clone()) {
            Ok(()) => 0,
            Err(e) => e.to_errno(),
        }
    }

    /// # Safety
    ///
    /// Called by uacce, under the device's mutex, for a live queue of ours.
    unsafe extern "C" fn stop_queue(q: *mut bindings::uacce_queue) {
        // SAFETY: uacce stops only live queues of ours.
        let data = unsafe { Self::queue_of(q) };
        T::stop_queue(data.queue.as_arc_borrow());
    }

    /// # Safety
    ///
    /// Called by uacce, under the device's mutex, once per queue of ours,
    /// which it frees afterwards.
    unsafe extern "C" fn put_queue(q: *mut bindings::uacce_queue) {
        // SAFETY: The box stored by `get_queue` (type invariant), taken back
        // once: uacce puts a queue once.
        let data = unsafe { KBox::from_raw((*q).priv_.cast::<QueueData<T::Queue>>()) };
        // SAFETY: `q` is valid; its `priv` is ours.
        unsafe { (*q).priv_ = core::ptr::null_mut() };
        let QueueData { queue, wait } = KBox::into_inner(data);
        T::put_queue(queue);
        // uacce frees `q`, and `q->wait` with it, after this returns.
        wait.revoke();
    }

    /// # Safety
    ///
    /// Called by uacce, under the device's mutex, for a live queue of ours.
    unsafe extern "C" fn ioctl(q: *mut bindings::uacce_queue, cmd: c_uint, arg: c_ulong) -> c_long {
        // SAFETY: uacce calls this for live queues of ours only.
        let data = unsafe { Self::queue_of(q) };
        match T::ioctl(data.queue.as_arc_borrow(), cmd, arg) {
            Ok(v) => v as c_long,
            Err(e) => e.to_errno() as c_long,
        }
    }
}

impl<T: UacceDriver> Drop for Registration<T> {
    fn drop(&mut self) {
        // SAFETY: Allocated by `uacce_alloc()` and removed once, here (type
        // invariant). uacce stops and puts every open queue and unbinds it
        // before returning; no callback reaches the driver after.
        unsafe { bindings::uacce_remove(self.raw.as_ptr()) };
    }
}

#[kunit_tests(rsva_sim_uacce)]
mod tests {
    use super::*;
    use kernel::types::Opaque;

    /// A wait queue head of our own, initialised.
    fn wait_head() -> Result<Pin<KBox<Opaque<bindings::wait_queue_head>>>> {
        let head = KBox::pin(Opaque::<bindings::wait_queue_head>::uninit(), GFP_KERNEL)?;
        let key = kernel::static_lock_class!();
        // SAFETY: `head` is valid for writes and pinned; the name and the
        // key are static.
        unsafe {
            bindings::__init_waitqueue_head(
                head.get(),
                c"rsva_sim_test".as_char_ptr(),
                key.as_ptr(),
            )
        };
        Ok(head)
    }

    /// A handle wakes its head until it is revoked, and every clone of it
    /// sees the revocation.
    #[test]
    fn revoked_handle_stops_waking() -> Result {
        let head = wait_head()?;
        // SAFETY: `head` is initialised and outlives the handles (revoked
        // below, before `head` drops).
        let wq = unsafe { ForeignWaitQueue::new(head.get()) }?;
        let other = wq.clone();
        other.wake();
        assert!(wq.is_live());
        wq.revoke();
        assert!(!other.is_live());
        // A no-op now.
        other.wake();
        // SAFETY: Returns an error for a null head, before any use.
        assert!(unsafe { ForeignWaitQueue::new(core::ptr::null_mut()) }.is_err());
        Ok(())
    }
}
