package export

import (
	"encoding/json"

	"github.com/cifar-pipeline/cifar-pipeline/graph"
)

type jsonObj = map[string]any

func dtypePolicy(p graph.Precision) jsonObj {
	return jsonObj{"module": "keras", "class_name": "DTypePolicy", "config": jsonObj{"name": string(p)}, "registered_name": nil}
}

func batchShape(s graph.Shape) []any {
	out := []any{nil}
	for _, d := range s {
		out = append(out, d)
	}
	return out
}

// KerasJSON renders the architecture in Keras 3's model.to_json() schema
// (keras/src/models/sequential.py and functional.py get_config, with each
// layer's config from the layer itself): a Sequential for a chain, a
// Functional model otherwise, so keras.models.model_from_json rebuilds the
// same model (the notebook's cifar10_architecture.json).
func KerasJSON(net *graph.Net) ([]byte, error) { return KerasJSONPolicy(net, graph.Float32) }

// KerasJSONPolicy is KerasJSON for a model trained under a Keras dtype
// policy: the model and every layer carry the policy's name, and each
// layer's output tensor its compute dtype (the input stays float32), as
// Keras's to_json writes them, so model_from_json rebuilds the same policy.
func KerasJSONPolicy(net *graph.Net, policy graph.Precision) ([]byte, error) {
	if policy == "" {
		policy = graph.Float32
	}
	seq := net.IsSequential()
	input := jsonObj{
		"module": "keras.layers", "class_name": "InputLayer", "registered_name": nil,
		"config": jsonObj{"batch_shape": batchShape(net.Input.Out), "dtype": "float32", "sparse": false, "ragged": false,
			"name": "input_layer", "optional": false},
	}
	if !seq {
		input["name"], input["inbound_nodes"] = "input_layer", []any{}
	}
	layers := []any{input}
	tensor := func(n *graph.Node) jsonObj {
		name := n.Name
		if n == net.Input {
			name = "input_layer"
		}
		dtype := policy.ComputeDType()
		if n == net.Input {
			dtype = "float32"
		}
		return jsonObj{"class_name": "__keras_tensor__", "config": jsonObj{"shape": batchShape(n.Out), "dtype": dtype,
			"keras_history": []any{name, 0, 0}}}
	}
	for _, n := range net.Nodes {
		c := n.Layer.KerasConfig()
		c["name"], c["trainable"], c["dtype"] = n.Name, n.Trainable(), dtypePolicy(policy)
		entry := jsonObj{"module": "keras.layers", "class_name": n.Kind.Class, "config": c, "registered_name": nil}
		var buildShape any = batchShape(n.In[0])
		if len(n.In) > 1 {
			var shapes []any
			for _, s := range n.In {
				shapes = append(shapes, batchShape(s))
			}
			buildShape = shapes
		}
		entry["build_config"] = jsonObj{"input_shape": buildShape}
		if !seq {
			var arg any = tensor(n.Inputs[0])
			if len(n.Inputs) > 1 {
				var ts []any
				for _, in := range n.Inputs {
					ts = append(ts, tensor(in))
				}
				arg = ts
			}
			entry["name"] = n.Name
			entry["inbound_nodes"] = []any{jsonObj{"args": []any{arg}, "kwargs": jsonObj{}}}
		}
		layers = append(layers, entry)
	}
	if seq {
		return json.Marshal(jsonObj{
			"module": "keras", "class_name": "Sequential", "registered_name": nil,
			"config": jsonObj{"name": "sequential", "trainable": true, "dtype": dtypePolicy(policy), "layers": layers,
				"build_input_shape": batchShape(net.Input.Out)},
			"build_config": jsonObj{"input_shape": batchShape(net.Input.Out)},
		})
	}
	return json.Marshal(jsonObj{
		"module": "keras.src.models.functional", "class_name": "Functional", "registered_name": "Functional",
		"config": jsonObj{"name": "functional", "trainable": true, "layers": layers,
			"input_layers": []any{"input_layer", 0, 0}, "output_layers": []any{net.Output().Name, 0, 0}},
		"build_config": jsonObj{"input_shape": nil},
	})
}
