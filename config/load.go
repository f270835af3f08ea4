package config

import (
	"errors"
	"fmt"
	"math"
	"os"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/go-viper/mapstructure/v2"
	"github.com/spf13/viper"
	"gopkg.in/yaml.v3"
)

// EnvPrefix prefixes environment overrides: PIPELINE_TRAIN_EPOCHS=3 sets
// train.epochs.
const EnvPrefix = "PIPELINE"

// Load reads the YAML file at path over Default, applies PIPELINE_*
// environment overrides and then sets (each "key=value", as given to --set),
// and validates the result. Every error is one line naming the file and key.
func Load(path string, sets []string) (Config, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return Config{}, fmt.Errorf("config %s: no such file (pass an existing YAML file with -c)", path)
		}
		return Config{}, fmt.Errorf("config %s: %w", path, err)
	}
	var root yaml.Node
	if err := yaml.Unmarshal(raw, &root); err != nil {
		return Config{}, fmt.Errorf("config %s: not valid YAML: %s", path, oneLine(err.Error()))
	}
	if err := checkKeys(&root, path); err != nil {
		return Config{}, err
	}

	v := viper.New()
	v.SetConfigType("yaml")
	if err := v.ReadConfig(strings.NewReader(string(raw))); err != nil {
		return Config{}, fmt.Errorf("config %s: %s", path, oneLine(err.Error()))
	}
	setDefaults(v, Default())
	v.SetEnvPrefix(EnvPrefix)
	v.SetEnvKeyReplacer(strings.NewReplacer(".", "_"))
	v.AutomaticEnv()

	known := knownKeys(reflect.TypeOf(Config{}), "")
	for _, s := range sets {
		k, val, ok := strings.Cut(s, "=")
		k = strings.TrimSpace(k)
		if !ok || k == "" {
			return Config{}, fmt.Errorf("--set %q: want key=value, e.g. --set train.epochs=5", s)
		}
		if _, isKnown := known[k]; !isKnown && !openKey(k) {
			return Config{}, fmt.Errorf("--set %s: unknown key%s", k, suggest(k, known))
		}
		var parsed any
		if err := yaml.Unmarshal([]byte(val), &parsed); err != nil || parsed == nil {
			parsed = val
		}
		if rest, ok := strings.CutPrefix(k, optimizerSection+"."); ok {
			setInMapping(v, optimizerSection, rest, parsed)
			continue
		}
		v.Set(k, parsed)
	}

	var cfg Config
	dec := func(dc *mapstructure.DecoderConfig) {
		dc.DecodeHook = mapstructure.ComposeDecodeHookFunc(xlaBools, strictScalars, mapstructure.StringToSliceHookFunc(","))
		dc.ErrorUnused = true
	}
	if err := v.Unmarshal(&cfg, dec); err != nil {
		msg := decodeError(err)
		src := Source{Path: path, lines: map[string]int{}}
		recordLines(&root, "", src.lines)
		if key, rest, ok := strings.Cut(msg, ": "); ok && !strings.Contains(msg, "; ") && src.Line(key) > 0 {
			// One bad key: its line too.
			return Config{}, src.Wrap(&KeyError{Key: key, Err: errors.New(rest)})
		}
		return Config{}, fmt.Errorf("config %s: %s", path, msg)
	}
	if err := rawCallbacks(&root, sets, &cfg); err != nil {
		return Config{}, fmt.Errorf("config %s: %w", path, err)
	}
	cfg.Source = Source{Path: path, lines: map[string]int{}}
	recordLines(&root, "", cfg.Source.lines)
	if err := cfg.Validate(); err != nil {
		return Config{}, cfg.Source.Wrap(err)
	}
	return cfg, nil
}

// strictScalars rejects the conversions mapstructure's weak typing would
// otherwise allow silently: a fractional number into an int field, and a
// number into a bool field or a bool into a number field.
func strictScalars(from, to reflect.Type, data any) (any, error) {
	isInt := func(k reflect.Kind) bool { return k >= reflect.Int && k <= reflect.Uint64 }
	isFloat := func(k reflect.Kind) bool { return k == reflect.Float32 || k == reflect.Float64 }
	switch {
	case isInt(to.Kind()) && isFloat(from.Kind()):
		f := reflect.ValueOf(data).Float()
		if f != float64(int64(f)) {
			return nil, fmt.Errorf("want a whole number, got %v", data)
		}
	case to.Kind() == reflect.Bool && (isInt(from.Kind()) || isFloat(from.Kind())):
		return nil, fmt.Errorf("want true or false, got %v", data)
	case (isInt(to.Kind()) || isFloat(to.Kind())) && from.Kind() == reflect.Bool:
		return nil, fmt.Errorf("want a number, got %v", data)
	case isInt(to.Kind()) && from.Kind() == reflect.String:
		if _, err := strconv.ParseInt(strings.TrimSpace(reflect.ValueOf(data).String()), 0, 64); err != nil {
			return nil, fmt.Errorf("want a whole number, got %q", data)
		}
	case isFloat(to.Kind()) && from.Kind() == reflect.String:
		if _, err := strconv.ParseFloat(strings.TrimSpace(reflect.ValueOf(data).String()), 64); err != nil {
			return nil, fmt.Errorf("want a number, got %q", data)
		}
	case to.Kind() == reflect.Bool && from.Kind() == reflect.String:
		s := strings.ToLower(reflect.ValueOf(data).String())
		if s != "true" && s != "false" {
			return nil, fmt.Errorf("want true or false, got %q", data)
		}
	}
	return data, nil
}

var quotedKey = regexp.MustCompile(`'([^']*)'`)

// decodeError turns mapstructure's multi-line report into one line per
// problem, joined with "; ", each starting with the key.
func decodeError(err error) string {
	var parts []string
	for _, line := range strings.Split(err.Error(), "\n") {
		line = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(line), "*"))
		if line == "" || strings.HasPrefix(line, "decoding failed") || strings.HasSuffix(line, "error(s) decoding:") {
			continue
		}
		if m := quotedKey.FindStringSubmatchIndex(line); m != nil && m[0] == 0 {
			key := line[m[2]:m[3]]
			rest := strings.TrimSpace(line[m[1]:])
			rest = strings.TrimPrefix(rest, "error decoding '"+key+"': ")
			line = key + ": wrong type: " + rest
		}
		parts = append(parts, line)
	}
	return strings.Join(parts, "; ")
}

// knownKeys lists the dotted keys of a struct type (leaves and sections).
func knownKeys(t reflect.Type, prefix string) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("mapstructure")
		if tag == "" || tag == "-" || strings.HasPrefix(tag, ",") {
			continue
		}
		k := prefix + tag
		out[k] = f.Type
		if f.Type.Kind() == reflect.Struct {
			for kk, tt := range knownKeys(f.Type, k+".") {
				out[kk] = tt
			}
		}
	}
	return out
}

const optimizerSection = "train.optimizer"

// setInMapping sets the dotted key rest inside the mapping at section by
// merging it into a copy of that mapping: viper's Set of a key below a free
// mapping (the optimizer's arguments, its learning_rate schedule) would
// otherwise hide every sibling key the file gave there.
func setInMapping(v *viper.Viper, section, rest string, val any) {
	m := copyMapping(v.GetStringMap(section))
	parts := strings.Split(rest, ".")
	cur := m
	for _, p := range parts[:len(parts)-1] {
		next, ok := cur[p].(map[string]any)
		if !ok {
			next = map[string]any{}
			cur[p] = next
		}
		cur = next
	}
	cur[parts[len(parts)-1]] = val
	v.Set(section, m)
}

func copyMapping(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		if sub, ok := v.(map[string]any); ok {
			v = copyMapping(sub)
		}
		out[k] = v
	}
	return out
}

// openKey reports whether a --set key lies in a section whose keys the
// engine checks (the optimiser's arguments, its schedule, the callbacks).
func openKey(k string) bool {
	if rest, ok := strings.CutPrefix(k, "train.callbacks."); ok && rest != "" {
		return true // checked by package callback
	}
	rest, ok := strings.CutPrefix(k, "train.optimizer.")
	return ok && rest != "" && (!strings.Contains(rest, ".") || strings.HasPrefix(rest, "learning_rate."))
}

// checkKeys walks the YAML document and reports the first key the Config
// does not have, with its line and a suggestion.
func checkKeys(root *yaml.Node, path string) error {
	if len(root.Content) == 0 {
		return nil // empty file: all defaults
	}
	doc := root.Content[0]
	if doc.Kind != yaml.MappingNode {
		return fmt.Errorf("config %s:%d: top level must be a mapping of keys (name, data, model, train, ...)", path, doc.Line)
	}
	return walkKeys(doc, reflect.TypeOf(Config{}), "", path)
}

func walkKeys(n *yaml.Node, t reflect.Type, prefix, path string) error {
	fields := map[string]reflect.Type{}
	open := false // the struct keeps unknown keys (",remain"): the engine checks them
	for i := range t.NumField() {
		tag := t.Field(i).Tag.Get("mapstructure")
		switch {
		case tag == ",remain":
			open = true
		case tag != "" && tag != "-":
			fields[tag] = t.Field(i).Type
		}
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		kn, vn := n.Content[i], n.Content[i+1]
		key := prefix + kn.Value
		ft, ok := fields[kn.Value]
		if !ok && open {
			continue
		}
		if !ok {
			known := map[string]reflect.Type{}
			for k, tt := range fields {
				known[prefix+k] = tt
			}
			return fmt.Errorf("config %s:%d: unknown key %s%s", path, kn.Line, key, suggest(key, known))
		}
		switch {
		case ft.Kind() == reflect.Struct && vn.Kind == yaml.MappingNode:
			if err := walkKeys(vn, ft, key+".", path); err != nil {
				return err
			}
		case ft.Kind() == reflect.Struct && !(vn.Kind == yaml.ScalarNode && vn.Tag == "!!null"):
			return fmt.Errorf("config %s:%d: %s must be a mapping of keys, got %q", path, vn.Line, key, vn.Value)
		case ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct:
			if vn.Kind != yaml.SequenceNode {
				return fmt.Errorf("config %s:%d: %s must be a list", path, vn.Line, key)
			}
			for j, item := range vn.Content {
				if item.Kind != yaml.MappingNode {
					return fmt.Errorf("config %s:%d: %s[%d] must be a mapping (e.g. {type: dense, units: 10})", path, item.Line, key, j)
				}
				if err := walkKeys(item, ft.Elem(), fmt.Sprintf("%s[%d].", key, j), path); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// suggest returns " (did you mean K?)" for the closest known key, if close.
func suggest(key string, known map[string]reflect.Type) string {
	keys := make([]string, 0, len(known))
	for k := range known {
		keys = append(keys, k)
	}
	return Suggest(key, keys)
}

// Suggest returns " (did you mean X?)" for the known name closest to name
// (an edit distance below 4, else the shortest known name it is a prefix
// of: augment.rotation for augment.rotation_range), or "".
func Suggest(name string, known []string) string {
	ks := append([]string(nil), known...)
	sort.Strings(ks)
	best, bestD := "", 4
	for _, k := range ks {
		if d := levenshtein(name, k); d < bestD {
			best, bestD = k, d
		}
	}
	if best == "" {
		for _, k := range ks {
			if strings.HasPrefix(k, name) && (best == "" || len(k) < len(best)) {
				best = k
			}
		}
	}
	if best == "" {
		return ""
	}
	return " (did you mean " + best + "?)"
}

func levenshtein(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// setDefaults registers every leaf of d (a struct or nested map) as a viper
// default, so that env overrides reach every key.
func setDefaults(v *viper.Viper, d any) {
	m, ok := d.(map[string]any)
	if !ok {
		m = toMap(d)
	}
	var walk func(prefix string, m map[string]any)
	walk = func(prefix string, m map[string]any) {
		for k, val := range m {
			if sub, ok := val.(map[string]any); ok {
				walk(prefix+k+".", sub)
				continue
			}
			v.SetDefault(prefix+k, val)
		}
	}
	walk("", m)
}

// toMap converts a struct to a nested map keyed by its mapstructure tags.
func toMap(s any) map[string]any {
	var m map[string]any
	if err := mapstructure.Decode(s, &m); err != nil {
		panic(fmt.Sprintf("config: encode defaults: %v", err)) // programming error
	}
	for k, val := range m {
		rv := reflect.ValueOf(val)
		if rv.Kind() == reflect.Struct {
			m[k] = toMap(val)
		}
	}
	return m
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// DecodeArgs decodes the arguments of one engine component (a layer's or an
// optimiser's keys) into out, a pointer to a struct with mapstructure tags
// holding the defaults, as strictly as the rest of the config: an unknown
// key (with a "did you mean"), a wrong type or a fractional int is a
// KeyError under prefix (model.layers[3], train.optimizer). A single
// number is accepted where a list is wanted (kernel_size: 3), as Keras
// accepts an int for a tuple.
func DecodeArgs(in map[string]any, out any, prefix, what string) error {
	known := map[string]reflect.Type{}
	var collect func(t reflect.Type)
	collect = func(t reflect.Type) {
		for i := range t.NumField() {
			f := t.Field(i)
			switch tag := f.Tag.Get("mapstructure"); {
			case tag == ",squash":
				collect(f.Type) // an embedded struct's keys are the outer's
			case tag != "" && tag != "-" && f.IsExported():
				known[tag] = f.Type
			}
		}
	}
	collect(reflect.TypeOf(out).Elem())
	keys := make([]string, 0, len(in))
	for k := range in {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if _, ok := known[k]; !ok {
			names := make([]string, 0, len(known))
			for n := range known {
				names = append(names, n)
			}
			sort.Strings(names)
			return KeyErrorf(prefix+"."+k, "%s does not take %s%s (it takes: %s)", what, k, suggest(k, known), strings.Join(names, ", "))
		}
	}
	dc := &mapstructure.DecoderConfig{
		DecodeHook:       mapstructure.ComposeDecodeHookFunc(numericString, finite, strictScalars, scalarToSlice),
		WeaklyTypedInput: false,
		ErrorUnused:      true,
		Result:           out,
	}
	d, err := mapstructure.NewDecoder(dc)
	if err != nil {
		return err
	}
	for _, k := range keys {
		// One key at a time, so the error names it.
		if err := d.Decode(map[string]any{k: in[k]}); err != nil {
			return KeyErrorf(prefix+"."+k, "%s", strings.TrimPrefix(decodeError(err), k+": "))
		}
	}
	return nil
}

// numericString reads a number given as a string (--set k=inf arrives as
// the string "inf") into a float key, so that finite sees it.
func numericString(from, to reflect.Type, data any) (any, error) {
	if str, ok := data.(string); ok && (to.Kind() == reflect.Float32 || to.Kind() == reflect.Float64) {
		f, err := strconv.ParseFloat(strings.TrimSpace(str), 64)
		if err != nil {
			return nil, fmt.Errorf("want a number, got %q", str)
		}
		return f, nil
	}
	return data, nil
}

// finite rejects NaN and ±Inf, which YAML spells .nan and .inf.
func finite(from, to reflect.Type, data any) (any, error) {
	if f, ok := data.(float64); ok && (math.IsNaN(f) || math.IsInf(f, 0)) {
		return nil, fmt.Errorf("%v is not a finite number", f)
	}
	return data, nil
}

// scalarToSlice lets one value stand for a list (kernel_size: 3 → [3]).
func scalarToSlice(from, to reflect.Type, data any) (any, error) {
	if to.Kind() == reflect.Slice && from.Kind() != reflect.Slice && from.Kind() != reflect.Array && data != nil {
		return []any{data}, nil
	}
	return data, nil
}

// rawCallbacks takes train.callbacks from the YAML and --set as written:
// viper drops an empty mapping, and early_stopping: {} means "with Keras's
// defaults" there.
func rawCallbacks(root *yaml.Node, sets []string, cfg *Config) error {
	if len(root.Content) > 0 {
		var doc struct {
			Train struct {
				Callbacks map[string]any `yaml:"callbacks"`
			} `yaml:"train"`
		}
		if err := root.Content[0].Decode(&doc); err == nil && doc.Train.Callbacks != nil {
			cfg.Train.Callbacks = doc.Train.Callbacks
		}
	}
	for _, s := range sets {
		k, val, _ := strings.Cut(s, "=")
		k = strings.TrimSpace(k)
		if k != "train.callbacks" && !strings.HasPrefix(k, "train.callbacks.") {
			continue
		}
		var v any
		if err := yaml.Unmarshal([]byte(val), &v); err != nil {
			return fmt.Errorf("--set %s: not valid YAML: %s", k, oneLine(err.Error()))
		}
		if k == "train.callbacks" {
			m, ok := v.(map[string]any)
			if !ok && v != nil {
				return fmt.Errorf("--set train.callbacks: %v is not a mapping (e.g. {early_stopping: {patience: 3}})", v)
			}
			cfg.Train.Callbacks = m
			continue
		}
		if cfg.Train.Callbacks == nil {
			cfg.Train.Callbacks = map[string]any{}
		}
		m := cfg.Train.Callbacks
		path := strings.Split(strings.TrimPrefix(k, "train.callbacks."), ".")
		for _, p := range path[:len(path)-1] {
			sub, ok := m[p].(map[string]any)
			if !ok {
				sub = map[string]any{}
				m[p] = sub
			}
			m = sub
		}
		m[path[len(path)-1]] = v
	}
	return nil
}
