// Package ciexample reads the shell steps of the CI examples in
// examples/ci, so that tests can run exactly the harness commands the
// examples show: harness/ci_examples_test.go checks that every one of them
// is a step the end-to-end test runs, and harness/e2e/shards_test.go runs
// them (build once, compare in shards, merge).
package ciexample

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Dir is where the examples are, from the checkout's top.
const Dir = "examples/ci"

// Files are the examples whose harness commands make test runs, and their
// engines.
var Files = map[string]string{
	"github-actions.yml": "github",
	"gitlab-ci.yml":      "gitlab",
}

// TestOverrides are the values the end-to-end test gives the examples'
// own variables, the only change it makes to their commands: one run per
// kernel and shard, 45 s of stress per run, TCG (this test machine has no
// KVM) and one VM per shard (two shards share its 2 cores). Every example
// defines each of these variables.
var TestOverrides = map[string]string{
	"RUNS":        "1",
	"DURATION":    "45s",
	"SHARD_FLAGS": "--accel tcg --jobs 1",
}

// Example is one CI example file.
type Example struct {
	File    string
	Engine  string            // github or gitlab
	Vars    map[string]string // GitHub's top-level env, GitLab's variables
	Scripts []Script
}

// Script is one shell step: a GitHub step's run, or one line of a GitLab
// job's script.
type Script struct {
	File, Engine, Job string
	Text              string   // as written
	Harness           []string // the bin/harness commands it runs, in order
	Make              []string // the make targets it runs
}

var (
	harnessCmd = regexp.MustCompile(`bin/harness\s+([a-z][a-z-]*)`)
	makeCmd    = regexp.MustCompile(`(?:^|[\s;&|(])make\s+(?:-\S+\s+)*([a-z][\w-]*)`)
	outFlag    = regexp.MustCompile(`--out\s+("[^"]*"|'[^']*'|[^\s;|&]+)`)
	expr       = regexp.MustCompile(`\$\{\{\s*([^}]*?)\s*\}\}`)
)

// Load reads every example in Files under root (the checkout).
func Load(root string) ([]Example, error) {
	var out []Example
	for _, f := range slices.Sorted(maps.Keys(Files)) {
		e, err := load(filepath.Join(root, Dir, f), Files[f])
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, nil
}

func load(path, engine string) (Example, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Example{}, err
	}
	var doc map[string]any
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return Example{}, fmt.Errorf("%s is not valid YAML: %v", path, err)
	}
	e := Example{File: filepath.Base(path), Engine: engine, Vars: map[string]string{}}
	add := func(job, text string) {
		s := Script{File: e.File, Engine: engine, Job: job, Text: text}
		for _, m := range harnessCmd.FindAllStringSubmatch(text, -1) {
			s.Harness = append(s.Harness, m[1])
		}
		for _, m := range makeCmd.FindAllStringSubmatch(text, -1) {
			s.Make = append(s.Make, m[1])
		}
		e.Scripts = append(e.Scripts, s)
	}
	vars := "variables"
	if engine == "github" {
		vars = "env"
	}
	if m, ok := doc[vars].(map[string]any); ok {
		for k, v := range m {
			e.Vars[k] = fmt.Sprint(v)
		}
	}
	switch engine {
	case "github":
		jobs, _ := doc["jobs"].(map[string]any)
		for _, name := range slices.Sorted(maps.Keys(jobs)) {
			job, _ := jobs[name].(map[string]any)
			steps, _ := job["steps"].([]any)
			for _, st := range steps {
				step, _ := st.(map[string]any)
				if run, ok := step["run"].(string); ok {
					add(name, run)
				}
			}
		}
	case "gitlab":
		for _, name := range slices.Sorted(maps.Keys(doc)) {
			job, ok := doc[name].(map[string]any)
			if !ok {
				continue
			}
			for _, key := range []string{"before_script", "script", "after_script"} {
				lines, _ := job[key].([]any)
				for _, l := range lines {
					if s, ok := l.(string); ok {
						add(name, s)
					}
				}
			}
		}
	}
	// A command anywhere else in the file would be one nobody runs.
	for _, word := range []string{"bin/harness", "make "} {
		inScripts := 0
		for _, s := range e.Scripts {
			inScripts += strings.Count(s.Text, word)
		}
		if all := countInStrings(doc, word); all != inScripts {
			return e, fmt.Errorf("%s: %q appears %d times in its values but %d times in run steps or scripts: put commands only in steps", path, word, all, inScripts)
		}
	}
	return e, nil
}

// countInStrings counts word in every string of a YAML document, keys
// included.
func countInStrings(v any, word string) int {
	switch v := v.(type) {
	case string:
		return strings.Count(v, word)
	case map[string]any:
		n := 0
		for k, x := range v {
			n += strings.Count(k, word) + countInStrings(x, word)
		}
		return n
	case []any:
		n := 0
		for _, x := range v {
			n += countInStrings(x, word)
		}
		return n
	}
	return 0
}

// Plan is what the end-to-end test runs: the one build script (every
// example builds the same way), every compare script as one shard (shard
// i+1), and every merge script.
type Plan struct {
	Build  Script
	Shards []Script
	Merges []Script
}

// PlanOf sorts the examples' harness scripts into a Plan. A script that
// runs a harness command the plan has no place for is an error: make test
// would not run it.
func PlanOf(examples []Example) (Plan, error) {
	var p Plan
	var builds []Script
	for _, e := range examples {
		for _, s := range e.Scripts {
			if len(s.Harness) == 0 {
				continue
			}
			if len(s.Harness) > 1 {
				return p, fmt.Errorf("%s, job %s: one step runs %d harness commands (%s): give each its own step, so that make test can run it as the example does", s.File, s.Job, len(s.Harness), strings.Join(s.Harness, ", "))
			}
			switch {
			case s.Harness[0] == "build" && strings.Contains(s.Text, "--export"):
				builds = append(builds, s)
			case s.Harness[0] == "compare" && strings.Contains(s.Text, "--kernels"):
				p.Shards = append(p.Shards, s)
			case s.Harness[0] == "merge":
				p.Merges = append(p.Merges, s)
			default:
				return p, fmt.Errorf("%s, job %s runs %q, which no end-to-end test runs: make test runs only 'build --export', 'compare --kernels' and 'merge' from the examples (harness/e2e/shards_test.go); add a test that runs it, or leave it out", s.File, s.Job, strings.TrimSpace(s.Text))
			}
		}
	}
	if len(builds) == 0 || len(p.Shards) == 0 || len(p.Merges) == 0 {
		return p, fmt.Errorf("the examples have %d build --export, %d compare --kernels and %d merge steps: each needs at least one", len(builds), len(p.Shards), len(p.Merges))
	}
	for _, b := range builds[1:] {
		if strings.TrimSpace(b.Text) != strings.TrimSpace(builds[0].Text) {
			return p, fmt.Errorf("%s builds with %q but %s with %q: make test runs one build, so the examples must build alike", b.File, b.Text, builds[0].File, builds[0].Text)
		}
	}
	p.Build = builds[0]
	for _, s := range append(append([]Script{p.Build}, p.Shards...), p.Merges...) {
		if _, err := s.Shell(1); err != nil {
			return p, err
		}
	}
	return p, nil
}

// Shell is the script as the engine hands it to the shell, for shard
// (GitHub's ${{ matrix.shard }}); any other ${{ }} expression is an error.
func (s Script) Shell(shard int) (string, error) {
	var bad []string
	out := expr.ReplaceAllStringFunc(s.Text, func(m string) string {
		if e := expr.FindStringSubmatch(m)[1]; e == "matrix.shard" {
			return strconv.Itoa(shard)
		}
		bad = append(bad, m)
		return m
	})
	if len(bad) > 0 {
		return "", fmt.Errorf("%s, job %s: %s cannot be evaluated outside GitHub: use an env variable in commands", s.File, s.Job, strings.Join(bad, ", "))
	}
	return out, nil
}

// Env is what the engine puts in the environment for shard: GitLab's
// CI_NODE_INDEX (1-based, as parallel: gives it).
func (s Script) Env(shard int) []string {
	if s.Engine == "gitlab" {
		return []string{"CI_NODE_INDEX=" + strconv.Itoa(shard)}
	}
	return nil
}

// Out is the script's --out directory for shard, its variables expanded
// from env ("" if it has none).
func (s Script) Out(shard int, env map[string]string) string {
	text, err := s.Shell(shard)
	if err != nil {
		return ""
	}
	m := outFlag.FindStringSubmatch(text)
	if m == nil {
		return ""
	}
	v := strings.Trim(m[1], `"'`)
	vars := maps.Clone(env)
	if vars == nil {
		vars = map[string]string{}
	}
	for _, kv := range s.Env(shard) {
		k, x, _ := strings.Cut(kv, "=")
		vars[k] = x
	}
	return os.Expand(v, func(k string) string { return vars[k] })
}
