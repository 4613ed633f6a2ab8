#!/bin/sh
# reload.sh: confit's reload_cmd for a master-worker HAProxy (haproxy -W).
#
# Sends SIGUSR2 to the master, then waits until a new worker (a new child
# of the master) is running, and confirms it is still running a moment
# later. `kill -USR2` alone exits 0 even when the reload fails (a port that
# is taken, for instance): the master then logs "Loading failure!" and the
# old worker keeps serving. This script reports that as a failure, so that
# confit puts the previous file back and reloads again (rollback).
#
# Exit status: 0 the new worker runs, or HAProxy is not running at all (no
# pid file: nothing to reload, as when confit -onetime renders the first
# configuration before HAProxy starts); 1 the reload failed or could not be
# confirmed within HAPROXY_RELOAD_TIMEOUT seconds.
#
# Environment:
#   HAPROXY_PIDFILE         the master's pid file (haproxy -p), default /run/haproxy.pid
#   HAPROXY_RELOAD_TIMEOUT  seconds to wait for the new worker, default 10
#
# Needs only sh, kill, sleep and either /proc/PID/task/PID/children (Linux)
# or pgrep (procps, busybox).
set -u

pidfile=${HAPROXY_PIDFILE:-/run/haproxy.pid}
timeout=${HAPROXY_RELOAD_TIMEOUT:-10}

if [ ! -e "$pidfile" ]; then
	echo "reload.sh: no $pidfile: haproxy is not running, nothing to reload"
	exit 0
fi
read -r master <"$pidfile" || master=
case $master in
'' | *[!0-9]*)
	echo "reload.sh: $pidfile does not hold a pid" >&2
	exit 1
	;;
esac
if ! kill -0 "$master" 2>/dev/null; then
	echo "reload.sh: haproxy master $master (from $pidfile) is not running" >&2
	exit 1
fi

# children prints the pids of the master's children (its workers) on one line.
children() {
	if [ -r "/proc/$master/task/$master/children" ]; then
		echo $(cat "/proc/$master/task/$master/children")
	else
		echo $(pgrep -P "$master")
	fi
}

before=" $(children) "
kill -USR2 "$master" || exit 1

tries=$((timeout * 20))
while [ "$tries" -gt 0 ]; do
	sleep 0.05
	tries=$((tries - 1))
	for pid in $(children); do
		case $before in
		*" $pid "*) continue ;; # a worker from before the reload
		esac
		# A new worker. Confirm it survived its start-up.
		sleep 0.2
		case " $(children) " in
		*" $pid "*)
			echo "reload.sh: haproxy reloaded: master $master, new worker $pid"
			exit 0
			;;
		esac
		echo "reload.sh: the new haproxy worker $pid exited at start (see haproxy's log)" >&2
		exit 1
	done
	if ! kill -0 "$master" 2>/dev/null; then
		echo "reload.sh: haproxy master $master exited during the reload" >&2
		exit 1
	fi
done
echo "reload.sh: no new haproxy worker within ${timeout}s: the reload failed (\"Loading failure!\" in haproxy's log?); the old worker keeps serving" >&2
exit 1
