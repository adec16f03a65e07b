// SPDX-License-Identifier: GPL-2.0
/*
 * The simulated platform loaded with devices=3 group_size=3 pasid_bits=2:
 * three devices in one IOMMU group, each with 4 PASIDs (1-3 usable).
 * A bind attaches the PASID to every device of the group; binds beyond the
 * PASID space fail with ENOSPC and succeed again once PASIDs are freed.
 */
#include <signal.h>
#include <sys/wait.h>

#include "kselftest_harness.h"
#include "rsva_sim_util.h"

TEST(group_devices_share_the_attach)
{
	int fd0 = accel_open(0), fd2;
	long pasid;

	ASSERT_LE(0, fd0);
	pasid = accel_pasid(fd0);
	ASSERT_LT(0, pasid);
	/* The core sets the PASID on every device of the group. */
	EXPECT_EQ(1, sim_pasid_state(1, pasid));
	EXPECT_EQ(1, sim_pasid_state(2, pasid));
	/* A bind on another device of the group is the same bond. */
	fd2 = accel_open(2);
	ASSERT_LE(0, fd2);
	EXPECT_EQ(pasid, accel_pasid(fd2));
	close(fd0);
	EXPECT_EQ(1, sim_pasid_state(0, pasid)) TH_LOG("fd2 still holds it");
	close(fd2);
	EXPECT_EQ(0, sim_pasid_state(0, pasid));
	EXPECT_EQ(0, sim_pasid_state(1, pasid));
}

/* Children that each bind device 0 and wait; returns how many bound. */
static int bind_children(pid_t *pids, int n, int *errs)
{
	int i, bound = 0;

	for (i = 0; i < n; i++) {
		int p[2], err = 0;

		if (pipe(p))
			return -1;
		pids[i] = fork();
		if (!pids[i]) {
			int fd = accel_open(0);

			err = fd < 0 ? errno : 0;
			if (write(p[1], &err, sizeof(err)) != sizeof(err))
				_exit(1);
			for (;;)
				pause();
		}
		if (read(p[0], &err, sizeof(err)) != sizeof(err))
			err = -1;
		close(p[0]);
		close(p[1]);
		errs[i] = err;
		bound += !err;
	}
	return bound;
}

static void kill_children(pid_t *pids, int n)
{
	int i, status;

	for (i = 0; i < n; i++) {
		kill(pids[i], SIGKILL);
		waitpid(pids[i], &status, 0);
	}
}

TEST(pasid_space_exhaustion_and_recovery)
{
	pid_t pids[4];
	int errs[4], fd = -1, i;

	/* PASIDs 1..3: three address spaces fit, the fourth does not. */
	EXPECT_EQ(3, bind_children(pids, 4, errs));
	EXPECT_EQ(ENOSPC, errs[3]);
	kill_children(pids, 4);

	/*
	 * A PASID is freed with its mm, when the last mmdrop() comes: the SVA
	 * domain's notifier drops its reference after an SRCU grace period.
	 */
	for (i = 0; i < 200; i++) {
		fd = accel_open(0);
		if (fd >= 0 || errno != ENOSPC)
			break;
		usleep(10000);
	}
	ASSERT_LE(0, fd) TH_LOG("errno %d after %d tries", errno, i);
	EXPECT_LT(0, accel_pasid(fd));
	close(fd);
}

TEST_HARNESS_MAIN
