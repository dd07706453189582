# shellcheck shell=bash
# Shared by scripts/deploy.sh and scripts/rollback.sh (sourced, not run).
#
# The stack lives in EF_DEPLOY_DIR (default: the directory above scripts/): docker-compose.yml,
# .env (mode 600) and .deploy/, where these scripts keep their record:
#   .deploy/current    the version the stack runs (after a verified deploy or rollback)
#   .deploy/previous   the version before it: what rollback.sh goes back to by default
#   .deploy/history    one line per deploy or rollback: time, action, version, outcome
#   .deploy/deploy.log every step of every run
# COMPOSE_FILE and COMPOSE_PROFILES in .env choose the files and profiles (docker compose reads
# them), so `docker compose` here means the same stack an operator gets by hand.

set -euo pipefail

SCRIPTS_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
EF_DEPLOY_DIR="$(cd "${EF_DEPLOY_DIR:-$SCRIPTS_DIR/..}" && pwd)"
STATE_DIR="$EF_DEPLOY_DIR/.deploy"
# How long the stack may take to become ready, and how often to ask.
EF_DEPLOY_TIMEOUT_S="${EF_DEPLOY_TIMEOUT_S:-300}"
EF_DEPLOY_POLL_S="${EF_DEPLOY_POLL_S:-5}"

log() {
    local line
    line="$(date -u +%Y-%m-%dT%H:%M:%SZ) ${SCRIPT_NAME:-deploy}: $*"
    echo "$line" >&2
    if [ -d "$STATE_DIR" ]; then echo "$line" >>"$STATE_DIR/deploy.log"; fi
}

die() {
    # die CODE MESSAGE
    local code="$1"
    shift
    log "ERROR: $*"
    exit "$code"
}

valid_version() {
    [[ "$1" =~ ^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$ ]]
}

# The .env holds API keys and passwords: refuse it unless only its owner can read it.
check_env_file() {
    local env_file="$EF_DEPLOY_DIR/.env" mode
    [ -f "$env_file" ] || die 2 "$env_file is missing; copy .env.example to it and run: chmod 600 $env_file"
    mode="$(stat -c '%a' "$env_file")"
    if (( 8#$mode & 8#077 )); then
        die 2 "$env_file is readable or writable by group or others (mode $mode); fix it with: chmod 600 $env_file"
    fi
}

# One deploy or rollback at a time.
take_lock() {
    mkdir -p "$STATE_DIR"
    chmod 700 "$STATE_DIR"
    exec 9>"$STATE_DIR/lock"
    flock -n 9 || die 2 "another deploy or rollback is running (lock $STATE_DIR/lock)"
}

recorded() {
    # recorded current|previous: the recorded version, or nothing
    if [ -s "$STATE_DIR/$1" ]; then cat "$STATE_DIR/$1"; fi
}

# The version the stack runs now: the record, else EF_TAG in .env (a stack deployed by hand).
running_version() {
    local current
    current="$(recorded current)"
    if [ -z "$current" ]; then
        current="$(sed -n 's/^EF_TAG=//p' "$EF_DEPLOY_DIR/.env" | tail -n 1)"
    fi
    echo "$current"
}

# EF_TAG=VERSION in .env (replaced or added), written through a private temporary file so the
# mode stays 600 and a crash never leaves half a file.
set_tag() {
    local env_file="$EF_DEPLOY_DIR/.env" tmp
    tmp="$(umask 077 && mktemp "$EF_DEPLOY_DIR/.env.XXXXXX")"
    grep -v '^EF_TAG=' "$env_file" >"$tmp" || true
    echo "EF_TAG=$1" >>"$tmp"
    chmod 600 "$tmp"
    mv "$tmp" "$env_file"
}

compose() {
    (cd "$EF_DEPLOY_DIR" && docker compose "$@")
}

proxy_url() {
    local port
    port="$(sed -n 's/^EF_PROXY_PORT=//p' "$EF_DEPLOY_DIR/.env" | tail -n 1)"
    echo "${EF_DEPLOY_URL:-http://127.0.0.1:${port:-8080}}"
}

# Poll /health/ready through the proxy until it answers 200 or EF_DEPLOY_TIMEOUT_S pass.
wait_ready() {
    local url deadline status
    url="$(proxy_url)/health/ready"
    deadline=$(( $(date +%s) + EF_DEPLOY_TIMEOUT_S ))
    log "waiting up to ${EF_DEPLOY_TIMEOUT_S}s for $url"
    while :; do
        status="$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 "$url" || true)"
        if [ "$status" = "200" ]; then
            log "ready ($url answered 200)"
            return 0
        fi
        if [ "$(date +%s)" -ge "$deadline" ]; then
            log "not ready after ${EF_DEPLOY_TIMEOUT_S}s (last answer: ${status:-none})"
            return 1
        fi
        sleep "$EF_DEPLOY_POLL_S"
    done
}

# The API key for the synthesis check when EF_API_KEYS is on: EF_DEPLOY_API_KEY, else the
# monitoring probe's key file (secrets/probe_api_key), else none.
api_key() {
    if [ -n "${EF_DEPLOY_API_KEY:-}" ]; then
        echo "$EF_DEPLOY_API_KEY"
    elif [ -s "$EF_DEPLOY_DIR/secrets/probe_api_key" ]; then
        head -n 1 "$EF_DEPLOY_DIR/secrets/probe_api_key"
    fi
}

# A short synthesis through the proxy: the whole path (proxy, backend, queue, engine) works.
smoke_synthesis() {
    local url out status key
    url="$(proxy_url)/api/v1/speech"
    out="$(mktemp)"
    key="$(api_key)"
    # The key goes to curl on stdin (a config line), never on its command line.
    status="$(printf '%s' "${key:+header = \"Authorization: Bearer $key\"}" | curl -s -K - \
        -o "$out" -w '%{http_code}' --max-time 120 -X POST "$url" \
        -H 'Content-Type: application/json' \
        -d '{"text": "EchoForge deploy check."}' || true)"
    if [ "$status" = "200" ] && [ "$(head -c 4 "$out")" = "RIFF" ]; then
        rm -f "$out"
        log "synthesis through the proxy: 200, audio/wav"
        return 0
    fi
    rm -f "$out"
    log "synthesis through the proxy failed (HTTP ${status:-none})"
    return 1
}

# Before a deploy: a database backup inside the running backend (`ef backup`, kept in the data
# volume's backups/), so that data a bad release writes can be undone. Nothing runs yet: skip.
backup_database() {
    if [ -n "${EF_DEPLOY_SKIP_BACKUP:-}" ]; then
        log "backup skipped (EF_DEPLOY_SKIP_BACKUP is set)"
        return 0
    fi
    if ! compose ps --status running --services 2>/dev/null | grep -qx ef_backend; then
        log "no running ef_backend: nothing to back up"
        return 0
    fi
    log "backing up the database (ef backup in ef_backend)"
    compose exec -T ef_backend ef backup
}

# Pull, start and verify VERSION; the caller decides what a failure means.
bring_up() {
    local version="$1"
    set_tag "$version"
    log "EF_TAG=$version written to .env"
    log "pulling images for $version"
    compose pull || { log "pull of $version failed"; return 1; }
    log "starting the stack at $version"
    compose up -d --remove-orphans || { log "docker compose up failed for $version"; return 1; }
    wait_ready || return 1
    smoke_synthesis || return 1
}

# Record VERSION as running. After a deploy, the version before it becomes previous (unless it
# is the same); after a rollback, previous is the version rolled back to, so that running
# rollback.sh again changes nothing.
record() {
    local version="$1" action="$2" current
    current="$(recorded current)"
    if [ "$action" = rollback ]; then
        echo "$version" >"$STATE_DIR/previous"
    elif [ -n "$current" ] && [ "$current" != "$version" ]; then
        echo "$current" >"$STATE_DIR/previous"
    fi
    echo "$version" >"$STATE_DIR/current"
    echo "$(date -u +%Y-%m-%dT%H:%M:%SZ) $action $version ok" >>"$STATE_DIR/history"
}
