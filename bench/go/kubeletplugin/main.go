// A minimal DRA kubelet plugin on k8s.io/dynamic-resource-allocation/kubeletplugin: the Go baseline of
// bench/bench_prepare.py. It does what our whole-GPU prepare does and nothing more: the helper GETs the
// claim, then one checkpoint write (temp file + fsync + rename) and one CDI spec per claim; unprepare
// removes the spec and rewrites the checkpoint. No hardware, no slices, no health.
//
// Prints "ready <dra socket>" on stdout once the DRA gRPC service listens, then serves until SIGTERM.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"

	resourceapi "k8s.io/api/resource/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/dynamic-resource-allocation/kubeletplugin"
)

type prepared struct {
	Namespace string   `json:"namespace"`
	Name      string   `json:"name"`
	Devices   []string `json:"devices"`
}

type plugin struct {
	driver     string
	cdiDir     string
	checkpoint string
	mu         sync.Mutex
	claims     map[types.UID]prepared
}

// writeFile replaces path with data: temp file, optional fsync, rename.
func writeFile(path string, data []byte, sync bool) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if sync {
		if err := tmp.Sync(); err != nil {
			tmp.Close()
			return err
		}
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

func (p *plugin) saveLocked() error {
	data, err := json.Marshal(p.claims)
	if err != nil {
		return err
	}
	return writeFile(p.checkpoint, data, true)
}

func (p *plugin) specPath(uid types.UID) string {
	return filepath.Join(p.cdiDir, strings.ReplaceAll(p.driver, "/", "-")+"-gpu_"+string(uid)+".json")
}

func (p *plugin) prepareOne(claim *resourceapi.ResourceClaim) kubeletplugin.PrepareResult {
	var devices []kubeletplugin.Device
	var cdiDevices []map[string]any
	for _, r := range claim.Status.Allocation.Devices.Results {
		if r.Driver != p.driver {
			continue
		}
		name := string(claim.UID) + "-" + r.Device
		minor := strings.TrimPrefix(r.Device, "gpu-")
		cdiDevices = append(cdiDevices, map[string]any{
			"name": name,
			"containerEdits": map[string]any{
				"env":         []string{"NVIDIA_VISIBLE_DEVICES=" + minor},
				"deviceNodes": []map[string]any{{"path": "/dev/nvidia" + minor}},
			},
		})
		devices = append(devices, kubeletplugin.Device{
			Requests:     []string{r.Request},
			PoolName:     r.Pool,
			DeviceName:   r.Device,
			CDIDeviceIDs: []string{"k8s." + p.driver + "/gpu=" + name},
		})
	}
	spec, err := json.Marshal(map[string]any{
		"cdiVersion": "0.5.0", "kind": "k8s." + p.driver + "/gpu", "devices": cdiDevices,
	})
	if err != nil {
		return kubeletplugin.PrepareResult{Err: err}
	}
	if err := writeFile(p.specPath(claim.UID), spec, false); err != nil {
		return kubeletplugin.PrepareResult{Err: fmt.Errorf("CDI spec: %w", err)}
	}
	ids := make([]string, len(devices))
	for i, d := range devices {
		ids[i] = d.DeviceName
	}
	p.claims[claim.UID] = prepared{claim.Namespace, claim.Name, ids}
	if err := p.saveLocked(); err != nil {
		return kubeletplugin.PrepareResult{Err: fmt.Errorf("checkpoint: %w", err)}
	}
	return kubeletplugin.PrepareResult{Devices: devices}
}

func (p *plugin) PrepareResourceClaims(ctx context.Context, claims []*resourceapi.ResourceClaim) (map[types.UID]kubeletplugin.PrepareResult, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[types.UID]kubeletplugin.PrepareResult, len(claims))
	for _, c := range claims {
		out[c.UID] = p.prepareOne(c)
	}
	return out, nil
}

func (p *plugin) UnprepareResourceClaims(ctx context.Context, claims []kubeletplugin.NamespacedObject) (map[types.UID]error, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[types.UID]error, len(claims))
	for _, c := range claims {
		if _, ok := p.claims[c.UID]; !ok {
			out[c.UID] = nil
			continue
		}
		if err := os.Remove(p.specPath(c.UID)); err != nil && !os.IsNotExist(err) {
			out[c.UID] = err
			continue
		}
		delete(p.claims, c.UID)
		out[c.UID] = p.saveLocked()
	}
	return out, nil
}

func (p *plugin) HandleError(ctx context.Context, err error, msg string) {
	fmt.Fprintf(os.Stderr, "%s: %v\n", msg, err)
}

func (p *plugin) WatchHealthStatus(ctx context.Context, reports chan<- kubeletplugin.DeviceHealthReport) error {
	return kubeletplugin.ErrHealthNotSupported
}

func main() {
	kubeconfig := flag.String("kubeconfig", "", "kubeconfig of the API server")
	driver := flag.String("driver-name", "gpu.example.com", "DRA driver name")
	node := flag.String("node-name", "", "node name")
	pluginDir := flag.String("plugin-dir", "", "directory of the DRA socket")
	registrarDir := flag.String("registrar-dir", "", "the kubelet's plugin registry directory")
	cdiDir := flag.String("cdi-dir", "", "CDI spec directory")
	checkpoint := flag.String("checkpoint", "", "checkpoint file")
	qps := flag.Float64("kube-api-qps", 1000, "client QPS (raised: the default 5 would throttle a benchmark)")
	flag.Parse()
	if *kubeconfig == "" || *node == "" || *pluginDir == "" || *registrarDir == "" || *cdiDir == "" || *checkpoint == "" {
		fmt.Fprintln(os.Stderr, "--kubeconfig, --node-name, --plugin-dir, --registrar-dir, --cdi-dir and --checkpoint are required")
		os.Exit(2)
	}
	config, err := clientcmd.BuildConfigFromFlags("", *kubeconfig)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	config.QPS, config.Burst = float32(*qps), int(2**qps)
	client, err := kubernetes.NewForConfig(config)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	for _, dir := range []string{*pluginDir, *registrarDir, *cdiDir, filepath.Dir(*checkpoint)} {
		if err := os.MkdirAll(dir, 0o750); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
	p := &plugin{driver: *driver, cdiDir: *cdiDir, checkpoint: *checkpoint, claims: map[types.UID]prepared{}}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	helper, err := kubeletplugin.Start(ctx, p,
		kubeletplugin.KubeClient(client),
		kubeletplugin.DriverName(*driver),
		kubeletplugin.NodeName(*node),
		kubeletplugin.PluginDataDirectoryPath(*pluginDir),
		kubeletplugin.RegistrarDirectoryPath(*registrarDir),
		kubeletplugin.HealthService(false),
	)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Printf("ready %s\n", filepath.Join(*pluginDir, "dra.sock"))
	<-ctx.Done()
	helper.Stop()
}
