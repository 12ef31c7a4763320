"""How the files of tests/data/sample_log were made (kept so the next event types and
versions get samples the same way). Each file is a batch of what some release wrote:
run the scenario once, save its output as the next numbered file, and never edit a
committed sample: they are what old logs hold.

    python -m tests.data.sample_log.make_sample_log launch  > tests/data/sample_log/01-launch.jsonl
    python -m tests.data.sample_log.make_sample_log privacy > tests/data/sample_log/02-privacy.jsonl
    python -m tests.data.sample_log.make_sample_log feed    > tests/data/sample_log/03-feed.jsonl
    python -m tests.data.sample_log.make_sample_log live    > tests/data/sample_log/04-live.jsonl
    python -c "from tests.data.sample_log.make_sample_log import write_expected_read_models as w; w()"
"""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from fastapi.testclient import TestClient

from api.app import create_app
from api.settings import Settings
from tests.support import Api


def privacy(api: Api) -> None:
    """Follow requests, blocks and mutes (written since the privacy release)."""
    dee, eve, fay = (api.sign_up(n) for n in ("dee", "eve", "fay"))
    api.ok("PATCH", "/v1/accounts/me", dee, json={"private": True})
    api.ok("POST", "/v1/accounts/dee/follow", eve)  # FollowRequested
    api.ok("POST", "/v1/follow_requests/eve/approve", dee)  # Followed
    api.ok("POST", "/v1/accounts/dee/follow", fay)  # FollowRequested
    api.ok("POST", "/v1/follow_requests/fay/decline", dee)  # FollowRequestDeclined
    api.ok("POST", "/v1/accounts/dee/follow", fay)
    api.ok("DELETE", "/v1/accounts/dee/follow", fay)  # FollowRequestCancelled
    api.post(dee, "private #garden")
    api.ok("POST", "/v1/accounts/eve/mute", fay)  # Muted
    api.ok("DELETE", "/v1/accounts/eve/mute", fay)  # Unmuted
    api.ok("POST", "/v1/accounts/fay/mute", eve)
    api.ok("POST", "/v1/accounts/eve/block", dee)  # Blocked (and Unfollowed)
    api.ok("DELETE", "/v1/accounts/eve/block", dee)  # Unblocked
    api.ok("POST", "/v1/accounts/fay/block", eve)
    api.request("GET", "/v1/feed", eve)


def feed(api: Api, client: TestClient) -> None:
    """A reader back after a long time: the feed query asks for a timeline rebuild
    (issued here through its command, as the feed route does for a dormant reader)."""
    from commands.context import Actor
    from commands.feed import request_timeline_rebuild

    gil, hal = api.sign_up("gil"), api.sign_up("hal")
    api.follow(hal, "gil")
    api.post(gil, "while you were away #news")
    backend = client.app.state.backend
    client.portal.call(request_timeline_rebuild, backend.commands, Actor(hal.id))
    api.request("GET", "/v1/feed", hal)


def live(api: Api) -> None:
    """Mentions (PostCreated, PostEdited and CommentAdded v2), notifications read, direct
    messages and their read state, and sign-out everywhere (the live and security
    releases)."""
    ivy, jon = api.sign_up("ivy"), api.sign_up("jon")
    api.follow(jon, "ivy")
    post = api.post(ivy, "hello @jon #live")
    api.ok("PATCH", f"/v1/posts/{post['id']}", ivy, json={"caption": "hello again @jon #live"})
    api.ok("POST", f"/v1/posts/{post['id']}/comments", jon, status=201, json={"text": "thanks @ivy"})
    api.ok("POST", f"/v1/posts/{post['id']}/like", jon)
    sent = api.ok("POST", "/v1/messages", ivy, status=201, json={"to": "jon", "text": "coffee?"})
    api.ok("POST", f"/v1/conversations/{sent['conversation_id']}/read", jon, json={})
    api.ok("POST", "/v1/notifications/read", ivy, json={})
    api.request("DELETE", "/v1/sessions", jon)


def main() -> None:
    scenario = sys.argv[1] if len(sys.argv) > 1 else "launch"
    with tempfile.TemporaryDirectory() as folder:
        settings = Settings(data_dir=Path(folder), secret_key="sample", consistency_wait_seconds=5)
        with TestClient(create_app(settings)) as client:
            api = Api(client)
            if scenario == "privacy":
                privacy(api)
            elif scenario == "feed":
                feed(api, client)
            elif scenario == "live":
                live(api)
            else:
                launch(api)
        from streams.log_reader import LogReader

        with LogReader.open(settings.event_store) as reader:
            for raw in reader.raw():
                sys.stdout.write(raw.body.decode() + "\n")


def launch(api: Api) -> None:
    """Accounts, profiles, follows, posts, likes, comments (the first release)."""
    ada, bob, cy = (api.sign_up(n) for n in ("ada", "bob", "cy"))
    api.ok("PATCH", "/v1/accounts/me", ada, json={"display_name": "Ada L.", "bio": "photos #bw"})
    api.follow(bob, "ada")
    api.follow(cy, "ada")
    api.follow(ada, "bob")
    api.ok("DELETE", "/v1/accounts/ada/follow", cy)
    first = api.post(ada, "first light #sunrise @bob")
    second = api.post(ada, "second #sunset", photos=2)
    third = api.post(bob, "bob's #sunset")
    api.ok("PATCH", f"/v1/posts/{second['id']}", ada, json={"caption": "second, edited #dusk"})
    api.ok("POST", f"/v1/posts/{first['id']}/like", bob)
    api.ok("POST", f"/v1/posts/{first['id']}/like", cy)
    api.ok("DELETE", f"/v1/posts/{first['id']}/like", cy)
    kept = api.ok("POST", f"/v1/posts/{first['id']}/comments", bob, status=201, json={"text": "lovely"})
    gone = api.ok("POST", f"/v1/posts/{third['id']}/comments", ada, status=201, json={"text": "typo"})
    api.ok("DELETE", f"/v1/comments/{gone['id']}", ada, status=204)
    api.ok("DELETE", f"/v1/posts/{third['id']}", bob, status=204)
    api.request("GET", "/v1/feed", bob)
    assert kept


if __name__ == "__main__":
    main()


def write_expected_read_models() -> None:
    """Fold the committed samples with today's projectors and write read_models.json:
    run once when a sample file is added, after checking the models by hand."""
    import orjson

    from tests.test_schema_evolution import fold_samples

    models = fold_samples()
    (Path(__file__).parent / "read_models.json").write_bytes(orjson.dumps(models, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n")
