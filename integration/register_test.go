package integration

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/confit-dev/confit/internal/testserver"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// TestRegisterBesideWatch: confit -watch with a conf.d holding a template
// resource and a file with only a [register] table renders the one and
// keeps the other registered in the same process; /health and /metrics
// show the registration; SIGTERM deletes the key, drains and exits 0.
func TestRegisterBesideWatch(t *testing.T) {
	etcd := testserver.Etcd(t, testserver.EtcdOptions{})
	admin := etcdAdmin(t, etcd, "", "")
	var healthy atomic.Bool
	healthy.Store(true)
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !healthy.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer app.Close()

	dir := t.TempDir()
	files := map[string]string{
		"conf.d/app.toml":      "[template]\nsrc = \"app.tmpl\"\ndest = \"" + filepath.Join(dir, "app.conf") + "\"\nkeys = [\"/services/web\"]\n",
		"templates/app.tmpl":   "{{range gets \"/services/web/*\"}}{{base .Key}}={{.Value}}\n{{end}}",
		"conf.d/register.toml": "[register]\nkey = \"/services/web/self\"\nvalue = \"" + strings.TrimPrefix(app.URL, "http://") + "\"\nttl = \"5s\"\ndrain = \"1s\"\n[register.check]\nhttp = \"" + app.URL + "/health\"\ninterval = \"100ms\"\ntimeout = \"100ms\"\nrise = 1\nfall = 1\n",
	}
	writeFiles(t, dir, files)
	d := startConfitDaemon(t, "-backend", "etcd", "-node", etcd.Endpoint(), "-confdir", dir)

	// The registration feeds the same process's template.
	waitFile(t, filepath.Join(dir, "app.conf"), "self="+strings.TrimPrefix(app.URL, "http://")+"\n")
	health := func() (int, string) {
		resp, err := metricsClient.Get(d.metrics + "/health")
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	waitFor(t, "/health shows the registration up", func() (bool, string) {
		code, body := health()
		return code == 200 && strings.Contains(body, "ok\n") && strings.Contains(body, "register "+filepath.Join(dir, "conf.d", "register.toml")+" (key /services/web/self): up"), fmt.Sprint(code, body)
	})
	m, err := d.scrape()
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := sumMetric(m, "confit_register_up"); !ok || v != 1 {
		t.Errorf("confit_register_up = %v (%v), want 1", v, ok)
	}

	// The check fails: the key goes, /health stays 200 (the service is
	// down, not confit) and says why.
	healthy.Store(false)
	waitFile(t, filepath.Join(dir, "app.conf"), "")
	waitFor(t, "/health shows the registration down", func() (bool, string) {
		code, body := health()
		return code == 200 && strings.Contains(body, "): down (http check") && strings.Contains(body, "status 503"), fmt.Sprint(code, body)
	})
	healthy.Store(true)
	waitFile(t, filepath.Join(dir, "app.conf"), "self="+strings.TrimPrefix(app.URL, "http://")+"\n")

	wch := admin.Watch(t.Context(), "/services/web/self")
	start := time.Now()
	d.signal(t, os.Interrupt)
	select {
	case wr := <-wch:
		if len(wr.Events) == 0 || wr.Events[0].Type != clientv3.EventTypeDelete {
			t.Fatalf("first event after SIGINT: %+v, want the delete", wr.Events)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("no delete within 15 s of SIGINT")
	}
	select {
	case <-d.done:
	case <-time.After(15 * time.Second):
		t.Fatal("confit did not exit within 15 s of SIGINT")
	}
	if code := d.cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("exit %d, want 0\n%s", code, d.log.String())
	}
	if took := time.Since(start); took < time.Second {
		t.Errorf("exited %v after SIGINT, before the 1 s drain", took)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if resp, err := admin.Get(ctx, "/services/web/self"); err != nil || len(resp.Kvs) != 0 {
		t.Errorf("key after exit: %v, %v", resp, err)
	}
}

// sumMetric sums every series of name.
func sumMetric(m map[string]float64, name string) (float64, bool) {
	var sum float64
	found := false
	for k, v := range m {
		if n, _, _ := strings.Cut(k, "{"); n == name {
			sum += v
			found = true
		}
	}
	return sum, found
}
