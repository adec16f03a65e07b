// SPDX-License-Identifier: GPL-2.0
/*
 * rsva's debugfs interface, seen from user space: the module answers with
 * the expected content, applies a valid PASID range and refuses an invalid
 * one with EINVAL without disturbing the range in force; its settings (and
 * the test modules' debugfs controls) are not writable without
 * CAP_SYS_ADMIN, nor reachable by other users.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <linux/capability.h>

#include "kselftest_harness.h"

#define RSVA_DEBUGFS "/sys/kernel/debug/rsva"
#define PASID_RANGE RSVA_DEBUGFS "/pasid_range"

/* Reads a whole small file into @buf; returns its length or -errno. */
static int read_file(const char *path, char *buf, size_t size)
{
	int fd = open(path, O_RDONLY);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = read(fd, buf, size - 1);
	if (n < 0)
		n = -errno;
	else
		buf[n] = '\0';
	close(fd);
	return n;
}

/* Writes @text in one write(2); returns 0 or -errno. */
static int write_file(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = write(fd, text, strlen(text));
	close(fd);
	if (n < 0)
		return -errno;
	return n == (ssize_t)strlen(text) ? 0 : -EIO;
}

FIXTURE(pasid_range) {
	char saved[64];
};

FIXTURE_SETUP(pasid_range)
{
	ASSERT_LT(0, read_file(PASID_RANGE, self->saved, sizeof(self->saved)))
		TH_LOG("is rsva.ko loaded and debugfs mounted?");
}

FIXTURE_TEARDOWN(pasid_range)
{
	unsigned int min, max, count;

	/* Put back the range the module had before the test. */
	if (sscanf(self->saved, "%u %u %u", &min, &max, &count) == 3) {
		char text[32];

		snprintf(text, sizeof(text), "%u %u", min, max);
		write_file(PASID_RANGE, text);
	}
}

TEST(version_names_the_module)
{
	char buf[64];

	ASSERT_LT(0, read_file(RSVA_DEBUGFS "/version", buf, sizeof(buf)));
	EXPECT_EQ(0, strncmp(buf, "rsva ", 5)) TH_LOG("got '%s'", buf);
	EXPECT_EQ('\n', buf[strlen(buf) - 1]);
}

TEST_F(pasid_range, default_is_the_full_20_bit_space)
{
	/* The module's default range, as long as nobody changed it. */
	EXPECT_STREQ("1 1048575 1048575\n", self->saved);
}

TEST_F(pasid_range, valid_range_is_applied)
{
	char buf[64];

	ASSERT_EQ(0, write_file(PASID_RANGE, "16 31"));
	ASSERT_LT(0, read_file(PASID_RANGE, buf, sizeof(buf)));
	EXPECT_STREQ("16 31 16\n", buf);

	ASSERT_EQ(0, write_file(PASID_RANGE, "1 1\n"));
	ASSERT_LT(0, read_file(PASID_RANGE, buf, sizeof(buf)));
	EXPECT_STREQ("1 1 1\n", buf);
}

TEST_F(pasid_range, invalid_range_is_refused_and_changes_nothing)
{
	static const char *const bad[] = {
		"0 5", "9 8", "1 1048576", "1", "1 2 3", "x y", "-1 5",
		"1 99999999999", "",
		"1 1000000000000000000000000000000000000000000000000000",
	};
	char buf[64];
	size_t i;

	ASSERT_EQ(0, write_file(PASID_RANGE, "100 163"));
	for (i = 0; i < ARRAY_SIZE(bad); i++) {
		EXPECT_EQ(-EINVAL, write_file(PASID_RANGE, bad[i]))
			TH_LOG("input '%s'", bad[i]);
		ASSERT_LT(0, read_file(PASID_RANGE, buf, sizeof(buf)));
		EXPECT_STREQ("100 163 64\n", buf) TH_LOG("after '%s'", bad[i]);
	}
}

/* Every writable debugfs file, with a write that would be accepted. */
static const char *const settings[][2] = {
	{ RSVA_DEBUGFS "/serve", "1" },
	{ RSVA_DEBUGFS "/pasids_per_user", "16384" },
	{ PASID_RANGE, "1 1048575" },
	{ "/sys/kernel/debug/rsva_client/bench", "bind 0 1" },
	{ "/sys/kernel/debug/rsva_sim_drivers/claim", "claim a 0000:00:01.0" },
};

/* Drops CAP_SYS_ADMIN from this process's effective and permitted sets. */
static int drop_cap_sys_admin(void)
{
	struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct d[2];

	if (syscall(SYS_capget, &h, d))
		return -errno;
	d[CAP_TO_INDEX(CAP_SYS_ADMIN)].effective &= ~CAP_TO_MASK(CAP_SYS_ADMIN);
	d[CAP_TO_INDEX(CAP_SYS_ADMIN)].permitted &= ~CAP_TO_MASK(CAP_SYS_ADMIN);
	return syscall(SYS_capset, &h, d) ? -errno : 0;
}

/*
 * Root without CAP_SYS_ADMIN opens every setting (the modes let it) but
 * each write fails with EPERM, and the settings read the same afterwards.
 */
TEST(settings_need_cap_sys_admin)
{
	char before[3][128], after[128];
	unsigned int i, min, max, n = ARRAY_SIZE(settings);
	int status, present = 0;
	pid_t pid;

	for (i = 0; i < 3; i++)
		ASSERT_LT(0, read_file(settings[i][0], before[i], sizeof(before[i])));
	pid = fork();
	ASSERT_LE(0, pid);
	if (!pid) {
		if (drop_cap_sys_admin())
			_exit(100);
		for (i = 0; i < n; i++) {
			int ret = write_file(settings[i][0], settings[i][1]);

			/* The test modules may not be loaded; rsva's files are. */
			if (ret == -ENOENT && i >= 3)
				continue;
			if (ret != -EPERM)
				_exit(10 + i);
		}
		_exit(0);
	}
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	ASSERT_TRUE(WIFEXITED(status));
	EXPECT_EQ(0, WEXITSTATUS(status))
		TH_LOG("setting %d was not refused with EPERM", WEXITSTATUS(status) - 10);
	for (i = 0; i < 3; i++) {
		ASSERT_LT(0, read_file(settings[i][0], after, sizeof(after)));
		EXPECT_STREQ(before[i], after);
	}
	/* With the capability, writing the values back is accepted. */
	EXPECT_EQ(0, write_file(settings[0][0], before[0]));
	EXPECT_EQ(0, write_file(settings[1][0], before[1]));
	status = sscanf(before[2], "%u %u", &min, &max);
	ASSERT_EQ(2, status);
	snprintf(after, sizeof(after), "%u %u", min, max);
	EXPECT_EQ(0, write_file(settings[2][0], after));
	for (i = 3; i < n; i++)
		present += access(settings[i][0], F_OK) == 0;
	TH_LOG("%d test module controls checked too", present);
}

/* Another user cannot reach debugfs at all (EACCES), let alone write. */
TEST(other_users_cannot_reach_rsva_debugfs)
{
	int status;
	pid_t pid = fork();

	ASSERT_LE(0, pid);
	if (!pid) {
		char buf[64];

		if (setgid(65534) || setuid(65534))
			_exit(100);
		if (write_file(RSVA_DEBUGFS "/serve", "0") != -EACCES)
			_exit(1);
		if (read_file(RSVA_DEBUGFS "/pasids", buf, sizeof(buf)) != -EACCES)
			_exit(2);
		_exit(0);
	}
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	ASSERT_TRUE(WIFEXITED(status));
	EXPECT_EQ(0, WEXITSTATUS(status));
}

TEST_HARNESS_MAIN
