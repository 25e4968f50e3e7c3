// Package testkit holds what faultline's tests share across packages: generated systems of any size.
package testkit

import (
	"fmt"
	"strings"
)

// LayeredSystem builds a layered system of n services and about m sync edges (each service calls
// services in the next layers), plus a datastore per ten services. Tests and benchmarks use it
// to measure faultline on systems far larger than the examples.
func LayeredSystem(n, m int) []byte {
	var b strings.Builder
	b.WriteString("apiVersion: faultline/v1\nkind: System\nmetadata: {name: generated}\nslo: {availability: 0.999}\nservices:\n")
	const layers = 10
	per := n / layers
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "  - name: svc-%d\n    replicas: %d\n    zones: [a, b]\n", i, 1+i%3)
		if i%10 == 0 {
			fmt.Fprintf(&b, "    datastores: [db-%d]\n", i/10)
		}
	}
	b.WriteString("datastores:\n")
	for i := 0; i < n; i += 10 {
		fmt.Fprintf(&b, "  - {name: db-%d, kind: postgres, replicas: 2}\n", i/10)
	}
	b.WriteString("edges:\n")
	edges := 0
	for k := 1; edges < m; k++ {
		for i := 0; i < n-per && edges < m; i++ {
			to := (i/per+1)*per + (i*7+k*13)%per
			if to >= n {
				continue
			}
			fmt.Fprintf(&b, "  - from: svc-%d\n    to: svc-%d\n    protocol: http\n    policy: {timeout: %dms, retry: {attempts: %d, backoff: exponential}}\n", i, to, 100+k, 1+k%3)
			edges++
		}
		if k > m {
			break
		}
	}
	b.WriteString("entrypoints:\n")
	for i := 0; i < per; i += max(1, per/5) {
		fmt.Fprintf(&b, "  - {name: ep-%d, service: svc-%d, rps: 100}\n", i, i)
	}
	return []byte(b.String())
}
