package template

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Errors of a render never carry a value of the store: a value may be a
// secret, and an error ends up in logs and on /health. The functions that
// fail on a value (atoi, parseBool, json, jsonArray, mustFromJson,
// mustToDate, mustDateModify) return a *ValueError, which names the
// function and the value's length; Execute adds the key the value came
// from when it can tell, and removes from the message of any other error
// every value of the store it finds there (redact).

// NotExistError is the error get and getv return for a key the store does
// not hold. It reads "key does not exist: <key>", as confd's does, and
// errors.Is(err, ErrNotExist) holds.
type NotExistError struct {
	// Key is the key as the template asked for it.
	Key string
}

func (e *NotExistError) Error() string { return ErrNotExist.Error() + ": " + e.Key }

// Is reports whether target is ErrNotExist.
func (e *NotExistError) Is(target error) bool { return target == ErrNotExist }

// ValueError is the error of a function that could not use a value, e.g.
// atoi of a value that is not a number. Its message gives the value's
// length, never the value: `value (12 bytes) is not an integer (invalid
// syntax)`, with the key once Execute knows it: `value of /db/port (12
// bytes) ...`. It leaves the function out: text/template names it already
// ("error calling atoi: ...").
type ValueError struct {
	// Func is the template function.
	Func string
	// Key is the key the value came from, "" when unknown.
	Key string
	// Len is the value's length in bytes.
	Len int
	// Problem says what is wrong with the value, e.g. "is not an integer
	// (invalid syntax)".
	Problem string

	value string // the value itself, never printed: to find Key
}

func (e *ValueError) Error() string {
	if e.Key != "" {
		return fmt.Sprintf("value of %s (%d bytes) %s", e.Key, e.Len, e.Problem)
	}
	return fmt.Sprintf("value (%d bytes) %s", e.Len, e.Problem)
}

func valueError(fn, value, problem string) *ValueError {
	return &ValueError{Func: fn, Len: len(value), Problem: problem, value: value}
}

// numProblem is what a strconv error says, without the value it quotes.
func numProblem(what string, err error) string {
	var ne *strconv.NumError
	if errors.As(err, &ne) {
		return fmt.Sprintf("is not %s (%v)", what, ne.Err)
	}
	return "is not " + what
}

func atoi(s string) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0, valueError("atoi", s, numProblem("an integer", err))
	}
	return n, nil
}

func parseBool(s string) (bool, error) {
	b, err := strconv.ParseBool(s)
	if err != nil {
		return false, valueError("parseBool", s, numProblem("a boolean", err))
	}
	return b, nil
}

// jsonProblem is what a json error says, without the character of the
// value a syntax error quotes.
func jsonProblem(what string, err error) string {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		if strings.HasPrefix(se.Error(), "invalid character") {
			return fmt.Sprintf("is not %s (invalid character at byte %d)", what, se.Offset)
		}
		return fmt.Sprintf("is not %s (%v)", what, se)
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return fmt.Sprintf("is not %s (a JSON %s)", what, te.Value)
	}
	return "is not " + what
}

func unmarshalJSONObject(data string) (map[string]any, error) {
	var ret map[string]any
	if err := json.Unmarshal([]byte(data), &ret); err != nil {
		return nil, valueError("json", data, jsonProblem("a JSON object", err))
	}
	return ret, nil
}

func unmarshalJSONArray(data string) ([]any, error) {
	var ret []any
	if err := json.Unmarshal([]byte(data), &ret); err != nil {
		return nil, valueError("jsonArray", data, jsonProblem("a JSON array", err))
	}
	return ret, nil
}

// mustFromJSON is sprig's mustFromJson.
func mustFromJSON(data string) (any, error) {
	var ret any
	if err := json.Unmarshal([]byte(data), &ret); err != nil {
		return nil, valueError("mustFromJson", data, jsonProblem("JSON", err))
	}
	return ret, nil
}

// mustToDate is sprig's mustToDate: str in layout, in the local zone.
func mustToDate(layout, str string) (time.Time, error) {
	t, err := time.ParseInLocation(layout, str, time.Local)
	if err != nil {
		return time.Time{}, valueError("mustToDate", str, fmt.Sprintf("does not match layout %q", layout))
	}
	return t, nil
}

// mustDateModify is sprig's mustDateModify: date plus the duration d.
func mustDateModify(d string, date time.Time) (time.Time, error) {
	dur, err := time.ParseDuration(d)
	if err != nil {
		return time.Time{}, valueError("mustDateModify", d, "is not a duration")
	}
	return date.Add(dur), nil
}

// minRedact is the length below which a value is not searched for in an
// error message: a short value ("1", "on") would match all over it, and
// is no secret.
const minRedact = 4

// renderError is an error of Execute whose message was rewritten (a key
// added, values removed); it wraps the original error, whose message may
// still hold a value: print this one.
type renderError struct {
	msg string
	err error
}

func (e *renderError) Error() string { return e.msg }
func (e *renderError) Unwrap() error { return e.err }

// redact returns err with no value of s in its message: a ValueError is
// given the key its value came from (keys the render read first), and any
// value of s (minRedact bytes or more) left in the part of the message
// after text/template's location and context is replaced by
// "[value of KEY redacted, N bytes]".
func redact(err error, s *Store, r *recorder) error {
	msg := err.Error()
	var ve *ValueError
	if errors.As(err, &ve) && ve.Key == "" {
		if k, ok := keyOf(s, r, ve.value); ok {
			named := *ve
			named.Key = k
			msg = strings.Replace(msg, ve.Error(), named.Error(), 1)
		}
	}
	// text/template: `template: NAME:L:C: executing "NAME" at <SRC>: MSG`;
	// SRC is the template's text, MSG is where a value can show.
	start := 0
	if i := strings.Index(msg, " at <"); i >= 0 {
		if j := strings.Index(msg[i:], ">: "); j >= 0 {
			start = i + j + 3
		}
	}
	head, tail := msg[:start], msg[start:]
	for i, v := range s.vals {
		if len(v) < minRedact {
			continue
		}
		// As it is, and as %q prints it (url.Parse's error quotes it).
		forms := []string{v}
		if q := strconv.Quote(v); q[1:len(q)-1] != v {
			forms = append(forms, q[1:len(q)-1])
		}
		for _, f := range forms {
			if strings.Contains(tail, f) {
				tail = strings.ReplaceAll(tail, f, fmt.Sprintf("[value of %s redacted, %d bytes]", s.keys[i], len(v)))
			}
		}
	}
	if head+tail == err.Error() {
		return err
	}
	return &renderError{msg: head + tail, err: err}
}

// keyOf returns a key of s whose value is v: one the render read when
// there is one, else any (the value may have come from gets or getvs).
func keyOf(s *Store, r *recorder, v string) (string, bool) {
	any := -1
	for i, sv := range s.vals {
		if sv != v {
			continue
		}
		if r.present[i>>6]&(1<<(uint(i)&63)) != 0 {
			return s.keys[i], true
		}
		if any < 0 {
			any = i
		}
	}
	if any < 0 {
		return "", false
	}
	return s.keys[any], true
}

// WithPath returns err, an error of Parse or Execute for the template
// named name, with its message naming path instead: text/template's
// "template: NAME:LINE: ..." becomes "PATH:LINE: ...", and a message
// that does not start so gets "PATH: " before it. The result wraps err.
func WithPath(err error, name, path string) error {
	msg := err.Error()
	if rest, ok := strings.CutPrefix(msg, "template: "+name+":"); ok {
		msg = path + ":" + rest
	} else {
		msg = path + ": " + msg
	}
	return &renderError{msg: msg, err: err}
}
