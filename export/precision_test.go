package export

import (
	"encoding/json"
	"path/filepath"
	"testing"

	"github.com/cifar-pipeline/cifar-pipeline/config"
	"github.com/cifar-pipeline/cifar-pipeline/graph"
	"github.com/cifar-pipeline/cifar-pipeline/internal/enginetest"
)

// A model trained in mixed_bfloat16 exports a SavedModel that serves
// uint8 images in and float32 probabilities out, computed in float32 from
// its float32 variables: the float32 graph's predictions on the same
// checkpoint, to float32 rounding.
func TestSavedModelFromMixedBFloat16(t *testing.T) {
	const n = 64
	images, labels := enginetest.ParityBatches(n)
	compile := func(p graph.Precision) *graph.Model {
		net, err := graph.NewNet(config.Model{Layers: enginetest.SmallResNet()}, []int{32, 32, 3})
		if err != nil {
			t.Fatal(err)
		}
		o, err := graph.NewOptimizer(enginetest.Optimizer("adam"))
		if err != nil {
			t.Fatal(err)
		}
		m, err := graph.Compile(net, graph.Options{Seed: 1, Normalize: true, Classes: 10, Optimizer: o, Precision: p})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { m.Close() })
		return m
	}
	bf := compile(graph.MixedBFloat16)
	for k := range 2 {
		if _, err := bf.TrainStep(images[k*32*3072:(k+1)*32*3072], labels[k*32:(k+1)*32], 32, 1, int64(k)); err != nil {
			t.Fatal(err)
		}
	}
	dir := filepath.Join(t.TempDir(), "saved_model")
	if err := SavedModel(bf, dir); err != nil {
		t.Fatal(err)
	}
	f32 := compile(graph.Float32)
	if err := f32.Restore(filepath.Join(dir, "variables", "variables")); err != nil {
		t.Fatal(err)
	}
	want, err := f32.PredictBatch(images, n)
	if err != nil {
		t.Fatal(err)
	}
	bfProbs, err := bf.PredictBatch(images, n)
	if err != nil {
		t.Fatal(err)
	}
	got := served(t, dir, SignatureDefault, images, n)
	if d := maxAbsDiff(got, want); d > 1e-6 {
		t.Errorf("SavedModel of a mixed_bfloat16 model vs the float32 graph on its checkpoint: max abs diff %g > 1e-6", d)
	}
	// The training session computes in bfloat16: its probabilities differ
	// from the served float32 ones by bfloat16 rounding, no more.
	if d := maxAbsDiff(bfProbs, want); d == 0 || d > 4.0/256 {
		t.Errorf("mixed_bfloat16 session vs float32 serving: max abs diff %g, want in (0, 4/256]", d)
	} else {
		t.Logf("mixed_bfloat16 session vs float32 serving: max abs diff %.3g", d)
	}
}

// The architecture JSON of a mixed_bfloat16 model names the policy on the
// model and every layer, and bfloat16 on the layers' output tensors, as
// Keras's to_json does; the input stays float32. (The Keras parity test
// rebuilds it with model_from_json and checks Keras computes in bfloat16.)
func TestKerasJSONPolicy(t *testing.T) {
	for _, tc := range nets {
		net, err := graph.NewNet(config.Model{Layers: tc.layers()}, []int{32, 32, 3})
		if err != nil {
			t.Fatal(err)
		}
		b, err := KerasJSONPolicy(net, graph.MixedBFloat16)
		if err != nil {
			t.Fatal(err)
		}
		var doc struct {
			Config struct {
				DType  *struct{ Config struct{ Name string } } `json:"dtype"`
				Layers []struct {
					ClassName string `json:"class_name"`
					Config    struct {
						DType json.RawMessage `json:"dtype"`
					} `json:"config"`
					InboundNodes []struct {
						Args []json.RawMessage `json:"args"`
					} `json:"inbound_nodes"`
				} `json:"layers"`
			} `json:"config"`
		}
		if err := json.Unmarshal(b, &doc); err != nil {
			t.Fatal(err)
		}
		if d := doc.Config.DType; tc.class == "Sequential" && (d == nil || d.Config.Name != "mixed_bfloat16") {
			t.Errorf("%s: model dtype policy %+v, want mixed_bfloat16", tc.name, d)
		}
		tensors := map[string]int{}
		for i, l := range doc.Config.Layers {
			if i == 0 {
				if string(l.Config.DType) != `"float32"` {
					t.Errorf("%s: input layer dtype %s, want float32", tc.name, l.Config.DType)
				}
				continue
			}
			var p struct{ Config struct{ Name string } }
			if err := json.Unmarshal(l.Config.DType, &p); err != nil || p.Config.Name != "mixed_bfloat16" {
				t.Errorf("%s: layer %d (%s) dtype %s, want the mixed_bfloat16 policy", tc.name, i, l.ClassName, l.Config.DType)
			}
			for _, node := range l.InboundNodes {
				for _, a := range node.Args {
					var ts []struct {
						Config struct {
							DType   string `json:"dtype"`
							History []any  `json:"keras_history"`
						} `json:"config"`
					}
					if json.Unmarshal(a, &ts) != nil {
						var one struct {
							Config struct {
								DType   string `json:"dtype"`
								History []any  `json:"keras_history"`
							} `json:"config"`
						}
						if err := json.Unmarshal(a, &one); err != nil {
							t.Fatal(err)
						}
						ts = append(ts, one)
					}
					for _, x := range ts {
						tensors[x.Config.DType]++
						if x.Config.History[0] == "input_layer" && x.Config.DType != "float32" {
							t.Errorf("%s: the input tensor is %s, want float32", tc.name, x.Config.DType)
						}
					}
				}
			}
		}
		if tc.class == "Functional" && tensors["bfloat16"] == 0 {
			t.Errorf("%s: no bfloat16 layer output tensors (%v)", tc.name, tensors)
		}
	}
}
