// Package exec is confit's fast template executor. It renders the common
// shape of a confd template (text, actions, if, with, range over lists,
// maps and integers, break and continue, variables, field access,
// {{template}} calls, the builtins printf, print, not, and, or, eq, ne,
// len and index, and calls of functions with plain signatures) from
// text/template's own parse trees, without text/template's reflection:
// text/template calls every function through reflect.Value.Call, ~30
// allocations a call.
//
// There is one reader of the template language, text/template/parse.
// Compile turns its trees into a Prog; a template it cannot compile (a
// chain such as (get "/k").Value, another builtin, a number that is not a
// plain decimal integer) gets nil, and Bind returns nil for a function
// whose signature is not in the caller's Adapters: such templates run in
// text/template.
//
// The executor never decides an outcome text/template would decide
// differently. At render time anything outside what it knows (a nil, a
// pointer, a method, an unknown type, a function's error or panic)
// abandons its output with ErrBail or ErrFuncFailed, and the caller
// renders again with text/template, which then produces the output or the
// error in its own words. The differential tests and
// FuzzFastMatchesTextTemplate beside this file render every case both
// ways, through the template package, and require the same output, error
// and reads.
package exec
