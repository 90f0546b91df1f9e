package main

import (
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
)

// events registers GPU 0 for XID and double-bit ECC events, expects a 100 ms wait to time out, then announces
// {"call": "waiting"} and waits for the event another process injects.
func events(d nvml.Device, wait time.Duration) {
	set, ret := nvml.EventSetCreate()
	rec("nvmlEventSetCreate", -1, ret, nil)
	if ret != nvml.SUCCESS {
		return
	}
	defer func() { rec("nvmlEventSetFree", -1, set.Free(), nil) }()
	types := uint64(nvml.EventTypeXidCriticalError | nvml.EventTypeDoubleBitEccError)
	rec("nvmlDeviceRegisterEvents", 0, d.RegisterEvents(types, set), types)
	started := time.Now()
	_, ret = set.Wait(100)
	rec("nvmlEventSetWait_v2", 0, ret, time.Since(started).Milliseconds())
	rec("waiting", -1, nvml.SUCCESS, nil)
	data, ret := set.Wait(uint32(wait.Milliseconds()))
	index := -1
	if ret == nvml.SUCCESS {
		index, _ = data.Device.GetIndex()
	}
	rec("nvmlEventSetWait_v2", index, ret, []uint64{data.EventType, data.EventData})
}
