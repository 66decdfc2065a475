#!/usr/bin/env bash
# run-local.sh runs the whole of Vigil on this machine: vigil-server with
# its embedded SQLite store, an admin account, a local vigil-agent enrolled
# with a one-time join token, and the first scan of this machine. It prints
# the web UI's address and credentials, then waits; Ctrl-C stops the agent,
# then the server, and exits 0. A second run reuses the data directory: no
# new admin, no new enrolment.
#
# `make run` calls it. Environment overrides (the tests use them):
#   VIGIL_RUN_DIR    data directory          (default: <repo>/.vigil-run)
#   VIGIL_RUN_HTTP   HTTPS address (UI, API) (default: 127.0.0.1:8443)
#   VIGIL_RUN_GRPC   agent gRPC address      (default: 127.0.0.1:8444)
#   VIGIL_RUN_BIN    directory holding vigil-server and vigil-agent; when
#                    set, nothing is built (default: build into <repo>/bin)
#   VIGIL_RUN_SCAN_TIMEOUT  seconds to wait for the first scan (default: 180)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
run_dir=${VIGIL_RUN_DIR:-$root/.vigil-run}
http_addr=${VIGIL_RUN_HTTP:-127.0.0.1:8443}
grpc_addr=${VIGIL_RUN_GRPC:-127.0.0.1:8444}
scan_timeout=${VIGIL_RUN_SCAN_TIMEOUT:-180}
ready_timeout=60

say() { printf '==> %s\n' "$*"; }
die() { printf 'run-local: %s\n' "$*" >&2; exit 1; }

for tool in curl base64 sha256sum; do
	command -v "$tool" >/dev/null || die "$tool is required (apt-get install $tool)"
done

if [ -n "${VIGIL_RUN_BIN:-}" ]; then
	bin=$VIGIL_RUN_BIN
else
	say "building (make build)"
	make -C "$root" --no-print-directory build
	bin=$root/bin
fi
[ -x "$bin/vigil-server" ] || die "$bin/vigil-server is missing"
[ -x "$bin/vigil-agent" ] || die "$bin/vigil-agent is missing"

# Everything below holds keys and passwords: private to this user.
umask 077
mkdir -p "$run_dir"
run_dir=$(cd "$run_dir" && pwd)
data=$run_dir/server
agent_state=$run_dir/agent
base=https://$http_addr
cacert=$data/tls/server.crt
server_pid=
agent_pid=
reused=

# alive PID: the process exists and is not a zombie waiting to be reaped.
alive() {
	[ -n "$1" ] && kill -0 "$1" 2>/dev/null || return 1
	local state
	state=$(sed -n 's/^[0-9]* (.*) \([A-Z]\) .*/\1/p' "/proc/$1/stat" 2>/dev/null || true)
	[ "$state" != Z ]
}

# stop_pid NAME PID GRACE: SIGTERM, wait up to GRACE seconds, then SIGKILL.
stop_pid() {
	local name=$1 pid=$2 grace=$3 i=0
	alive "$pid" || return 0
	say "stopping $name (pid $pid)"
	kill -TERM "$pid" 2>/dev/null || true
	while alive "$pid" && [ "$i" -lt $((grace * 5)) ]; do
		sleep 0.2
		i=$((i + 1))
	done
	if alive "$pid"; then
		say "$name did not stop within ${grace}s; killing it"
		kill -KILL "$pid" 2>/dev/null || true
	fi
	wait "$pid" 2>/dev/null || true
}

# stop_all runs on Ctrl-C, on SIGTERM and on any failure: the agent first
# (it flushes its spool to the server), then the server.
stopping=
stop_all() {
	[ -z "$stopping" ] || return 0
	stopping=1
	stop_pid vigil-agent "$agent_pid" 20
	stop_pid vigil-server "$server_pid" 30
	rm -f "$run_dir/agent.pid" "$run_dir/server.pid" "$run_dir/.auth-header"
}
trap 'stop_all; say "stopped"; exit 0' INT TERM
trap 'stop_all' EXIT

# start NAME LOG CMD...: starts CMD in the background in its own session, so
# that the terminal's Ctrl-C reaches this script only and the processes
# stop in order. Sets started_pid.
start() {
	local name=$1 log=$2
	shift 2
	if command -v setsid >/dev/null; then
		setsid "$@" >>"$log" 2>&1 </dev/null &
	else
		"$@" >>"$log" 2>&1 </dev/null &
	fi
	started_pid=$!
	echo "$started_pid" >"$run_dir/$name.pid"
}

# api METHOD PATH [BODY]: calls the REST API as the admin; prints the body.
api() {
	local args=(--silent --show-error --fail --max-time 10 --cacert "$cacert" -X "$1")
	[ -f "$run_dir/.auth-header" ] && args+=(-H "@$run_dir/.auth-header")
	if [ $# -ge 3 ]; then
		args+=(-H 'Content-Type: application/json' --data-binary @-)
		printf '%s' "$3" | curl "${args[@]}" "$base$2"
	else
		curl "${args[@]}" "$base$2"
	fi
}

# json_str KEY: the first string value of "KEY" in the JSON on stdin.
json_str() { sed -n "/\"$1\":\"/{s/.*\"$1\":\"\([^\"]*\)\".*/\1/p;q}"; }

tail_log() { printf -- '--- last lines of %s ---\n' "$1" >&2; tail -n 20 "$1" >&2 || true; }

# 1. The first admin, before the server opens the store.
if [ ! -s "$run_dir/admin-password" ]; then
	say "creating the admin account (password saved to $run_dir/admin-password)"
	password=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
	printf '%s\n' "$password" | "$bin/vigil-server" admin create --data-dir "$data" \
		--username admin --password-stdin >"$run_dir/admin-create.log" 2>&1 ||
		{ tail_log "$run_dir/admin-create.log"; die "admin create failed (if an admin exists without $run_dir/admin-password, remove $run_dir to start afresh)"; }
	printf '%s\n' "$password" >"$run_dir/admin-password"
	chmod 600 "$run_dir/admin-password"
else
	say "reusing $run_dir (admin account exists)"
	password=$(head -n 1 "$run_dir/admin-password")
fi

# 2. The server.
say "starting vigil-server: https://$http_addr (UI, API), $grpc_addr (agents); log in $run_dir/server.log"
start server "$run_dir/server.log" "$bin/vigil-server" serve --data-dir "$data" \
	--http-addr "$http_addr" --grpc-addr "$grpc_addr" --rules-dir "$root/rules" --log-format text
server_pid=$started_pid
deadline=$((SECONDS + ready_timeout))
until [ -f "$cacert" ] && curl --silent --fail --max-time 2 --cacert "$cacert" -o /dev/null "$base/readyz"; do
	if ! alive "$server_pid"; then
		tail_log "$run_dir/server.log"
		die "vigil-server exited during start-up (is $http_addr or $grpc_addr in use?)"
	fi
	[ "$SECONDS" -lt "$deadline" ] || { tail_log "$run_dir/server.log"; die "vigil-server not ready after ${ready_timeout}s"; }
	sleep 0.5
done
say "vigil-server is ready"

# 3. Sign in as the admin for the API calls below.
login=$(api POST /api/v1/auth/login "{\"username\":\"admin\",\"password\":\"$password\"}") ||
	die "cannot sign in as admin with the password in $run_dir/admin-password"
session=$(printf '%s' "$login" | json_str token)
[ -n "$session" ] || die "sign-in answered without a token"
printf 'Authorization: Bearer %s\n' "$session" >"$run_dir/.auth-header"

# 4. Enrol the local agent, once.
if [ ! -f "$agent_state/agent.json" ]; then
	say "creating a join token and enrolling the local agent"
	tok=$(api POST /api/v1/enrollment-tokens '{"ttl":"1h","uses":1,"labels":{"source":"make-run"}}')
	join=$(printf '%s' "$tok" | json_str token)
	pin=$(printf '%s' "$tok" | json_str ca_pin)
	[ -n "$join" ] && [ -n "$pin" ] || die "enrolment token answer lacks token or ca_pin: $tok"
	"$bin/vigil-agent" enroll --server "$grpc_addr" --token "$join" --ca-pin "$pin" \
		--state-dir "$agent_state" || die "agent enrolment failed"
else
	say "reusing the enrolled agent in $agent_state"
	reused=1
fi
cat >"$run_dir/agent.yaml" <<EOF
# Written by scripts/run-local.sh on every run.
state_dir: $agent_state
trusted_bundle_keys:
  - $data/bundle-signing.key.pub
log_format: text
EOF

# 5. The agent.
say "starting vigil-agent; log in $run_dir/agent.log"
if [ "$(id -u)" -ne 0 ]; then
	say "note: not running as root: rules that read root-only files (/etc/shadow, sshd -T, ...) fail or report errors that a root agent would not"
fi
start agent "$run_dir/agent.log" "$bin/vigil-agent" run --config "$run_dir/agent.yaml" \
	--state-dir "$agent_state" --shutdown-grace 10s --shutdown-flush-timeout 5s
agent_pid=$started_pid

# 6. Wait for the first scan of this machine to reach the server.
say "waiting for the first scan of this machine (up to ${scan_timeout}s)"
deadline=$((SECONDS + scan_timeout))
next_note=$((SECONDS + 10))
scanned=
while :; do
	hosts=$(api GET '/api/v1/hosts?sort=-last_scan_at' 2>/dev/null || true)
	# One host object per line, the most recently scanned first.
	scanned=$(printf '%s' "$hosts" | sed 's/},{"id":/}\n{"id":/g' | grep '"last_scan_at":"' | head -n 1 || true)
	[ -z "$scanned" ] || break
	alive "$server_pid" || { tail_log "$run_dir/server.log"; die "vigil-server exited"; }
	alive "$agent_pid" || { tail_log "$run_dir/agent.log"; die "vigil-agent exited"; }
	if [ "$SECONDS" -ge "$deadline" ]; then
		tail_log "$run_dir/agent.log"
		die "no scan after ${scan_timeout}s"
	fi
	if [ "$SECONDS" -ge "$next_note" ]; then
		n=$(printf '%s' "$hosts" | grep -o '"id":[0-9]*,"name"' | wc -l || true)
		say "still waiting: $n host(s) known, no scan finished yet ($((deadline - SECONDS))s left)"
		next_note=$((SECONDS + 10))
	fi
	sleep 2
done
host=$(printf '%s' "$scanned" | json_str name)
at=$(printf '%s' "$scanned" | json_str last_scan_at)
score=$(printf '%s' "$scanned" | sed -n 's/.*"score":\([0-9.]*\).*/\1/p')
band=$(printf '%s' "$scanned" | json_str band)
which=first
[ -z "$reused" ] || which=latest
say "$which scan of $host done at $at: score ${score:-?} (${band:-no band}); open the UI to see its findings"

# 7. What the operator needs.
fingerprint=$(sed '/-----/d' "$cacert" | base64 -d | sha256sum | cut -d' ' -f1 |
	tr 'a-f' 'A-F' | sed 's/../&:/g; s/:$//')
cat <<EOF

  Vigil is running.

  Web UI:      $base/
  Username:    admin
  Password:    $password   (also in $run_dir/admin-password)
  Certificate: self-signed; its SHA-256 fingerprint, to compare in the browser:
               $fingerprint
  Logs:        $run_dir/server.log, $run_dir/agent.log
  Agent:       $bin/vigil-agent status --state-dir $agent_state

  Ctrl-C stops everything; run it again to carry on with the same data.

EOF

# 8. Wait until Ctrl-C, or until a process dies on its own.
while alive "$server_pid" && alive "$agent_pid"; do
	sleep 1 &
	wait $! || true
done
alive "$server_pid" || { tail_log "$run_dir/server.log"; die "vigil-server exited"; }
tail_log "$run_dir/agent.log"
die "vigil-agent exited"
