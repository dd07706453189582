#!/usr/bin/env bash
# scripts/rollback.sh [VERSION]: put the homelab stack back on VERSION (default: the previous
# recorded version, .deploy/previous), then verify it as a deploy does (/health/ready through the
# proxy, a short synthesis). Exits 0 when VERSION runs and answers, 1 when it does not, 2 for a
# refused start. Database migrations are forward-compatible by one version (docs/release.md),
# so the previous release runs on the current schema. Safe to run again; any directory.
SCRIPT_NAME=rollback
# shellcheck source=scripts/deploy-lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/deploy-lib.sh"

[ $# -le 1 ] || die 2 "usage: scripts/rollback.sh [VERSION]   (default: the previous recorded version)"
check_env_file
take_lock

TARGET="${1:-$(recorded previous)}"
[ -n "$TARGET" ] || die 2 "no previous version recorded in $STATE_DIR/previous; name one: scripts/rollback.sh v1.3.2"
valid_version "$TARGET" || die 2 "not a version: '$TARGET'"

log "rolling back to $TARGET (running now: $(running_version)) in $EF_DEPLOY_DIR"
if bring_up "$TARGET"; then
    record "$TARGET" rollback
    log "rolled back to $TARGET"
    exit 0
fi
echo "$(date -u +%Y-%m-%dT%H:%M:%SZ) rollback $TARGET failed" >>"$STATE_DIR/history"
die 1 "rollback to $TARGET failed; see runbooks/rollback.md"
