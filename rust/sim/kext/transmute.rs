// SPDX-License-Identifier: GPL-2.0

//! Byte views of the platform's user interface structures
//! (`include/uapi/rsva_sim.h`): the kernel crate's [`FromBytes`] and
//! [`AsBytes`], implemented only for structures whose every byte belongs to
//! a field that is itself plain data, which the compiler checks here.
//!
//! C header: [`include/uapi/rsva_sim.h`](../../../include/uapi/rsva_sim.h)

use kernel::{
    prelude::*,
    transmute::{AsBytes, FromBytes},
};

use crate::uapi::{Completion, Desc, Stats};

/// Compiles only for a type that is plain data both ways.
#[allow(
    dead_code,
    reason = "called only in the checks' constants, which the lint does not see"
)]
const fn assert_plain<T: FromBytes + AsBytes>() {}

/// Implements [`FromBytes`] and [`AsBytes`] for structures given with the
/// full list of their fields and field types. The list is checked against
/// the structure (every field, each of that type), every field type is
/// checked to be plain data itself, and the structure's size to be the sum
/// of its fields' sizes: no padding, so every byte is a byte of a plain
/// field.
macro_rules! impl_plain_data {
    ($($t:ident { $($f:ident: $ty:ty),* $(,)? })*) => {$(
        const _: () = {
            /// Every field is listed, with its type.
            #[allow(dead_code)]
            fn fields_are_listed(v: $t) {
                let $t { $($f),* } = v;
                $(let _: $ty = $f;)*
            }
            $(assert_plain::<$ty>();)*
            assert!(core::mem::size_of::<$t>() == 0 $(+ core::mem::size_of::<$ty>())*);
        };

        // SAFETY: Every field of the structure is `FromBytes` and the
        // fields cover every byte of it (both checked above at build time),
        // so every bit pattern is a valid value; plain integers have no
        // interior mutability.
        unsafe impl FromBytes for $t {}

        // SAFETY: The fields are `AsBytes` and cover every byte of the
        // structure (both checked above at build time): no byte is padding,
        // so none is uninitialised; plain integers have no interior
        // mutability.
        unsafe impl AsBytes for $t {}
    )*};
}

impl_plain_data! {
    Desc {
        op: u32,
        flags: u32,
        src: u64,
        dst: u64,
        len: u64,
        pattern: u64,
        completion: u64,
    }
    Completion {
        status: u8,
        result: u8,
        fault_info: u8,
        rsvd: u8,
        crc: u32,
        bytes_completed: u64,
        fault_addr: u64,
        rsvd2: u64,
    }
    Stats {
        submitted: u64,
        completed: u64,
        faults: u64,
        dev_faults: u64,
        dev_iotlb_hits: u64,
        dev_iotlb_misses: u64,
        dev_iotlb_flushes: u64,
        dev_bytes: u64,
        page_requests: u64,
        dev_page_requests: u64,
        dev_page_groups: u64,
        dev_resp_success: u64,
        dev_resp_invalid: u64,
        dev_resp_failure: u64,
        dev_resp_stray: u64,
        dev_resp_undrained: u64,
        dev_resp_timeouts: u64,
    }
}

#[kunit_tests(rsva_sim_transmute)]
mod tests {
    use super::*;

    /// A descriptor's bytes are its fields in the header's order, and read
    /// back as the same descriptor.
    #[test]
    fn descriptor_round_trips_through_bytes() {
        let d = Desc {
            op: 1,
            flags: 2,
            src: 0x1122_3344_5566_7788,
            dst: 4,
            len: 5,
            pattern: 6,
            completion: 7,
        };
        let bytes = d.as_bytes();
        assert_eq!(bytes.len(), 48);
        assert_eq!(bytes[0..4], 1u32.to_ne_bytes());
        assert_eq!(bytes[8..16], 0x1122_3344_5566_7788u64.to_ne_bytes());
        let back = Desc::from_bytes_copy(bytes);
        assert!(back.is_some());
        if let Some(back) = back {
            assert_eq!((back.op, back.src, back.completion), (1, d.src, 7));
        }
        assert!(Desc::from_bytes_copy(&bytes[1..]).is_none());
    }

    /// A completion record's bytes are where user space reads them.
    #[test]
    fn completion_bytes_follow_the_header() {
        let c = Completion {
            status: 2,
            fault_info: 1,
            bytes_completed: 9,
            ..Default::default()
        };
        let bytes = c.as_bytes();
        assert_eq!(bytes.len(), 32);
        assert_eq!((bytes[0], bytes[2]), (2, 1));
        assert_eq!(bytes[8..16], 9u64.to_ne_bytes());
        assert_eq!(Stats::default().as_bytes().len(), 136);
    }
}
