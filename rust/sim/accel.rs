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

#![forbid(unsafe_code)]

use kernel::{
    fs::File,
    ioctl::_IOC_SIZE,
    prelude::*,
    sync::{Arc, ArcBorrow, Mutex},
    uaccess::{UserPtr, UserSlice},
};

use crate::{
    device::SimDevice,
    iommu::SimIommu,
    kext::{
        device::bus::BusDevice,
        miscdevice::{MiscFile, MiscRegistration},
        mm,
        uacce::{self, ForeignWaitQueue, UacceDriver},
        SvaBond,
    },
    queue::{Queue, QUEUE_DEPTH},
    uapi::{self, Desc},
};

/// A device of the platform's bus, modelled by a [`SimDevice`].
pub(crate) type SimBusDevice = BusDevice<SimDevice, SimIommu>;

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
            queue.submit(mm::current_mm_addr(), desc)?;
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
    bond: Mutex<Option<SvaBond<SimDevice, SimIommu>>>,
}

impl MiscFile for AccelFile {
    /// The accelerator's device.
    type Data = Arc<SimBusDevice>;

    fn open(_file: &File, dev: &Arc<SimBusDevice>) -> Result<Pin<KBox<Self>>> {
        let mm = mm::current_mm().ok_or(ENODEV)?;
        let bond = SvaBond::bind(dev, &mm)?;
        let queue = Queue::new(dev.data().clone(), bond.pasid(), mm::mm_addr(&mm))?;
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

/// The uacce side of an accelerator: queues for the PASIDs uacce binds.
pub(crate) struct AccelUacce {
    dev: Arc<SimDevice>,
}

impl UacceDriver for AccelUacce {
    type Queue = Queue;

    fn available_instances(&self) -> u32 {
        QUEUE_DEPTH as u32
    }

    /// A queue for the PASID uacce bound.
    fn get_queue(&self, pasid: u32, wait: ForeignWaitQueue) -> Result<Arc<Queue>> {
        // uacce calls this from its open, after binding the opener's mm.
        let mm = mm::current_mm_addr().ok_or(ENODEV)?;
        let queue = Queue::new(self.dev.clone(), pasid, mm)?;
        queue.set_poll_waitqueue(wait);
        Ok(queue)
    }

    /// Stops the queue and drops it: uacce unbinds after this returns, so
    /// the queue must be idle by then.
    fn put_queue(queue: Arc<Queue>) {
        queue.stop();
    }

    /// `START_Q`, also after a `PUT_Q` stopped the queue, which then takes
    /// work again.
    fn start_queue(queue: ArcBorrow<'_, Queue>, wait: ForeignWaitQueue) -> Result {
        queue.restart(wait);
        Ok(())
    }

    fn stop_queue(queue: ArcBorrow<'_, Queue>) {
        queue.stop();
    }

    /// Asked by `poll()`: whether the queue is idle.
    fn is_q_updated(queue: ArcBorrow<'_, Queue>) -> bool {
        queue.idle()
    }

    fn ioctl(queue: ArcBorrow<'_, Queue>, cmd: u32, arg: usize) -> Result<isize> {
        ioctl(&queue.into(), cmd, arg, Wait::Poll)
    }
}

/// One accelerator and its registrations. Dropping it removes the uacce
/// device (stopping, putting and unbinding its open queues), then the misc
/// device.
#[pin_data]
pub(crate) struct Accel {
    uacce: uacce::Registration<AccelUacce>,
    #[pin]
    misc: MiscRegistration<AccelFile>,
}

impl Accel {
    /// Creates the accelerator of `dev`: its misc device and its uacce
    /// device.
    pub(crate) fn new(dev: Arc<SimBusDevice>) -> Result<Pin<KBox<Self>>> {
        let name = *NAMES.get(dev.data().id as usize).ok_or(EINVAL)?;
        let uacce = uacce::Registration::register(
            dev.device(),
            c"rsva_accel",
            c"memcpy fill compare crc32",
            c"rsva_sim_v1",
            AccelUacce {
                dev: dev.data().clone(),
            },
        )?;
        KBox::pin_init(
            try_pin_init!(Self {
                uacce,
                misc <- MiscRegistration::register(name, dev),
            }),
            GFP_KERNEL,
        )
    }
}
