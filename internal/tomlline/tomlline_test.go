package tomlline

import "testing"

func TestKeyLine(t *testing.T) {
	const data = `top = 1
[template]
src = "a.tmpl"
  "dest" = "/x"
[register]
key = "/k"
check.http = "http://x"
[register.check]
interval = "1s"
[[template.hooks]]
`
	for _, tc := range []struct {
		name, key string
		want      int
	}{
		{name: "top level", key: "top", want: 1},
		{name: "table header", key: "template", want: 2},
		{name: "key in its table", key: "template.src", want: 3},
		{name: "quoted, indented", key: "template.dest", want: 4},
		{name: "same name, other table", key: "register.key", want: 6},
		{name: "dotted key", key: "register.check", want: 7},
		{name: "nested table's key", key: "register.check.interval", want: 9},
		{name: "array of tables", key: "template.hooks", want: 10},
		{name: "absent", key: "template.mode", want: 0},
		{name: "absent table", key: "nowhere.key", want: 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := KeyLine([]byte(data), tc.key); got != tc.want {
				t.Errorf("KeyLine(%q) = %d, want %d", tc.key, got, tc.want)
			}
		})
	}
}
