/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Helpers for the tests of the simulated accelerator (include/uapi/rsva_sim.h).
 */
#ifndef _RSVA_SIM_UTIL_H
#define _RSVA_SIM_UTIL_H

#include <errno.h>
#include <stdalign.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include <rsva_sim.h>

#define ACCEL_DEV "/dev/rsva_accel%d"
#define SIM_DEBUGFS "/sys/kernel/debug/rsva_sim"

#ifndef ARRAY_SIZE
#define ARRAY_SIZE(arr) (sizeof(arr) / sizeof((arr)[0]))
#endif

/* qsort() order of doubles, ascending. */
static inline int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* Seconds on the monotonic clock. */
static inline double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static inline int accel_open(int n)
{
	char path[64];

	snprintf(path, sizeof(path), ACCEL_DEV, n);
	return open(path, O_RDWR | O_CLOEXEC);
}

/* Returns 0 or -errno. */
static inline int accel_submit(int fd, const struct rsva_sim_desc *d)
{
	return ioctl(fd, RSVA_SIM_IOC_SUBMIT, d) ? -errno : 0;
}

/*
 * Waits until the queue is idle: the misc node's WAIT sleeps, uacce's
 * answers EAGAIN while work is pending and poll() reports when it is not.
 * Returns 0 or -errno.
 */
static inline int accel_wait(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	while (ioctl(fd, RSVA_SIM_IOC_WAIT)) {
		if (errno != EAGAIN)
			return -errno;
		if (poll(&p, 1, -1) < 0 && errno != EINTR)
			return -errno;
	}
	return 0;
}

/* The PASID of the bond behind @fd, or -errno. */
static inline long accel_pasid(int fd)
{
	__u32 pasid;

	if (ioctl(fd, RSVA_SIM_IOC_GET_PASID, &pasid))
		return -errno;
	return pasid;
}

static inline int accel_stats(int fd, struct rsva_sim_stats *s)
{
	return ioctl(fd, RSVA_SIM_IOC_GET_STATS, s) ? -errno : 0;
}

/* Submits one descriptor with a completion record and waits for it. */
static inline int accel_run(int fd, struct rsva_sim_desc *d,
			    struct rsva_sim_completion *c)
{
	int ret;

	memset(c, 0, sizeof(*c));
	d->flags |= RSVA_SIM_F_COMPLETION;
	d->completion = (uintptr_t)c;
	ret = accel_submit(fd, d);
	if (ret)
		return ret;
	return accel_wait(fd);
}

/* Reads the file at @path into @buf (NUL-terminated); bytes or -errno. */
static inline int read_text(const char *path, char *buf, size_t size)
{
	ssize_t n, total = 0;
	int fd;

	fd = open(path, O_RDONLY);
	if (fd < 0)
		return -errno;
	while ((n = read(fd, buf + total, size - 1 - total)) > 0)
		total += n;
	close(fd);
	buf[total] = '\0';
	return n < 0 ? -errno : (int)total;
}

/* Writes @text to the file at @path in one write; 0 or -errno. */
static inline int write_text(const char *path, const char *text)
{
	ssize_t n;
	int fd, err;

	fd = open(path, O_WRONLY);
	if (fd < 0)
		return -errno;
	n = write(fd, text, strlen(text));
	err = n < 0 ? -errno : 0;
	close(fd);
	return err;
}

/*
 * Sets failslab and fail_page_alloc up for a fail-nth sweep: allocations
 * that may sleep fail too, of any order, without a log line each. Returns
 * NULL, or the debugfs file that could not be written.
 */
static inline const char *fail_inject_setup(void)
{
	static const char *const knobs[][2] = {
		{ "failslab/ignore-gfp-wait", "N" },
		{ "failslab/verbose", "0" },
		{ "fail_page_alloc/ignore-gfp-wait", "N" },
		{ "fail_page_alloc/ignore-gfp-highmem", "N" },
		{ "fail_page_alloc/min-order", "0" },
		{ "fail_page_alloc/verbose", "0" },
	};
	static char path[128];
	unsigned int i;

	for (i = 0; i < ARRAY_SIZE(knobs); i++) {
		snprintf(path, sizeof(path), "/sys/kernel/debug/%s", knobs[i][0]);
		if (write_text(path, knobs[i][1]))
			return path;
	}
	return NULL;
}

/* The value after "@key " in a file of "key value" lines, or -1. */
static inline long long text_counter(const char *path, const char *key)
{
	char buf[4096], *p;
	size_t klen = strlen(key);

	if (read_text(path, buf, sizeof(buf)) < 0)
		return -1;
	for (p = buf; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
		if (!strncmp(p, key, klen) && p[klen] == ' ')
			return atoll(p + klen + 1);
	return -1;
}

/* Reads a debugfs file of the simulator into @buf (NUL-terminated). */
static inline int sim_read(const char *file, char *buf, size_t size)
{
	char path[128];

	snprintf(path, sizeof(path), SIM_DEBUGFS "/%s", file);
	return read_text(path, buf, size);
}

/* The value after "@key " in a simulator debugfs file, or -1. */
static inline long long sim_counter(const char *file, const char *key)
{
	char path[128];

	snprintf(path, sizeof(path), SIM_DEBUGFS "/%s", file);
	return text_counter(path, key);
}

/*
 * State of @pasid in device @dev's table: 1 active, 2 blocked by the mm's
 * release ("cleared" or "abort"), 0 absent.
 */
static inline int sim_pasid_state(int dev, long pasid)
{
	char file[64], buf[8192], *line;
	long p;
	char state[16];

	snprintf(file, sizeof(file), "dev%d/pasid_table", dev);
	if (sim_read(file, buf, sizeof(buf)) < 0)
		return -1;
	for (line = strtok(buf, "\n"); line; line = strtok(NULL, "\n"))
		if (sscanf(line, "%ld %15s", &p, state) == 2 && p == pasid)
			return strcmp(state, "active") ? 2 : 1;
	return 0;
}

/*
 * The IOMMU driver the simulator imitates ("intel", "amd" or "arm", see
 * rust/sim/personality.rs) into @buf; @buf is "" when unknown.
 */
static inline const char *sim_personality(char *buf, size_t size)
{
	if (sim_read("personality", buf, size) < 0)
		buf[0] = '\0';
	buf[strcspn(buf, "\n")] = '\0';
	return buf;
}

/*
 * The state sim_pasid_state() reports for an entry after the mm's release
 * and before unbind: blocked (2) by Intel's and SMMUv3's release, absent
 * (0) after AMD's, which removes it.
 */
static inline int sim_released_state(void)
{
	char p[16];

	return strcmp(sim_personality(p, sizeof(p)), "amd") ? 2 : 0;
}

/* crc32_le() of the kernel: reflected, polynomial 0xedb88320, no inversion. */
static inline uint32_t crc32_le(uint32_t crc, const void *buf, size_t len)
{
	const uint8_t *p = buf;
	int k;

	while (len--) {
		crc ^= *p++;
		for (k = 0; k < 8; k++)
			crc = (crc >> 1) ^ (0xedb88320 & -(crc & 1));
	}
	return crc;
}

static inline void fill_random(void *buf, size_t len, unsigned int seed)
{
	uint32_t x = seed * 2654435761u + 1;
	uint8_t *p = buf;

	while (len--) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		*p++ = x;
	}
}

#endif /* _RSVA_SIM_UTIL_H */
