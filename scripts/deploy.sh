#!/usr/bin/env bash
# scripts/deploy.sh VERSION: move the homelab stack to VERSION, and back if it does not work.
#
# Records the running version, backs the database up (ef backup in the running backend; skip with
# EF_DEPLOY_SKIP_BACKUP=1), writes EF_TAG=VERSION to .env, pulls, brings the stack up, waits
# for /health/ready through the proxy (EF_DEPLOY_TIMEOUT_S, default 300) and runs a short
# synthesis. On any failure it rolls back to the recorded version and exits 1 (3 if the rollback
# fails too; 2 for a refused start). Safe to run again; works from any directory.
# State and log: .deploy/ beside docker-compose.yml (see scripts/deploy-lib.sh); runbooks/deploy.md.
SCRIPT_NAME=deploy
# shellcheck source=scripts/deploy-lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/deploy-lib.sh"

[ $# -eq 1 ] || die 2 "usage: scripts/deploy.sh VERSION   (e.g. v1.4.0)"
VERSION="$1"
valid_version "$VERSION" || die 2 "not a version: '$VERSION'"
check_env_file
take_lock

PREVIOUS="$(running_version)"
# A stack deployed by hand has no record yet: its .env version is the one to come back to.
if [ -z "$(recorded current)" ] && [ -n "$PREVIOUS" ]; then echo "$PREVIOUS" >"$STATE_DIR/current"; fi
log "deploying $VERSION (running now: ${PREVIOUS:-nothing recorded}) in $EF_DEPLOY_DIR"
backup_database || die 2 "the database backup failed, nothing was changed; fix it (runbooks/backup-restore.md) or deploy with EF_DEPLOY_SKIP_BACKUP=1"

if bring_up "$VERSION"; then
    record "$VERSION" deploy
    log "deployed $VERSION"
    exit 0
fi

echo "$(date -u +%Y-%m-%dT%H:%M:%SZ) deploy $VERSION failed" >>"$STATE_DIR/history"
if [ -z "$PREVIOUS" ] || [ "$PREVIOUS" = "$VERSION" ]; then
    die 3 "deploy of $VERSION failed and there is no other version to roll back to"
fi
log "deploy of $VERSION failed; rolling back to $PREVIOUS"
if bring_up "$PREVIOUS"; then
    record "$PREVIOUS" rollback
    die 1 "deploy of $VERSION failed; rolled back to $PREVIOUS, which is running"
fi
echo "$(date -u +%Y-%m-%dT%H:%M:%SZ) rollback $PREVIOUS failed" >>"$STATE_DIR/history"
die 3 "deploy of $VERSION failed and the rollback to $PREVIOUS failed too; see runbooks/rollback.md"
