package config

import (
	"fmt"
	"strconv"
	"strings"
)

// DeviceKind is the family of device a run asks for in runtime.device.
type DeviceKind string

// The runtime.device families.
const (
	DeviceAuto DeviceKind = "auto" // the first GPU TensorFlow sees, else the CPU
	DeviceCPU  DeviceKind = "cpu"  // the CPU, GPUs hidden from TensorFlow
	DeviceGPU  DeviceKind = "gpu"  // a GPU, which must be visible
)

// DeviceSpec is a parsed runtime.device value.
type DeviceSpec struct {
	Kind DeviceKind
	// Index is the GPU ordinal among the visible GPUs (CUDA_VISIBLE_DEVICES
	// applied) for Kind gpu; "gpu" alone means 0.
	Index int
}

// String returns the value as written in a config: auto, cpu, gpu or gpu:N.
func (d DeviceSpec) String() string {
	if d.Kind == DeviceGPU && d.Index > 0 {
		return fmt.Sprintf("gpu:%d", d.Index)
	}
	return string(d.Kind)
}

// ParseDevice parses runtime.device: auto, cpu, gpu or gpu:N (N >= 0). The
// error names the key and the accepted forms.
func ParseDevice(s string) (DeviceSpec, error) {
	bad := func() (DeviceSpec, error) {
		return DeviceSpec{}, fmt.Errorf("runtime.device: %q is not one of auto, cpu, gpu, gpu:N (N a GPU index >= 0)", s)
	}
	switch DeviceKind(s) {
	case DeviceAuto, DeviceCPU, DeviceGPU:
		return DeviceSpec{Kind: DeviceKind(s)}, nil
	}
	n, ok := strings.CutPrefix(s, "gpu:")
	if !ok || n == "" || strings.TrimLeft(n, "0123456789") != "" {
		return bad()
	}
	i, err := strconv.Atoi(n)
	if err != nil {
		return bad()
	}
	return DeviceSpec{Kind: DeviceGPU, Index: i}, nil
}
