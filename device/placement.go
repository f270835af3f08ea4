package device

import (
	"fmt"
	"strconv"
	"strings"

	configpb "github.com/wamuir/graft/tensorflow/core/protobuf/for_core_protos_go_proto"

	"github.com/cifar-pipeline/cifar-pipeline/config"
)

// Placement is what runtime.device and runtime.gpu_memory_growth resolved
// to on this machine.
type Placement struct {
	Spec config.DeviceSpec
	// GPU is the device the graph runs on; nil means the CPU.
	GPU *GPU
	// MemoryGrowth is runtime.gpu_memory_growth (applies only with a GPU).
	MemoryGrowth bool
}

// Resolve checks rt.Device against inv before anything is loaded: gpu with no
// usable GPU, or gpu:N beyond the visible GPUs, is a one-line error naming
// the key, what is visible and the fix. auto picks the first GPU, else the CPU.
func Resolve(rt config.Runtime, inv Inventory) (Placement, error) {
	spec, err := config.ParseDevice(rt.Device)
	if err != nil {
		return Placement{}, err
	}
	p := Placement{Spec: spec, MemoryGrowth: rt.GPUMemoryGrowth}
	switch spec.Kind {
	case config.DeviceCPU:
	case config.DeviceAuto:
		if len(inv.GPUs) > 0 {
			p.GPU = &inv.GPUs[0]
		}
	case config.DeviceGPU:
		switch {
		case len(inv.GPUs) == 0:
			return Placement{}, fmt.Errorf("runtime.device: %s, but no GPU is usable: %s (use --set runtime.device=cpu or auto)", spec, inv.NoGPU)
		case spec.Index >= len(inv.GPUs):
			return Placement{}, fmt.Errorf("runtime.device: %s, but only %s visible (%s): choose %s or auto",
				spec, plural(len(inv.GPUs), "GPU is", "GPUs are"), gpuList(inv.GPUs), indexRange(len(inv.GPUs)))
		}
		p.GPU = &inv.GPUs[spec.Index]
	}
	return p, nil
}

// DenseUpdates reports whether the graph must update every weight with the
// optimizer's dense kernel on a resource variable (graph.Options.DenseUpdates):
// on a GPU, because RMSprop's row-wise SparseApplyRMSProp has no GPU kernel
// in TF 2.18 (TestKernelGapsGPU), and the weight would be pinned to the CPU.
func (p Placement) DenseUpdates() bool { return p.GPU != nil }

// Device is the placement for tf.Operation device fields: "/device:GPU:0"
// or "/device:CPU:0". A GPU is always GPU:0 because ConfigureSession makes
// the chosen GPU the session's only visible one.
func (p Placement) Device() string {
	if p.GPU != nil {
		return "/device:GPU:0"
	}
	return "/device:CPU:0"
}

// ConfigureSession sets the ConfigProto fields for the placement:
// with a GPU, gpu_options.visible_device_list = its index (so the session
// sees only it, as GPU:0) and allow_growth; with the CPU, device_count
// {"GPU": 0}, which hides GPUs from the session. Call it on the ConfigProto
// of every session of the process with the same placement: TensorFlow fixes
// the GPU mapping at the first session and refuses a different one later.
func (p Placement) ConfigureSession(cp *configpb.ConfigProto) {
	if p.GPU == nil {
		if cp.DeviceCount == nil {
			cp.DeviceCount = map[string]int32{}
		}
		cp.DeviceCount["GPU"] = 0
		return
	}
	if cp.GpuOptions == nil {
		cp.GpuOptions = &configpb.GPUOptions{}
	}
	cp.GpuOptions.VisibleDeviceList = strconv.Itoa(p.GPU.Index)
	cp.GpuOptions.AllowGrowth = p.MemoryGrowth
}

// String describes the placement for the run log.
func (p Placement) String() string {
	if p.GPU == nil {
		return fmt.Sprintf("CPU (runtime.device %s)", p.Spec)
	}
	return fmt.Sprintf("%s (runtime.device %s, memory growth %v)", p.GPU, p.Spec, p.MemoryGrowth)
}

func gpuList(gpus []GPU) string {
	s := make([]string, len(gpus))
	for i, g := range gpus {
		s[i] = fmt.Sprintf("gpu:%d %s", g.Index, g.Name)
	}
	return strings.Join(s, ", ")
}

func indexRange(n int) string {
	if n == 1 {
		return "gpu:0"
	}
	return fmt.Sprintf("gpu:0..gpu:%d", n-1)
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}
