package model

import (
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"unicode/utf8"
)

// MaxInputSize is the largest file faultline reads as a model, compose file or manifest. Real
// architecture files are kilobytes; anything this large is almost certainly not one.
const MaxInputSize = 16 << 20

// ReadInput reads a text input file, refusing directories, files over MaxInputSize and binary data
// with an error that names the file.
func ReadInput(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, Problems{{File: path, Message: describeOpenError(err)}}
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, Problems{{File: path, Message: err.Error()}}
	}
	if st.IsDir() {
		return nil, Problems{{File: path, Message: "is a directory; expected a file"}}
	}
	if st.Size() > MaxInputSize {
		return nil, Problems{{File: path, Message: fmt.Sprintf("file is %s, larger than the %s limit for an input file", humanBytes(st.Size()), humanBytes(MaxInputSize))}}
	}
	data, err := io.ReadAll(io.LimitReader(f, MaxInputSize+1))
	if err != nil {
		return nil, Problems{{File: path, Message: "read: " + err.Error()}}
	}
	if len(data) > MaxInputSize {
		return nil, Problems{{File: path, Message: fmt.Sprintf("file is larger than the %s limit for an input file", humanBytes(MaxInputSize))}}
	}
	if p, ok := CheckText(path, data); !ok {
		return nil, Problems{p}
	}
	return data, nil
}

// CheckText reports whether data looks like text (UTF-8 without NUL bytes), and if not, a problem
// naming the first offending line.
func CheckText(file string, data []byte) (Problem, bool) {
	if i := bytes.IndexByte(data, 0); i >= 0 {
		return Problem{File: file, Line: 1 + bytes.Count(data[:i], []byte{'\n'}), Message: "binary data (NUL byte); expected a YAML or JSON text file"}, false
	}
	if !utf8.Valid(data) {
		i := 0
		for i < len(data) {
			r, n := utf8.DecodeRune(data[i:])
			if r == utf8.RuneError && n <= 1 {
				break
			}
			i += n
		}
		return Problem{File: file, Line: 1 + bytes.Count(data[:i], []byte{'\n'}), Message: "invalid UTF-8; expected a YAML or JSON text file"}, false
	}
	return Problem{}, true
}

func describeOpenError(err error) string {
	switch {
	case os.IsNotExist(err):
		return "no such file or directory"
	case os.IsPermission(err):
		return "permission denied"
	}
	return err.Error()
}

func humanBytes(n int64) string {
	const mib = 1 << 20
	if n >= mib {
		return fmt.Sprintf("%.1f MiB", float64(n)/mib)
	}
	return fmt.Sprintf("%d bytes", n)
}

// ExpandPaths turns files and directories into a sorted list of files. Directories are walked
// recursively and contribute the files for which keep returns true; hidden directories are skipped.
// Files named explicitly are always kept. A directory that contributes nothing is an error.
func ExpandPaths(paths []string, keep func(name string) bool) ([]string, error) {
	var out []string
	var probs Problems
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			probs = append(probs, Problem{File: p, Message: describeOpenError(err)})
			continue
		}
		if !st.IsDir() {
			out = append(out, p)
			continue
		}
		var found []string
		err = filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				probs = append(probs, Problem{File: path, Message: describeOpenError(err)})
				return nil
			}
			if d.IsDir() {
				if path != p && strings.HasPrefix(d.Name(), ".") {
					return filepath.SkipDir
				}
				return nil
			}
			if keep(d.Name()) {
				found = append(found, path)
			}
			return nil
		})
		if err != nil {
			probs = append(probs, Problem{File: p, Message: err.Error()})
		}
		if len(found) == 0 {
			probs = append(probs, Problem{File: p, Message: "directory holds no files faultline can read (expected .yaml, .yml or .json)"})
		}
		sort.Strings(found)
		out = append(out, found...)
	}
	return out, probs.Err()
}

// IsYAMLName reports whether a file name has a YAML or JSON extension.
func IsYAMLName(name string) bool {
	switch strings.ToLower(filepath.Ext(name)) {
	case ".yaml", ".yml", ".json":
		return true
	}
	return false
}
