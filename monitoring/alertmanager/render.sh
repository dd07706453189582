#!/bin/sh
# Start Alertmanager on a copy of its configuration with the webhook URLs of .env filled in:
# Alertmanager does not expand environment variables in its configuration, and these URLs often
# hold a token, so they live in .env rather than in the repository.
#
#   EF_WATCHDOG_PING_URL  -> replaces http://ef-watchdog-ping.invalid/ (the dead man's switch)
#   EF_ALERT_WEBHOOK_URL  -> replaces http://ef-alert-webhook.invalid/ (the second channel)
#
# An unset URL keeps its placeholder: those notifications then fail, visibly
# (AlertmanagerFailedToSendAlerts by email), instead of going nowhere in silence.
# Usage: render.sh [alertmanager flags...]; EF_ALERTMANAGER_SOURCE, EF_ALERTMANAGER_RENDERED
# and ALERTMANAGER_BIN override the paths (the tests run it with the Debian binary).
set -eu
src=${EF_ALERTMANAGER_SOURCE:-/etc/alertmanager/alertmanager.yml}
dir=${EF_ALERTMANAGER_RENDERED:-/tmp/ef-alertmanager}
umask 077
mkdir -p "$dir"
# Relative template paths resolve against the configuration's directory.
ln -sfn "$(dirname "$src")/templates" "$dir/templates"
escape() { printf '%s' "$1" | sed 's/[\\|&]/\\&/g'; }
ping_url=$(escape "${EF_WATCHDOG_PING_URL:-http://ef-watchdog-ping.invalid/}")
webhook_url=$(escape "${EF_ALERT_WEBHOOK_URL:-http://ef-alert-webhook.invalid/}")
sed -e "s|http://ef-watchdog-ping.invalid/|$ping_url|" \
    -e "s|http://ef-alert-webhook.invalid/|$webhook_url|" \
    "$src" > "$dir/alertmanager.yml"
exec "${ALERTMANAGER_BIN:-/bin/alertmanager}" --config.file="$dir/alertmanager.yml" "$@"
