package resource

import (
	"errors"

	"github.com/confit-dev/confit/backends"
)

// ErrRegisterOnly is returned by Load for a file with a [register] table
// and no [template] table: it announces a service (the register package)
// and renders nothing. LoadDir leaves such files out without an error.
var ErrRegisterOnly = errors.New("a [register] table only: not a template resource")

// BackendSpec returns the backend the file's [backend] table names, as
// DecodeConfig checked it; nil without a [backend] table.
func (c *Config) BackendSpec() *backends.Spec { return c.spec }

// HasTemplate reports whether the file renders a template: false for a
// file with only a [register] table.
func (c *Config) HasTemplate() bool { return c.hasTemplate || c.Register == nil }
