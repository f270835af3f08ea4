// Package device finds the GPUs this process's TensorFlow can use, or says
// why there are none, and resolves runtime.device against them into session
// options and an op placement.
package device

import (
	"bufio"
	"debug/elf"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	// Linked for its side effect: libtensorflow is loaded into the process,
	// so /proc/self/maps names the library the runtime actually uses.
	_ "github.com/wamuir/graft/tensorflow"
)

// GPU is one CUDA device as the NVIDIA driver reports it.
type GPU struct {
	// Index is the ordinal among the visible devices (after
	// CUDA_VISIBLE_DEVICES), the N of runtime.device gpu:N.
	Index             int
	Name              string
	ComputeCapability string // "8.0"
	MemoryBytes       int64
}

// String is the line `pipeline version` prints for g.
func (g GPU) String() string {
	return fmt.Sprintf("gpu:%d %s, compute capability %s, %d MiB", g.Index, g.Name, g.ComputeCapability, g.MemoryBytes>>20)
}

// Build describes the libtensorflow loaded into this process.
type Build struct {
	// Library is the real path of the mapped libtensorflow (empty if it
	// could not be found).
	Library string
	// CUDA is true when the library carries CUDA kernels (an .nv_fatbin
	// ELF section, as the tensorflow[and-cuda] wheel's does).
	CUDA bool
}

// Inventory is what Probe found.
type Inventory struct {
	Build Build
	// GPUs TensorFlow can use; empty when NoGPU says why.
	GPUs []GPU
	// NoGPU is the one-line reason GPUs is empty.
	NoGPU string
}

// driverInfo is what the NVIDIA driver API reported.
type driverInfo struct {
	GPUs []GPU
	// Err is why the driver gave no devices (nil when it answered).
	Err error
}

// probeEnv is what Probe reads from the process and the machine; tests
// replace it.
type probeEnv struct {
	lookupEnv   func(string) (string, bool)
	build       func() (Build, error)
	driver      func() driverInfo
	deviceNodes func() []string
}

// Probe inspects the loaded libtensorflow, CUDA_VISIBLE_DEVICES and the
// NVIDIA driver (dlopen of libcuda.so.1, cuInit, device queries). It does not
// start a TensorFlow session, so it fixes no GPU options for the process and
// is safe to call before the training session is created.
func Probe() Inventory {
	return probe(probeEnv{
		lookupEnv:   os.LookupEnv,
		build:       loadedBuild,
		driver:      queryDriver,
		deviceNodes: func() []string { m, _ := filepath.Glob("/dev/nvidia[0-9]*"); return m },
	})
}

func probe(e probeEnv) Inventory {
	var inv Inventory
	b, err := e.build()
	inv.Build = b
	if err != nil {
		inv.NoGPU = fmt.Sprintf("cannot tell whether TensorFlow was built with CUDA: %v", err)
		return inv
	}
	cvd, cvdSet := e.lookupEnv("CUDA_VISIBLE_DEVICES")
	drv := driverInfo{Err: fmt.Errorf("not queried")}
	if !(cvdSet && hidesAll(cvd)) {
		drv = e.driver()
	}
	switch {
	case !b.CUDA:
		inv.NoGPU = fmt.Sprintf("TensorFlow build is CPU-only (%s has no CUDA kernels): set up the CUDA build with TF_VARIANT=cuda make setup", b.Library)
		if len(drv.GPUs) > 0 {
			inv.NoGPU += fmt.Sprintf(" (the driver sees %d GPU(s))", len(drv.GPUs))
		}
	case cvdSet && hidesAll(cvd):
		inv.NoGPU = fmt.Sprintf("CUDA_VISIBLE_DEVICES=%q hides every GPU: unset it or list GPU indices", cvd)
	case drv.Err != nil:
		inv.NoGPU = drv.Err.Error()
		if nodes := e.deviceNodes(); len(nodes) == 0 {
			inv.NoGPU += "; no /dev/nvidia* device nodes"
		}
	case len(drv.GPUs) == 0 && cvdSet:
		inv.NoGPU = fmt.Sprintf("the NVIDIA driver sees no device with CUDA_VISIBLE_DEVICES=%q: check the indices (nvidia-smi -L)", cvd)
	case len(drv.GPUs) == 0:
		inv.NoGPU = "the NVIDIA driver is loaded but reports no CUDA device"
	default:
		inv.GPUs = drv.GPUs
	}
	return inv
}

// hidesAll reports whether a CUDA_VISIBLE_DEVICES value leaves no device:
// CUDA stops at the first invalid entry, so an empty list or one starting
// with a negative index hides every GPU.
func hidesAll(v string) bool {
	first, _, _ := strings.Cut(strings.TrimSpace(v), ",")
	first = strings.TrimSpace(first)
	if first == "" {
		return true
	}
	n, err := strconv.Atoi(first)
	return err == nil && n < 0
}

// loadedBuild finds the libtensorflow mapped into this process and looks
// for CUDA kernels in it.
func loadedBuild() (Build, error) {
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		return Build{}, fmt.Errorf("read /proc/self/maps: %w", err)
	}
	defer f.Close()
	lib := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 6 {
			continue
		}
		base := filepath.Base(fields[5])
		if strings.HasPrefix(base, "libtensorflow_cc.so") || strings.HasPrefix(base, "libtensorflow.so") {
			lib = fields[5]
			break
		}
	}
	if lib == "" {
		return Build{}, fmt.Errorf("no libtensorflow_cc.so or libtensorflow.so is mapped into the process")
	}
	cuda, err := hasCUDAKernels(lib)
	return Build{Library: lib, CUDA: cuda}, err
}

// hasCUDAKernels reports whether the ELF file at path embeds CUDA device
// code: nvcc puts fat binaries in the .nv_fatbin section.
func hasCUDAKernels(path string) (bool, error) {
	f, err := elf.Open(path)
	if err != nil {
		return false, fmt.Errorf("inspect %s: %w", path, err)
	}
	defer f.Close()
	return f.Section(".nv_fatbin") != nil, nil
}
