# lib/daemons.sh — process handling shared by ./hotlinectl and cluster/clusterctl: messages, the
# state-dir lock, and starting/stopping daemons by pid file. Sourced, never run; the sourcing
# script runs under `set -euo pipefail` and sets, before sourcing:
#   PROG       its name, for messages
#   LOCK_FILE  the lock that serialises its runs (one per state dir)
# shellcheck shell=bash

say() { printf '%s: %s\n' "$PROG" "$*"; }
warn() { printf '%s: warning: %s\n' "$PROG" "$*" >&2; }
die() { printf '%s: error: %s\n' "$PROG" "$*" >&2; exit 1; }

# Serialise runs of one script that change state. fd 9 = the lock; daemons close it
# (close_inherited_fds) so they never hold it.
lock_state() {
    exec 9>"$LOCK_FILE"
    flock -w 600 9 || die "another $PROG holds $LOCK_FILE"
}
unlock_state() { exec 9>&-; }

# A daemon keeps only stdin/stdout/stderr. Any other descriptor handed to us — our own lock on
# fd 9, a lock the caller took (`flock FILE ./hotlinectl start`), a CI runner's pipes — would
# otherwise stay open for the daemon's whole life (an Asterisk holding the caller's lock blocks
# the next caller until it stops). Call in the subshell, right before `exec`.
close_inherited_fds() {
    local fd
    for fd in "/proc/$BASHPID/fd"/*; do
        fd=${fd##*/}
        if ((fd > 2 && fd < 255)); then eval "exec $fd>&-" 2>/dev/null || true; fi
    done
}

# A pid file is trusted only while its process is alive AND its command line still mentions what
# we started (pids get reused). Processes are only ever signalled by these pids.
pid_alive() {   # pidfile word
    local pidfile=$1 word=$2 pid
    [[ -s $pidfile ]] || return 1
    pid=$(<"$pidfile")
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$word"
}

wait_gone() {   # pid seconds
    local pid=$1 i
    for ((i = 0; i < $2 * 10; i++)); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    return 1
}

stop_pid() {    # pidfile word label first-signal grace-seconds
    local pidfile=$1 word=$2 label=$3 sig=$4 grace=$5 pid
    if ! pid_alive "$pidfile" "$word"; then
        rm -f "$pidfile"
        return 0
    fi
    pid=$(<"$pidfile")
    say "stopping $label (pid $pid, SIG$sig)"
    kill -"$sig" "$pid" 2>/dev/null || true
    if ! wait_gone "$pid" "$grace"; then
        warn "$label (pid $pid) still running after ${grace}s: SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        wait_gone "$pid" 5 || die "$label (pid $pid) survives SIGKILL"
    fi
    rm -f "$pidfile"
}

rotate_log() { [[ -e $1 ]] && mv -f "$1" "$1.1"; return 0; }
