// SPDX-License-Identifier: GPL-2.0

//! I/O page faults on the IOMMU driver's side: the IOMMU's page fault
//! queue ([`IopfQueue`], `struct iopf_queue`), whose workqueue runs the
//! fault handlers of the domains attached to the devices in it, and how a
//! device of the IOMMU is put in it and reports page requests through it.
//!
//! The core asks three things of the driver. A device is added to a queue
//! (`iopf_queue_add_device()`) only while the core has it probed, and
//! removed (`iopf_queue_remove_device()`) before its `release_device`
//! returns: both use the device's `dev_iommu`, which the core frees right
//! after. A page request is reported (`iommu_report_device_fault()`) and the
//! device's fault handlers flushed (`iopf_queue_flush_dev()`) only while the
//! device is in a queue. The types carry them:
//!
//! - the IOMMU's [`Registration`](super::driver::Registration) hands the
//!   driver an [`IopfPort`] for each device the core probes, and closes it
//!   when the core releases the device ([`IopfPort::release`], which takes
//!   the device out of the queue if it is still in, as the real drivers'
//!   `release_device` do);
//! - [`IopfPort::add`] puts the device in the queue and returns its one
//!   [`IopfMember`], through which alone page requests are reported
//!   ([`IopfMember::report`], from a typed [`PageRequest`]) and the
//!   device's handlers flushed ([`IopfMember::flush`]); dropping it takes
//!   the device out of the queue;
//! - a port, so every member, holds the queue, which is freed with the last
//!   of them, with no device left in it.
//!
//! When to add a device, and that nothing of a PASID is reported after its
//! drain, are the driver's logic (rsva_sim's `device.rs`).
//!
//! C header: [`include/linux/iommu.h`](srctree/include/linux/iommu.h)

use core::ptr::NonNull;

use kernel::{
    bindings,
    device::Device,
    error::to_result,
    new_mutex,
    prelude::*,
    sync::{aref::ARef, Arc, Mutex},
};

/// An I/O page fault queue (`struct iopf_queue`): its workqueue runs the
/// fault handlers of the domains attached to the devices in it. Shared by
/// the ports of the devices that may join it ([`IopfPort`]); freed when the
/// last reference goes, when no device is in it any more.
///
/// # Invariants
///
/// `0` came from `iopf_queue_alloc()` and is freed on drop.
pub(crate) struct IopfQueue(NonNull<bindings::iopf_queue>);

// SAFETY: The queue may be used and freed from any thread; the core
// serialises with its own locks.
unsafe impl Send for IopfQueue {}
// SAFETY: Shared references only hand out the queue's address, to the
// core's functions, which serialise with the queue's lock.
unsafe impl Sync for IopfQueue {}

impl IopfQueue {
    /// Allocates a queue, whose workqueue is named `name`.
    pub(crate) fn new(name: &'static CStr) -> Result<Arc<Self>> {
        // SAFETY: `name` is a static C string, which the queue may keep.
        let q = unsafe { bindings::iopf_queue_alloc(name.as_char_ptr()) };
        // INVARIANT: allocated just above.
        let q = NonNull::new(q).map(Self).ok_or(ENOMEM)?;
        Ok(Arc::new(q, GFP_KERNEL)?)
    }

    fn as_ptr(&self) -> *mut bindings::iopf_queue {
        self.0.as_ptr()
    }
}

impl Drop for IopfQueue {
    fn drop(&mut self) {
        // SAFETY: From `iopf_queue_alloc()` (type invariant), freed once,
        // here. No device is in the queue: a device is in it only while
        // the member of a port holding this queue lives (`PortInner`'s
        // invariant), and this is the queue's last reference.
        unsafe { bindings::iopf_queue_free(self.0.as_ptr()) };
    }
}

/// A page request of a device for one page, with a PASID
/// (`struct iommu_fault_page_request`), as part of a group: the core hands
/// the group to the fault handler with its last page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PageRequest {
    /// The PASID of the access.
    pub(crate) pasid: u32,
    /// The group's index, which the response names.
    pub(crate) grpid: u32,
    /// An address in the page requested.
    pub(crate) addr: u64,
    /// The access writes: the page must be writable (it must always be
    /// readable).
    pub(crate) write: bool,
    /// The last page of the group.
    pub(crate) last: bool,
}

impl PageRequest {
    /// The fault event the core takes (`struct iopf_fault`), which it
    /// copies.
    fn event(&self) -> bindings::iopf_fault {
        let mut perm = bindings::IOMMU_FAULT_PERM_READ;
        if self.write {
            perm |= bindings::IOMMU_FAULT_PERM_WRITE;
        }
        let mut flags = bindings::IOMMU_FAULT_PAGE_REQUEST_PASID_VALID;
        if self.last {
            flags |= bindings::IOMMU_FAULT_PAGE_REQUEST_LAST_PAGE;
        }
        let mut evt: bindings::iopf_fault = pin_init::zeroed();
        evt.fault.type_ = bindings::iommu_fault_type_IOMMU_FAULT_PAGE_REQ;
        evt.fault.prm = bindings::iommu_fault_page_request {
            flags,
            pasid: self.pasid,
            grpid: self.grpid,
            perm,
            addr: self.addr,
            private_data: [0; 2],
        };
        evt
    }
}

/// Where a device stands with its port's queue.
enum State {
    /// Not in the queue.
    Out(ARef<Device>),
    /// In the queue; its one [`IopfMember`] lives.
    In(ARef<Device>),
    /// The core released the device: not in the queue, and not again
    /// through this port. The device's reference went with the release, so
    /// that a port kept in the device's own data does not keep the device.
    Released,
}

/// The `struct device` of `dev`.
fn raw(dev: &Device) -> *mut bindings::device {
    core::ptr::from_ref(dev).cast_mut().cast()
}

/// What the clones of an [`IopfPort`] share.
///
/// # Invariants
///
/// - The IOMMU core has the device of `state` probed (its `dev_iommu` is
///   live) until `state` is [`State::Released`].
/// - The device is in `queue` exactly while `state` is [`State::In`],
///   which is while the port's one [`IopfMember`] lives, unless the port
///   was released first.
#[pin_data]
struct PortInner {
    queue: Arc<IopfQueue>,
    #[pin]
    state: Mutex<State>,
}

impl PortInner {
    /// Takes the device out of the queue if it is in.
    fn remove(&self, state: &mut State) {
        let State::In(dev) = &*state else {
            return;
        };
        // SAFETY: The device is in the queue (the state is `In`), so probed
        // (type invariants); the caller holds the state's lock, which keeps
        // it so for the call.
        unsafe { bindings::iopf_queue_remove_device(self.queue.as_ptr(), raw(dev)) };
        // INVARIANT: taken out just above.
        *state = State::Out(dev.clone());
    }
}

/// A device's port to its IOMMU's page fault queue, from the core's probe
/// of the device to its release, made by the IOMMU's registration: the way
/// to put the device in the queue ([`IopfPort::add`]). Clones share it.
#[derive(Clone)]
pub(crate) struct IopfPort(Arc<PortInner>);

impl IopfPort {
    /// A port of `dev`, not in `queue` yet.
    ///
    /// # Safety
    ///
    /// The IOMMU core has `dev` probed, and keeps it so until
    /// [`IopfPort::release`] is called on the port or one of its clones, or
    /// the last of them is dropped, whichever comes first.
    pub(super) unsafe fn new(dev: &Device, queue: Arc<IopfQueue>) -> Result<Self> {
        let inner = Arc::pin_init(
            // INVARIANT: `dev` is probed until the port is released or
            // gone (the safety requirements); not in the queue.
            pin_init!(PortInner {
                queue,
                state <- new_mutex!(State::Out(dev.into()), "rsva_sim::IopfPort::state"),
            }),
            GFP_KERNEL,
        )?;
        Ok(Self(inner))
    }

    /// Puts the device in the queue (`iopf_queue_add_device()`): page
    /// requests can be reported through the returned member until it is
    /// dropped, which takes the device out again. `EBUSY` while a member
    /// lives, `ENODEV` once the core released the device; the core's
    /// errors (`EBUSY` when the device is in another queue).
    pub(crate) fn add(&self) -> Result<IopfMember> {
        let mut state = self.0.state.lock();
        let dev = match &*state {
            State::Out(dev) => dev.clone(),
            State::In(_) => return Err(EBUSY),
            State::Released => return Err(ENODEV),
        };
        // SAFETY: The device is probed (the state is not `Released`, type
        // invariant) and stays so while the state's lock is held, which a
        // release takes; the queue is live (`self` holds it).
        to_result(unsafe { bindings::iopf_queue_add_device(self.0.queue.as_ptr(), raw(&dev)) })?;
        // INVARIANT: the device is in the queue, with the member returned.
        *state = State::In(dev);
        Ok(IopfMember(self.clone()))
    }

    /// The core releases the device (its `release_device`): takes it out
    /// of the queue if a member still has it there, drops the port's
    /// reference to it and makes the port serve no more; a member left
    /// reports nothing. Any number of times.
    pub(super) fn release(&self) {
        let mut state = self.0.state.lock();
        self.0.remove(&mut state);
        // INVARIANT: not in the queue; from here the device's `dev_iommu`
        // is not used.
        *state = State::Released;
    }
}

/// A device in its IOMMU's page fault queue, made by [`IopfPort::add`]:
/// its page requests are reported, and its fault handlers flushed, through
/// this, which exists only while the device is in the queue, and holds the
/// queue. Dropping it takes the device out (`iopf_queue_remove_device()`);
/// faults still pending are answered INVALID by the core.
///
/// Once the core released the device (which takes it out of the queue)
/// the member does nothing: [`IopfMember::report`] says `ENODEV`.
pub(crate) struct IopfMember(IopfPort);

impl IopfMember {
    /// Reports a page request (`iommu_report_device_fault()`). With the
    /// last page of a group, the core hands the group to the fault handler
    /// of the domain attached to the PASID, which answers it once through
    /// the IOMMU's `page_response`; the core answers INVALID the same way
    /// when no handler takes it, and says `EINVAL`. `ENODEV`, with nothing
    /// sent, once the core released the device; the core's errors.
    pub(crate) fn report(&self, request: &PageRequest) -> Result {
        let port = &self.0 .0;
        let mut evt = request.event();
        let state = port.state.lock();
        let State::In(dev) = &*state else {
            return Err(ENODEV);
        };
        // SAFETY: The device is in the queue (the state is `In`), so probed
        // (type invariants of `PortInner`), and stays so while the state's
        // lock is held; `evt` is a page request, which the core copies.
        to_result(unsafe { bindings::iommu_report_device_fault(raw(dev), &mut evt) })
    }

    /// Waits until every fault handler of the queue that started before
    /// this runs to its end (`iopf_queue_flush_dev()`); returns at once
    /// once the core released the device.
    pub(crate) fn flush(&self) {
        let port = &self.0 .0;
        let state = port.state.lock();
        if let State::In(dev) = &*state {
            // SAFETY: The device is in the queue (the state is `In`), so
            // probed (type invariants of `PortInner`), and stays so while
            // the state's lock is held. The call fails only for a device in
            // no queue, so its result says nothing here.
            unsafe { bindings::iopf_queue_flush_dev(raw(dev)) };
        }
    }
}

impl Drop for IopfMember {
    fn drop(&mut self) {
        let port = &self.0 .0;
        let mut state = port.state.lock();
        port.remove(&mut state);
    }
}

#[kunit_tests(rsva_sim_iopf_queue)]
mod tests {
    use super::*;
    use crate::kext::device::bus;

    /// A port of device 0 of the module's bus on a queue of the test's own.
    fn test_port(dev: &Device) -> Result<IopfPort> {
        let queue = IopfQueue::new(c"rsva_sim_kunit_iopf")?;
        // SAFETY: The device stays on the module's bus, so probed by its
        // IOMMU, while the module is live, which it is while its suites run.
        unsafe { IopfPort::new(dev, queue) }
    }

    /// Two ports of device 0 of the module's bus, each on a queue of its
    /// own; `None` (the case checks nothing) without a device 0.
    fn two_ports() -> Result<Option<(IopfPort, IopfPort)>> {
        let dev = bus::find_device(0);
        assert!(dev.is_some());
        let Some(dev) = dev else {
            return Ok(None);
        };
        Ok(Some((test_port(&dev)?, test_port(&dev)?)))
    }

    /// A page fault queue can be had without hardware, and goes on drop.
    #[test]
    fn an_iopf_queue_is_allocated_and_freed() {
        let q = IopfQueue::new(c"rsva_sim_test");
        assert!(q.is_ok());
        if let Ok(q) = q {
            assert!(!q.as_ptr().is_null());
        }
    }

    /// A member is the device in the queue: the core refuses the device to
    /// another queue while it lives, the port refuses a second member, and
    /// its drop takes the device out, so that another queue can have it.
    /// A flush with no fault queued returns.
    #[test]
    fn a_member_is_in_the_queue_until_dropped() -> Result {
        // The suite runs once the module is live, with at least one device,
        // which nothing binds yet.
        let Some((a, b)) = two_ports()? else {
            return Ok(());
        };
        let member = a.add()?;
        assert_eq!(a.add().err(), Some(EBUSY));
        assert_eq!(b.add().err(), Some(EBUSY));
        member.flush();
        drop(member);
        let member = b.add()?;
        assert_eq!(a.add().err(), Some(EBUSY));
        drop(member);
        drop(a.add()?);
        Ok(())
    }

    /// The core's release of the device takes it out of the queue, and the
    /// port and a member left do nothing more: the member's report sends
    /// nothing and its drop removes nothing (the core would warn).
    #[test]
    fn a_released_port_serves_no_more() -> Result {
        let Some((a, b)) = two_ports()? else {
            return Ok(());
        };
        let member = a.add()?;
        a.release();
        let request = PageRequest {
            pasid: 1,
            grpid: 0,
            addr: 0x1000,
            write: false,
            last: true,
        };
        assert_eq!(member.report(&request).err(), Some(ENODEV));
        member.flush();
        drop(b.add()?);
        drop(member);
        assert_eq!(a.add().err(), Some(ENODEV));
        a.release();
        Ok(())
    }

    /// The fault event says what the request says.
    #[test]
    fn a_page_request_is_the_event_the_core_reads() {
        let request = PageRequest {
            pasid: 7,
            grpid: 3,
            addr: 0x5000,
            write: true,
            last: false,
        };
        let evt = request.event();
        assert_eq!(
            evt.fault.type_,
            bindings::iommu_fault_type_IOMMU_FAULT_PAGE_REQ
        );
        let prm = evt.fault.prm;
        assert_eq!((prm.pasid, prm.grpid, prm.addr), (7, 3, 0x5000));
        assert_eq!(
            prm.perm,
            bindings::IOMMU_FAULT_PERM_READ | bindings::IOMMU_FAULT_PERM_WRITE
        );
        assert_eq!(prm.flags, bindings::IOMMU_FAULT_PAGE_REQUEST_PASID_VALID);
        let last = PageRequest {
            write: false,
            last: true,
            ..request
        };
        let prm = last.event().fault.prm;
        assert_eq!(prm.perm, bindings::IOMMU_FAULT_PERM_READ);
        assert_eq!(
            prm.flags,
            bindings::IOMMU_FAULT_PAGE_REQUEST_PASID_VALID
                | bindings::IOMMU_FAULT_PAGE_REQUEST_LAST_PAGE
        );
    }
}
