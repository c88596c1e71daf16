package kernel

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// widenSrc is a small C file with every kind of place --widen-at must
// judge. The markers "@name" at the end of a line name it for the test.
const widenSrc = `// SPDX-License-Identifier: GPL-2.0
#include <linux/spinlock.h>
#include <linux/rcupdate.h>

static DEFINE_SPINLOCK(lock);
static int table[] = {
	1, /* @init */
	2,
};

struct thing {
	int a; /* @struct */
};

/* A function that may sleep. */
static int may_sleep(struct thing *t)
{
	struct writeback_control wbc = {
		.sync_mode = 0, /* @initializer */
	};
	int ret = 0; /* @decl */

	spin_lock(&lock);
	if (!t) {
		spin_unlock(&lock);
		return -1;
	}
	t->a++; /* @locked */
	spin_unlock(&lock);

	ret = t->a; /* @sleep */
	if (ret)
		ret++; /* @ifbody */
	else
		ret--;
	rcu_read_lock();
	ret += 2; /* @rcu */
	rcu_read_unlock();
	if (ret > 3) {
		local_irq_disable();
		ret = 0;
	}
	ret = call(ret, /* @call */
		   ret + 1); /* @continued */
	return ret; /* @afterirq */
}

static irqreturn_t handler(int irq, void *data)
{
	return IRQ_HANDLED; /* @irq */
}

/* Called with the lru lock held; drops it to do the work. */
static int callback(struct list_head *item, spinlock_t *l)
{
	int n = 0; /* @cbheld */

	spin_unlock(l);
	n = work(item); /* @cbdropped */
	spin_lock(l);
	return n;
}

static int entered_locked(struct thing *t)
{
	t->a = 1; /* @enteredlocked */
	spin_unlock(&lock);
	return 0;
}

static int guarded(struct thing *t)
{
	if (t) {
		guard(spinlock_irqsave)(&lock);
		t->a = 2;
	}
	return t->a; /* @guarded */
}
`

// markLine is the line of widenSrc carrying "@name".
func markLine(t *testing.T, name string) int {
	t.Helper()
	for i, l := range strings.Split(widenSrc, "\n") {
		if strings.Contains(l, "@"+name+" ") {
			return i + 1
		}
	}
	t.Fatalf("no line @%s", name)
	return 0
}

func widenTree(t *testing.T) string {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "mm"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "mm", "w.c"), []byte(widenSrc), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestWidenAtChoosesSleepOrBusyWait(t *testing.T) {
	dir := widenTree(t)
	for _, c := range []struct {
		mark   string
		sleep  bool
		fn     string
		reason string // part of the reason
	}{
		{"decl", true, "may_sleep", "no spinlock"},
		{"locked", false, "may_sleep", "spin_lock() at line"},
		{"sleep", true, "may_sleep", "no spinlock"},
		{"rcu", false, "may_sleep", "rcu_read_lock() at line"},
		// The irq-off region's block closed, but nothing released it.
		{"afterirq", false, "may_sleep", "local_irq_disable()"},
		{"irq", false, "handler", "irqreturn_t"},
		{"cbheld", false, "callback", "entered holding a lock"},
		{"cbdropped", true, "callback", "no spinlock"},
		{"enteredlocked", false, "entered_locked", "entered holding a lock"},
		// A guard's scope ended, but the rule stays conservative.
		{"guarded", false, "guarded", "guard(spinlock_irqsave)"},
	} {
		t.Run(c.mark, func(t *testing.T) {
			line := markLine(t, c.mark)
			w, err := WidenAt(dir, "mm/w.c:"+strconv.Itoa(line))
			if err != nil {
				t.Fatalf("WidenAt: %v", err)
			}
			if w.Sleep != c.sleep || w.Function != c.fn || !strings.Contains(w.Reason, c.reason) {
				t.Errorf("line %d: sleep %v in %s (%s); want sleep %v in %s, reason with %q", line, w.Sleep, w.Function, w.Reason, c.sleep, c.fn, c.reason)
			}
			how := "busy-wait"
			if c.sleep {
				how = "sleep"
			}
			if want := "mm/w.c:" + strconv.Itoa(line) + " (" + how + ")"; w.Where() != want {
				t.Errorf("Where() = %q, want %q", w.Where(), want)
			}
		})
	}
}

func TestWidenAtRefuses(t *testing.T) {
	dir := widenTree(t)
	n := strings.Count(widenSrc, "\n")
	for _, c := range []struct {
		spec, says string
	}{
		{"mm/w.c:" + strconv.Itoa(markLine(t, "init")), "not inside a function body"},
		{"mm/w.c:" + strconv.Itoa(markLine(t, "struct")), "not inside a function body"},
		{"mm/w.c:2", "not inside a function body"},
		{"mm/w.c:" + strconv.Itoa(markLine(t, "initializer")), "inside an initializer"},
		{"mm/w.c:" + strconv.Itoa(markLine(t, "ifbody")), "does not end a statement"},
		{"mm/w.c:" + strconv.Itoa(markLine(t, "ifbody")+1), "an else"},
		{"mm/w.c:" + strconv.Itoa(markLine(t, "continued")), "parenthesised expression"},
		{"mm/w.c:" + strconv.Itoa(n+1), "past its end"},
		{"mm/w.c:9999", "past its end"},
		{"mm/nope.c:3", "no such file"},
		{"../etc/passwd.c:1", "inside the source tree"},
		{"/etc/x.c:1", "inside the source tree"},
		{"mm/w.h:3", "C source file"},
		{"mm/w.c", "FILE:LINE"},
		{"mm/w.c:0", "LINE must be"},
		{"mm/w.c:x", "LINE must be"},
		{"mm/w.c:20:0", "USEC must be"},
		{"mm/w.c:20:abc", "USEC must be"},
	} {
		_, err := WidenAt(dir, c.spec)
		if err == nil {
			t.Errorf("%s: accepted, want an error saying %q", c.spec, c.says)
			continue
		}
		if !isUsage(err) || !strings.Contains(err.Error(), c.says) {
			t.Errorf("%s: %v, want a usage error saying %q", c.spec, err, c.says)
		}
	}
}

// A file whose last line has no newline still gets a diff patch takes.
func TestWidenAtNoFinalNewline(t *testing.T) {
	if _, err := exec.LookPath("patch"); err != nil {
		t.Skip("no patch")
	}
	dir := t.TempDir()
	src := "int f(void)\n{\n\treturn 0;\n}"
	if err := os.WriteFile(filepath.Join(dir, "f.c"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	w, err := WidenAt(dir, "f.c:3")
	if err != nil {
		t.Fatal(err)
	}
	if err := ApplyTo(context.Background(), dir, w.Patch, false); err != nil {
		t.Fatalf("%v\n%s", err, w.Patch.Data)
	}
	got, _ := os.ReadFile(filepath.Join(dir, "f.c"))
	if !strings.HasSuffix(string(got), "\t\tfsleep(zswaprace_widen_us);\n\treturn 0;\n}") {
		t.Errorf("patched file:\n%s", got)
	}
}

func TestParseWidenAt(t *testing.T) {
	w, err := ParseWidenAt("mm/zswap.c:992")
	if err != nil || w != (WidenSpec{File: "mm/zswap.c", Line: 992, DelayUS: DefaultWidenUS}) {
		t.Errorf("mm/zswap.c:992: %+v, %v", w, err)
	}
	w, err = ParseWidenAt("mm/zswap.c:1068:500")
	if err != nil || w.DelayUS != 500 || w.Line != 1068 {
		t.Errorf("mm/zswap.c:1068:500: %+v, %v", w, err)
	}
}

// The generated diff applies with GNU patch, as the harness applies it,
// and puts the delay right before the line, with the parameter above the
// function.
func TestWidenAtDiffApplies(t *testing.T) {
	if _, err := exec.LookPath("patch"); err != nil {
		t.Skip("no patch")
	}
	for _, c := range []struct {
		mark, wait string
	}{{"sleep", "fsleep(zswaprace_widen_us);"}, {"locked", "udelay(zswaprace_widen_us);"}, {"cbdropped", "fsleep(zswaprace_widen_us);"}} {
		t.Run(c.mark, func(t *testing.T) {
			dir := widenTree(t)
			line := markLine(t, c.mark)
			w, err := WidenAt(dir, "mm/w.c:"+strconv.Itoa(line)+":1500")
			if err != nil {
				t.Fatal(err)
			}
			if w.DelayUS() != 1500 {
				t.Errorf("delay %d, want 1500", w.DelayUS())
			}
			if files, err := PatchFiles(w.Patch.Data); err != nil || len(files) != 1 || files[0] != "mm/w.c" {
				t.Errorf("PatchFiles: %v, %v", files, err)
			}
			if err := ApplyTo(context.Background(), dir, w.Patch, false); err != nil {
				t.Fatalf("the diff does not apply: %v\n%s", err, w.Patch.Data)
			}
			got, err := os.ReadFile(filepath.Join(dir, "mm", "w.c"))
			if err != nil {
				t.Fatal(err)
			}
			lines := strings.Split(string(got), "\n")
			at := -1
			for i, l := range lines {
				if strings.Contains(l, "@"+c.mark+" ") {
					at = i
				}
			}
			if at < 2 || strings.TrimSpace(lines[at-1]) != c.wait || strings.TrimSpace(lines[at-2]) != "if (zswaprace_widen_us)" {
				t.Errorf("the lines before @%s are %q, want the if and %q\n%s", c.mark, lines[max(0, at-3):at], c.wait, got)
			}
			decl := bytes.Index(got, []byte("core_param(zswaprace_widen_us, zswaprace_widen_us, uint, 0644);"))
			first := bytes.Index(got, []byte("static int may_sleep"))
			inc := bytes.Index(got, []byte("#include <linux/rcupdate.h>"))
			if decl < 0 || decl > first || decl < inc {
				t.Errorf("the parameter is not between the includes and the first function:\n%s", got)
			}
			// And it reverses, so the tree can be switched back.
			if err := ApplyTo(context.Background(), dir, w.Patch, true); err != nil {
				t.Fatalf("the diff does not reverse: %v", err)
			}
			if back, _ := os.ReadFile(filepath.Join(dir, "mm", "w.c")); string(back) != widenSrc {
				t.Error("reversing the diff does not give the file back")
			}
		})
	}
}
