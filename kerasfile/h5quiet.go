package kerasfile

// The two HDF5 C calls gonum.org/v1/hdf5 does not wrap: H5Aexists (to spot a
// Keras 2 file by its root attributes) and H5Eset_auto2 (so that a file that
// fails to open gives our one-line error, not the C library's error stack on
// stderr). The cgo flags are the ones gonum.org/v1/hdf5 uses for Debian's
// libhdf5-dev (serial build).

// #cgo LDFLAGS: -lhdf5
// #cgo linux,!arm64 CFLAGS: -I/usr/lib/x86_64-linux-gnu/hdf5/serial/include
// #cgo linux,!arm64 LDFLAGS: -L/usr/lib/x86_64-linux-gnu/hdf5/serial/
// #cgo linux,arm64 CFLAGS: -I/usr/lib/aarch64-linux-gnu/hdf5/serial/include
// #cgo linux,arm64 LDFLAGS: -L/usr/lib/aarch64-linux-gnu/hdf5/serial/
// #include <stdlib.h>
// #include "hdf5.h"
//
// static int attr_exists(hid_t obj, const char *name) { return H5Aexists(obj, name) > 0; }
//
// // silence turns off automatic error-stack printing for the calling thread
// // (Debian's libhdf5 is thread-safe, so the setting is per thread) and
// // returns whether it was on.
// static void silence(H5E_auto2_t *fn, void **data) {
//   H5Eget_auto2(H5E_DEFAULT, fn, data);
//   H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
// }
// static void restore(H5E_auto2_t fn, void *data) { H5Eset_auto2(H5E_DEFAULT, fn, data); }
import "C"

import (
	"runtime"
	"unsafe"
)

// attrExists reports whether the HDF5 object with identifier id (from
// gonum's Identifier.ID) has an attribute called name.
func attrExists(id int64, name string) bool {
	cname := C.CString(name)
	defer C.free(unsafe.Pointer(cname))
	return C.attr_exists(C.hid_t(id), cname) != 0
}

// quietly runs fn on one locked OS thread with HDF5's error printing off, so
// failures surface only as the errors fn returns.
func quietly(fn func() error) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var efn C.H5E_auto2_t
	var edata unsafe.Pointer
	C.silence(&efn, &edata)
	defer C.restore(efn, edata)
	return fn()
}
