package graph

import (
	"bytes"
	"strings"
	"testing"

	"github.com/cifar-pipeline/cifar-pipeline/config"
	graphpb "github.com/wamuir/graft/tensorflow/core/framework/graph_go_proto"
	nodepb "github.com/wamuir/graft/tensorflow/core/framework/node_def_go_proto"
	"google.golang.org/protobuf/proto"
)

// graphDef returns the model graph as a GraphDef.
func graphDef(t *testing.T, m *Model) *graphpb.GraphDef {
	t.Helper()
	var buf bytes.Buffer
	if _, err := m.graph.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	gd := &graphpb.GraphDef{}
	if err := proto.Unmarshal(buf.Bytes(), gd); err != nil {
		t.Fatal(err)
	}
	return gd
}

// TestRowWiseRMSprop checks the wiring of the row-by-row RMSprop update of a
// large matrix (the shallow net's 8192×512 dense kernel): it is the
// reference-variable SparseApplyRMSProp on VariableV2 weight and slots (no
// copy-on-read resource variable), every op of the training step that reads
// the shared buffer is a control input of the in-place update, and the
// variable is read by nothing but its read ops, its init and the update.
// Other optimisers keep resource variables only. The update's values are
// checked against Keras by the parity test.
func TestRowWiseRMSprop(t *testing.T) {
	for _, tc := range []struct {
		name     string
		opt      Optimizer
		autoGrad bool
		rowWise  int
	}{
		{"rmsprop explicit backward", optimizer(t, "rmsprop"), false, 1},
		{"rmsprop AddGradients", optimizer(t, "rmsprop"), true, 1},
		{"rmsprop centered", optimizer(t, "rmsprop", "centered", true), false, 0},
		{"adam", optimizer(t, "adam"), false, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := compileNet(t, config.ShallowLayers(), Options{Seed: 1, Normalize: true, Classes: 10, Optimizer: tc.opt, AutoGradients: tc.autoGrad})
			gd := graphDef(t, m)
			consumers := map[string][]*nodepb.NodeDef{} // node name → nodes that take it as a data input
			for _, n := range gd.Node {
				for _, in := range n.Input {
					if !strings.HasPrefix(in, "^") {
						src, _, _ := strings.Cut(in, ":")
						consumers[src] = append(consumers[src], n)
					}
				}
			}
			var updates []*nodepb.NodeDef
			refVars := 0
			for _, n := range gd.Node {
				switch n.Op {
				case "SparseApplyRMSProp":
					updates = append(updates, n)
				case "ResourceSparseApplyRMSProp":
					t.Errorf("%s: a sparse update on a resource variable (copy-on-read every step)", n.Name)
				case "VariableV2":
					refVars++
					for _, c := range consumers[n.Name] {
						if c.Op != "Identity" && c.Op != "Assign" && c.Op != "SparseApplyRMSProp" {
							t.Errorf("%s reads reference variable %s directly (%s)", c.Name, n.Name, c.Op)
						}
					}
				}
			}
			if len(updates) != tc.rowWise || refVars != 3*tc.rowWise {
				t.Fatalf("%d SparseApplyRMSProp on %d reference variables, want %d on %d", len(updates), refVars, tc.rowWise, 3*tc.rowWise)
			}
			for _, u := range updates {
				control := map[string]bool{}
				for _, in := range u.Input {
					if name, ok := strings.CutPrefix(in, "^"); ok {
						control[name] = true
					}
				}
				readers := 0
				for _, r := range consumers[u.Input[0]] {
					if r.Op != "Identity" || !strings.Contains(r.Name, "TrainRead") {
						continue
					}
					for _, c := range consumers[r.Name] {
						readers++
						if !control[c.Name] {
							t.Errorf("%s reads %s in the training step but is not ordered before its in-place update %s", c.Name, u.Input[0], u.Name)
						}
					}
				}
				if readers < 2 {
					t.Errorf("%s: %d training-step readers of %s, want the forward MatMul and the input gradient", u.Name, readers, u.Input[0])
				}
			}
		})
	}
}
