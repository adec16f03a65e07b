// SPDX-License-Identifier: GPL-2.0

//! SVA bonds: bind a process address space (mm) to a device, unbind it,
//! and the PASID of a bond.
//!
//! The rules, from the threads rsva grew out of (*Re: [PATCH v4 01/26]
//! mm/mmu_notifiers: pass private data down to alloc_notifier()*, Jason
//! Gunthorpe, Jean-Philippe Brucker, March 2020; *Re: [PATCH 2/2]
//! iommu/sva: Remove mm parameter from SVA bind API*, Jacob Pan,
//! Jean-Philippe Brucker, April 2021) and from `drivers/iommu/iommu-sva.c`:
//!
//! - One bond per (device, mm): binding again returns the same handle with
//!   one more reference; each bind needs one unbind.
//! - The kernel's API names a bond by the address of its
//!   `struct iommu_sva` (the core follows it); rsva's own C API by a
//!   [`Token`], one per bond while rsva's API holds references to it, dead
//!   for good after its last unbind there, so that a stale handle never
//!   names a later bond at the same address.
//! - All devices bound to an mm use the mm's one PASID ([`PasidService`]),
//!   and share one SVA domain where the IOMMU accepts it (the domain is
//!   tried on the new device first); devices of one IOMMU group share the
//!   group's PASID attachment.
//! - The domain comes from the IOMMU driver's `domain_alloc_sva` and holds
//!   `mmgrab()` on the mm; the driver's mmu notifier on it only clears and
//!   invalidates in `release`. When its last attachment goes it is kept,
//!   attached nowhere, for the mm's next bind (binding again then costs an
//!   attach, not a domain allocation and an mmu notifier registration); it
//!   is freed by `iommu_domain_free()` when the PASID's lease ends (the mm's
//!   release, switching rsva off) or when the device it was detached from
//!   goes away (a devres action, `rsva_keep_for()`, so that a modular IOMMU
//!   driver is still there to free it).
//! - A bond may carry the driver's stop callback: it runs when the mm goes
//!   away, before the IOMMU clears the PASID entry (its notifier is
//!   registered after the domain's, and the mm's notifiers run newest
//!   first), once, and never after unbind returned.
//! - Bonds outlive the mm's release until unbind; unbinding after the mm
//!   died is safe (the bond holds the mm grabbed, not its users).
//! - Every mm with a bond, while its PASID is leased, is on the IOMMU
//!   core's list for kernel page-table invalidation (`iommu_sva_track_mm()`,
//!   from its first bond, before the PASID is attached, until its last
//!   bond goes, after the detach, or the lease ends), as in the C
//!   implementation, which lists an mm while it has SVA domains: an mm
//!   with only kept domains (attached nowhere) is not flushed on every
//!   kernel page-table free.
//!
//! Types say which mm reference is held: binding needs an
//! [`MmWithUser`] (a live mm, `mmget`), a bond keeps an `ARef<Mm>`
//! (`mmgrab`, through its [`MmPasid`]).
//!
//! Lock order: the serve lock (rsva's own entry points, read) ->
//! [`PasidService`]'s first-bind mutex -> `mmap_lock` (notifier
//! registration) ; [`MmBonds`]' mutex -> `iommu_sva_lock` (track, untrack),
//! -> `mmap_lock` (the IOMMU driver's `domain_alloc_sva`) and -> the group
//! mutex (attach, detach) ; the handle registries' spinlocks are innermost.
//! A bind watches its device's bus first (the watches' mutex -> the bus's
//! notifier lock, on the bus's first bind), under the serve lock or the
//! IOMMU core's provider rw-semaphore only; a driver's unbind runs the
//! watch's listener under the device's lock and the bus's notifier lock
//! -> [`MmBonds`]' mutex (a queued unbind), and waits for rsva's
//! workqueue. The bind paths check with lockdep that the mmap lock is not
//! held. Only an mm's first bind takes a global mutex; the hot path allocates one
//! object (the bond), as the C implementation does (its handle).

#![forbid(unsafe_code)]

use kernel::{
    device::{Bound, Device},
    impl_has_mmu_notifier,
    iommu::dma_owner::Group,
    mm::mmu_notifier::{MmuNotifier, MmuNotifierOps},
    mm::MmWithUser,
    new_mutex, new_spinlock,
    prelude::*,
    sync::{
        aref::ARef,
        atomic::{Atomic, Relaxed},
        Arc, ArcBorrow, Mutex, MutexGuard, SpinLock,
    },
};

use crate::{
    dma::claims::Claims,
    kext::device::bus_notifier::{BusEvent, BusId, BusListener},
    kext::device::bus_watches::BusWatches,
    kext::glue::{self, DeviceWatch},
    kext::handles::{Handles, Token},
    kext::iommu::domain::{IommuPresent, SvaDomain},
    kext::iommu::sva::{BoundByCaller, HandleAddr, Provider, SvaHandle},
    sva::iopf::Iopf,
    sva::pasid::{LeaseData, MmPasid, PasidRange, PasidService},
};

/// A driver's stop callback, which a bond may carry.
pub(crate) trait StopHook: Send + Sync {
    /// Stops the device's work on the PASID of the bond that `handle`
    /// names before the IOMMU stops translating it. Called at most once per
    /// bond, from the mm's release (process context, may sleep), and only
    /// while rsva's own API holds the bond (its token is `handle`).
    fn stop(&self, handle: Token);

    /// What tells two callbacks apart: a driver that binds again names the
    /// same one (for C drivers, the function's address and its data).
    fn key(&self) -> (usize, usize);
}

/// The stop callback a bond carries.
pub(crate) type Stop = Option<KBox<dyn StopHook>>;

/// What tells two stop callbacks apart.
fn stop_key(stop: &Stop) -> Option<(usize, usize)> {
    stop.as_ref().map(|s| s.key())
}

/// The tasks that run a stop callback now; 64 at once are told apart.
static IN_STOP: glue::TaskMarks<64> = glue::TaskMarks::new();

/// Whether the current task runs a stop callback, so is inside an mm's
/// release (an SRCU read section of the mmu notifiers): it may unbind the
/// handles of that mm, but not bind, nor unbind another mm's handles, which
/// may wait for locks whose holders wait for that grace period.
pub(crate) fn in_stop_callback() -> bool {
    IN_STOP.has_current()
}

/// The API a bind came through. One bond serves both (one per device and
/// mm), but counts its users per API: a handle is unbound only through the
/// API that bound it, so the IOMMU core's count of the provider's handles
/// and the module references of each API stay balanced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Api {
    /// `iommu_sva_bind_device()`, served through the IOMMU core.
    Kernel = 0,
    /// rsva's own entry points (`rsva_sva_bind_device()`, ...).
    Own = 1,
}

/// What an unbind names a bond by: the address of its handle (the
/// kernel's API), or its token (rsva's own).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Via {
    Kernel,
    Own(Token),
}

impl Via {
    /// The API the reference was taken through.
    fn api(self) -> Api {
        match self {
            Via::Kernel => Api::Kernel,
            Via::Own(_) => Api::Own,
        }
    }
}

/// One bond of a device and an mm: what `bind` returns to drivers.
///
/// # Invariants
///
/// - `sva` is the handle drivers see, holding the bond's device. Its attach
///   handle is the one of the group's attachment when this bond made it
///   (the domain then keeps the handle while the PASID is attached). Its
///   token is set, under the mm's [`MmBonds`] mutex, exactly while rsva's
///   own API holds references to the bond, and registered in
///   [`LiveBonds`]' tokens meanwhile.
/// - While `stop` is set, `stop_notifier` is registered on the mm from
///   bind until unbind puts it (holding a reference to the bond until its
///   `free_notifier`).
/// - `stopped` becomes true once, under `stop_lock`: the first of release
///   and unbind. The stop callback runs under `stop_lock`.
#[pin_data]
pub(crate) struct Bond {
    sva: Arc<SvaHandle>,
    stop_notifier: MmuNotifier<Bond>,
    group: ARef<Group>,
    mm: Arc<Lease>,
    stop: Stop,
    #[pin]
    stop_lock: Mutex<()>,
    stopped: Atomic<bool>,
}

impl Bond {
    /// The handle drivers see.
    pub(crate) fn handle(&self) -> &SvaHandle {
        &self.sva
    }

    /// The PASID of the bond (the mm's).
    pub(crate) fn pasid(&self) -> u32 {
        self.mm.pasid()
    }

    /// Calls the stop callback unless it ran or the bond is unbound. The
    /// mm's release, in the current task: the callback may unbind handles
    /// of this mm (see [`Sva::unbind`]).
    fn stop_once(&self) {
        let Some(stop) = &self.stop else {
            return;
        };
        let _stopping = self.stop_lock.lock();
        if self.stopped.xchg(true, Relaxed) {
            return;
        }
        // Only the kernel's API holds the bond: the driver that gave the
        // callback unbound all its references.
        let Some(token) = self.sva.token() else {
            return;
        };
        let _releasing = self.mm.releasing();
        IN_STOP.run(|| stop.stop(token));
    }

    /// Waits for a stop callback that runs (one that starts later finds
    /// the bond's token gone and calls nothing).
    fn wait_stop(&self) {
        drop(self.stop_lock.lock());
    }

    /// Makes sure the stop callback never runs from now on: waits for one
    /// that runs (never called from the callback: its unbinds are queued).
    fn stop_never(&self) {
        let _stopping = self.stop_lock.lock();
        self.stopped.store(true, Relaxed);
    }
}

impl_has_mmu_notifier!(impl HasMmuNotifier for Bond { self.stop_notifier });

#[vtable]
impl MmuNotifierOps for Bond {
    /// The mm goes away: stop the device's work before the IOMMU clears
    /// the PASID entry. Frees nothing; idempotent.
    fn release(this: ArcBorrow<'_, Self>) {
        this.stop_once();
    }
}

/// A bond and the number of binds it answered, less unbinds, per [`Api`].
struct BondUse {
    bond: Arc<Bond>,
    users: [u32; 2],
}

/// The mm's PASID attached to one IOMMU group, and the bonds of the
/// group's devices that use it.
///
/// # Invariants
///
/// The group's PASID is attached to the domain whose key is `domain`
/// (which keeps the attach handle).
struct GroupAttach {
    group: ARef<Group>,
    /// The attached domain's [`SvaDomain::key`].
    domain: usize,
    users: u32,
}

/// An SVA domain of the mm and its number of group attachments.
///
/// A domain whose last attachment went (`users == 0`) is kept for the
/// mm's next bind until the PASID's lease ends or `watched`, the device it
/// was detached from, goes away: `rsva_keep_for()` watches that device
/// while the domain is kept, and the watch ends when the domain is freed,
/// when another device uses it, or when the device goes while the domain
/// is in use. Used again by the watched device, the domain keeps its watch
/// for that device's next detach: an mm that binds and unbinds one device
/// over and over makes one watch (two devres actions and a module pin),
/// not one per cycle. A watched domain in use (`users > 0`) keeps the
/// watch of the device it was last kept for, until another device reuses
/// it or it is kept for another, freed, or that device's driver goes.
///
/// Freeing a domain may wait for an SRCU grace period (AMD's SVA domain
/// unregisters its mmu notifier), so a domain is never freed under the
/// mutex of [`MmBonds`], which the mm's release takes, nor in an mmu
/// notifier callback: it leaves the list first and is freed after.
struct DomainUse {
    domain: SvaDomain,
    users: u32,
    watched: Option<DeviceWatch>,
}

impl DomainUse {
    /// Ends the domain's watch: it is freed, used by another device, or
    /// its device goes while it is in use.
    fn unwatch(&mut self) {
        self.watched = None;
    }

    /// Frees a kept domain (attached nowhere, off the mm's list), which
    /// its watch shows its IOMMU driver to be there for, and ends the
    /// watch. Process context, no lock of rsva held, outside mmu notifier
    /// callbacks.
    fn free_kept(mut self) {
        match self.watched.take() {
            Some(watch) => self.domain.free(IommuPresent::Watched(&watch)),
            None => {
                // Kept domains are watched (see `detach`): not reached.
                pr_warn!("rsva: an unwatched kept SVA domain is leaked\n");
                core::mem::forget(self.domain);
            }
        }
    }

    /// Frees a domain that was never kept (attached nowhere, off the mm's
    /// list), whose IOMMU driver `present` shows to be there. As
    /// [`DomainUse::free_kept`] for the context.
    fn free(mut self, present: IommuPresent<'_>) {
        self.unwatch();
        self.domain.free(present);
    }
}

struct BondsInner {
    bonds: KVec<BondUse>,
    attaches: KVec<GroupAttach>,
    domains: KVec<DomainUse>,
}

/// An unbind a stop callback asked for in the mm's release: the bond, the
/// API, and a watch of the bond's device, made while the caller promised
/// it bound, which shows its IOMMU driver there when the unbind is done.
struct DeferredUnbind {
    bond: Arc<Bond>,
    via: Via,
    watch: DeviceWatch,
}

/// Unbinds that stop callbacks asked for in the mm's release, done after
/// it from rsva's workqueue or when the driver of the bond's device is
/// about to be unbound (the watch of its bus, [`DriverWatch`], or for an
/// unbind queued during the driver's `remove`, the device's devres action),
/// whichever comes first, and the registry of the service they go to.
struct Deferred {
    live: Option<Arc<LiveBonds>>,
    unbinds: KVec<DeferredUnbind>,
}

/// The PASID lease of a bound mm, carrying its bonds.
pub(crate) type Lease = MmPasid<MmBonds>;

/// The bonds of one mm, with their attachments and domains.
#[pin_data]
pub(crate) struct MmBonds {
    #[pin]
    inner: Mutex<BondsInner>,
    #[pin]
    deferred: SpinLock<Deferred>,
}

impl LeaseData for MmBonds {
    fn new() -> impl PinInit<Self> {
        MmBonds::new()
    }

    /// Once the lease ended: takes the mm off the IOMMU core's list; then
    /// the unbinds the mm's stop callbacks asked for, and the free of the
    /// domains kept for its next bind.
    fn settle(lease: &Lease) {
        // Also queued for unbinds from the release's stop callbacks, which
        // may run before the lease ends; its end settles again.
        if !lease.leased() {
            lease.data().untrack(lease);
        }
        lease.data().drop_kept();
    }
}

impl MmBonds {
    /// No bonds.
    pub(crate) fn new() -> impl PinInit<Self> {
        pin_init!(Self {
            inner <- new_mutex!(BondsInner {
                bonds: KVec::new(),
                attaches: KVec::new(),
                domains: KVec::new(),
            }),
            deferred <- new_spinlock!(Deferred {
                live: None,
                unbinds: KVec::new(),
            }),
        })
    }

    /// How many devices the mm is bound to.
    pub(crate) fn count(&self) -> usize {
        self.inner.lock().bonds.len()
    }

    /// Takes `lease`'s mm off the IOMMU core's list (its lease ended).
    /// Process context, outside mmu notifier callbacks.
    pub(crate) fn untrack(&self, lease: &Lease) {
        let _inner = self.inner.lock();
        lease.set_tracked(false);
    }

    /// How many domains are kept for reuse.
    pub(crate) fn kept(&self) -> usize {
        self.inner
            .lock()
            .domains
            .iter()
            .filter(|d| d.users == 0)
            .count()
    }

    /// Takes the first kept domain that `pick` accepts off the list.
    fn take_kept(&self, pick: impl Fn(&DomainUse) -> bool) -> Option<DomainUse> {
        let mut inner = self.inner.lock();
        let i = inner.domains.iter().position(|d| d.users == 0 && pick(d))?;
        inner.domains.remove(i).ok()
    }

    /// Queues an unbind asked for from a stop callback in the mm's release
    /// (see [`Sva::unbind`]) of a bond whose device is `dev`, bound;
    /// `ENOMEM` if it cannot be queued, `ENODEV` while rsva is unloaded.
    fn defer_unbind(
        &self,
        live: &Arc<LiveBonds>,
        bond: Arc<Bond>,
        dev: &Device<Bound>,
        via: Via,
    ) -> Result {
        let watch = DeviceWatch::new(dev)?;
        let mut d = self.deferred.lock();
        d.unbinds
            .push(DeferredUnbind { bond, via, watch }, GFP_ATOMIC)?;
        if d.live.is_none() {
            d.live = Some(live.clone());
        }
        Ok(())
    }

    /// Does the unbinds queued in the mm's release whose watch `pick`
    /// accepts, one at a time. Returns how many it did.
    fn finish_deferred_unbinds(&self, pick: impl Fn(&DeviceWatch) -> bool) -> usize {
        let mut done = 0;
        loop {
            let next = {
                let mut d = self.deferred.lock();
                let Some(i) = d.unbinds.iter().position(|u| pick(&u.watch)) else {
                    return done;
                };
                let last = d.unbinds.len() - 1;
                d.unbinds.swap(i, last);
                d.unbinds.pop().and_then(|u| d.live.clone().map(|l| (l, u)))
            };
            let Some((live, u)) = next else {
                return done;
            };
            done += 1;
            if let Err(e) = live.unbind_bond(&u.bond, u.via, IommuPresent::Watched(&u.watch)) {
                pr_warn!("rsva: an unbind from a stop callback failed: {e:?}\n");
            }
        }
    }

    /// Does the unbinds queued in the mm's release, then frees the domains
    /// kept for reuse, one at a time, outside the lock. Process context,
    /// outside mmu notifier callbacks (the mm's release defers this to a
    /// work item, see [`MmPasid`] and [`LeaseData::settle`]).
    pub(crate) fn drop_kept(&self) {
        let _done = self.finish_deferred_unbinds(|_| true);
        #[cfg(CONFIG_KUNIT)]
        glue::test_settled_unbinds(_done);
        while let Some(d) = self.take_kept(|_| true) {
            d.free_kept();
        }
    }

    /// `dev`'s driver goes away: does the unbinds queued in the mm's
    /// release with a watch of `dev`, ends the watches of `dev` that
    /// domains in use kept, then frees the domains kept while `dev` is
    /// watched. Runs when the driver's unbind begins
    /// ([`DriverWatch`]) and in `dev`'s devres action, so its IOMMU driver
    /// is still there. A driver that unbinds its device from its own stop
    /// callback leaves its queued unbinds to rsva's workqueue (doing them
    /// here would wait for that callback); the domain's free then checks
    /// that the device is still its IOMMU's.
    pub(crate) fn device_gone(&self, dev: usize) {
        if !in_stop_callback() {
            self.finish_deferred_unbinds(|w| w.watches(dev));
        }
        for d in self.inner.lock().domains.iter_mut() {
            if d.users > 0 && d.watched.as_ref().is_some_and(|w| w.watches(dev)) {
                d.unwatch();
            }
        }
        while let Some(d) = self.take_kept(|d| d.watched.as_ref().is_some_and(|w| w.watches(dev))) {
            d.free_kept();
        }
    }
}

/// Statistics for debugfs and the benchmarks.
pub(crate) struct Counters {
    pub(crate) binds: Atomic<u64>,
    pub(crate) unbinds: Atomic<u64>,
    pub(crate) shared: Atomic<u64>,
    pub(crate) domains: Atomic<u64>,
    pub(crate) reused: Atomic<u64>,
    pub(crate) live: Atomic<u64>,
}

/// Number of buckets of [`ByAddr`].
const HANDLE_BUCKETS: usize = 256;

/// The handles of live bonds, by address: how the IOMMU core's calls for a
/// handle of rsva's (`iommu_sva_unbind_device()`, `iommu_sva_get_pasid()`)
/// find its bond without following it. Buckets keep their capacity, so
/// registering a handle does not allocate once warm.
struct ByAddr {
    buckets: [KVec<(usize, Arc<Bond>)>; HANDLE_BUCKETS],
}

impl ByAddr {
    const fn new() -> Self {
        Self {
            buckets: [const { KVec::new() }; HANDLE_BUCKETS],
        }
    }

    fn bucket(key: usize) -> usize {
        // Fibonacci hashing of the address.
        (key.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 56) % HANDLE_BUCKETS
    }

    /// Registers `bond` under `key`. May allocate (atomically) to grow.
    fn insert(&mut self, key: usize, bond: Arc<Bond>) -> Result {
        self.buckets[Self::bucket(key)].push((key, bond), GFP_ATOMIC)?;
        Ok(())
    }

    fn get(&self, key: usize) -> Option<&Arc<Bond>> {
        self.buckets[Self::bucket(key)]
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, b)| b)
    }

    fn remove(&mut self, key: usize) -> Option<Arc<Bond>> {
        let bucket = &mut self.buckets[Self::bucket(key)];
        let i = bucket.iter().position(|(k, _)| *k == key)?;
        let last = bucket.len() - 1;
        bucket.swap(i, last);
        bucket.pop().map(|(_, b)| b)
    }
}

/// The bonds with users, by handle address and by token, and the
/// service's counters; shared by the service and the unbinds an mm's
/// release deferred.
///
/// # Invariants
///
/// `handles` holds the handle of every bond with users; `tokens` every
/// bond that rsva's own API holds references to, under its handle's token.
#[pin_data]
pub(crate) struct LiveBonds {
    #[pin]
    handles: SpinLock<ByAddr>,
    #[pin]
    tokens: SpinLock<Handles<Bond>>,
    pub(crate) counters: Counters,
}

/// The listener of the watches of the bound devices' buses: a device's
/// driver about to be unbound gets the unbinds queued for the device done
/// (and the domains kept for it freed) before its `remove`, and so before
/// the bus's `dma_cleanup`, which for a driver of the DMA API gives the
/// group's default domain back and expects no PASID attached (the IOMMU
/// core warns otherwise and keeps the group's ownership count). The
/// device's devres action ([`DeviceWatch`]) runs after that cleanup.
struct DriverWatch {
    pasids: Arc<PasidService<MmBonds>>,
}

impl BusListener for DriverWatch {
    fn bus_event(&self, _bus: BusId, event: BusEvent<'_>) {
        // A device without a watch has no unbind queued and no domain kept.
        if let BusEvent::UnbindDriver(dev) = event {
            if DeviceWatch::exists(dev) {
                device_gone(&self.pasids, core::ptr::from_ref(dev) as usize);
            }
        }
    }
}

/// The driver of the device at address `dev` goes away (the device is only
/// compared): the unbinds queued for the device in mms' releases are done,
/// and the domains kept for it freed ([`MmBonds::device_gone`]); leases
/// that ended before left the map after queueing their unbinds and frees
/// on rsva's workqueue: waiting for it covers them. Process context; the
/// driver is still bound, or its devres actions run.
fn device_gone(pasids: &PasidService<MmBonds>, dev: usize) {
    pasids.for_each(|m| m.data().device_gone(dev));
    glue::flush_deferred();
}

/// The SVA service: the PASIDs and every bond rsva made.
#[pin_data]
pub(crate) struct Sva {
    /// The buses of the bound devices, watched for their drivers' unbinds
    /// (dropped first: no listener runs after).
    #[pin]
    watches: BusWatches<DriverWatch>,
    pub(crate) pasids: Arc<PasidService<MmBonds>>,
    live: Arc<LiveBonds>,
    provider: &'static Provider,
}

impl Sva {
    /// An SVA service drawing PASIDs from `range`, `limit` per user; its
    /// handles name `provider` as their maker.
    pub(crate) fn new(
        range: PasidRange,
        limit: u32,
        provider: &'static Provider,
    ) -> impl PinInit<Self, Error> {
        try_pin_init!(Self {
            watches <- BusWatches::new(),
            pasids: Arc::pin_init(PasidService::new(range, limit), GFP_KERNEL)?,
            live: Arc::pin_init(
                pin_init!(LiveBonds {
                    handles <- new_spinlock!(ByAddr::new()),
                    tokens <- new_spinlock!(Handles::new()),
                    counters: Counters {
                        binds: Atomic::new(0),
                        unbinds: Atomic::new(0),
                        shared: Atomic::new(0),
                        domains: Atomic::new(0),
                        reused: Atomic::new(0),
                        live: Atomic::new(0),
                    },
                }),
                GFP_KERNEL,
            )?,
            provider,
        })
    }

    /// Binds `mm` to `dev` for rsva's own API, or takes one more reference
    /// to their bond: returns the bond's token, the same for every
    /// reference of rsva's API until the last is unbound. Errors as
    /// [`Sva::bind_kernel`], and `ENOSPC` when tokens are exhausted.
    pub(crate) fn bind_own(
        &self,
        claims: &Claims,
        dev: &Device<Bound>,
        mm: &MmWithUser,
        stop: Stop,
    ) -> Result<Token> {
        let (_, token) = self.bind(claims, dev, mm, stop, Api::Own)?;
        // `bind` gives every reference of `Api::Own` its token.
        token.ok_or(EINVAL)
    }

    /// Binds `mm` to `dev` for the kernel's API, or takes one more
    /// reference to their bond; the caller names the bond by its handle's
    /// address.
    ///
    /// Errors: `EDEADLK` from a stop callback (inside an mm's release),
    /// `ENODEV` (no IOMMU group), `EOPNOTSUPP` (no PASID support or
    /// no SVA in the IOMMU), `EBUSY` (the group is claimed by an owner that
    /// manages DMA itself, or the IOMMU refused the PASID), the errors of
    /// [`PasidService::get`] (`EOVERFLOW`, `ENOSPC`, `EDQUOT`), `ENOMEM`.
    ///
    /// `dev` has a driver bound (the IOMMU core's rule for PASID
    /// attachment), and the caller keeps it bound until it unbinds. The
    /// bind passes the gate of `claims` (rsva's DMA ownership claims).
    pub(crate) fn bind_kernel(
        &self,
        claims: &Claims,
        dev: &Device<Bound>,
        mm: &MmWithUser,
    ) -> Result<Arc<Bond>> {
        self.bind(claims, dev, mm, None, Api::Kernel)
            .map(|(bond, _)| bond)
    }

    /// Binds `mm` to `dev`, or takes one more reference to their bond,
    /// counted for `api`; with the bond's token for [`Api::Own`].
    ///
    /// Errors: `EDEADLK` from a stop callback (inside an mm's release),
    /// `ENODEV` (no IOMMU group), `EOPNOTSUPP` (no PASID support or
    /// no SVA in the IOMMU), `EBUSY` (the group is claimed by an owner that
    /// manages DMA itself, the bond has another stop callback, or the IOMMU
    /// refused the PASID), the errors of
    /// [`PasidService::get`] (`EOVERFLOW`, `ENOSPC`, `EDQUOT`), `ENOMEM`.
    ///
    /// `dev` has a driver bound (the IOMMU core's rule for PASID
    /// attachment), and the caller keeps it bound until it unbinds. The
    /// bind passes the gate of `claims` (rsva's DMA ownership claims). The
    /// bus of `dev` is watched from the bind on ([`BusWatches::watch`]:
    /// `ENOSPC` beyond its buses).
    fn bind(
        &self,
        claims: &Claims,
        dev: &Device<Bound>,
        mm: &MmWithUser,
        stop: Stop,
        api: Api,
    ) -> Result<(Arc<Bond>, Option<Token>)> {
        if in_stop_callback() {
            return Err(EDEADLK);
        }
        glue::assert_mmap_unlocked(mm);
        let group = Group::of(dev)?;
        // Before the bond can exist: a stop callback of the mm may unbind
        // it in the mm's release, where no notifier can be registered (the
        // registration may wait for a listener that waits for the release).
        self.watches.watch(dev, || DriverWatch {
            pasids: self.pasids.clone(),
        })?;
        let max_pasids = glue::dev_max_pasids(dev);
        let range = PasidRange::new(1, max_pasids.saturating_sub(1)).map_err(|_| EOPNOTSUPP)?;
        let lease = PasidService::get(&self.pasids, mm, range, glue::current_uid())?;

        // A group claimed by an owner that manages DMA itself (VFIO,
        // iommufd, rsva's C API) takes no PASID: user space drives its
        // devices, and the claim's release would find the PASID attached.
        // rsva's claims wait at the gate; others cannot come while a
        // DMA-API driver of the group is bound (the core refuses them).
        let _owners = claims.bind_pass();
        if group.has_dma_owner() {
            return Err(EBUSY);
        }
        let mut inner = lease.data().inner.lock();
        if let Some(b) = inner
            .bonds
            .iter_mut()
            .find(|b| core::ptr::eq::<Device>(b.bond.sva.device(), &**dev))
        {
            if stop.is_some() && stop_key(&b.bond.stop) != stop_key(&stop) {
                return Err(EBUSY);
            }
            let token = match (api, b.bond.sva.token()) {
                (Api::Kernel, _) => None,
                (Api::Own, Some(token)) => Some(token),
                // The first reference of rsva's API: a new token.
                (Api::Own, None) => {
                    let reserved = Handles::reserve(GFP_KERNEL)?;
                    Some(self.live.name(&b.bond, reserved))
                }
            };
            b.users[api as usize] += 1;
            self.live.counters.binds.add(1, Relaxed);
            return Ok((b.bond.clone(), token));
        }
        inner.bonds.reserve(1, GFP_KERNEL)?;
        let reserved = match api {
            Api::Own => Some(Handles::reserve(GFP_KERNEL)?),
            Api::Kernel => None,
        };
        let bond = self.new_bond(dev, group, &lease, stop)?;
        // The mm's first bond: on the core's list before its PASID is
        // attached anywhere (kernel page-table frees flush its devices).
        lease.set_tracked(true);
        if let Err((e, unused)) = self.attach(&mut inner, &bond, dev, mm) {
            return Err(fail_first_bind(inner, &lease, unused, e, dev));
        }
        if let Err(e) = self.register(&bond, mm) {
            let unused = detach(&mut inner, &bond, IommuPresent::Bound(dev));
            return Err(fail_first_bind(inner, &lease, unused, e, dev));
        }
        let mut users = [0; 2];
        users[api as usize] = 1;
        // Cannot fail: reserved above.
        inner.bonds.push(
            BondUse {
                bond: bond.clone(),
                users,
            },
            GFP_KERNEL,
        )?;
        let token = reserved.map(|r| self.live.name(&bond, r));
        self.live.counters.binds.add(1, Relaxed);
        self.live.counters.live.add(1, Relaxed);
        Ok((bond, token))
    }

    /// Makes the bond object.
    fn new_bond(
        &self,
        dev: &Device,
        group: ARef<Group>,
        lease: &Arc<Lease>,
        stop: Stop,
    ) -> Result<Arc<Bond>> {
        let sva = SvaHandle::new(dev, self.provider)?;
        let bond = Arc::pin_init(
            pin_init!(Bond {
                sva,
                stop_notifier: MmuNotifier::new(),
                group,
                mm: lease.clone(),
                stop,
                stop_lock <- new_mutex!(()),
                stopped: Atomic::new(false),
            }),
            GFP_KERNEL,
        )?;
        Ok(bond)
    }

    /// Registers the bond's handle, and its stop notifier if it has a stop
    /// callback.
    fn register(&self, bond: &Arc<Bond>, mm: &MmWithUser) -> Result {
        let key = bond.sva.addr().key();
        self.live.handles.lock().insert(key, bond.clone())?;
        if bond.stop.is_none() {
            return Ok(());
        }
        // Registered after the domain's notifier, so `release` reaches this
        // one first.
        let ret = MmuNotifier::register(bond, mm);
        if ret.is_err() {
            let registered = self.live.handles.lock().remove(key);
            drop(registered);
        }
        ret
    }

    /// Attaches the mm's PASID to the group of the bond's device `dev`, or
    /// takes one more reference to the group's attachment. On failure, a
    /// domain allocated here comes back with the error, to be freed once
    /// the caller dropped the lock.
    fn attach(
        &self,
        inner: &mut BondsInner,
        bond: &Arc<Bond>,
        dev: &Device<Bound>,
        mm: &MmWithUser,
    ) -> core::result::Result<(), (Error, Option<DomainUse>)> {
        if let Some(a) = inner
            .attaches
            .iter_mut()
            .find(|a| a.group.as_raw() == bond.group.as_raw())
        {
            a.users += 1;
            self.live.counters.shared.add(1, Relaxed);
            return Ok(());
        }
        let reserved = inner
            .attaches
            .reserve(1, GFP_KERNEL)
            .and_then(|()| inner.domains.reserve(1, GFP_KERNEL));
        reserved.map_err(|e| (e.into(), None))?;
        // An SVA domain of this mm that the IOMMU accepts for the device.
        let shared = inner
            .domains
            .iter_mut()
            .position(|d| d.domain.attach(dev, &bond.sva).is_ok());
        let domain = match shared {
            Some(j) => {
                let d = &mut inner.domains[j];
                if d.users == 0 {
                    self.live.counters.reused.add(1, Relaxed);
                    // In use again: watched only by the device it was kept
                    // for, if that is the one binding.
                    if !d.watched.as_ref().is_some_and(|w| w.is_of(dev)) {
                        d.unwatch();
                    }
                }
                d.users += 1;
                d.domain.key()
            }
            None => {
                // rsva serves the domain's I/O page faults (`sva/iopf.rs`), in
                // place of the core's `iommu_sva_iopf_handler()`; the domain
                // pins rsva until it is freed.
                let mut domain = SvaDomain::alloc::<Iopf>(dev, mm).map_err(|e| (e, None))?;
                let key = domain.key();
                if let Err(e) = domain.attach(dev, &bond.sva) {
                    let unused = DomainUse {
                        domain,
                        users: 0,
                        watched: None,
                    };
                    return Err((e, Some(unused)));
                }
                let new = DomainUse {
                    domain,
                    users: 1,
                    watched: None,
                };
                self.live.counters.domains.add(1, Relaxed);
                // Cannot fail: reserved above.
                inner
                    .domains
                    .push(new, GFP_KERNEL)
                    .map_err(|e| (e.into(), None))?;
                key
            }
        };
        // Cannot fail: reserved above.
        inner
            .attaches
            .push(
                GroupAttach {
                    group: bond.group.clone(),
                    domain,
                    users: 1,
                },
                GFP_KERNEL,
            )
            .map_err(|e| (e.into(), None))?;
        Ok(())
    }

    /// The live bond whose handle is `handle`, or `ENOENT` for a handle
    /// that rsva did not make or that was unbound. `handle` is only
    /// compared, never dereferenced.
    pub(crate) fn lookup(&self, handle: HandleAddr) -> Result<Arc<Bond>> {
        let handles = self.live.handles.lock();
        handles.get(handle.key()).cloned().ok_or(ENOENT)
    }

    /// The bond that rsva's own API names `token`, or `ENOENT` for a token
    /// whose last reference was unbound (or that was never handed out).
    pub(crate) fn lookup_token(&self, token: Token) -> Result<Arc<Bond>> {
        self.live.tokens.lock().get(token).ok_or(ENOENT)
    }

    /// Drops one reference of the kernel's API to the bond of `handle`; as
    /// [`Sva::unbind_own`] otherwise, and `EINVAL` for a handle with no
    /// reference from the kernel's API.
    pub(crate) fn unbind_kernel(&self, handle: HandleAddr, promise: &BoundByCaller) -> Result {
        let bond = self.lookup(handle)?;
        let dev = bond.sva.bound_device(promise).ok_or(EINVAL)?;
        self.unbind(&bond, dev, Via::Kernel)
    }

    /// Drops one reference of rsva's own API to the bond that `token`
    /// names; the last of that API kills the token for good (and the stop
    /// callback never runs after it), the last of all detaches the PASID.
    /// Safe after the mm died. `ENOENT` for a token that is not live
    /// (never handed out, or its last reference unbound, even if the same
    /// device and mm were bound again since), `EDEADLK` from the stop
    /// callback of another mm.
    ///
    /// From a stop callback of a bond of the same mm, the unbind is queued
    /// and done from rsva's workqueue once the release is over, or before
    /// the device's driver goes if it goes first ([`DriverWatch`]; `ENOMEM`
    /// if it cannot be queued): the release is an SRCU read-side section, and
    /// detaching drains the PASID's page requests, which waits for fault
    /// handlers, one of which may be in `exit_mmap()` of another mm waiting
    /// for that very grace period (its `mmput()`). The stop callback does
    /// not run again either way. A handle unbound twice there gets its
    /// error logged, not returned.
    ///
    /// `promise` is the caller's, that the handle's device is bound to its
    /// driver during the call.
    pub(crate) fn unbind_own(&self, token: Token, promise: &BoundByCaller) -> Result {
        let bond = self.lookup_token(token)?;
        // The token died since the look-up: not this handle's any more.
        let dev = bond.sva.bound_device(promise).ok_or(ENOENT)?;
        self.unbind(&bond, dev, Via::Own(token))
    }

    /// [`Sva::unbind_own`] or [`Sva::unbind_kernel`] of the bond found,
    /// whose device `dev` the caller promised bound.
    fn unbind(&self, bond: &Arc<Bond>, dev: &Device<Bound>, via: Via) -> Result {
        let lease = bond.mm.clone();
        if lease.releasing_here() {
            lease
                .data()
                .defer_unbind(&self.live, bond.clone(), dev, via)?;
            MmPasid::defer_settle(&lease);
            return Ok(());
        }
        if in_stop_callback() {
            return Err(EDEADLK);
        }
        self.live.unbind_bond(bond, via, IommuPresent::Bound(dev))
    }

    /// The driver of the device at address `dev` goes away: its devres
    /// action (`rsva_keep_for()`) does what is left for the device, as the
    /// watch of its bus did when the driver's unbind began ([`DriverWatch`];
    /// an unbind queued since, during the driver's `remove`, is done here).
    /// The device is only compared.
    pub(crate) fn device_gone(&self, dev: usize) {
        device_gone(&self.pasids, dev);
    }

    /// How many bonds have users.
    pub(crate) fn live(&self) -> u64 {
        self.live.counters.live.load(Relaxed)
    }

    /// The service's counters.
    pub(crate) fn counters(&self) -> &Counters {
        &self.live.counters
    }
}

impl LiveBonds {
    /// Names `bond` by a new token, registered in the place `reserved`;
    /// called under the mm's [`MmBonds`] mutex when rsva's own API takes
    /// its first reference to the bond.
    fn name(&self, bond: &Arc<Bond>, reserved: crate::kext::handles::Reserved<Bond>) -> Token {
        let token = self.tokens.lock().insert(reserved, bond.clone());
        bond.sva.set_token(Some(token));
        token
    }

    /// [`Sva::unbind`] of a bond, outside any mm's release; `present`
    /// shows the IOMMU driver of the bond's device there.
    fn unbind_bond(&self, bond: &Arc<Bond>, via: Via, present: IommuPresent<'_>) -> Result {
        let api = via.api();
        let lease = bond.mm.clone();
        let mut inner = lease.data().inner.lock();
        let i = inner
            .bonds
            .iter()
            .position(|b| Arc::ptr_eq(&b.bond, bond))
            .ok_or(ENOENT)?;
        if let Via::Own(token) = via {
            // Checked under the mutex that names and unnames bonds: a
            // token that died since its look-up stays dead, whatever
            // references rsva's API took since.
            if bond.sva.token() != Some(token) {
                return Err(ENOENT);
            }
        }
        let users = &mut inner.bonds[i].users;
        if users[api as usize] == 0 {
            return Err(EINVAL);
        }
        users[api as usize] -= 1;
        self.counters.unbinds.add(1, Relaxed);
        // The last reference of rsva's API: the token dies.
        let unnamed = match via {
            Via::Own(token) if users[api as usize] == 0 => {
                bond.sva.set_token(None);
                self.tokens.lock().remove(token)
            }
            _ => None,
        };
        if users.iter().any(|&u| u > 0) {
            drop(inner);
            let killed = unnamed.is_some();
            drop(unnamed);
            if killed && bond.stop.is_some() {
                // The callback belongs to rsva's API, whose last reference
                // went: it never runs after this returned.
                bond.wait_stop();
            }
            return Ok(());
        }
        drop(inner.bonds.remove(i));
        let registered = self.handles.lock().remove(bond.sva.addr().key());
        drop(registered);
        let unused = detach(&mut inner, bond, present);
        if inner.bonds.is_empty() {
            // The last bond: no device translates for the mm any more.
            lease.set_tracked(false);
        }
        drop(inner);
        drop(unnamed);
        if let Some(d) = unused {
            d.free(present);
        }
        if bond.stop.is_some() {
            // The driver's callback never runs once unbind returned.
            bond.stop_never();
            // Registered at bind; `put()` waits for nothing. The notifier's
            // reference to the bond goes in its `free_notifier`.
            bond.stop_notifier.put();
        }
        self.counters.live.fetch_sub(1, Relaxed);
        Ok(())
    }
}

/// Undoes a first bind of (device, mm) that failed with `e` after its bond
/// was made: the mm leaves the core's list if it has no bond left, and
/// `unused`, a domain the bind allocated or detached, is freed once the
/// lock is dropped (the bound device `dev` is of its IOMMU). Returns `e`.
fn fail_first_bind(
    inner: MutexGuard<'_, BondsInner>,
    lease: &Lease,
    unused: Option<DomainUse>,
    e: Error,
    dev: &Device<Bound>,
) -> Error {
    if inner.bonds.is_empty() {
        lease.set_tracked(false);
    }
    drop(inner);
    if let Some(d) = unused {
        d.free(IommuPresent::Bound(dev));
    }
    e
}

/// Drops the bond's reference to its group's attachment; the last
/// detaches the PASID and drops the domain's. The domain's last keeps it
/// for the mm's next bind while the PASID is leased (watched by the
/// bond's device, if `present` shows it bound), and otherwise returns it
/// to be freed once the caller dropped the lock (an unbind queued from a
/// stop callback frees it: its mm is going away). Never called
/// in the mm's release: detaching drains the PASID's page requests, and a
/// fault handler may wait for the notifiers' grace period (see
/// [`Sva::unbind`]).
fn detach(inner: &mut BondsInner, bond: &Bond, present: IommuPresent<'_>) -> Option<DomainUse> {
    let i = inner
        .attaches
        .iter()
        .position(|a| a.group.as_raw() == bond.group.as_raw())?;
    let a = &mut inner.attaches[i];
    a.users -= 1;
    if a.users > 0 {
        return None;
    }
    let key = a.domain;
    // An attached domain is on the list: each attachment is a user.
    let j = inner.domains.iter().position(|d| d.domain.key() == key)?;
    if let Err(e) = inner.domains[j].domain.detach(bond.sva.device()) {
        // The device left its group: the IOMMU core detached it.
        pr_warn!("rsva: PASID {} not detached: {e:?}\n", bond.pasid());
    }
    drop(inner.attaches.remove(i));
    let d = &mut inner.domains[j];
    d.users -= 1;
    if d.users > 0 {
        return None;
    }
    if bond.mm.leased() {
        // Kept, watched by the device it was detached from: the watch it
        // kept while in use if that is this bond's device, else a new one.
        if d.watched
            .as_ref()
            .is_some_and(|w| w.is_of(bond.sva.device()))
        {
            return None;
        }
        if let Ok(watch) = present.watch() {
            d.watched = Some(watch);
            return None;
        }
    }
    inner.domains.remove(j).ok()
}
