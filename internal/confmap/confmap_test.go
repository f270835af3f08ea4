package confmap

import (
	"math"
	"strings"
	"testing"
)

func TestScalars(t *testing.T) {
	for _, c := range []struct {
		v    any
		want string // "" = accepted
	}{
		{3, ""}, {int64(3), ""}, {3.5, ""}, {float32(2), ""},
		{math.NaN(), "a.b: NaN must be a finite number"},
		{math.Inf(-1), "a.b: -Inf must be a finite number"},
		{"3", "a.b: 3 must be a number"}, {true, "a.b: true must be a number"}, {nil, "a.b: <nil> must be a number"},
	} {
		_, err := Number("a.b", c.v)
		if (err == nil) != (c.want == "") || (err != nil && err.Error() != c.want) {
			t.Errorf("Number(%v) = %v, want %q", c.v, err, c.want)
		}
	}
	for _, c := range []struct {
		v    any
		want int64
		ok   bool
	}{{4, 4, true}, {4.0, 4, true}, {4.5, 0, false}, {1e300, 0, false}, {"4", 0, false}} {
		n, err := Integer("k", c.v)
		if (err == nil) != c.ok || n != c.want {
			t.Errorf("Integer(%v) = %d, %v", c.v, n, err)
		}
	}
}

func TestMap(t *testing.T) {
	if _, err := New("x", 5); err == nil || err.Error() != "x: 5 is not a mapping" {
		t.Errorf("New(5): %v", err)
	}
	if _, err := New("x", map[any]any{1: 2}); err == nil || err.Error() != "x: key 1 is not a string" {
		t.Errorf("New(int key): %v", err)
	}
	p, err := New("x", map[any]any{"patience": 2, "patient": 3, "zzz": 1})
	if err != nil {
		t.Fatal(err)
	}
	if n, err := p.Int("patience", nil); n != 2 || err != nil {
		t.Fatal(n, err)
	}
	if _, err := p.Float("factor", nil); err == nil || err.Error() != "x.factor: missing (required)" {
		t.Errorf("missing: %v", err)
	}
	if err := p.Done(); err == nil || err.Error() != "x.patient: unknown key (did you mean patience?)" {
		t.Errorf("Done: %v", err)
	}
	p.Raw("patient")
	if err := p.Done(); err == nil || !strings.HasPrefix(err.Error(), "x.zzz: unknown key (known keys: factor, patience, patient)") {
		t.Errorf("Done: %v", err)
	}
}
