# lib/daemons.sh — what ./hotlinectl and cluster/clusterctl share: messages and the state-dir lock.
# The processes themselves are started, stopped and checked by the lab manager (lab/daemon.py,
# `python -m lab`), which runs under this lock. Sourced, never run; the sourcing script runs under
# `set -euo pipefail` and sets, before sourcing:
#   PROG       its name, for messages
#   LOCK_FILE  the lock that serialises its runs (one per state dir)
# shellcheck shell=bash

say() { printf '%s: %s\n' "$PROG" "$*"; }
warn() { printf '%s: warning: %s\n' "$PROG" "$*" >&2; }
die() { printf '%s: error: %s\n' "$PROG" "$*" >&2; exit 1; }

# Serialise runs of one script that change state. fd 9 = the lock. The `python -m lab` the script
# runs inherits it and is told so (HOTLINE_STATE_LOCKED=1); the daemons it starts never hold it
# (lab.daemon.spawn keeps only stdin/stdout/stderr).
lock_state() {
    exec 9>"$LOCK_FILE"
    flock -w 600 9 || die "another $PROG holds $LOCK_FILE"
}
unlock_state() { exec 9>&-; }

# A pid file is trusted only while its process is alive AND its command line still mentions what
# we started (pids get reused).
pid_alive() {   # pidfile word
    local pidfile=$1 word=$2 pid
    [[ -s $pidfile ]] || return 1
    pid=$(<"$pidfile")
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    # Mid-exec the command line reads empty for a moment (lab.daemon.pid_alive says more): read
    # again for up to 1 s unless the process is a zombie, whose line stays empty.
    local line tries=0
    while line=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null); [[ -z $line && $tries -lt 20 ]]; do
        [[ $(awk '{ print $3 }' "/proc/$pid/stat" 2>/dev/null) != Z ]] || return 1
        sleep 0.05
        tries=$((tries + 1))
    done
    [[ $line == *"$word"* ]]
}
