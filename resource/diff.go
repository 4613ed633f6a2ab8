package resource

// The diff Noop mode writes for a changed destination.

import (
	"fmt"
	"os"
	"strings"
	"sync"

	"github.com/pmezard/go-difflib/difflib"
)

// diffMu serialises writes to Options.Diff across resources.
var diffMu sync.Mutex

// writeDiff writes a unified diff from the destination to out to
// Options.Diff, labelled with the destination path ("/dev/null" for a
// missing one), plus a line for a mode or owner change.
func (r *Resource) writeDiff(cur fileState, out []byte, want target) error {
	if r.opts.Diff == nil {
		return nil
	}
	from := r.Dest
	if !cur.exists {
		from = "/dev/null"
	}
	a, b := splitLines(cur.data), splitLines(out)
	var text string
	if hidden := (cur.exists && cur.mode&0o004 == 0) || want.mode&0o004 == 0; hidden && !r.opts.NoopShowSecrets {
		// A file others may not read may hold secrets: say how much
		// changes, not what.
		mode := want.mode
		if cur.exists && cur.mode&0o004 == 0 {
			mode = cur.mode
		}
		removed, added := countChanges(a, b)
		text = fmt.Sprintf("# %s: %s removed, %s added (content not shown: mode %04o, not readable by others; -noop-show-secrets shows it)\n",
			r.Dest, plural(removed, "line"), plural(added, "line"), unixMode(mode))
	} else if r.decrypts.Load() && !r.opts.NoopShowSecrets {
		text = decryptedDiff(r.Dest, a, b) // secret.go
	} else {
		var err error
		text, err = difflib.GetUnifiedDiffString(difflib.UnifiedDiff{
			A:        a,
			B:        b,
			FromFile: from,
			ToFile:   r.Dest,
			Context:  3,
		})
		if err != nil {
			return err
		}
	}
	if cur.exists {
		if cur.mode != want.mode {
			text += fmt.Sprintf("# %s: mode %04o -> %04o\n", r.Dest, unixMode(cur.mode), unixMode(want.mode))
		}
		if cur.uid != want.uid || cur.gid != want.gid {
			text += fmt.Sprintf("# %s: owner %d:%d -> %d:%d\n", r.Dest, cur.uid, cur.gid, want.uid, want.gid)
		}
	}
	diffMu.Lock()
	defer diffMu.Unlock()
	_, err := r.opts.Diff.Write([]byte(text))
	return err
}

// countChanges returns how many lines a diff from a to b removes and adds.
func countChanges(a, b []string) (removed, added int) {
	for _, op := range difflib.NewMatcher(a, b).GetOpCodes() {
		switch op.Tag {
		case 'r':
			removed += op.I2 - op.I1
			added += op.J2 - op.J1
		case 'd':
			removed += op.I2 - op.I1
		case 'i':
			added += op.J2 - op.J1
		}
	}
	return removed, added
}

// plural is "1 line", "2 lines".
func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

// splitLines splits b after each newline for difflib. A last line without
// a newline is marked as diff(1) does.
func splitLines(b []byte) []string {
	lines := strings.SplitAfter(string(b), "\n")
	if last := lines[len(lines)-1]; last == "" {
		lines = lines[:len(lines)-1]
	} else {
		lines[len(lines)-1] = last + "\n\\ No newline at end of file\n"
	}
	return lines
}

// unixMode converts an os.FileMode to the octal number chmod(1) and
// chmod(2) take.
func unixMode(m os.FileMode) uint32 {
	n := uint32(m.Perm())
	if m&os.ModeSetuid != 0 {
		n |= 0o4000
	}
	if m&os.ModeSetgid != 0 {
		n |= 0o2000
	}
	if m&os.ModeSticky != 0 {
		n |= 0o1000
	}
	return n
}
