package compose

import (
	"bytes"
	"slices"

	"go.yaml.in/yaml/v3"

	"github.com/faultline-dev/faultline/model"
)

// LooksLikeCompose reports whether data looks like a compose file: a top-level services: mapping
// whose entries are mappings with compose service attributes (image, build, ports, deploy...), or
// a top-level include: list, and no apiVersion or kind. It reads at most the first YAML document and never fails; used to pick an
// importer for --from auto.
func LooksLikeCompose(data []byte) bool {
	if len(data) > model.MaxInputSize {
		return false
	}
	if _, ok := model.CheckText("", data); !ok {
		return false
	}
	var doc yaml.Node
	if err := yaml.NewDecoder(bytes.NewReader(data)).Decode(&doc); err != nil {
		return false
	}
	if len(doc.Content) == 0 {
		return false
	}
	root := deref(doc.Content[0])
	if root == nil || root.Kind != yaml.MappingNode {
		return false
	}
	if k, _ := get(root, "apiVersion"); k != nil {
		return false
	}
	if k, _ := get(root, "kind"); k != nil {
		return false
	}
	if _, inc := get(root, "include"); inc != nil && inc.Kind == yaml.SequenceNode {
		return true
	}
	_, services := get(root, "services")
	if services == nil || services.Kind != yaml.MappingNode {
		return false
	}
	// Any attribute the compose schema allows on a service tells a compose file from a faultline
	// model (whose services: is a list) or another YAML file.
	known := knownAttributes([]string{"services", "x"})
	for i := 1; i < len(services.Content); i += 2 {
		svc := deref(services.Content[i])
		if svc == nil || svc.Kind != yaml.MappingNode {
			continue
		}
		for j := 0; j+1 < len(svc.Content); j += 2 {
			if _, ok := slices.BinarySearch(known, svc.Content[j].Value); ok {
				return true
			}
			if svc.Content[j].Tag == "!!merge" {
				// An anchor merged in (<<: *defaults) usually carries the image or restart policy.
				return true
			}
		}
	}
	return false
}
