package device

/*
#cgo LDFLAGS: -ldl
#include <dlfcn.h>
#include <stddef.h>
#include <stdlib.h>

// The few CUDA driver API entry points the probe needs, called through
// dlsym so the binary runs (and reports why) on machines without a driver.
typedef int (*cu_init_t)(unsigned int);
typedef int (*cu_count_t)(int *);
typedef int (*cu_get_t)(int *, int);
typedef int (*cu_name_t)(char *, int, int);
typedef int (*cu_mem_t)(size_t *, int);
typedef int (*cu_attr_t)(int *, int, int);
typedef int (*cu_errname_t)(int, const char **);

static void *cp_open(void) { return dlopen("libcuda.so.1", RTLD_LAZY | RTLD_LOCAL); }
static const char *cp_dlerror(void) { return dlerror(); }
static void *cp_sym(void *h, const char *name) { return dlsym(h, name); }
static int cp_init(void *f) { return ((cu_init_t)f)(0); }
static int cp_count(void *f, int *n) { return ((cu_count_t)f)(n); }
static int cp_get(void *f, int *dev, int i) { return ((cu_get_t)f)(dev, i); }
static int cp_name(void *f, char *buf, int len, int dev) { return ((cu_name_t)f)(buf, len, dev); }
static int cp_mem(void *f, size_t *b, int dev) { return ((cu_mem_t)f)(b, dev); }
static int cp_attr(void *f, int *v, int attr, int dev) { return ((cu_attr_t)f)(v, attr, dev); }
static const char *cp_errname(void *f, int code) {
	const char *s = 0;
	if (f == 0 || ((cu_errname_t)f)(code, &s) != 0) return 0;
	return s;
}
*/
import "C"

import (
	"fmt"
	"unsafe"
)

// CUdevice_attribute values from cuda.h.
const (
	attrComputeCapabilityMajor = 75
	attrComputeCapabilityMinor = 76
)

// queryDriver asks the NVIDIA driver (libcuda.so.1) for the visible devices.
// The library stays loaded: TensorFlow loads the same one for its GPU device.
func queryDriver() driverInfo {
	h := C.cp_open()
	if h == nil {
		return driverInfo{Err: fmt.Errorf("no NVIDIA driver: libcuda.so.1 cannot be loaded (%s)", C.GoString(C.cp_dlerror()))}
	}
	sym := func(name string) unsafe.Pointer {
		cs := C.CString(name)
		defer C.free(unsafe.Pointer(cs))
		return C.cp_sym(h, cs)
	}
	initF, countF, getF, nameF := sym("cuInit"), sym("cuDeviceGetCount"), sym("cuDeviceGet"), sym("cuDeviceGetName")
	memF, attrF, errF := sym("cuDeviceTotalMem_v2"), sym("cuDeviceGetAttribute"), sym("cuGetErrorName")
	if initF == nil || countF == nil || getF == nil || nameF == nil || memF == nil || attrF == nil {
		return driverInfo{Err: fmt.Errorf("NVIDIA driver libcuda.so.1 lacks the CUDA driver API (too old?)")}
	}
	cuErr := func(call string, code C.int) error {
		name := "CUDA error"
		if s := C.cp_errname(errF, code); s != nil {
			name = C.GoString(s)
		}
		if call == "cuInit" && code == 100 { // CUDA_ERROR_NO_DEVICE
			return fmt.Errorf("the NVIDIA driver is loaded but reports no CUDA device (cuInit: %s)", name)
		}
		return fmt.Errorf("NVIDIA driver: %s failed with %s (%d)", call, name, int(code))
	}
	if rc := C.cp_init(initF); rc != 0 {
		return driverInfo{Err: cuErr("cuInit", rc)}
	}
	var n C.int
	if rc := C.cp_count(countF, &n); rc != 0 {
		return driverInfo{Err: cuErr("cuDeviceGetCount", rc)}
	}
	var gpus []GPU
	for i := 0; i < int(n); i++ {
		var dev C.int
		if rc := C.cp_get(getF, &dev, C.int(i)); rc != 0 {
			return driverInfo{Err: cuErr("cuDeviceGet", rc)}
		}
		var buf [256]C.char
		var mem C.size_t
		var major, minor C.int
		if rc := C.cp_name(nameF, &buf[0], C.int(len(buf)), dev); rc != 0 {
			return driverInfo{Err: cuErr("cuDeviceGetName", rc)}
		}
		if rc := C.cp_mem(memF, &mem, dev); rc != 0 {
			return driverInfo{Err: cuErr("cuDeviceTotalMem", rc)}
		}
		C.cp_attr(attrF, &major, attrComputeCapabilityMajor, dev)
		C.cp_attr(attrF, &minor, attrComputeCapabilityMinor, dev)
		gpus = append(gpus, GPU{Index: i, Name: C.GoString(&buf[0]), ComputeCapability: fmt.Sprintf("%d.%d", major, minor), MemoryBytes: int64(mem)})
	}
	return driverInfo{GPUs: gpus}
}
