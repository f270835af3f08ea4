package device

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	attrpb "github.com/wamuir/graft/tensorflow/core/framework/attr_value_go_proto"
	graphpb "github.com/wamuir/graft/tensorflow/core/framework/graph_go_proto"
	nodepb "github.com/wamuir/graft/tensorflow/core/framework/node_def_go_proto"
	typespb "github.com/wamuir/graft/tensorflow/core/framework/types_go_proto"
	"google.golang.org/protobuf/proto"

	"github.com/cifar-pipeline/cifar-pipeline/config"
	"github.com/cifar-pipeline/cifar-pipeline/graph"
)

// trainingGraph compiles a config's model with its optimiser and returns the
// GraphDef the session runs.
func trainingGraph(t *testing.T, file string) *graphpb.GraphDef {
	t.Helper()
	cfg, err := config.Load(filepath.Join("..", file), nil)
	if err != nil {
		t.Fatal(err)
	}
	net, err := graph.NewNet(cfg.Model, cfg.Data.ImageShape)
	if err != nil {
		t.Fatal(err)
	}
	opt, err := graph.NewOptimizer(cfg.Train.Optimizer)
	if err != nil {
		t.Fatal(err)
	}
	m, err := graph.Compile(net, graph.Options{Seed: 1, Normalize: true, Classes: cfg.Data.Classes, Optimizer: opt})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	path := filepath.Join(t.TempDir(), "graph.pb")
	if err := m.WriteGraphDef(path); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var gd graphpb.GraphDef
	if err := proto.Unmarshal(b, &gd); err != nil {
		t.Fatal(err)
	}
	return &gd
}

func node(name, op string, attrs map[string]typespb.DataType) *nodepb.NodeDef {
	n := &nodepb.NodeDef{Name: name, Op: op, Attr: map[string]*attrpb.AttrValue{}}
	for k, v := range attrs {
		n.Attr[k] = &attrpb.AttrValue{Value: &attrpb.AttrValue_Type{Type: v}}
	}
	return n
}

// TestKernelGapsCPU: the training graph has a CPU kernel for every node
// (it trains here), and a node whose dtype no kernel takes is reported.
func TestKernelGapsCPU(t *testing.T) {
	gd := trainingGraph(t, "configs/quick.yaml")
	gaps, err := KernelGaps(gd, "CPU")
	if err != nil || len(gaps) != 0 {
		t.Fatalf("CPU gaps in a graph that trains on the CPU: %v %v", gaps, err)
	}
	bad := &graphpb.GraphDef{Node: []*nodepb.NodeDef{
		node("ok", "MatMul", map[string]typespb.DataType{"T": typespb.DataType_DT_FLOAT}),
		node("string_matmul", "MatMul", map[string]typespb.DataType{"T": typespb.DataType_DT_STRING}),
		node("untyped_matmul", "MatMul", nil),
	}}
	gaps, err = KernelGaps(bad, "CPU")
	if err != nil || len(gaps) != 2 || gaps[0].Node != "string_matmul" || gaps[1].Node != "untyped_matmul" {
		t.Fatalf("got %+v %v", gaps, err)
	}
	if _, err := KernelGaps(&graphpb.GraphDef{Node: []*nodepb.NodeDef{node("x", "NoSuchOp", nil)}}, "CPU"); err == nil || !strings.Contains(err.Error(), "op NoSuchOp has no kernel on any device") {
		t.Fatalf("unknown op: %v", err)
	}
	if !Probe().Build.CUDA {
		if _, err := KernelGaps(gd, "GPU"); err == nil || !strings.Contains(err.Error(), "no GPU support") {
			t.Fatalf("GPU gaps on a CPU-only build: %v", err)
		}
	}
}

// TestKernelGapsGPU (CUDA build only: . .deps/env-cuda.sh): lists the
// training-graph nodes of the shallow and deep-intended presets that have no
// GPU kernel, which need pinning to the CPU or another op on a GPU.
func TestKernelGapsGPU(t *testing.T) {
	if !Probe().Build.CUDA {
		t.Skip("CPU-only TensorFlow build: no GPU kernels registered (run with . .deps/env-cuda.sh)")
	}
	// Checkpoint I/O (SaveV2, RestoreV2, string Consts) is CPU-only by
	// design and placed there by TensorFlow. The row-wise RMSprop update
	// SparseApplyRMSProp has no GPU kernel in TF 2.18: on a GPU the reference
	// variables it updates would be colocated with it on the CPU, so the
	// graph must use another update there (issue 16, item 4). This test
	// records that fact; it fails once the graph stops using it on GPUs.
	for _, file := range []string{"config.yaml", "configs/deep-intended.yaml"} {
		gaps, err := KernelGaps(trainingGraph(t, file), "GPU")
		if err != nil {
			t.Fatal(err)
		}
		sparse := false
		for _, g := range gaps {
			t.Logf("%s: no GPU kernel: %s (%s) %v", file, g.Node, g.Op, g.Types)
			switch g.Op {
			case "SaveV2", "RestoreV2":
			case "Const":
				if !slices.Contains(g.Types, "dtype=DT_STRING") {
					t.Errorf("%s: %s has no GPU kernel", file, g.Node)
				}
			case "SparseApplyRMSProp":
				sparse = true
			default:
				t.Errorf("%s: %s (%s %v) has no GPU kernel", file, g.Node, g.Op, g.Types)
			}
		}
		if !sparse {
			t.Logf("%s: SparseApplyRMSProp no longer a GPU gap: update the comment above", file)
		}
	}
	gaps, err := KernelGaps(&graphpb.GraphDef{Node: []*nodepb.NodeDef{
		node("mm", "MatMul", map[string]typespb.DataType{"T": typespb.DataType_DT_FLOAT}),
		node("jpeg", "DecodeJpeg", nil),
	}}, "GPU")
	if err != nil || len(gaps) != 1 || gaps[0].Op != "DecodeJpeg" {
		t.Fatalf("MatMul has a GPU kernel and DecodeJpeg none; got %+v %v", gaps, err)
	}
}
