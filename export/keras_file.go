package export

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/cifar-pipeline/cifar-pipeline/graph"
	"github.com/cifar-pipeline/cifar-pipeline/kerasfile"
	"github.com/cifar-pipeline/cifar-pipeline/schedule"
)

// KerasFile writes m as a Keras 3 .keras file (what model.save writes):
// the architecture of KerasJSON with a compile_config naming the optimizer,
// categorical_crossentropy and accuracy (the notebook's compile), and the
// weights and optimizer variables of KerasWeights, so that
// keras.models.load_model restores a model that predicts, evaluates and
// continues fit where Go stopped. Atomic: on error nothing is left at path.
func KerasFile(m *graph.Model, path string) error {
	cfg, err := KerasCompiledJSON(m)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	w, err := KerasWeights(m)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return kerasfile.WriteKeras(path, cfg, w)
}

// WeightsH5 writes m's weights and optimizer variables as a Keras 3
// .weights.h5 file (what model.save_weights writes), which
// model_from_json(KerasJSON).load_weights reads. Atomic.
func WeightsH5(m *graph.Model, path string) error {
	w, err := KerasWeights(m)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return kerasfile.WriteWeightsH5(path, w)
}

// KerasCompiledJSON is KerasJSON with the compile_config Keras's to_json
// adds for a compiled model (keras/src/trainers/trainer.py
// get_compile_config), which load_model compiles the model from.
func KerasCompiledJSON(m *graph.Model) ([]byte, error) {
	arch, err := KerasJSON(m.Net)
	if err != nil {
		return nil, err
	}
	var obj jsonObj
	if err := json.Unmarshal(arch, &obj); err != nil {
		return nil, err
	}
	opt := m.Optimizer()
	class := graph.OptimizerClass(opt)
	if class == "" {
		return nil, fmt.Errorf("optimizer %T is not registered", opt)
	}
	oc := opt.KerasConfig()
	oc["name"] = kerasfile.SnakeCase(class)
	obj["compile_config"] = jsonObj{
		"optimizer": jsonObj{"module": "keras.optimizers", "class_name": class, "config": oc, "registered_name": nil},
		"loss":      "categorical_crossentropy", "loss_weights": nil, "metrics": []any{"accuracy"},
		"weighted_metrics": nil, "run_eagerly": false, "steps_per_execution": 1, "jit_compile": false,
	}
	return json.Marshal(obj)
}

// kerasModelName is the name Keras gives the model KerasJSON describes,
// the weights file's /vars name attribute.
func kerasModelName(net *graph.Net) string {
	if net.IsSequential() {
		return "sequential"
	}
	return "functional"
}

// KerasLayerKeys gives each node of net its group in a Keras weights file
// (kerasfile.LayerKeys over the layers' classes, in model.layers order).
// A Functional model's InputLayer comes first in model.layers and takes
// the key input_layer; it has no variables, so its key is not returned.
func KerasLayerKeys(net *graph.Net) []string {
	classes := make([]string, len(net.Nodes))
	for i, n := range net.Nodes {
		classes[i] = n.Kind.Class
	}
	return kerasfile.LayerKeys(classes)
}

// KerasWeights gathers m's variables in Keras 3's saving layout: per layer
// (model.layers order) its Params in order, which is Keras's trainable
// then non-trainable order (BatchNormalization: gamma, beta, moving_mean,
// moving_variance); then optimizer.variables in Keras's order
// (kerasfile.OptimizerVars: iteration, learning_rate, the slots), each slot
// read from Go's <optimizer>/<layer>_<weight>_<slot> variable.
func KerasWeights(m *graph.Model) (kerasfile.Weights, error) {
	state, err := m.GetState()
	if err != nil {
		return kerasfile.Weights{}, err
	}
	net := m.Net
	w := kerasfile.Weights{Model: kerasModelName(net)}
	if !net.IsSequential() {
		// Keras writes the InputLayer's group too (no datasets).
		w.Layers = append(w.Layers, kerasfile.LayerVars{Key: "input_layer", Name: "input_layer"})
	}
	keys := KerasLayerKeys(net)
	for i, n := range net.Nodes {
		lv := kerasfile.LayerVars{Key: keys[i], Name: n.Name}
		for _, p := range n.Params {
			a, ok := state[n.Name+"/"+p.Name]
			if !ok {
				return kerasfile.Weights{}, fmt.Errorf("layer %s: the model has no variable %s/%s", n.Name, n.Name, p.Name)
			}
			lv.Vars = append(lv.Vars, kerasfile.Tensor{Shape: p.Shape, Data: a.Data})
		}
		w.Layers = append(w.Layers, lv)
	}
	opt := m.Optimizer()
	class := graph.OptimizerClass(opt)
	oc := opt.KerasConfig()
	num := func(k string) float64 { f, _ := oc[k].(float64); return f }
	_, constant := graph.Schedule(opt).(schedule.Constant)
	spec := kerasfile.OptimizerSpec{Class: class, Momentum: num("momentum"), Centered: oc["centered"] == true, AMSGrad: oc["amsgrad"] == true,
		UseEMA: oc["use_ema"] == true, LRSchedule: !constant}
	vars, err := kerasfile.OptimizerVars(spec, len(m.Weights))
	if err != nil {
		return kerasfile.Weights{}, err
	}
	it, err := m.Iterations()
	if err != nil {
		return kerasfile.Weights{}, err
	}
	optName := graph.OptimizerName(opt)
	w.OptimizerName = kerasfile.SnakeCase(class)
	for _, v := range vars {
		switch v.Slot {
		case "iteration":
			w.Optimizer = append(w.Optimizer, kerasfile.Tensor{Int64: []int64{it}})
		case "learning_rate":
			lr, err := m.LearningRate()
			if err != nil {
				return kerasfile.Weights{}, err
			}
			w.Optimizer = append(w.Optimizer, kerasfile.Tensor{Data: []float32{float32(lr)}})
		default:
			wv := m.Weights[v.Var]
			name := optName + "/" + strings.ReplaceAll(wv.Name, "/", "_") + "_" + v.Slot
			a, ok := state[name]
			if !ok {
				return kerasfile.Weights{}, fmt.Errorf("optimizer %s: the model has no slot %s", class, name)
			}
			w.Optimizer = append(w.Optimizer, kerasfile.Tensor{Shape: wv.Shape, Data: a.Data})
		}
	}
	return w, nil
}
