package template_test

import (
	"fmt"

	"github.com/confit-dev/confit/template"
)

func Example() {
	tm, err := template.Parse("haproxy.cfg.tmpl", `backend app
{{- range $id := lsdir "/upstreams"}}
    server {{$id}} {{getv (printf "/upstreams/%s/addr" $id)}} weight {{getv (printf "/upstreams/%s/weight" $id) "1"}}
{{- end}}
`, template.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	store := template.NewStore(map[string]string{
		"/upstreams/web1/addr":   "10.0.0.1:80",
		"/upstreams/web1/weight": "5",
		"/upstreams/web2/addr":   "10.0.0.2:80",
	})
	out, reads, err := tm.Execute(store)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Print(string(out))
	fmt.Println("keys:", reads.Keys)
	fmt.Println("prefixes:", reads.Prefixes)
	// Output:
	// backend app
	//     server web1 10.0.0.1:80 weight 5
	//     server web2 10.0.0.2:80 weight 1
	// keys: [/upstreams/web1/addr /upstreams/web1/weight /upstreams/web2/addr /upstreams/web2/weight]
	// prefixes: [/upstreams]
}
