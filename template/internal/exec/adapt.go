package exec

import "reflect"

// Adapters is a table of the function signatures the executor calls
// without reflection: each entry makes a Func from a function value of one
// type. The zero Adapters is an empty table; Add fills it, before any
// Adapt (it is not safe to Add concurrently with Adapt).
//
// An adapter requires the arguments to have the parameters' exact types,
// as text/template requires of them (text/template also dereferences a
// pointer or takes an address; those calls fall back to it with ErrBail).
// A variadic parameter gets a slice of its own, empty but not nil when
// there are no arguments, as reflect.Value.Call passes it.
type Adapters struct {
	m map[reflect.Type]func(any) Func
}

// Add adds the signature F to a, adapted by adapt: one of Func0E, Func1,
// Func1E, Func2, Func3, Func4, FuncV, FuncVE, Func1V and Func1VE,
// instantiated with F's types, e.g. Add(a, Func1E[string, []string]) for a
// func(string) ([]string, error).
func Add[F any](a *Adapters, adapt func(F) Func) {
	if a.m == nil {
		a.m = map[reflect.Type]func(any) Func{}
	}
	a.m[reflect.TypeFor[F]()] = func(f any) Func { return adapt(f.(F)) }
}

// Adapt returns a Func calling f, or nil if f's type is not in a.
func (a *Adapters) Adapt(f any) Func {
	adapt, ok := a.m[reflect.TypeOf(f)]
	if !ok {
		return nil
	}
	return adapt(f)
}

// Func0E adapts a function without arguments that may fail.
func Func0E[R any](f func() (R, error)) Func {
	return func(a []any) (any, error) {
		if len(a) != 0 {
			return nil, ErrBail
		}
		return result(f())
	}
}

// Func1 adapts a function of one argument.
func Func1[A, R any](f func(A) R) Func {
	return func(a []any) (any, error) {
		if len(a) != 1 {
			return nil, ErrBail
		}
		x, ok := a[0].(A)
		if !ok {
			return nil, ErrBail
		}
		return f(x), nil
	}
}

// Func1E adapts a function of one argument that may fail.
func Func1E[A, R any](f func(A) (R, error)) Func {
	return func(a []any) (any, error) {
		if len(a) != 1 {
			return nil, ErrBail
		}
		x, ok := a[0].(A)
		if !ok {
			return nil, ErrBail
		}
		return result(f(x))
	}
}

// Func2 adapts a function of two arguments.
func Func2[A, B, R any](f func(A, B) R) Func {
	return func(a []any) (any, error) {
		if len(a) != 2 {
			return nil, ErrBail
		}
		x, ok1 := a[0].(A)
		y, ok2 := a[1].(B)
		if !ok1 || !ok2 {
			return nil, ErrBail
		}
		return f(x, y), nil
	}
}

// Func3 adapts a function of three arguments.
func Func3[A, B, C, R any](f func(A, B, C) R) Func {
	return func(a []any) (any, error) {
		if len(a) != 3 {
			return nil, ErrBail
		}
		x, ok1 := a[0].(A)
		y, ok2 := a[1].(B)
		z, ok3 := a[2].(C)
		if !ok1 || !ok2 || !ok3 {
			return nil, ErrBail
		}
		return f(x, y, z), nil
	}
}

// Func4 adapts a function of four arguments.
func Func4[A, B, C, D, R any](f func(A, B, C, D) R) Func {
	return func(a []any) (any, error) {
		if len(a) != 4 {
			return nil, ErrBail
		}
		x, ok1 := a[0].(A)
		y, ok2 := a[1].(B)
		z, ok3 := a[2].(C)
		w, ok4 := a[3].(D)
		if !ok1 || !ok2 || !ok3 || !ok4 {
			return nil, ErrBail
		}
		return f(x, y, z, w), nil
	}
}

// FuncV adapts a variadic function.
func FuncV[V, R any](f func(...V) R) Func {
	return func(a []any) (any, error) {
		vs, ok := variadic[V](a)
		if !ok {
			return nil, ErrBail
		}
		return f(vs...), nil
	}
}

// FuncVE adapts a variadic function that may fail.
func FuncVE[V, R any](f func(...V) (R, error)) Func {
	return func(a []any) (any, error) {
		vs, ok := variadic[V](a)
		if !ok {
			return nil, ErrBail
		}
		return result(f(vs...))
	}
}

// Func1V adapts a function of one argument and a variadic.
func Func1V[A, V, R any](f func(A, ...V) R) Func {
	return func(a []any) (any, error) {
		if len(a) < 1 {
			return nil, ErrBail
		}
		x, ok1 := a[0].(A)
		vs, ok2 := variadic[V](a[1:])
		if !ok1 || !ok2 {
			return nil, ErrBail
		}
		return f(x, vs...), nil
	}
}

// Func1VE adapts a function of one argument and a variadic that may fail.
func Func1VE[A, V, R any](f func(A, ...V) (R, error)) Func {
	return func(a []any) (any, error) {
		if len(a) < 1 {
			return nil, ErrBail
		}
		x, ok1 := a[0].(A)
		vs, ok2 := variadic[V](a[1:])
		if !ok1 || !ok2 {
			return nil, ErrBail
		}
		return result(f(x, vs...))
	}
}

// variadic returns a as a new []V: a is the executor's argument stack,
// which the function must not keep (sprig's list returns its argument).
// With no arguments it is empty but not nil, as from reflect.Value.Call;
// an empty slice has no capacity, so sharing it is safe, and make does not
// allocate one.
func variadic[V any](a []any) ([]V, bool) {
	out := make([]V, len(a))
	for i, x := range a {
		v, ok := x.(V)
		if !ok {
			return nil, false
		}
		out[i] = v
	}
	return out, true
}

// result turns a function's (value, error) into the executor's.
func result[T any](v T, err error) (any, error) {
	if err != nil {
		return nil, ErrFuncFailed
	}
	return v, nil
}
