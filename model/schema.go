package model

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"sync"

	invschema "github.com/invopop/jsonschema"
	"github.com/santhosh-tekuri/jsonschema/v6"
)

// SchemaID is the identifier of the model's JSON Schema.
const SchemaID = "https://faultline.dev/schema/faultline-v1.json"

// durationPattern matches Go duration text, the form every duration field takes.
const durationPattern = `^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$|^0$`

var (
	schemaOnce     sync.Once
	schemaJSON     []byte
	schemaCompiled *jsonschema.Schema
	schemaErr      error
)

// Schema returns the JSON Schema (draft 2020-12) of the model, generated from the Go types so the
// two cannot drift apart. Editors use it through a yaml-language-server comment (see docs/model.md).
func Schema() []byte {
	initSchema()
	return schemaJSON
}

func compiledSchema() (*jsonschema.Schema, error) {
	initSchema()
	return schemaCompiled, schemaErr
}

func initSchema() {
	schemaOnce.Do(func() {
		r := &invschema.Reflector{
			ExpandedStruct: true,
			Mapper: func(t reflect.Type) *invschema.Schema {
				if t == reflect.TypeFor[Duration]() {
					return &invschema.Schema{
						Type:        "string",
						Pattern:     durationPattern,
						Description: "A duration such as 500ms, 2s or 1m30s.",
					}
				}
				return nil
			},
		}
		s := r.Reflect(&System{})
		s.ID = SchemaID
		s.Title = "faultline system model"
		s.Description = "A distributed system's services, datastores, brokers, edges, entrypoints and SLO (apiVersion faultline/v1)."
		raw, err := json.MarshalIndent(s, "", "  ")
		if err != nil {
			schemaErr = fmt.Errorf("generate model schema: %w", err)
			return
		}
		schemaJSON = append(raw, '\n')
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
		if err != nil {
			schemaErr = fmt.Errorf("read generated model schema: %w", err)
			return
		}
		c := jsonschema.NewCompiler()
		if err := c.AddResource(SchemaID, doc); err != nil {
			schemaErr = fmt.Errorf("add model schema: %w", err)
			return
		}
		schemaCompiled, schemaErr = c.Compile(SchemaID)
	})
}
