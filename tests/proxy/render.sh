#!/bin/sh
# The nginx image's template step (docker-nginx entrypoint/20-envsubst-on-templates.sh, 1.27):
# every *.template under the template dir becomes a file in the output dir, with envsubst
# replacing only the environment variables that are SET and match NGINX_ENVSUBST_FILTER.
# Kept to the image's logic line for line, so what the tests run is what the container runs.
set -e
template_dir="${NGINX_ENVSUBST_TEMPLATE_DIR:-/etc/nginx/templates}"
suffix="${NGINX_ENVSUBST_TEMPLATE_SUFFIX:-.template}"
output_dir="${NGINX_ENVSUBST_OUTPUT_DIR:-/etc/nginx/conf.d}"
filter="${NGINX_ENVSUBST_FILTER:-}"

# shellcheck disable=SC2016,SC2046 # as in the image: ${NAME} literally, names split on purpose
defined_envs=$(printf '${%s} ' $(awk "END { for (name in ENVIRON) { print ( name ~ /${filter}/ ) ? name : \"\" } }" < /dev/null ))
[ -d "$template_dir" ] || exit 0
find "$template_dir" -follow -type f -name "*$suffix" -print | while read -r template; do
    relative_path="${template#"$template_dir/"}"
    output_path="$output_dir/${relative_path%"$suffix"}"
    subdir=$(dirname "$relative_path")
    mkdir -p "$output_dir/$subdir"
    envsubst "$defined_envs" < "$template" > "$output_path"
done
