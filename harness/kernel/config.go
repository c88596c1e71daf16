package kernel

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Option is one line of a kernel config: CONFIG_NAME=value, or "n" for
// "# CONFIG_NAME is not set".
type Option struct {
	Name  string
	Value string
}

// ParseConfig reads kernel config text into an ordered list of options.
// Other comments and blank lines are dropped.
func ParseConfig(text string) ([]Option, error) {
	var opts []Option
	sc := bufio.NewScanner(strings.NewReader(text))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "":
		case strings.HasPrefix(line, "# CONFIG_") && strings.HasSuffix(line, " is not set"):
			name := strings.TrimSuffix(strings.TrimPrefix(line, "# "), " is not set")
			opts = append(opts, Option{Name: name, Value: "n"})
		case strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "CONFIG_") && strings.Contains(line, "="):
			name, val, _ := strings.Cut(line, "=")
			opts = append(opts, Option{Name: name, Value: val})
		default:
			return nil, fmt.Errorf("line %d: %q is not a config option", n, line)
		}
	}
	return opts, nil
}

// Fragment is a named list of options to force onto a base config.
type Fragment struct {
	Name    string
	Options []Option
	// Path and SHA256 are the file it was read from and its sha256, for
	// the record (the options alone make the image's cache key).
	Path   string
	SHA256 string
}

// LoadFragments reads kconfig fragments by name (without .config) from dir.
func LoadFragments(dir string, names []string) ([]Fragment, error) {
	var frags []Fragment
	for _, name := range names {
		path := filepath.Join(dir, name+".config")
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("config fragment %q: %w", name, err)
		}
		opts, err := ParseConfig(string(b))
		if err != nil {
			return nil, fmt.Errorf("config fragment %s: %w", path, err)
		}
		sum := sha256.Sum256(b)
		frags = append(frags, Fragment{Name: name, Options: opts, Path: path, SHA256: hex.EncodeToString(sum[:])})
	}
	return frags, nil
}

func (o Option) line() string {
	if o.Value == "n" {
		return "# " + o.Name + " is not set"
	}
	return o.Name + "=" + o.Value
}

// Merge returns base with every fragment option forced on, later fragments
// winning, as scripts/kconfig/merge_config.sh does before olddefconfig.
func Merge(base string, frags []Fragment) string {
	forced := map[string]Option{}
	var order []string
	for _, f := range frags {
		for _, o := range f.Options {
			if _, seen := forced[o.Name]; !seen {
				order = append(order, o.Name)
			}
			forced[o.Name] = o
		}
	}
	var b strings.Builder
	sc := bufio.NewScanner(strings.NewReader(base))
	for sc.Scan() {
		line := sc.Text()
		if name := optionName(line); name != "" {
			if _, ok := forced[name]; ok {
				continue
			}
		}
		b.WriteString(line)
		b.WriteByte('\n')
	}
	for _, name := range order {
		b.WriteString(forced[name].line())
		b.WriteByte('\n')
	}
	return b.String()
}

func optionName(line string) string {
	line = strings.TrimSpace(line)
	if strings.HasPrefix(line, "# CONFIG_") && strings.HasSuffix(line, " is not set") {
		return strings.TrimSuffix(strings.TrimPrefix(line, "# "), " is not set")
	}
	if strings.HasPrefix(line, "CONFIG_") {
		name, _, _ := strings.Cut(line, "=")
		return name
	}
	return ""
}

// Lost lists the fragment options that the resolved config (after
// olddefconfig) does not have as asked, with the fragment that asked.
// An option asked as "n" is kept when it is absent.
func Lost(resolved string, frags []Fragment) []string {
	opts, _ := ParseConfig(resolved)
	have := map[string]string{}
	for _, o := range opts {
		have[o.Name] = o.Value
	}
	want := map[string]string{}
	from := map[string]string{}
	for _, f := range frags {
		for _, o := range f.Options {
			want[o.Name], from[o.Name] = o.Value, f.Name
		}
	}
	var lost []string
	for name, v := range want {
		got, ok := have[name]
		if !ok {
			got = "n"
		}
		if got != v {
			lost = append(lost, fmt.Sprintf("%s=%s (from %s.config; resolved to %s)", name, v, from[name], got))
		}
	}
	sort.Strings(lost)
	return lost
}
