package resource

// The [backend] tables of these tests name backends, whose settings come
// from their packages' declarations.
import (
	_ "github.com/confit-dev/confit/backends/consul"
	_ "github.com/confit-dev/confit/backends/file"
)
