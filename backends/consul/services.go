package consul

import (
	"encoding/json"
	"fmt"
	"github.com/confit-dev/confit/backends"
	"net/url"
	"sort"

	"github.com/hashicorp/consul/api"
)

// Instance is the value stored under "/@service/<name>/<instance>" and
// "/@service-any/<name>/<instance>", encoded as JSON: the shared
// [backends.ServiceInstance].
type Instance = backends.ServiceInstance

// encodeInstances turns a health/service answer into virtual keys under
// root ("/@service/web").
func encodeInstances(root string, entries []*api.ServiceEntry) (map[string]string, error) {
	ids := map[string]int{}
	for _, e := range entries {
		if e.Service != nil {
			ids[e.Service.ID]++
		}
	}
	out := make(map[string]string, len(entries))
	for _, e := range entries {
		if e.Service == nil {
			continue
		}
		inst := Instance{
			ID:      e.Service.ID,
			Name:    e.Service.Service,
			Address: e.Service.Address,
			Port:    e.Service.Port,
			Tags:    append([]string{}, e.Service.Tags...),
			Meta:    map[string]string{},
			Status:  e.Checks.AggregatedStatus(),
		}
		sort.Strings(inst.Tags)
		for k, v := range e.Service.Meta {
			inst.Meta[k] = v
		}
		if e.Node != nil {
			inst.Node = e.Node.Node
			if inst.Address == "" {
				inst.Address = e.Node.Address
			}
		}
		b, err := json.Marshal(inst)
		if err != nil {
			return nil, fmt.Errorf("consul: encode instance %q: %w", inst.ID, err)
		}
		key := url.PathEscape(inst.ID)
		if ids[inst.ID] > 1 {
			key += "@" + url.PathEscape(inst.Node)
		}
		out[root+"/"+key] = string(b)
	}
	return out, nil
}

// encodeServices turns a catalog/services answer into "/@services/<name>"
// keys whose values are the JSON list of tags, sorted.
func encodeServices(svcs map[string][]string) (map[string]string, error) {
	out := make(map[string]string, len(svcs))
	for name, tags := range svcs {
		t := append([]string{}, tags...)
		sort.Strings(t)
		b, err := json.Marshal(t)
		if err != nil {
			return nil, fmt.Errorf("consul: encode service %q: %w", name, err)
		}
		out[ServicesPrefix+"/"+url.PathEscape(name)] = string(b)
	}
	return out, nil
}
