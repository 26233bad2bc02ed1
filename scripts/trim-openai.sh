#!/usr/bin/env bash
# Rebuilds tests/fixtures/openapi/openai.yaml: OpenAI's OpenAPI description
# (github.com/openai/openai-openapi, `openapi.json` at the commit below, MIT licence)
# trimmed to the operations the `openai` provider calls, with the error answers OpenAI's
# error-codes guide documents added (tests/fixtures/openapi/openai-errors.json).
#
#     scripts/trim-openai.sh PATH/TO/openai-openapi   # a clone of the repository
#
# The output is JSON (which is YAML) after a comment header naming source and licence.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
repo="${1:?usage: scripts/trim-openai.sh PATH/TO/openai-openapi (a git clone)}"
commit="f85dbe223d40e1a31cba812ab2d755c7e98a92a3"
full=$(mktemp)
trap 'rm -f "$full" "$full.out"' EXIT
git -C "$repo" show "$commit:openapi.json" >"$full"
python3 "$root/scripts/trim-openapi.py" --responses "$root/tests/fixtures/openapi/openai-errors.json" \
    "$full" "$full.out" \
    'GET /organization/projects' \
    'GET /organization/projects/{project_id}/api_keys' \
    'GET /organization/projects/{project_id}/api_keys/{api_key_id}' \
    'DELETE /organization/projects/{project_id}/api_keys/{api_key_id}' \
    'DELETE /organization/projects/{project_id}/service_accounts/{service_account_id}' \
    'GET /organization/admin_api_keys' \
    'GET /organization/admin_api_keys/{key_id}' \
    'DELETE /organization/admin_api_keys/{key_id}' \
    'GET /organization/audit_logs'
out="$root/tests/fixtures/openapi/openai.yaml"
{
    echo "# OpenAI API: the subset keyaudit's \`openai\` provider calls, trimmed by"
    echo "# scripts/trim-openai.sh from openapi.json of https://github.com/openai/openai-openapi"
    echo "# at commit $commit (API version 2.3.0). Licence: MIT, Copyright (c) OpenAI."
    echo "# Responses whose description starts \"Added by keyaudit\" come from OpenAI's"
    echo "# error-codes guide, not from the description. Do not edit: run the script."
    cat "$full.out"
} >"$out"
echo "wrote $out" >&2
