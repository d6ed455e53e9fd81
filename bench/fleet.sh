#!/usr/bin/env bash
# The cost of a balancer in front of the edges, and a restart under load. Three edges (auth
# off) serve the quickstart's 100,000 customers; wrk drives one edge directly, then the same
# lookups through nginx (deploy/nginx/nginx.conf, loopback addresses) and through
# `fstore serve router`; then wrk runs through nginx while one edge is killed and restarted.
# Usage: bench/fleet.sh      (REPEAT=3, DURATION=10s, CUSTOMERS=100000; ports 1858x)
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10s}
CUSTOMERS=${CUSTOMERS:-100000}
TARGET_DIR=${CARGO_TARGET_DIR:-target}
P=${PORT_BASE:-18580}
E1=127.0.0.1:$((P + 1)); E2=127.0.0.1:$((P + 2)); E3=127.0.0.1:$((P + 3))
LB=127.0.0.1:$((P + 4)); ROUTER=127.0.0.1:$((P + 5))

command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
[ -x /usr/sbin/nginx ] || apt-get install -y -qq --no-install-recommends nginx-light >/dev/null
cargo build --release -q -p fstore-cli
case $TARGET_DIR in /*) ;; *) TARGET_DIR=$PWD/$TARGET_DIR ;; esac
fstore=$TARGET_DIR/release/fstore

tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT

"$fstore" quickstart --dir "$tmp/qs" --customers "$CUSTOMERS" --exit \
  --edge-addr 127.0.0.1:0 --control-addr 127.0.0.1:0 >"$tmp/quickstart.log" 2>&1 \
  || { cat "$tmp/quickstart.log"; exit 1; }
declare -A edge_pid
edge() {  # edge N ADDR: starts it in this shell (not a subshell) so its pid is ours to kill
  "$fstore" --store "$tmp/qs/objects" serve edge --addr "$2" --auth off --edge-id "edge-$1" \
    --cache-dir "$tmp/cache-$1" --poll-interval 1s >>"$tmp/edge-$1.log" 2>&1 &
  edge_pid[$1]=$!
  pids+=($!)
}
for n in 1 2 3; do
  addr_var="E$n"; edge "$n" "${!addr_var}"
done
for a in "$E1" "$E2" "$E3"; do
  for _ in $(seq 600); do curl -sf "http://$a/readyz" >/dev/null && break; sleep 0.1; done
done
for n in 1 2 3; do  # an edge that could not bind its port must not pass for one that did
  kill -0 "${edge_pid[$n]}" 2>/dev/null || { cat "$tmp/edge-$n.log"; exit 1; }
done

mkdir -p "$tmp/nginx"
sed -e "s/worker_processes auto;/worker_processes 1;/" -e "s/listen 8080;/listen $LB;/" \
    -e "s/server edge-1:6566/server $E1/" -e "s/server edge-2:6566/server $E2/" \
    -e "s/server edge-3:6566/server $E3/" \
    -e "s|^http {|http {\n    client_body_temp_path $tmp/nginx/body;\n    proxy_temp_path $tmp/nginx/proxy;|" \
    deploy/nginx/nginx.conf >"$tmp/nginx/nginx.conf"
/usr/sbin/nginx -p "$tmp/nginx" -c "$tmp/nginx/nginx.conf" -e "$tmp/nginx/error.log" \
  -g "daemon off; pid $tmp/nginx/nginx.pid;" &
pids+=($!)
"$fstore" serve router --addr "$ROUTER" --edge "http://$E1,http://$E2,http://$E3" 2>"$tmp/router.log" &
pids+=($!)
for a in "$LB" "$ROUTER"; do
  for _ in $(seq 100); do
    curl -sf "http://$a/v1/features" -d '{"feature_service":"segmentation_v1","entities":{"customer_id":[1000]}}' >/dev/null && break
    sleep 0.1
  done
done

results=()
run() {  # run NAME THREADS CONNECTIONS ADDR
  local out="$tmp/${1//\//-}.txt"
  echo "== $1: wrk -t$2 -c$3 -d$DURATION --latency -s bench/lookup.lua http://$4 -- /v1/features 1"
  wrk -t"$2" -c"$3" -d"$DURATION" --latency -s bench/lookup.lua "http://$4" -- /v1/features 1 | tee "$out"
  results+=("$(awk -v n="$1" '/^ +50%/{p50=$2} /^ +99%/{p99=$2} /^Requests\/sec/{rps=$2}
    /Non-2xx/{err=$NF} /Socket errors/{serr=$0} END{printf "| %s | %s | %s | %s | %s |", n, rps, p50, p99, err+0}' "$out")")
}
for rep in $(seq "${REPEAT:-3}"); do
  run direct-1c/$rep 1 1 "$E1"
  run nginx-1c/$rep 1 1 "$LB"
  run router-1c/$rep 1 1 "$ROUTER"
  run direct-8c/$rep 1 8 "$E1"
  run nginx-8c/$rep 1 8 "$LB"
  run router-8c/$rep 1 8 "$ROUTER"
done

echo "== restart under load: wrk through nginx for 20 s; edge-2 killed at 5 s, restarted at 10 s"
wrk -t1 -c8 -d20s --latency -s bench/lookup.lua "http://$LB" -- /v1/features 1 >"$tmp/restart.txt" &
wrk_pid=$!
sleep 5; kill -9 "${edge_pid[2]}"; sleep 5
edge 2 "$E2"
wait "$wrk_pid"
cat "$tmp/restart.txt"
grep -q "Non-2xx" "$tmp/restart.txt" && echo "FAILED REQUESTS DURING THE RESTART" || echo "no failed request during the restart"

echo
echo "| run | req/s | p50 | p99 | non-2xx |"
echo "| --- | ---: | ---: | ---: | ---: |"
printf '%s\n' "${results[@]}"
