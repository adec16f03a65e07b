// SPDX-License-Identifier: GPL-2.0

//! The DMA engine of a simulated accelerator: runs one descriptor in the
//! submitter's address space, through its PASID, one page-bounded access at
//! a time (`SimDevice::dma`), and says how it ended.

#![forbid(unsafe_code)]

use kernel::{page::PAGE_SIZE, prelude::*};

use crate::{
    device::{Paging, SimDevice},
    fault_log::{Fault, FaultReason},
    uapi::{self, Completion, Desc},
};

/// The kernel's `crc32_le()`: reflected CRC-32 (polynomial 0xedb88320), no
/// inversion at either end, so that `crc32_le(crc32_le(s, a), b)` is the CRC
/// of `a` then `b`.
pub(crate) fn crc32_le(mut crc: u32, data: &[u8]) -> u32 {
    const TABLE: [u32; 256] = {
        let mut t = [0u32; 256];
        let mut i = 0;
        while i < 256 {
            let mut c = i as u32;
            let mut k = 0;
            while k < 8 {
                c = if c & 1 != 0 {
                    0xedb8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
                k += 1;
            }
            t[i] = c;
            i += 1;
        }
        t
    };
    for &b in data {
        crc = TABLE[((crc ^ u32::from(b)) & 0xff) as usize] ^ (crc >> 8);
    }
    crc
}

/// How a descriptor ended, before its completion record is written.
pub(crate) struct Outcome {
    pub(crate) completion: Completion,
    pub(crate) fault: Option<Fault>,
    /// Pages the descriptor asked the OS for (page requests).
    pub(crate) page_requests: u64,
}

/// The length of the next access at `addr`, at most `left`, within a page.
fn chunk(addr: u64, left: u64) -> usize {
    let page = PAGE_SIZE as u64;
    // At most PAGE_SIZE, so it fits in usize.
    (page - addr % page).min(left) as usize
}

/// Runs `desc` on `dev` for `pasid`; `stopped` is polled between accesses so
/// that a stopped queue ends a long descriptor early. `buf` is scratch space
/// of at least two pages.
pub(crate) fn execute(
    dev: &SimDevice,
    pasid: u32,
    desc: &Desc,
    buf: &mut [u8],
    stopped: impl Fn() -> bool,
) -> Outcome {
    let mut c = Completion::default();
    let (a, b) = buf.split_at_mut(PAGE_SIZE);
    let pattern = desc.pattern.to_le_bytes();
    let mut crc = desc.pattern as u32;
    let mut done: u64 = 0;
    let mut fault = None;
    let block = desc.flags & uapi::F_FAULT_REPORT == 0;
    // The source and destination streams, each with what it still touches.
    let stream = || Paging {
        block,
        ahead: 0,
        requests: 0,
    };
    let (mut rd, mut wr) = (stream(), stream());

    while done < desc.len && fault.is_none() {
        if stopped() {
            c.status = uapi::STATUS_ABORTED;
            break;
        }
        let left = desc.len - done;
        let (src, dst) = (desc.src + done, desc.dst + done);
        // Set once the access length `n` is known.
        let mut ahead = |n: usize| {
            rd.ahead = left - n as u64;
            wr.ahead = left - n as u64;
        };
        let step = match desc.op {
            uapi::OP_MEMCPY => {
                let n = chunk(src, left).min(chunk(dst, left));
                ahead(n);
                // Page to page when both sides are cached, else each side
                // through the scratch buffer (walking, faulting).
                match dev.copy_cached(pasid, src, dst, n) {
                    Ok(true) => Ok(n),
                    Ok(false) => dev
                        .dma(pasid, src, &mut a[..n], false, &mut rd)
                        .and_then(|()| dev.dma(pasid, dst, &mut a[..n], true, &mut wr))
                        .map(|()| n),
                    Err(f) => Err(f),
                }
            }
            uapi::OP_FILL => {
                let n = chunk(dst, left);
                ahead(n);
                for (i, byte) in a[..n].iter_mut().enumerate() {
                    // `done + i` modulo 8 keeps the pattern's phase.
                    *byte = pattern[((done + i as u64) % 8) as usize];
                }
                dev.dma(pasid, dst, &mut a[..n], true, &mut wr).map(|()| n)
            }
            uapi::OP_COMPARE => {
                let n = chunk(src, left).min(chunk(dst, left));
                ahead(n);
                let r = dev
                    .dma(pasid, src, &mut a[..n], false, &mut rd)
                    .and_then(|()| dev.dma(pasid, dst, &mut b[..n], false, &mut wr));
                if r.is_ok() && a[..n] != b[..n] {
                    c.result = 1;
                    // Like DSA: bytes_completed says where they differ.
                    let first = a[..n]
                        .iter()
                        .zip(&b[..n])
                        .take_while(|(x, y)| x == y)
                        .count();
                    done += first as u64;
                    break;
                }
                r.map(|()| n)
            }
            uapi::OP_CRC32 => {
                let n = chunk(src, left);
                ahead(n);
                dev.dma(pasid, src, &mut a[..n], false, &mut rd).map(|()| {
                    crc = crc32_le(crc, &a[..n]);
                    n
                })
            }
            // NOOP (and nothing else: ops are validated on submission).
            _ => Ok(left as usize),
        };
        match step {
            Ok(n) => done += n as u64,
            Err(f) => fault = Some(f),
        }
    }

    c.bytes_completed = done;
    if let Some(f) = &fault {
        c.status = uapi::STATUS_PAGE_FAULT;
        c.fault_addr = f.addr;
        if f.write {
            c.fault_info |= uapi::FAULT_INFO_WRITE;
        }
        if f.reason == FaultReason::RequestDenied {
            c.fault_info |= uapi::FAULT_INFO_REQUESTED;
        }
    } else if c.status == 0 {
        c.status = uapi::STATUS_SUCCESS;
        if desc.op == uapi::OP_CRC32 {
            c.crc = crc;
        }
    }
    Outcome {
        completion: c,
        fault,
        page_requests: rd.requests + wr.requests,
    }
}

#[kunit_tests(rsva_sim_engine)]
mod tests {
    use super::*;

    #[test]
    fn crc32_matches_known_values() {
        // crc32_le(~0, "123456789") ^ ~0 is the CRC-32 check value.
        assert_eq!(crc32_le(!0, b"123456789") ^ !0, 0xcbf4_3926);
        assert_eq!(crc32_le(0, b""), 0);
        let whole = crc32_le(7, b"hello world");
        let split = crc32_le(crc32_le(7, b"hello "), b"world");
        assert_eq!(whole, split);
    }

    #[test]
    fn chunks_stop_at_page_boundaries() {
        let page = PAGE_SIZE as u64;
        assert_eq!(chunk(0, 10 * page), PAGE_SIZE);
        assert_eq!(chunk(page - 1, 10 * page), 1);
        assert_eq!(chunk(5, 3), 3);
    }
}
