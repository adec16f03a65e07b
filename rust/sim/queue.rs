// SPDX-License-Identifier: GPL-2.0

//! A work queue of a simulated accelerator: the descriptors one opener
//! submitted, run in order by a work item on the DMA engine, in the
//! opener's address space through its PASID.
//!
//! Stopping (close, uacce's stop_queue, the bond's release) drops what has
//! not started, ends the running descriptor at its next access, and waits
//! for it; only then may the caller unbind, so that the device never uses a
//! PASID after it was given back.

#![forbid(unsafe_code)]

use kernel::{
    new_condvar, new_mutex, new_spinlock,
    page::PAGE_SIZE,
    prelude::*,
    sync::{
        atomic::{Atomic, Relaxed},
        Arc, CondVar, Mutex, SpinLock,
    },
    transmute::AsBytes,
    workqueue::{self, impl_has_work, new_work, Work, WorkItem},
};

use crate::{
    device::{Paging, SimDevice},
    engine,
    kext::uacce::ForeignWaitQueue,
    uapi::{self, Desc, Stats},
};

/// How many descriptors a queue holds before `submit` says `EAGAIN`.
pub(crate) const QUEUE_DEPTH: usize = 256;

struct Ring {
    descs: KVec<Desc>,
    head: usize,
    len: usize,
    stopped: bool,
    running: bool,
    /// The wait queue that `poll()` of the queue's file sleeps on (uacce's
    /// `q->wait`): woken when the queue goes idle, dropped by
    /// [`Queue::stop`] so that nothing wakes it after.
    poll_wq: Option<ForeignWaitQueue>,
}

struct Counters {
    submitted: Atomic<u64>,
    completed: Atomic<u64>,
    faults: Atomic<u64>,
    page_requests: Atomic<u64>,
}

impl Counters {
    fn new() -> Self {
        Self {
            submitted: Atomic::new(0),
            completed: Atomic::new(0),
            faults: Atomic::new(0),
            page_requests: Atomic::new(0),
        }
    }
}

/// A queue bound to one PASID of one device.
#[pin_data]
pub(crate) struct Queue {
    pub(crate) dev: Arc<SimDevice>,
    pub(crate) pasid: u32,
    /// The address of the opener's mm, the one `pasid` is bound to: only
    /// compared, never dereferenced (the bond keeps that mm from being
    /// freed, so no other mm can have this address meanwhile).
    owner_mm: usize,
    #[pin]
    ring: SpinLock<Ring>,
    #[pin]
    idle: CondVar,
    #[pin]
    work: Work<Queue>,
    /// The engine's bounce pages, allocated with the queue so that running
    /// its work never fails; only the queue's work item (one at a time)
    /// takes the lock.
    #[pin]
    scratch: Mutex<KVec<u8>>,
    counters: Counters,
}

impl_has_work! {
    impl HasWork<Self> for Queue { self.work }
}

impl Queue {
    /// A queue for the bond of `owner_mm` through `pasid`.
    pub(crate) fn new(dev: Arc<SimDevice>, pasid: u32, owner_mm: usize) -> Result<Arc<Self>> {
        // Charged to the opener's memory cgroup, as one per open file.
        let mut descs = KVec::with_capacity(QUEUE_DEPTH, GFP_KERNEL_ACCOUNT)?;
        descs.resize(QUEUE_DEPTH, Desc::default(), GFP_KERNEL_ACCOUNT)?;
        let mut scratch = KVec::new();
        scratch.resize(2 * PAGE_SIZE, 0u8, GFP_KERNEL_ACCOUNT)?;
        Arc::pin_init(
            try_pin_init!(Self {
                dev,
                pasid,
                owner_mm,
                ring <- new_spinlock!(Ring {
                    descs,
                    head: 0,
                    len: 0,
                    stopped: false,
                    running: false,
                    poll_wq: None,
                }),
                idle <- new_condvar!(),
                work <- new_work!("rsva_sim::Queue::work"),
                scratch <- new_mutex!(scratch),
                counters: Counters::new(),
            }),
            GFP_KERNEL,
        )
    }

    /// Queues `desc` from the task whose mm is `submitter_mm`: `EPERM`
    /// unless that is the mm the queue is bound to (a descriptor's
    /// addresses are the submitter's, and the device would use them in the
    /// opener's address space), `EINVAL`/`EOVERFLOW` for a bad descriptor,
    /// `EAGAIN` when full, `ESHUTDOWN` once stopped.
    pub(crate) fn submit(self: &Arc<Self>, submitter_mm: Option<usize>, desc: Desc) -> Result {
        if submitter_mm != Some(self.owner_mm) {
            return Err(EPERM);
        }
        desc.validate()?;
        let mut ring = self.ring.lock();
        if ring.stopped {
            return Err(ESHUTDOWN);
        }
        if ring.len == QUEUE_DEPTH {
            return Err(EAGAIN);
        }
        let tail = (ring.head + ring.len) % QUEUE_DEPTH;
        ring.descs[tail] = desc;
        ring.len += 1;
        self.counters.submitted.add(1, Relaxed);
        if !ring.running {
            ring.running = true;
            // Not queued yet (not running), so this cannot fail.
            let _ = workqueue::system_unbound().enqueue(self.clone());
        }
        Ok(())
    }

    /// Waits until every submitted descriptor has ended; `EINTR` when a
    /// signal comes first.
    pub(crate) fn wait(&self) -> Result {
        let mut ring = self.ring.lock();
        while ring.len > 0 || ring.running {
            if self.idle.wait_interruptible(&mut ring) {
                return Err(EINTR);
            }
        }
        Ok(())
    }

    /// `EAGAIN` while descriptors are queued or running; the non-blocking
    /// wait of a file that is polled instead ([`Queue::set_poll_waitqueue`]).
    pub(crate) fn try_wait(&self) -> Result {
        if self.idle() {
            Ok(())
        } else {
            Err(EAGAIN)
        }
    }

    /// Whether every submitted descriptor has ended.
    pub(crate) fn idle(&self) -> bool {
        let ring = self.ring.lock();
        ring.len == 0 && !ring.running
    }

    /// Has the queue wake `wq` whenever it goes idle, until it is stopped.
    pub(crate) fn set_poll_waitqueue(&self, wq: ForeignWaitQueue) {
        self.ring.lock().poll_wq = Some(wq);
    }

    /// Lets a stopped queue take work again (uacce's `START_Q` after
    /// `PUT_Q`), waking `wq` as [`Queue::set_poll_waitqueue`] does.
    pub(crate) fn restart(&self, wq: ForeignWaitQueue) {
        let mut ring = self.ring.lock();
        ring.stopped = false;
        ring.poll_wq = Some(wq);
    }

    /// Stops the queue: drops what has not started, ends the running
    /// descriptor early and waits for it. Idempotent. No poll wakeup after.
    pub(crate) fn stop(&self) {
        let mut ring = self.ring.lock();
        ring.poll_wq = None;
        ring.stopped = true;
        ring.len = 0;
        while ring.running {
            self.idle.wait(&mut ring);
        }
    }

    fn stopped(&self) -> bool {
        self.ring.lock().stopped
    }

    /// Counters of the queue and its device.
    pub(crate) fn stats(&self) -> Stats {
        let (tlb, _) = self.dev.iotlb_stats();
        let p = &self.dev.prq;
        Stats {
            submitted: self.counters.submitted.load(Relaxed),
            completed: self.counters.completed.load(Relaxed),
            faults: self.counters.faults.load(Relaxed),
            dev_faults: self.dev.fault_total(),
            dev_iotlb_hits: tlb.hits,
            dev_iotlb_misses: tlb.misses,
            dev_iotlb_flushes: tlb.flushes,
            dev_bytes: self.dev.counters.bytes.load(Relaxed),
            page_requests: self.counters.page_requests.load(Relaxed),
            dev_page_requests: p.requests.load(Relaxed),
            dev_page_groups: p.groups.load(Relaxed),
            dev_resp_success: p.success.load(Relaxed),
            dev_resp_invalid: p.invalid.load(Relaxed),
            dev_resp_failure: p.failure.load(Relaxed),
            dev_resp_stray: p.stray.load(Relaxed),
            dev_resp_undrained: p.undrained.load(Relaxed),
            dev_resp_timeouts: p.timeouts.load(Relaxed),
        }
    }

    fn run_one(&self, desc: &Desc, buf: &mut [u8]) {
        let out = engine::execute(&self.dev, self.pasid, desc, buf, || self.stopped());
        if out.fault.is_some() {
            self.counters.faults.add(1, Relaxed);
        }
        self.counters.page_requests.add(out.page_requests, Relaxed);
        if desc.flags & uapi::F_COMPLETION != 0 {
            let mut record = [0u8; core::mem::size_of::<uapi::Completion>()];
            record.copy_from_slice(out.completion.as_bytes());
            // The record is 32-byte aligned, so within one page. When it
            // cannot be written (the PASID is gone), the fault is logged.
            if self
                .dev
                .dma(
                    self.pasid,
                    desc.completion,
                    &mut record,
                    true,
                    &mut Paging::blocking(),
                )
                .is_err()
            {
                self.counters.faults.add(1, Relaxed);
            }
        }
        self.counters.completed.add(1, Relaxed);
    }
}

impl WorkItem for Queue {
    type Pointer = Arc<Queue>;

    fn run(this: Arc<Queue>) {
        let mut buf = this.scratch.lock();
        loop {
            let desc = {
                let mut ring = this.ring.lock();
                if ring.stopped || ring.len == 0 {
                    ring.len = 0;
                    ring.running = false;
                    this.idle.notify_all();
                    if let Some(wq) = &ring.poll_wq {
                        wq.wake();
                    }
                    return;
                }
                let d = ring.descs[ring.head];
                ring.head = (ring.head + 1) % QUEUE_DEPTH;
                ring.len -= 1;
                d
            };
            this.run_one(&desc, &mut buf);
        }
    }
}
