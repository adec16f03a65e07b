/* SPDX-License-Identifier: GPL-2.0 */
/*
 * rsva_sim: what the simulated SVA platform exports to test modules, so
 * that they can bind its devices and look at its IOMMU's state.
 */
#ifndef _RSVA_SIM_H
#define _RSVA_SIM_H

#include <linux/device/driver.h>
#include <linux/types.h>

struct device;

/**
 * struct rsva_sim_driver - a driver of the simulated bus
 * @driver: the driver core's part; set @driver.name
 * @driver_managed_dma: the driver manages DMA itself (it claims the group, as
 *	VFIO does) instead of using the DMA API; the bus's dma_configure then
 *	takes no DMA-API ownership for it
 * @probe: binds a device; an error fails the bind
 * @remove: unbinds a device
 */
struct rsva_sim_driver {
	struct device_driver driver;
	bool driver_managed_dma;
	int (*probe)(struct device *dev);
	void (*remove)(struct device *dev);
};

/**
 * rsva_sim_driver_register() - register a driver on the simulated bus
 * @drv: the driver
 *
 * Devices bind to it by writing their name to its sysfs ``bind`` file (set
 * /sys/bus/rsva_sim/drivers_autoprobe to 0 first, or it binds every free
 * device).
 *
 * Context: process context.
 * Return: 0 or a negative errno.
 */
int rsva_sim_driver_register(struct rsva_sim_driver *drv);

/**
 * rsva_sim_driver_unregister() - unregister a driver of the simulated bus
 * @drv: the driver
 */
void rsva_sim_driver_unregister(struct rsva_sim_driver *drv);

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
