package template

import (
	"bytes"
	"os"
	"strings"
)

// A minimal txtar reader/writer (the format of golang.org/x/tools/txtar).
// github.com/rogpeppe/go-internal/txtar v1.16 wraps golang.org/x/tools/txtar,
// which go.sum does not list, so the tests carry their own copy of the
// trivial format: a comment, then files introduced by "-- NAME --" lines.

// txtarArchive is a comment and a list of files.
type txtarArchive struct {
	Comment []byte
	Files   []txtarFile
}

// txtarFile is one named file of an archive.
type txtarFile struct {
	Name string
	Data []byte
}

// parseTxtarFile reads and parses an archive.
func parseTxtarFile(file string) (*txtarArchive, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	return parseTxtar(data), nil
}

// parseTxtar parses data; there are no syntax errors in a txtar archive.
func parseTxtar(data []byte) *txtarArchive {
	a := new(txtarArchive)
	var cur *[]byte = &a.Comment
	for len(data) > 0 {
		line, rest, _ := bytes.Cut(data, []byte("\n"))
		data = rest
		if name, ok := txtarMarker(line); ok {
			a.Files = append(a.Files, txtarFile{Name: name})
			cur = &a.Files[len(a.Files)-1].Data
			continue
		}
		*cur = append(*cur, line...)
		*cur = append(*cur, '\n')
	}
	return a
}

// txtarMarker reports whether line is a file marker and returns the name.
func txtarMarker(line []byte) (string, bool) {
	s := string(line)
	if !strings.HasPrefix(s, "-- ") || !strings.HasSuffix(s, " --") || len(s) < 6 {
		return "", false
	}
	name := strings.TrimSpace(s[3 : len(s)-3])
	return name, name != ""
}

// formatTxtar serialises an archive.
func formatTxtar(a *txtarArchive) []byte {
	var b bytes.Buffer
	b.Write(txtarFixNL(a.Comment))
	for _, f := range a.Files {
		b.WriteString("-- " + f.Name + " --\n")
		b.Write(txtarFixNL(f.Data))
	}
	return b.Bytes()
}

func txtarFixNL(data []byte) []byte {
	if len(data) == 0 || data[len(data)-1] == '\n' {
		return data
	}
	return append(data, '\n')
}
