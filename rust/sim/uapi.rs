// SPDX-License-Identifier: GPL-2.0

//! The user interface of `include/uapi/rsva_sim.h`, as Rust types. The
//! layouts are checked against the header's sizes at build time; their
//! byte views (`FromBytes`, `AsBytes`) are implemented, with the checks
//! that make them sound, in `kext/transmute.rs`.

#![forbid(unsafe_code)]

use kernel::{
    ioctl::{_IO, _IOR, _IOW},
    prelude::*,
};

pub(crate) const OP_MEMCPY: u32 = 1;
pub(crate) const OP_FILL: u32 = 2;
pub(crate) const OP_COMPARE: u32 = 3;
pub(crate) const OP_CRC32: u32 = 4;
pub(crate) const OP_MAX: u32 = 5;

pub(crate) const F_COMPLETION: u32 = 1 << 0;
pub(crate) const F_FAULT_REPORT: u32 = 1 << 1;
pub(crate) const F_ALL: u32 = F_COMPLETION | F_FAULT_REPORT;

pub(crate) const MAX_LEN: u64 = 64 << 20;

pub(crate) const STATUS_SUCCESS: u8 = 1;
pub(crate) const STATUS_PAGE_FAULT: u8 = 2;
pub(crate) const STATUS_ABORTED: u8 = 3;

pub(crate) const FAULT_INFO_WRITE: u8 = 1 << 0;
pub(crate) const FAULT_INFO_REQUESTED: u8 = 1 << 1;

/// Completion records are this aligned, so that one never crosses a page.
pub(crate) const COMPLETION_ALIGN: u64 = 32;

/// `struct rsva_sim_desc`.
#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
pub(crate) struct Desc {
    pub(crate) op: u32,
    pub(crate) flags: u32,
    pub(crate) src: u64,
    pub(crate) dst: u64,
    pub(crate) len: u64,
    pub(crate) pattern: u64,
    pub(crate) completion: u64,
}

/// `struct rsva_sim_completion`.
#[repr(C)]
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub(crate) struct Completion {
    pub(crate) status: u8,
    pub(crate) result: u8,
    pub(crate) fault_info: u8,
    pub(crate) rsvd: u8,
    pub(crate) crc: u32,
    pub(crate) bytes_completed: u64,
    pub(crate) fault_addr: u64,
    pub(crate) rsvd2: u64,
}

/// `struct rsva_sim_stats`.
#[repr(C)]
#[derive(Clone, Copy, Default, Debug)]
pub(crate) struct Stats {
    pub(crate) submitted: u64,
    pub(crate) completed: u64,
    pub(crate) faults: u64,
    pub(crate) dev_faults: u64,
    pub(crate) dev_iotlb_hits: u64,
    pub(crate) dev_iotlb_misses: u64,
    pub(crate) dev_iotlb_flushes: u64,
    pub(crate) dev_bytes: u64,
    pub(crate) page_requests: u64,
    pub(crate) dev_page_requests: u64,
    pub(crate) dev_page_groups: u64,
    pub(crate) dev_resp_success: u64,
    pub(crate) dev_resp_invalid: u64,
    pub(crate) dev_resp_failure: u64,
    pub(crate) dev_resp_stray: u64,
    pub(crate) dev_resp_undrained: u64,
    pub(crate) dev_resp_timeouts: u64,
}

const _: () = assert!(core::mem::size_of::<Desc>() == 48);
const _: () = assert!(core::mem::size_of::<Completion>() == 32);
const _: () = assert!(core::mem::size_of::<Stats>() == 136);

const MAGIC: u32 = b'R' as u32;
pub(crate) const IOC_SUBMIT: u32 = _IOW::<Desc>(MAGIC, 1);
pub(crate) const IOC_WAIT: u32 = _IO(MAGIC, 2);
pub(crate) const IOC_GET_PASID: u32 = _IOR::<u32>(MAGIC, 3);
pub(crate) const IOC_GET_STATS: u32 = _IOR::<Stats>(MAGIC, 4);

impl Desc {
    /// Checks a descriptor as the device would accept it: a known op and
    /// flags (`EINVAL`), an aligned completion record (`EINVAL`), and a
    /// length that neither exceeds [`MAX_LEN`] nor wraps (`EOVERFLOW`).
    pub(crate) fn validate(&self) -> Result {
        if self.op >= OP_MAX || self.flags & !F_ALL != 0 {
            return Err(EINVAL);
        }
        if self.flags & F_COMPLETION != 0
            && (self.completion == 0 || self.completion % COMPLETION_ALIGN != 0)
        {
            return Err(EINVAL);
        }
        if self.len > MAX_LEN
            || self.src.checked_add(self.len).is_none()
            || self.dst.checked_add(self.len).is_none()
        {
            return Err(EOVERFLOW);
        }
        Ok(())
    }
}

#[kunit_tests(rsva_sim_uapi)]
mod tests {
    use super::*;

    fn memcpy() -> Desc {
        Desc {
            op: OP_MEMCPY,
            src: 0x1000,
            dst: 0x2000,
            len: 4096,
            ..Default::default()
        }
    }

    #[test]
    fn good_descriptor_passes() {
        assert_eq!(memcpy().validate(), Ok(()));
        let d = Desc {
            flags: F_COMPLETION,
            completion: 0x3020,
            ..memcpy()
        };
        assert_eq!(d.validate(), Ok(()));
    }

    #[test]
    fn bad_descriptors_fail_with_their_errno() {
        assert_eq!(
            Desc {
                op: OP_MAX,
                ..memcpy()
            }
            .validate(),
            Err(EINVAL)
        );
        assert_eq!(
            Desc {
                flags: 4,
                ..memcpy()
            }
            .validate(),
            Err(EINVAL)
        );
        let misaligned = Desc {
            flags: F_COMPLETION,
            completion: 0x3008,
            ..memcpy()
        };
        assert_eq!(misaligned.validate(), Err(EINVAL));
        let null = Desc {
            flags: F_COMPLETION,
            completion: 0,
            ..memcpy()
        };
        assert_eq!(null.validate(), Err(EINVAL));
        assert_eq!(
            Desc {
                len: MAX_LEN + 1,
                ..memcpy()
            }
            .validate(),
            Err(EOVERFLOW)
        );
        let wraps = Desc {
            src: u64::MAX - 10,
            len: 100,
            ..memcpy()
        };
        assert_eq!(wraps.validate(), Err(EOVERFLOW));
    }
}
