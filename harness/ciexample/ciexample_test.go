package ciexample

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func write(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "x.yml")
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

const gitlab = `
variables:
  RUNS: "2"
build:
  script:
    - make build
    - bin/harness build --widen --export kernels
compare:
  parallel: 2
  script:
    - code=0; bin/harness compare --kernels kernels --runs "$RUNS" --out "out/shard-$CI_NODE_INDEX" || code=$?; test "$code" -le 2
merge:
  script:
    - bin/harness merge --out merged out/shard-*
`

func TestLoadAndPlan(t *testing.T) {
	e, err := load(write(t, gitlab), "gitlab")
	if err != nil {
		t.Fatal(err)
	}
	var got [][]string
	for _, s := range e.Scripts {
		got = append(got, []string{s.Job, strings.Join(s.Harness, " "), strings.Join(s.Make, " ")})
	}
	want := [][]string{{"build", "", "build"}, {"build", "build", ""}, {"compare", "compare", ""}, {"merge", "merge", ""}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("scripts (-want +got):\n%s", diff)
	}
	if e.Vars["RUNS"] != "2" {
		t.Errorf("vars %v", e.Vars)
	}
	p, err := PlanOf([]Example{e})
	if err != nil {
		t.Fatal(err)
	}
	if p.Build.Job != "build" || len(p.Shards) != 1 || len(p.Merges) != 1 {
		t.Errorf("plan %+v", p)
	}
	if out := p.Shards[0].Out(3, nil); out != "out/shard-3" {
		t.Errorf("compare --out for shard 3: %q", out)
	}
	if out := p.Merges[0].Out(1, nil); out != "merged" {
		t.Errorf("merge --out: %q", out)
	}
}

// A harness command no end-to-end test runs is refused, naming it.
func TestPlanRefusesUnrunCommands(t *testing.T) {
	for _, extra := range []string{
		"    - bin/harness run --kernel kernels/patched/bzImage\n",
		"    - bin/harness bisect-run --widen\n",
		"    - bin/harness build --widen\n", // no --export: not the one build
	} {
		e, err := load(write(t, gitlab+"other:\n  script:\n"+extra), "gitlab")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := PlanOf([]Example{e}); err == nil || !strings.Contains(err.Error(), "no end-to-end test runs") {
			t.Errorf("%s: PlanOf error %v, want one saying no end-to-end test runs it", strings.TrimSpace(extra), err)
		}
	}
	// Two examples that build differently.
	a, _ := load(write(t, gitlab), "gitlab")
	b, _ := load(write(t, strings.Replace(gitlab, "--widen --export", "--export", 1)), "gitlab")
	if _, err := PlanOf([]Example{a, b}); err == nil || !strings.Contains(err.Error(), "build alike") {
		t.Errorf("different builds: %v", err)
	}
}

// A command outside a step would never run, in CI or in make test.
func TestLoadRefusesCommandsOutsideSteps(t *testing.T) {
	_, err := load(write(t, gitlab+"notes:\n  description: run bin/harness compare by hand\n"), "gitlab")
	if err == nil || !strings.Contains(err.Error(), "only in steps") {
		t.Errorf("load: %v", err)
	}
}

func TestShellExpressions(t *testing.T) {
	s := Script{File: "f", Job: "j", Engine: "github", Text: `bin/harness compare --out "out/shard-${{ matrix.shard }}"`}
	if got, err := s.Shell(2); err != nil || got != `bin/harness compare --out "out/shard-2"` {
		t.Errorf("Shell(2) = %q, %v", got, err)
	}
	s.Text = `bin/harness compare --runs ${{ inputs.runs }}`
	if _, err := s.Shell(1); err == nil || !strings.Contains(err.Error(), "inputs.runs") {
		t.Errorf("an expression only GitHub can evaluate: %v", err)
	}
}
