// Package export writes a trained model in the formats other tools read —
// a TensorFlow SavedModel for serving and Keras 3's architecture JSON —
// and loads a SavedModel back for prediction.
package export

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	tf "github.com/wamuir/graft/tensorflow"
	graphpb "github.com/wamuir/graft/tensorflow/core/framework/graph_go_proto"
	tensorshapepb "github.com/wamuir/graft/tensorflow/core/framework/tensor_shape_go_proto"
	typespb "github.com/wamuir/graft/tensorflow/core/framework/types_go_proto"
	variablepb "github.com/wamuir/graft/tensorflow/core/framework/variable_go_proto"
	corepb "github.com/wamuir/graft/tensorflow/core/protobuf/for_core_protos_go_proto"
	"github.com/wamuir/graft/tensorflow/op"
	"google.golang.org/protobuf/proto"

	"github.com/cifar-pipeline/cifar-pipeline/graph"
)

func shape64(s []int) []int64 {
	out := make([]int64, len(s))
	for i, d := range s {
		out[i] = int64(d)
	}
	return out
}

// SavedModel names: the signature's input and output keys.
const (
	ServingInput  = "images"
	ServingOutput = "probabilities"
	// SignatureDefault is the model's output; SignatureTTA the mean of its
	// outputs on the images and their mirror images (flip test-time
	// augmentation).
	SignatureDefault = "serving_default"
	SignatureTTA     = "serving_tta"
)

// ExportSavedModel writes a TensorFlow SavedModel of the inference path to
// dir: saved_model.pb (one MetaGraphDef tagged "serve", with a
// serving_default signature mapping uint8 NHWC images to class
// probabilities, a SaverDef and the variables collection) and
// variables/variables.{index,data-00000-of-00001}. It loads with
// tf.saved_model.load in Python and tf.LoadSavedModel in Go. The directory
// is assembled beside dir and renamed into place.
func SavedModel(m *graph.Model, dir string) error {
	parent := filepath.Dir(filepath.Clean(dir))
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return fmt.Errorf("export SavedModel %s: %w", dir, err)
	}
	tmp, err := os.MkdirTemp(parent, "."+filepath.Base(dir)+".tmp-")
	if err != nil {
		return fmt.Errorf("export SavedModel %s: %w", dir, err)
	}
	defer os.RemoveAll(tmp)
	// MkdirTemp makes it 0700; the export gets every artifact's permissions.
	if err := os.Chmod(tmp, 0o755); err != nil {
		return fmt.Errorf("export SavedModel %s: %w", dir, err)
	}
	if err := os.Mkdir(filepath.Join(tmp, "variables"), 0o755); err != nil {
		return fmt.Errorf("export SavedModel %s: %w", dir, err)
	}
	if err := m.Save(filepath.Join(tmp, "variables", "variables")); err != nil {
		return err
	}
	meta, err := servingMetaGraph(m)
	if err != nil {
		return fmt.Errorf("export SavedModel %s: %w", dir, err)
	}
	b, err := proto.Marshal(&corepb.SavedModel{SavedModelSchemaVersion: 1, MetaGraphs: []*corepb.MetaGraphDef{meta}})
	if err != nil {
		return fmt.Errorf("export SavedModel %s: %w", dir, err)
	}
	if err := os.WriteFile(filepath.Join(tmp, "saved_model.pb"), b, 0o644); err != nil {
		return fmt.Errorf("export SavedModel %s: %w", dir, err)
	}
	old := ""
	if _, err := os.Stat(dir); err == nil {
		old = fmt.Sprintf("%s.old-%d", dir, time.Now().UnixNano())
		if err := os.Rename(dir, old); err != nil {
			return fmt.Errorf("export SavedModel %s: %w", dir, err)
		}
	}
	if err := os.Rename(tmp, dir); err != nil {
		if old != "" {
			if rerr := os.Rename(old, dir); rerr != nil {
				return fmt.Errorf("export SavedModel %s: %w (and restoring the previous export from %s failed: %v)", dir, err, old, rerr)
			}
		}
		return fmt.Errorf("export SavedModel %s: %w", dir, err)
	}
	if old != "" {
		if err := os.RemoveAll(old); err != nil {
			return fmt.Errorf("export SavedModel %s: remove the previous export %s: %w", dir, old, err)
		}
	}
	return nil
}

// servingMetaGraph builds the inference graph (no optimiser, no dropout,
// BatchNormalization on its moving statistics) on variables named as in
// the training checkpoint, with V2 save/restore ops.
func servingMetaGraph(m *graph.Model) (*corepb.MetaGraphDef, error) {
	s := op.NewScope()
	net, opts := m.Net, m.Options()
	in := net.Input.Out
	images := op.Placeholder(s.SubScope(ServingInput), tf.Uint8, op.PlaceholderShape(tf.MakeShape(-1, int64(in[0]), int64(in[1]), int64(in[2]))))
	vars := map[*graph.Node][]tf.Output{}
	var handles, reads []tf.Output
	var names []string
	var varDefs, trainableDefs [][]byte
	for _, n := range net.Nodes {
		for _, p := range n.Params {
			name := n.Name + "/" + p.Name
			vs := s.SubScope(n.Name).SubScope(p.Name)
			h := op.VarHandleOp(vs, tf.Float, tf.MakeShape(shape64(p.Shape)...), op.VarHandleOpSharedName(name))
			read := op.ReadVariableOp(vs.SubScope("Read"), h, tf.Float)
			zero := op.Fill(vs.SubScope("Initial"), op.Const(vs.SubScope("shape"), shape64(p.Shape)), op.Const(vs.SubScope("zero"), float32(0)))
			init := op.AssignVariableOp(vs.SubScope("Assign"), h, zero)
			vars[n] = append(vars[n], read)
			handles = append(handles, h)
			reads = append(reads, read)
			names = append(names, name)
			vd, err := proto.Marshal(&variablepb.VariableDef{
				VariableName: h.Op.Name() + ":0", InitialValueName: zero.Op.Name() + ":0", InitializerName: init.Name(),
				SnapshotName: read.Op.Name() + ":0", IsResource: true, Trainable: p.Learned(),
			})
			if err != nil {
				return nil, err
			}
			varDefs = append(varDefs, vd)
			if p.Learned() {
				trainableDefs = append(trainableDefs, vd)
			}
		}
	}
	out, tta := net.InferenceTTA(s, images, opts.Preprocess(), vars, opts.TTATranslate)
	probs := op.Identity(s.SubScope(ServingOutput), out)
	probsTTA := op.Identity(s.SubScope(ServingOutput+"_tta"), tta)
	// V2 saver ops, as tf.compat.v1.train.Saver lays them out.
	ss := s.SubScope("save")
	filename := op.PlaceholderWithDefault(ss.SubScope("Const"), op.Const(ss.SubScope("default"), "model"), tf.ScalarShape())
	slices := make([]string, len(names))
	saveOp := op.SaveV2(ss.SubScope("SaveV2"), filename, op.Const(ss.SubScope("names"), names), op.Const(ss.SubScope("slices"), slices), reads)
	saved := op.Identity(ss.SubScope("control_dependency").WithControlDependencies(saveOp), filename)
	dtypes := make([]tf.DataType, len(names))
	for i := range dtypes {
		dtypes[i] = tf.Float
	}
	restored := op.RestoreV2(ss.SubScope("RestoreV2"), filename, op.Const(ss.SubScope("rnames"), names), op.Const(ss.SubScope("rslices"), slices), dtypes)
	var assigns []*tf.Operation
	for i, h := range handles {
		assigns = append(assigns, op.AssignVariableOp(ss.SubScope("Assign"), h, restored[i]))
	}
	restoreAll := op.NoOp(ss.SubScope("restore_all").WithControlDependencies(assigns...))
	g, err := s.Finalize()
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if _, err := g.WriteTo(&buf); err != nil {
		return nil, err
	}
	gd := &graphpb.GraphDef{}
	if err := proto.Unmarshal(buf.Bytes(), gd); err != nil {
		return nil, err
	}
	dims := []*tensorshapepb.TensorShapeProto_Dim{{Size: -1}, {Size: int64(in[0])}, {Size: int64(in[1])}, {Size: int64(in[2])}}
	collection := func(defs [][]byte) *corepb.CollectionDef {
		return &corepb.CollectionDef{Kind: &corepb.CollectionDef_BytesList_{BytesList: &corepb.CollectionDef_BytesList{Value: defs}}}
	}
	return &corepb.MetaGraphDef{
		MetaInfoDef: &corepb.MetaGraphDef_MetaInfoDef{Tags: []string{"serve"}, TensorflowVersion: tf.Version()},
		GraphDef:    gd,
		SaverDef: &corepb.SaverDef{
			FilenameTensorName: filename.Op.Name() + ":0", SaveTensorName: saved.Op.Name() + ":0",
			RestoreOpName: restoreAll.Name(), MaxToKeep: 5, Sharded: false, KeepCheckpointEveryNHours: 10000,
			Version: corepb.SaverDef_V2,
		},
		CollectionDef: map[string]*corepb.CollectionDef{"variables": collection(varDefs), "trainable_variables": collection(trainableDefs)},
		SignatureDef: map[string]*corepb.SignatureDef{
			SignatureDefault: signature(images, dims, probs, opts.Classes),
			SignatureTTA:     signature(images, dims, probsTTA, opts.Classes),
		},
	}, nil
}

// signature maps uint8 NHWC images to an output of n×classes probabilities.
func signature(images tf.Output, dims []*tensorshapepb.TensorShapeProto_Dim, probs tf.Output, classes int) *corepb.SignatureDef {
	return &corepb.SignatureDef{
		Inputs: map[string]*corepb.TensorInfo{ServingInput: {
			Encoding: &corepb.TensorInfo_Name{Name: images.Op.Name() + ":0"}, Dtype: typespb.DataType_DT_UINT8,
			TensorShape: &tensorshapepb.TensorShapeProto{Dim: dims}}},
		Outputs: map[string]*corepb.TensorInfo{ServingOutput: {
			Encoding: &corepb.TensorInfo_Name{Name: probs.Op.Name() + ":0"}, Dtype: typespb.DataType_DT_FLOAT,
			TensorShape: &tensorshapepb.TensorShapeProto{Dim: []*tensorshapepb.TensorShapeProto_Dim{{Size: -1}, {Size: int64(classes)}}}}},
		MethodName: "tensorflow/serving/predict",
	}
}

// Serving is a SavedModel loaded for prediction.
type Serving struct {
	sm          *tf.SavedModel
	input, prob tf.Output
	shape       []int
	classes     int // 0 when the signature does not say
}

// Classes is the number of probabilities the model gives per image, as its
// signature declares it (0 when it does not).
func (s *Serving) Classes() int { return s.classes }

// LoadServing loads a SavedModel exported by ExportSavedModel (or any with
// a serving_default signature taking uint8 NHWC images).
func LoadServing(dir string) (*Serving, error) { return LoadServingSignature(dir, SignatureDefault) }

// LoadServingSignature loads a SavedModel for prediction with the named
// signature (SignatureDefault or SignatureTTA).
func LoadServingSignature(dir, signature string) (*Serving, error) {
	sm, err := tf.LoadSavedModel(dir, []string{"serve"}, nil)
	if err != nil {
		return nil, fmt.Errorf("load SavedModel %s: %s", dir, graph.FirstLine(err))
	}
	sig, ok := sm.Signatures[signature]
	if !ok {
		sm.Session.Close()
		return nil, fmt.Errorf("load SavedModel %s: no %s signature (exported before it existed? rerun the export)", dir, signature)
	}
	inInfo, ok1 := sig.Inputs[ServingInput]
	outInfo, ok2 := sig.Outputs[ServingOutput]
	if !ok1 || !ok2 {
		sm.Session.Close()
		return nil, fmt.Errorf("load SavedModel %s: %s lacks %s -> %s", dir, signature, ServingInput, ServingOutput)
	}
	s := &Serving{sm: sm}
	if out, err := outInfo.Shape.ToSlice(); err == nil && len(out) == 2 && out[1] > 0 {
		s.classes = int(out[1])
	}
	dims, err := inInfo.Shape.ToSlice()
	if err != nil || len(dims) != 4 {
		sm.Session.Close()
		return nil, fmt.Errorf("load SavedModel %s: input %s must be NHWC images", dir, ServingInput)
	}
	for _, d := range dims {
		s.shape = append(s.shape, int(d))
	}
	if s.input, err = outputByName(sm.Graph, inInfo.Name); err != nil {
		sm.Session.Close()
		return nil, fmt.Errorf("load SavedModel %s: %w", dir, err)
	}
	if s.prob, err = outputByName(sm.Graph, outInfo.Name); err != nil {
		sm.Session.Close()
		return nil, fmt.Errorf("load SavedModel %s: %w", dir, err)
	}
	return s, nil
}

func outputByName(g *tf.Graph, name string) (tf.Output, error) {
	opName, idx := name, 0
	if i := strings.LastIndexByte(name, ':'); i >= 0 {
		opName = name[:i]
		var err error
		if idx, err = strconv.Atoi(name[i+1:]); err != nil {
			return tf.Output{}, fmt.Errorf("SavedModel tensor name %q: bad output index", name)
		}
	}
	o := g.Operation(opName)
	if o == nil {
		return tf.Output{}, fmt.Errorf("SavedModel graph has no tensor %s", name)
	}
	return o.Output(idx), nil
}

// InputShape is the image shape (height, width, channels) the model takes.
func (s *Serving) InputShape() []int { return s.shape[1:] }

// Predict returns class probabilities for n uint8 NHWC images.
func (s *Serving) Predict(images []uint8, n int) ([]float32, error) {
	sh := s.InputShape()
	t, err := graph.Uint8Tensor(images, n, sh[0], sh[1], sh[2])
	if err != nil {
		return nil, err
	}
	out, err := s.sm.Session.Run(map[tf.Output]*tf.Tensor{s.input: t}, []tf.Output{s.prob}, nil)
	if err != nil {
		return nil, fmt.Errorf("predict: %s", graph.FirstLine(err))
	}
	a, err := graph.ToArray(out[0])
	return a.Data, err
}

// Close releases the session.
func (s *Serving) Close() error { return s.sm.Session.Close() }
