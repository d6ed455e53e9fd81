#!/usr/bin/env bash
# HTTP lookup benchmark: the quickstart edge (100,000 customers × 16 features, authentication
# on, a consumer's token), a second edge on the same store with authentication off, and a bare
# axum server answering a fixed ~1 KB body, all driven by wrk on this machine.
# Usage: bench/http.sh      (REPEAT=1, DURATION=10s, CUSTOMERS=100000, ports 1856x by default)
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10s}
CUSTOMERS=${CUSTOMERS:-100000}
EDGE=127.0.0.1:${EDGE_PORT:-18566}
CONTROL=127.0.0.1:${CONTROL_PORT:-18565}
BARE=127.0.0.1:${BARE_PORT:-18567}
OPEN=127.0.0.1:${OPEN_PORT:-18568}

command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
cargo build --release -q -p fstore-cli
cargo build --release -q -p fstore-edge --example bare_axum

tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT

target/release/fstore quickstart --dir "$tmp/qs" --customers "$CUSTOMERS" \
  --edge-addr "$EDGE" --control-addr "$CONTROL" >"$tmp/quickstart.log" 2>&1 &
pids+=($!)
target/release/examples/bare_axum "$BARE" 2>"$tmp/bare.log" &
pids+=($!)

for _ in $(seq 600); do  # up to 5 minutes for data generation and materialization
  curl -sf "http://$EDGE/readyz" >/dev/null && break
  kill -0 "${pids[0]}" 2>/dev/null || { cat "$tmp/quickstart.log"; exit 1; }
  sleep 0.5
done
curl -sf "http://$EDGE/readyz" >/dev/null || { echo "edge never became ready" >&2; exit 1; }
curl -sf -X POST "http://$BARE/" >/dev/null
grep -E '^[0-9]\.' "$tmp/quickstart.log"
# The quickstart prints the tokens it made; lookups go as its consumer.
TOKEN=$(awk '$1 == "consumer" && $2 ~ /^fst_/ {print $2; exit}' "$tmp/quickstart.log")
[ -n "$TOKEN" ] || { echo "no consumer token in the quickstart's output" >&2; exit 1; }
target/release/fstore serve edge --addr "$OPEN" --store "$tmp/qs/objects" --auth off \
  --cache-dir "$tmp/open-cache" 2>"$tmp/open.log" &
pids+=($!)
for _ in $(seq 120); do curl -sf "http://$OPEN/readyz" >/dev/null && break; sleep 0.5; done
echo "1-customer response: $(curl -s "http://$EDGE/v1/features" -H "Authorization: Bearer $TOKEN" \
  -d '{"feature_service":"segmentation_v1","entities":{"customer_id":[1000]}}' | wc -c) bytes"

results=()
# run NAME THREADS CONNECTIONS URL PATH CUSTOMERS_PER_REQUEST [TOKEN]
run() {
  local out="$tmp/${1//\//-}.txt"
  echo "== $1: wrk -t$2 -c$3 -d$DURATION --latency -s bench/lookup.lua $4 -- $5 $6 ${7:+<token>}"
  wrk -t"$2" -c"$3" -d"$DURATION" --latency -s bench/lookup.lua "$4" -- "$5" "$6" "${7:-}" | tee "$out"
  results+=("$(awk -v n="$1" '/^ +50%/{p50=$2} /^ +99%/{p99=$2} /^Requests\/sec/{rps=$2}
    /Non-2xx/{err=$NF} END{printf "| %s | %s | %s | %s | %s |", n, rps, p50, p99, err+0}' "$out")")
}

for rep in $(seq "${REPEAT:-1}"); do  # REPEAT=3 interleaves three rounds (this VM is noisy)
  run bare-axum-1c/$rep          1 1  "http://$BARE" /                     1
  run open-1x16-1c/$rep          1 1  "http://$OPEN" /v1/features          1
  run features-1x16-1c/$rep      1 1  "http://$EDGE" /v1/features          1   "$TOKEN"
  run feast-1x16-1c/$rep         1 1  "http://$EDGE" /get-online-features  1   "$TOKEN"
  run open-100x16-1c/$rep        1 1  "http://$OPEN" /v1/features          100
  run features-100x16-1c/$rep    1 1  "http://$EDGE" /v1/features          100 "$TOKEN"
  run bare-axum-32c/$rep         2 32 "http://$BARE" /                     1
  run open-1x16-32c/$rep         2 32 "http://$OPEN" /v1/features          1
  run features-1x16-32c/$rep     2 32 "http://$EDGE" /v1/features          1   "$TOKEN"
  run feast-1x16-32c/$rep        2 32 "http://$EDGE" /get-online-features  1   "$TOKEN"
done

echo
echo "| run | req/s | p50 | p99 | non-2xx |"
echo "| --- | ---: | ---: | ---: | ---: |"
printf '%s\n' "${results[@]}"
