/* SPDX-License-Identifier: GPL-2.0 */
/*
 * rsva_sim: what the simulated SVA platform exports to test modules, so
 * that they can bind its devices and look at its IOMMU's state.
 */
#ifndef _RSVA_SIM_H
#define _RSVA_SIM_H

#include <linux/types.h>

struct device;

/**
 * rsva_sim_get_device() - a simulated device
 * @id: its number, as in /sys/bus/rsva_sim/devices/rsva_sim<id>
 *
 * Context: process context.
 * Return: the device with a reference (put_device() it), or NULL.
 */
struct device *rsva_sim_get_device(unsigned int id);

/**
 * rsva_sim_pasid_state() - the PASID table entry of a simulated device
 * @dev: a device from rsva_sim_get_device()
 * @pasid: the PASID
 *
 * Context: process context.
 * Return: 1 while the entry translates, 0 once the mm's release cleared it,
 * -ENOENT when there is no entry, -ENODEV when @dev is not simulated.
 */
int rsva_sim_pasid_state(struct device *dev, u32 pasid);

#endif /* _RSVA_SIM_H */
