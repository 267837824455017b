// Package layoutspec turns a short, readable YAML description of a supply chain into a
// signed in-toto layout. It is pure: key files arrive as bytes, keyids are computed from
// them (never pasted), and the result is checked with the same parser the verifier uses.
//
// A description looks like this:
//
//	expires: 8760h            # or an RFC 3339 time
//	readme: build and ship the api
//	steps:
//	  - name: build
//	    functionaries: [keys/alice.pub]
//	    expected_command: go build ./...
//	    materials: [ALLOW src/*, DISALLOW *]
//	    products: [CREATE app, DISALLOW *]
//	inspections:
//	  - image: {from: build}  # the image must be build's "image" product
//	parameters: [VERSION]     # "{VERSION}" placeholders, filled in at verification
package layoutspec

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	"sigs.k8s.io/yaml"
)

// MaxSpecBytes bounds a description; real ones are a few KiB.
const MaxSpecBytes = 1 << 20

// Spec is a layout description as written.
type Spec struct {
	Expires     string           `json:"expires"`
	Readme      string           `json:"readme,omitempty"`
	Steps       []StepSpec       `json:"steps"`
	Inspections []InspectionSpec `json:"inspections,omitempty"`
	Parameters  []string         `json:"parameters,omitempty"`
}

// StepSpec is one step: who may perform it (public key files), how many must, and its
// artifact rules written as one string each ("MATCH foo WITH PRODUCTS FROM build").
type StepSpec struct {
	Name            string   `json:"name"`
	Threshold       int      `json:"threshold,omitempty"`
	Functionaries   []string `json:"functionaries"`
	ExpectedCommand Command  `json:"expected_command,omitempty"`
	Materials       []string `json:"materials,omitempty"`
	Products        []string `json:"products,omitempty"`
}

// InspectionSpec is either the image shorthand ({image: {from: STEP}}) or, with
// AllowInspections, a full inspection whose command in-toto-verify would run.
type InspectionSpec struct {
	Image     *ImageInspection `json:"image,omitempty"`
	Name      string           `json:"name,omitempty"`
	Run       Command          `json:"run,omitempty"`
	Materials []string         `json:"materials,omitempty"`
	Products  []string         `json:"products,omitempty"`
}

// ImageInspection binds the running image to a step's products. The verifier synthesizes
// the "image" inspection's artifacts: "image" (manifest or index digest) and "image-config".
type ImageInspection struct {
	// From is the step whose product "image" (recorded by `tollgate run --image-product
	// image=REF`) must equal the image's digest.
	From string `json:"from"`
	// Config additionally requires the step's product "image-config" to equal the config
	// digest.
	Config bool `json:"config,omitempty"`
}

// Command is a command line given either as a list or as one string, split as a POSIX
// shell (and Python's shlex) would.
type Command []string

// UnmarshalJSON accepts a string or a list of strings.
func (c *Command) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		words, err := splitCommand(s)
		if err != nil {
			return err
		}
		*c = words
		return nil
	}
	var list []string
	if err := json.Unmarshal(b, &list); err != nil {
		return fmt.Errorf("a command is a string or a list of strings")
	}
	*c = list
	return nil
}

// Parse reads a description. Unknown fields are errors, so a typo never silently drops a
// rule.
func Parse(data []byte) (*Spec, error) {
	if len(data) > MaxSpecBytes {
		return nil, fmt.Errorf("layout description is %d bytes, over the limit of %d", len(data), MaxSpecBytes)
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, fmt.Errorf("layout description is empty")
	}
	var s Spec
	if err := yaml.UnmarshalStrict(data, &s); err != nil {
		return nil, fmt.Errorf("layout description is not valid: %s", cleanYAMLError(err))
	}
	return &s, nil
}

// cleanYAMLError drops the library's "error converting YAML to JSON:" noise.
func cleanYAMLError(err error) string {
	msg := err.Error()
	for _, p := range []string{"error converting YAML to JSON: ", "error unmarshaling JSON: while decoding JSON: ", "error unmarshaling JSON: "} {
		msg = strings.TrimPrefix(msg, p)
	}
	return msg
}
