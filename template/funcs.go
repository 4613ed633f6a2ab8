package template

import (
	"encoding/base64"
	"errors"
	"fmt"
	"maps"
	"net"
	"os"
	"path"
	"slices"
	"sort"
	"strings"
	"text/template"
	"time"

	"github.com/Masterminds/sprig/v3"
)

// storeFuncNames are the functions bound to the Store of each render.
var storeFuncNames = append([]string{"exists", "get", "gets", "getv", "getvs", "ls", "lsdir", "service", "services"}, cryptFuncNames...)

// storeFunc returns the store function called name bound to r, and
// whether name is one (storeFuncNames). Binding only the functions a
// template calls spares each parse and each concurrent render the
// closures and the map of all of them.
func storeFunc(r *recorder, name string) (any, bool) {
	switch name {
	case "exists":
		return r.exists, true
	case "get":
		return r.get, true
	case "gets":
		return r.gets, true
	case "getv":
		return r.getv, true
	case "getvs":
		return r.getvs, true
	case "ls":
		return r.ls, true
	case "lsdir":
		return r.lsdir, true
	case "service":
		return r.service, true
	case "services":
		return r.services, true
	}
	return cryptFunc(r, name) // crypt.go
}

// confdFuncs are confd's general functions, with confd's semantics.
func confdFuncs() template.FuncMap {
	return template.FuncMap{
		"base":           path.Base,
		"dir":            path.Dir,
		"split":          strings.Split,
		"join":           strings.Join,
		"toUpper":        strings.ToUpper,
		"toLower":        strings.ToLower,
		"contains":       strings.Contains,
		"replace":        strings.Replace,
		"trimSuffix":     strings.TrimSuffix,
		"json":           unmarshalJSONObject,
		"jsonArray":      unmarshalJSONArray,
		"map":            createMap,
		"getenv":         getenv,
		"datetime":       time.Now,
		"lookupIP":       func(host string) []string { return lookupIP(net.LookupIP, host) },
		"lookupIPV4":     func(host string) []string { return filterIPs(lookupIP(net.LookupIP, host), ".") },
		"lookupIPV6":     func(host string) []string { return filterIPs(lookupIP(net.LookupIP, host), ":") },
		"lookupSRV":      func(service, proto, name string) []*net.SRV { return lookupSRV(net.LookupSRV, service, proto, name) },
		"fileExists":     fileExists,
		"base64Encode":   base64Encode,
		"base64Decode":   base64Decode,
		"parseBool":      parseBool,
		"atoi":           atoi,
		"reverse":        reverse,
		"sortByLength":   sortByLength,
		"sortKVByLength": sortKVByLength,
		"seq":            seq,
		"add":            func(a, b int) int { return a + b },
		"sub":            func(a, b int) int { return a - b },
		"mul":            func(a, b int) int { return a * b },
		"div":            func(a, b int) int { return a / b },
		"mod":            func(a, b int) int { return a % b },
	}
}

// forkFuncs are conveniences from the maintained confd fork that sprig
// lacks, plus sprig functions whose output order confit pins down.
func forkFuncs() template.FuncMap {
	return template.FuncMap{
		"hostname": os.Hostname,
		// sprig's versions put the value in their errors (errors.go).
		"mustFromJson":   mustFromJSON,
		"mustToDate":     mustToDate,
		"mustDateModify": mustDateModify,
		// sprig's keys and values follow map iteration order, which would
		// make a rendered file differ on every render; the fork sorts.
		"keys":   sortedKeys,
		"values": sortedValues,
	}
}

// baseFuncs is every function except the store functions: sprig, then
// the fork conveniences, then confd's (confd's names win). Built once.
var baseFuncs = func() template.FuncMap {
	m := template.FuncMap(sprig.TxtFuncMap())
	maps.Copy(m, forkFuncs())
	maps.Copy(m, confdFuncs())
	return m
}()

// FuncNames returns the sorted names of every function a template can
// call besides text/template's builtins (and, call, printf, ...): the store
// functions, confd's general functions, the fork conveniences and sprig's.
func FuncNames() []string {
	names := slices.Collect(maps.Keys(baseFuncs))
	names = append(names, storeFuncNames...)
	sort.Strings(names)
	return slices.Compact(names)
}

// createMap is confd's map: map k1 v1 k2 v2 ...
func createMap(values ...any) (map[string]any, error) {
	if len(values)%2 != 0 {
		return nil, errors.New("invalid map call")
	}
	dict := make(map[string]any, len(values)/2)
	for i := 0; i < len(values); i += 2 {
		key, ok := values[i].(string)
		if !ok {
			return nil, errors.New("map keys must be strings")
		}
		dict[key] = values[i+1]
	}
	return dict, nil
}

// getenv returns the variable's value, or the default (or "") when the
// variable is unset or empty.
func getenv(key string, def ...string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	if len(def) > 0 {
		return def[0]
	}
	return ""
}

// lookupIP resolves host with fn and returns the addresses as sorted
// strings, or nil when resolution fails.
func lookupIP(fn func(string) ([]net.IP, error), host string) []string {
	ips, err := fn(host)
	if err != nil {
		return nil
	}
	out := make([]string, len(ips))
	for i, ip := range ips {
		out[i] = ip.String()
	}
	sort.Strings(out)
	return out
}

// filterIPs keeps the addresses containing sep ("." for IPv4, ":" for
// IPv6), as confd does; nil when none is left.
func filterIPs(ips []string, sep string) []string {
	var out []string
	for _, ip := range ips {
		if strings.Contains(ip, sep) {
			out = append(out, ip)
		}
	}
	return out
}

// lookupSRV resolves with fn and sorts the records as confd does: by the
// string target+port+priority+weight. An error yields an empty list.
func lookupSRV(fn func(service, proto, name string) (string, []*net.SRV, error), service, proto, name string) []*net.SRV {
	_, addrs, err := fn(service, proto, name)
	if err != nil {
		return []*net.SRV{}
	}
	str := func(s *net.SRV) string {
		return fmt.Sprintf("%s%d%d%d", s.Target, s.Port, s.Priority, s.Weight)
	}
	sort.SliceStable(addrs, func(i, j int) bool { return str(addrs[i]) < str(addrs[j]) })
	return addrs
}

// fileExists is true unless stat reports the file does not exist.
func fileExists(p string) bool {
	_, err := os.Stat(p)
	return !os.IsNotExist(err)
}

func base64Encode(data string) string {
	return base64.StdEncoding.EncodeToString([]byte(data))
}

func base64Decode(data string) (string, error) {
	s, err := base64.StdEncoding.DecodeString(data)
	return string(s), err
}

// reverse reverses a []string in place and returns it. Any other value,
// the KV pairs of gets and the list of jsonArray among them, is returned
// unchanged, as confd returns them (its type switch misses memkv.KVPairs
// and []interface{}).
func reverse(values any) any {
	if v, ok := values.([]string); ok {
		slices.Reverse(v)
	}
	return values
}

// sortByLength sorts values in place, shortest first (stable).
func sortByLength(values []string) []string {
	sort.SliceStable(values, func(i, j int) bool { return len(values[i]) < len(values[j]) })
	return values
}

// sortKVByLength sorts values in place by key length, shortest first
// (stable).
func sortKVByLength(values []KVPair) []KVPair {
	sort.SliceStable(values, func(i, j int) bool { return len(values[i].Key) < len(values[j].Key) })
	return values
}

// seq returns first..last inclusive, ascending; empty when first > last.
func seq(first, last int) []int {
	var arr []int
	for i := first; i <= last; i++ {
		arr = append(arr, i)
		if i == last { // avoid overflow at MaxInt
			break
		}
	}
	return arr
}

// sortedKeys returns the keys of the dicts, sorted.
func sortedKeys(dicts ...map[string]any) []string {
	var out []string
	for _, d := range dicts {
		for k := range d {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

// sortedValues returns the values of dict ordered by their sorted keys.
func sortedValues(dict map[string]any) []any {
	keys := sortedKeys(dict)
	out := make([]any, len(keys))
	for i, k := range keys {
		out[i] = dict[k]
	}
	return out
}
