package config

import (
	"errors"
	"fmt"
	"strings"

	"gopkg.in/yaml.v3"
)

// Source locates keys in the file a Config was loaded from, so that errors
// found after loading (by the engine's layer and optimizer registries) can
// name the line.
type Source struct {
	// Path is the config file.
	Path  string
	lines map[string]int // dotted key (model.layers[3].units) → line
}

// Line returns the line of key in the file, else of the nearest enclosing
// key that has one, else 0.
func (s Source) Line(key string) int {
	for key != "" {
		if n, ok := s.lines[key]; ok {
			return n
		}
		i := strings.LastIndexAny(key, ".[")
		if i < 0 {
			break
		}
		key = key[:i]
	}
	return 0
}

// Wrap turns an error about this config into one line naming the file and,
// when err carries a KeyError, the key's line: "config c.yaml:12: ...".
func (s Source) Wrap(err error) error {
	if err == nil {
		return nil
	}
	var ke *KeyError
	if errors.As(err, &ke) {
		if n := s.Line(ke.Key); n > 0 {
			return fmt.Errorf("config %s:%d: %w", s.Path, n, err)
		}
	}
	return fmt.Errorf("config %s: %w", s.Path, err)
}

// KeyError is an invalid value at a config key (dotted, with list
// indices: model.layers[3].units).
type KeyError struct {
	Key string
	Err error
}

func (e *KeyError) Error() string { return e.Key + ": " + e.Err.Error() }
func (e *KeyError) Unwrap() error { return e.Err }

// KeyErrorf returns a KeyError for key with a formatted message.
func KeyErrorf(key, format string, args ...any) error {
	return &KeyError{Key: key, Err: fmt.Errorf(format, args...)}
}

// recordLines walks the YAML document and records the line of every key.
func recordLines(n *yaml.Node, prefix string, lines map[string]int) {
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			recordLines(c, prefix, lines)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			key := n.Content[i].Value
			if prefix != "" {
				key = prefix + "." + key
			}
			lines[key] = n.Content[i].Line
			recordLines(n.Content[i+1], key, lines)
		}
	case yaml.SequenceNode:
		for j, c := range n.Content {
			key := fmt.Sprintf("%s[%d]", prefix, j)
			lines[key] = c.Line
			recordLines(c, key, lines)
		}
	}
}
