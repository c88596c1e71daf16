package main

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// The CI examples in examples/ci are documentation people copy: they must
// parse, have the shape their engine needs (build, N compare shards,
// merge), and call the harness only with commands and flags it has.

const examplesDir = "../examples/ci"

func readYAML(t *testing.T, name string) (map[string]any, string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(examplesDir, name))
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatalf("%s is not valid YAML: %v", name, err)
	}
	return doc, string(b)
}

// path walks nested maps and lists by key or index ("0").
func path(t *testing.T, doc any, keys ...string) any {
	t.Helper()
	cur := doc
	for i, k := range keys {
		switch c := cur.(type) {
		case map[string]any:
			cur = c[k]
		case []any:
			idx := slices.IndexFunc([]string{"0", "1", "2", "3", "4", "5"}, func(s string) bool { return s == k })
			if idx < 0 || idx >= len(c) {
				cur = nil
			} else {
				cur = c[idx]
			}
		default:
			cur = nil
		}
		if cur == nil {
			t.Fatalf("no %s", strings.Join(keys[:i+1], "."))
		}
	}
	return cur
}

func TestGitHubActionsExample(t *testing.T) {
	doc, text := readYAML(t, "github-actions.yml")
	for _, job := range []string{"build", "compare", "merge"} {
		if _, ok := path(t, doc, "jobs", job, "steps").([]any); !ok {
			t.Errorf("job %s has no steps", job)
		}
	}
	if n := path(t, doc, "jobs", "compare", "needs"); n != "build" {
		t.Errorf("compare needs %v, want build", n)
	}
	if n := path(t, doc, "jobs", "merge", "needs"); n != "compare" {
		t.Errorf("merge needs %v, want compare", n)
	}
	if shards, _ := path(t, doc, "jobs", "compare", "strategy", "matrix", "shard").([]any); len(shards) < 2 {
		t.Errorf("the compare matrix has %d shards, want several", len(shards))
	}
	if labels, _ := path(t, doc, "jobs", "compare", "runs-on").([]any); !slices.Contains(labels, any("self-hosted")) {
		t.Errorf("compare runs on %v, want self-hosted KVM runners", labels)
	}
	for _, want := range []string{"--export", "compare --kernels", "harness merge", "GITHUB_STEP_SUMMARY", "summary.md"} {
		if !strings.Contains(text, want) {
			t.Errorf("the workflow does not use %q", want)
		}
	}
	checkHarnessCalls(t, text)
}

func TestGitLabExample(t *testing.T) {
	doc, text := readYAML(t, "gitlab-ci.yml")
	if n, ok := path(t, doc, "compare", "parallel").(int); !ok || n < 2 {
		t.Errorf("compare parallel: %v, want several shards", path(t, doc, "compare", "parallel"))
	}
	stages, _ := path(t, doc, "stages").([]any)
	for _, job := range []string{"build", "compare", "merge"} {
		if st := path(t, doc, job, "stage"); !slices.Contains(stages, st) {
			t.Errorf("job %s is in stage %v, not one of %v", job, st, stages)
		}
		if _, ok := path(t, doc, job, "script").([]any); !ok {
			t.Errorf("job %s has no script", job)
		}
	}
	for _, want := range []string{"--export", "compare --kernels", "CI_NODE_INDEX", "harness merge"} {
		if !strings.Contains(text, want) {
			t.Errorf("the pipeline does not use %q", want)
		}
	}
	checkHarnessCalls(t, text)
}

func TestLAVAExample(t *testing.T) {
	doc, text := readYAML(t, "lava-job.yaml")
	actions, _ := path(t, doc, "actions").([]any)
	var kinds []string
	for _, a := range actions {
		for k := range a.(map[string]any) {
			kinds = append(kinds, k)
		}
	}
	if !slices.Equal(kinds, []string{"deploy", "boot", "test"}) {
		t.Errorf("LAVA actions %v, want deploy, boot, test", kinds)
	}
	steps, _ := path(t, doc, "actions", "2", "test", "definitions", "0", "repository", "run", "steps").([]any)
	if !slices.ContainsFunc(steps, func(s any) bool { return strings.Contains(s.(string), "compare --kernels") }) {
		t.Errorf("the LAVA test does not run compare --kernels: %v", steps)
	}
	checkHarnessCalls(t, text)
}

var (
	harnessCall = regexp.MustCompile(`bin/harness ([a-z-]+)([^\n|;]*)`)
	flagUse     = regexp.MustCompile(`(?:^|\s)--([a-z][a-z0-9-]*)`)
	flagDef     = regexp.MustCompile(`\.(?:String|Bool|Int|Duration|Float64|Var|StringVar|BoolVar|IntVar|DurationVar|Float64Var)\((?:&[\w.]+, )?"([a-z][a-z0-9-]*)"`)
	commandDef  = regexp.MustCompile(`case ((?:"[a-z-]+"(?:, )?)+):\n\t\tcode = cmd`)
)

// checkHarnessCalls checks that every 'bin/harness CMD --flag' in text
// names a command main dispatches and a flag the harness defines.
func checkHarnessCalls(t *testing.T, text string) {
	t.Helper()
	flags, commands := definedFlags(t), definedCommands(t)
	calls := harnessCall.FindAllStringSubmatch(text, -1)
	if len(calls) == 0 {
		t.Fatal("no bin/harness call found")
	}
	for _, c := range calls {
		if !slices.Contains(commands, c[1]) {
			t.Errorf("harness has no command %q (%s)", c[1], c[0])
		}
		for _, f := range flagUse.FindAllStringSubmatch(c[2], -1) {
			if !slices.Contains(flags, f[1]) {
				t.Errorf("harness has no flag --%s (%s)", f[1], c[0])
			}
		}
	}
}

// definedFlags are the flag names the harness's sources register.
func definedFlags(t *testing.T) []string {
	t.Helper()
	files, _ := filepath.Glob("*.go")
	var names []string
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range flagDef.FindAllStringSubmatch(string(b), -1) {
			names = append(names, m[1])
		}
	}
	if !slices.Contains(names, "kernels") {
		t.Fatalf("found no --kernels among %d flags: the flag scan is broken", len(names))
	}
	return names
}

// definedCommands are the commands main.go dispatches.
func definedCommands(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile("main.go")
	if err != nil {
		t.Fatal(err)
	}
	var cmds []string
	for _, m := range commandDef.FindAllStringSubmatch(string(b), -1) {
		for _, q := range strings.Split(m[1], ", ") {
			cmds = append(cmds, strings.Trim(q, `"`))
		}
	}
	if !slices.Contains(cmds, "merge") || !slices.Contains(cmds, "compare") {
		t.Fatalf("found commands %v: the command scan is broken", cmds)
	}
	return cmds
}
