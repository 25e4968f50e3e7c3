// Package suggest finds the known word closest to a misspelt one, for "did you mean" hints.
package suggest

import "strings"

// Closest returns the option nearest to word by edit distance, or "" when none is near enough
// (more than a third of the word's length away).
func Closest(word string, options []string) string {
	best, bestD := "", -1
	lw := strings.ToLower(word)
	for _, o := range options {
		if d := distance(lw, strings.ToLower(o)); bestD < 0 || d < bestD {
			best, bestD = o, d
		}
	}
	if bestD < 0 || bestD > max(1, len(word)/3) {
		return ""
	}
	return best
}

// Hint formats Closest as a sentence suffix: `; did you mean "x"?`, or "" without a match.
func Hint(word string, options []string) string {
	if c := Closest(word, options); c != "" && c != word {
		return `; did you mean "` + c + `"?`
	}
	return ""
}

// distance is the Levenshtein edit distance.
func distance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}
