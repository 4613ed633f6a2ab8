package resource

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// RemoveStaleStages removes, from the directories of the destinations of
// rs, the stage files a confit killed in the middle of a commit left behind
// (kill -9 between writing a stage file and renaming or removing it): files
// named as writeStage names them, "." and a destination's base name
// (sanitized as stageBase does, or as it is) followed by the decimal
// random number only. A name is attributed to the destination of all (the
// resources this confit manages) with the longest matching prefix, so the
// stage files of /etc/app.conf1 are never taken for those of /etc/app.conf;
// nothing else is ever removed, and never a symlink or directory. Each
// removal is logged with the resource and the path. Resources with Noop or
// KeepStageFile are skipped (they write nothing / keep stage files on
// purpose). Call it only while no commit of all is in flight. It returns
// how many files it removed.
func RemoveStaleStages(rs, all []*Resource) int {
	// The prefixes of every managed destination, by directory.
	type owner struct {
		prefix string // file name prefix, without the directory
		r      *Resource
	}
	byDir := map[string][]owner{}
	for _, r := range all {
		dir, base := filepath.Split(r.Dest)
		dir = filepath.Clean(dir)
		byDir[dir] = append(byDir[dir], owner{"." + stageBase(base), r})
		if b := "." + base; b != "."+stageBase(base) {
			byDir[dir] = append(byDir[dir], owner{b, r})
		}
	}
	seen := map[string]bool{}
	removed := 0
	for _, r := range rs {
		if r.opts.Noop || r.opts.KeepStageFile {
			continue
		}
		dir := filepath.Clean(filepath.Dir(r.Dest))
		if seen[dir] {
			continue
		}
		seen[dir] = true
		entries, err := os.ReadDir(dir)
		if err != nil {
			if !errors.Is(err, fs.ErrNotExist) {
				r.log.Warn("look for stale stage files", "err", err)
			}
			continue
		}
		for _, e := range entries {
			name := e.Name()
			if !e.Type().IsRegular() || !strings.HasPrefix(name, ".") {
				continue
			}
			var best *owner
			for i, o := range byDir[dir] {
				if strings.HasPrefix(name, o.prefix) && (best == nil || len(o.prefix) > len(best.prefix)) {
					best = &byDir[dir][i]
				}
			}
			if best == nil || !isStageSuffix(name[len(best.prefix):]) {
				continue
			}
			if best.r.opts.Noop || best.r.opts.KeepStageFile {
				continue
			}
			p := filepath.Join(dir, name)
			if err := os.Remove(p); err != nil {
				if !errors.Is(err, fs.ErrNotExist) {
					best.r.log.Warn("remove stale stage file", "stage", p, "err", err)
				}
				continue
			}
			removed++
			best.r.log.Warn("removed a stale stage file (left by an interrupted run)", "stage", p)
		}
	}
	return removed
}

// isStageSuffix reports whether s is the random part of a stage file's
// name: a decimal uint32 (what writeStage appends; confd's stage files end
// in decimal digits too).
func isStageSuffix(s string) bool {
	if s == "" || len(s) > 10 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	_, err := strconv.ParseUint(s, 10, 32)
	return err == nil
}
