// SPDX-License-Identifier: GPL-2.0

//! One shared mirror per mm: the registry that Jason Gunthorpe asks for in
//! his review of Ralph Campbell's `struct hmm` lifetime patches (linux-mm,
//! May 2019).
//!
//! Every rsva mirror of an mm (each open of `/dev/rsva_mirror0`, each C
//! driver's `rsva_mirror_register()`) is a client of one [`MmMirror`]: one
//! `mmgrab()`, one interval notifier over the whole user address space, one
//! lock. The thread's rules, and where they hold:
//!
//! - Concurrent registrations on one mm always end in a valid mirror, never
//!   in an error because another registration or a teardown raced. A client
//!   takes a user of the registry entry under the registry lock, and the
//!   last client removes the entry under the same lock
//!   ([`MmMirror::get_or_create`], [`MmMirror::put`]), so a lookup never
//!   finds a mirror on its way out: the race that `kref_get_unless_zero()`
//!   under the lock closes in the seed cannot happen. A registration that
//!   finds no entry builds a mirror (registering its notifier) outside the
//!   lock, then looks again under it: if another one won, it uses the
//!   winner's and drops its own.
//! - The mirror holds `mmgrab()` ([`ARef<Mm>`]) for its whole life, so the
//!   mm's address is a stable registry key and the notifier can be removed
//!   after exit_mmap; a fault takes `mmget_not_zero()` on the notifier's mm
//!   ([`IntervalNotifier::fault`], which takes no mm from its caller).
//! - The seed asks for lockdep assertions where a lock must be held; here
//!   the types carry them: the registry is only reachable through its
//!   guard, the clients only under the notifier's lock, and faulting needs
//!   the mmap read guard (`hmm_range_fault()` asserts it too).
//!
//! A client stays in the state of the mirror it joined until it leaves:
//! the registry inserts it there ([`MirrorClient::new`]) and takes it out
//! only to drop it ([`MirrorClient::leave`]); no `&mut Client`, which could
//! swap it with a client of another mirror, leaves this file. The client's
//! own code reaches it as a [`ClientRef`]: its table pinned
//! (`Pin<&mut FrameTable>`, which gives no `&mut FrameTable`: the table is
//! `!Unpin`), a driver's hooks shared. So a table, whose frames only the
//! notifier of its mirror clears, stays in that notifier's state
//! ([`FrameTable`]'s invariants).

#![forbid(unsafe_code)]

use kernel::{
    mm::{Mm, MmWithUser},
    page::PAGE_SIZE,
    prelude::*,
    rbtree::{RBTree, RBTreeNode},
    sync::{
        aref::ARef,
        atomic::{Atomic, Relaxed},
        Arc,
    },
};

use core::{any::Any, num::NonZeroUsize};

use crate::{
    kext::mm::frame_table::FrameTable,
    kext::mm::interval_notifier::{
        FaultMode, HmmPfn, IntervalNotifier, Invalidate, Seq, Unchanged,
    },
    kext::mm::pagemap::Owner,
    kext::sync::global::GlobalMutex,
};

/// Checks a request for `npages` pages at `start` (page aligned, at least
/// one page, not wrapping) and returns its end; `EINVAL` otherwise, as
/// test_hmm answers.
pub(crate) fn span(start: usize, npages: usize) -> Result<usize> {
    if start % PAGE_SIZE != 0 || npages == 0 {
        return Err(EINVAL);
    }
    npages
        .checked_mul(PAGE_SIZE)
        .and_then(|len| start.checked_add(len))
        .ok_or(EINVAL)
}

/// A C driver's mirror as the registry calls it (`struct rsva_mirror_ops`,
/// implemented in `ffi/mirror.rs`). The registry knows it through this
/// trait only.
pub(crate) trait DriverHooks: Send + Sync + 'static {
    /// `[start, end)` is no longer mirrored. Called under the mirror's
    /// lock, from any context an invalidation comes from.
    fn invalidate(&self, start: usize, end: usize);

    /// The hooks as [`Any`], for the C API's own calls.
    fn as_any(&self) -> &dyn Any;
}

/// A client of an [`MmMirror`], as it joins one ([`MirrorClient::new`]):
/// from then on only the registry holds it, and the client's code reaches
/// it as a [`ClientRef`].
pub(crate) enum Client {
    /// A device's table of mirrored frames (`/dev/rsva_mirror*`, the
    /// mirrors of `mirror/hmm.rs`), pinned in its box: the mirror's
    /// invalidations reach it ([`FrameTable::invalidate`]).
    Table(Pin<KBox<FrameTable>>),
    /// A C driver, told through its hooks.
    Driver(KBox<dyn DriverHooks>),
}

/// A client of an [`MmMirror`] as its code reaches it, under the mirror's
/// lock ([`MirrorClient::with`], [`MirrorClient::fault`],
/// [`MirrorClient::with_unless_changed`]): its table pinned, or its
/// driver's hooks shared. Neither moves the client out of its mirror nor
/// swaps it with another: with what this gives, `core::mem::swap()` of two
/// clients' boxes or of two tables, `core::mem::replace()` of a table and
/// `Pin::set()` do not compile (no `&mut Client`, no `&mut FrameTable`, no
/// `FrameTable` value).
pub(crate) enum ClientRef<'a> {
    /// A device's table of mirrored frames.
    Table(Pin<&'a mut FrameTable>),
    /// A C driver's hooks.
    Driver(&'a dyn DriverHooks),
}

impl<'a> ClientRef<'a> {
    /// The view of `client`.
    fn of(client: &'a mut Client) -> Self {
        match client {
            Client::Table(t) => ClientRef::Table(t.as_mut()),
            Client::Driver(d) => ClientRef::Driver(&**d),
        }
    }

    /// The table this client is, if it is one, pinned.
    pub(crate) fn table(self) -> Option<Pin<&'a mut FrameTable>> {
        match self {
            ClientRef::Table(t) => Some(t),
            ClientRef::Driver(_) => None,
        }
    }
}

/// The clients of one mm's mirror, by id; the state of its notifier.
pub(crate) struct Clients {
    by_id: RBTree<u64, Client>,
}

/// The id of the next client (of any mirror). Ids never repeat and are
/// never 0 (see [`owner_of`]).
static NEXT_ID: Atomic<u64> = Atomic::new(1);

/// The owner of the device-exclusive requests of client `id`: its id. Ids
/// never repeat and stay far below any kernel address, so no other
/// driver's owner (a kernel pointer, or null as test_hmm's) is one of them,
/// and no client that left names a page a new one asked for.
fn owner_of(id: u64) -> Option<Owner> {
    usize::try_from(id)
        .ok()
        .and_then(NonZeroUsize::new)
        .map(Owner::new)
}

impl Clients {
    /// Forgets `[start, end)` in every client but the table of `except`'s
    /// owner (a device-exclusive conversion that client asked for); each
    /// table is told who migrates (`migrating_for`), and keeps what its own
    /// device's migration updates itself.
    fn invalidate_except(
        &mut self,
        start: usize,
        end: usize,
        except: Option<Owner>,
        migrating_for: Option<Owner>,
    ) {
        for (&id, client) in self.by_id.iter_mut() {
            match client {
                Client::Table(t) => {
                    if except.is_none() || owner_of(id) != except {
                        t.as_mut().invalidate(start, end, migrating_for);
                    }
                }
                Client::Driver(d) => d.invalidate(start, end),
            }
        }
    }
}

impl Invalidate for Clients {
    fn invalidate(&mut self, start: usize, end: usize, migrating_for: Option<Owner>) {
        self.invalidate_except(start, end, None, migrating_for);
    }

    /// A table that asked for the page (see `mirror/hmm/exclusive.rs`)
    /// keeps it and the sequence stays, so that its retry check does not
    /// see its own conversion as a race; every other client forgets the
    /// page. A fault of another client that read the page before the
    /// conversion may then still map it: the page stays the process's
    /// (behind the device-exclusive entry, until an invalidation clears
    /// every client's entry), it is only not exclusive to the asker.
    fn invalidate_exclusive(&mut self, start: usize, end: usize, owner: Owner) -> bool {
        let own = self
            .by_id
            .iter()
            .any(|(&id, c)| matches!(c, Client::Table(_)) && owner_of(id) == Some(owner));
        self.invalidate_except(start, end, Some(owner), None);
        !own
    }
}

/// The mirror of one mm that all of its clients share.
///
/// # Invariants
///
/// `notifier` is registered on `mm` over the whole user address space.
pub(crate) struct MmMirror {
    mm: ARef<Mm>,
    notifier: Pin<KBox<IntervalNotifier<Clients>>>,
}

/// A registry entry: the mirror of the mm at `mm` and its clients' count.
struct Entry {
    mm: usize,
    users: usize,
    mirror: Arc<MmMirror>,
}

/// The registry: the shared mirrors, one per mm. Its mutex initialises
/// itself on first use.
static MIRRORS: GlobalMutex<KVec<Entry>> =
    GlobalMutex::new(KVec::new, c"MIRRORS", kernel::static_lock_class!());

/// Frees the registry; called by module exit, when no client is left.
pub(crate) fn exit() {
    let left = core::mem::take(&mut *MIRRORS.lock());
    if !left.is_empty() {
        pr_warn!("{} mirrors left at exit\n", left.len());
    }
}

/// The number of shared mirrors and of their clients (`debugfs/rsva/mirrors`).
pub(crate) fn counts() -> (usize, usize) {
    let g = MIRRORS.lock();
    (g.len(), g.iter().map(|e| e.users).sum())
}

/// Runs `f` on every table of the device memory `owner` among the clients
/// of the mirror of the mm at `mm` (if it has one), under the registry's
/// lock and the mirror's. Used when that device migrates its own pages back
/// to system memory: its tables ignored the migration's invalidation, and
/// must forget the pages before they are freed.
pub(crate) fn with_device_tables(mm: &Mm, owner: Owner, mut f: impl FnMut(Pin<&mut FrameTable>)) {
    let key = mm.as_raw() as usize;
    let g = MIRRORS.lock();
    if let Some(e) = g.iter().find(|e| e.mm == key) {
        e.mirror.notifier.with_state(|c| {
            for (_, client) in c.by_id.iter_mut() {
                if let Client::Table(t) = client {
                    if t.owner() == Some(owner) {
                        f(t.as_mut());
                    }
                }
            }
        });
    }
}

impl MmMirror {
    fn new(mm: &MmWithUser) -> Result<Arc<Self>> {
        let notifier = KBox::pin_init(
            IntervalNotifier::new(Clients {
                by_id: RBTree::new(),
            }),
            GFP_KERNEL,
        )?;
        notifier
            .as_ref()
            .register(mm, 0, usize::MAX & !(PAGE_SIZE - 1))?;
        // INVARIANT: registered just above.
        Ok(Arc::new(
            Self {
                mm: ARef::from(&**mm),
                notifier,
            },
            GFP_KERNEL,
        )?)
    }

    /// The mirror of `mm`, with one more user: the registered one, or a new
    /// one.
    fn get_or_create(mm: &MmWithUser) -> Result<Arc<Self>> {
        let key = mm.as_raw() as usize;
        let found = |g: &mut KVec<Entry>| {
            g.iter_mut().find(|e| e.mm == key).map(|e| {
                e.users += 1;
                e.mirror.clone()
            })
        };
        if let Some(m) = found(&mut MIRRORS.lock()) {
            return Ok(m);
        }
        // Registering the notifier takes the mmap lock: not under ours.
        let new = Self::new(mm)?;
        let mut g = MIRRORS.lock();
        if let Some(m) = found(&mut g) {
            drop(g);
            // Another registration won; ours is removed outside the lock.
            drop(new);
            return Ok(m);
        }
        g.push(
            Entry {
                mm: key,
                users: 1,
                mirror: new.clone(),
            },
            GFP_KERNEL,
        )?;
        Ok(new)
    }

    /// Gives back a user taken by [`MmMirror::get_or_create`]; the last one
    /// removes the entry, under the lock.
    fn put(this: Arc<Self>) {
        let key = this.mm.as_raw() as usize;
        let removed = {
            let mut g = MIRRORS.lock();
            let i = g.iter().position(|e| e.mm == key);
            i.and_then(|i| {
                g[i].users -= 1;
                if g[i].users == 0 {
                    g.remove(i).ok()
                } else {
                    None
                }
            })
        };
        // The notifier is removed (waiting for callbacks in progress) when
        // the last reference goes, outside the registry lock.
        drop(removed);
        drop(this);
    }
}

/// A client's place in its mm's shared mirror: from creation until
/// [`MirrorClient::leave`] or drop, invalidations of the mm reach it.
///
/// # Invariants
///
/// `mirror` is one user of the registry entry of its mm, given back on drop.
pub(crate) struct MirrorClient {
    mirror: Arc<MmMirror>,
    id: u64,
}

impl MirrorClient {
    /// Adds `client` to the shared mirror of `mm` (made if needed).
    pub(crate) fn new(mm: &MmWithUser, client: Client) -> Result<Self> {
        let id = NEXT_ID.fetch_add(1, Relaxed);
        // Allocated here: the lock is taken by invalidations from reclaim.
        let node = RBTreeNode::new(id, client, GFP_KERNEL)?;
        let mirror = MmMirror::get_or_create(mm)?;
        mirror.notifier.with_state(|c| drop(c.by_id.insert(node)));
        // INVARIANT: `mirror` carries the user `get_or_create` took.
        Ok(Self { mirror, id })
    }

    /// Runs `f` on this client under the mirror's lock; `ENOENT` after
    /// [`MirrorClient::leave`].
    pub(crate) fn with<R>(&self, f: impl FnOnce(ClientRef<'_>) -> R) -> Result<R> {
        self.mirror.notifier.with_state(|c| {
            c.by_id
                .get_mut(&self.id)
                .map(|client| f(ClientRef::of(client)))
                .ok_or(ENOENT)
        })
    }

    /// Faults `pfns.len()` pages of the mirrored mm at `start` in `mode`,
    /// then calls `f` with this client and the entries under the mirror's
    /// lock once no invalidation ran since (see
    /// [`IntervalNotifier::fault`]); `EFAULT` once the mm is gone.
    pub(crate) fn fault<R>(
        &self,
        start: usize,
        mode: FaultMode,
        owner: Option<Owner>,
        pfns: &mut [c_ulong],
        f: impl for<'a> FnOnce(ClientRef<'a>, &'a [HmmPfn<'a>]) -> R,
    ) -> Result<R> {
        self.mirror
            .notifier
            .fault(start, mode, owner, pfns, |c, entries| {
                c.by_id
                    .get_mut(&self.id)
                    .map(|client| f(ClientRef::of(client), entries))
            })?
            .ok_or(ENOENT)
    }

    /// The mirrored mm with a user reference; `EFAULT` once it has none.
    pub(crate) fn user(&self) -> Result<ARef<MmWithUser>> {
        self.mirror.notifier.user()
    }

    /// The owner this client's device-exclusive requests name: the
    /// conversions it asks for neither clear its own entries nor bump the
    /// sequence ([`Invalidate::invalidate_exclusive`]).
    pub(crate) fn exclusive_owner(&self) -> Result<Owner> {
        owner_of(self.id).ok_or(EINVAL)
    }

    /// Takes the mirror's sequence before a device-exclusive request (see
    /// [`IntervalNotifier::read_begin`]).
    pub(crate) fn read_begin(&self) -> Result<Seq> {
        self.mirror.notifier.read_begin()
    }

    /// Calls `f` with this client and the proof under the mirror's lock if
    /// no invalidation bumped the sequence since `seq`; `Ok(None)` when one
    /// did, `ENOENT` after [`MirrorClient::leave`].
    pub(crate) fn with_unless_changed<R>(
        &self,
        seq: Seq,
        f: impl for<'a> FnOnce(ClientRef<'a>, Unchanged<'a>) -> R,
    ) -> Result<Option<R>> {
        self.mirror
            .notifier
            .with_state_unless_changed(seq, |c, unchanged| {
                c.by_id
                    .get_mut(&self.id)
                    .map(|client| f(ClientRef::of(client), unchanged))
                    .ok_or(ENOENT)
            })
            .transpose()
    }

    /// The mm, for the mirror's owner to reach with a user reference.
    pub(crate) fn mm(&self) -> &Mm {
        &self.mirror.mm
    }

    /// Stops invalidations from reaching this client: after it returns no
    /// hook of the client runs. Idempotent.
    pub(crate) fn leave(&self) {
        let gone = self
            .mirror
            .notifier
            .with_state(|c| c.by_id.remove(&self.id));
        // A table is freed outside the lock.
        drop(gone);
    }
}

impl Drop for MirrorClient {
    fn drop(&mut self) {
        self.leave();
        MmMirror::put(self.mirror.clone());
    }
}
