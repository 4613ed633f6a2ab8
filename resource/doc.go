// Package resource turns confd template resources (the TOML files under
// <confdir>/conf.d) into Resources, and runs the pipeline that keeps one
// destination file in sync with the key-value store:
//
//	render (in memory) → compare → stage → check_cmd → install → reload_cmd → restore if it failed
//
// # Resource files
//
// A resource file has a "template" table and, optionally, a "backend" table:
//
//	[template]
//	src = "haproxy.cfg.tmpl"          # required, relative to <confdir>/templates
//	dest = "/etc/haproxy/haproxy.cfg" # required
//	prefix = "/lb"                    # replaced by a non-empty global prefix
//	keys = ["/services", "/tls"]      # prefixes fetched and watched
//	mode = "644"                      # always octal: "644" == "0644"
//	owner = "haproxy"                 # or uid = 99; uid/gid win over owner/group
//	check_cmd = "haproxy -c -f {{.src}}"
//	reload_cmd = "systemctl reload haproxy"
//	check_cmd_timeout = "30s"
//	reload_cmd_timeout = "1m"
//	wait = "2s:10s"                   # min[:max] quiet period, used by the daemon
//	rollback = true                   # used by the daemon
//
//	[backend]                         # optional per-resource backend
//	backend = "consul"
//	nodes = ["127.0.0.1:8500"]
//
// Key names must be spelled exactly as above, in lower case. confd matched
// field names case-insensitively ("Dest", "Mode"); confit rejects any key it
// does not know, with an error naming the file and the key and, for a key
// that only differs in case, the spelling it expected. Silently ignoring a
// misspelt check_cmd would skip the check, which is worse than failing.
//
// Differences from confd, on purpose:
//   - mode is always octal; confd read "644" as decimal (0204).
//   - owner and group are supported (as in the abtreece fork).
//   - check_cmd and reload_cmd are Go templates with {{.src}} and {{.dest}}.
//     A path made only of letters, digits and / . _ - + , : @ % is
//     substituted verbatim, as in confd; any other path becomes a reference
//     to $CONFIT_SRC / $CONFIT_DEST (exported to the command), quoted for
//     where it stands (bare, '…' or "…"), so no file name is ever run as
//     shell code. Stage file names are made of those characters only. In check_cmd {{.src}} is
//     the stage file; in reload_cmd (which runs after the commit, when the
//     stage file no longer exists) {{.src}} is the destination.
//   - Commands run with a timeout, and the whole process group is killed
//     when it expires.
//
// # Prefixes and keys
//
// The effective prefix is the global prefix (Options.Prefix) when it is
// non-empty, else the resource's prefix, made absolute and clean. Each key
// becomes path.Join(prefix, key). Templates see keys relative to the prefix,
// exactly as in confd: with prefix "/app", the store key "/app/db/url" is
// read in the template as "/db/url".
//
// # Commit
//
// Rendering happens in memory. When the bytes, mode, uid and gid already
// match the destination nothing is written and no command runs. Otherwise
// the output is written to a stage file next to the destination
// (".<base><random>"), created with O_EXCL and the final mode and owner,
// fsynced, checked with check_cmd, renamed over the destination (falling
// back to an in-place write when rename fails with EBUSY or EXDEV, as for a
// bind-mounted file), the directory is fsynced, and reload_cmd runs.
// A failed check leaves the destination byte-for-byte untouched.
//
// A caller committing a batch uses Stage and Staged.Install, the two halves
// of Commit: it writes every stage file of the batch first, then fsyncs,
// checks and installs each, so the file system commits the new files
// together instead of one journal commit per file.
package resource
