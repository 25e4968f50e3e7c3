package suggest

import "testing"

func TestClosest(t *testing.T) {
	opts := []string{"replicas", "zones", "stateless", "datastores"}
	cases := map[string]string{"replica": "replicas", "zone": "zones", "datastore": "datastores", "xyz": "", "": ""}
	for in, want := range cases {
		if got := Closest(in, opts); got != want {
			t.Errorf("Closest(%q) = %q, want %q", in, got, want)
		}
	}
	if h := Hint("replica", opts); h != `; did you mean "replicas"?` {
		t.Errorf("Hint = %q", h)
	}
}
