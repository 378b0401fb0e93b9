#!/usr/bin/env bash
# HTTP benchmarks: durable intake rate (wrk) on SQLite and PostgreSQL, and end-to-end latency at a constant
# rate with the recording sink. Needs wrk (Debian package) and release builds:
#   swift build -c release --product switchboard && swift build -c release --product TrivialRoute
#   Benchmarks/http/run.sh [postgres://user:password@127.0.0.1:5432/database]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
bin="$root/.build/release/switchboard"
trivial="$root/.build/release/TrivialRoute"
pg_url=${1:-}
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
export SWITCHBOARD_LOG_LEVEL=warning
# Makes the event ids of this invocation's intake runs unique, also against a PostgreSQL database kept from an earlier one.
token=$(date +%s)

cat > "$work/rules.yaml" <<'RULES'
version: 1
rulesets:
  - name: bench
    rules:
      - name: page on high priority
        object: Case
        runOn: salesforce
        conditions: [{ field: Priority, operator: equals, value: High }]
        applyTo: new
        actions: [{ action: createIncident, service: PBENCH, title: { prefix: "Case ", fields: [CaseNumber] } }]
RULES

start_serve() { # database-url extra-args...
    local db=$1; shift
    "$bin" rules import "$work/rules.yaml" --database-url "$db" >/dev/null
    "$bin" serve --port 0 --database-url "$db" "$@" > "$work/serve.log" 2>&1 &
    serve_pid=$!
    for _ in $(seq 1 100); do
        port=$(grep -o 'listening on http://127.0.0.1:[0-9]*' "$work/serve.log" | grep -o '[0-9]*$' || true)
        [ -n "$port" ] && return 0
        sleep 0.1
    done
    cat "$work/serve.log"; exit 1
}

intake() { # label database-url connections
    start_serve "$2"
    echo "== durable intake, $1 (wrk -t2 -c$3 -d10s, three runs)"
    local answered=0
    for run in 1 2 3; do
        wrk -t2 -c"$3" -d10s -s "$here/intake.lua" "http://127.0.0.1:$port" -- "$token-c$3-$run" > "$work/wrk.txt"
        grep -E "Requests/sec|Latency|Non-2xx" "$work/wrk.txt" | sed "s/^/  run $run: /"
        answered=$((answered + $(grep -o '^ *[0-9]* requests in' "$work/wrk.txt" | grep -o '[0-9]*')))
    done
    kill -TERM "$serve_pid"; wait "$serve_pid" || true
    # Every answered delivery must be a distinct stored event (a duplicate would cost no row and flatter the rate).
    case "$2" in
        postgres*)
            if command -v psql >/dev/null; then
                n=$(psql "$2" -tAc "SELECT count(*) FROM inbound_events WHERE external_id LIKE 'bench-$token-c$3-%'")
                echo "  $n events stored for $answered answered deliveries"
            fi ;;
        *) python3 -c 'import sqlite3, sys; n = sqlite3.connect(sys.argv[1]).execute("SELECT count(*) FROM inbound_events").fetchone()[0]; print(f"  {n} events stored for {sys.argv[2]} answered deliveries")' "$2" "$answered" ;;
    esac
}

# The machine's own yardstick, measured in the same run: a route that does no work, in a Hummingbird application
# with nothing else (TrivialRoute) and in Switchboard (`/healthz`), alternately. Machines of the same kind differ
# several-fold in speed from day to day, so the intake rates below are also given as a share of it.
echo "== yardstick: GET /healthz, a route that does no work (wrk -t2 -c64 -d10s, three runs each, alternating)"
for run in 1 2 3; do
    if [ -x "$trivial" ]; then
        trivial_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
        "$trivial" "$trivial_port" > /dev/null 2>&1 &
        trivial_pid=$!
        for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$trivial_port/healthz" > /dev/null 2>&1 && break; sleep 0.1; done
        wrk -t2 -c64 -d10s "http://127.0.0.1:$trivial_port/healthz" | grep -E "Requests/sec" | sed "s/^/  run $run, Hummingbird alone: /"
        kill -TERM "$trivial_pid"; wait "$trivial_pid" || true
    fi
    start_serve "$work/calibration.sqlite"
    wrk -t2 -c64 -d10s "http://127.0.0.1:$port/healthz" | grep -E "Requests/sec" | sed "s/^/  run $run, Switchboard:       /"
    kill -TERM "$serve_pid"; wait "$serve_pid" || true
done

# 64 connections, and 256 as in a burst of deliveries: more requests in flight make larger group commits.
intake "SQLite (WAL, synchronous=FULL)" "$work/intake.sqlite" 64
intake "SQLite (WAL, synchronous=FULL)" "$work/intake-256.sqlite" 256

echo "== end to end at 1,000 events/s, SQLite, recording sink (30 s)"
sink_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
start_serve "$work/latency.sqlite" --sink-url "http://127.0.0.1:$sink_port/actions"
python3 "$here/latency.py" --target "http://127.0.0.1:$port" --sink-port "$sink_port" --rate 1000 --seconds "${LATENCY_SECONDS:-30}" --pid "$serve_pid"
kill -TERM "$serve_pid"; wait "$serve_pid" || true
# The server's own view, without the load generator's delays: from the event's arrival at the intake to the
# action's result recorded after the sink answered (milliseconds, from the jobs table).
python3 - "$work/latency.sqlite" <<'STATS'
import sqlite3, sys
rows = sqlite3.connect(sys.argv[1]).execute(
    "SELECT received_at, updated_at - received_at FROM outbound_jobs WHERE status = 'done' AND received_at IS NOT NULL").fetchall()
ms = sorted(r[1] for r in rows)
if ms:
    at = lambda q: ms[min(len(ms) - 1, int(len(ms) * q))]
    print(f"server side, event received -> action recorded (ms, {len(ms)} actions): p50 {at(.5)}  p90 {at(.9)}  p99 {at(.99)}  max {ms[-1]}")
    # Per minute, to show whether the tail grows as the tables do.
    first, minutes = min(r[0] for r in rows), {}
    for received, took in rows:
        minutes.setdefault((received - first) // 60_000, []).append(took)
    if len(minutes) > 2:
        print("server side p99 per minute (ms): " + ", ".join(str(sorted(v)[int(len(v) * .99)]) for k, v in sorted(minutes.items()) if len(v) > 1000))
STATS

# Last: after a PostgreSQL intake its server goes on writing (checkpoint, vacuum) on the same cores, which stretched
# the latency run's tail when it came next (p99 189 ms against 15–17 ms in runs on their own).
if [ -n "$pg_url" ]; then intake "PostgreSQL" "$pg_url" 64; fi
