package kerasfile

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"gonum.org/v1/hdf5"

	"github.com/cifar-pipeline/cifar-pipeline/internal/atomicfile"
)

// WriteWeightsH5 writes w as a Keras 3 .weights.h5 file (what
// model.save_weights writes), atomically: on error nothing is left at path.
func WriteWeightsH5(path string, w Weights) error {
	if err := w.validate(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return withTempH5(path, w, func(tmp string) error {
		return atomicfile.Write(path, func(out io.Writer) error {
			return copyFile(out, tmp)
		})
	})
}

// ReadWeightsH5 reads a Keras 3 .weights.h5 file (what model.save_weights
// writes). Layers come in the file's order; see Weights.Layer and Check.
func ReadWeightsH5(path string) (Weights, error) {
	if err := checkHDF5(path, path); err != nil {
		return Weights{}, err
	}
	return readH5(path, path)
}

// withTempH5 writes w to an HDF5 file in a fresh temporary directory, runs
// use on it and removes it. The C library writes only by file name, so use
// copies that file into place atomically (internal/atomicfile).
func withTempH5(target string, w Weights, use func(tmp string) error) error {
	dir, err := os.MkdirTemp("", "kerasfile-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", target, err)
	}
	defer os.RemoveAll(dir)
	tmp := filepath.Join(dir, "model.weights.h5")
	if err := quietly(func() error { return writeH5(tmp, w) }); err != nil {
		return fmt.Errorf("write %s: %w", target, err)
	}
	return use(tmp)
}

func copyFile(out io.Writer, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(out, f)
	return err
}

// writeH5 lays w out as saving_lib's H5IOStore does (see the package doc).
func writeH5(path string, w Weights) (err error) {
	f, err := hdf5.CreateFile(path, hdf5.F_ACC_TRUNC)
	if err != nil {
		return fmt.Errorf("create HDF5 file: %w", err)
	}
	defer func() {
		if cerr := f.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("close HDF5 file: %w", cerr)
		}
	}()
	model := w.Model
	if model == "" {
		model = "sequential"
	}
	if err := writeVarsGroup(f, "", model, nil); err != nil {
		return err
	}
	if len(w.Layers) > 0 {
		if err := makeGroups(f, "layers"); err != nil {
			return err
		}
	}
	for _, l := range w.Layers {
		if err := writeVarsGroup(f, "layers/"+l.Key, l.Name, l.Vars); err != nil {
			return err
		}
	}
	if len(w.Optimizer) > 0 {
		name := w.OptimizerName
		if name == "" {
			name = "optimizer"
		}
		if err := writeVarsGroup(f, "optimizer", name, w.Optimizer); err != nil {
			return err
		}
	}
	return nil
}

// makeGroups creates each missing group along path ("a/b/c").
func makeGroups(f *hdf5.File, path string) error {
	parts := strings.Split(path, "/")
	for i := range parts {
		p := strings.Join(parts[:i+1], "/")
		if f.LinkExists(p) {
			continue
		}
		g, err := f.CreateGroup(p)
		if err != nil {
			return fmt.Errorf("create group %s: %w", p, err)
		}
		g.Close()
	}
	return nil
}

// writeVarsGroup writes PATH/vars with the name attribute and one dataset per
// tensor.
func writeVarsGroup(f *hdf5.File, path, name string, vars []Tensor) error {
	vp := "vars"
	if path != "" {
		if err := makeGroups(f, path); err != nil {
			return err
		}
		vp = path + "/vars"
	}
	g, err := f.CreateGroup(vp)
	if err != nil {
		return fmt.Errorf("create group %s: %w", vp, err)
	}
	defer g.Close()
	if err := writeStringAttr(g, "name", name); err != nil {
		return fmt.Errorf("%s: attribute name: %w", vp, err)
	}
	for i, t := range vars {
		if err := writeDataset(g, strconv.Itoa(i), t); err != nil {
			return fmt.Errorf("dataset %s/%d: %w", vp, i, err)
		}
	}
	return nil
}

func writeStringAttr(g *hdf5.Group, key, value string) error {
	space, err := hdf5.CreateDataspace(hdf5.S_SCALAR)
	if err != nil {
		return err
	}
	defer space.Close()
	a, err := g.CreateAttribute(key, hdf5.T_GO_STRING, space)
	if err != nil {
		return err
	}
	defer a.Close()
	return a.Write(&value, hdf5.T_GO_STRING)
}

func writeDataset(g *hdf5.Group, key string, t Tensor) error {
	var space *hdf5.Dataspace
	var err error
	if len(t.Shape) == 0 {
		space, err = hdf5.CreateDataspace(hdf5.S_SCALAR)
	} else {
		dims := make([]uint, len(t.Shape))
		for i, d := range t.Shape {
			dims[i] = uint(d)
		}
		space, err = hdf5.CreateSimpleDataspace(dims, nil)
	}
	if err != nil {
		return err
	}
	defer space.Close()
	// Native types are little-endian on the platforms we build for, matching
	// the <f4 and <i8 that h5py writes for numpy float32/int64.
	dtype, data := hdf5.T_NATIVE_FLOAT, any(&t.Data)
	if t.Int64 != nil {
		dtype, data = hdf5.T_NATIVE_INT64, any(&t.Int64)
	}
	ds, err := g.CreateDataset(key, dtype, space)
	if err != nil {
		return err
	}
	defer ds.Close()
	return ds.Write(data)
}

// hdf5Signature starts every HDF5 file without a user block (h5py and Keras
// never write one).
const hdf5Signature = "\x89HDF\r\n\x1a\n"

// checkHDF5 gives the one-line error for a file that is not HDF5 at all;
// name is how errors call it.
func checkHDF5(path, name string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	defer f.Close()
	head := make([]byte, 8)
	if _, err := io.ReadFull(f, head); err != nil || string(head) != hdf5Signature {
		return fmt.Errorf("%s: not an HDF5 file (no HDF5 signature): expected a Keras 3 .weights.h5 written by model.save_weights", name)
	}
	return nil
}

// errNotKeras3 marks files that are HDF5 but not in Keras 3's layout.
var errNotKeras3 = errors.New("not a Keras 3 weights file")

// readH5 reads the Keras 3 layout from path; name is how errors call the
// file.
func readH5(path, name string) (w Weights, err error) {
	err = quietly(func() error {
		var rerr error
		w, rerr = readH5Locked(path, name)
		return rerr
	})
	w.Source = name
	return w, err
}

func readH5Locked(path, name string) (Weights, error) {
	f, err := hdf5.OpenFile(path, hdf5.F_ACC_RDONLY)
	if err != nil {
		return Weights{}, fmt.Errorf("%s: HDF5 file truncated or corrupt (the HDF5 library cannot open it): write it again", name)
	}
	defer f.Close()
	root, err := f.OpenGroup("/")
	if err != nil {
		return Weights{}, fmt.Errorf("%s: HDF5 root group unreadable: %v", name, err)
	}
	defer root.Close()
	if f.LinkExists("model_weights") || attrExists(root.ID(), "model_config") {
		return Weights{}, fmt.Errorf("%s: a Keras 2 whole-model .h5 file (model_config/model_weights), %w: convert it with keras.models.load_model(\"%s\").save(\"model.keras\")", name, errNotKeras3, filepath.Base(name))
	}
	if attrExists(root.ID(), "layer_names") {
		return Weights{}, fmt.Errorf("%s: a Keras 2 weights file (layer_names attribute), %w: convert it in Keras 3 with model.load_weights(\"%s\"); model.save_weights(\"model.weights.h5\")", name, errNotKeras3, filepath.Base(name))
	}
	layersGroup := "layers"
	if !f.LinkExists(layersGroup) && f.LinkExists("_layer_checkpoint_dependencies") {
		layersGroup = "_layer_checkpoint_dependencies" // Keras 2.13–2.15 .keras
	}
	if !f.LinkExists(layersGroup) {
		top, _ := childNames(&root.CommonFG)
		return Weights{}, fmt.Errorf("%s: an HDF5 file but %w: no layers/ group (top level holds [%s]); expected what Keras 3's model.save_weights writes", name, errNotKeras3, strings.Join(top, " "))
	}
	var w Weights
	if f.LinkExists("vars") {
		w.Model, _ = readNameAttr(f, "vars")
	}
	lg, err := f.OpenGroup(layersGroup)
	if err != nil {
		return Weights{}, fmt.Errorf("%s: group %s unreadable: %v", name, layersGroup, err)
	}
	defer lg.Close()
	if err := readLayers(f, lg, layersGroup, "", name, &w); err != nil {
		return Weights{}, err
	}
	if f.LinkExists("optimizer") {
		og, err := f.OpenGroup("optimizer")
		if err != nil {
			return Weights{}, fmt.Errorf("%s: group optimizer unreadable: %v", name, err)
		}
		defer og.Close()
		if og.LinkExists("vars") {
			w.OptimizerName, _ = readNameAttr(f, "optimizer/vars")
			if w.Optimizer, err = readVars(f, "optimizer/vars", name); err != nil {
				return Weights{}, err
			}
		}
	}
	return w, nil
}

// readLayers walks group g (at path gp in the file, key prefix prefix): every
// child group holding vars is a layer; nested models' layers/ groups are
// walked too.
func readLayers(f *hdf5.File, g *hdf5.Group, gp, prefix, name string, w *Weights) error {
	children, err := childNames(&g.CommonFG)
	if err != nil {
		return fmt.Errorf("%s: group %s unreadable: %v", name, gp, err)
	}
	for _, c := range children {
		cp := gp + "/" + c
		if typ, _ := objectType(g, c); typ != hdf5.H5G_GROUP {
			return fmt.Errorf("%s: %s is not a group, %w", name, cp, errNotKeras3)
		}
		cg, err := f.OpenGroup(cp)
		if err != nil {
			return fmt.Errorf("%s: group %s unreadable: %v", name, cp, err)
		}
		key := prefix + c
		if cg.LinkExists("vars") {
			l := LayerVars{Key: key}
			l.Name, _ = readNameAttr(f, cp+"/vars")
			if l.Vars, err = readVars(f, cp+"/vars", name); err != nil {
				cg.Close()
				return err
			}
			w.Layers = append(w.Layers, l)
		}
		for _, sub := range []string{"layers", "_layer_checkpoint_dependencies"} {
			if cg.LinkExists(sub) {
				sg, err := f.OpenGroup(cp + "/" + sub)
				if err != nil {
					cg.Close()
					return fmt.Errorf("%s: group %s/%s unreadable: %v", name, cp, sub, err)
				}
				err = readLayers(f, sg, cp+"/"+sub, key+"/layers/", name, w)
				sg.Close()
				if err != nil {
					cg.Close()
					return err
				}
			}
		}
		cg.Close()
	}
	return nil
}

func objectType(g *hdf5.Group, child string) (hdf5.GType, error) {
	n, err := g.NumObjects()
	if err != nil {
		return hdf5.H5G_UNKNOWN, err
	}
	for i := uint(0); i < n; i++ {
		if c, _ := g.ObjectNameByIndex(i); c == child {
			return g.ObjectTypeByIndex(i)
		}
	}
	return hdf5.H5G_UNKNOWN, fmt.Errorf("no %s", child)
}

func childNames(g *hdf5.CommonFG) ([]string, error) {
	n, err := g.NumObjects()
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, n)
	for i := uint(0); i < n; i++ {
		c, err := g.ObjectNameByIndex(i)
		if err != nil {
			return nil, err
		}
		names = append(names, c)
	}
	return names, nil
}

func readNameAttr(f *hdf5.File, groupPath string) (string, error) {
	g, err := f.OpenGroup(groupPath)
	if err != nil {
		return "", err
	}
	defer g.Close()
	if !attrExists(g.ID(), "name") {
		return "", nil
	}
	a, err := g.OpenAttribute("name")
	if err != nil {
		return "", err
	}
	defer a.Close()
	var s string
	err = a.Read(&s, hdf5.T_GO_STRING)
	return s, err
}

// readVars reads the datasets "0".."n-1" of group vp; any other member, a gap
// in the numbering or a dtype other than float32/int64 is an error.
func readVars(f *hdf5.File, vp, name string) ([]Tensor, error) {
	g, err := f.OpenGroup(vp)
	if err != nil {
		return nil, fmt.Errorf("%s: group %s unreadable: %v", name, vp, err)
	}
	defer g.Close()
	children, err := childNames(&g.CommonFG)
	if err != nil {
		return nil, fmt.Errorf("%s: group %s unreadable: %v", name, vp, err)
	}
	have := map[string]bool{}
	for _, c := range children {
		have[c] = true
	}
	for i := range children {
		if !have[strconv.Itoa(i)] {
			return nil, fmt.Errorf("%s: dataset %s/%d missing (%s holds %s; Keras numbers a layer's variables 0..%d)", name, vp, i, vp, strings.Join(children, ", "), len(children)-1)
		}
	}
	vars := make([]Tensor, len(children))
	for i := range vars {
		dp := vp + "/" + strconv.Itoa(i)
		if vars[i], err = readDataset(g, strconv.Itoa(i)); err != nil {
			return nil, fmt.Errorf("%s: dataset %s: %v", name, dp, err)
		}
	}
	return vars, nil
}

func readDataset(g *hdf5.Group, key string) (Tensor, error) {
	ds, err := g.OpenDataset(key)
	if err != nil {
		return Tensor{}, fmt.Errorf("not a dataset (%v)", err)
	}
	defer ds.Close()
	space := ds.Space()
	if space == nil {
		return Tensor{}, errors.New("dataspace unreadable")
	}
	defer space.Close()
	var t Tensor
	switch space.SimpleExtentType() {
	case hdf5.S_SCALAR:
		t.Shape = []int{}
	case hdf5.S_SIMPLE:
		dims, _, err := space.SimpleExtentDims()
		if err != nil {
			return Tensor{}, err
		}
		t.Shape = make([]int, len(dims))
		for i, d := range dims {
			t.Shape[i] = int(d)
		}
	default:
		return Tensor{}, errors.New("empty dataspace")
	}
	dtype, err := ds.Datatype()
	if err != nil {
		return Tensor{}, err
	}
	defer dtype.Close()
	switch {
	case dtype.Equal(hdf5.T_NATIVE_FLOAT):
		t.Data = make([]float32, t.Len())
		if len(t.Data) > 0 {
			err = ds.Read(&t.Data)
		}
	case dtype.Equal(hdf5.T_NATIVE_INT64):
		t.Int64 = make([]int64, t.Len())
		if len(t.Int64) > 0 {
			err = ds.Read(&t.Int64)
		}
	default:
		kind := fmt.Sprintf("HDF5 type class %d of %d bytes", dtype.Class(), dtype.Size())
		if dtype.Class() == hdf5.T_FLOAT {
			kind = fmt.Sprintf("float%d", 8*dtype.Size())
		}
		return Tensor{}, fmt.Errorf("element type %s, not float32 (or int64 for the optimizer's iterations)", kind)
	}
	if err != nil {
		return Tensor{}, fmt.Errorf("read: %v", err)
	}
	return t, nil
}
