#!/bin/sh
# Sidecar: keep the configuration in step with the store for as long as the
# pod runs. confit renders every resource once at start, then re-renders
# the ones whose keys change and runs their reload_cmd (which signals the
# application through the pid file on a shared volume; share the process
# namespace, e.g. shareProcessNamespace: true in Kubernetes).
#
# Settings come from the environment as for entrypoint.sh. exec: confit is
# PID 1 of the sidecar and gets SIGTERM; it finishes the work in flight and
# exits 0.
set -eu
exec confit -watch
