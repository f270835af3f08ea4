package config

import (
	"reflect"
	"strings"
)

// XLAMode is runtime.xla: whether the session compiles the graph with XLA
// (global JIT). auto, the default, turns it on when a GPU runs the graph:
// on this CPU a training step was several times slower with XLA
// (BENCHMARKS.md), and the notebook trained with XLA on a GPU.
type XLAMode string

// The runtime.xla values. In YAML, true and false are booleans.
const (
	XLAAuto XLAMode = "auto"
	XLAOn   XLAMode = "true"
	XLAOff  XLAMode = "false"
)

// XLAModes are the values runtime.xla accepts.
var XLAModes = []XLAMode{XLAAuto, XLAOn, XLAOff}

// ParseXLA checks a runtime.xla value. The error names the key and the
// accepted values.
func ParseXLA(s string) (XLAMode, error) {
	for _, m := range XLAModes {
		if s == string(m) {
			return m, nil
		}
	}
	return "", KeyErrorf("runtime.xla", "%q is not one of auto, true, false (auto: on when a GPU runs the graph)", s)
}

// XLAFor is the mode that says on or off.
func XLAFor(on bool) XLAMode {
	if on {
		return XLAOn
	}
	return XLAOff
}

// On resolves m for the device that runs the graph: auto is on exactly when
// it is a GPU.
func (m XLAMode) On(gpu bool) bool {
	switch m {
	case XLAOn:
		return true
	case XLAOff:
		return false
	}
	return gpu
}

// MarshalYAML writes true and false as YAML booleans, as configs write them.
func (m XLAMode) MarshalYAML() (any, error) {
	switch m {
	case XLAOn:
		return true, nil
	case XLAOff:
		return false, nil
	}
	return string(m), nil
}

// xlaBools is a decode hook: a YAML boolean (or "True", "FALSE" from the
// environment) for runtime.xla becomes true or false, not the "1" or "0"
// of weak decoding. Anything else is left for Validate to refuse.
func xlaBools(from, to reflect.Type, data any) (any, error) {
	if to != reflect.TypeOf(XLAMode("")) {
		return data, nil
	}
	switch from.Kind() {
	case reflect.Bool:
		return XLAFor(reflect.ValueOf(data).Bool()), nil
	case reflect.String:
		s := reflect.ValueOf(data).String()
		if strings.EqualFold(s, "true") || strings.EqualFold(s, "false") {
			return XLAMode(strings.ToLower(s)), nil
		}
	}
	return data, nil
}
