// SPDX-License-Identifier: GPL-2.0

//! Watches of buses: one [`BusNotifier`] per bus of the devices a user
//! asked to watch, made on the bus's first device and kept until the
//! [`BusWatches`] drops.
//!
//! A user (rsva's DMA claims, its SVA binds) asks, on a path that may be
//! hot, that the bus of a device be watched ([`BusWatches::watch`]): that
//! costs a look at a few words without a lock while the bus is watched,
//! and a notifier registration only on the bus's first device (or its
//! first since the bus lost its last device, below). Each watch's notifier
//! tells the user's [`BusListener`] `L` of the bus's events.
//!
//! A watch outlives the devices that needed it, so its bus may be
//! unregistered meanwhile and another registered at the same address (a
//! module reloaded), whose chain does not hold the notifier ([`BusId`]
//! names a bus by its address). A bus is unregistered only once it has no
//! device, so a watch whose bus lost its last device is marked stale
//! ([`STALE`]), and the next device of that bus to be watched registers a
//! notifier again; nothing on that bus can depend on a stale watch (its
//! devices are gone). Only [`BUSES`] buses are watched at once; a stale
//! watch's slot is taken over.
//!
//! Lock order: `BusWatches::notifiers` -> the bus's notifier lock (a watch
//! starts or stops). [`BusWatches::watch`] is never called under a bus's
//! notifier lock (from a listener), nor where a listener may be waited for
//! (an mm's release, when a listener waits for it).

#![forbid(unsafe_code)]

use kernel::{
    device::Device,
    new_mutex,
    prelude::*,
    sync::{
        atomic::{Acquire, Atomic, Relaxed, Release},
        Arc, Mutex,
    },
};

use crate::kext::device::bus_notifier::{BusEvent, BusId, BusListener, BusNotifier};

/// How many buses one [`BusWatches`] watches at once; watching a device of
/// a further bus fails with `ENOSPC` (a stale watch's slot is taken over).
pub(crate) const BUSES: usize = 8;

/// The mark of a stale watch in [`Watched`] (bus addresses are aligned).
const STALE: usize = 1;

/// The bus one watch watches, read without a lock: one word, so that a
/// look costs one atomic load, of a pointer (a plain `READ_ONCE()`; an
/// integer's load calls an instrumented C helper).
///
/// It holds the address of that bus ([`BusId::addr`], aligned), with
/// [`STALE`] set when that bus has lost its last device since the notifier
/// was registered; 0 while the watch has no notifier. The pointer is only
/// compared, never followed.
struct Watched {
    state: Atomic<*const c_void>,
}

impl Watched {
    /// No bus.
    const fn new() -> Self {
        Self {
            state: Atomic::new(core::ptr::null()),
        }
    }

    /// Sets the state to `addr`.
    fn set(&self, addr: usize) {
        self.state
            .store(core::ptr::without_provenance(addr), Release);
    }

    /// Whether this watches `bus` and can be trusted to.
    fn watches(&self, bus: BusId) -> bool {
        self.state.load(Acquire).addr() == bus.addr()
    }

    /// The bus address, stale or not.
    fn bus(&self) -> usize {
        self.state.load(Relaxed).addr() & !STALE
    }

    /// Whether the watch is stale.
    fn is_stale(&self) -> bool {
        self.state.load(Acquire).addr() & STALE != 0
    }
}

/// The state of each watch, by its index, shared with the notifiers.
type States = [Watched; BUSES];

/// The listener of one watch's notifier: the user's listener, and the
/// stale mark of the watch at `index` of `states`.
struct Watcher<L> {
    states: Arc<States>,
    index: usize,
    listener: L,
}

impl<L: BusListener> BusListener for Watcher<L> {
    /// Tells the user's listener, then marks the watch stale when the bus
    /// has lost its last device.
    fn bus_event(&self, bus: BusId, event: BusEvent<'_>) {
        let removed = matches!(event, BusEvent::RemovedDevice(_));
        self.listener.bus_event(bus, event);
        if removed && !bus.has_devices() {
            if let Some(w) = self.states.get(self.index) {
                // Only this notifier's bus can be there: the state changes
                // otherwise only once the notifier is gone.
                w.set(bus.addr() | STALE);
            }
        }
    }
}

/// The notifier of a watch.
type Notifier<L> = Pin<KBox<BusNotifier<Watcher<L>>>>;

/// The watches of up to [`BUSES`] buses, each a notifier telling a
/// listener `L`.
///
/// Dropping it drops the notifiers (which waits for their callbacks under
/// way): no listener is called after.
#[pin_data]
pub(crate) struct BusWatches<L: BusListener> {
    /// The notifier of each watch, made and dropped under this lock.
    #[pin]
    notifiers: Mutex<[Option<Notifier<L>>; BUSES]>,
    /// The state of each watch, shared with the notifiers.
    states: Arc<States>,
}

impl<L: BusListener> BusWatches<L> {
    /// No watch. `ENOMEM` if the shared state cannot be allocated.
    pub(crate) fn new() -> impl PinInit<Self, Error> {
        try_pin_init!(Self {
            notifiers <- new_mutex!([const { None }; BUSES]),
            states: Arc::new([const { Watched::new() }; BUSES], GFP_KERNEL)?,
        })
    }

    /// Makes sure the bus of `dev` is watched (nothing to do for a device
    /// on no bus): a look at the watches, and on the bus's first device (or
    /// its first since it lost its last device) a notifier registration,
    /// whose listener `listener` makes. `ENOMEM`, or `ENOSPC` when
    /// [`BUSES`] buses are watched already. Process context; may sleep.
    ///
    /// The listener is told of the bus's events from when this returns.
    #[inline]
    pub(crate) fn watch(&self, dev: &Device, listener: impl FnOnce() -> L) -> Result {
        let Some(bus) = BusId::of(dev) else {
            return Ok(());
        };
        if self.watches(bus) {
            return Ok(());
        }
        self.start(bus, listener)
    }

    /// Whether `bus` is watched, by a watch that is not stale.
    #[inline]
    fn watches(&self, bus: BusId) -> bool {
        self.states.iter().any(|w| w.watches(bus))
    }

    /// Registers a notifier on `bus`, unless another task did meanwhile.
    #[inline(never)]
    fn start(&self, bus: BusId, listener: impl FnOnce() -> L) -> Result {
        let mut notifiers = self.notifiers.lock();
        if self.watches(bus) {
            return Ok(());
        }
        let states = &*self.states;
        // This bus's stale watch, or a free slot, or another bus's stale
        // watch (nothing depends on it).
        let index = states
            .iter()
            .position(|w| w.bus() == bus.addr())
            .or_else(|| states.iter().position(|w| w.bus() == 0))
            .or_else(|| states.iter().position(Watched::is_stale))
            .ok_or(ENOSPC)?;
        let (Some(slot), Some(w)) = (notifiers.get_mut(index), states.get(index)) else {
            return Err(ENOSPC);
        };
        // The old notifier goes first (its callbacks under way with it),
        // so nothing marks the new watch stale but its own.
        *slot = None;
        w.set(0);
        let watcher = Watcher {
            states: self.states.clone(),
            index,
            listener: listener(),
        };
        *slot = Some(KBox::pin_init(BusNotifier::new(bus, watcher), GFP_KERNEL)?);
        // Release: a look that sees the bus sees a registered notifier. The
        // new notifier may have marked it stale already: that stays.
        let _ = w.state.cmpxchg(
            core::ptr::null(),
            core::ptr::without_provenance(bus.addr()),
            Release,
        );
        Ok(())
    }
}

#[kunit_tests(rsva_bus_watches)]
mod tests {
    use super::*;
    use crate::kext::glue;

    /// How many listeners were made, and the removals they heard of.
    struct Counts {
        made: Atomic<u32>,
        removals: Atomic<u32>,
    }

    struct Counter(Arc<Counts>);

    impl BusListener for Counter {
        fn bus_event(&self, _bus: BusId, event: BusEvent<'_>) {
            if let BusEvent::DelDevice(_) = event {
                self.0.removals.add(1, Relaxed);
            }
        }
    }

    fn counts() -> Result<Arc<Counts>> {
        let counts = Counts {
            made: Atomic::new(0),
            removals: Atomic::new(0),
        };
        Ok(Arc::new(counts, GFP_KERNEL)?)
    }

    /// Watches the bus of `dev`, counting a listener made in `counts`.
    fn watch(w: &BusWatches<Counter>, dev: &Device, counts: &Arc<Counts>) -> Result {
        w.watch(dev, || {
            counts.made.add(1, Relaxed);
            Counter(counts.clone())
        })
    }

    #[test]
    fn a_bus_is_watched_once() -> Result {
        let bus = glue::TestBus::new()?;
        let (first, second) = (bus.add_device()?, bus.add_device()?);
        let counts = counts()?;
        let w = KBox::pin_init(BusWatches::<Counter>::new(), GFP_KERNEL)?;
        watch(&w, &first, &counts)?;
        watch(&w, &second, &counts)?;
        assert_eq!(counts.made.load(Relaxed), 1);
        drop(second);
        assert_eq!(counts.removals.load(Relaxed), 1);
        // A device on no bus needs no watch.
        let nobus = glue::TestDevice::new()?;
        watch(&w, &nobus, &counts)?;
        assert_eq!(counts.made.load(Relaxed), 1);
        drop(w);
        // Dropped with its notifiers.
        drop(first);
        assert_eq!(counts.removals.load(Relaxed), 1);
        Ok(())
    }

    #[test]
    fn a_bus_registered_again_is_watched_again() -> Result {
        let counts = counts()?;
        let w = KBox::pin_init(BusWatches::<Counter>::new(), GFP_KERNEL)?;
        let bus = glue::TestBus::new()?;
        let dev = bus.add_device()?;
        let id = BusId::of(&dev).ok_or(ENODEV)?;
        watch(&w, &dev, &counts)?;
        assert!(w.watches(id));
        // The bus lost its last device: the watch is stale.
        drop(dev);
        assert!(!w.watches(id));
        drop(bus);
        // Registered again at the same address: a new notifier hears it.
        let bus = glue::TestBus::new()?;
        let dev = bus.add_device()?;
        assert_eq!(BusId::of(&dev), Some(id));
        watch(&w, &dev, &counts)?;
        assert_eq!(counts.made.load(Relaxed), 2);
        assert!(w.watches(id));
        drop(dev);
        assert_eq!(counts.removals.load(Relaxed), 2);
        Ok(())
    }
}
