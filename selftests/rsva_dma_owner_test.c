// SPDX-License-Identifier: GPL-2.0
/*
 * DMA ownership of IOMMU groups through rsva, on real groups: the simulated
 * bus loaded with devices=3 group_size=3 (one group of three siblings, the
 * bus's dma_configure/dma_cleanup going through rust/kext/iommu/dma_owner.rs), and a
 * q35 PCI device under intel-iommu. Needs rsva, rsva_sim and the
 * rsva_sim_drivers module, with /sys/bus/rsva_sim/drivers_autoprobe at 0.
 */
#include <dirent.h>
#include <pthread.h>
#include <stdatomic.h>

#include "kselftest_harness.h"
#include "rsva_sim_util.h"

#define CLAIM "/sys/kernel/debug/rsva_sim_drivers/claim"
#define DRIVERS "/sys/bus/rsva_sim/drivers"
#define FAIL_PROBE "/sys/module/rsva_sim_drivers/parameters/fail_probe"

/* "OP OWNER DEV" through rsva's C API; 0 or -errno. */
static int claim(const char *op, char owner, const char *dev)
{
	char cmd[64];

	snprintf(cmd, sizeof(cmd), "%s %c %s", op, owner, dev);
	return write_text(CLAIM, cmd);
}

/* Binds simulated device @n to @driver through sysfs; 0 or -errno. */
static int bind_driver(const char *driver, int n)
{
	char path[128], dev[32];

	snprintf(path, sizeof(path), DRIVERS "/%s/bind", driver);
	snprintf(dev, sizeof(dev), "rsva_sim%d", n);
	return write_text(path, dev);
}

static int unbind_driver(const char *driver, int n)
{
	char path[128], dev[32];

	snprintf(path, sizeof(path), DRIVERS "/%s/unbind", driver);
	snprintf(dev, sizeof(dev), "rsva_sim%d", n);
	return write_text(path, dev);
}

/* Whether simulated device @n has a driver bound. */
static int has_driver(int n)
{
	char path[128];

	snprintf(path, sizeof(path), "/sys/bus/rsva_sim/devices/rsva_sim%d/driver", n);
	return !access(path, F_OK);
}

TEST(two_owners_on_one_group)
{
	ASSERT_EQ(0, claim("claim-group", 'a', "sim0"));
	/* Another owner, through any device of the group. */
	EXPECT_EQ(-EPERM, claim("claim-group", 'b', "sim2"));
	EXPECT_EQ(-EPERM, claim("claim-device", 'b', "sim1"));
	EXPECT_EQ(-ENOENT, claim("release-group", 'b', "sim0"));
	EXPECT_EQ(0, claim("release-group", 'a', "sim1"));
	EXPECT_EQ(-ENOENT, claim("release-group", 'a', "sim0"));
	ASSERT_EQ(0, claim("claim-group", 'b', "sim2"));
	EXPECT_EQ(0, claim("release-group", 'b', "sim2"));
}

TEST(the_same_owner_twice_on_a_device)
{
	ASSERT_EQ(0, claim("claim-device", 'a', "sim0"));
	EXPECT_EQ(0, claim("claim-device", 'a', "sim0"));
	EXPECT_EQ(0, claim("release-device", 'a', "sim0"));
	/* Still claimed: the other owner is refused. */
	EXPECT_EQ(-EPERM, claim("claim-group", 'b', "sim0"));
	EXPECT_EQ(0, claim("release-device", 'a', "sim0"));
	EXPECT_EQ(-ENOENT, claim("release-device", 'a', "sim0"));
	EXPECT_EQ(0, claim("claim-group", 'b', "sim0"));
	EXPECT_EQ(0, claim("release-group", 'b', "sim0"));
}

TEST(a_sibling_on_the_dma_api_blocks_a_claim)
{
	ASSERT_EQ(0, bind_driver("rsva_sim_dma_api", 1));
	EXPECT_EQ(-EBUSY, claim("claim-group", 'a', "sim0"));
	EXPECT_EQ(-EBUSY, claim("claim-device", 'a', "sim2"));
	ASSERT_EQ(0, unbind_driver("rsva_sim_dma_api", 1));
	EXPECT_EQ(0, claim("claim-group", 'a', "sim0"));
	/* Claimed: a DMA-API driver cannot bind a sibling, a self-managed one can. */
	EXPECT_NE(0, bind_driver("rsva_sim_dma_api", 2));
	EXPECT_FALSE(has_driver(2));
	EXPECT_EQ(0, bind_driver("rsva_sim_own_dma", 2));
	EXPECT_EQ(0, unbind_driver("rsva_sim_own_dma", 2));
	EXPECT_EQ(0, claim("release-group", 'a', "sim0"));
}

/*
 * The four cases of the dma_cleanup thread (Robin Murphy, Lu Baolu,
 * February 2022) in small.
 */
TEST(removing_one_device_keeps_a_siblings_ownership)
{
	ASSERT_EQ(0, bind_driver("rsva_sim_dma_api", 1));
	ASSERT_EQ(0, bind_driver("rsva_sim_dma_api", 2));
	/* A self-managed sibling binds and goes without touching it. */
	ASSERT_EQ(0, bind_driver("rsva_sim_own_dma", 0));
	ASSERT_EQ(0, unbind_driver("rsva_sim_own_dma", 0));
	EXPECT_EQ(-EBUSY, claim("claim-group", 'a', "sim0"));
	ASSERT_EQ(0, unbind_driver("rsva_sim_dma_api", 1));
	/* rsva_sim2 still uses the DMA API. */
	EXPECT_EQ(-EBUSY, claim("claim-group", 'a', "sim0"));
	ASSERT_EQ(0, unbind_driver("rsva_sim_dma_api", 2));
	EXPECT_EQ(0, claim("claim-group", 'a', "sim0"));
	EXPECT_EQ(0, claim("release-group", 'a', "sim0"));
}

TEST(a_failed_probe_gives_the_dma_api_ownership_back)
{
	ASSERT_EQ(0, write_text(FAIL_PROBE, "1"));
	EXPECT_EQ(-ENXIO, bind_driver("rsva_sim_dma_api", 1));
	EXPECT_EQ(-ENXIO, bind_driver("rsva_sim_dma_api", 1));
	ASSERT_EQ(0, write_text(FAIL_PROBE, "0"));
	EXPECT_FALSE(has_driver(1));
	/* Nothing was left behind by the two failed probes. */
	EXPECT_EQ(0, claim("claim-group", 'a', "sim0"));
	EXPECT_EQ(0, claim("release-group", 'a', "sim0"));
}

TEST(an_sva_bond_blocks_a_claim_and_a_claim_blocks_sva)
{
	int fd = accel_open(0);

	ASSERT_LE(0, fd);
	EXPECT_EQ(-EBUSY, claim("claim-group", 'a', "sim1"));
	close(fd);
	ASSERT_EQ(0, claim("claim-group", 'a', "sim1"));
	fd = accel_open(2);
	EXPECT_GT(0, fd);
	EXPECT_EQ(EBUSY, errno);
	if (fd >= 0)
		close(fd);
	EXPECT_EQ(0, claim("release-group", 'a', "sim1"));
	fd = accel_open(2);
	EXPECT_LE(0, fd);
	close(fd);
}

/* A q35 PCI device with an IOMMU group and no driver, or "". */
static void free_pci_device(char *name, size_t size)
{
	char path[300];
	struct dirent *e;
	DIR *d = opendir("/sys/bus/pci/devices");

	name[0] = '\0';
	while (d && (e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/iommu_group", e->d_name);
		if (access(path, F_OK))
			continue;
		snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/driver", e->d_name);
		if (!access(path, F_OK))
			continue;
		snprintf(name, size, "%.*s", (int)size - 1, e->d_name);
		break;
	}
	if (d)
		closedir(d);
}

TEST(a_pci_group_under_intel_iommu)
{
	char pci[64];

	free_pci_device(pci, sizeof(pci));
	ASSERT_NE(0, pci[0]) TH_LOG("no driverless PCI device with an IOMMU group");
	ASSERT_EQ(0, claim("claim-group", 'a', pci));
	EXPECT_EQ(-EPERM, claim("claim-group", 'b', pci));
	EXPECT_EQ(0, claim("release-group", 'a', pci));
	EXPECT_EQ(0, claim("claim-device", 'b', pci));
	EXPECT_EQ(0, claim("release-device", 'b', pci));
}

struct race {
	atomic_int claimed;
	atomic_int stop;
	int violations, claims, binds;
};

/* Binds and unbinds siblings 1 and 2 to the DMA-API driver. */
static void *binder(void *arg)
{
	struct race *r = arg;
	int i, n;

	for (i = 0; !atomic_load(&r->stop) && i < 150; i++) {
		n = 1 + (i & 1);
		if (!bind_driver("rsva_sim_dma_api", n)) {
			r->binds++;
			/* Bound to the DMA API: nobody may hold a claim now. */
			if (atomic_load(&r->claimed))
				r->violations++;
			unbind_driver("rsva_sim_dma_api", n);
		}
	}
	return NULL;
}

FIXTURE(concurrent) {
	int unused;
};

FIXTURE_SETUP(concurrent)
{
}

FIXTURE_TEARDOWN(concurrent)
{
}

/*
 * sysfs bind/unbind of siblings against claims and releases of their
 * group: after every step the group is never both used by the DMA API and
 * claimed.
 */
TEST_F_TIMEOUT(concurrent, binds_and_claims_never_overlap, 120)
{
	struct race r = {};
	pthread_t t;
	int i;

	ASSERT_EQ(0, pthread_create(&t, NULL, binder, &r));
	for (i = 0; i < 150; i++) {
		if (claim("claim-group", 'a', "sim0"))
			continue;
		atomic_store(&r.claimed, 1);
		r.claims++;
		/* Claimed: no sibling may be bound to the DMA-API driver. */
		if ((has_driver(1) && !access(DRIVERS "/rsva_sim_dma_api/rsva_sim1", F_OK)) ||
		    (has_driver(2) && !access(DRIVERS "/rsva_sim_dma_api/rsva_sim2", F_OK)))
			r.violations++;
		atomic_store(&r.claimed, 0);
		ASSERT_EQ(0, claim("release-group", 'a', "sim0"));
	}
	atomic_store(&r.stop, 1);
	pthread_join(t, NULL);
	TH_LOG("%d claims, %d DMA-API binds", r.claims, r.binds);
	EXPECT_EQ(0, r.violations);
	EXPECT_LT(0, r.claims);
	EXPECT_LT(0, r.binds);
	EXPECT_FALSE(has_driver(1));
	EXPECT_FALSE(has_driver(2));
}

TEST_HARNESS_MAIN
