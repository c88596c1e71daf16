// Package schematest checks report.json files against the published JSON
// Schema, docs/report.schema.json. Only tests import it (the unit tests of
// harness/report and the e2e tests), so the validator stays out of the
// harness binary.
package schematest

import (
	"bytes"
	"fmt"
	"path/filepath"
	"runtime"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// Path is docs/report.schema.json in the checkout this package is in.
func Path() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "..", "docs", "report.schema.json")
}

var compiled = sync.OnceValues(func() (*jsonschema.Schema, error) {
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertFormat()
	s, err := c.Compile(Path())
	if err != nil {
		return nil, fmt.Errorf("compile %s: %w", Path(), err)
	}
	return s, nil
})

// Validate checks one report.json's bytes against the schema; the error
// names every place that does not conform.
func Validate(reportJSON []byte) error {
	s, err := compiled()
	if err != nil {
		return err
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(reportJSON))
	if err != nil {
		return fmt.Errorf("report.json is not JSON: %w", err)
	}
	return s.Validate(inst)
}
