"""Drives the Cloudflare fake (behind Prism) with Cloudflare's official Python SDK
(`cloudflare`, generated from Cloudflare's OpenAPI description): the token calls
keyaudit's cloudflare provider relies on must succeed and parse.

Usage: cloudflare_client.py BASE_URL TOKEN ACCOUNT_ID USER_TOKEN_ID ACCOUNT_TOKEN_ID
Prints one JSON object with what the SDK read; exits non-zero on any failure.
"""

import json
import sys

import cloudflare


def main() -> None:
    base, token, account, user_token, account_token = sys.argv[1:6]
    cf = cloudflare.Cloudflare(api_token=token, base_url=base, max_retries=0)
    verified = cf.user.tokens.verify()
    # Two per page: the SDK's paginator walks every page.
    users = list(cf.user.tokens.list(per_page=2))
    accounts = list(
        cf.accounts.tokens.list(account_id=account, per_page=2, include_expired=True)
    )
    got = cf.user.tokens.get(user_token)
    disabled = cf.user.tokens.update(
        user_token,
        name=got.name,
        policies=[p.model_dump(exclude_none=True, by_alias=True) for p in got.policies],
        condition=got.condition.model_dump(exclude_none=True, by_alias=True),
        status="disabled",
    )
    rolled = cf.accounts.tokens.value.update(account_token, account_id=account)
    deleted = cf.accounts.tokens.delete(account_token, account_id=account)
    print(
        json.dumps(
            {
                "verified": [verified.id, verified.status],
                "user": sorted([t.name, t.status] for t in users),
                "account": sorted([t.name, t.status] for t in accounts),
                "got_ip_in": got.condition.request_ip.in_,
                "disabled_status": disabled.status,
                "rolled_len": len(rolled),
                "deleted": deleted.id,
            }
        )
    )


if __name__ == "__main__":
    try:
        main()
    except cloudflare.APIError as e:
        print(f"the cloudflare SDK failed: {e!r}", file=sys.stderr)
        sys.exit(1)
