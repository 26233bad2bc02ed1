"""Drives the GitLab fake (behind Prism) with GitLab's own Python client, python-gitlab:
the calls keyaudit's gitlab provider relies on must succeed and parse.

Usage: gitlab_client.py URL TOKEN PROJECT GROUP PROJECT_TOKEN_ID
Prints one JSON object with what the client read; exits non-zero on any failure.
"""

import json
import sys

import gitlab


def main() -> None:
    url, token, project, group, token_id = sys.argv[1:6]
    gl = gitlab.Gitlab(url, private_token=token, per_page=2, retry_transient_errors=False)
    me = gl.personal_access_tokens.get("self")
    personal = gl.personal_access_tokens.list(get_all=True)
    proj = gl.projects.get(project, lazy=True)
    proj_tokens = proj.access_tokens.list(get_all=True)
    grp = gl.groups.get(group, lazy=True)
    group_tokens = grp.access_tokens.list(get_all=True)
    events = proj.audit_events.list(get_all=True)
    rotated = proj.access_tokens.rotate(int(token_id))
    proj.access_tokens.delete(rotated["id"])
    after = proj.access_tokens.get(rotated["id"])
    print(
        json.dumps(
            {
                "self": me.id,
                "personal": sorted(t.name for t in personal),
                "project": sorted((t.name, t.revoked) for t in proj_tokens),
                "group": sorted(t.name for t in group_tokens),
                "project_events": len(events),
                "rotated_name": rotated["name"],
                "rotated_has_token": bool(rotated.get("token")),
                "revoked_after_delete": after.revoked,
            }
        )
    )


if __name__ == "__main__":
    try:
        main()
    except gitlab.exceptions.GitlabError as e:
        print(f"python-gitlab failed: {e!r}", file=sys.stderr)
        sys.exit(1)
