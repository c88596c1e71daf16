package main

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"zswaprace/harness/ciexample"
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
	// make test lays out the merge job's shards as these steps do.
	for _, want := range []string{"name: shard-${{ matrix.shard }}", "path: out/shard-${{ matrix.shard }}/", "pattern: shard-*", "path: shards\n"} {
		if !strings.Contains(text, want) {
			t.Errorf("the workflow's artifacts do not say %q: harness/e2e/shards_test.go assumes they do", want)
		}
	}
	checkHarnessCalls(t, withVars(t, "github-actions.yml", text))
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
	for _, want := range []string{"--export", "compare --kernels", "CI_NODE_INDEX", "harness merge", "paths: [out/]", "summary.md"} {
		if !strings.Contains(text, want) {
			t.Errorf("the pipeline does not use %q", want)
		}
	}
	checkHarnessCalls(t, withVars(t, "gitlab-ci.yml", text))
}

// withVars is text with the example's own variables ($NAME) replaced by
// their values, so that the flags in them are checked too.
func withVars(t *testing.T, file, text string) string {
	t.Helper()
	examples, err := ciexample.Load("..")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range examples {
		if e.File != file {
			continue
		}
		for k, v := range e.Vars {
			text = strings.ReplaceAll(text, "$"+k, v)
		}
		if !strings.Contains(text, "--accel kvm") {
			t.Errorf("%s: the shards do not all run on KVM (--accel kvm)", file)
		}
		return text
	}
	t.Fatalf("%s is not among ciexample.Files", file)
	return ""
}

// TestExampleCommandsRunByMakeTest: every bin/harness and make command in
// the GitHub and GitLab examples is one make test runs. The harness
// commands are run as written by the e2e test TestShardsMergeToUnionVerdict
// (through ciexample.PlanOf, which refuses any it has no place for), with
// only the variables in ciexample.TestOverrides changed; the make targets
// must be ones an e2e test runs.
func TestExampleCommandsRunByMakeTest(t *testing.T) {
	examples, err := ciexample.Load("..")
	if err != nil {
		t.Fatal(err)
	}
	if len(examples) != 2 {
		t.Fatalf("%d examples, want the GitHub and GitLab ones", len(examples))
	}
	plan, err := ciexample.PlanOf(examples)
	if err != nil {
		t.Fatal(err)
	}
	if len(plan.Shards) < 2 {
		t.Errorf("%d compare steps: the e2e test needs two shards to merge", len(plan.Shards))
	}
	for _, e := range examples {
		for k := range ciexample.TestOverrides {
			if _, ok := e.Vars[k]; !ok {
				t.Errorf("%s does not define %s, which make test sets: the test would not run its commands as written", e.File, k)
			}
		}
		for _, s := range e.Scripts {
			for k := range ciexample.TestOverrides {
				if len(s.Harness) > 0 && s.Harness[0] == "compare" && !strings.Contains(s.Text, "$"+k) {
					t.Errorf("%s, job %s: the compare step does not use $%s", e.File, s.Job, k)
				}
			}
		}
	}
	e2e, err := os.ReadFile("e2e/shards_test.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, call := range []string{"ciexample.Load(", "ciexample.PlanOf(", "plan.Build", "plan.Shards", "plan.Merges", "ciexample.TestOverrides"} {
		if !strings.Contains(string(e2e), call) {
			t.Errorf("harness/e2e/shards_test.go does not use %s: it must run the examples' own commands", call)
		}
	}
	targets := e2eMakeTargets(t)
	for _, e := range examples {
		for _, s := range e.Scripts {
			for _, m := range s.Make {
				if !slices.Contains(targets, m) {
					t.Errorf("%s, job %s runs 'make %s', which no e2e test runs (they run make %v)", e.File, s.Job, m, targets)
				}
			}
		}
	}
}

var makeExec = regexp.MustCompile(`exec\.Command\("make"((?:,\s*"[^"]*")+)`)

// e2eMakeTargets are the make targets the e2e tests run.
func e2eMakeTargets(t *testing.T) []string {
	t.Helper()
	files, _ := filepath.Glob("e2e/*_test.go")
	var targets []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range makeExec.FindAllStringSubmatch(string(b), -1) {
			for _, a := range strings.Split(m[1], ",") {
				a = strings.Trim(strings.TrimSpace(a), `"`)
				if a != "" && !strings.HasPrefix(a, "-") && !strings.Contains(a, "=") {
					targets = append(targets, a)
				}
			}
		}
	}
	if !slices.Contains(targets, "build") {
		t.Fatalf("found make targets %v in harness/e2e: TestStandaloneBinary's make build is missing, or the scan is broken", targets)
	}
	return targets
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
