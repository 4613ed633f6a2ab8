package resource

import (
	"fmt"

	"github.com/confit-dev/confit/template"
)

// secretMode is the mode of the destination of a resource whose template
// decrypts values (cget, cgetv, decrypt, ...) and whose file sets no mode,
// new or existing: its content is a secret.
const secretMode = 0o600

// secretStore returns s for a render of tmpl. When tmpl decrypts values
// it records so (the destination's mode, -noop), says once, when the file
// sets no mode, that the destination gets 0600, and gives s the prefix,
// against which the keys values are bound to are checked.
func (r *Resource) secretStore(tmpl *template.Template, s *template.Store) *template.Store {
	if !tmpl.Decrypts() {
		return s
	}
	if !r.decrypts.Swap(true) && !r.ModeSet {
		r.log.Info(fmt.Sprintf("%s decrypts values and sets no mode: %s gets mode %04o", r.Src, r.Dest, secretMode))
	}
	return s.WithPrefix(r.Prefix)
}

// decryptedDiff is the -noop line of a destination others may read whose
// template decrypts values: how much changes, not what.
func decryptedDiff(dest string, a, b []string) string {
	removed, added := countChanges(a, b)
	return fmt.Sprintf("# %s: %s removed, %s added (content not shown: the template decrypts values; -noop-show-secrets shows it)\n",
		dest, plural(removed, "line"), plural(added, "line"))
}
