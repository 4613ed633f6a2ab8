package resource

import (
	"sync"

	"github.com/confit-dev/confit/template"
)

// templateCache shares parsed templates among the resources of one LoadDir
// that render the same template file with the same text: 200 resources
// rendering one template parse it once and hold one parsed copy (clones
// for concurrent renders share its parse trees).
type templateCache struct {
	mu sync.Mutex
	m  map[templateKey]*sharedTemplate
}

// templateKey names a template: its path and its text (a key of its own
// rather than the two joined, which copied every template's text).
type templateKey struct{ src, text string }

// sharedTemplate is one template text and, once parsed, its parse.
type sharedTemplate struct {
	users int // resources using it; final once LoadDir returns
	once  sync.Once
	tmpl  *template.Template
	err   error
}

// entry returns the entry of the template at src with text, counting one
// more user. A nil cache (Load on its own) gives an unshared entry.
func (c *templateCache) entry(src, text string) *sharedTemplate {
	if c == nil {
		return &sharedTemplate{users: 1}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	key := templateKey{src, text}
	e := c.m[key]
	if e == nil {
		e = &sharedTemplate{}
		c.m[key] = e
	}
	e.users++
	return e
}

// parse returns the entry's parsed template, parsing text with r on first
// use; every user gets the same template or the same error.
func (e *sharedTemplate) parse(r *Resource, text string) (*template.Template, error) {
	e.once.Do(func() { e.tmpl, e.err = r.parseTemplate(text) })
	return e.tmpl, e.err
}
