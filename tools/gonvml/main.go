// Command gonvml drives an NVML library through NVIDIA's Go bindings (github.com/NVIDIA/go-nvml) and prints one
// JSON line per NVML call: {"call": <C symbol>, "gpu": <index or -1>, "ret": <nvmlReturn_t>, "value": ...}.
//
// It calls every symbol that go-nvml binds and the simulated NVML implements (nvml_sim/cdefs.py), each through
// go-nvml's public API, which uses the newest version of a versioned symbol the library exports. Run against the
// simulated machine of `eval "$(dra-gpu sim env STATE)"`; tests/nvml_sim/test_gonvml.py builds and checks it.
//
// The MIG calls run on GPU 0 when it has MIG enabled (they create and destroy one 1-slice instance). Last, it
// creates an event set for GPU 0, waits 100 ms (expecting a timeout), prints {"call": "waiting"} and waits up to
// -wait for an event that another process injects (dra-gpu sim xid STATE --gpu 0 43).
//
// Exit codes: 0 done; 3 nvmlInit failed (after printing what it answered).
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
)

type record struct {
	Call  string `json:"call"`
	GPU   int    `json:"gpu"`
	Ret   int    `json:"ret"`
	Value any    `json:"value,omitempty"`
}

var out = json.NewEncoder(os.Stdout)

func rec(call string, gpu int, ret nvml.Return, value any) {
	if err := out.Encode(record{call, gpu, int(ret), value}); err != nil {
		fmt.Fprintln(os.Stderr, "gonvml:", err)
		os.Exit(1)
	}
}

func cstr(b []int8) string {
	s := make([]byte, 0, len(b))
	for _, c := range b {
		if c == 0 {
			break
		}
		s = append(s, byte(c))
	}
	return string(s)
}

func main() {
	wait := flag.Duration("wait", 30*time.Second, "how long to wait for the injected event")
	flag.Parse()
	ret := nvml.Init()
	rec("nvmlInit_v2", -1, ret, nil)
	if ret != nvml.SUCCESS {
		_, cret := nvml.DeviceGetCount()
		rec("nvmlDeviceGetCount_v2", -1, cret, nil)
		rec("nvmlErrorString", -1, nvml.SUCCESS, nvml.ErrorString(ret))
		os.Exit(3)
	}
	rec("nvmlInitWithFlags", -1, nvml.InitWithFlags(0), nil) // a second session, ended at once
	rec("nvmlShutdown", -1, nvml.Shutdown(), nil)
	system()
	count, ret := nvml.DeviceGetCount()
	rec("nvmlDeviceGetCount_v2", -1, ret, count)
	devices := make([]nvml.Device, count)
	for i := range devices {
		devices[i], ret = nvml.DeviceGetHandleByIndex(i)
		rec("nvmlDeviceGetHandleByIndex_v2", i, ret, nil)
	}
	for i, d := range devices {
		identity(i, d)
		telemetry(i, d)
		topology(i, d, devices)
	}
	gpus, ret := nvml.SystemGetTopologyGpuSet(0)
	rec("nvmlSystemGetTopologyGpuSet", -1, ret, len(gpus))
	if count > 0 {
		settings(devices[0])
		mig(devices[0])
		events(devices[0], *wait)
	}
	rec("nvmlShutdown", -1, nvml.Shutdown(), nil)
}

func system() {
	v, ret := nvml.SystemGetDriverVersion()
	rec("nvmlSystemGetDriverVersion", -1, ret, v)
	v, ret = nvml.SystemGetNVMLVersion()
	rec("nvmlSystemGetNVMLVersion", -1, ret, v)
	c, ret := nvml.SystemGetCudaDriverVersion()
	rec("nvmlSystemGetCudaDriverVersion", -1, ret, c)
	c, ret = nvml.SystemGetCudaDriverVersion_v2()
	rec("nvmlSystemGetCudaDriverVersion_v2", -1, ret, c)
	rec("nvmlErrorString", -1, nvml.SUCCESS, nvml.ErrorString(nvml.ERROR_NOT_SUPPORTED))
}

func identity(i int, d nvml.Device) {
	name, ret := d.GetName()
	rec("nvmlDeviceGetName", i, ret, name)
	uuid, ret := d.GetUUID()
	rec("nvmlDeviceGetUUID", i, ret, uuid)
	_, ret = nvml.DeviceGetHandleByUUID(uuid)
	rec("nvmlDeviceGetHandleByUUID", i, ret, nil)
	serial, ret := d.GetSerial()
	rec("nvmlDeviceGetSerial", i, ret, serial)
	index, ret := d.GetIndex()
	rec("nvmlDeviceGetIndex", i, ret, index)
	minor, ret := d.GetMinorNumber()
	rec("nvmlDeviceGetMinorNumber", i, ret, minor)
	brand, ret := d.GetBrand()
	rec("nvmlDeviceGetBrand", i, ret, brand)
	pci, ret := d.GetPciInfo()
	rec("nvmlDeviceGetPciInfo_v3", i, ret, cstr(pci.BusId[:]))
	_, ret = nvml.DeviceGetHandleByPciBusId(cstr(pci.BusId[:]))
	rec("nvmlDeviceGetHandleByPciBusId_v2", i, ret, nil)
	mem, ret := d.GetMemoryInfo()
	rec("nvmlDeviceGetMemoryInfo", i, ret, mem)
	mem2, ret := d.GetMemoryInfo_v2()
	rec("nvmlDeviceGetMemoryInfo_v2", i, ret, mem2)
	arch, ret := d.GetArchitecture()
	rec("nvmlDeviceGetArchitecture", i, ret, arch)
	major, minorCC, ret := d.GetCudaComputeCapability()
	rec("nvmlDeviceGetCudaComputeCapability", i, ret, []int{major, minorCC})
	cores, ret := d.GetNumGpuCores()
	rec("nvmlDeviceGetNumGpuCores", i, ret, cores)
	node, ret := d.GetNumaNodeId()
	rec("nvmlDeviceGetNumaNodeId", i, ret, node)
	mode, ret := d.GetComputeMode()
	rec("nvmlDeviceGetComputeMode", i, ret, mode)
	current, pending, ret := d.GetMigMode()
	rec("nvmlDeviceGetMigMode", i, ret, []int{current, pending})
	maxMig, ret := d.GetMaxMigDeviceCount()
	rec("nvmlDeviceGetMaxMigDeviceCount", i, ret, maxMig)
}

func telemetry(i int, d nvml.Device) {
	temp, ret := d.GetTemperature(nvml.TEMPERATURE_GPU)
	rec("nvmlDeviceGetTemperature", i, ret, temp)
	shutdown, ret := d.GetTemperatureThreshold(nvml.TEMPERATURE_THRESHOLD_SHUTDOWN)
	rec("nvmlDeviceGetTemperatureThreshold", i, ret, shutdown)
	power, ret := d.GetPowerUsage()
	rec("nvmlDeviceGetPowerUsage", i, ret, power)
	limit, ret := d.GetPowerManagementLimit()
	rec("nvmlDeviceGetPowerManagementLimit", i, ret, limit)
	limit, ret = d.GetPowerManagementDefaultLimit()
	rec("nvmlDeviceGetPowerManagementDefaultLimit", i, ret, limit)
	limit, ret = d.GetEnforcedPowerLimit()
	rec("nvmlDeviceGetEnforcedPowerLimit", i, ret, limit)
	low, high, ret := d.GetPowerManagementLimitConstraints()
	rec("nvmlDeviceGetPowerManagementLimitConstraints", i, ret, []uint32{low, high})
	pm, ret := d.GetPowerManagementMode()
	rec("nvmlDeviceGetPowerManagementMode", i, ret, pm)
	pstate, ret := d.GetPowerState()
	rec("nvmlDeviceGetPowerState", i, ret, pstate)
	pstate, ret = d.GetPerformanceState()
	rec("nvmlDeviceGetPerformanceState", i, ret, pstate)
	util, ret := d.GetUtilizationRates()
	rec("nvmlDeviceGetUtilizationRates", i, ret, util)
	clock, ret := d.GetClockInfo(nvml.CLOCK_SM)
	rec("nvmlDeviceGetClockInfo", i, ret, clock)
	clock, ret = d.GetMaxClockInfo(nvml.CLOCK_SM)
	rec("nvmlDeviceGetMaxClockInfo", i, ret, clock)
	eccCurrent, eccPending, ret := d.GetEccMode()
	rec("nvmlDeviceGetEccMode", i, ret, []nvml.EnableState{eccCurrent, eccPending})
	eccDefault, ret := d.GetDefaultEccMode()
	rec("nvmlDeviceGetDefaultEccMode", i, ret, eccDefault)
	total, ret := d.GetTotalEccErrors(nvml.MEMORY_ERROR_TYPE_UNCORRECTED, nvml.VOLATILE_ECC)
	rec("nvmlDeviceGetTotalEccErrors", i, ret, total)
	detailed, ret := d.GetDetailedEccErrors(nvml.MEMORY_ERROR_TYPE_UNCORRECTED, nvml.AGGREGATE_ECC)
	rec("nvmlDeviceGetDetailedEccErrors", i, ret, detailed)
	counter, ret := d.GetMemoryErrorCounter(nvml.MEMORY_ERROR_TYPE_UNCORRECTED, nvml.VOLATILE_ECC, nvml.MEMORY_LOCATION_DEVICE_MEMORY)
	rec("nvmlDeviceGetMemoryErrorCounter", i, ret, counter)
	vbios, ret := d.GetVbiosVersion()
	rec("nvmlDeviceGetVbiosVersion", i, ret, vbios)
	persistence, ret := d.GetPersistenceMode()
	rec("nvmlDeviceGetPersistenceMode", i, ret, persistence)
	virt, ret := d.GetVirtualizationMode()
	rec("nvmlDeviceGetVirtualizationMode", i, ret, virt)
	module, ret := d.GetModuleId()
	rec("nvmlDeviceGetModuleId", i, ret, module)
	link, ret := d.GetCurrPcieLinkGeneration()
	rec("nvmlDeviceGetCurrPcieLinkGeneration", i, ret, link)
	link, ret = d.GetMaxPcieLinkGeneration()
	rec("nvmlDeviceGetMaxPcieLinkGeneration", i, ret, link)
	link, ret = d.GetCurrPcieLinkWidth()
	rec("nvmlDeviceGetCurrPcieLinkWidth", i, ret, link)
	link, ret = d.GetMaxPcieLinkWidth()
	rec("nvmlDeviceGetMaxPcieLinkWidth", i, ret, link)
	procs, ret := d.GetComputeRunningProcesses()
	rec("nvmlDeviceGetComputeRunningProcesses_v3", i, ret, len(procs))
	procs, ret = d.GetGraphicsRunningProcesses()
	rec("nvmlDeviceGetGraphicsRunningProcesses_v3", i, ret, len(procs))
	procs, ret = d.GetMPSComputeRunningProcesses()
	rec("nvmlDeviceGetMPSComputeRunningProcesses_v3", i, ret, len(procs))
	fabric(i, d)
}

func fabric(i int, d nvml.Device) {
	f1, ret := d.GetGpuFabricInfo()
	rec("nvmlDeviceGetGpuFabricInfo", i, ret, f1.State)
	f3, ret := d.GetGpuFabricInfoV().V3()
	rec("nvmlDeviceGetGpuFabricInfoV", i, ret, []int{int(f3.State), int(f3.HealthSummary)})
	f4, ret := d.GetGpuFabricInfo_v4()
	rec("nvmlDeviceGetGpuFabricInfo_v4", i, ret, f4.State)
}

func topology(i int, d nvml.Device, devices []nvml.Device) {
	cpus, ret := d.GetCpuAffinity(256)
	rec("nvmlDeviceGetCpuAffinity", i, ret, cpus)
	cpus, ret = d.GetCpuAffinityWithinScope(256, nvml.AFFINITY_SCOPE_NODE)
	rec("nvmlDeviceGetCpuAffinityWithinScope", i, ret, cpus)
	nodes, ret := d.GetMemoryAffinity(8, nvml.AFFINITY_SCOPE_NODE)
	rec("nvmlDeviceGetMemoryAffinity", i, ret, nodes)
	types, ret := d.GetSupportedEventTypes()
	rec("nvmlDeviceGetSupportedEventTypes", i, ret, types)
	level, ret := d.GetTopologyCommonAncestor(devices[0])
	rec("nvmlDeviceGetTopologyCommonAncestor", i, ret, level)
	near, ret := d.GetTopologyNearestGpus(nvml.TOPOLOGY_SYSTEM)
	rec("nvmlDeviceGetTopologyNearestGpus", i, ret, len(near))
	if i > 0 {
		p2p, ret := d.GetP2PStatus(devices[0], nvml.P2P_CAPS_INDEX_NVLINK)
		rec("nvmlDeviceGetP2PStatus", i, ret, p2p)
	}
}

func settings(d nvml.Device) {
	rec("nvmlDeviceSetComputeMode", 0, d.SetComputeMode(nvml.COMPUTEMODE_DEFAULT), nil)
	current, _, ret := d.GetMigMode()
	if ret == nvml.SUCCESS {
		status, ret := d.SetMigMode(current)
		rec("nvmlDeviceSetMigMode", 0, ret, status)
	}
}
