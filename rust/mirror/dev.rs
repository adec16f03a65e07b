// SPDX-License-Identifier: GPL-2.0

//! `/dev/rsva_mirror0` and `/dev/rsva_mirror1`: the HMM mirror as two
//! devices whose ioctls follow `lib/test_hmm_uapi.h`, so that the same calls
//! on `/dev/hmm_dmirror0`/`1` (test_hmm) and here give the same results.
//!
//! Each node is a [`MirrorNode`]: a device with its own device-private
//! memory ([`DeviceMemory`], whose address is the owner the core compares),
//! alive while the module is loaded and while a file of it is open.
//! Opening mirrors the opener's address space ([`Mirror`]); closing drops
//! the mirror and, as test_hmm, migrates every page of the device's memory
//! back to system memory. `HMM_DMIRROR_READ`, `WRITE`, `SNAPSHOT`,
//! `READ_UNLOCKED` (the same as `READ` here), `MIGRATE_TO_DEV`,
//! `MIGRATE_TO_SYS` (`crate::mirror::migration`), `RELEASE` (the device
//! gives all its memory up), `FLAGS` (`HMM_DMIRROR_FLAG_FAIL_ALLOC`: the
//! file's next allocation fails), `EXCLUSIVE` and `CHECK_EXCLUSIVE`
//! (`mirror/hmm/exclusive.rs`) are served. mmap gives fresh zeroed pages
//! (`mirror/mmap.rs`), as test_hmm's. A command's address must be page
//! aligned and its range must not wrap (`EINVAL`), as in test_hmm. Unlike
//! test_hmm, only the opener's address space may use the file: any other
//! process gets `EPERM`.

#![forbid(unsafe_code)]

use kernel::{
    fs::File,
    ioctl::{_IOC_SIZE, _IOWR},
    miscdevice::{MiscDevice, MiscDeviceOptions, MiscDeviceRegistration},
    mm::virt::VmaNew,
    prelude::*,
    sync::{
        atomic::{Atomic, Relaxed},
        Arc,
    },
    uaccess::{UserPtr, UserSlice},
};

use crate::{
    kext::glue,
    kext::sync::slots::{Slots, Visit},
    mirror::hmm::{DeviceView, Mirror},
    mirror::mmap,
    mirror::registry::span,
    mirror::{
        devmem::{self, DeviceMemory},
        migration,
    },
};

/// `struct hmm_dmirror_cmd`: five `__u64`, copied to and from user space
/// as an array of them (which is `FromBytes` and `AsBytes`).
#[derive(Clone, Copy, Default)]
struct DmirrorCmd {
    addr: u64,
    ptr: u64,
    npages: u64,
    cpages: u64,
    faults: u64,
}

/// The C structure's layout.
type RawCmd = [u64; 5];

impl DmirrorCmd {
    fn from_raw(r: RawCmd) -> Self {
        let [addr, ptr, npages, cpages, faults] = r;
        Self {
            addr,
            ptr,
            npages,
            cpages,
            faults,
        }
    }

    fn to_raw(self) -> RawCmd {
        [self.addr, self.ptr, self.npages, self.cpages, self.faults]
    }
}

const fn cmd(nr: u32) -> u32 {
    _IOWR::<RawCmd>(b'H' as u32, nr)
}

const READ: u32 = cmd(0x00);
const WRITE: u32 = cmd(0x01);
const MIGRATE_TO_DEV: u32 = cmd(0x02);
const MIGRATE_TO_SYS: u32 = cmd(0x03);
const SNAPSHOT: u32 = cmd(0x04);
const EXCLUSIVE: u32 = cmd(0x05);
const CHECK_EXCLUSIVE: u32 = cmd(0x06);
const RELEASE: u32 = cmd(0x07);
const FLAGS: u32 = cmd(0x08);
const READ_UNLOCKED: u32 = cmd(0x09);

/// The number of mirror devices (test_hmm's two device-private ones).
pub(crate) const NODES: usize = 2;

/// One mirror device (`/dev/rsva_mirrorN`): its device memory, and what
/// else a device has (the files reach it through their `node`).
/// Held by the module while it is registered and by every open file.
#[pin_data]
pub(crate) struct MirrorNode {
    memory: DeviceMemory,
}

impl MirrorNode {
    fn new(name: &'static CStr) -> impl PinInit<Self, Error> {
        try_pin_init!(Self {
            memory: DeviceMemory::new(name)?,
        }? Error)
    }

    /// The device's memory.
    pub(crate) fn memory(&self) -> &DeviceMemory {
        &self.memory
    }

    /// The device memory as its mirrors see it.
    fn view(&self) -> DeviceView {
        DeviceView {
            owner: self.memory.owner(),
            backing: devmem::backing_of,
        }
    }
}

/// The nodes, each with its number, while the module has them.
static NODE_TABLE: Slots<(usize, Arc<MirrorNode>), NODES> = Slots::new();

/// The node `N`, while the module has it. May sleep.
fn node(n: usize) -> Option<Arc<MirrorNode>> {
    let mut found = None;
    NODE_TABLE.visit(|(i, node)| {
        if *i == n {
            found = Some(node.clone());
        }
        Visit::Keep
    });
    found
}

/// What `debugfs/rsva/mirrors` shows of a node's memory.
#[derive(Clone, Copy, Default)]
pub(crate) struct MemoryStats {
    /// Device pages handed out.
    pub(crate) in_use: usize,
    /// Chunks of device memory.
    pub(crate) chunks: usize,
}

/// The memory of each node (zero for a node the module no longer has).
pub(crate) fn memory_stats() -> [MemoryStats; NODES] {
    let mut out = [MemoryStats::default(); NODES];
    for (i, o) in out.iter_mut().enumerate() {
        if let Some(n) = node(i) {
            *o = MemoryStats {
                in_use: n.memory.in_use(),
                chunks: n.memory.chunks(),
            };
        }
    }
    out
}

/// The registered mirror devices; dropping them deregisters the nodes, then
/// lets the module's references go (each node's memory is given up when
/// its last file is closed too).
pub(crate) struct MirrorDevices {
    reg0: Option<Pin<KBox<MiscDeviceRegistration<MirrorFile<0>>>>>,
    reg1: Option<Pin<KBox<MiscDeviceRegistration<MirrorFile<1>>>>>,
}

impl MirrorDevices {
    /// Creates the nodes and registers `/dev/rsva_mirror0` and `1`.
    pub(crate) fn register() -> Result<Self> {
        // First, so that a failure below takes the nodes out again.
        let mut this = Self {
            reg0: None,
            reg1: None,
        };
        let names = [c"rsva_mirror0", c"rsva_mirror1"];
        for (i, name) in names.into_iter().enumerate() {
            let n = Arc::pin_init(MirrorNode::new(name), GFP_KERNEL)?;
            NODE_TABLE.insert(|| Ok((i, n)))?;
        }
        this.reg0 = Some(KBox::pin_init(
            MiscDeviceRegistration::register(MiscDeviceOptions { name: names[0] }),
            GFP_KERNEL,
        )?);
        this.reg1 = Some(KBox::pin_init(
            MiscDeviceRegistration::register(MiscDeviceOptions { name: names[1] }),
            GFP_KERNEL,
        )?);
        Ok(this)
    }
}

impl Drop for MirrorDevices {
    fn drop(&mut self) {
        drop(self.reg0.take());
        drop(self.reg1.take());
        // The memory is given up outside the table's slots.
        while let Some(node) = NODE_TABLE.take(|_| true) {
            drop(node);
        }
    }
}

/// An open `/dev/rsva_mirrorN`: the mirror of its opener's address space on
/// node `N`.
pub(crate) struct MirrorFile<const N: usize> {
    mirror: Mirror,
    /// The address of the opener's mm: only compared, never dereferenced
    /// (the mirror holds `mmgrab()` on it, so no other mm can have this
    /// address while the file is open).
    opener_mm: usize,
    node: Arc<MirrorNode>,
    /// `HMM_DMIRROR_FLAGS`.
    flags: Atomic<u64>,
}

impl<const N: usize> Drop for MirrorFile<N> {
    fn drop(&mut self) {
        // As test_hmm's release: every page of the device goes back to
        // system memory.
        self.node.memory().evict();
    }
}

#[vtable]
impl<const N: usize> MiscDevice for MirrorFile<N> {
    type Ptr = KBox<Self>;

    fn open(_file: &File, _misc: &MiscDeviceRegistration<Self>) -> Result<KBox<Self>> {
        let node = node(N).ok_or(ENODEV)?;
        let mm = glue::current_mm_user().ok_or(EINVAL)?;
        Ok(KBox::new(
            Self {
                mirror: Mirror::new(&mm, Some(node.view()))?,
                opener_mm: mm.as_raw() as usize,
                node,
                flags: Atomic::new(0),
            },
            GFP_KERNEL,
        )?)
    }

    fn ioctl(this: &Self, _file: &File, command: u32, arg: usize) -> Result<isize> {
        // Only the opener: another process holding the file (inherited,
        // passed, or taken with pidfd_getfd()) would otherwise read and
        // write the opener's memory through it. test_hmm allows that.
        if glue::current_mm() as usize != this.opener_mm {
            return Err(EPERM);
        }
        if _IOC_SIZE(command) != core::mem::size_of::<RawCmd>() {
            return Err(EINVAL);
        }
        let (mut reader, mut writer) =
            UserSlice::new(UserPtr::from_addr(arg), _IOC_SIZE(command)).reader_writer();
        let mut c = DmirrorCmd::from_raw(reader.read()?);
        let (start, npages) = (
            usize::try_from(c.addr).map_err(|_| EINVAL)?,
            usize::try_from(c.npages).map_err(|_| EINVAL)?,
        );
        span(start, npages)?;
        let m = &this.mirror;
        let mem = this.node.memory();
        (c.cpages, c.faults) = match command {
            READ | READ_UNLOCKED => m.read(start, npages, c.ptr)?,
            WRITE => m.write(start, npages, c.ptr)?,
            SNAPSHOT => (m.snapshot(start, npages, c.ptr)?, 0),
            MIGRATE_TO_DEV => (
                migration::to_device(m, mem, start, npages, c.ptr, &this.flags)?,
                0,
            ),
            MIGRATE_TO_SYS => (migration::to_system(m, mem, start, npages, &this.flags)?, 0),
            RELEASE => {
                mem.release();
                (0, 0)
            }
            FLAGS => {
                this.flags.store(c.npages, Relaxed);
                (0, 0)
            }
            EXCLUSIVE => (m.exclusive(start, npages, c.ptr)?, 0),
            CHECK_EXCLUSIVE => m.check_exclusive(start, npages).map(|()| (0, 0))?,
            _ => return Err(EINVAL),
        };
        writer.write(&c.to_raw())?;
        Ok(0)
    }

    fn mmap(_this: &Self, _file: &File, vma: &VmaNew) -> Result {
        mmap::mmap(vma)
    }
}
