package graph

import (
	"bytes"
	"fmt"
	"runtime"
	"unsafe"

	tf "github.com/wamuir/graft/tensorflow"
)

// Array is a dense float32 array with a shape, the Go side of a weight.
type Array struct {
	Shape []int
	Data  []float32
}

// Size is the number of elements the shape holds.
func (a Array) Size() int { return Shape(a.Shape).Size() }

func shape64(s []int) []int64 {
	out := make([]int64, len(s))
	for i, d := range s {
		out[i] = int64(d)
	}
	return out
}

// Uint8Tensor copies b into a new uint8 tensor of the given shape.
func Uint8Tensor(b []uint8, shape ...int) (*tf.Tensor, error) {
	return tf.ReadTensor(tf.Uint8, shape64(shape), bytes.NewReader(b))
}

// float32Tensor copies a into a new float32 tensor.
func float32Tensor(a Array) (*tf.Tensor, error) {
	if len(a.Data) != a.Size() {
		return nil, fmt.Errorf("array of %d values does not fill shape %v", len(a.Data), a.Shape)
	}
	var b []byte
	if len(a.Data) > 0 {
		b = unsafe.Slice((*byte)(unsafe.Pointer(&a.Data[0])), 4*len(a.Data))
	}
	return tf.ReadTensor(tf.Float, shape64(a.Shape), bytes.NewReader(b))
}

// ToArray copies a float32 tensor out.
func ToArray(t *tf.Tensor) (Array, error) {
	if t.DataType() != tf.Float {
		return Array{}, fmt.Errorf("tensor is %v, want float32", t.DataType())
	}
	shape := make([]int, len(t.Shape()))
	for i, d := range t.Shape() {
		shape[i] = int(d)
	}
	a := Array{Shape: shape, Data: make([]float32, Shape(shape).Size())}
	if len(a.Data) == 0 {
		return a, nil
	}
	buf := bytes.NewBuffer(unsafe.Slice((*byte)(unsafe.Pointer(&a.Data[0])), 4*len(a.Data))[:0])
	if _, err := t.WriteContentsTo(buf); err != nil {
		return Array{}, err
	}
	if buf.Len() != 4*len(a.Data) {
		return Array{}, fmt.Errorf("tensor holds %d bytes, want %d", buf.Len(), 4*len(a.Data))
	}
	return a, nil
}

// TensorValue is t.Value() with t kept alive until the copy is done:
// graft's Value reads the C buffer after its last use of t, so the
// garbage collector may run t's finalizer (TF_DeleteTensor) mid-copy, a
// use-after-free seen as a rare SIGSEGV in decodeTensor under GC pressure.
// Every read of a session output goes through it.
func TensorValue(t *tf.Tensor) any {
	v := t.Value()
	runtime.KeepAlive(t)
	return v
}

// scalarFloat reads a float32 scalar tensor.
func scalarFloat(t *tf.Tensor) float64 {
	switch v := TensorValue(t).(type) {
	case float32:
		return float64(v)
	case float64:
		return v
	case int64:
		return float64(v)
	case int32:
		return float64(v)
	}
	return 0
}
