package device

// #cgo LDFLAGS: -ltensorflow
// #include <stdlib.h>
// #include "tensorflow/c/c_api.h"
import "C"

import (
	"fmt"
	"slices"
	"sort"
	"unsafe"

	attrpb "github.com/wamuir/graft/tensorflow/core/framework/attr_value_go_proto"
	graphpb "github.com/wamuir/graft/tensorflow/core/framework/graph_go_proto"
	kernelpb "github.com/wamuir/graft/tensorflow/core/framework/kernel_def_go_proto"
	nodepb "github.com/wamuir/graft/tensorflow/core/framework/node_def_go_proto"
	"google.golang.org/protobuf/proto"
)

// KernelGap is a graph node TensorFlow has no kernel for on a device type.
type KernelGap struct {
	Node, Op string
	// Types are the node's type attributes ("T=DT_FLOAT").
	Types []string
}

// KernelGaps lists the nodes of gd that have no kernel registered for
// deviceType ("GPU" or "CPU") matching their type attributes: on that device
// they would fail to place (or, with soft placement, silently run elsewhere).
// GPU kernels are registered by CUDA builds whether or not a GPU is present,
// so this answers "does every op have a GPU kernel" on a machine without one;
// a CPU-only build registers none and KernelGaps returns an error for "GPU".
func KernelGaps(gd *graphpb.GraphDef, deviceType string) ([]KernelGap, error) {
	if deviceType == "GPU" {
		// A CPU-only build still registers a few GPU kernels (Reshape's),
		// so ask the library itself.
		b, err := loadedBuild()
		if err != nil {
			return nil, err
		}
		if !b.CUDA {
			return nil, fmt.Errorf("%s has no GPU support (CPU-only build): check GPU kernels with the CUDA build", b.Library)
		}
	}
	cache := map[string][]*kernelpb.KernelDef{}
	onDevice := false
	var gaps []KernelGap
	for _, n := range gd.GetNode() {
		defs, ok := cache[n.GetOp()]
		if !ok {
			all, err := registeredKernels(n.GetOp())
			if err != nil {
				return nil, err
			}
			if len(all) == 0 {
				return nil, fmt.Errorf("node %s: op %s has no kernel on any device (not an op of this TensorFlow?)", n.GetName(), n.GetOp())
			}
			for _, k := range all {
				// DEFAULT kernels (NoOp, Identity, ...) run on every device.
				if k.GetDeviceType() == deviceType || k.GetDeviceType() == "DEFAULT" {
					defs = append(defs, k)
				}
			}
			cache[n.GetOp()] = defs
		}
		onDevice = onDevice || slices.ContainsFunc(defs, func(k *kernelpb.KernelDef) bool { return k.GetDeviceType() == deviceType })
		if !slices.ContainsFunc(defs, func(k *kernelpb.KernelDef) bool { return kernelMatches(k, n) }) {
			gaps = append(gaps, KernelGap{Node: n.GetName(), Op: n.GetOp(), Types: typeAttrs(n)})
		}
	}
	if !onDevice && len(gd.GetNode()) > 0 {
		return nil, fmt.Errorf("no %s kernel is registered for any op of the graph: this TensorFlow build has no %s support", deviceType, deviceType)
	}
	return gaps, nil
}

// kernelMatches reports whether every type constraint of k admits n's attrs.
func kernelMatches(k *kernelpb.KernelDef, n *nodepb.NodeDef) bool {
	for _, c := range k.GetConstraint() {
		allowed := c.GetAllowedValues().GetList().GetType()
		v, ok := n.GetAttr()[c.GetName()]
		if !ok {
			return false
		}
		types := v.GetList().GetType()
		if _, isType := v.GetValue().(*attrpb.AttrValue_Type); isType {
			types = append(types, v.GetType())
		}
		for _, t := range types {
			if !slices.Contains(allowed, t) {
				return false
			}
		}
	}
	return true
}

func typeAttrs(n *nodepb.NodeDef) []string {
	var out []string
	for name, v := range n.GetAttr() {
		if _, isType := v.GetValue().(*attrpb.AttrValue_Type); isType {
			out = append(out, name+"="+v.GetType().String())
		}
	}
	sort.Strings(out)
	return out
}

// registeredKernels asks the loaded TensorFlow for op's KernelDefs.
func registeredKernels(op string) ([]*kernelpb.KernelDef, error) {
	cs := C.CString(op)
	defer C.free(unsafe.Pointer(cs))
	st := C.TF_NewStatus()
	defer C.TF_DeleteStatus(st)
	buf := C.TF_GetRegisteredKernelsForOp(cs, st)
	if C.TF_GetCode(st) != C.TF_OK {
		return nil, fmt.Errorf("registered kernels of %s: %s", op, C.GoString(C.TF_Message(st)))
	}
	defer C.TF_DeleteBuffer(buf)
	var kl kernelpb.KernelList
	if err := proto.Unmarshal(C.GoBytes(buf.data, C.int(buf.length)), &kl); err != nil {
		return nil, fmt.Errorf("registered kernels of %s: %w", op, err)
	}
	return kl.GetKernel(), nil
}
