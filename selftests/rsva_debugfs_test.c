// SPDX-License-Identifier: GPL-2.0
/*
 * rsva's debugfs interface, seen from user space: the module answers with
 * the expected content, applies a valid PASID range and refuses an invalid
 * one with EINVAL without disturbing the range in force.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

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

TEST_HARNESS_MAIN
