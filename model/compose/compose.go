package compose

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"

	"github.com/compose-spec/compose-go/v2/dotenv"
	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/template"
	"github.com/compose-spec/compose-go/v2/types"
	"go.yaml.in/yaml/v3"

	"github.com/faultline-dev/faultline/model"
)

// Options control an import.
type Options struct {
	// Profiles are the active profiles, as with `docker compose --profile`. Services that declare
	// profiles are imported only when one of them is active; "*" activates all.
	Profiles []string
	// Env holds the variables used for interpolation. nil means compose's own behaviour: the process
	// environment, plus a .env file next to the first compose file for variables the process does
	// not set.
	Env map[string]string
	// Name is the system name. Default: the compose project name (the top-level name: field, or the
	// name of the first file's directory).
	Name string
}

// Import reads one or more compose files, merged in order like `docker compose -f a.yaml -f
// b.yaml`, and returns the system. Errors in the input come back as model.Problems.
func Import(ctx context.Context, files []string, opts Options) (sys *model.System, err error) {
	if len(files) == 0 {
		return nil, model.Problems{{Message: "no compose file given"}}
	}
	defer func() {
		// compose-go is a large third-party parser; whatever it does with odd input, the caller gets
		// a located error instead of a crash.
		if r := recover(); r != nil {
			sys = nil
			err = model.Problems{{File: files[0], Message: fmt.Sprintf("compose loader failed: %v (please report this input: %s)", r, firstLine(string(debug.Stack())))}}
		}
	}()
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	set, probs := readFiles(files)
	if len(probs) > 0 {
		return nil, probs
	}
	env, probs := environment(set, opts.Env)
	if len(probs) > 0 {
		return nil, probs
	}
	if probs := set.checkReferences(env); len(probs) > 0 {
		return nil, probs
	}
	warnings := set.missingVariables(env)

	project, err := set.load(ctx, env, opts)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, set.problems(err)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	name := opts.Name
	if name == "" {
		name = project.Name
	}
	im := newImporter(set, project, name, env)
	for _, w := range warnings {
		im.b.Warn(w)
	}
	im.run()
	return im.b.System(append([]string(nil), files...)), nil
}

// load runs compose-go over the files already read and checked.
func (s *fileSet) load(ctx context.Context, env map[string]string, opts Options) (*types.Project, error) {
	cfgs := make([]types.ConfigFile, len(s.files))
	for i, f := range s.files {
		cfgs[i] = types.ConfigFile{Filename: f.abs, Content: withoutVersion(f)}
	}
	details := types.ConfigDetails{
		WorkingDir:  filepath.Dir(s.files[0].abs),
		ConfigFiles: cfgs,
		Environment: types.Mapping(cloneEnv(env)),
	}
	projectName, explicit := loader.NormalizeProjectName(opts.Name), true
	if projectName == "" {
		projectName, explicit = loader.NormalizeProjectName(filepath.Base(details.WorkingDir)), false
	}
	if projectName == "" {
		projectName = "compose"
	}
	return loader.LoadWithContext(ctx, details, func(o *loader.Options) {
		o.SetProjectName(projectName, explicit)
		o.Profiles = opts.Profiles
		if o.Interpolate != nil {
			ip := *o.Interpolate
			// The missing-variable warnings are produced with file and line by missingVariables;
			// compose-go's own would go to the global logger.
			ip.Substitute = func(s string, m template.Mapping) (string, error) {
				return template.SubstituteWithOptions(s, m, template.WithoutLogging)
			}
			o.Interpolate = &ip
		}
	})
}

// withoutVersion returns the file's content with a top-level `version: "3"` line turned into a
// comment of the same length (so every line number stays the same). compose ignores the attribute
// but compose-go says so on the process-wide logger, which would print into faultline's output.
func withoutVersion(f *file) []byte {
	if len(f.docs) != 1 {
		return f.data
	}
	root := f.docs[0]
	k, v := get(root, "version")
	if k == nil || v == nil || root.Style&yaml.FlowStyle != 0 || k.Column != 1 || v.Kind != yaml.ScalarNode ||
		v.Line != k.Line || v.Style&(yaml.LiteralStyle|yaml.FoldedStyle) != 0 || strings.ContainsAny(v.Value, "\n\r") {
		return f.data
	}
	lines := bytes.SplitAfter(f.data, []byte("\n"))
	if k.Line-1 >= len(lines) {
		return f.data
	}
	line := lines[k.Line-1]
	start := 0
	if k.Line == 1 && bytes.HasPrefix(line, []byte("\xef\xbb\xbf")) {
		start = 3 // keep the byte order mark
	}
	if !bytes.HasPrefix(line[start:], []byte("version")) {
		return f.data
	}
	// The value must end on this line: the next line starts at column 1 or is blank.
	if k.Line < len(lines) {
		next := lines[k.Line]
		if len(next) > 0 && (next[0] == ' ' || next[0] == '\t') && len(bytes.TrimSpace(next)) > 0 {
			return f.data
		}
	}
	out := make([]byte, 0, len(f.data))
	for i, l := range lines {
		if i == k.Line-1 {
			body := bytes.TrimRight(l, "\r\n")
			blank := append([]byte(nil), body[:start]...)
			blank = append(blank, '#')
			blank = append(blank, bytes.Repeat([]byte(" "), len(body)-start-1)...)
			l = append(blank, l[len(body):]...)
		}
		out = append(out, l...)
	}
	return out
}

// environment returns the interpolation variables: the caller's, or the process environment with
// the project's .env file under it.
func environment(s *fileSet, given map[string]string) (map[string]string, model.Problems) {
	if given != nil {
		return given, nil
	}
	env := map[string]string{}
	for _, kv := range os.Environ() {
		if k, v, ok := strings.Cut(kv, "="); ok {
			env[k] = v
		}
	}
	path := filepath.Join(filepath.Dir(s.files[0].path), ".env")
	st, err := os.Stat(path)
	if err != nil || st.IsDir() {
		return env, nil
	}
	data, err := model.ReadInput(path)
	if err != nil {
		return nil, asProblems(path, err)
	}
	vars, err := dotenv.ParseWithLookup(strings.NewReader(string(data)), func(k string) (string, bool) {
		v, ok := env[k]
		return v, ok
	})
	if err != nil {
		p := model.Problem{File: path, Message: "invalid env file: " + err.Error()}
		p.Line = lineInMessage(err.Error())
		return nil, model.Problems{p}
	}
	for k, v := range vars {
		if _, set := env[k]; !set {
			env[k] = v
		}
	}
	return env, nil
}

func cloneEnv(env map[string]string) map[string]string {
	out := make(map[string]string, len(env))
	for k, v := range env {
		out[k] = v
	}
	return out
}

func firstLine(s string) string {
	// The first frames of the stack name the goroutine; the panicking function is a few lines down.
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		if strings.HasPrefix(l, "panic(") && i+2 < len(lines) {
			return strings.TrimSpace(lines[i+2])
		}
	}
	return ""
}
