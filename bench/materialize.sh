#!/usr/bin/env bash
# Materialization and edge load at scale: `fstore quickstart --exit` generates CUSTOMERS
# customers × 12 month-end rows (plus their orders), applies and materializes customer_rfm
# (16 features); then a fresh `fstore serve edge` loads the snapshot and is timed to /readyz.
# Usage: bench/materialize.sh      (CUSTOMERS=1000000 by default)
set -euo pipefail
cd "$(dirname "$0")/.."

CUSTOMERS=${CUSTOMERS:-1000000}
EDGE=127.0.0.1:${EDGE_PORT:-18576}
cargo build --release -q -p fstore-cli
fstore=$PWD/target/release/fstore

tmp=$(mktemp -d)
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT

echo "== fstore quickstart --customers $CUSTOMERS --exit"
/usr/bin/time -f "quickstart: %e s wall, peak RSS %M KiB" \
  "$fstore" quickstart --dir "$tmp" --customers "$CUSTOMERS" --exit \
  --edge-addr 127.0.0.1:0 --control-addr 127.0.0.1:0 2>&1 | grep -E '^(quickstart:|[0-9]\.)'
ls -l "$tmp"/data "$tmp"/objects/snapshots/*/*.fss
snap_bytes=$(stat -c %s "$tmp"/objects/snapshots/*/*.fss)

echo "== fstore serve edge (cold start: copy into the cache, map, verify, swap in)"
start=$(date +%s%N)
"$fstore" --store "$tmp/objects" serve edge --addr "$EDGE" --cache-dir "$tmp/cache" --auth off 2>"$tmp/edge.log" &
pid=$!
until curl -sf "http://$EDGE/readyz" >/dev/null; do
  kill -0 "$pid" 2>/dev/null || { cat "$tmp/edge.log"; exit 1; }
  sleep 0.01
done
echo "edge ready after $(( ($(date +%s%N) - start) / 1000000 )) ms"
curl -s "http://$EDGE/v1/features" \
  -d '{"feature_service":"segmentation_v1","entities":{"customer_id":[1000]}}' | head -c 300; echo
grep -E '^(VmRSS|RssAnon|RssFile|VmHWM)' /proc/$pid/status
rss_kib=$(awk '/^VmRSS/{print $2}' /proc/$pid/status)
awk -v r="$rss_kib" -v s="$snap_bytes" \
  'BEGIN{printf "snapshot %.1f MiB, edge RSS %.1f MiB = %.2f× the snapshot\n", s/1048576, r/1024, r*1024/s}'
