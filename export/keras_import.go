package export

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"slices"
	"sort"
	"strings"

	"github.com/cifar-pipeline/cifar-pipeline/config"
	"github.com/cifar-pipeline/cifar-pipeline/graph"
	"github.com/cifar-pipeline/cifar-pipeline/kerasfile"
)

// Import lives beside the writers because it is their inverse over the same
// two descriptions of a layer: the engine's layer registry and each layer's
// KerasConfig. It has no table of layer kinds: a Keras class finds its kind
// through graph.LayerByClass, a Keras argument is kept when the kind's
// argument struct has that mapstructure tag, and the built layer's
// KerasConfig must then say what the file says, so any argument the engine
// does not implement (dilation_rate 2, data_format channels_first, a
// constraint) is refused rather than silently dropped.

// KerasConfigModel turns a Keras 3 model config (a .keras file's
// config.json, or model.to_json()) into the engine's model config and its
// input shape (height, width, channels). source names the file in errors.
// Each error is one line naming the layer, and the key and value at fault.
func KerasConfigModel(cfgJSON []byte, source string) (config.Model, []int, error) {
	m, input, _, err := kerasConfigModel(cfgJSON, source)
	return m, input, err
}

// kerasLayerEntry is one entry of a model config's layers list.
type kerasLayerEntry struct {
	ClassName    string          `json:"class_name"`
	Config       map[string]any  `json:"config"`
	InboundNodes json.RawMessage `json:"inbound_nodes"`
}

func kerasConfigModel(cfgJSON []byte, source string) (config.Model, []int, []map[string]any, error) {
	fail := func(format string, args ...any) (config.Model, []int, []map[string]any, error) {
		return config.Model{}, nil, nil, fmt.Errorf("%s: %s", source, fmt.Sprintf(format, args...))
	}
	var top struct {
		ClassName string `json:"class_name"`
		Config    struct {
			Layers          []kerasLayerEntry `json:"layers"`
			InputLayers     json.RawMessage   `json:"input_layers"`
			OutputLayers    json.RawMessage   `json:"output_layers"`
			BuildInputShape []any             `json:"build_input_shape"`
		} `json:"config"`
	}
	if err := json.Unmarshal(cfgJSON, &top); err != nil {
		return fail("model config: %v", err)
	}
	switch top.ClassName {
	case "Sequential", "Functional", "Model":
	default:
		return fail("model config: class %q: only Sequential and Functional models can be imported", top.ClassName)
	}
	functional := top.ClassName != "Sequential"
	var input []int
	inputNames := map[string]bool{}
	var out config.Model
	var fileCfgs []map[string]any
	for _, l := range top.Config.Layers {
		name, _ := l.Config["name"].(string)
		if l.ClassName == "InputLayer" {
			if input != nil {
				return fail("layer %q (InputLayer): the engine's models take one input", name)
			}
			shape := l.Config["batch_shape"]
			if shape == nil {
				shape = l.Config["batch_input_shape"] // Keras 2
			}
			var err error
			if input, err = inputShape(shape); err != nil {
				return fail("layer %q (InputLayer): batch_shape %s: %v", name, compact(shape), err)
			}
			inputNames[name] = true
			continue
		}
		kind, ok := graph.LayerByClass(l.ClassName)
		if !ok {
			return fail("layer %q is a %s, a layer kind the engine does not have (it has: %s)", name, l.ClassName, strings.Join(layerClasses(), ", "))
		}
		if name == config.InputName {
			return fail("layer %q (%s): the name %q is reserved for the model input: rename the layer in Keras", name, l.ClassName, name)
		}
		if err := checkCommon(l.Config); err != nil {
			return fail("layer %q (%s): %v", name, l.ClassName, err)
		}
		args, err := kerasArgs(kind, l.Config)
		if err != nil {
			return fail("layer %q (%s): %v", name, l.ClassName, err)
		}
		cl := config.Layer{Type: kind.Type, Name: name, Args: args}
		if t, ok := l.Config["trainable"].(bool); ok && !t {
			cl.Trainable = &t
		}
		if functional {
			ins, err := inboundNames(l.InboundNodes)
			if err != nil {
				return fail("layer %q (%s): inbound_nodes: %v", name, l.ClassName, err)
			}
			for _, in := range ins {
				if inputNames[in] {
					in = config.InputName
				}
				cl.Inputs = append(cl.Inputs, in)
			}
		}
		out.Layers = append(out.Layers, cl)
		fileCfgs = append(fileCfgs, l.Config)
	}
	if input == nil && len(top.Config.BuildInputShape) > 0 {
		var err error
		if input, err = inputShape(top.Config.BuildInputShape); err != nil {
			return fail("build_input_shape %s: %v", compact(top.Config.BuildInputShape), err)
		}
	}
	if input == nil {
		return fail("model config: no InputLayer and no build_input_shape: the model was never built; call it on data or add keras.Input before saving")
	}
	if len(out.Layers) == 0 {
		return fail("model config: no layers")
	}
	if functional {
		outs, err := layerRefs(top.Config.OutputLayers)
		if err != nil || len(outs) != 1 {
			return fail("output_layers %s: the engine's models have one output", compact(top.Config.OutputLayers))
		}
		if last := out.Layers[len(out.Layers)-1].Name; outs[0] != last {
			return fail("output_layers: the output %q is not the last layer (%q): the engine takes its layers in order with the output last", outs[0], last)
		}
	}
	return out, input, fileCfgs, nil
}

// KerasNet builds the engine's Net from a Keras 3 model config and checks
// that every layer, built, has the Keras config the file gives (see the
// package's import note): one line naming the layer, key and value
// otherwise.
func KerasNet(cfgJSON []byte, source string) (*graph.Net, error) {
	m, input, fileCfgs, err := kerasConfigModel(cfgJSON, source)
	if err != nil {
		return nil, err
	}
	net, err := graph.NewNet(m, input)
	if err != nil {
		return nil, fmt.Errorf("%s: %s", source, layerError(m, err))
	}
	for i, n := range net.Nodes {
		if err := sameKerasConfig(fileCfgs[i], n.Layer.KerasConfig()); err != nil {
			return nil, fmt.Errorf("%s: layer %q (%s): %v", source, n.Name, n.Kind.Class, err)
		}
	}
	return net, nil
}

// layerError restates a NewNet error, which names the config key
// (model.layers[3].activation), by the Keras layer's name and class.
func layerError(m config.Model, err error) string {
	var ke *config.KeyError
	if !errors.As(err, &ke) {
		return err.Error()
	}
	var i int
	var rest string
	if n, _ := fmt.Sscanf(ke.Key, "model.layers[%d]", &i); n != 1 || i < 0 || i >= len(m.Layers) {
		return err.Error()
	}
	_, rest, _ = strings.Cut(ke.Key, "]")
	l := m.Layers[i]
	class := l.Type
	if k, ok := graph.LookupLayer(l.Type); ok {
		class = k.Class
	}
	msg := strings.TrimPrefix(ke.Err.Error(), fmt.Sprintf("layer %q: ", l.Name))
	if rest = strings.TrimPrefix(rest, "."); rest != "" {
		msg = rest + ": " + msg
	}
	return fmt.Sprintf("layer %q (%s): %s", l.Name, class, msg)
}

func layerClasses() []string {
	var out []string
	for _, t := range graph.LayerTypes() {
		k, _ := graph.LookupLayer(t)
		out = append(out, k.Class)
	}
	sort.Strings(out)
	return out
}

// inputShape reads a Keras batch shape [null, h, w, c].
func inputShape(v any) ([]int, error) {
	s, ok := v.([]any)
	if !ok || len(s) < 2 || s[0] != nil {
		return nil, errors.New("want [null, height, width, channels]")
	}
	var out []int
	for _, d := range s[1:] {
		f, ok := d.(float64)
		if !ok || f < 1 || f != math.Trunc(f) {
			return nil, errors.New("every dimension but the batch must be a positive integer")
		}
		out = append(out, int(f))
	}
	return out, nil
}

// checkCommon checks the base Layer arguments every config has (name,
// trainable, dtype), which no kind's struct takes: the engine computes
// every layer in float32 (the dtype policy is the run's, not the layer's).
func checkCommon(cfg map[string]any) error {
	if t, ok := cfg["trainable"]; ok {
		if _, isBool := t.(bool); !isBool {
			return fmt.Errorf("trainable is %s: want true or false", compact(t))
		}
	}
	switch d := cfg["dtype"].(type) {
	case nil:
	case string:
		if d != "float32" {
			return fmt.Errorf("dtype is %q: the engine computes in float32", d)
		}
	case map[string]any:
		c, _ := d["config"].(map[string]any)
		if c == nil || c["name"] != "float32" {
			return fmt.Errorf("dtype is %s: the engine computes in float32", compact(d))
		}
	default:
		return fmt.Errorf("dtype is %s: the engine computes in float32", compact(d))
	}
	return nil
}

// baseKeys are the Layer arguments checkCommon handles.
var baseKeys = map[string]bool{"name": true, "trainable": true, "dtype": true}

// argTags are the argument names a kind's struct takes (its mapstructure
// tags, those of squashed embedded structs included), read from the
// struct kind.New returns.
func argTags(kind *graph.Kind) map[string]bool {
	tags := map[string]bool{}
	var walk func(t reflect.Type)
	walk = func(t reflect.Type) {
		for t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		if t.Kind() != reflect.Struct {
			return
		}
		for i := range t.NumField() {
			f := t.Field(i)
			tag, opts, _ := strings.Cut(f.Tag.Get("mapstructure"), ",")
			switch {
			case tag == "" && (f.Anonymous || strings.Contains(opts, "squash")):
				walk(f.Type)
			case tag != "" && tag != "-":
				tags[tag] = true
			}
		}
	}
	walk(reflect.TypeOf(kind.New()))
	return tags
}

// kerasArgs converts a Keras layer config into the kind's arguments: the
// keys its struct takes, Keras initializer objects as their names,
// regularizer objects as {l1, l2}. Keys the struct does not take are left
// to the KerasConfig comparison.
func kerasArgs(kind *graph.Kind, cfg map[string]any) (map[string]any, error) {
	tags := argTags(kind)
	args := map[string]any{}
	for k, v := range cfg {
		if baseKeys[k] || !tags[k] || v == nil {
			continue
		}
		obj, isObj := v.(map[string]any)
		switch {
		case isObj && strings.HasSuffix(k, "_initializer"):
			class, _ := obj["class_name"].(string)
			name, ok := graph.InitializerByClass(class)
			if !ok {
				return nil, fmt.Errorf("%s is %s: the engine has no such initializer (it has %v)", k, compact(v), graph.InitializerNames())
			}
			args[k] = name
		case isObj && strings.HasSuffix(k, "_regularizer"):
			r, err := regularizerArgs(obj)
			if err != nil {
				return nil, fmt.Errorf("%s is %s: %v", k, compact(v), err)
			}
			args[k] = r
		case isObj:
			return nil, fmt.Errorf("%s is %s: the engine takes no object there", k, compact(v))
		default:
			args[k] = v
		}
	}
	return args, nil
}

// regularizerArgs reads Keras's L1, L2 or L1L2 object as {l1, l2}
// (keras/src/regularizers/regularizers.py get_config).
func regularizerArgs(obj map[string]any) (map[string]any, error) {
	class, _ := obj["class_name"].(string)
	switch class {
	case "L1", "L2", "L1L2":
	default:
		return nil, fmt.Errorf("the engine has the L1, L2 and L1L2 regularizers, not %q", class)
	}
	cfg, _ := obj["config"].(map[string]any)
	out := map[string]any{}
	for _, k := range []string{"l1", "l2"} {
		if v, ok := cfg[k]; ok {
			out[k] = v
		}
	}
	return out, nil
}

// inboundNames reads a Functional layer's inputs from its inbound_nodes in
// Keras 3's form: [{"args": [tensor or [tensors]], "kwargs": {}}], each
// tensor {"class_name": "__keras_tensor__", "config": {"keras_history":
// [layer, node, index]}}.
func inboundNames(raw json.RawMessage) ([]string, error) {
	var nodes []struct {
		Args   []any          `json:"args"`
		Kwargs map[string]any `json:"kwargs"`
	}
	if err := json.Unmarshal(raw, &nodes); err != nil {
		if bytes.HasPrefix(bytes.TrimSpace(raw), []byte("[[")) {
			return nil, errors.New("Keras 2 format: load and re-save the model with Keras 3 (model.save(\"model.keras\"))")
		}
		return nil, err
	}
	if len(nodes) != 1 {
		return nil, fmt.Errorf("the layer is called %d times: the engine calls each layer once", len(nodes))
	}
	for k, v := range nodes[0].Kwargs {
		// Keras records mask: null for layers that take a mask; any set
		// call argument changes the call.
		if v != nil {
			return nil, fmt.Errorf("call argument %s=%s: the engine calls layers with their inputs only", k, compact(v))
		}
	}
	var names []string
	var walk func(v any) error
	walk = func(v any) error {
		switch t := v.(type) {
		case []any:
			for _, e := range t {
				if err := walk(e); err != nil {
					return err
				}
			}
			return nil
		case map[string]any:
			c, _ := t["config"].(map[string]any)
			h, _ := c["keras_history"].([]any)
			if t["class_name"] != "__keras_tensor__" || len(h) != 3 {
				return fmt.Errorf("argument %s is not a layer's output", compact(t))
			}
			name, _ := h[0].(string)
			if h[1] != 0.0 || h[2] != 0.0 {
				return fmt.Errorf("input %s: the engine's layers have one output and are called once", compact(h))
			}
			names = append(names, name)
			return nil
		}
		return fmt.Errorf("argument %s is not a layer's output", compact(v))
	}
	if err := walk(nodes[0].Args); err != nil {
		return nil, err
	}
	if len(names) == 0 {
		return nil, errors.New("no inputs")
	}
	return names, nil
}

// layerRefs reads output_layers: ["name", 0, 0] or [["name", 0, 0], ...].
func layerRefs(raw json.RawMessage) ([]string, error) {
	var one []any
	if err := json.Unmarshal(raw, &one); err != nil {
		return nil, err
	}
	if len(one) == 3 {
		if s, ok := one[0].(string); ok {
			return []string{s}, nil
		}
	}
	var out []string
	for _, e := range one {
		ref, ok := e.([]any)
		if !ok || len(ref) != 3 {
			return nil, fmt.Errorf("bad reference %s", compact(e))
		}
		s, _ := ref[0].(string)
		out = append(out, s)
	}
	return out, nil
}

// sameKerasConfig compares a layer's config from the file with the
// engine's layer built from it: every key the file gives must be one the
// engine's layer describes, with the same value. Keys the file omits take
// Keras's defaults, which the engine's layer starts from. An initializer's
// seed is not compared: it only draws initial weights, which the file's
// replace; for the same reason a null initializer (the engine's
// data-derived ones) matches any.
func sameKerasConfig(file, ours map[string]any) error {
	o, err := normalizeJSON(ours)
	if err != nil {
		return err
	}
	om := o.(map[string]any)
	keys := make([]string, 0, len(file))
	for k := range file {
		if !baseKeys[k] {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		ov, ok := om[k]
		if !ok {
			return fmt.Errorf("%s is %s: the engine's layer does not take %s", k, compact(file[k]), k)
		}
		init := strings.HasSuffix(k, "_initializer")
		if init && file[k] == nil {
			// No Keras initializer: the weights are data-derived
			// (patch_whitening), and the file's values replace any draw.
			continue
		}
		if !sameJSON(file[k], ov, init) {
			return fmt.Errorf("%s is %s: the engine implements only %s", k, compact(file[k]), compact(ov))
		}
	}
	return nil
}

func normalizeJSON(v any) (any, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	var out any
	err = json.Unmarshal(b, &out)
	return out, err
}

// sameJSON: file's value equals ours, a map when every key the file gives
// is in ours with the same value (ignoring "seed" under an initializer).
func sameJSON(file, ours any, initializer bool) bool {
	switch f := file.(type) {
	case map[string]any:
		o, ok := ours.(map[string]any)
		if !ok {
			return false
		}
		for k, v := range f {
			if initializer && k == "seed" {
				continue
			}
			ov, ok := o[k]
			if !ok {
				if v == nil {
					continue // an optional argument left unset
				}
				return false
			}
			if !sameJSON(v, ov, initializer) {
				return false
			}
		}
		return true
	case []any:
		o, ok := ours.([]any)
		if !ok || len(o) != len(f) {
			return false
		}
		for i := range f {
			if !sameJSON(f[i], o[i], initializer) {
				return false
			}
		}
		return true
	}
	return reflect.DeepEqual(file, ours)
}

func compact(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

// ReadKerasModel reads a Keras 3 .keras file into the engine's Net and the
// file's weights, checked against the Net (each layer's variables with its
// shapes).
func ReadKerasModel(path string) (*graph.Net, kerasfile.Weights, error) {
	cfg, w, err := kerasfile.ReadKeras(path)
	if err != nil {
		return nil, kerasfile.Weights{}, err
	}
	net, err := KerasNet(cfg, path)
	if err != nil {
		return nil, kerasfile.Weights{}, err
	}
	if _, err := KerasWeightArrays(net, w); err != nil {
		return nil, kerasfile.Weights{}, err
	}
	return net, w, nil
}

// ReadKerasWeights reads the layer weights of a .keras file (by its
// extension) or a .weights.h5 file for net, as SetWeights takes them. A
// .keras file's architecture must import (KerasNet) but is not otherwise
// compared with net beyond the weights' keys and shapes: a run's config
// decides the model (its dropout rates, say). A mismatch names the file,
// the layer and both shapes.
func ReadKerasWeights(path string, net *graph.Net) (map[string]graph.Array, error) {
	var w kerasfile.Weights
	var err error
	if strings.HasSuffix(path, ".keras") {
		var cfg []byte
		if cfg, w, err = kerasfile.ReadKeras(path); err == nil {
			// The file's model must be one the engine runs (no layer kind
			// or argument it lacks), even though net decides the model.
			_, err = KerasNet(cfg, path)
		}
	} else {
		// Anything else is read as HDF5: kerasfile names what a file that
		// is not Keras 3's weights layout is (not HDF5, Keras 2, other).
		w, err = kerasfile.ReadWeightsH5(path)
	}
	if err != nil {
		return nil, err
	}
	return KerasWeightArrays(net, w)
}

// KerasWeightArrays maps a weights file's layers onto net's variables by
// Keras's weights keys (KerasLayerKeys), after checking every layer's
// variable count and shapes (kerasfile.Weights.Check), and returns them by
// variable name (<layer>/<weight>) for graph.Model.SetWeights.
func KerasWeightArrays(net *graph.Net, w kerasfile.Weights) (map[string]graph.Array, error) {
	keys := KerasLayerKeys(net)
	want := map[string][][]int{}
	for i, n := range net.Nodes {
		var shapes [][]int
		for _, p := range n.Params {
			shapes = append(shapes, slices.Clone(p.Shape))
		}
		want[keys[i]] = shapes
	}
	// Layer by layer in the model's order, so that the first difference
	// reported is the first layer that differs; Check then finds layers
	// the model lacks.
	for i, n := range net.Nodes {
		l, ok := w.Layer(keys[i])
		if !ok || len(l.Vars) != len(n.Params) {
			continue // Check words these
		}
		for j, p := range n.Params {
			if !slices.Equal(l.Vars[j].Shape, p.Shape) {
				return nil, fmt.Errorf("%s: layer %s (%s in the model) %s has shape %v in the file, the model's is %v: the model does not match the file",
					w.Source, keys[i], n.Name, p.Name, l.Vars[j].Shape, p.Shape)
			}
		}
	}
	if err := w.Check(want); err != nil {
		return nil, err
	}
	out := map[string]graph.Array{}
	for i, n := range net.Nodes {
		l, ok := w.Layer(keys[i])
		if !ok {
			continue // no variables (Check allows it)
		}
		for j, p := range n.Params {
			if l.Vars[j].Int64 != nil {
				return nil, fmt.Errorf("%s: layer %s (%s) variable %d is an integer dataset, the model wants float32 %s", w.Source, keys[i], l.Name, j, p.Name)
			}
			out[n.Name+"/"+p.Name] = graph.Array{Shape: slices.Clone(p.Shape), Data: l.Vars[j].Data}
		}
	}
	return out, nil
}

// OpenKeras reads a Keras 3 .keras file and compiles it into a model
// holding the file's weights, for prediction and evaluation: opts.Classes
// defaults to the model's output size, opts.Optimizer to RMSprop (only
// training would use it; the file's optimizer state is not loaded).
func OpenKeras(path string, opts graph.Options) (*graph.Model, error) {
	net, w, err := ReadKerasModel(path)
	if err != nil {
		return nil, err
	}
	if opts.Classes == 0 {
		if out := net.Output().Out; len(out) == 1 {
			opts.Classes = out[0]
		}
	}
	if opts.Optimizer == nil {
		if opts.Optimizer, err = graph.NewOptimizer(config.Optimizer{Name: "rmsprop"}); err != nil {
			return nil, err
		}
	}
	m, err := graph.Compile(net, opts)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	arrays, err := KerasWeightArrays(net, w)
	if err == nil {
		err = m.SetWeights(arrays)
	}
	if err != nil {
		m.Close()
		return nil, err
	}
	return m, nil
}
