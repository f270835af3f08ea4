package kerasfile

import (
	"archive/zip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/cifar-pipeline/cifar-pipeline/internal/atomicfile"
)

// KerasVersion is the Keras release whose saving layout this package writes
// and whose version metadata.json names.
const KerasVersion = "3.15.1"

// Member names inside a .keras zip (saving_lib._CONFIG_FILENAME, …).
const (
	configName   = "config.json"
	metadataName = "metadata.json"
	weightsName  = "model.weights.h5"
)

// WriteKeras writes a Keras 3 .keras file (what model.save writes): config is
// the model's Keras JSON as model.to_json() gives it (with compile_config
// when the optimizer should be restored by load_model), w its weights and
// optimizer variables. Atomic: on error nothing is left at path.
func WriteKeras(path string, config []byte, w Weights) error {
	if !json.Valid(config) {
		return fmt.Errorf("write %s: config is not valid JSON", path)
	}
	if w.Model == "" {
		var head struct {
			Config struct{ Name string } `json:"config"`
		}
		if json.Unmarshal(config, &head) == nil {
			w.Model = head.Config.Name
		}
	}
	if err := w.validate(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	now := time.Now()
	meta, err := json.Marshal(struct {
		KerasVersion string `json:"keras_version"`
		DateSaved    string `json:"date_saved"`
	}{KerasVersion, now.Format("2006-01-02@15:04:05")})
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return withTempH5(path, w, func(tmp string) error {
		return atomicfile.Write(path, func(out io.Writer) error {
			zw := zip.NewWriter(out)
			// Keras writes the JSON members through ZipFile.open (ZipInfo's
			// default 1980-01-01 stamp) and the weights through writestr
			// (the current time), all stored uncompressed.
			dos := time.Date(1980, 1, 1, 0, 0, 0, 0, time.UTC)
			for _, m := range []struct {
				name string
				when time.Time
				body func(io.Writer) error
			}{
				{metadataName, dos, func(o io.Writer) error { _, err := o.Write(meta); return err }},
				{configName, dos, func(o io.Writer) error { _, err := o.Write(config); return err }},
				{weightsName, now, func(o io.Writer) error { return copyFile(o, tmp) }},
			} {
				mw, err := zw.CreateHeader(&zip.FileHeader{Name: m.name, Method: zip.Store, Modified: m.when})
				if err != nil {
					return err
				}
				if err := m.body(mw); err != nil {
					return err
				}
			}
			return zw.Close()
		})
	})
}

// ReadKeras reads a Keras 3 .keras file: the model's config.json (the
// model.to_json() schema) and its weights, layers in config.json's order
// when the config is a Sequential or Functional model.
func ReadKeras(path string) (config []byte, w Weights, err error) {
	zr, err := zip.OpenReader(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, os.ErrPermission) {
			return nil, Weights{}, fmt.Errorf("%s: %w", path, err)
		}
		if checkHDF5(path, path) == nil {
			if _, herr := readH5(path, path); herr != nil && errors.Is(herr, errNotKeras3) {
				return nil, Weights{}, herr
			}
			return nil, Weights{}, fmt.Errorf("%s: an HDF5 file, not a .keras zip: read it as a .weights.h5", path)
		}
		return nil, Weights{}, fmt.Errorf("%s: not a .keras file (not a readable zip: %v): truncated or another format", path, err)
	}
	defer zr.Close()
	members := map[string]*zip.File{}
	for _, f := range zr.File {
		members[f.Name] = f
	}
	cf, ok := members[configName]
	if !ok {
		return nil, Weights{}, fmt.Errorf("%s: zip has no %s: not a Keras 3 .keras file", path, configName)
	}
	if config, err = readMember(cf); err != nil {
		return nil, Weights{}, fmt.Errorf("%s: %s: %v", path, configName, err)
	}
	if !json.Valid(config) {
		return nil, Weights{}, fmt.Errorf("%s: %s is not valid JSON", path, configName)
	}
	wf, ok := members[weightsName]
	if !ok {
		if _, npz := members["model.weights.npz"]; npz {
			return nil, Weights{}, fmt.Errorf("%s: weights saved as model.weights.npz: re-save with model.save(path) (the default weights_format=\"h5\")", path)
		}
		return nil, Weights{}, fmt.Errorf("%s: zip has no %s", path, weightsName)
	}
	name := path + ":" + weightsName
	dir, err := os.MkdirTemp("", "kerasfile-*")
	if err != nil {
		return nil, Weights{}, fmt.Errorf("%s: %w", path, err)
	}
	defer os.RemoveAll(dir)
	tmp := filepath.Join(dir, weightsName)
	if err := extract(wf, tmp); err != nil {
		return nil, Weights{}, fmt.Errorf("%s: %v", name, err)
	}
	if err := checkHDF5(tmp, name); err != nil {
		return nil, Weights{}, err
	}
	if w, err = readH5(tmp, name); err != nil {
		return nil, Weights{}, err
	}
	w.Source = path
	if order, ok := layerOrder(config); ok {
		w.Layers = ordered(w.Layers, order)
	}
	return config, w, nil
}

func readMember(f *zip.File) ([]byte, error) {
	r, err := f.Open()
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return io.ReadAll(r)
}

func extract(f *zip.File, dst string) error {
	r, err := f.Open()
	if err != nil {
		return err
	}
	defer r.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, r); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// ConfigLayer is one entry of a Sequential or Functional model config's
// "layers" list.
type ConfigLayer struct {
	// Class is the Keras class name, e.g. "Conv2D".
	Class string
	// Name is the layer's name (its config's "name").
	Name string
	// Key is the layer's group in the weights file (LayerKeys over
	// model.layers), "" for a Sequential model's InputLayer, which is not
	// in model.layers and has no group.
	Key string
	// Config is the layer's "config" object as saved.
	Config json.RawMessage
}

// ModelLayers lists the layers of a model config (config.json or
// model.to_json()) in config order, which is model.layers order, and returns
// the model's class ("Sequential" or "Functional").
func ModelLayers(config []byte) (class string, layers []ConfigLayer, err error) {
	var m struct {
		ClassName string `json:"class_name"`
		Config    struct {
			Layers []struct {
				ClassName string          `json:"class_name"`
				Config    json.RawMessage `json:"config"`
			} `json:"layers"`
		} `json:"config"`
	}
	if err := json.Unmarshal(config, &m); err != nil {
		return "", nil, fmt.Errorf("model config: %w", err)
	}
	switch m.ClassName {
	case "Sequential", "Functional", "Model":
	default:
		return "", nil, fmt.Errorf("model config: class %q: only Sequential and Functional models list their layers", m.ClassName)
	}
	var classes []string
	for _, l := range m.Config.Layers {
		var c struct{ Name string }
		if len(l.Config) > 0 {
			if err := json.Unmarshal(l.Config, &c); err != nil {
				return "", nil, fmt.Errorf("model config: layer %s: %w", l.ClassName, err)
			}
		}
		layers = append(layers, ConfigLayer{Class: l.ClassName, Name: c.Name, Config: l.Config})
		if !(m.ClassName == "Sequential" && l.ClassName == "InputLayer") {
			classes = append(classes, l.ClassName)
		}
	}
	keys := LayerKeys(classes)
	for i := range layers {
		if !(m.ClassName == "Sequential" && layers[i].Class == "InputLayer") {
			layers[i].Key, keys = keys[0], keys[1:]
		}
	}
	return m.ClassName, layers, nil
}

// layerOrder gives the weights-file keys of config's layers in model.layers
// order, when config is a Sequential or Functional model.
func layerOrder(config []byte) ([]string, bool) {
	_, layers, err := ModelLayers(config)
	if err != nil {
		return nil, false
	}
	var keys []string
	for _, l := range layers {
		if l.Key != "" {
			keys = append(keys, l.Key)
		}
	}
	return keys, true
}

// ordered puts layers in the order of keys; layers not named there (nested
// models' inner layers) keep their relative order after them.
func ordered(layers []LayerVars, keys []string) []LayerVars {
	rank := map[string]int{}
	for i, k := range keys {
		rank[k] = i
	}
	out := make([]LayerVars, 0, len(layers))
	for _, k := range keys {
		for _, l := range layers {
			if l.Key == k {
				out = append(out, l)
			}
		}
	}
	for _, l := range layers {
		if _, ok := rank[l.Key]; !ok {
			out = append(out, l)
		}
	}
	return out
}
