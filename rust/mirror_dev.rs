// SPDX-License-Identifier: GPL-2.0

//! `/dev/rsva_mirror0`: the HMM mirror as a device whose ioctls follow
//! `lib/test_hmm_uapi.h`, so that the same calls on `/dev/hmm_dmirror0`
//! (test_hmm) and here give the same results.
//!
//! Opening mirrors the opener's address space ([`Mirror`]); closing drops
//! the mirror. `HMM_DMIRROR_READ`, `WRITE`, `SNAPSHOT` and `READ_UNLOCKED`
//! (the same as `READ` here) are served, and `EXCLUSIVE` and
//! `CHECK_EXCLUSIVE` (`hmm_mirror/exclusive.rs`); `FLAGS` and `RELEASE`
//! are accepted and do nothing (there is no device memory); the migration
//! commands answer `EOPNOTSUPP`. mmap gives fresh zeroed pages
//! (`mirror_mmap.rs`), as test_hmm's. A command's address must be page
//! aligned and its range must not wrap (`EINVAL`), as in test_hmm. Unlike
//! test_hmm, only the opener's address space may use the file: any other
//! process gets `EPERM`.

use kernel::{
    fs::File,
    ioctl::{_IOC_SIZE, _IOWR},
    miscdevice::{MiscDevice, MiscDeviceRegistration},
    mm::{virt::VmaNew, Mm},
    prelude::*,
    transmute::{AsBytes, FromBytes},
    uaccess::{UserPtr, UserSlice},
};

use crate::{glue, hmm_mirror::Mirror, mirror_mmap, mm_mirror::span};

/// `struct hmm_dmirror_cmd`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct DmirrorCmd {
    addr: u64,
    ptr: u64,
    npages: u64,
    cpages: u64,
    faults: u64,
}

// SAFETY: Plain integers: every bit pattern is valid.
unsafe impl FromBytes for DmirrorCmd {}
// SAFETY: Plain integers without padding.
unsafe impl AsBytes for DmirrorCmd {}

const fn cmd(nr: u32) -> u32 {
    _IOWR::<DmirrorCmd>(b'H' as u32, nr)
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

/// An open `/dev/rsva_mirror0`: the mirror of its opener's address space.
pub(crate) struct MirrorFile {
    mirror: Mirror,
    /// The address of the opener's mm: only compared, never dereferenced
    /// (the mirror holds `mmgrab()` on it, so no other mm can have this
    /// address while the file is open).
    opener_mm: usize,
}

#[vtable]
impl MiscDevice for MirrorFile {
    type Ptr = KBox<Self>;

    fn open(_file: &File, _misc: &MiscDeviceRegistration<Self>) -> Result<KBox<Self>> {
        let mm = glue::current_mm();
        if mm.is_null() {
            return Err(EINVAL);
        }
        // SAFETY: The opener's mm is valid during open.
        let mm = unsafe { Mm::from_raw(mm) }.mmget_not_zero().ok_or(EINVAL)?;
        Ok(KBox::new(
            Self {
                mirror: Mirror::new(&mm)?,
                opener_mm: glue::current_mm() as usize,
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
        if _IOC_SIZE(command) != core::mem::size_of::<DmirrorCmd>() {
            return Err(EINVAL);
        }
        let (mut reader, mut writer) =
            UserSlice::new(UserPtr::from_addr(arg), _IOC_SIZE(command)).reader_writer();
        let mut c: DmirrorCmd = reader.read()?;
        let (start, npages) = (
            usize::try_from(c.addr).map_err(|_| EINVAL)?,
            usize::try_from(c.npages).map_err(|_| EINVAL)?,
        );
        span(start, npages)?;
        let m = &this.mirror;
        (c.cpages, c.faults) = match command {
            READ | READ_UNLOCKED => m.read(start, npages, c.ptr)?,
            WRITE => m.write(start, npages, c.ptr)?,
            SNAPSHOT => (m.snapshot(start, npages, c.ptr)?, 0),
            FLAGS | RELEASE => (0, 0),
            EXCLUSIVE => (m.exclusive(start, npages, c.ptr)?, 0),
            CHECK_EXCLUSIVE => m.check_exclusive(start, npages).map(|()| (0, 0))?,
            MIGRATE_TO_DEV | MIGRATE_TO_SYS => return Err(EOPNOTSUPP),
            _ => return Err(EINVAL),
        };
        writer.write(&c)?;
        Ok(0)
    }

    fn mmap(_this: &Self, _file: &File, vma: &VmaNew) -> Result {
        mirror_mmap::mmap(vma)
    }
}
