#!/bin/sh
# Container entrypoint: render the configuration once from the store, then
# replace this shell with the application (exec keeps it PID 1, so it gets
# the container's signals). If any resource fails to render, check or
# write, the container stops here with confit's error instead of starting
# the application on a stale or missing file.
#
# confit takes its settings from the environment (CONFIT_<FLAG>), e.g.
#   CONFIT_BACKEND=etcd CONFIT_NODE=http://etcd:2379 CONFIT_CONFDIR=/etc/confd
# Usage (Dockerfile): ENTRYPOINT ["/entrypoint.sh"]  CMD ["myapp", "-config", "/etc/myapp/app.conf"]
set -eu
confit -onetime || exit 1
exec "$@"
