package main

import "github.com/NVIDIA/go-nvml/pkg/nvml"

// mig creates a 1-slice GPU instance with one compute instance on a MIG-enabled GPU, queries the MIG device it
// makes, then destroys both; a second GPU instance is created without a placement and destroyed.
func mig(d nvml.Device) {
	if current, _, ret := d.GetMigMode(); ret != nvml.SUCCESS || current != nvml.DEVICE_MIG_ENABLE {
		return
	}
	info, ret := d.GetGpuInstanceProfileInfo(nvml.GPU_INSTANCE_PROFILE_1_SLICE)
	rec("nvmlDeviceGetGpuInstanceProfileInfo", 0, ret, info.Id)
	v2, ret := d.GetGpuInstanceProfileInfoV(nvml.GPU_INSTANCE_PROFILE_1_SLICE).V2()
	rec("nvmlDeviceGetGpuInstanceProfileInfoV", 0, ret, v2.Id)
	byID, ret := d.GetGpuInstanceProfileInfoByIdV(int(info.Id)).V2()
	rec("nvmlDeviceGetGpuInstanceProfileInfoByIdV", 0, ret, byID.Id)
	placements, ret := d.GetGpuInstancePossiblePlacements(&info)
	rec("nvmlDeviceGetGpuInstancePossiblePlacements_v2", 0, ret, len(placements))
	capacity, ret := d.GetGpuInstanceRemainingCapacity(&info)
	rec("nvmlDeviceGetGpuInstanceRemainingCapacity", 0, ret, capacity)
	if len(placements) == 0 {
		return
	}
	gi, ret := d.CreateGpuInstanceWithPlacement(&info, &placements[len(placements)-1])
	rec("nvmlDeviceCreateGpuInstanceWithPlacement", 0, ret, nil)
	if ret != nvml.SUCCESS {
		return
	}
	gis, ret := d.GetGpuInstances(&info)
	rec("nvmlDeviceGetGpuInstances", 0, ret, len(gis))
	giInfo, ret := gi.GetInfo()
	rec("nvmlGpuInstanceGetInfo", 0, ret, giInfo.Id)
	_, ret = d.GetGpuInstanceById(int(giInfo.Id))
	rec("nvmlDeviceGetGpuInstanceById", 0, ret, nil)
	computeInstance(d, gi)
	rec("nvmlGpuInstanceDestroy", 0, gi.Destroy(), nil)
	other, ret := d.CreateGpuInstance(&info)
	rec("nvmlDeviceCreateGpuInstance", 0, ret, nil)
	if ret == nvml.SUCCESS {
		other.Destroy()
	}
}

func computeInstance(d nvml.Device, gi nvml.GpuInstance) {
	profile := nvml.COMPUTE_INSTANCE_PROFILE_1_SLICE
	shared := nvml.COMPUTE_INSTANCE_ENGINE_PROFILE_SHARED
	info, ret := gi.GetComputeInstanceProfileInfo(profile, shared)
	rec("nvmlGpuInstanceGetComputeInstanceProfileInfo", 0, ret, info.Id)
	v2, ret := gi.GetComputeInstanceProfileInfoV(profile, shared).V2()
	rec("nvmlGpuInstanceGetComputeInstanceProfileInfoV", 0, ret, v2.Id)
	capacity, ret := gi.GetComputeInstanceRemainingCapacity(&info)
	rec("nvmlGpuInstanceGetComputeInstanceRemainingCapacity", 0, ret, capacity)
	placements, ret := gi.GetComputeInstancePossiblePlacements(&info)
	rec("nvmlGpuInstanceGetComputeInstancePossiblePlacements", 0, ret, len(placements))
	ci, ret := gi.CreateComputeInstanceWithPlacement(&info, &placements[0])
	rec("nvmlGpuInstanceCreateComputeInstanceWithPlacement", 0, ret, nil)
	if ret != nvml.SUCCESS {
		return
	}
	cis, ret := gi.GetComputeInstances(&info)
	rec("nvmlGpuInstanceGetComputeInstances", 0, ret, len(cis))
	ciInfo, ret := ci.GetInfo()
	rec("nvmlComputeInstanceGetInfo_v2", 0, ret, ciInfo.Id)
	_, ret = gi.GetComputeInstanceById(int(ciInfo.Id))
	rec("nvmlGpuInstanceGetComputeInstanceById", 0, ret, nil)
	migDevice(d)
	rec("nvmlComputeInstanceDestroy", 0, ci.Destroy(), nil)
	again, ret := gi.CreateComputeInstance(&info)
	rec("nvmlGpuInstanceCreateComputeInstance", 0, ret, nil)
	if ret == nvml.SUCCESS {
		again.Destroy()
	}
}

func migDevice(d nvml.Device) {
	m, ret := d.GetMigDeviceHandleByIndex(0)
	rec("nvmlDeviceGetMigDeviceHandleByIndex", 0, ret, nil)
	if ret != nvml.SUCCESS {
		return
	}
	isMig, ret := m.IsMigDeviceHandle()
	rec("nvmlDeviceIsMigDeviceHandle", 0, ret, isMig)
	giID, ret := m.GetGpuInstanceId()
	rec("nvmlDeviceGetGpuInstanceId", 0, ret, giID)
	ciID, ret := m.GetComputeInstanceId()
	rec("nvmlDeviceGetComputeInstanceId", 0, ret, ciID)
	_, ret = m.GetDeviceHandleFromMigDeviceHandle()
	rec("nvmlDeviceGetDeviceHandleFromMigDeviceHandle", 0, ret, nil)
	attrs, ret := m.GetAttributes()
	rec("nvmlDeviceGetAttributes_v2", 0, ret, attrs.MemorySizeMB)
}
