// SPDX-License-Identifier: GPL-2.0

//! A simulated accelerator: one device's user interfaces.
//!
//! - `/dev/rsva_accelN` (misc device): open binds the opener's mm with
//!   `iommu_sva_bind_device()`, so whichever implementation serves that API
//!   is exercised; ioctls submit and wait for descriptors and read the PASID
//!   and counters; close stops the queue, drains it, then unbinds.
//! - `/dev/rsva_accel-N` (uacce, `UACCE_DEV_SVA`): uacce binds on open
//!   and gives us the PASID in `get_queue`; the same ioctls reach us through
//!   uacce's ioctl, except that WAIT does not sleep there (uacce holds the
//!   device's mutex around every ioctl, so it would stall every other user
//!   of the device): it answers `EAGAIN` until the queue is idle, which
//!   `poll()` reports (`is_q_updated`); `PUT_Q` stops the queue and
//!   `START_Q` starts it again; uacce stops and puts the queue, then
//!   unbinds, on close.

use kernel::{
    bindings,
    error::to_result,
    fs::File,
    ioctl::_IOC_SIZE,
    miscdevice::{MiscDevice, MiscDeviceOptions, MiscDeviceRegistration},
    prelude::*,
    sync::{Arc, ArcBorrow, Mutex},
    types::ForeignOwnable,
    uaccess::{UserPtr, UserSlice},
};

use crate::{
    device::SimDevice,
    glue::{self, CStatic},
    kext::{ForeignWaitQueue, SvaBond},
    queue::Queue,
    uapi::{self, Desc},
};

/// The most accelerators the module creates (one name each).
pub(crate) const MAX_ACCELS: usize = 8;

const NAMES: [&CStr; MAX_ACCELS] = [
    c"rsva_accel0",
    c"rsva_accel1",
    c"rsva_accel2",
    c"rsva_accel3",
    c"rsva_accel4",
    c"rsva_accel5",
    c"rsva_accel6",
    c"rsva_accel7",
];

/// `UACCE_DEV_SVA` of `<linux/uacce.h>` (`BIT(0)`, which bindgen cannot
/// evaluate).
const UACCE_DEV_SVA: c_uint = 1 << 0;

/// How `RSVA_SIM_IOC_WAIT` waits.
#[derive(Clone, Copy, PartialEq)]
enum Wait {
    /// Sleeps until the queue is idle (the misc device).
    Sleep,
    /// `EAGAIN` while it is not; `poll()` tells when (uacce, which runs
    /// ioctls under a mutex of the whole device).
    Poll,
}

/// Runs one ioctl of the uapi on `queue`.
fn ioctl(queue: &Arc<Queue>, cmd: u32, arg: usize, wait: Wait) -> Result<isize> {
    let user = UserSlice::new(UserPtr::from_addr(arg), _IOC_SIZE(cmd));
    match cmd {
        uapi::IOC_SUBMIT => {
            let desc: Desc = user.reader().read()?;
            queue.submit(glue::current_mm().map(|mm| mm as usize), desc)?;
        }
        uapi::IOC_WAIT if wait == Wait::Sleep => queue.wait()?,
        uapi::IOC_WAIT => queue.try_wait()?,
        uapi::IOC_GET_PASID => user.writer().write(&queue.pasid)?,
        uapi::IOC_GET_STATS => user.writer().write(&queue.stats())?,
        _ => return Err(ENOTTY),
    }
    Ok(0)
}

/// An open `/dev/rsva_accelN`: its queue and the bond it made.
#[pin_data]
pub(crate) struct AccelFile {
    queue: Arc<Queue>,
    /// Taken out and dropped (unbound) on release, after the queue stopped.
    #[pin]
    bond: Mutex<Option<SvaBond>>,
}

#[vtable]
impl MiscDevice for AccelFile {
    type Ptr = Pin<KBox<Self>>;

    fn open(_file: &File, misc: &MiscDeviceRegistration<Self>) -> Result<Pin<KBox<Self>>> {
        let accel = Accel::from_misc(misc);
        let mm = glue::current_mm().ok_or(ENODEV)?;
        // SAFETY: The device lives as long as the accelerator, bound to its
        // driver (the accelerator's) until module exit, after every file is
        // closed; the caller's mm has a user reference for the duration of
        // open.
        let bond = unsafe { SvaBond::bind(accel.dev.raw(), mm) }?;
        let queue = Queue::new(accel.dev.clone(), bond.pasid(), mm as usize)?;
        KBox::pin_init(
            try_pin_init!(Self {
                queue,
                bond <- kernel::new_mutex!(Some(bond)),
            }),
            GFP_KERNEL,
        )
    }

    fn release(this: Pin<KBox<Self>>, _file: &File) {
        this.queue.stop();
        let bond = this.bond.lock().take();
        drop(bond);
    }

    fn ioctl(this: Pin<&Self>, _file: &File, cmd: u32, arg: usize) -> Result<isize> {
        ioctl(&this.queue, cmd, arg, Wait::Sleep)
    }
}

/// One accelerator and its registrations.
///
/// # Invariants
///
/// `uacce` was returned by `uacce_alloc()` and is removed exactly once, in
/// drop; its `priv` points at this (pinned) object.
#[pin_data(PinnedDrop)]
pub(crate) struct Accel {
    pub(crate) dev: Arc<SimDevice>,
    #[pin]
    misc: MiscDeviceRegistration<AccelFile>,
    uacce: *mut bindings::uacce_device,
}

// SAFETY: The uacce pointer is only passed to uacce, which locks itself.
unsafe impl Send for Accel {}
// SAFETY: Shared references only pass the uacce pointer to uacce, which
// locks itself.
unsafe impl Sync for Accel {}

static UACCE_OPS: CStatic<bindings::uacce_ops> = CStatic::new(bindings::uacce_ops {
    get_available_instances: Some(uacce_available_instances),
    get_queue: Some(uacce_get_queue),
    put_queue: Some(uacce_put_queue),
    stop_queue: Some(uacce_stop_queue),
    ioctl: Some(uacce_ioctl),
    is_q_updated: Some(uacce_is_q_updated),
    start_queue: Some(uacce_start_queue),
    ..pin_init::zeroed()
});

impl Accel {
    /// Creates the accelerator of `dev`: its misc device and its uacce
    /// device.
    pub(crate) fn new(dev: Arc<SimDevice>) -> Result<Pin<KBox<Self>>> {
        let name = *NAMES.get(dev.id as usize).ok_or(EINVAL)?;
        let mut iface = bindings::uacce_interface {
            flags: UACCE_DEV_SVA,
            ops: UACCE_OPS.get(),
            ..pin_init::zeroed()
        };
        for (d, s) in iface.name.iter_mut().zip(c"rsva_accel".to_bytes()) {
            *d = *s as c_char;
        }
        // SAFETY: The device is valid; `iface` is read during the call only
        // (the ops table is static).
        let uacce = glue::from_err_ptr(unsafe { bindings::uacce_alloc(dev.raw(), &mut iface) })?;
        let accel = KBox::pin_init(
            try_pin_init!(Self {
                dev,
                misc <- MiscDeviceRegistration::register(MiscDeviceOptions { name }),
                uacce,
            }),
            GFP_KERNEL,
        );
        let accel = match accel {
            Ok(a) => a,
            Err(e) => {
                // SAFETY: Allocated above, not registered, removed once.
                unsafe { bindings::uacce_remove(uacce) };
                return Err(e);
            }
        };
        // SAFETY: `uacce` is valid; `accel` is pinned and outlives it (it
        // removes it in drop). The strings are static.
        unsafe {
            (*uacce).priv_ = core::ptr::from_ref::<Self>(&accel).cast_mut().cast();
            (*uacce).algs = c"memcpy fill compare crc32".as_char_ptr();
            (*uacce).api_ver = c"rsva_sim_v1".as_char_ptr();
        }
        // SAFETY: `uacce` is valid and set up.
        to_result(unsafe { bindings::uacce_register(uacce) })?;
        Ok(accel)
    }

    fn from_misc(misc: &MiscDeviceRegistration<AccelFile>) -> &Self {
        let ptr = misc as *const MiscDeviceRegistration<AccelFile>;
        // SAFETY: Every registration of `AccelFile` is the `misc` field of an
        // `Accel`, which outlives it.
        unsafe { &*kernel::container_of!(ptr.cast_mut(), Accel, misc) }
    }

    /// # Safety
    ///
    /// `uacce` must be the uacce device of a live `Accel`.
    unsafe fn from_uacce<'a>(uacce: *mut bindings::uacce_device) -> &'a Self {
        // SAFETY: By the safety requirements, `priv` points at the `Accel`.
        unsafe { &*(*uacce).priv_.cast::<Self>() }
    }
}

#[pinned_drop]
impl PinnedDrop for Accel {
    fn drop(self: Pin<&mut Self>) {
        // SAFETY: By the type invariant. uacce stops and puts every open
        // queue and unbinds it before returning.
        unsafe { bindings::uacce_remove(self.uacce) };
    }
}

/// uacce's `get_available_instances`.
///
/// # Safety
///
/// Called by uacce for a device of ours.
unsafe extern "C" fn uacce_available_instances(_uacce: *mut bindings::uacce_device) -> c_int {
    crate::queue::QUEUE_DEPTH as c_int
}

/// uacce's `get_queue`: a queue for the PASID uacce bound.
///
/// # Safety
///
/// Called by uacce with a device of ours and a valid queue.
unsafe extern "C" fn uacce_get_queue(
    uacce: *mut bindings::uacce_device,
    arg: c_ulong,
    q: *mut bindings::uacce_queue,
) -> c_int {
    // SAFETY: uacce calls this for a device of ours.
    let accel = unsafe { Accel::from_uacce(uacce) };
    let Ok(pasid) = u32::try_from(arg) else {
        return EINVAL.to_errno();
    };
    // uacce calls this from its open, after binding the opener's mm.
    let Some(mm) = glue::current_mm() else {
        return ENODEV.to_errno();
    };
    match Queue::new(accel.dev.clone(), pasid, mm as usize) {
        Ok(queue) => {
            // SAFETY: `q->wait` is initialised by uacce before `get_queue`
            // and lives with `q`, which uacce frees only after `put_queue`,
            // which stops the queue, dropping the reference.
            if let Some(wq) = unsafe { ForeignWaitQueue::new(&raw mut (*q).wait) } {
                queue.set_poll_waitqueue(wq);
            }
            // SAFETY: `q` is valid; the queue's reference is taken back in
            // `put_queue`.
            unsafe { (*q).priv_ = queue.into_foreign().cast() };
            0
        }
        Err(e) => e.to_errno(),
    }
}

/// # Safety
///
/// `q` must be a uacce queue set up by `uacce_get_queue` and not yet put.
unsafe fn uacce_queue<'a>(q: *mut bindings::uacce_queue) -> ArcBorrow<'a, Queue> {
    // SAFETY: `priv` holds the reference stored by `uacce_get_queue`.
    unsafe { Arc::<Queue>::borrow((*q).priv_.cast()) }
}

/// uacce's `is_q_updated`, asked by `poll()`: whether the queue is idle.
///
/// # Safety
///
/// `q` must be a live queue set up by `uacce_get_queue`.
unsafe extern "C" fn uacce_is_q_updated(q: *mut bindings::uacce_queue) -> c_int {
    // SAFETY: uacce asks only about live queues of ours, under `q->mutex`.
    c_int::from(unsafe { uacce_queue(q) }.idle())
}

/// uacce's `start_queue`: `START_Q`, also after a `PUT_Q` stopped the
/// queue, which then takes work again.
///
/// # Safety
///
/// `q` must be a live queue set up by `uacce_get_queue`.
unsafe extern "C" fn uacce_start_queue(q: *mut bindings::uacce_queue) -> c_int {
    // SAFETY: uacce starts only live queues of ours; `q->wait` lives with
    // `q`, and `put_queue` stops the queue, dropping the reference, before
    // uacce frees `q`.
    if let Some(wq) = unsafe { ForeignWaitQueue::new(&raw mut (*q).wait) } {
        // SAFETY: uacce starts only live queues of ours, set up by
        // `uacce_get_queue`.
        unsafe { uacce_queue(q) }.restart(wq);
    }
    0
}

/// uacce's `stop_queue`.
///
/// # Safety
///
/// `q` must be a queue set up by `uacce_get_queue` and not yet put.
unsafe extern "C" fn uacce_stop_queue(q: *mut bindings::uacce_queue) {
    // SAFETY: uacce stops only queues it got from us.
    unsafe { uacce_queue(q) }.stop();
}

/// uacce's `put_queue`: stops the queue and drops it.
///
/// # Safety
///
/// `q` must be a queue set up by `uacce_get_queue`, put once.
unsafe extern "C" fn uacce_put_queue(q: *mut bindings::uacce_queue) {
    // SAFETY: The reference stored by `uacce_get_queue`, taken back once.
    let queue = unsafe { Arc::<Queue>::from_foreign((*q).priv_.cast()) };
    // uacce unbinds after this returns: the queue must be idle by then.
    queue.stop();
    // SAFETY: `q` is valid.
    unsafe { (*q).priv_ = core::ptr::null_mut() };
}

/// uacce's `ioctl`: the ioctls of the uapi.
///
/// # Safety
///
/// `q` must be a live queue set up by `uacce_get_queue`.
unsafe extern "C" fn uacce_ioctl(
    q: *mut bindings::uacce_queue,
    cmd: c_uint,
    arg: c_ulong,
) -> c_long {
    // SAFETY: uacce calls this for a live queue of ours, under its mutex.
    let queue: Arc<Queue> = unsafe { uacce_queue(q) }.into();
    match ioctl(&queue, cmd, arg, Wait::Poll) {
        Ok(v) => v as c_long,
        Err(e) => e.to_errno() as c_long,
    }
}
