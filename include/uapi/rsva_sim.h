/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * rsva_sim: the user interface of the simulated SVA accelerator.
 *
 * Each accelerator is a character device, /dev/rsva_accelN. Opening it binds
 * the opener's address space to the device with iommu_sva_bind_device(), so
 * the device reaches the process's memory through the PASID of its mm.
 * Descriptors submitted with RSVA_SIM_IOC_SUBMIT run on the device's DMA
 * engine, in order; RSVA_SIM_IOC_WAIT waits for all of them. Closing the
 * file stops the queue, drains it and unbinds.
 */
#ifndef _UAPI_RSVA_SIM_H
#define _UAPI_RSVA_SIM_H

#include <linux/ioctl.h>
#include <linux/types.h>

/* Operations, as a DSA-like engine has them. */
enum rsva_sim_op {
	RSVA_SIM_OP_NOOP = 0,	/* nothing: only a completion record */
	RSVA_SIM_OP_MEMCPY,	/* copy len bytes from src to dst */
	RSVA_SIM_OP_FILL,	/* fill len bytes at dst with the 8-byte pattern */
	RSVA_SIM_OP_COMPARE,	/* compare len bytes at src and dst */
	RSVA_SIM_OP_CRC32,	/* crc32_le(seed = pattern, src, len) */
	RSVA_SIM_OP_MAX,
};

/* Ask for a completion record at @completion (32-byte aligned). */
#define RSVA_SIM_F_COMPLETION	(1U << 0)
/*
 * Page faults: by default the engine blocks on one, as a DSA descriptor
 * with Block On Fault set does: it sends a page request through the IOMMU
 * and waits for the response; SUCCESS retries the access, anything else
 * ends the descriptor with RSVA_SIM_STATUS_PAGE_FAULT. With this flag it
 * sends no page request: the descriptor ends at the first page that is not
 * present (or not writable, for a write) with a partial completion
 * (bytes_completed, fault_addr, fault_info); the submitter touches the
 * page and submits the rest.
 */
#define RSVA_SIM_F_FAULT_REPORT	(1U << 1)
#define RSVA_SIM_F_ALL		(RSVA_SIM_F_COMPLETION | RSVA_SIM_F_FAULT_REPORT)

/* The largest transfer one descriptor may ask for. */
#define RSVA_SIM_MAX_LEN	(64ULL << 20)

/**
 * struct rsva_sim_desc - one unit of work for the DMA engine
 * @op: an enum rsva_sim_op
 * @flags: RSVA_SIM_F_*
 * @src: source address in the submitter's address space
 * @dst: destination address in the submitter's address space
 * @len: bytes to process, at most %RSVA_SIM_MAX_LEN; @src + @len and
 *	@dst + @len must not wrap
 * @pattern: fill pattern (FILL) or CRC seed (CRC32)
 * @completion: address of a struct rsva_sim_completion, 32-byte aligned,
 *	written when the descriptor ends if RSVA_SIM_F_COMPLETION is set
 */
struct rsva_sim_desc {
	__u32 op;
	__u32 flags;
	__u64 src;
	__u64 dst;
	__u64 len;
	__u64 pattern;
	__u64 completion;
};

/* Completion status: 0 until the engine writes the record. */
enum rsva_sim_status {
	RSVA_SIM_STATUS_NONE = 0,
	RSVA_SIM_STATUS_SUCCESS,	/* done; see result and crc */
	RSVA_SIM_STATUS_PAGE_FAULT,	/* translation failed at fault_addr */
	RSVA_SIM_STATUS_ABORTED,	/* the queue was stopped first */
};

/**
 * struct rsva_sim_completion - what the engine writes back
 * @status: an enum rsva_sim_status
 * @result: COMPARE: 0 when equal, 1 when they differ
 * @fault_info: PAGE_FAULT: RSVA_SIM_FAULT_INFO_* bits
 * @rsvd: zero
 * @crc: CRC32: the checksum
 * @bytes_completed: bytes processed before the descriptor ended
 * @fault_addr: PAGE_FAULT: the address that could not be translated
 * @rsvd2: zero
 */
struct rsva_sim_completion {
	__u8 status;
	__u8 result;
	__u8 fault_info;
	__u8 rsvd;
	__u32 crc;
	__u64 bytes_completed;
	__u64 fault_addr;
	__u64 rsvd2;
};

/* fault_info: the faulting access was a write. */
#define RSVA_SIM_FAULT_INFO_WRITE	(1U << 0)
/* fault_info: a page request was answered (not SUCCESS) for it. */
#define RSVA_SIM_FAULT_INFO_REQUESTED	(1U << 1)

/**
 * struct rsva_sim_stats - counters of one open queue and of its device
 * @submitted: descriptors this queue submitted
 * @completed: descriptors of this queue that ran to an end
 * @faults: translation faults of this queue
 * @dev_faults: translation faults of the device, all queues
 * @dev_iotlb_hits: device IOTLB hits
 * @dev_iotlb_misses: device IOTLB misses (page walks)
 * @dev_iotlb_flushes: device IOTLB invalidations
 * @dev_bytes: bytes the device's engine moved
 * @page_requests: page requests this queue's descriptors sent
 * @dev_page_requests: page requests the device sent (one per page)
 * @dev_page_groups: page request groups sent (one response each)
 * @dev_resp_success: groups answered IOMMU_PAGE_RESP_SUCCESS
 * @dev_resp_invalid: groups answered IOMMU_PAGE_RESP_INVALID
 * @dev_resp_failure: groups answered IOMMU_PAGE_RESP_FAILURE
 * @dev_resp_stray: responses that matched no pending group (a duplicate
 *	or a response to nothing; always a bug)
 * @dev_resp_undrained: groups still unanswered when the drain of their
 *	PASID ended (always a bug)
 * @dev_resp_timeouts: groups the engine gave up waiting for (always a bug)
 */
struct rsva_sim_stats {
	__u64 submitted;
	__u64 completed;
	__u64 faults;
	__u64 dev_faults;
	__u64 dev_iotlb_hits;
	__u64 dev_iotlb_misses;
	__u64 dev_iotlb_flushes;
	__u64 dev_bytes;
	__u64 page_requests;
	__u64 dev_page_requests;
	__u64 dev_page_groups;
	__u64 dev_resp_success;
	__u64 dev_resp_invalid;
	__u64 dev_resp_failure;
	__u64 dev_resp_stray;
	__u64 dev_resp_undrained;
	__u64 dev_resp_timeouts;
};

#define RSVA_SIM_IOC_MAGIC	'R'
/*
 * Queue one descriptor: -EINVAL bad op/flags/alignment, -EOVERFLOW bad
 * length, -EAGAIN queue full, -ESHUTDOWN queue stopped.
 */
#define RSVA_SIM_IOC_SUBMIT	_IOW(RSVA_SIM_IOC_MAGIC, 1, struct rsva_sim_desc)
/*
 * Wait until every submitted descriptor has ended (-EINTR on a signal).
 * Through uacce (/dev/rsva_accel-N) it does not sleep, since uacce holds
 * the device's mutex around every ioctl: -EAGAIN while work is pending;
 * poll() reports POLLIN once the queue is idle.
 */
#define RSVA_SIM_IOC_WAIT	_IO(RSVA_SIM_IOC_MAGIC, 2)
/* The PASID this file's bond uses. */
#define RSVA_SIM_IOC_GET_PASID	_IOR(RSVA_SIM_IOC_MAGIC, 3, __u32)
/* Counters of this queue and of the device. */
#define RSVA_SIM_IOC_GET_STATS	_IOR(RSVA_SIM_IOC_MAGIC, 4, struct rsva_sim_stats)

#endif /* _UAPI_RSVA_SIM_H */
