// Package template parses confd-compatible templates once and renders them
// against a Store of keys, recording what each render read.
//
// Templates are Go text/template, executed with nil data: everything comes
// through functions. Keys are relative to the resource prefix
// ("/database/url"), as in confd. Parse (or ParseFile) once, then call
// Execute any number of times, concurrently, each with its own Store; the
// store functions are bound per render without re-parsing, and each render
// returns the Reads a caller needs to decide when to render again.
//
// # Store functions
//
// These read the Store given to Execute and are recorded in Reads:
//
//	get KEY               KVPair{Key, Value}; missing => error "key does not exist: KEY"
//	getv KEY [DEFAULT]    value; missing => DEFAULT if given, else the same error
//	exists KEY            true if KEY is stored
//	gets PATTERN          []KVPair whose keys match PATTERN (path.Match: "*" does not
//	                      cross "/"), sorted by key; no match => empty list;
//	                      malformed pattern => error
//	getvs PATTERN         values of the matching keys, sorted by value
//	ls PATH               sorted unique names of PATH's immediate children (leaves
//	                      and directories); a key equal to PATH adds its base name
//	lsdir PATH            like ls, but only children that have children
//
// Keys given to get, getv and exists are cleaned like the stored keys
// ("database/url/" finds "/database/url"). ls "/" and lsdir "/" list the
// top level; confd's memkv lists only top-level leaves for ls "/" and
// nothing for lsdir "/".
//
// # confd's general functions
//
// Same names, argument order, sort orders and errors as confd, except that
// an error never shows a value of the store (errors.go: the key and the
// value's length instead):
//
//	base dir                         path.Base, path.Dir
//	split S SEP, join LIST SEP       strings.Split, strings.Join
//	toUpper toLower                  strings.ToUpper, strings.ToLower
//	contains S SUBSTR                strings.Contains
//	replace S OLD NEW N              strings.Replace
//	trimSuffix S SUFFIX              strings.TrimSuffix (note: sprig's trimPrefix,
//	                                 kept under its own name, is trimPrefix PREFIX S)
//	json S, jsonArray S              decode a JSON object / array, or error
//	map K1 V1 K2 V2 ...              map[string]any; odd count => "invalid map call"
//	getenv NAME [DEFAULT]            an empty variable counts as unset
//	datetime                         time.Now ({{datetime.Format "2006-01-02"}})
//	lookupIP HOST                    sorted address strings, nil on error
//	lookupIPV4, lookupIPV6 HOST      the same, filtered on "." / ":"
//	lookupSRV SERVICE PROTO NAME     []*net.SRV sorted by target+port+priority+weight,
//	                                 empty on error
//	fileExists PATH                  true unless stat says it does not exist
//	base64Encode, base64Decode       standard encoding; decode may error
//	parseBool, atoi                  strconv.ParseBool, strconv.Atoi (may error: a *ValueError)
//	reverse LIST                     reverses []string, []KVPair or []any in place
//	sortByLength LIST                []string in place by length (stable)
//	sortKVByLength LIST              []KVPair in place by key length (stable)
//	seq FIRST LAST                   []int FIRST..LAST ascending; empty if FIRST > LAST
//	add sub mul div mod A B          int arithmetic; div or mod by zero is the
//	                                 error "integer divide by zero"
//
// # sprig and fork conveniences
//
// Every function of sprig v3's TxtFuncMap is available under its own name
// unless confd has a function of that name, in which case confd's wins:
// add, atoi, base, contains, dir, div, get, join, mod, mul, replace,
// reverse, seq, split, sub and trimSuffix have confd's semantics (so
// sprig's "get" for dicts is not available; use index or dig). sprig's keys
// and values are replaced by sorted versions (keys sorted, values by sorted
// key), as in the maintained confd fork, so output does not change from
// one render to the next. From the fork: hostname (os.Hostname).
//
// FuncNames lists every name. Options.Funcs adds or overrides functions.
package template
