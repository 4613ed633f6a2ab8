package resource

import (
	"fmt"

	"github.com/confit-dev/confit/template"
)

// secretMode is the mode of the destination of a resource whose template
// decrypts values (cget, cgetv, decrypt, ...) and whose file sets no mode,
// new or existing: its content is a secret.
const secretMode = 0o600

// noteDecrypts records whether tmpl decrypts values, and says once, when
// it does and the file sets no mode, that the destination gets 0600.
func (r *Resource) noteDecrypts(tmpl *template.Template) {
	if !tmpl.Decrypts() || r.decrypts.Swap(true) || r.ModeSet {
		return
	}
	r.log.Info(fmt.Sprintf("%s decrypts values and sets no mode: %s gets mode %04o", r.Src, r.Dest, secretMode))
}

// decryptedDiff is the -noop line of a destination others may read whose
// template decrypts values: how much changes, not what.
func decryptedDiff(dest string, a, b []string) string {
	removed, added := countChanges(a, b)
	return fmt.Sprintf("# %s: %s removed, %s added (content not shown: the template decrypts values; -noop-show-secrets shows it)\n",
		dest, plural(removed, "line"), plural(added, "line"))
}
