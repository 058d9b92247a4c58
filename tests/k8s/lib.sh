# shellcheck shell=bash
# Shell helpers shared by cluster.sh, node.sh and registry.sh (sourced; each defines die()).

# A free TCP port on 127.0.0.1 (the kernel picks it; the process binds it moments later).
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

start() { # DIR NAME COMMAND...: detached, logged to DIR/NAME.log, pid in DIR/NAME.pid
    local dir=$1 name=$2
    shift 2
    # setsid forks when the caller leads a process group (job control), so $! may not be the
    # process: the process writes its own pid, then becomes the binary.
    rm -f "$dir/$name.pid"
    # shellcheck disable=SC2016  # $$ and $@ belong to the inner shell
    setsid bash -c 'echo $$ >"$1"; shift; exec "$@"' _ "$dir/$name.pid" "$@" >"$dir/$name.log" 2>&1 </dev/null &
    for _ in $(seq 1 50); do [ -s "$dir/$name.pid" ] && return 0; sleep 0.1; done
    die "$name did not start (log: $dir/$name.log)"
}

stop_pid() { # PID: SIGTERM, then SIGKILL after 5 s (callers check first that PID is theirs)
    local pid=$1
    kill "$pid"
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
    return 0
}
