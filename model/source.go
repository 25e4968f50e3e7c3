package model

import (
	"fmt"
	"strings"
)

// Source is where a model element came from: a file and line, or trace IDs for elements observed in
// traces. Findings point at it.
type Source struct {
	File   string `json:"file,omitempty"`
	Line   int    `json:"line,omitempty"`
	Column int    `json:"column,omitempty"`
	// Traces holds the IDs of traces an observed element was seen in.
	Traces []string `json:"traces,omitempty"`
}

// IsZero reports whether s says nothing.
func (s Source) IsZero() bool { return s.File == "" && s.Line == 0 && len(s.Traces) == 0 }

// String formats s as file:line (file alone, or "trace ID" when that is all there is).
func (s Source) String() string {
	switch {
	case s.File != "" && s.Line > 0:
		return fmt.Sprintf("%s:%d", s.File, s.Line)
	case s.File != "":
		return s.File
	case len(s.Traces) > 0:
		return "trace " + strings.Join(s.Traces, ",")
	}
	return ""
}

// Problem is one thing wrong with an input: where it is, which field, and what was expected.
type Problem struct {
	File    string `json:"file,omitempty"`
	Line    int    `json:"line,omitempty"`
	Column  int    `json:"column,omitempty"`
	Field   string `json:"field,omitempty"`
	Message string `json:"message"`
}

// String formats p on one line: "file:line:col: field: message".
func (p Problem) String() string {
	var b strings.Builder
	if p.File != "" {
		b.WriteString(p.File)
		if p.Line > 0 {
			fmt.Fprintf(&b, ":%d", p.Line)
			if p.Column > 0 {
				fmt.Fprintf(&b, ":%d", p.Column)
			}
		}
		b.WriteString(": ")
	}
	if p.Field != "" {
		b.WriteString(p.Field)
		b.WriteString(": ")
	}
	b.WriteString(p.Message)
	return b.String()
}

// Problems is a list of input problems reported together. It is the error type every faultline
// reader returns for bad input; errors.As finds it through wrapping.
type Problems []Problem

// Error lists the problems, one per line.
func (ps Problems) Error() string {
	lines := make([]string, len(ps))
	for i, p := range ps {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// Err returns ps as an error, or nil when it is empty.
func (ps Problems) Err() error {
	if len(ps) == 0 {
		return nil
	}
	return ps
}

// At builds a Problem at a source location.
func At(src Source, field, format string, args ...any) Problem {
	return Problem{File: src.File, Line: src.Line, Column: src.Column, Field: field, Message: fmt.Sprintf(format, args...)}
}
