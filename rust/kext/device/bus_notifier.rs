// SPDX-License-Identifier: GPL-2.0

//! Notifiers on the events of a bus.
//!
//! C header: [`include/linux/device/bus.h`](srctree/include/linux/device/bus.h)
//!
//! - [`BusId`]: a bus named by its address, which the driver core compares
//!   with those of its registered buses and never follows, so the name is
//!   safe to keep after the bus is gone (a bus registered later at the same
//!   address then has the same name).
//! - [`BusNotifier<T>`]: a notifier on one bus (`bus_register_notifier()`),
//!   registered while it lives and unregistered when dropped, which tells
//!   its [`BusListener`] `T` of the bus's events as [`BusEvent`]s.
//!
//! A bus's notifiers are called under the bus's notifier lock (the
//! rw-semaphore of a blocking notifier chain, for reading), in process
//! context; the registration and the unregistration take it for writing,
//! so an unregistration waits for the callbacks under way.

use kernel::{bindings, device::Device, prelude::*, types::Opaque};

use crate::kext::glue;

/// A bus, named by its address.
///
/// The address is only compared with those of the driver core's registered
/// buses (`bus_to_subsys()`), never followed, by every driver-core function
/// this passes it to: a `BusId` of a bus that is gone names no bus, or the
/// bus registered at the same address since.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct BusId(*const bindings::bus_type);

// SAFETY: An address, only compared.
unsafe impl Send for BusId {}
// SAFETY: Shared references only copy or compare the address, which is
// never followed.
unsafe impl Sync for BusId {}

impl BusId {
    /// The bus of `dev`, `None` for a device on no bus.
    ///
    /// A field read in place (on the fast path of a DMA claim), not a C
    /// helper's out-of-line call.
    #[inline]
    pub(crate) fn of(dev: &Device) -> Option<Self> {
        let dev = glue::dev_ptr(dev);
        // SAFETY: `dev` is a valid `struct device` for the call; the read
        // is a `READ_ONCE()`, and the pointer is only compared.
        let bus = unsafe { (&raw const (*dev).bus).read_volatile() };
        (!bus.is_null()).then_some(Self(bus))
    }

    /// The address, only to be compared (0 is no bus).
    pub(crate) fn addr(self) -> usize {
        self.0 as usize
    }

    /// Whether the bus has a device on its list; false when it is gone.
    ///
    /// A device being removed leaves the list before its bus's
    /// [`BusEvent::RemovedDevice`]. Takes the bus's list lock.
    pub(crate) fn has_devices(self) -> bool {
        // SAFETY: The driver core looks the bus up by its address, which it
        // does not follow (`BusId`); `any_device` stops at the first device
        // and keeps nothing.
        unsafe {
            bindings::bus_for_each_dev(
                self.0,
                core::ptr::null_mut(),
                core::ptr::null_mut(),
                Some(any_device),
            ) == 1
        }
    }
}

/// A `bus_for_each_dev()` callback that stops at the first device.
extern "C" fn any_device(_dev: *mut bindings::device, _data: *mut c_void) -> c_int {
    1
}

/// An event of a bus, about one of its devices (`enum bus_notifier_event`);
/// a [`BusNotifier`] passes on these three and no other.
pub(crate) enum BusEvent<'a> {
    /// `BUS_NOTIFY_UNBIND_DRIVER`: the device's driver is about to be
    /// unbound, under the device's lock: the driver is still bound (its
    /// `remove` comes after), the bus's `dma_cleanup` and the driver's
    /// devres actions too.
    UnbindDriver(&'a Device),
    /// `BUS_NOTIFY_DEL_DEVICE`: the device is about to be removed. It is
    /// still on the bus's list and in its IOMMU group.
    DelDevice(&'a Device),
    /// `BUS_NOTIFY_REMOVED_DEVICE`: the device was removed: it is off the
    /// bus's list, and out of its IOMMU group.
    RemovedDevice(&'a Device),
}

/// What a [`BusNotifier`] tells of its bus.
pub(crate) trait BusListener: Send + Sync {
    /// `event` happened on `bus`. Called under the bus's notifier lock,
    /// in process context: it may sleep, and must not register or
    /// unregister a notifier of the same bus (a [`BusNotifier`] is
    /// neither made nor dropped here).
    fn bus_event(&self, bus: BusId, event: BusEvent<'_>);
}

/// A notifier on a bus, registered while it lives.
///
/// It holds its listener `T` and the [`BusId`] of its bus, no reference to
/// the bus: a bus that is unregistered takes its notifiers with it, and
/// the notifier is then on no bus (another bus registered at the same
/// address does not have it). Dropping it unregisters it, which waits for
/// the callbacks under way and may sleep; the listener is dropped after.
///
/// # Invariants
///
/// `nb` is registered on the bus named `bus` (or was, and that bus was
/// unregistered since), with [`Self::notify`] as its callback; `nb` is the
/// field of this `BusNotifier<T>`, which is pinned, so the callback reaches
/// the listener through it.
#[pin_data(PinnedDrop)]
pub(crate) struct BusNotifier<T: BusListener> {
    #[pin]
    nb: Opaque<bindings::notifier_block>,
    bus: BusId,
    listener: T,
}

// SAFETY: The notifier block is written once, before it is registered, and
// then only by the driver core under the bus's notifier lock; the listener
// is `Send`.
unsafe impl<T: BusListener> Send for BusNotifier<T> {}
// SAFETY: `&self` gives access to the listener, which is `Sync`, and the
// bus's name; the notifier block is the driver core's.
unsafe impl<T: BusListener> Sync for BusNotifier<T> {}

impl<T: BusListener> BusNotifier<T> {
    /// Registers a notifier with `listener` on `bus`: `EINVAL` when no bus
    /// has that name (it is gone). Takes the bus's notifier lock for
    /// writing, so it may sleep.
    pub(crate) fn new(bus: BusId, listener: T) -> impl PinInit<Self, Error> {
        try_pin_init!(Self {
            // Written before the notifier is: the callback may come at once.
            bus,
            listener,
            nb <- Opaque::try_ffi_init(move |nb: *mut bindings::notifier_block| {
                // SAFETY: `nb` is valid for writes: the field being
                // initialised.
                unsafe {
                    nb.write(bindings::notifier_block {
                        notifier_call: Some(Self::notify),
                        next: core::ptr::null_mut(),
                        priority: 0,
                    })
                };
                // SAFETY: `nb` is initialised and pinned, and `PinnedDrop`
                // unregisters it before it goes (a failed initialisation
                // leaves it unregistered); the driver core compares `bus`
                // and does not follow it. INVARIANT: registered here.
                kernel::error::to_result(unsafe { bindings::bus_register_notifier(bus.0, nb) })
            }),
        })
    }

    /// The bus this is registered on.
    pub(crate) fn bus(&self) -> BusId {
        self.bus
    }

    /// The callback of the notifier block.
    ///
    /// # Safety
    ///
    /// `nb` is the `nb` of a registered `BusNotifier<T>`, and `data` the
    /// device of a bus event (the driver core's contract for bus
    /// notifiers).
    unsafe extern "C" fn notify(
        nb: *mut bindings::notifier_block,
        action: c_ulong,
        data: *mut c_void,
    ) -> c_int {
        let nb = nb.cast::<Opaque<bindings::notifier_block>>();
        // SAFETY: `nb` is the `nb` field of a `BusNotifier<T>` (type
        // invariant), alive while registered: its drop unregisters it
        // first, which waits for this call.
        let this = unsafe { &*kernel::container_of!(nb, Self, nb) };
        // SAFETY: The driver core passes the device of the event, valid
        // for the call.
        let dev = unsafe { Device::from_raw(data.cast::<bindings::device>()) };
        let event = match u32::try_from(action) {
            Ok(bindings::bus_notifier_event_BUS_NOTIFY_UNBIND_DRIVER) => {
                BusEvent::UnbindDriver(dev)
            }
            Ok(bindings::bus_notifier_event_BUS_NOTIFY_DEL_DEVICE) => BusEvent::DelDevice(dev),
            Ok(bindings::bus_notifier_event_BUS_NOTIFY_REMOVED_DEVICE) => {
                BusEvent::RemovedDevice(dev)
            }
            _ => return 0,
        };
        this.listener.bus_event(this.bus, event);
        // NOTIFY_DONE: nothing to say to the other notifiers.
        0
    }
}

#[pinned_drop]
impl<T: BusListener> PinnedDrop for BusNotifier<T> {
    fn drop(self: Pin<&mut Self>) {
        // SAFETY: `nb` is registered on the bus named `bus`, or that bus is
        // gone and the driver core finds no bus of that name, or another
        // one whose chain does not hold `nb` (it compares, never follows):
        // both leave `nb` alone. A callback under way is waited for.
        unsafe { bindings::bus_unregister_notifier(self.bus.0, self.nb.get()) };
    }
}

#[kunit_tests(rsva_bus_notifier)]
mod tests {
    use super::*;
    use kernel::sync::{
        atomic::{Atomic, Relaxed},
        Arc,
    };

    /// Counts the events of each kind, and the devices left on the bus
    /// when a removal ends.
    struct Counts {
        unbind: Atomic<u32>,
        del: Atomic<u32>,
        removed: Atomic<u32>,
        same_device: Atomic<u32>,
        left_devices: Atomic<u32>,
    }

    struct Counter {
        counts: Arc<Counts>,
        dev: usize,
    }

    impl BusListener for Counter {
        fn bus_event(&self, bus: BusId, event: BusEvent<'_>) {
            let dev = match event {
                BusEvent::UnbindDriver(dev) => {
                    self.counts.unbind.add(1, Relaxed);
                    dev
                }
                BusEvent::DelDevice(dev) => {
                    self.counts.del.add(1, Relaxed);
                    dev
                }
                BusEvent::RemovedDevice(dev) => {
                    self.counts.removed.add(1, Relaxed);
                    if bus.has_devices() {
                        self.counts.left_devices.add(1, Relaxed);
                    }
                    dev
                }
            };
            if core::ptr::from_ref(dev) as usize == self.dev {
                self.counts.same_device.add(1, Relaxed);
            }
        }
    }

    fn counts() -> Result<Arc<Counts>> {
        let counts = Counts {
            unbind: Atomic::new(0),
            del: Atomic::new(0),
            removed: Atomic::new(0),
            same_device: Atomic::new(0),
            left_devices: Atomic::new(0),
        };
        Ok(Arc::new(counts, GFP_KERNEL)?)
    }

    /// A notifier of bus `id` counting into `counts`, matching device `dev`.
    fn listen(
        id: BusId,
        counts: &Arc<Counts>,
        dev: usize,
    ) -> Result<Pin<KBox<BusNotifier<Counter>>>> {
        let counter = Counter {
            counts: counts.clone(),
            dev,
        };
        KBox::pin_init(BusNotifier::new(id, counter), GFP_KERNEL)
    }

    #[test]
    fn events_of_a_removal_reach_the_listener() -> Result {
        let bus = glue::TestBus::new()?;
        let first = bus.add_device()?;
        let second = bus.add_device()?;
        let id = BusId::of(&first).ok_or(ENODEV)?;
        assert_eq!(BusId::of(&second), Some(id));
        assert!(id.has_devices());
        let counts = counts()?;
        let dev = core::ptr::from_ref::<Device>(&second) as usize;
        let n = listen(id, &counts, dev)?;
        assert_eq!(n.bus(), id);
        drop(second);
        // One removal: both events, of that device, with one device left.
        assert_eq!(counts.del.load(Relaxed), 1);
        assert_eq!(counts.removed.load(Relaxed), 1);
        assert_eq!(counts.same_device.load(Relaxed), 2);
        assert_eq!(counts.left_devices.load(Relaxed), 1);
        drop(first);
        assert_eq!(counts.removed.load(Relaxed), 2);
        // The last device was off the list at its `RemovedDevice`.
        assert_eq!(counts.left_devices.load(Relaxed), 1);
        assert!(!id.has_devices());
        drop(n);
        Ok(())
    }

    #[test]
    fn a_driver_unbound_is_told_before_its_device_goes() -> Result {
        let bus = glue::TestBus::new()?;
        let dev = bus.add_device()?;
        let id = BusId::of(&dev).ok_or(ENODEV)?;
        let counts = counts()?;
        let n = listen(id, &counts, core::ptr::from_ref::<Device>(&dev) as usize)?;
        let driver = bus.add_driver()?;
        assert_eq!(counts.unbind.load(Relaxed), 0);
        // Unbinds the device: one event, of that device.
        drop(driver);
        assert_eq!(counts.unbind.load(Relaxed), 1);
        assert_eq!(counts.same_device.load(Relaxed), 1);
        assert_eq!(counts.del.load(Relaxed), 0);
        // A removal without a driver: no unbind.
        drop(dev);
        assert_eq!(counts.unbind.load(Relaxed), 1);
        assert_eq!(counts.del.load(Relaxed), 1);
        drop(n);
        Ok(())
    }

    #[test]
    fn a_dropped_notifier_hears_nothing() -> Result {
        let bus = glue::TestBus::new()?;
        let dev = bus.add_device()?;
        let id = BusId::of(&dev).ok_or(ENODEV)?;
        let counts = counts()?;
        let n = listen(id, &counts, 0)?;
        drop(n);
        drop(dev);
        assert_eq!(counts.del.load(Relaxed), 0);
        assert_eq!(counts.removed.load(Relaxed), 0);
        Ok(())
    }

    #[test]
    fn a_gone_bus_takes_no_notifier() -> Result {
        let bus = glue::TestBus::new()?;
        let id = BusId::of(&*bus.add_device()?).ok_or(ENODEV)?;
        let counts = counts()?;
        let n = listen(id, &counts, 0)?;
        // Unregistered under the notifier, which then drops harmlessly.
        drop(bus);
        assert!(!id.has_devices());
        drop(n);
        let again = listen(id, &counts, 0);
        assert_eq!(again.err(), Some(EINVAL));
        let nobus = glue::TestDevice::new()?;
        assert_eq!(BusId::of(&nobus), None);
        Ok(())
    }
}
