package graph

import "encoding/json"

type jsonObj = map[string]any

func dtypePolicy() jsonObj {
	return jsonObj{"module": "keras", "class_name": "DTypePolicy", "config": jsonObj{"name": "float32"}, "registered_name": nil}
}

func batchShape(s Shape) []any {
	out := []any{nil}
	for _, d := range s {
		out = append(out, d)
	}
	return out
}

// KerasJSON renders the model in Keras 3's model.to_json() schema, so
// keras.models.model_from_json rebuilds the same architecture (the
// notebook's cifar10_architecture.json).
func (m *Sequential) KerasJSON() ([]byte, error) {
	layers := []any{jsonObj{
		"module": "keras.layers", "class_name": "InputLayer", "registered_name": nil,
		"config": jsonObj{"batch_shape": batchShape(m.Input), "dtype": "float32", "sparse": false, "ragged": false,
			"name": "input_layer", "optional": false},
	}}
	initializers := func(c jsonObj) {
		c["use_bias"] = true
		c["kernel_initializer"] = jsonObj{"module": "keras.initializers", "class_name": "GlorotUniform",
			"config": jsonObj{"seed": nil, "input_axes": nil, "output_axes": nil}, "registered_name": nil}
		c["bias_initializer"] = jsonObj{"module": "keras.initializers", "class_name": "Zeros", "config": jsonObj{}, "registered_name": nil}
		for _, k := range []string{"kernel_regularizer", "bias_regularizer", "activity_regularizer", "kernel_constraint", "bias_constraint"} {
			c[k] = nil
		}
	}
	act := func(a string) string {
		if a == "" {
			return "linear"
		}
		return a
	}
	for _, l := range m.Layers {
		c := jsonObj{"name": l.Name, "trainable": true, "dtype": dtypePolicy()}
		switch l.Kind {
		case "conv2d":
			c["filters"], c["kernel_size"], c["strides"], c["padding"] = l.Filters, l.KernelSize[:], l.Strides[:], l.Padding
			c["data_format"], c["dilation_rate"], c["groups"], c["activation"] = "channels_last", []int{1, 1}, 1, act(l.Activation)
			initializers(c)
		case "dense":
			c["units"], c["activation"], c["quantization_config"] = l.Units, act(l.Activation), nil
			initializers(c)
		case "activation":
			c["activation"] = l.Activation
		case "max_pooling2d":
			c["pool_size"], c["strides"], c["padding"], c["data_format"] = l.PoolSize[:], l.Strides[:], l.Padding, "channels_last"
		case "dropout":
			c["rate"], c["seed"], c["noise_shape"] = l.Rate, nil, nil
		case "flatten":
			c["data_format"] = "channels_last"
		}
		entry := jsonObj{"module": "keras.layers", "class_name": l.TypeName(), "config": c, "registered_name": nil}
		if len(l.Params) > 0 || l.Kind == "flatten" {
			entry["build_config"] = jsonObj{"input_shape": batchShape(l.In)}
		}
		layers = append(layers, entry)
	}
	return json.Marshal(jsonObj{
		"module": "keras", "class_name": "Sequential", "registered_name": nil,
		"config": jsonObj{"name": "sequential", "trainable": true, "dtype": dtypePolicy(), "layers": layers,
			"build_input_shape": batchShape(m.Input)},
		"build_config": jsonObj{"input_shape": batchShape(m.Input)},
	})
}
