// SPDX-License-Identifier: GPL-2.0

//! Per-user PASID accounting.
//!
//! PASIDs are a system-wide resource (20 bits, shared with every device and
//! with the kernel's own PASIDs), so one user must not be able to take them
//! all. Each PASID rsva hands out is charged to the user (uid) of the task
//! that allocated it, up to the `pasids_per_user` module parameter; beyond
//! it the allocation fails with `EDQUOT`. The charge is a [`UserCharge`]
//! that remembers whom it charged, so the uncharge goes to that same user
//! whichever task, work item or RCU callback drops it (seed 002): dropping
//! a charge only decrements an atomic and drops an `Arc`, which is allowed
//! in any context.

#![forbid(unsafe_code)]

use kernel::{
    new_mutex,
    prelude::*,
    sync::{
        atomic::{Atomic, Relaxed},
        Arc, Mutex,
    },
};

/// How many PASIDs one user holds.
struct UserCount {
    uid: u32,
    count: Atomic<u32>,
}

/// The users that hold PASIDs.
///
/// # Invariants
///
/// `users` holds at most one entry per uid with a non-zero count. Entries
/// are added and removed only under the mutex; counts only go up under it
/// and go down anywhere.
#[pin_data]
pub(crate) struct Charges {
    #[pin]
    users: Mutex<KVec<Arc<UserCount>>>,
}

/// One PASID charged to a user; uncharged from that user when dropped.
pub(crate) struct UserCharge {
    user: Arc<UserCount>,
}

impl Charges {
    /// No user holds anything.
    pub(crate) fn new() -> impl PinInit<Self> {
        pin_init!(Self {
            users <- new_mutex!(KVec::new()),
        })
    }

    /// Charges one PASID to `uid`, which may hold at most `limit`.
    ///
    /// Returns `EDQUOT` when `uid` already holds `limit`, `ENOMEM` when the
    /// bookkeeping cannot grow. Must be called from process context.
    pub(crate) fn charge(&self, uid: u32, limit: u32) -> Result<UserCharge> {
        let mut users = self.users.lock();
        // Users whose every charge was dropped leave the table here.
        users.retain(|u| u.count.load(Relaxed) != 0);
        let user = match users.iter().find(|u| u.uid == uid) {
            Some(u) => u.clone(),
            None => {
                let u = Arc::new(
                    UserCount {
                        uid,
                        count: Atomic::new(0),
                    },
                    GFP_KERNEL,
                )?;
                users.push(u.clone(), GFP_KERNEL)?;
                u
            }
        };
        let mut cur = user.count.load(Relaxed);
        loop {
            if cur >= limit {
                return Err(EDQUOT);
            }
            match user.count.cmpxchg(cur, cur + 1, Relaxed) {
                Ok(_) => return Ok(UserCharge { user }),
                Err(now) => cur = now,
            }
        }
    }

    /// How many PASIDs `uid` holds.
    pub(crate) fn held_by(&self, uid: u32) -> u32 {
        self.users
            .lock()
            .iter()
            .filter(|u| u.uid == uid)
            .map(|u| u.count.load(Relaxed))
            .sum()
    }
}

impl UserCharge {
    /// The user this charge is on.
    pub(crate) fn uid(&self) -> u32 {
        self.user.uid
    }
}

impl Drop for UserCharge {
    fn drop(&mut self) {
        // Any context: an atomic decrement; the entry leaves the table at
        // the next charge.
        self.user.count.fetch_sub(1, Relaxed);
    }
}

#[kunit_tests(rsva_pasid_charge)]
mod tests {
    use super::*;

    fn charges() -> Result<Pin<KBox<Charges>>> {
        KBox::pin_init(Charges::new(), GFP_KERNEL)
    }

    #[test]
    fn limit_is_per_user() -> Result {
        let c = charges()?;
        let a1 = c.charge(1000, 2)?;
        let a2 = c.charge(1000, 2)?;
        assert_eq!(c.charge(1000, 2).err(), Some(EDQUOT));
        // Another user is not affected.
        let b1 = c.charge(1001, 2)?;
        assert_eq!((c.held_by(1000), c.held_by(1001)), (2, 1));
        drop(a1);
        let a3 = c.charge(1000, 2)?;
        assert_eq!(a3.uid(), 1000);
        drop((a2, a3, b1));
        assert_eq!((c.held_by(1000), c.held_by(1001)), (0, 0));
        Ok(())
    }

    #[test]
    fn uncharge_goes_to_the_charged_user() -> Result {
        let c = charges()?;
        let a = c.charge(7, 1)?;
        let b = c.charge(8, 1)?;
        // Dropped in another order than charged, as a work item would.
        drop(b);
        assert_eq!((c.held_by(7), c.held_by(8)), (1, 0));
        assert_eq!(c.charge(7, 1).err(), Some(EDQUOT));
        drop(a);
        assert_eq!(c.held_by(7), 0);
        Ok(())
    }

    #[test]
    fn zero_limit_refuses() -> Result {
        let c = charges()?;
        assert_eq!(c.charge(0, 0).err(), Some(EDQUOT));
        assert_eq!(c.held_by(0), 0);
        Ok(())
    }
}
