//go:build !race

package chaos

import "testing"

// TestThousandConnectionsWhileToxicsChange is the acceptance check: 1,000 concurrent
// connections through one proxy while toxics change, then no deadlock and no leak. It needs more
// goroutines than the race detector allows, so it runs only without -race.
func TestThousandConnectionsWhileToxicsChange(t *testing.T) { testConcurrentTraffic(t, 1000) }
