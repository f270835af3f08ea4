package report

import (
	"fmt"
	"strings"
)

// CardFile is one model file of a run, as the model card lists it.
type CardFile struct {
	// Name is the file's name in the run directory.
	Name string
	// Load says how to load it (a Python or command line).
	Load string
}

// writeFiles renders the card's "Model files" section, inputs under it.
func writeFiles(b *strings.Builder, files []CardFile, inputs string) {
	if len(files) == 0 {
		return
	}
	b.WriteString("## Model files\n\n| File | Load with |\n|---|---|\n")
	for _, f := range files {
		fmt.Fprintf(b, "| `%s` | `%s` |\n", f.Name, f.Load)
	}
	b.WriteString("\n")
	if inputs != "" {
		fmt.Fprintf(b, "%s\n\n", inputs)
	}
}
