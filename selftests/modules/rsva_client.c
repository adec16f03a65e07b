// SPDX-License-Identifier: GPL-2.0
/*
 * rsva_client: a C module that uses rsva's exported API the way a driver
 * does. Its KUnit suite runs when it is loaded and checks each answer, so a
 * broken export, prototype or errno turns the test run red.
 */
#include <kunit/test.h>
#include <linux/errno.h>
#include <linux/module.h>
#include <rsva.h>

static void rsva_client_range_valid(struct kunit *test)
{
	KUNIT_EXPECT_EQ(test, rsva_pasid_range_check(1, RSVA_PASID_MAX),
			(int)RSVA_PASID_MAX);
	KUNIT_EXPECT_EQ(test, rsva_pasid_range_check(1, 1), 1);
	KUNIT_EXPECT_EQ(test, rsva_pasid_range_check(100, 163), 64);
}

static void rsva_client_range_invalid(struct kunit *test)
{
	KUNIT_EXPECT_EQ(test, rsva_pasid_range_check(0, 10), -EINVAL);
	KUNIT_EXPECT_EQ(test, rsva_pasid_range_check(11, 10), -EINVAL);
	KUNIT_EXPECT_EQ(test, rsva_pasid_range_check(1, RSVA_PASID_MAX + 1),
			-EINVAL);
	KUNIT_EXPECT_EQ(test, rsva_pasid_range_check(U32_MAX, U32_MAX),
			-EINVAL);
}

static struct kunit_case rsva_client_cases[] = {
	KUNIT_CASE(rsva_client_range_valid),
	KUNIT_CASE(rsva_client_range_invalid),
	{}
};

static struct kunit_suite rsva_client_suite = {
	.name = "rsva_c_api",
	.test_cases = rsva_client_cases,
};

kunit_test_suite(rsva_client_suite);

static int __init rsva_client_init(void)
{
	pr_info("rsva_client: rsva_pasid_range_check(1, %u) = %d\n",
		RSVA_PASID_MAX, rsva_pasid_range_check(1, RSVA_PASID_MAX));
	return 0;
}
module_init(rsva_client_init);

static void __exit rsva_client_exit(void)
{
}
module_exit(rsva_client_exit);

MODULE_DESCRIPTION("C client of the rsva API (tests)");
MODULE_LICENSE("GPL");
