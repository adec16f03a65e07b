// SPDX-License-Identifier: GPL-2.0

//! A fixed table of values that threads put in and take out without a
//! lock.
//!
//! [`Slots<T, N>`] holds up to `N` values of `T`. Each slot is empty, full,
//! or busy: a thread that moves a slot from empty or full to busy (one
//! compare-and-exchange) is the only one to touch its value until it makes
//! the slot empty or full again. Nothing else is shared, so inserting a
//! value and taking it out again cost a few atomic operations and no lock
//! (whose acquire and release cost microseconds each under lockdep): the
//! shape of a table of claims or handles on a fast path.
//!
//! Look-ups scan the slots below the highest one ever used, so they cost
//! what the most values held at once cost, not `N`. A thread that meets a
//! busy slot while it looks for a value it may not skip (an ongoing insert
//! of that value, another look-up) sleeps briefly and scans again: every
//! function that waits may sleep, and no caller may hold a slot busy while
//! it waits for anything that such a waiter holds.
//!
//! An insert can also be split: [`Slots::reserve`] makes a slot busy for a
//! value yet to come ([`Reserved`]), with a fully ordered
//! compare-and-exchange, and [`Slots::inserting`] tells whether any slot is
//! reserved so. The two make a gate with no atomic operation of its own:
//! a thread that reserves and then reads a flag, and one that raises the
//! flag (with a fully ordered operation) and then asks whether anything is
//! being inserted, cannot both miss each other.

use core::{cell::UnsafeCell, mem::MaybeUninit};
use kernel::{
    prelude::*,
    sync::atomic::{Acquire, Atomic, Full, Relaxed, Release},
    time::{delay::fsleep, Delta},
};

/// The slot holds no value.
const EMPTY: i16 = 0;
/// One thread has the slot to itself: it fills, reads or empties it.
const BUSY: i16 = 1;
/// The slot holds a value that no thread is using.
const FULL: i16 = 2;
/// One thread has the slot to itself, from empty: a value is being
/// inserted ([`Reserved`]).
const RESERVED: i16 = 3;

/// How long a look-up that met a busy slot sleeps before it scans again.
const BUSY_WAIT: Delta = Delta::from_micros(20);

/// One slot of a [`Slots`] table.
///
/// # Invariants
///
/// `value` is initialised exactly when `state` is [`FULL`], or [`BUSY`]
/// after a move from [`FULL`] until the thread that made it busy moves it
/// on; it is uninitialised while `state` is [`RESERVED`]. Only the thread
/// that moved `state` to [`BUSY`] or [`RESERVED`] accesses `value`.
struct Slot<T> {
    state: Atomic<i16>,
    value: UnsafeCell<MaybeUninit<T>>,
}

impl<T> Slot<T> {
    const fn new() -> Self {
        // INVARIANT: empty, and the value uninitialised.
        Self {
            state: Atomic::new(EMPTY),
            value: UnsafeCell::new(MaybeUninit::uninit()),
        }
    }

    /// Makes a full slot busy; `Err(state)` with the state found otherwise.
    fn hold(&self) -> Result<(), i16> {
        self.state.cmpxchg(FULL, BUSY, Acquire).map(|_| ())
    }
}

/// A table of at most `N` values of `T` (`N` below 2^15), inserted, looked
/// at and taken out without a lock.
///
/// The states and `top` are `i16`, whose atomic loads and stores are plain
/// `READ_ONCE()` / `WRITE_ONCE()`; those of `i32` and wider types call an
/// instrumented C helper (`atomic_read()`), which under KASAN costs as much
/// as a compare-and-exchange. Not `i8`: each operation on an `Atomic<i8>`
/// also calls the kernel crate's own `AtomicRepr<i8>::as_ptr()` out of line
/// (an instance the kernel crate shares, not one inlined here), two calls
/// per slot operation instead of one.
///
/// The table owns its values: those still in it are dropped with it.
///
/// # Invariants
///
/// Every slot at an index of `top` or above is empty.
pub(crate) struct Slots<T, const N: usize> {
    top: Atomic<i16>,
    slots: [Slot<T>; N],
}

// SAFETY: All bytes zero is an empty table: `top` is 0, every state is
// `EMPTY` (0) and the values are uninitialised.
unsafe impl<T, const N: usize> Zeroable for Slots<T, N> {}

// SAFETY: The table hands each value to one thread at a time (`Slot`'s
// invariant), so it can be sent and shared when the values can be sent.
unsafe impl<T: Send, const N: usize> Send for Slots<T, N> {}
// SAFETY: The table hands each value to one thread at a time (`Slot`'s
// invariant), so no two threads access one value at once through shared
// references; the values only need to be sendable.
unsafe impl<T: Send, const N: usize> Sync for Slots<T, N> {}

/// What a visit of a value does with it.
pub(crate) enum Visit {
    /// Leave it, and go on to the next value.
    Keep,
    /// Take it out of the table and stop.
    Take,
    /// Drop it in its slot, which empties, and stop.
    Drop,
}

impl<T, const N: usize> Slots<T, N> {
    /// An empty table.
    pub(crate) const fn new() -> Self {
        // INVARIANT: every slot is empty.
        Self {
            top: Atomic::new(0),
            slots: [const { Slot::new() }; N],
        }
    }

    /// An empty table, written in place: a large table is not built on
    /// the stack.
    pub(crate) fn empty() -> impl Init<Self> {
        pin_init::init_zeroed()
    }

    /// Puts the value `make` returns into a free slot, which is reserved
    /// before `make` runs: `ENOSPC` when the table is full, without calling
    /// `make`; `make`'s error leaves the table as it was.
    ///
    /// Look-ups that meet the reserved slot wait until `make` returned.
    pub(crate) fn insert(&self, make: impl FnOnce() -> Result<T>) -> Result {
        let slot = self.reserve()?;
        slot.fill(make()?);
        Ok(())
    }

    /// Whether a slot is reserved ([`Slots::reserve`]) and not filled yet.
    ///
    /// Not ordered by itself: a caller that must see the reservations made
    /// before a flag of its own was raised raises it with a fully ordered
    /// operation first.
    pub(crate) fn inserting(&self) -> bool {
        let top = self.top();
        self.slots
            .get(..top)
            .unwrap_or(&[])
            .iter()
            .any(|slot| slot.state.load(Relaxed) == RESERVED)
    }

    /// The index past the highest slot ever used (`Acquire`: the slots
    /// below it were reserved before).
    fn top(&self) -> usize {
        usize::try_from(self.top.load(Acquire)).unwrap_or(0)
    }

    /// Reserves an empty slot for a value to come, raising `top` past it;
    /// `ENOSPC` when the table is full.
    ///
    /// The reservation is a fully ordered compare-and-exchange: what the
    /// caller reads after it was read after the slot was reserved (see
    /// [`Slots::inserting`]). Look-ups that meet the slot wait until it is
    /// filled or given back.
    pub(crate) fn reserve(&self) -> Result<Reserved<'_, T>> {
        loop {
            let top = self.top();
            for slot in self.slots.get(..top).unwrap_or(&[]) {
                // A look first: a load of an `i16` costs much less than a
                // compare-and-exchange that fails.
                if slot.state.load(Relaxed) == EMPTY
                    && slot.state.cmpxchg(EMPTY, RESERVED, Full).is_ok()
                {
                    // INVARIANT: reserved from empty just above.
                    return Ok(Reserved { slot });
                }
            }
            let slot = self.slots.get(top).ok_or(ENOSPC)?;
            let (Ok(old), Ok(new)) = (i16::try_from(top), i16::try_from(top + 1)) else {
                return Err(ENOSPC);
            };
            // The slot at `top` is empty (type invariant); whoever raises
            // `top` past it first owns it.
            if self.top.cmpxchg(old, new, Relaxed).is_ok() {
                // INVARIANT: `top` moves past this slot only as it becomes
                // reserved; the others below `top + 1` were below `top`.
                if slot.state.cmpxchg(EMPTY, RESERVED, Full).is_ok() {
                    // INVARIANT: reserved from empty just above.
                    return Ok(Reserved { slot });
                }
            }
        }
    }

    /// Calls `visit` on the values of the table, newest slots first, one at
    /// a time and each while no other thread can reach it, until it answers
    /// [`Visit::Take`] or [`Visit::Drop`]: returns the value taken out of
    /// the table, or `None` once it has dropped one or seen them all. A
    /// value is dropped in its slot, which other look-ups wait for.
    ///
    /// A value being inserted or visited meanwhile is waited for and then
    /// visited: `visit` sees every value that was in the table when this
    /// was called and is still in it. May sleep.
    pub(crate) fn visit(&self, mut visit: impl FnMut(&mut T) -> Visit) -> Option<T> {
        // After a scan that met busy slots: which slots are left to visit
        // (those it found busy, and those past its `top`). The first scan
        // needs none (no array to clear on the fast path).
        let mut left: Option<([bool; N], usize)> = None;
        loop {
            // The slots this scan finds busy, once it finds one.
            let mut busy: Option<[bool; N]> = None;
            let top = self.top();
            for (i, slot) in self
                .slots
                .get(..top)
                .unwrap_or(&[])
                .iter()
                .enumerate()
                .rev()
            {
                if let Some((left, old_top)) = &left {
                    if i < *old_top && !left.get(i).copied().unwrap_or(false) {
                        continue;
                    }
                }
                // A look first, as in `reserve()`.
                if slot.state.load(Relaxed) == EMPTY {
                    continue;
                }
                match slot.hold() {
                    Ok(()) => {}
                    Err(BUSY | RESERVED) => {
                        if let Some(b) = busy.get_or_insert([false; N]).get_mut(i) {
                            *b = true;
                        }
                        continue;
                    }
                    Err(_) => continue,
                }
                // SAFETY: `hold()` made the slot busy for this thread alone,
                // from full: its value is initialised.
                let value = unsafe { (*slot.value.get()).assume_init_mut() };
                match visit(value) {
                    Visit::Keep => slot.state.store(FULL, Release),
                    Visit::Take => {
                        // SAFETY: Initialised (above) and read once: the
                        // slot becomes empty at once.
                        let taken = unsafe { (*slot.value.get()).assume_init_read() };
                        // INVARIANT: the value was moved out just above.
                        slot.state.store(EMPTY, Release);
                        return Some(taken);
                    }
                    Visit::Drop => {
                        // SAFETY: Initialised (above) and dropped once: the
                        // slot becomes empty at once.
                        unsafe { (*slot.value.get()).assume_init_drop() };
                        // INVARIANT: the value was dropped just above.
                        slot.state.store(EMPTY, Release);
                        return None;
                    }
                }
            }
            let busy = busy?;
            left = Some((busy, top));
            fsleep(BUSY_WAIT);
        }
    }

    /// Takes out the newest value for which `matches` is true, waiting for
    /// values being inserted or visited; `None` if there is none. May sleep.
    pub(crate) fn take(&self, mut matches: impl FnMut(&T) -> bool) -> Option<T> {
        self.visit(|v| if matches(v) { Visit::Take } else { Visit::Keep })
    }

    /// How many values `matches` is true for, each looked at as
    /// [`Slots::visit`] does (waiting for values being inserted or
    /// visited). May sleep.
    pub(crate) fn count(&self, mut matches: impl FnMut(&T) -> bool) -> usize {
        let mut n = 0;
        self.visit(|v| {
            n += usize::from(matches(v));
            Visit::Keep
        });
        n
    }

    /// Drops the newest value for which `matches` is true, as
    /// [`Slots::take`] finds it, in its slot: not moved out (a copy of a
    /// value of more than two words is a `memcpy()` call, checked under
    /// KASAN); false if there is none. May sleep.
    ///
    /// The drop runs while the slot is busy, so look-ups wait for it: it
    /// must not wait for anything that a look-up holds.
    pub(crate) fn remove(&self, mut matches: impl FnMut(&T) -> bool) -> bool {
        let mut found = false;
        self.visit(|v| {
            if matches(v) {
                found = true;
                return Visit::Drop;
            }
            Visit::Keep
        });
        found
    }
}

/// A slot of a [`Slots`] table reserved for a value to come
/// ([`Slots::reserve`]): filled with [`Reserved::fill`], or given back
/// empty when dropped unfilled.
///
/// # Invariants
///
/// `slot` is [`RESERVED`] by the thread that made this, and its value is
/// uninitialised.
pub(crate) struct Reserved<'a, T> {
    slot: &'a Slot<T>,
}

impl<T> Reserved<'_, T> {
    /// Puts `value` into the slot, where look-ups find it.
    pub(crate) fn fill(self, value: T) {
        // SAFETY: The slot is reserved for this thread alone, and its value
        // is uninitialised (type invariant).
        unsafe { (*self.slot.value.get()).write(value) };
        // INVARIANT: the value was written just above.
        self.slot.state.store(FULL, Release);
        // The slot is full now: not given back.
        core::mem::forget(self);
    }
}

impl<T> Drop for Reserved<'_, T> {
    fn drop(&mut self) {
        // INVARIANT: unfilled, so still uninitialised.
        self.slot.state.store(EMPTY, Release);
    }
}

impl<T, const N: usize> Drop for Slots<T, N> {
    fn drop(&mut self) {
        let top = usize::try_from(*self.top.get_mut()).unwrap_or(0);
        for slot in self.slots.iter_mut().take(top) {
            if *slot.state.get_mut() == FULL {
                // SAFETY: Full slots hold an initialised value, and no
                // thread can reach the table any more.
                unsafe { slot.value.get_mut().assume_init_drop() };
            }
        }
    }
}

#[kunit_tests(rsva_slots)]
mod tests {
    use super::*;
    use kernel::sync::Arc;

    /// Counts its drops in `drops`.
    struct Counted<'a>(u32, &'a Atomic<u32>);

    impl Drop for Counted<'_> {
        fn drop(&mut self) {
            self.1.add(1, Relaxed);
        }
    }

    /// A table of four slots holding 1, 2 and 1, which count their drops
    /// in `drops`.
    fn one_two_one(drops: &Atomic<u32>) -> Result<KBox<Slots<Counted<'_>, 4>>> {
        let slots = KBox::new(Slots::new(), GFP_KERNEL)?;
        for n in [1, 2, 1] {
            slots.insert(|| Ok(Counted(n, drops)))?;
        }
        Ok(slots)
    }

    #[test]
    fn values_come_out_once_and_the_newest_first() -> Result {
        let drops = Atomic::new(0u32);
        let slots = one_two_one(&drops)?;
        let first = slots.take(|c| c.0 == 1).ok_or(ENOENT)?;
        // The newest of the two 1s: the one in slot 2.
        assert!(core::ptr::eq(first.1, &drops));
        assert_eq!(slots.top.load(Relaxed), 3);
        drop(first);
        assert!(slots.take(|c| c.0 == 1).is_some());
        assert!(slots.take(|c| c.0 == 1).is_none());
        assert_eq!(drops.load(Relaxed), 2);
        // What is left goes with the table.
        drop(slots);
        assert_eq!(drops.load(Relaxed), 3);
        Ok(())
    }

    #[test]
    fn count_counts_every_match_and_keeps_them() -> Result {
        let drops = Atomic::new(0u32);
        let slots = one_two_one(&drops)?;
        assert_eq!(slots.count(|c| c.0 == 1), 2);
        assert_eq!(slots.count(|c| c.0 == 3), 0);
        // Counting took nothing out.
        assert_eq!(slots.count(|_| true), 3);
        assert_eq!(drops.load(Relaxed), 0);
        Ok(())
    }

    #[test]
    fn remove_drops_the_newest_match_in_place() -> Result {
        let drops = Atomic::new(0u32);
        let slots = one_two_one(&drops)?;
        assert!(slots.remove(|c| c.0 == 1));
        // Dropped by the call, not later.
        assert_eq!(drops.load(Relaxed), 1);
        // The newest 1 went: the one in slot 0 is left, then none.
        let mut all = KVec::new();
        slots.visit(|c| {
            let _ = all.push(c.0, GFP_KERNEL);
            Visit::Keep
        });
        assert_eq!(&all[..], &[2, 1]);
        assert!(slots.remove(|c| c.0 == 1));
        assert!(!slots.remove(|c| c.0 == 1));
        assert_eq!(drops.load(Relaxed), 2);
        // Its slot is free again, and used first.
        slots.insert(|| Ok(Counted(3, &drops)))?;
        assert_eq!(slots.top.load(Relaxed), 3);
        Ok(())
    }

    #[test]
    fn a_full_table_says_enospc_and_a_failed_insert_leaves_no_trace() -> Result {
        let slots = KBox::new(Slots::<u32, 2>::new(), GFP_KERNEL)?;
        assert_eq!(slots.insert(|| Err(EIO)), Err(EIO));
        slots.insert(|| Ok(1))?;
        slots.insert(|| Ok(2))?;
        let mut called = false;
        let full = slots.insert(|| {
            called = true;
            Ok(3)
        });
        assert_eq!(full, Err(ENOSPC));
        assert!(!called);
        // Freed slots are used again below `top`.
        assert_eq!(slots.take(|v| *v == 1), Some(1));
        slots.insert(|| Ok(4))?;
        assert_eq!(slots.top.load(Relaxed), 2);
        let mut all = KVec::new();
        slots.visit(|v| {
            let _ = all.push(*v, GFP_KERNEL);
            Visit::Keep
        });
        assert_eq!(&all[..], &[2, 4]);
        Ok(())
    }

    #[test]
    fn a_reservation_shows_until_filled_or_given_back() -> Result {
        let slots = KBox::new(Slots::<u32, 2>::new(), GFP_KERNEL)?;
        assert!(!slots.inserting());
        let r = slots.reserve()?;
        assert!(slots.inserting());
        // Given back: empty again, and used again.
        drop(r);
        assert!(!slots.inserting());
        assert!(slots.take(|_| true).is_none());
        let r = slots.reserve()?;
        assert_eq!(slots.top.load(Relaxed), 1);
        // Another insert goes to another slot meanwhile.
        slots.insert(|| Ok(5))?;
        r.fill(6);
        assert!(!slots.inserting());
        assert_eq!(slots.take(|v| *v == 6), Some(6));
        assert_eq!(slots.take(|v| *v == 5), Some(5));
        Ok(())
    }

    #[test]
    fn a_look_up_waits_for_an_insert_in_progress() -> Result {
        // 0: not run yet; 1 + the value it took, or 1 for none.
        let slots = Arc::new(Slots::<u32, 2>::new(), GFP_KERNEL)?;
        let result = Arc::new(Atomic::new(0u32), GFP_KERNEL)?;
        slots.insert(|| {
            let (slots, result) = (slots.clone(), result.clone());
            // The work item looks while this slot is busy: it must wait
            // for the value rather than answer that there is none.
            kernel::workqueue::system()
                .try_spawn(GFP_KERNEL, move || {
                    let taken = slots.take(|v| *v == 7);
                    result.store(1 + taken.unwrap_or(0), Release);
                })
                .map_err(|_| ENOMEM)?;
            fsleep(Delta::from_millis(20));
            Ok(7)
        })?;
        while result.load(Acquire) == 0 {
            fsleep(Delta::from_millis(1));
        }
        assert_eq!(result.load(Relaxed), 8);
        assert!(slots.take(|_| true).is_none());
        Ok(())
    }
}
