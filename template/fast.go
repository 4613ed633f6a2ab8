package template

import (
	"github.com/confit-dev/confit/backends"
	"github.com/confit-dev/confit/template/internal/exec"
)

// fastAdapters are the function signatures the fast executor
// (template/internal/exec) calls: those of the store functions, confd's
// and the common sprig ones. A template calling a function of another
// signature renders in text/template.
var fastAdapters = func() *exec.Adapters {
	a := &exec.Adapters{}
	// One string: the store functions and most of confd's.
	exec.Add(a, exec.Func1[string, string])
	exec.Add(a, exec.Func1[string, bool])
	exec.Add(a, exec.Func1[string, []string])
	exec.Add(a, exec.Func1E[string, string])
	exec.Add(a, exec.Func1E[string, []string])
	exec.Add(a, exec.Func1E[string, []KVPair])
	exec.Add(a, exec.Func1E[string, KVPair])
	exec.Add(a, exec.Func1E[string, int])
	exec.Add(a, exec.Func1E[string, bool])
	exec.Add(a, exec.Func1E[string, map[string]any])
	exec.Add(a, exec.Func1E[string, []any])
	// A string and more strings: getv, getenv, service.
	exec.Add(a, exec.Func1VE[string, string, string])
	exec.Add(a, exec.Func1V[string, string, string])
	exec.Add(a, exec.Func1VE[string, string, []backends.ServiceInstance])
	// Fixed strings.
	exec.Add(a, exec.Func2[string, string, string])
	exec.Add(a, exec.Func2[string, string, bool])
	exec.Add(a, exec.Func2[string, string, []string])
	exec.Add(a, exec.Func3[string, string, string, string])
	exec.Add(a, exec.Func4[string, string, string, int, string]) // strings.Replace
	exec.Add(a, exec.Func0E[[]Service])
	exec.Add(a, exec.Func0E[string]) // hostname
	// Lists and numbers.
	exec.Add(a, exec.Func2[[]string, string, string]) // join
	exec.Add(a, exec.Func1[[]string, []string])
	exec.Add(a, exec.Func1[[]KVPair, []KVPair])
	exec.Add(a, exec.Func2[int, int, int])
	exec.Add(a, exec.Func2[int, int, []int])
	exec.Add(a, exec.Func2[int, string, string]) // sprig's trunc, indent
	// Anything: text/template passes any non-nil value as it is.
	exec.Add(a, exec.Func1[any, any])
	exec.Add(a, exec.Func1[any, string])
	exec.Add(a, exec.Func1[any, bool])
	exec.Add(a, exec.Func1[any, []string])
	exec.Add(a, exec.FuncV[any, string])
	exec.Add(a, exec.FuncV[any, any])
	exec.Add(a, exec.FuncV[any, []any])
	exec.Add(a, exec.FuncV[any, map[string]any])
	exec.Add(a, exec.FuncVE[any, map[string]any])
	exec.Add(a, exec.Func1V[any, any, any])      // sprig's default
	exec.Add(a, exec.Func3[any, any, bool, any]) // sprig's ternary
	return a
}()
