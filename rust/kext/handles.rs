// SPDX-License-Identifier: GPL-2.0

//! Handles that a C API hands out: tokens that never name two objects.
//!
//! A C API that gives its callers the address of an object, and checks
//! the handles it gets back against a registry of live addresses, takes a
//! stale handle (one whose object went) for a new object that happens to
//! sit at the same address: the ABA of an address registry. [`Handles<T>`]
//! hands out a [`Token`] instead: an odd number drawn from one counter
//! that never repeats (shared by every registry of the module, so a token
//! of one registry is never found in another either). A token is never
//! followed, only looked up, so it may be anything a caller passes:
//!
//! - NULL is even, and so is every pointer to a kernel object whose
//!   alignment is two or more: none is ever a token.
//! - Tokens stay below `usize::MAX / 2`, so no `ERR_PTR()` (the last 4095
//!   values) is ever one; the counter refuses to go further (`ENOSPC`), which
//!   takes 2^62 tokens on 64-bit machines, and never comes back down.
//!
//! A counter rather than an id and a generation: a generation of an id
//! that is reused wraps after as many reuses as it has values, and a token
//! must never name two objects; a 64-bit counter does not wrap.
//!
//! The registry is a red-black tree (`O(log n)` per operation, with
//! thousands of live handles). It has no lock of its own: its owner keeps
//! it under one, and allocates the tree's node before taking it
//! ([`Handles::reserve`]), so that inserting never allocates under a
//! spinlock. Look-ups hand out a counted reference ([`Arc`]): a call that
//! races the removal of its handle uses an object that stays valid.

#![forbid(unsafe_code)]

use kernel::{
    alloc::Flags,
    prelude::*,
    rbtree::{RBTree, RBTreeNodeReservation},
    sync::{
        atomic::{Atomic, Relaxed},
        Arc,
    },
};

/// Tokens are `2 * n + 1` for `n` below this: all below `usize::MAX / 2`.
const LIMIT: usize = usize::MAX >> 2;

/// The `n` of the next token; only grows.
static NEXT: Atomic<usize> = Atomic::new(0);

/// A handle of a [`Handles`] registry, as the C API hands it out.
///
/// # Invariants
///
/// The value is odd and below `usize::MAX / 2`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Token(usize);

impl Token {
    /// A token never handed out before; `ENOSPC` once the counter is
    /// exhausted (2^62 tokens on 64-bit machines).
    fn new() -> Result<Self> {
        let mut n = NEXT.load(Relaxed);
        loop {
            if n >= LIMIT {
                return Err(ENOSPC);
            }
            match NEXT.cmpxchg(n, n + 1, Relaxed) {
                // INVARIANT: `n < LIMIT`, so `2 * n + 1 < usize::MAX / 2`.
                Ok(_) => return Ok(Self(2 * n + 1)),
                Err(now) => n = now,
            }
        }
    }

    /// The token a C caller passed as `handle`, if it can be one: only the
    /// value is used, and anything even (NULL, an aligned pointer) or
    /// beyond the tokens' range (an `ERR_PTR()`) is `None`.
    pub(crate) fn from_ptr<P>(handle: *const P) -> Option<Self> {
        Self::from_raw(handle as usize)
    }

    /// The token `value`, if it can be one (see [`Token::from_ptr`]).
    pub(crate) fn from_raw(value: usize) -> Option<Self> {
        // INVARIANT: checked.
        (value & 1 == 1 && value < 2 * LIMIT).then_some(Self(value))
    }

    /// The token as the C API hands it out: a pointer to an opaque type
    /// that is never followed.
    pub(crate) fn as_ptr<P>(self) -> *mut P {
        self.0 as *mut P
    }

    /// The token's value.
    pub(crate) fn raw(self) -> usize {
        self.0
    }
}

/// A registered object's place, allocated before the registry's lock is
/// taken, and the token it will be registered under.
pub(crate) struct Reserved<T> {
    node: RBTreeNodeReservation<Token, Arc<T>>,
    token: Token,
}

impl<T> Reserved<T> {
    /// The token the object will be registered under.
    pub(crate) fn token(&self) -> Token {
        self.token
    }
}

/// A registry of objects by [`Token`]: what the handles a C API hands out
/// name. It holds a reference to each registered object, dropped when the
/// object is removed or the registry dropped; its owner empties it before
/// module exit.
pub(crate) struct Handles<T> {
    tree: RBTree<Token, Arc<T>>,
}

impl<T> Handles<T> {
    /// An empty registry.
    pub(crate) fn new() -> Self {
        Self {
            tree: RBTree::new(),
        }
    }

    /// Draws a new token and allocates its place with `flags`, outside the
    /// registry's lock. `ENOMEM`, or `ENOSPC` once tokens are exhausted.
    pub(crate) fn reserve(flags: Flags) -> Result<Reserved<T>> {
        let token = Token::new()?;
        Ok(Reserved {
            node: RBTreeNodeReservation::new(flags)?,
            token,
        })
    }

    /// Registers `object` in the place `reserved`; allocates nothing.
    /// Returns its token.
    pub(crate) fn insert(&mut self, reserved: Reserved<T>, object: Arc<T>) -> Token {
        let token = reserved.token;
        // Tokens never repeat: nothing is registered under `token`.
        let old = self.tree.insert(reserved.node.into_node(token, object));
        drop(old);
        token
    }

    /// A reference to the object registered under `token`, if it is.
    pub(crate) fn get(&self, token: Token) -> Option<Arc<T>> {
        self.tree.get(&token).cloned()
    }

    /// Removes the object registered under `token` and returns the
    /// registry's reference to it (to be dropped after the registry's lock).
    pub(crate) fn remove(&mut self, token: Token) -> Option<Arc<T>> {
        self.tree.remove(&token)
    }

    /// Whether nothing is registered.
    pub(crate) fn is_empty(&self) -> bool {
        self.tree.is_empty()
    }

    /// The registered objects, in the order of their tokens (oldest first).
    pub(crate) fn objects(&self) -> impl Iterator<Item = &Arc<T>> {
        self.tree.values()
    }

    /// Empties the registry: returns what it held, to be dropped after the
    /// registry's lock.
    pub(crate) fn take(&mut self) -> Self {
        core::mem::replace(self, Self::new())
    }
}

impl<T> Default for Handles<T> {
    fn default() -> Self {
        Self::new()
    }
}

#[kunit_tests(rsva_handles)]
mod tests {
    use super::*;

    fn insert(h: &mut Handles<u32>, v: u32) -> Result<Token> {
        let r = Handles::reserve(GFP_KERNEL)?;
        Ok(h.insert(r, Arc::new(v, GFP_KERNEL)?))
    }

    #[test]
    fn a_look_up_gives_the_registered_object() -> Result {
        let mut h = Handles::new();
        let object = Arc::new(7u32, GFP_KERNEL)?;
        let r = Handles::reserve(GFP_KERNEL)?;
        let promised = r.token();
        let t = h.insert(r, object.clone());
        assert_eq!(t, promised);
        let found = h.get(t).ok_or(ENOENT)?;
        assert!(Arc::ptr_eq(&found, &object));
        assert!(h.remove(t).is_some_and(|o| Arc::ptr_eq(&o, &object)));
        assert!(h.is_empty());
        Ok(())
    }

    #[test]
    fn a_removed_token_is_never_found_again() -> Result {
        let mut h = Handles::new();
        let t = insert(&mut h, 1)?;
        assert!(h.remove(t).is_some());
        assert!(h.get(t).is_none());
        assert!(h.remove(t).is_none());
        let mut newer = KVec::new();
        for i in 0..64 {
            let n = insert(&mut h, i)?;
            assert_ne!(n, t);
            newer.push(n, GFP_KERNEL)?;
        }
        assert!(h.get(t).is_none());
        assert_eq!(h.objects().count(), 64);
        for (i, n) in newer.iter().enumerate() {
            assert_eq!(h.get(*n).map(|o| *o as usize), Some(i));
        }
        let all = h.take();
        assert!(h.is_empty());
        assert_eq!(all.objects().count(), 64);
        Ok(())
    }

    #[test]
    fn tokens_are_odd_new_and_never_a_pointer_or_err_ptr() -> Result {
        let mut h = Handles::new();
        let a = insert(&mut h, 1)?;
        let b = insert(&mut h, 2)?;
        assert!(b > a);
        assert_eq!(a.raw() & 1, 1);
        assert_eq!(Token::from_raw(a.raw()), Some(a));
        assert_eq!(Token::from_ptr(a.as_ptr::<u8>()), Some(a));
        // NULL, ERR_PTR()s, aligned (foreign) pointers, even values.
        assert_eq!(Token::from_raw(0), None);
        for errno in 1..=4095usize {
            assert_eq!(Token::from_raw(errno.wrapping_neg()), None);
        }
        let object = Arc::new(0u64, GFP_KERNEL)?;
        assert_eq!(Token::from_ptr(&*object), None);
        assert_eq!(Token::from_ptr(&h), None);
        assert_eq!(Token::from_raw(a.raw() + 1), None);
        assert_eq!(Token::from_raw(usize::MAX / 2 | 1), None);
        // A value that could be a token, never handed out: not found.
        let unknown = Token::from_raw(b.raw() + 2 * 1000).ok_or(EINVAL)?;
        assert!(h.get(unknown).is_none());
        assert!(h.remove(unknown).is_none());
        assert!(h.get(a).is_some() && h.get(b).is_some());
        drop(h.take());
        Ok(())
    }

    #[test]
    fn a_reference_outlives_the_removal() -> Result {
        let mut h = Handles::new();
        let t = insert(&mut h, 42)?;
        let found = h.get(t).ok_or(ENOENT)?;
        drop(h.remove(t));
        assert_eq!(*found, 42);
        assert!(h.get(t).is_none());
        Ok(())
    }
}
