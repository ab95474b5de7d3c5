#!/bin/bash
# The steps of .ci/fresh-root, run inside the fresh root (chroot, in its own
# network, pid and mount namespaces). One PASS/FAIL line per step, with its
# time; every step's output is in /fresh/logs/<step>.log.
set -uo pipefail
logs=/fresh/logs
mkdir -p "$logs"
export DEBIAN_FRONTEND=noninteractive
port=18106
failed=0
user=dev

line() { printf '%-4s %-62s %6ss  %s\n' "$1" "$2" "$3" "${4:-}"; }

# pgboot's warnings in a log: the normal paths should have none.
warnings() { grep -c 'level=WARN msg="pgboot' "$1" || true; }

# check NAME DESCRIPTION SECONDS ERROR: print the step's line.
report() {
  local name=$1 desc=$2 took=$3 err=$4 extra=${5:-}
  if [ -z "$err" ]; then
    line PASS "$desc" "$took" "$extra"
  else
    line FAIL "$desc" "$took" "$err (see $logs/$name.log)"
    failed=1
  fi
}

# as WHO DIR COMMAND: run COMMAND with bash in DIR as root or as the user.
as() {
  local who=$1 dir=$2; shift 2
  if [ "$who" = root ]; then
    (cd "$dir" && bash -c "$*")
  else
    runuser -u "$who" -- bash -c "cd $dir && $*"
  fi
}

# The non-root user, with its own clone.
useradd -m -s /bin/bash "$user"
cp -a /root/rapport "/home/$user/rapport"
chown -R "$user:$user" "/home/$user/rapport"

# 1. make test as a non-root user on a machine without PostgreSQL.
name=nonroot-make-test-no-postgres
t0=$(date +%s)
as "$user" "/home/$user/rapport" make test >"$logs/$name.log" 2>&1
rc=$?
took=$(( $(date +%s) - t0 ))
err=""
if [ $rc = 0 ]; then err="make test passed without PostgreSQL?"
elif ! grep -q 'install PostgreSQL 13 or newer' "$logs/$name.log"; then err="no 'install PostgreSQL' message"
elif grep -q 'go build -o bin/rapport\|go vet' "$logs/$name.log"; then err="it built or vetted before saying so"
fi
report "$name" "non-root: make test without PostgreSQL fails fast, says what to do" "$took" "$err" "(exit $rc before any build)"

# 2. The README's prerequisites for "Try it".
name=root-apt-curl-jq
t0=$(date +%s)
{ apt-get update -q && apt-get install -y -q --no-install-recommends curl jq; } >"$logs/$name.log" 2>&1
rc=$?
report "$name" "root: apt-get install curl jq (the README's Try it needs them)" $(( $(date +%s) - t0 )) "$([ $rc = 0 ] || echo "exit $rc")"

# 3, 4. make test as root, twice: the first installs PostgreSQL.
for n in 1 2; do
  name=root-make-test-$n
  t0=$(date +%s)
  as root /root/rapport RAPPORT_README_TOOLS=required make test >"$logs/$name.log" 2>&1
  rc=$?
  took=$(( $(date +%s) - t0 ))
  err=""
  [ $rc = 0 ] || err="exit $rc"
  [ -z "$err" ] && grep -q 'Permission denied' "$logs/$name.log" && err="Permission denied in the log"
  extra="pgboot warnings: $(warnings "$logs/$name.log")"
  install=$(grep -o 'installed PostgreSQL with apt-get" took=[0-9.a-zµ]*' "$logs/$name.log" | head -1 | sed 's/.*took=//')
  [ -n "$install" ] && extra="$extra; apt-get install postgresql took $install"
  grep -q 'WITHOUT the race detector' "$logs/$name.log" && extra="$extra; no gcc: said it runs without -race"
  grep -q -- '--- SKIP: TestReadmeRuns' "$logs/$name.log" && extra="$extra; README test SKIPPED"
  grep -q 'TestReadmeRuns' "$logs/$name.log" || true
  report "$name" "root: make test in /root/rapport (run $n)" "$took" "$err" "$extra"
done

# make_run WHO DIR N: make run, wait for /readyz, use a tool, Ctrl-C.
make_run() {
  local who=$1 dir=$2 n=$3 name desc t0 pid err="" ready=""
  name=$who-make-run-$n
  desc="$who: make run in $dir (run $n): /readyz, apikey list, Ctrl-C"
  t0=$(date +%s)
  # setsid makes the shell the leader of a session of its own; it records
  # its pid, which is the process group that Ctrl-C would signal.
  local pidfile=/tmp/$name.pgid
  rm -f "$pidfile"
  local start="echo \$\$ >$pidfile; cd $dir && RAPPORT_ADDR=127.0.0.1:$port exec make run"
  if [ "$who" = root ]; then
    setsid bash -c "$start" >"$logs/$name.log" 2>&1 &
  else
    runuser -u "$who" -- setsid bash -c "$start" >"$logs/$name.log" 2>&1 &
  fi
  pid=$!
  for _ in $(seq 900); do   # the first run of a user builds cold
    if curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1; then ready=1; break; fi
    kill -0 $pid 2>/dev/null || break
    sleep 1
  done
  local took_ready=$(( $(date +%s) - t0 ))
  if [ -z "$ready" ]; then
    err="not ready"
  elif ! as "$who" "$dir" ./bin/rapport apikey list >>"$logs/$name.log" 2>&1; then
    err="rapport apikey list failed (settings not found?)"
  fi
  # Ctrl-C: SIGINT to the process group (make and rapport dev).
  local group
  group=$(cat "$pidfile" 2>/dev/null)
  if [ -n "$group" ] && [ "$group" != 1 ]; then
    kill -INT -- "-$group" 2>/dev/null
    for _ in $(seq 60); do kill -0 $pid 2>/dev/null || break; sleep 1; done
    if kill -0 $pid 2>/dev/null; then
      [ -z "$err" ] && err="still running 60s after Ctrl-C"
      kill -KILL -- "-$group" 2>/dev/null
    fi
  else
    [ -z "$err" ] && err="no process group recorded"
  fi
  wait $pid 2>/dev/null
  [ -z "$err" ] && ! grep -q 'Rapport: stopping' "$logs/$name.log" && err="did not stop cleanly"
  [ -z "$err" ] && grep -q 'Permission denied' "$logs/$name.log" && err="Permission denied in the log"
  local extra source
  source=$(grep -m1 '^  PostgreSQL ' "$logs/$name.log" | sed 's/^  PostgreSQL *//')
  extra="ready after ${took_ready}s; pgboot warnings: $(warnings "$logs/$name.log"); PostgreSQL: $source"
  report "$name" "$desc" $(( $(date +%s) - t0 )) "$err" "$extra"
}

make_run root /root/rapport 1
make_run root /root/rapport 2
make_run "$user" "/home/$user/rapport" 1

exit $failed
