package register

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"github.com/confit-dev/confit/internal/reap"
	"io"
	"net"
	"net/http"
	neturl "net/url"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// prober runs one check; nil means it passed. The error says why it failed
// (status, connection error, exit code and output), never more than
// maxCheckOutput of it.
type prober func(ctx context.Context) error

// newProber returns the prober of c. HTTP checks share client (no
// redirects followed: a redirect answers with its own status).
func newProber(c Check, client *http.Client) prober {
	switch {
	case c.HTTP != "":
		return func(ctx context.Context) error { return probeHTTP(ctx, client, c.HTTP, c.Status) }
	case c.TCP != "":
		return func(ctx context.Context) error { return probeTCP(ctx, c.TCP) }
	default:
		return func(ctx context.Context) error { return probeCmd(ctx, c.Cmd) }
	}
}

// newHTTPClient is the client of HTTP checks: no proxy from the
// environment (checks target the local instance), no redirects, no kept
// connections (a check must see a server that stopped accepting).
func newHTTPClient() *http.Client {
	return &http.Client{
		Transport: &http.Transport{DisableKeepAlives: true, Proxy: nil},
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

func probeHTTP(ctx context.Context, client *http.Client, rawURL string, want int) error {
	url := rawURL // for messages: without a password
	if u, err := neturl.Parse(rawURL); err == nil {
		url = u.Redacted()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return fmt.Errorf("http check %s: %w", url, err)
	}
	req.Header.Set("User-Agent", "confit-register")
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("http check: %w", err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	ok := resp.StatusCode >= 200 && resp.StatusCode < 300
	if want != 0 {
		ok = resp.StatusCode == want
	}
	if !ok {
		if want != 0 {
			return fmt.Errorf("http check %s: status %d, want %d", url, resp.StatusCode, want)
		}
		return fmt.Errorf("http check %s: status %d, want 2xx", url, resp.StatusCode)
	}
	return nil
}

func probeTCP(ctx context.Context, addr string) error {
	conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("tcp check: %w", err)
	}
	return conn.Close()
}

// probeCmd runs argv without a shell, in its own process group, which is
// killed when ctx ends (the check's timeout).
func probeCmd(ctx context.Context, argv []string) error {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	var out limitedBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = time.Second
	err := reap.Run(cmd) // as PID 1, the reaper must not take its status
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		err = fmt.Errorf("timed out: %w", ctx.Err())
	}
	msg := strings.TrimSpace(out.String())
	if msg != "" {
		return fmt.Errorf("cmd check %s: %w: %s", argv[0], err, msg)
	}
	return fmt.Errorf("cmd check %s: %w", argv[0], err)
}

// limitedBuffer keeps the first maxCheckOutput bytes written to it.
type limitedBuffer struct{ bytes.Buffer }

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if room := maxCheckOutput - b.Len(); room > 0 {
		b.Buffer.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

// errNoCheck is what a registration reports before its first check.
var errNoCheck = errors.New("not checked yet")
