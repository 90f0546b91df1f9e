// Command allocator times k8s.io/dynamic-resource-allocation/structured, the allocator kube-scheduler
// runs, on the slices, classes, allocated claims and claims that bench/bench_allocator.py writes to a
// JSON file. It is the Go baseline of that bench: per case, NewAllocator once for the claim (as the
// scheduler's PreFilter does) and then Allocate once per node (as its Filter does), the best of
// -repeat passes after one warm-up pass (wall clock, and apart from it the least CPU time of a pass). Every node must take the claim, or it exits with an error:
// a bench whose claim does not fit measures nothing.
//
//	allocator -input cases.json [-repeat 3]   # prints one JSON object: the timings per case
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"runtime"
	"syscall"
	"time"

	v1 "k8s.io/api/core/v1"
	resourceapi "k8s.io/api/resource/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/dynamic-resource-allocation/cel"
	"k8s.io/dynamic-resource-allocation/structured"
)

// input is what the Python bench writes.
type input struct {
	Clusters map[string]cluster `json:"clusters"`
	Cases    []benchCase        `json:"cases"`
}

type cluster struct {
	Slices          []*resourceapi.ResourceSlice `json:"slices"`
	Classes         []*resourceapi.DeviceClass   `json:"classes"`
	AllocatedClaims []*resourceapi.ResourceClaim `json:"allocatedClaims"`
}

// benchCase is one claim filtered against the first len(Nodes) nodes: the slices naming one of them,
// plus any slice naming no node.
type benchCase struct {
	Kind    string                     `json:"kind"`
	Cluster string                     `json:"cluster"`
	Claim   *resourceapi.ResourceClaim `json:"claim"`
	Nodes   []string                   `json:"nodes"`
}

type result struct {
	Kind           string  `json:"kind"`
	Nodes          int     `json:"nodes"`
	Slices         int     `json:"slices"`
	Ms             float64 `json:"ms"`
	CPUMs          float64 `json:"cpu_ms"`
	NewAllocatorMs float64 `json:"new_allocator_ms"`
	// Chosen is what the warm-up pass allocated: node -> "pool/device" per result, to compare with ours.
	Chosen map[string][]string `json:"chosen"`
}

// cpuTime is the CPU time this process has used, all threads (the garbage collector's included).
func cpuTime() time.Duration {
	var usage syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &usage); err != nil {
		return 0
	}
	return time.Duration(usage.Utime.Nano() + usage.Stime.Nano())
}

// classes is the DeviceClassLister: a missing class is NotFound, as from the scheduler's informer.
type classes map[string]*resourceapi.DeviceClass

func (c classes) List() ([]*resourceapi.DeviceClass, error) {
	out := make([]*resourceapi.DeviceClass, 0, len(c))
	for _, class := range c {
		out = append(out, class)
	}
	return out, nil
}

func (c classes) Get(name string) (*resourceapi.DeviceClass, error) {
	if class, ok := c[name]; ok {
		return class, nil
	}
	return nil, apierrors.NewNotFound(resourceapi.Resource("deviceclasses"), name)
}

// features are the allocator features kube-scheduler 1.37 enables by default (docs/allocator.md); they
// select the "incubating" implementation, the one dra_driver/structured ports.
var features = structured.Features{
	AdminAccess:             true,
	PrioritizedList:         true,
	PartitionableDevices:    true,
	DeviceTaints:            true,
	DeviceBindingAndStatus:  true,
	ConsumableCapacity:      true,
	FractionalCapacityRange: true,
}

// allocatedState is what the scheduler gathers from allocated claims: admin-access results are not
// counted, results with a share ID are shared and add their consumed capacity, the rest are exclusive.
func allocatedState(claims []*resourceapi.ResourceClaim) structured.AllocatedState {
	state := structured.AllocatedState{
		AllocatedDevices:         sets.New[structured.DeviceID](),
		AllocatedSharedDeviceIDs: sets.New[structured.SharedDeviceID](),
		AggregatedCapacity:       structured.NewConsumedCapacityCollection(),
	}
	for _, claim := range claims {
		if claim.Status.Allocation == nil {
			continue
		}
		for _, r := range claim.Status.Allocation.Devices.Results {
			if r.AdminAccess != nil && *r.AdminAccess {
				continue
			}
			id := structured.MakeDeviceID(r.Driver, r.Pool, r.Device)
			if r.ShareID == nil {
				state.AllocatedDevices.Insert(id)
				continue
			}
			state.AllocatedSharedDeviceIDs.Insert(structured.MakeSharedDeviceID(id, r.ShareID))
			if r.ConsumedCapacity != nil {
				state.AggregatedCapacity.Insert(structured.NewDeviceConsumedCapacity(id, r.ConsumedCapacity))
			}
		}
	}
	return state
}

func nodeSlices(all []*resourceapi.ResourceSlice, names []string) []*resourceapi.ResourceSlice {
	wanted := sets.New(names...)
	var out []*resourceapi.ResourceSlice
	for _, s := range all {
		if s.Spec.NodeName == nil || *s.Spec.NodeName == "" || wanted.Has(*s.Spec.NodeName) {
			out = append(out, s)
		}
	}
	return out
}

// pass runs one scheduling cycle's worth of work for the claim: NewAllocator, then Allocate per node.
// When chosen is not nil, the devices allocated on each node are recorded in it (outside the timing only in
// the sense that the warm-up pass, which records them, is not timed).
func pass(ctx context.Context, state structured.AllocatedState, lister classes, slices []*resourceapi.ResourceSlice,
	claim *resourceapi.ResourceClaim, nodes []*v1.Node, cache *cel.Cache, chosen map[string][]string) (total, setup time.Duration, err error) {
	start := time.Now()
	allocator, err := structured.NewAllocator(ctx, features, state, lister, slices, cache)
	if err != nil {
		return 0, 0, fmt.Errorf("NewAllocator: %w", err)
	}
	setup = time.Since(start)
	claims := []*resourceapi.ResourceClaim{claim}
	for _, node := range nodes {
		results, err := allocator.Allocate(ctx, node, claims)
		if err != nil {
			return 0, 0, fmt.Errorf("node %s: %w", node.Name, err)
		}
		if results == nil {
			return 0, 0, fmt.Errorf("node %s: the claim does not fit (the bench's setup is wrong)", node.Name)
		}
		if chosen != nil {
			for _, r := range results[0].Devices.Results {
				chosen[node.Name] = append(chosen[node.Name], r.Pool+"/"+r.Device)
			}
		}
	}
	return time.Since(start), setup, nil
}

func run(path string, repeat int) ([]result, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var in input
	if err := json.Unmarshal(raw, &in); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	ctx := context.Background()
	cache := cel.NewCache(10, cel.Features{EnableConsumableCapacity: features.ConsumableCapacity})
	var out []result
	for _, c := range in.Cases {
		cl, ok := in.Clusters[c.Cluster]
		if !ok {
			return nil, fmt.Errorf("case %s: cluster %q is not in the input's clusters", c.Kind, c.Cluster)
		}
		if c.Claim == nil || len(c.Nodes) == 0 {
			return nil, errors.New("case " + c.Kind + ": claim and nodes are required")
		}
		lister := classes{}
		for _, class := range cl.Classes {
			lister[class.Name] = class
		}
		slices := nodeSlices(cl.Slices, c.Nodes)
		nodes := make([]*v1.Node, len(c.Nodes))
		for i, name := range c.Nodes {
			labels := map[string]string{"kubernetes.io/hostname": name}
			nodes[i] = &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
		}
		state := allocatedState(cl.AllocatedClaims)
		// A collection before the case's passes, as Go's testing package runs before each benchmark: without
		// it the first cases pay for marking the whole decoded input (hundreds of MB), a cycle the input's
		// decoding started, and ran 6-12x slower than the same case later in the run.
		runtime.GC()
		best := result{Kind: c.Kind, Nodes: len(nodes), Slices: len(slices), Chosen: map[string][]string{}}
		for i := 0; i <= repeat; i++ { // pass 0 warms up (CEL compiled, memory touched) and records the devices
			chosen := best.Chosen
			if i > 0 {
				chosen = nil
			}
			cpu := cpuTime()
			total, setup, err := pass(ctx, state, lister, slices, c.Claim, nodes, cache, chosen)
			if err != nil {
				return nil, fmt.Errorf("case %s, %d nodes: %w", c.Kind, len(nodes), err)
			}
			cpuMs := float64((cpuTime() - cpu).Microseconds()) / 1000
			ms := float64(total.Microseconds()) / 1000
			if i == 0 {
				continue
			}
			if best.Ms == 0 || ms < best.Ms {
				best.Ms, best.NewAllocatorMs = ms, float64(setup.Microseconds())/1000
			}
			if best.CPUMs == 0 || cpuMs < best.CPUMs {
				best.CPUMs = cpuMs
			}
		}
		out = append(out, best)
	}
	return out, nil
}

func main() {
	path := flag.String("input", "", "the bench's JSON file (clusters and cases)")
	repeat := flag.Int("repeat", 3, "timed passes per case, after one warm-up pass")
	flag.Parse()
	if *path == "" || *repeat < 1 {
		fmt.Fprintln(os.Stderr, "usage: allocator -input FILE [-repeat N>=1]")
		os.Exit(2)
	}
	results, err := run(*path, *repeat)
	if err != nil {
		fmt.Fprintln(os.Stderr, "allocator:", err)
		os.Exit(1)
	}
	if err := json.NewEncoder(os.Stdout).Encode(map[string]any{"results": results}); err != nil {
		fmt.Fprintln(os.Stderr, "allocator:", err)
		os.Exit(1)
	}
}
