// Package confmap reads one decoded YAML mapping strictly: typed getters that
// name the full key in one-line errors, and a final check that every key was
// used (with a "did you mean" suggestion for the unknown ones).
package confmap

import (
	"fmt"
	"math"
	"sort"
	"strings"

	"github.com/cifar-pipeline/cifar-pipeline/config"
)

// Map is a decoded YAML mapping under a dotted config path.
type Map struct {
	path string
	m    map[string]any
	used map[string]bool
}

// New wraps v (map[string]any or map[any]any as YAML decoders produce) found
// at path; it fails with a one-line error when v is not a mapping.
func New(path string, v any) (*Map, error) {
	m := map[string]any{}
	switch t := v.(type) {
	case map[string]any:
		for k, x := range t {
			m[k] = x
		}
	case map[any]any:
		for k, x := range t {
			ks, ok := k.(string)
			if !ok {
				return nil, fmt.Errorf("%s: key %v is not a string", path, k)
			}
			m[ks] = x
		}
	default:
		return nil, fmt.Errorf("%s: %v is not a mapping", path, v)
	}
	return &Map{path: path, m: m, used: map[string]bool{}}, nil
}

// Path is the dotted config path of key.
func (p *Map) Path(key string) string { return p.path + "." + key }

// Has reports whether key is present (and marks it used).
func (p *Map) Has(key string) bool {
	_, ok := p.m[key]
	p.used[key] = true
	return ok
}

// Raw returns key's value (nil when absent) and marks it used.
func (p *Map) Raw(key string) any {
	p.used[key] = true
	return p.m[key]
}

// Keys lists the mapping's keys in order.
func (p *Map) Keys() []string {
	ks := make([]string, 0, len(p.m))
	for k := range p.m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// Float returns key as a finite number; def is used when it is absent
// (nil def: the key is required).
func (p *Map) Float(key string, def *float64) (float64, error) {
	v, ok := p.m[key]
	p.used[key] = true
	if !ok || v == nil {
		if def == nil {
			return 0, fmt.Errorf("%s: missing (required)", p.Path(key))
		}
		return *def, nil
	}
	return Number(p.Path(key), v)
}

// Int returns key as an integer; def is used when it is absent (nil: required).
func (p *Map) Int(key string, def *int64) (int64, error) {
	v, ok := p.m[key]
	p.used[key] = true
	if !ok || v == nil {
		if def == nil {
			return 0, fmt.Errorf("%s: missing (required)", p.Path(key))
		}
		return *def, nil
	}
	return Integer(p.Path(key), v)
}

// Bool returns key as a boolean, def when absent.
func (p *Map) Bool(key string, def bool) (bool, error) {
	v, ok := p.m[key]
	p.used[key] = true
	if !ok || v == nil {
		return def, nil
	}
	b, isBool := v.(bool)
	if !isBool {
		return false, fmt.Errorf("%s: %v must be true or false", p.Path(key), v)
	}
	return b, nil
}

// String returns key as a string, def when absent.
func (p *Map) String(key, def string) (string, error) {
	v, ok := p.m[key]
	p.used[key] = true
	if !ok || v == nil {
		return def, nil
	}
	s, isStr := v.(string)
	if !isStr {
		return "", fmt.Errorf("%s: %v must be a string", p.Path(key), v)
	}
	return s, nil
}

// Done fails on the first key (sorted) that no getter asked for.
func (p *Map) Done() error {
	var known []string
	for k := range p.used {
		known = append(known, k)
	}
	for _, k := range p.Keys() {
		if !p.used[k] {
			hint := Suggest(k, known)
			if hint == "" {
				sort.Strings(known)
				hint = " (known keys: " + strings.Join(known, ", ") + ")"
			}
			return fmt.Errorf("%s: unknown key%s", p.Path(k), hint)
		}
	}
	return nil
}

// Number converts a decoded YAML scalar to a finite float64.
func Number(path string, v any) (float64, error) {
	var f float64
	switch t := v.(type) {
	case int:
		f = float64(t)
	case int64:
		f = float64(t)
	case int32:
		f = float64(t)
	case uint64:
		f = float64(t)
	case uint:
		f = float64(t)
	case float64:
		f = t
	case float32:
		f = float64(t)
	default:
		return 0, fmt.Errorf("%s: %v must be a number", path, v)
	}
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, fmt.Errorf("%s: %v must be a finite number", path, v)
	}
	return f, nil
}

// Integer converts a decoded YAML scalar to an int64; a float with a
// fractional part is refused.
func Integer(path string, v any) (int64, error) {
	switch t := v.(type) {
	case int:
		return int64(t), nil
	case int64:
		return t, nil
	case int32:
		return int64(t), nil
	case uint:
		return int64(t), nil
	case float64:
		if t == math.Trunc(t) && math.Abs(t) < 1<<53 {
			return int64(t), nil
		}
	}
	return 0, fmt.Errorf("%s: %v must be an integer", path, v)
}

// Suggest returns " (did you mean X?)" for the known name closest to name,
// as the rest of the config's errors suggest (config.Suggest).
func Suggest(name string, known []string) string { return config.Suggest(name, known) }
