package file

import (
	"context"
	"errors"
	"log/slog"

	"github.com/confit-dev/confit/backends"
)

// Options are the file backend's settings (see backends.Register): the
// -file and -filter flags, their config-file keys, CONFIT_FILE and
// CONFIT_FILTER, and the file and filter keys of a [backend] table.
type Options struct {
	Files  []string `setting:"file" usage:"file backend: YAML, JSON or TOML file or directory to read (repeatable)"`
	Filter string   `setting:"filter" default:"*" usage:"file backend: glob for file names when -file is a directory"`
}

// Validate reports a file backend given no file: a configuration error,
// found before anything runs.
func (o *Options) Validate() error {
	if len(o.Files) == 0 {
		return errors.New("file: no file given: -file (or file in a [backend] table) names a YAML, JSON or TOML file, or a directory of them")
	}
	return nil
}

func init() {
	backends.Register("file", func(_ context.Context, o *Options, log *slog.Logger) (backends.Backend, error) {
		b, err := New(o.Files, o.Filter)
		if err != nil {
			return nil, err
		}
		b.SetLogger(log)
		return b, nil
	})
}
