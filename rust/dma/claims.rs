// SPDX-License-Identifier: GPL-2.0

//! DMA ownership claims made through rsva's C API.
//!
//! C callers name their owner with a pointer (a cookie, as for
//! `iommu_group_claim_dma_owner()`); rsva keeps each claim as a
//! [`GroupClaim`] or [`DeviceClaim`] guard, so a claim is released once and
//! only by a matching release call (`ENOENT` otherwise), and all of them go
//! at module exit. A claim and an rsva SVA bind on the same group cannot
//! pass each other ([`Claims::bind_pass`]): a bind checks that no owner
//! claimed the group and attaches its PASID while no claim is under way.
//!
//! A claim kept by a careless driver may outlive its device. rsva watches
//! the bus of every device claimed through it, with one notifier per bus
//! (a [`BusWatches`] watch, made at the bus's first claim and kept until
//! module exit): when a device is about to be removed (for a group claim:
//! the last device of the group), its claims end there, while the device
//! is still in its group (the IOMMU core warns about a group left empty
//! while owned, and `iommu_device_release_dma_owner()` would find no group
//! later). The record stays until its release call (which then succeeds)
//! or module exit. A claim made after that event, while the device is
//! still in its group, fails with `ENODEV` ([`Departing`]): the device is
//! on its way out until the IOMMU core takes it out of its group.
//!
//! A claim and a release cost what the core's functions cost plus two
//! atomic operations: the records are kept in a [`Slots`] table, without a
//! lock, and a claim's reservation of its slot is also its pass through
//! the gate ([`Claims::bind_pass`]), which takes no lock while no bind is
//! under way. There is no allocation and no notifier registration except
//! on a bus's first claim (or its first since the bus lost its last
//! device, see [`BusWatches`]), which fails with `ENOMEM` if the watch
//! cannot be allocated, `ENOSPC` beyond eight buses.
//!
//! Lock order: `Claims::watches` -> the bus's notifier lock (a watch
//! starts or stops), taken before a claim holds its record's slot; the
//! bus's notifier lock (a removal) -> a record's slot -> the group mutex
//! (the claim ends); [`Rwsem::Owner`] (a bind, or a claim while binds are
//! under way) -> a record's slot -> the group mutex; a record's slot -> the
//! group mutex (a release); a record's slot -> a slot of [`Departing`]'s
//! table (a claim looks at the departing devices, as does a removal while
//! it visits the claims); a departing device's slot is held for nothing
//! else.

#![forbid(unsafe_code)]

use kernel::{
    device::Device,
    iommu::dma_owner::{DeviceClaim, Group, GroupClaim, OwnerCookie},
    prelude::*,
    sync::{
        aref::ARef,
        atomic::{Atomic, Full, Relaxed},
        Arc,
    },
    time::{delay::fsleep, Delta},
};

use crate::{
    kext::device::bus_notifier::{BusEvent, BusId, BusListener},
    kext::device::bus_watches::BusWatches,
    kext::glue::{self, Rwsem, RwsemGuard},
    kext::iommu::group::GroupExt,
    kext::sync::slots::{Slots, Visit},
};

/// How many claims the C API keeps at once; one more fails with `ENOSPC`.
const CLAIMS: usize = 256;

/// How long a bind that met a claim under way sleeps before it looks again.
const CLAIM_WAIT: Delta = Delta::from_micros(20);

/// How many devices of the watched buses [`Departing`] names at once; while
/// more are being removed, every claim fails with `EBUSY`.
const DEPARTING: usize = 16;

/// Adds `delta` to `count`, fully ordered (no `add` for `i16`: a
/// compare-and-exchange).
fn add_full(count: &Atomic<i16>, delta: i16) {
    let mut old = count.load(Relaxed);
    while let Err(now) = count.cmpxchg(old, old.wrapping_add(delta), Full) {
        old = now;
    }
}

/// Takes one from `count` if it is positive, fully ordered; whether it did.
fn take_one(count: &Atomic<i16>) -> bool {
    let mut old = count.load(Relaxed);
    while old > 0 {
        match count.cmpxchg(old, old - 1, Full) {
            Ok(_) => return true,
            Err(now) => old = now,
        }
    }
    false
}

/// The devices of the watched buses on their way out: from the first event
/// of their removal ([`BusEvent::DelDevice`]), where their claims end, to
/// its last ([`BusEvent::RemovedDevice`]), which comes after the IOMMU
/// core took them out of their groups. A claim made in between would
/// outlive the device's place in its group: its release would find no
/// group (`iommu_device_release_dma_owner()` dereferences it), and a group
/// left empty while owned makes the core warn. So a claim looks here
/// first ([`Departing::admits`]) and fails with `ENODEV`.
///
/// A claim reserves its record's slot (fully ordered) and then reads
/// `count`; a removal raises `count` (fully ordered) and then visits the
/// records, waiting for the slots reserved: either the claim sees the
/// device departing, or the removal sees the claim and ends it.
struct Departing {
    /// The devices departing, named or not; 0 on the claims' fast path,
    /// an `i16` whose load is a plain `READ_ONCE()`.
    count: Atomic<i16>,
    /// Those that found `devices` full, and are not named.
    unnamed: Atomic<i16>,
    /// The devices departing, each with a reference.
    devices: Slots<ARef<Device>, DEPARTING>,
}

impl Departing {
    /// Marks `dev` departing, before its claims are looked at; whether it
    /// is named (false: counted in `unnamed`, and no claim passes while it
    /// departs).
    fn begin(&self, dev: &Device) -> bool {
        let named = self.devices.insert(|| Ok(dev.into())).is_ok();
        if !named {
            add_full(&self.unnamed, 1);
        }
        add_full(&self.count, 1);
        named
    }

    /// `dev` is out of its group (and a claim of it fails in the core).
    /// A device that departed before its bus was watched was not marked,
    /// and leaves nothing to unmark (unless some are unnamed: then one of
    /// those goes, the others still refuse every claim).
    fn end(&self, dev: &Device) {
        if self.devices.remove(|d| core::ptr::eq::<Device>(&**d, dev)) || take_one(&self.unnamed) {
            add_full(&self.count, -1);
        }
    }

    /// Whether a claim of `dev` (or of its group, `group`) may be made:
    /// `ENODEV` if it (or every device of the group) is departing, `EBUSY`
    /// while unnamed devices depart. Called with the claim's record's slot
    /// reserved.
    #[inline]
    fn admits(&self, dev: &Device, group: bool) -> Result {
        if self.count.load(Relaxed) == 0 {
            return Ok(());
        }
        self.admits_slow(dev, group)
    }

    #[cold]
    fn admits_slow(&self, dev: &Device, group: bool) -> Result {
        if self.unnamed.load(Relaxed) != 0 {
            return Err(EBUSY);
        }
        if !group {
            let departing = self.devices.count(|d| core::ptr::eq::<Device>(&**d, dev));
            return if departing > 0 { Err(ENODEV) } else { Ok(()) };
        }
        let group = Group::of(dev)?;
        if self.empties(&group, 0) {
            return Err(ENODEV);
        }
        Ok(())
    }

    /// Whether the departing devices of `group`, and `more`, are all its
    /// devices. Takes the group mutex.
    fn empties(&self, group: &Group, more: usize) -> bool {
        let departing = more + self.devices.count(|d| group.holds(d));
        departing > 0 && departing >= group.device_count()
    }
}

/// A bind's pass through the gate of rsva's claims ([`Claims::bind_pass`]),
/// held while it checks the group's owner and attaches; no claim makes
/// progress meanwhile.
pub(crate) struct BindPass<'a> {
    shared: &'a Shared,
    _owners: RwsemGuard,
}

impl Drop for BindPass<'_> {
    fn drop(&mut self) {
        // Before the rw-semaphore goes (the fields drop after this): a
        // claim that waited for it for writing finds no bind counted.
        // INVARIANT: the bind leaves the count.
        add_full(&self.shared.binds, -1);
    }
}

/// The core answers `EPERM` when anything holds the group; when that is
/// not another owner but drivers bound to its devices (through the DMA API,
/// on the default domain or on a domain such a driver attached), the C
/// API answers `EBUSY`.
fn busy_if_dma_api(dev: &Device, e: Error) -> Error {
    if e == EPERM && !glue::user_owned(dev) {
        return EBUSY;
    }
    e
}

enum Claim {
    Group(GroupClaim<'static>),
    Device(DeviceClaim<'static>),
}

/// A claim made through the C API, as the C caller named it.
///
/// `dev` (0 for a group claim), `group` (0 for a device claim) and `owner`
/// are addresses, only compared; `claim` is `None` once its device (or
/// group) went away.
struct Record {
    dev: usize,
    group: usize,
    owner: usize,
    claim: Option<Claim>,
}

impl Record {
    /// Whether this is a claim of `owner` on `dev` (a device claim) or on
    /// `group` (a group claim).
    fn is(&self, owner: usize, dev: usize, group: Option<usize>) -> bool {
        self.owner == owner
            && match group {
                Some(g) => self.dev == 0 && self.group == g,
                None => self.dev != 0 && self.dev == dev,
            }
    }

    /// Ends the claim if `dev`, about to be removed
    /// ([`BusEvent::DelDevice`]) and marked departing (`named`: in
    /// `departing`'s table), is its device or its group's last device
    /// not departing.
    fn end_if_removed(&mut self, dev: &Device, departing: &Departing, named: bool) {
        let ends = match &self.claim {
            None => false,
            Some(Claim::Device(d)) => core::ptr::eq::<Device>(&**d.held(), dev),
            // Still in its group at this event.
            Some(Claim::Group(g)) => {
                g.held().holds(dev) && departing.empties(g.held(), usize::from(!named))
            }
        };
        if ends {
            // Dropping the guard releases the claim and its reference.
            self.claim = None;
        }
    }
}

/// The address of `dev`, only compared.
fn addr_of_dev(dev: &Device) -> usize {
    core::ptr::from_ref(dev) as usize
}

/// What the claims share with the notifiers of their buses.
///
/// # Invariants
///
/// `binds` is the number of live [`BindPass`]es on these claims.
#[pin_data]
struct Shared {
    /// The binds under way (fewer than 2^15 tasks bind at once); an `i16`,
    /// whose load is a plain `READ_ONCE()` on a claim's fast path.
    binds: Atomic<i16>,
    /// Every claim; a release takes the newest match out. A slot reserved
    /// and not filled yet is a claim under way.
    records: Slots<Record, CLAIMS>,
    /// The devices of the watched buses being removed.
    departing: Departing,
}

/// The listener of the watches of the claims' buses.
struct Ender {
    shared: Arc<Shared>,
}

impl BusListener for Ender {
    /// Ends the claims of a device (or of the last device of a group) about
    /// to be removed, and refuses new ones until it is out of its group.
    fn bus_event(&self, _bus: BusId, event: BusEvent<'_>) {
        let shared = &*self.shared;
        match event {
            BusEvent::DelDevice(dev) => {
                let named = shared.departing.begin(dev);
                shared.records.visit(|r| {
                    r.end_if_removed(dev, &shared.departing, named);
                    Visit::Keep
                });
            }
            BusEvent::RemovedDevice(dev) => shared.departing.end(dev),
            BusEvent::UnbindDriver(_) => {}
        }
    }
}

/// The claims made through the C API, and the watches of their buses.
///
/// Dropping it drops the notifiers (no bus event runs after) and then the
/// records, which releases the claims left.
#[pin_data]
pub(crate) struct Claims {
    /// The watches of the buses of the claimed devices.
    #[pin]
    watches: BusWatches<Ender>,
    /// The records, shared with the notifiers.
    shared: Arc<Shared>,
}

impl Claims {
    /// No claims.
    pub(crate) fn new() -> impl PinInit<Self, Error> {
        try_pin_init!(Self {
            watches <- BusWatches::new(),
            shared: Arc::pin_init(
                pin_init!(Shared {
                    binds: Atomic::new(0),
                    records <- Slots::empty(),
                    departing <- init!(Departing {
                        count: Atomic::new(0),
                        unnamed: Atomic::new(0),
                        devices <- Slots::empty(),
                    }),
                }),
                GFP_KERNEL,
            )?,
        })
    }

    /// Claims the group of `dev` for `owner`.
    pub(crate) fn claim_group(&self, dev: &Device, owner: OwnerCookie) -> Result {
        self.claim(dev, owner, true, || {
            GroupClaim::with_cookie(dev, owner).map(Claim::Group)
        })
    }

    /// Claims `dev` for `owner` (again, if it holds it already).
    pub(crate) fn claim_device(&self, dev: &Device, owner: OwnerCookie) -> Result {
        self.claim(dev, owner, false, || {
            DeviceClaim::with_cookie(dev, owner).map(Claim::Device)
        })
    }

    /// Makes a claim with `make` and keeps it, excluding rsva's binds.
    ///
    /// The claim reserves its record's slot first, then looks at the binds
    /// under way: a bind counts itself and then waits while a slot is
    /// reserved ([`Claims::bind_pass`]); both steps are fully ordered, so
    /// the two cannot both miss each other. A claim that sees a bind gives
    /// its slot back and takes [`Rwsem::Owner`] for writing, which binds
    /// hold for reading through their pass. The slot's reservation also
    /// orders the claim against a removal of `dev` ([`Departing`]); `group`
    /// tells that the claim is of the group of `dev`.
    fn claim(
        &self,
        dev: &Device,
        owner: OwnerCookie,
        group: bool,
        make: impl FnOnce() -> Result<Claim>,
    ) -> Result {
        self.watches.watch(dev, || Ender {
            shared: self.shared.clone(),
        })?;
        let shared = &*self.shared;
        let mut slot = shared.records.reserve()?;
        let mut _exclusive = None;
        if shared.binds.load(Relaxed) != 0 {
            // Given back before waiting: the binds wait for it.
            drop(slot);
            _exclusive = Some(RwsemGuard::lock(Rwsem::Owner, true));
            slot = shared.records.reserve()?;
        }
        // An error gives the slot back.
        shared.departing.admits(dev, group)?;
        let claim = make().map_err(|e| busy_if_dma_api(dev, e))?;
        let (claimed, group) = match &claim {
            Claim::Group(g) => (0, core::ptr::from_ref::<Group>(g.held()) as usize),
            Claim::Device(d) => (addr_of_dev(d.held()), 0),
        };
        slot.fill(Record {
            dev: claimed,
            group,
            owner: owner.as_ptr() as usize,
            claim: Some(claim),
        });
        Ok(())
    }

    /// Lets a bind of rsva in, once the claims under way have ended; no
    /// claim makes progress until the pass drops. May sleep.
    ///
    /// A bind holds [`Rwsem::Owner`] for reading, counts itself in the
    /// binds and waits while a claim has a slot reserved. A claim on the
    /// fast path holds a reserved slot and waits for nothing a bind holds:
    /// it ends. (Without the gate, a claim between a bind's check of the
    /// group's owner and its attach would own a group with a PASID
    /// attached: the core refuses claims on groups with PASIDs attached,
    /// not attaches on claimed groups, and the claim's release would
    /// warn.)
    pub(crate) fn bind_pass(&self) -> BindPass<'_> {
        let owners = RwsemGuard::lock(Rwsem::Owner, false);
        let shared = &*self.shared;
        // INVARIANT: counted here, out again in the pass's drop.
        add_full(&shared.binds, 1);
        while shared.records.inserting() {
            fsleep(CLAIM_WAIT);
        }
        BindPass {
            shared,
            _owners: owners,
        }
    }

    /// Releases one claim of the group of `dev` by `owner`; `ENOENT` when
    /// there is none. A claim that ended with the group's last device is
    /// released too (that is, forgotten).
    pub(crate) fn release_group(&self, dev: &Device, owner: OwnerCookie) -> Result {
        self.release(owner, 0, Some(Group::addr_of(dev)))
    }

    /// Releases one claim of the device at address `dev` by `owner`;
    /// `ENOENT` when there is none. The address is only compared: a claim
    /// that ended with its device is released too (that is, forgotten).
    pub(crate) fn release_device(&self, dev: usize, owner: OwnerCookie) -> Result {
        self.release(owner, dev, None)
    }

    /// Drops the newest record of a claim of `owner` on the group `group`,
    /// or else on the device `dev`, which releases it.
    fn release(&self, owner: OwnerCookie, dev: usize, group: Option<usize>) -> Result {
        let owner = owner.as_ptr() as usize;
        // No need to exclude binds: a release only lets them succeed. The
        // claim is released in its record's slot (a record's slot -> the
        // group mutex, as when its device goes).
        if !self.shared.records.remove(|r| r.is(owner, dev, group)) {
            return Err(ENOENT);
        }
        Ok(())
    }
}

#[kunit_tests(rsva_dma_owner)]
mod tests {
    use super::*;
    use kernel::iommu::dma_owner::DmaOwner;

    fn owner() -> Result<Pin<KBox<DmaOwner>>> {
        KBox::pin_init(DmaOwner::new(), GFP_KERNEL)
    }

    #[test]
    fn group_claims_exclude_other_owners() -> Result {
        let dev = glue::test_free_pci_device()?;
        let (a, b) = (owner()?, owner()?);
        assert!(!glue::user_owned(&dev));
        let claim = GroupClaim::new(&dev, a.as_ref())?;
        assert!(glue::user_owned(&dev));
        assert_eq!(GroupClaim::new(&dev, b.as_ref()).err(), Some(EPERM));
        assert_eq!(DeviceClaim::new(&dev, b.as_ref()).err(), Some(EPERM));
        drop(claim);
        assert!(!glue::user_owned(&dev));
        let claim = GroupClaim::new(&dev, b.as_ref())?;
        assert!(glue::user_owned(&dev));
        drop(claim);
        assert!(!glue::user_owned(&dev));
        Ok(())
    }

    #[test]
    fn device_claims_nest_for_one_owner() -> Result {
        let dev = glue::test_free_pci_device()?;
        let (a, b) = (owner()?, owner()?);
        let first = DeviceClaim::new(&dev, a.as_ref())?;
        let second = DeviceClaim::new(&dev, a.as_ref())?;
        assert_eq!(GroupClaim::new(&dev, b.as_ref()).err(), Some(EPERM));
        drop(first);
        // One claim left: still owned.
        assert!(glue::user_owned(&dev));
        drop(second);
        assert!(!glue::user_owned(&dev));
        Ok(())
    }

    /// A device on its way out, between the first and the last event of
    /// its removal, has its claims ended at the first and refuses new ones
    /// until the last, when the IOMMU core has taken it out of its group:
    /// a claim made in between would be released on a device with no
    /// group. (The device is not really removed: the events are told to
    /// the listener directly, and it can be claimed again after.)
    #[test]
    fn a_departing_device_refuses_claims() -> Result {
        let dev = glue::test_free_pci_device()?;
        let bus = BusId::of(&dev);
        assert!(bus.is_some());
        let Some(bus) = bus else {
            return Ok(());
        };
        let a = owner()?;
        let cookie = a.as_ref().cookie();
        let claims = KBox::pin_init(Claims::new(), GFP_KERNEL)?;
        let ender = Ender {
            shared: claims.shared.clone(),
        };
        claims.claim_device(&dev, cookie)?;
        ender.bus_event(bus, BusEvent::DelDevice(&dev));
        assert!(!glue::user_owned(&dev));
        assert_eq!(claims.claim_device(&dev, cookie), Err(ENODEV));
        if Group::of(&dev)?.device_count() == 1 {
            assert_eq!(claims.claim_group(&dev, cookie), Err(ENODEV));
        }
        assert!(!glue::user_owned(&dev));
        ender.bus_event(bus, BusEvent::RemovedDevice(&dev));
        claims.claim_device(&dev, cookie)?;
        assert!(glue::user_owned(&dev));
        // The claim that ended is forgotten, the new one released.
        let addr = addr_of_dev(&dev);
        assert_eq!(claims.release_device(addr, cookie), Ok(()));
        assert_eq!(claims.release_device(addr, cookie), Ok(()));
        assert_eq!(claims.release_device(addr, cookie), Err(ENOENT));
        assert!(!glue::user_owned(&dev));
        Ok(())
    }

    #[test]
    fn claims_need_a_group() -> Result {
        let a = owner()?;
        let nogroup = glue::TestDevice::new()?;
        let g = GroupClaim::new(&nogroup, a.as_ref()).err();
        let d = DeviceClaim::new(&nogroup, a.as_ref()).err();
        assert_eq!((g, d), (Some(ENODEV), Some(ENODEV)));
        let claims = KBox::pin_init(Claims::new(), GFP_KERNEL)?;
        let cookie = a.as_ref().cookie();
        assert_eq!(claims.claim_group(&nogroup, cookie), Err(ENODEV));
        assert_eq!(claims.claim_device(&nogroup, cookie), Err(ENODEV));
        assert_eq!(claims.release_group(&nogroup, cookie), Err(ENOENT));
        Ok(())
    }
}
