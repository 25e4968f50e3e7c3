package main

import (
	"strings"
	"testing"
)

// TestReviewHTML: -o html writes the self-contained page, diagram included, for a model and for
// manifests imported on the fly; the exit code still follows --fail-on; other commands refuse it.
func TestReviewHTML(t *testing.T) {
	code, out, errOut := cli(t, "-o", "html", "review", broken)
	if code != 1 {
		t.Fatalf("exit %d, want 1 (legacy-shop has errors): %s", code, errOut)
	}
	for _, want := range []string{"<!DOCTYPE html>", "<title>faultline review: legacy-shop</title>", `<svg class="diagram`,
		`<g class="node datastore sev-error"><title>shopdb (mysql)`, "<b>2 of 2</b><span>entrypoints predicted below their SLO</span>",
		`<a href="docs/rules/single-point-of-failure.md">`, "legacy-shop.yaml:"} {
		if !strings.Contains(out, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if !strings.HasSuffix(out, "</html>\n") {
		t.Error("page is cut short")
	}
	code, out, _ = cli(t, "-q", "-o", "html", "review", "--fail-on", "none", "../../model/kube/testdata/shop")
	if code != 0 || !strings.Contains(out, `<svg class="diagram`) || !strings.Contains(out, "model/kube/testdata/shop/") {
		t.Errorf("imported manifests: exit %d", code)
	}
	if code, _, errOut := cli(t, "-o", "html", "model", "show", broken); code != 2 || !strings.Contains(errOut, "only for faultline review") {
		t.Errorf("html outside review: %d %s", code, errOut)
	}
	if code, _, errOut := cli(t, "-o", "html", "review", "--list-rules"); code != 2 || !strings.Contains(errOut, "--list-rules prints text, json or yaml") {
		t.Errorf("html --list-rules: %d %s", code, errOut)
	}
}
