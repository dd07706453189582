#!/usr/bin/env bash
# scripts/smoke.sh [URL]: smoke-test a running stack through its proxy (default
# http://127.0.0.1:8080): ready, a synthesis, the same again as a cache hit with the same bytes,
# /metrics refused. With EF_SMOKE_PROMETHEUS_URL set, also waits until Prometheus reports every
# scrape target up. CI's images job runs it against the compose stack; operators can too.
set -euo pipefail

url="${1:-http://127.0.0.1:8080}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

step() { echo "smoke: $*" >&2; }
fail() { echo "smoke: FAILED: $*" >&2; exit 1; }

step "GET $url/health/ready"
status="$(curl -s -o "$work/ready.json" -w '%{http_code}' --max-time 30 "$url/health/ready")"
[ "$status" = 200 ] || fail "/health/ready answered $status: $(cat "$work/ready.json")"

text="Smoke test $(date +%s%N)."
speak() {
    curl -s -o "$work/$1.wav" -D "$work/$1.headers" -w '%{http_code}' --max-time 120 \
        -X POST "$url/api/v1/speech" -H 'Content-Type: application/json' \
        -d "{\"text\": \"$text\"}"
}
cache_header() { tr -d '\r' <"$work/$1.headers" | sed -n 's/^[Xx]-[Ee][Ff]-[Cc]ache: //p'; }

step "POST $url/api/v1/speech (new text)"
status="$(speak first)"
[ "$status" = 200 ] || fail "synthesis answered $status: $(head -c 300 "$work/first.wav")"
[ "$(head -c 4 "$work/first.wav")" = RIFF ] || fail "synthesis did not return a WAV"
[ "$(cache_header first)" = miss ] || fail "first synthesis: X-EF-Cache is '$(cache_header first)', not miss"

step "POST $url/api/v1/speech (same text: a cache hit)"
status="$(speak second)"
[ "$status" = 200 ] || fail "repeated synthesis answered $status"
[ "$(cache_header second)" = hit ] || fail "repeated synthesis: X-EF-Cache is '$(cache_header second)', not hit"
cmp -s "$work/first.wav" "$work/second.wav" || fail "the cache hit's audio differs from the first answer"

step "GET $url/metrics (must be refused at the proxy)"
status="$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 "$url/metrics")"
[ "$status" = 403 ] || fail "/metrics answered $status through the proxy, not 403"

if [ -n "${EF_SMOKE_PROMETHEUS_URL:-}" ]; then
    step "waiting for every Prometheus target to be up at $EF_SMOKE_PROMETHEUS_URL"
    down="(no answer)"
    for _ in $(seq 1 60); do
        if curl -s --max-time 10 ${EF_SMOKE_PROMETHEUS_AUTH:+-u "$EF_SMOKE_PROMETHEUS_AUTH"} \
            "$EF_SMOKE_PROMETHEUS_URL/api/v1/targets?state=active" -o "$work/targets.json"; then
            down="$(python3 -c '
import json, sys
targets = json.load(open(sys.argv[1]))["data"]["activeTargets"]
bad = ["%s %s: %s %s" % (t["labels"].get("job"), t["scrapeUrl"], t["health"], t["lastError"])
       for t in targets if t["health"] != "up"]
print("; ".join(bad) if bad else ("" if targets else "no targets"), end="")
' "$work/targets.json" 2>&1 || echo "(unreadable answer)")"
            [ -z "$down" ] && break
        fi
        sleep 5
    done
    [ -z "$down" ] || fail "Prometheus targets not up: $down"
fi
step "all checks passed"
