#!/usr/bin/env bash
# Rebuilds tests/fixtures/openapi/github.json: GitHub's own OpenAPI description (npm
# package @octokit/openapi, MIT, generated from github/rest-api-description), GitHub
# Enterprise Cloud flavour (`generated/ghec.json`: the only one with the organisation
# audit log), trimmed to the operations the `github` provider calls. Needs npm and
# python3. Run it again, with the operation added below, when the provider calls a new
# endpoint.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
version="23.0.2"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "@octokit/openapi@$version" >/dev/null && tar xzf octokit-openapi-*.tgz)
python3 "$root/scripts/trim-openapi.py" "$work/package/generated/ghec.json" \
    "$root/tests/fixtures/openapi/github.json" \
    'POST /app/installations/{installation_id}/access_tokens' \
    'GET /orgs/{org}/personal-access-tokens' \
    'POST /orgs/{org}/personal-access-tokens' \
    'GET /orgs/{org}/audit-log' \
    'GET /orgs/{org}/secret-scanning/alerts'
