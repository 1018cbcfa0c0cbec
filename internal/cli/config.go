package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/spf13/pflag"
	"go.yaml.in/yaml/v3"
)

// EnvName is the environment variable of a flag: QFPURGE_ and the flag's
// name upper-cased, dashes as underscores (--batch-size: QFPURGE_BATCH_SIZE).
func EnvName(flag string) string {
	return "QFPURGE_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// Sources say where a command's flags come from when the command line
// leaves them unset: the environment first, then a YAML config file whose
// keys are the flag names, then the flags' defaults. Every flag is covered
// but Local ones, so a flag added to the command needs nothing here.
type Sources struct {
	Getenv func(string) string
	// Also names a further, established environment variable of a flag,
	// read after its QFPURGE_ one (REDIS_URL for redis-url).
	Also map[string]string
	// Local flags are set on the command line only (--config itself).
	Local []string
}

// Resolve fills the flags of fs that the command line left unset, from
// the environment, then from configFile ("" for none). A value that does
// not parse, or a key of the file that is no flag, is a UsageError naming
// where it came from.
func (s Sources) Resolve(fs *pflag.FlagSet, configFile string) error {
	var file []setting
	if configFile != "" {
		var err error
		if file, err = s.readConfig(fs, configFile); err != nil {
			return err
		}
	}
	var errs []error
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Changed || s.local(f.Name) {
			return
		}
		for _, env := range s.envNames(f.Name) {
			if v := s.Getenv(env); v != "" {
				if err := fs.Set(f.Name, v); err != nil {
					errs = append(errs, Usagef("%s=%q: %v", env, v, err))
				}
				return
			}
		}
	})
	for _, st := range file {
		if fs.Changed(st.name) {
			continue
		}
		if err := fs.Set(st.name, st.value); err != nil {
			errs = append(errs, Usagef("%s:%d: %s: %v", configFile, st.line, st.name, err))
		}
	}
	return errors.Join(errs...)
}

// EnvNames lists the environment variables flag is read from, in order.
func (s Sources) envNames(flag string) []string {
	names := []string{EnvName(flag)}
	if also := s.Also[flag]; also != "" {
		names = append(names, also)
	}
	return names
}

func (s Sources) local(flag string) bool { return slices.Contains(s.Local, flag) || flag == "help" }

// setting is one key of a config file.
type setting struct {
	name, value string
	line        int
}

func (s Sources) readConfig(fs *pflag.FlagSet, file string) ([]setting, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, Usagef("--config: %v", err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return nil, Usagef("%s: %v", file, err)
	}
	if len(doc.Content) == 0 {
		return nil, nil // an empty file sets nothing
	}
	m := doc.Content[0]
	if m.Kind != yaml.MappingNode {
		return nil, Usagef("%s:%d: want a mapping of flag names to values", file, m.Line)
	}
	var out []setting
	var errs []error
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := m.Content[i], m.Content[i+1]
		if fs.Lookup(k.Value) == nil || s.local(k.Value) {
			hint := ""
			if n := Nearest(k.Value, s.keys(fs)); n != "" {
				hint = fmt.Sprintf("; did you mean %s?", n)
			}
			errs = append(errs, Usagef("%s:%d: unknown key %q%s", file, k.Line, k.Value, hint))
			continue
		}
		val, err := scalar(v)
		if err != nil {
			errs = append(errs, Usagef("%s:%d: %s: %v", file, v.Line, k.Value, err))
			continue
		}
		out = append(out, setting{k.Value, val, k.Line})
	}
	return out, errors.Join(errs...)
}

// scalar reads a value; a list of scalars becomes a comma-separated one
// (monitor-hosts: [a, b]).
func scalar(v *yaml.Node) (string, error) {
	switch v.Kind {
	case yaml.ScalarNode:
		if v.Tag == "!!null" {
			return "", nil
		}
		return v.Value, nil
	case yaml.SequenceNode:
		parts := make([]string, len(v.Content))
		for i, e := range v.Content {
			if e.Kind != yaml.ScalarNode {
				return "", errors.New("want a value or a list of values")
			}
			parts[i] = e.Value
		}
		return strings.Join(parts, ","), nil
	}
	return "", errors.New("want a value or a list of values")
}

// keys are the names a config file may use.
func (s Sources) keys(fs *pflag.FlagSet) []string {
	var names []string
	fs.VisitAll(func(f *pflag.Flag) {
		if !s.local(f.Name) {
			names = append(names, f.Name)
		}
	})
	return names
}

// PrintConfig writes the resolved flags of fs as a config file that
// --config reads back. show renders a value for printing (masking
// secrets); env-only settings are the caller's to add.
func (s Sources) PrintConfig(w io.Writer, fs *pflag.FlagSet, show func(name, value string) string) error {
	var b strings.Builder
	fs.VisitAll(func(f *pflag.Flag) {
		if s.local(f.Name) {
			return
		}
		v := show(f.Name, f.Value.String())
		if t := f.Value.Type(); t == "string" || t == "stringSlice" || v == "" {
			q, _ := yaml.Marshal(v)
			v = strings.TrimSpace(string(q))
		}
		fmt.Fprintf(&b, "%s: %s\n", f.Name, v)
	})
	_, err := io.WriteString(w, b.String())
	return err
}
