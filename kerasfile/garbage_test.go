package kerasfile

import (
	"archive/zip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gonum.org/v1/hdf5"

	"github.com/cifar-pipeline/cifar-pipeline/internal/testenv"
)

// smallWeights is a two-layer model's worth of weights with optimizer state.
func smallWeights() Weights {
	return Weights{
		Model: "sequential",
		Layers: []LayerVars{
			{Key: "dense", Name: "dense", Vars: []Tensor{
				{Shape: []int{2, 3}, Data: []float32{1, 2, 3, 4, 5, 6}},
				{Shape: []int{3}, Data: []float32{0.5, 0, -0.5}},
			}},
			{Key: "activation", Name: "activation"},
		},
		OptimizerName: "rmsprop",
		Optimizer: []Tensor{
			{Shape: []int{}, Int64: []int64{3}},
			{Shape: []int{}, Data: []float32{1e-3}},
			{Shape: []int{2, 3}, Data: make([]float32, 6)},
			{Shape: []int{3}, Data: make([]float32, 3)},
		},
	}
}

const smallConfig = `{"module": "keras", "class_name": "Sequential", "config": {"name": "sequential", "layers": [{"class_name": "InputLayer", "config": {}}, {"class_name": "Dense", "config": {}}, {"class_name": "Activation", "config": {}}]}}`

func writeFile(t *testing.T, path string, b []byte) string {
	t.Helper()
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func writeZip(t *testing.T, path string, members map[string][]byte) string {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	zw := zip.NewWriter(f)
	for name, body := range members {
		w, err := zw.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(body)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	return path
}

func firstHalf(t *testing.T, src, dst string) string {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	return writeFile(t, dst, b[:len(b)/2])
}

// writeRawH5 makes an HDF5 file with gonum directly: groups, then float64 or
// float32 datasets at the given paths (for layouts Keras never writes).
func writeRawH5(t *testing.T, path string, groups []string, datasets map[string]any) string {
	t.Helper()
	f, err := hdf5.CreateFile(path, hdf5.F_ACC_TRUNC)
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range groups {
		gw, err := f.CreateGroup(g)
		if err != nil {
			t.Fatal(err)
		}
		gw.Close()
	}
	for p, v := range datasets {
		var dt *hdf5.Datatype
		n := 0
		switch v := v.(type) {
		case []float64:
			dt, n = hdf5.T_NATIVE_DOUBLE, len(v)
		case []float32:
			dt, n = hdf5.T_NATIVE_FLOAT, len(v)
		}
		space, err := hdf5.CreateSimpleDataspace([]uint{uint(n)}, nil)
		if err != nil {
			t.Fatal(err)
		}
		ds, err := f.CreateDataset(p, dt, space)
		if err != nil {
			t.Fatal(err)
		}
		switch v := v.(type) {
		case []float64:
			err = ds.Write(&v)
		case []float32:
			err = ds.Write(&v)
		}
		if err != nil {
			t.Fatal(err)
		}
		ds.Close()
		space.Close()
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// pyKeras2Files writes what Keras 2 users have: a whole-model .h5 (Keras 3
// still writes that legacy format for a .h5 name) and a legacy weights .h5.
const pyKeras2Files = `
import sys, h5py, keras
from keras.src.legacy.saving import legacy_h5_format
m = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
m.compile(optimizer="rmsprop", loss="mse")
m.save(sys.argv[1])
with h5py.File(sys.argv[2], "w") as f:
    legacy_h5_format.save_weights_to_hdf5_group(f, m)
`

// TestReadGarbage: every bad input gives one line naming the file and what is
// wrong.
func TestReadGarbage(t *testing.T) {
	dir := t.TempDir()
	p := func(name string) string { return filepath.Join(dir, name) }
	good := p("good.keras")
	goodH5 := p("good.weights.h5")
	if err := WriteKeras(good, []byte(smallConfig), smallWeights()); err != nil {
		t.Fatal(err)
	}
	if err := WriteWeightsH5(goodH5, smallWeights()); err != nil {
		t.Fatal(err)
	}
	text := writeFile(t, p("text"), []byte("this is not a model\n"))
	empty := writeFile(t, p("empty"), nil)
	truncZip := firstHalf(t, good, p("trunc.keras"))
	truncH5 := firstHalf(t, goodH5, p("trunc.weights.h5"))
	h5bytes, _ := os.ReadFile(goodH5)
	noConfig := writeZip(t, p("noconfig.keras"), map[string][]byte{"metadata.json": []byte("{}"), "model.weights.h5": h5bytes})
	badJSON := writeZip(t, p("badjson.keras"), map[string][]byte{"config.json": []byte("{nope"), "model.weights.h5": h5bytes})
	noWeights := writeZip(t, p("noweights.keras"), map[string][]byte{"config.json": []byte(smallConfig)})
	npz := writeZip(t, p("npz.keras"), map[string][]byte{"config.json": []byte(smallConfig), "model.weights.npz": []byte("PK")})
	h5b, _ := os.ReadFile(truncH5)
	truncInner := writeZip(t, p("truncinner.keras"), map[string][]byte{"config.json": []byte(smallConfig), "model.weights.h5": h5b})
	textInner := writeZip(t, p("textinner.keras"), map[string][]byte{"config.json": []byte(smallConfig), "model.weights.h5": []byte("hello")})
	notKeras := writeRawH5(t, p("other.h5"), nil, map[string]any{"x": []float64{1, 2}})
	gap := writeRawH5(t, p("gap.weights.h5"), []string{"layers", "layers/dense", "layers/dense/vars"},
		map[string]any{"layers/dense/vars/0": []float32{1}, "layers/dense/vars/2": []float32{2}})
	f64 := writeRawH5(t, p("f64.weights.h5"), []string{"layers", "layers/dense", "layers/dense/vars"},
		map[string]any{"layers/dense/vars/0": []float64{1}})

	type tc struct {
		name, path string
		read       func(string) error
		want       []string
	}
	readKeras := func(path string) error { _, _, err := ReadKeras(path); return err }
	readH5 := func(path string) error { _, err := ReadWeightsH5(path); return err }
	cases := []tc{
		{"keras missing", p("nope.keras"), readKeras, []string{"no such file"}},
		{"keras empty", empty, readKeras, []string{"not a .keras file"}},
		{"keras text", text, readKeras, []string{"not a .keras file"}},
		{"keras truncated", truncZip, readKeras, []string{"not a .keras file", "truncated"}},
		{"keras without config.json", noConfig, readKeras, []string{"zip has no config.json"}},
		{"keras config not JSON", badJSON, readKeras, []string{"config.json is not valid JSON"}},
		{"keras without weights", noWeights, readKeras, []string{"zip has no model.weights.h5"}},
		{"keras npz weights", npz, readKeras, []string{"model.weights.npz"}},
		{"keras truncated weights", truncInner, readKeras, []string{"model.weights.h5", "truncated or corrupt"}},
		{"keras text weights", textInner, readKeras, []string{"model.weights.h5", "not an HDF5 file"}},
		{"keras given a weights.h5", goodH5, readKeras, []string{"an HDF5 file, not a .keras zip"}},
		{"keras given other HDF5", notKeras, readKeras, []string{"no layers/ group"}},
		{"h5 missing", p("nope.weights.h5"), readH5, []string{"no such file"}},
		{"h5 text", text, readH5, []string{"not an HDF5 file"}},
		{"h5 given a .keras", good, readH5, []string{"not an HDF5 file"}},
		{"h5 truncated", truncH5, readH5, []string{"truncated or corrupt"}},
		{"h5 not Keras layout", notKeras, readH5, []string{"not a Keras 3 weights file", "no layers/ group", "[x]"}},
		{"h5 variable missing", gap, readH5, []string{"dataset layers/dense/vars/1 missing", "holds 0, 2"}},
		{"h5 float64 dataset", f64, readH5, []string{"layers/dense/vars/0", "float64, not float32"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { expectReadError(t, c.path, c.read, c.want...) })
	}
}

// TestReadKeras2Files: files from Keras 2 (whole-model .h5, legacy weights
// .h5) are refused with the way to convert them.
func TestReadKeras2Files(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the Python reference")
	}
	dir := t.TempDir()
	k2 := filepath.Join(dir, "keras2.h5")
	k2w := filepath.Join(dir, "keras2_weights.h5")
	testenv.RunPython(t, pyKeras2Files, k2, k2w)
	expectReadError(t, k2, func(p string) error { _, _, err := ReadKeras(p); return err }, "Keras 2 whole-model .h5", `keras.models.load_model("keras2.h5").save("model.keras")`)
	expectReadError(t, k2, func(p string) error { _, err := ReadWeightsH5(p); return err }, "Keras 2 whole-model .h5")
	expectReadError(t, k2w, func(p string) error { _, err := ReadWeightsH5(p); return err }, "Keras 2 weights file")
}

// expectReadError checks that read(path) fails with one line naming path
// and containing each of want.
func expectReadError(t *testing.T, path string, read func(string) error, want ...string) {
	t.Helper()
	err := read(path)
	if err == nil {
		t.Fatalf("no error reading %s", path)
	}
	msg := err.Error()
	t.Log(msg)
	if strings.Contains(msg, "\n") || !strings.Contains(msg, path) {
		t.Errorf("want one line naming %s, got %q", path, msg)
	}
	for _, w := range want {
		if !strings.Contains(msg, w) {
			t.Errorf("error %q lacks %q", msg, w)
		}
	}
}

// TestCheckNamesLayerAndShapes: a model/file mismatch names the file, the
// layer and both shapes.
func TestCheckNamesLayerAndShapes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m.weights.h5")
	if err := WriteWeightsH5(path, smallWeights()); err != nil {
		t.Fatal(err)
	}
	w, err := ReadWeightsH5(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, ok := range []map[string][][]int{
		{"dense": {{2, 3}, {3}}, "activation": nil},
		{"dense": {{2, 3}, {3}}},                                    // var-less layer absent from the model
		{"dense": {{2, 3}, {3}}, "activation": nil, "flatten": nil}, // and from the file
	} {
		if err := w.Check(ok); err != nil {
			t.Fatalf("matching shapes %v: %v", ok, err)
		}
	}
	for name, c := range map[string]struct {
		want map[string][][]int
		msg  string
	}{
		"shape":   {map[string][][]int{"dense": {{4, 3}, {3}}, "activation": nil}, path + ": layer dense (dense) variable 0 has shape [2 3] in the file, the model wants [4 3]"},
		"count":   {map[string][][]int{"dense": {{2, 3}}, "activation": nil}, "layer dense (dense) has 2 variables, the model's has 1"},
		"missing": {map[string][][]int{"dense": {{2, 3}, {3}}, "activation": nil, "dense_1": {{3}}}, "layer dense_1 missing"},
		"extra":   {map[string][][]int{"activation": nil}, "layer dense (dense) is not in the model"},
	} {
		err := w.Check(c.want)
		if err == nil || !strings.Contains(err.Error(), c.msg) || !strings.Contains(err.Error(), path) {
			t.Errorf("%s: got %v, want %q naming %s", name, err, c.msg, path)
		}
	}
}

// TestFailedWriteLeavesNothing: a write that fails leaves no file (and an
// existing file untouched).
func TestFailedWriteLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	blocker := writeFile(t, filepath.Join(dir, "afile"), []byte("x"))
	bad := smallWeights()
	bad.Layers[0].Vars[0].Data = bad.Layers[0].Vars[0].Data[:5]
	dup := smallWeights()
	dup.Layers[1].Key = "dense"
	existing := filepath.Join(dir, "existing.keras")
	if err := WriteKeras(existing, []byte(smallConfig), smallWeights()); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(existing)
	for _, c := range []struct {
		name, path, want string
		write            func(string) error
	}{
		{"h5 into missing dir", filepath.Join(dir, "no", "m.weights.h5"), "no such file", func(p string) error { return WriteWeightsH5(p, smallWeights()) }},
		{"keras under a file", filepath.Join(blocker, "m.keras"), "not a directory", func(p string) error { return WriteKeras(p, []byte(smallConfig), smallWeights()) }},
		{"h5 short data", filepath.Join(dir, "short.weights.h5"), "layer dense variable 0: shape [2 3] needs 6 values, Data has 5", func(p string) error { return WriteWeightsH5(p, bad) }},
		{"keras duplicate key", filepath.Join(dir, "dup.keras"), "layer key dense appears twice", func(p string) error { return WriteKeras(p, []byte(smallConfig), dup) }},
		{"keras config not JSON", existing, "config is not valid JSON", func(p string) error { return WriteKeras(p, []byte("{"), smallWeights()) }},
		{"keras bad weights over existing", existing, "Data has 5", func(p string) error { return WriteKeras(p, []byte(smallConfig), bad) }},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := c.write(c.path)
			if err == nil || strings.Contains(err.Error(), "\n") || !strings.Contains(err.Error(), c.path) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want one line naming %s with %q", err, c.path, c.want)
			}
			if c.path == existing {
				if after, _ := os.ReadFile(existing); string(after) != string(before) {
					t.Fatal("failed write changed the existing file")
				}
			} else if _, err := os.Stat(c.path); err == nil {
				t.Fatalf("failed write left %s", c.path)
			}
		})
	}
	entries, _ := os.ReadDir(dir)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if strings.Join(names, " ") != "afile existing.keras" {
		t.Errorf("directory holds %v after failed writes, want only afile existing.keras", names)
	}
}

// TestLayerKeys follows Keras's naming of weight groups.
func TestLayerKeys(t *testing.T) {
	got := LayerKeys([]string{"Conv2D", "Activation", "MaxPooling2D", "Dropout", "Conv2D", "BatchNormalization", "Flatten", "Dense", "Activation", "Dropout", "Dense", "Activation"})
	want := "conv2d activation max_pooling2d dropout conv2d_1 batch_normalization flatten dense activation_1 dropout_1 dense_1 activation_2"
	if strings.Join(got, " ") != want {
		t.Errorf("LayerKeys = %v, want %s", got, want)
	}
}

// TestReadKerasOrdersLayersByConfig: ReadKeras returns model.layers order
// (config.json), not the file's alphabetical order.
func TestReadKerasOrdersLayersByConfig(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m.keras")
	if err := WriteKeras(path, []byte(smallConfig), smallWeights()); err != nil {
		t.Fatal(err)
	}
	cfg, w, err := ReadKeras(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(cfg) != smallConfig {
		t.Errorf("config %s", cfg)
	}
	sameWeights(t, w, smallWeights())
	if strings.Join(w.keys(), " ") != "dense activation" {
		t.Errorf("order %v, want dense activation", w.keys())
	}
}

// TestModelLayersRefusesOtherConfigs: configs that are not a Sequential or
// Functional model give one line saying so.
func TestModelLayersRefusesOtherConfigs(t *testing.T) {
	for cfg, want := range map[string]string{
		`{nope`:                                 "model config: invalid character",
		`{"class_name": "Dense", "config": {}}`: `class "Dense": only Sequential and Functional`,
		`{"class_name": "Sequential", "config": {"layers": [{"class_name": "Dense", "config": 3}]}}`: "layer Dense",
	} {
		_, _, err := ModelLayers([]byte(cfg))
		if err == nil || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: got %v, want %q", cfg, err, want)
		}
	}
	class, layers, err := ModelLayers([]byte(smallConfig))
	if err != nil || class != "Sequential" || len(layers) != 3 || layers[0].Key != "" || layers[1].Key != "dense" || layers[2].Key != "activation" {
		t.Errorf("smallConfig: %s %+v %v", class, layers, err)
	}
}
