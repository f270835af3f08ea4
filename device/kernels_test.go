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

// gpuPlacement is what device.Resolve gives a run on a GPU. Only its
// graph-building choices are used here (no session is started on it).
var gpuPlacement = Placement{Spec: config.DeviceSpec{Kind: config.DeviceGPU}, GPU: &GPU{Name: "any"}}

// trainingGraph compiles a config's model with its optimiser, as the
// pipeline does for placement p, and returns the GraphDef the session runs.
func trainingGraph(t *testing.T, file string, p Placement) *graphpb.GraphDef {
	t.Helper()
	return scaledTrainingGraph(t, file, p, nil)
}

// scaledTrainingGraph is trainingGraph with loss scaling (ls non-nil): the
// graph mixed_float16 builds before TensorFlow's float16 rewrite.
func scaledTrainingGraph(t *testing.T, file string, p Placement, ls *graph.LossScale) *graphpb.GraphDef {
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
	m, err := graph.Compile(net, graph.Options{Seed: 1, Normalize: true, Classes: cfg.Data.Classes, Optimizer: opt,
		DenseUpdates: p.DenseUpdates(), LossScale: ls})
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

// unexpectedGPUGaps are the gaps a GPU run must not have: all but
// checkpoint I/O (SaveV2, RestoreV2 and their string Consts) and the run
// state a checkpoint carries (train/run_state, a string variable read and
// written only between steps), which are CPU-only by design and placed
// there by TensorFlow.
func unexpectedGPUGaps(gaps []KernelGap) []KernelGap {
	var out []KernelGap
	for _, g := range gaps {
		switch {
		case g.Op == "SaveV2" || g.Op == "RestoreV2":
		case g.Op == "Const" && slices.Contains(g.Types, "dtype=DT_STRING"):
		case g.Op == "VarHandleOp" && strings.HasPrefix(g.Node, "train_run_state/") && slices.Contains(g.Types, "dtype=DT_STRING"):
		default:
			out = append(out, g)
		}
	}
	return out
}

// TestKernelGapsCPU: the training graph has a CPU kernel for every node
// (it trains here), and a node whose dtype no kernel takes is reported.
// The graphs a GPU run builds (the notebook's RMSprop net, dense updates)
// have a CPU kernel for every node too and none of the ops that lack a GPU
// kernel; TestKernelGapsGPU checks the GPU side with a CUDA build, through
// the same unexpectedGPUGaps, which is checked here.
func TestKernelGapsCPU(t *testing.T) {
	gd := trainingGraph(t, "configs/quick.yaml", Placement{})
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

	// SparseApplyRMSProp has no GPU kernel in TF 2.18 (TestKernelGapsGPU
	// recorded it before dense updates): the CPU graph of the notebook net
	// uses it, the GPU one must not.
	ops := func(gd *graphpb.GraphDef) map[string]int {
		n := map[string]int{}
		for _, node := range gd.GetNode() {
			n[node.GetOp()]++
		}
		return n
	}
	if n := ops(trainingGraph(t, "config.yaml", Placement{}))["SparseApplyRMSProp"]; n != 1 {
		t.Fatalf("config.yaml on the CPU: %d SparseApplyRMSProp, want 1 (the 8192×512 kernel row by row)", n)
	}
	for _, file := range []string{"config.yaml", "configs/deep-intended.yaml"} {
		gd := trainingGraph(t, file, gpuPlacement)
		n := ops(gd)
		for _, op := range []string{"SparseApplyRMSProp", "VariableV2"} {
			if n[op] != 0 {
				t.Errorf("%s as a GPU run builds it: %d %s", file, n[op], op)
			}
		}
		if gaps, err := KernelGaps(gd, "CPU"); err != nil || len(gaps) != 0 {
			t.Errorf("%s as a GPU run builds it: CPU gaps %v %v", file, gaps, err)
		}
	}
	got := unexpectedGPUGaps([]KernelGap{
		{Node: "save/SaveV2", Op: "SaveV2"}, {Node: "restore/RestoreV2", Op: "RestoreV2"},
		{Node: "save/Const", Op: "Const", Types: []string{"dtype=DT_STRING"}},
		{Node: "lr", Op: "Const", Types: []string{"dtype=DT_FLOAT"}},
		{Node: "dense/SparseApplyRMSProp", Op: "SparseApplyRMSProp", Types: []string{"T=DT_FLOAT", "Tindices=DT_INT32"}},
	})
	if len(got) != 2 || got[0].Node != "lr" || got[1].Op != "SparseApplyRMSProp" {
		t.Fatalf("unexpected GPU gaps: %+v; want the float Const and SparseApplyRMSProp", got)
	}
}

// TestKernelGapsGPU (CUDA build only: . .deps/env-cuda.sh): the training
// graphs of the shallow and deep-intended presets, built as a GPU run builds
// them (device.Placement.DenseUpdates), have a GPU kernel for every node but
// checkpoint I/O (SaveV2, RestoreV2, string Consts), which is CPU-only by
// design and placed there by TensorFlow. In particular no
// SparseApplyRMSProp, which has no GPU kernel in TF 2.18: on a GPU the
// reference variables it updates would be colocated with it on the CPU
// (issue 16, item 4), so GPU runs use dense updates.
func TestKernelGapsGPU(t *testing.T) {
	if !Probe().Build.CUDA {
		t.Skip("CPU-only TensorFlow build: no GPU kernels registered (run with . .deps/env-cuda.sh)")
	}
	for _, file := range []string{"config.yaml", "configs/deep-intended.yaml", "mixed_float16:configs/deep-intended.yaml"} {
		gd := trainingGraph(t, strings.TrimPrefix(file, "mixed_float16:"), gpuPlacement)
		if strings.HasPrefix(file, "mixed_float16:") {
			// Its loss scaling ops (IsFinite, Switch, DivNoNan, Select).
			gd = scaledTrainingGraph(t, strings.TrimPrefix(file, "mixed_float16:"), gpuPlacement, &graph.LossScale{})
		}
		gaps, err := KernelGaps(gd, "GPU")
		if err != nil {
			t.Fatal(err)
		}
		for _, g := range gaps {
			t.Logf("%s: no GPU kernel: %s (%s) %v", file, g.Node, g.Op, g.Types)
		}
		for _, g := range unexpectedGPUGaps(gaps) {
			t.Errorf("%s: %s (%s %v) has no GPU kernel", file, g.Node, g.Op, g.Types)
		}
	}
	// The CPU graph of the notebook net uses SparseApplyRMSProp, a GPU gap
	// in TF 2.18: what dense updates avoid. Should a build add the kernel,
	// say so (dense updates would then be a choice, not a need).
	gaps, err := KernelGaps(trainingGraph(t, "config.yaml", Placement{}), "GPU")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(unexpectedGPUGaps(gaps), func(g KernelGap) bool { return g.Op == "SparseApplyRMSProp" }) {
		t.Logf("SparseApplyRMSProp has a GPU kernel in this build: graph.Options.DenseUpdates may no longer be needed on GPUs")
	}
	gaps, err = KernelGaps(&graphpb.GraphDef{Node: []*nodepb.NodeDef{
		node("mm", "MatMul", map[string]typespb.DataType{"T": typespb.DataType_DT_FLOAT}),
		node("jpeg", "DecodeJpeg", nil),
	}}, "GPU")
	if err != nil || len(gaps) != 1 || gaps[0].Op != "DecodeJpeg" {
		t.Fatalf("MatMul has a GPU kernel and DecodeJpeg none; got %+v %v", gaps, err)
	}
}
