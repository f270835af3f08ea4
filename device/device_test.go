package device

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	tf "github.com/wamuir/graft/tensorflow"
	configpb "github.com/wamuir/graft/tensorflow/core/protobuf/for_core_protos_go_proto"
	"github.com/wamuir/graft/tensorflow/op"
	"google.golang.org/protobuf/proto"

	"github.com/cifar-pipeline/cifar-pipeline/config"
	"github.com/cifar-pipeline/cifar-pipeline/graph"
)

// TestProbeThisProcess: the test binary links the CPU wheel's libtensorflow
// (unless built with env-cuda.sh), which has no .nv_fatbin section.
func TestProbeThisProcess(t *testing.T) {
	inv := Probe()
	if inv.Build.Library == "" || !strings.Contains(filepath.Base(inv.Build.Library), "libtensorflow") {
		t.Fatalf("loaded library not found: %+v", inv)
	}
	if os.Getenv("PIPELINE_TF_VARIANT") == "cuda" {
		if !inv.Build.CUDA {
			t.Fatalf("CUDA variant but %s has no .nv_fatbin", inv.Build.Library)
		}
		return
	}
	if inv.Build.CUDA || len(inv.GPUs) != 0 || !strings.Contains(inv.NoGPU, "CPU-only") || !strings.Contains(inv.NoGPU, "TF_VARIANT=cuda") {
		t.Fatalf("CPU build not recognised: %+v", inv)
	}
}

// TestQueryDriverWithoutDriver: on a machine without the NVIDIA driver the
// real dlopen fails and the reason names libcuda.so.1.
func TestQueryDriverWithoutDriver(t *testing.T) {
	if m, _ := filepath.Glob("/dev/nvidia*"); len(m) > 0 {
		t.Skip("this machine has NVIDIA device nodes")
	}
	d := queryDriver()
	if d.Err == nil || !strings.Contains(d.Err.Error(), "no NVIDIA driver: libcuda.so.1") {
		t.Fatalf("got %+v", d)
	}
}

func TestProbeReasons(t *testing.T) {
	a100 := GPU{Index: 0, Name: "NVIDIA A100", ComputeCapability: "8.0", MemoryBytes: 40 << 30}
	cudaBuild := func() (Build, error) { return Build{Library: "/x/libtensorflow_cc.so.2", CUDA: true}, nil }
	env := func(kv ...string) func(string) (string, bool) {
		return func(k string) (string, bool) {
			if len(kv) == 2 && kv[0] == k {
				return kv[1], true
			}
			return "", false
		}
	}
	noDriver := func() driverInfo {
		return driverInfo{Err: errors.New("no NVIDIA driver: libcuda.so.1 cannot be loaded (x)")}
	}
	oneGPU := func() driverInfo { return driverInfo{GPUs: []GPU{a100}} }
	noGPU := func() driverInfo { return driverInfo{} }
	none := func() []string { return nil }
	cases := []struct {
		name string
		e    probeEnv
		want string // substring of NoGPU; "" means a GPU is listed
	}{
		{"cpu build", probeEnv{env(), func() (Build, error) { return Build{Library: "/x/lib.so"}, nil }, oneGPU, none}, "CPU-only (/x/lib.so"},
		{"unreadable build", probeEnv{env(), func() (Build, error) { return Build{}, errors.New("boom") }, oneGPU, none}, "cannot tell whether TensorFlow was built with CUDA: boom"},
		{"CUDA_VISIBLE_DEVICES empty", probeEnv{env("CUDA_VISIBLE_DEVICES", ""), cudaBuild, oneGPU, none}, `CUDA_VISIBLE_DEVICES="" hides every GPU`},
		{"CUDA_VISIBLE_DEVICES -1", probeEnv{env("CUDA_VISIBLE_DEVICES", "-1,0"), cudaBuild, oneGPU, none}, `CUDA_VISIBLE_DEVICES="-1,0" hides`},
		{"CUDA_VISIBLE_DEVICES names a missing GPU", probeEnv{env("CUDA_VISIBLE_DEVICES", "5"), cudaBuild, noGPU, none}, `no device with CUDA_VISIBLE_DEVICES="5"`},
		{"no driver", probeEnv{env(), cudaBuild, noDriver, none}, "no NVIDIA driver: libcuda.so.1 cannot be loaded (x); no /dev/nvidia* device nodes"},
		{"driver, no device", probeEnv{env(), cudaBuild, noGPU, none}, "reports no CUDA device"},
		{"one GPU", probeEnv{env("CUDA_VISIBLE_DEVICES", "0"), cudaBuild, oneGPU, none}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			inv := probe(tc.e)
			if tc.want == "" {
				if len(inv.GPUs) != 1 || inv.NoGPU != "" {
					t.Fatalf("got %+v", inv)
				}
				return
			}
			if len(inv.GPUs) != 0 || !strings.Contains(inv.NoGPU, tc.want) || strings.Contains(inv.NoGPU, "\n") {
				t.Fatalf("NoGPU %q lacks %q (GPUs %v)", inv.NoGPU, tc.want, inv.GPUs)
			}
		})
	}
}

func TestResolve(t *testing.T) {
	one := Inventory{GPUs: []GPU{{Index: 0, Name: "NVIDIA T4", ComputeCapability: "7.5", MemoryBytes: 15 << 30}}}
	two := Inventory{GPUs: []GPU{{Index: 0, Name: "A"}, {Index: 1, Name: "B"}}}
	none := Inventory{NoGPU: "no NVIDIA driver: libcuda.so.1 cannot be loaded"}
	good := []struct {
		device string
		inv    Inventory
		want   string
	}{
		{"auto", none, "/device:CPU:0"},
		{"auto", one, "/device:GPU:0"},
		{"cpu", one, "/device:CPU:0"},
		{"gpu", one, "/device:GPU:0"},
		{"gpu:1", two, "/device:GPU:0"},
	}
	for _, tc := range good {
		p, err := Resolve(config.Runtime{Device: tc.device}, tc.inv)
		if err != nil || p.Device() != tc.want {
			t.Errorf("%s: %v, %v; want %s", tc.device, p.Device(), err, tc.want)
		}
	}
	bad := []struct {
		device string
		inv    Inventory
		want   []string
	}{
		{"gpu", none, []string{"runtime.device: gpu", "no GPU is usable", "libcuda.so.1", "runtime.device=cpu"}},
		{"gpu:0", none, []string{"runtime.device: gpu", "no GPU is usable"}},
		{"gpu:3", one, []string{"runtime.device: gpu:3", "only 1 GPU is visible", "gpu:0 NVIDIA T4", "choose gpu:0 or auto"}},
		{"gpu:2", two, []string{"runtime.device: gpu:2", "only 2 GPUs are visible", "gpu:0..gpu:1"}},
		{"tpu", one, []string{"runtime.device", "tpu"}},
		{"", one, []string{"runtime.device"}},
	}
	for _, tc := range bad {
		_, err := Resolve(config.Runtime{Device: tc.device}, tc.inv)
		if err == nil {
			t.Errorf("%q accepted", tc.device)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) || strings.Contains(err.Error(), "\n") {
				t.Errorf("%q: %q lacks %q", tc.device, err, w)
			}
		}
	}
	// gpu:1 makes physical GPU 1 the session's only (GPU:0) device.
	p, _ := Resolve(config.Runtime{Device: "gpu:1", GPUMemoryGrowth: true}, two)
	cp := &configpb.ConfigProto{}
	p.ConfigureSession(cp)
	if cp.GpuOptions.GetVisibleDeviceList() != "1" || !cp.GpuOptions.GetAllowGrowth() || cp.DeviceCount["GPU"] != 0 && cp.DeviceCount != nil {
		t.Fatalf("gpu:1 config %v", cp)
	}
}

// TestCPUPlacementSession: the CPU placement's ConfigProto starts a real
// session that lists no GPU and runs an op pinned to Device().
func TestCPUPlacementSession(t *testing.T) {
	p, err := Resolve(config.Runtime{Device: "cpu"}, Probe())
	if err != nil {
		t.Fatal(err)
	}
	cp := &configpb.ConfigProto{}
	p.ConfigureSession(cp)
	if cp.DeviceCount["GPU"] != 0 || cp.DeviceCount == nil {
		t.Fatalf("device_count %v", cp.DeviceCount)
	}
	b, err := proto.Marshal(cp)
	if err != nil {
		t.Fatal(err)
	}
	s := op.NewScope()
	x := op.Const(s.WithDevice(p.Device()), []float32{1, 2})
	y := op.Mul(s.WithDevice(p.Device()), x, x)
	g, err := s.Finalize()
	if err != nil {
		t.Fatal(err)
	}
	sess, err := tf.NewSession(g, &tf.SessionOptions{Config: b})
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	devs, err := sess.ListDevices()
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range devs {
		if d.Type == "GPU" {
			t.Fatalf("GPU listed with device_count GPU 0: %v", d)
		}
	}
	out, err := sess.Run(nil, []tf.Output{y}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if v := graph.TensorValue(out[0]).([]float32); v[0] != 1 || v[1] != 4 {
		t.Fatalf("got %v", v)
	}
}
