#!/bin/sh
# Container entrypoint in exec mode: confit renders every resource from the
# store, then starts the application (the container's CMD, the words after
# --) as its child, and stays PID 1:
#   - if any resource fails to render, check or write, the container exits 1
#     before the application starts on a stale or missing file;
#   - when the store changes, confit re-renders and sends the application
#     SIGHUP (exec_action in conf.d/app.toml: "signal", "restart" or "none");
#   - SIGTERM (docker stop) goes to the application, SIGKILL after
#     -exec-kill-timeout, and the container exits with the application's
#     code; other signals are forwarded; orphaned processes are reaped;
#   - if the application crashes, it is restarted with backoff, and the
#     container exits after 5 crashes within a minute.
#
# confit takes its settings from the environment (CONFIT_<FLAG>), e.g.
#   CONFIT_BACKEND=etcd CONFIT_NODE=http://etcd:2379 CONFIT_CONFDIR=/etc/confd
# Usage (Dockerfile): ENTRYPOINT ["/entrypoint.sh"]  CMD ["myapp", "-config", "/etc/myapp/app.conf"]
set -eu
exec confit -watch -exec-kill-timeout 20s -- "$@"
