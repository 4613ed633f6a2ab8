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
