from __future__ import annotations

from tests.support import Api


def test_sign_up_post_follow_feed_like_comment(api: Api) -> None:
    ana, ben = api.sign_up("ana"), api.sign_up("ben")
    api.follow(ben, "ana")
    post = api.post(ana, "first light #Sunrise @ben", photos=2)
    assert post["tags"] == ["sunrise"] and post["mentions"] == ["ben"] and len(post["media"]) == 2
    assert api.ok("POST", f"/v1/posts/{post['id']}/like", ben) == {"liked": True}
    api.ok("POST", f"/v1/posts/{post['id']}/comments", ben, status=201, json={"text": "lovely"})
    feed = api.ok("GET", "/v1/feed", ben)
    assert [p["id"] for p in feed["items"]] == [post["id"]]
    assert feed["items"][0]["like_count"] == 1 and feed["items"][0]["comment_count"] == 1
    assert feed["items"][0]["liked_by_me"] is True


def test_refused_command_appends_nothing(api: Api, log_size) -> None:
    ana = api.sign_up("ana")
    before = log_size()
    response = api.request("POST", "/v1/posts", ana, json={"caption": "x", "media_ids": ["123"]})
    assert response.status_code == 422
    assert log_size() == before


def test_a_read_with_a_token_waits_for_the_projections_and_says_when_it_gave_up(tmp_path) -> None:
    """Embedded: with the projection runner stopped, a read that sends a fresh write's
    token must wait out the bound and then answer X-Consistency: stale."""
    import time

    from fastapi.testclient import TestClient

    from api.app import create_app
    from api.settings import Settings

    settings = Settings(data_dir=tmp_path / "data", secret_key="t", consistency_wait_seconds=0.5)
    with TestClient(create_app(settings)) as http:
        api = Api(http)
        ana = api.sign_up("ana")
        assert "x-consistency" not in api.request("GET", "/v1/accounts/me", ana).headers
        http.app.state.backend.runner.stop()
        api.ok("PATCH", "/v1/accounts/me", ana, json={"bio": "new"}, status=200)
        started = time.monotonic()
        response = api.request("GET", "/v1/accounts/me", ana)
        assert time.monotonic() - started >= 0.5
        assert response.headers.get("x-consistency") == "stale"
        # ... and the projections say they are behind, by how much and for how long.
        for item in api.ok("GET", "/v1/projections")["items"]:
            assert item["lag_events"] == 1 and item["status"] == "catching up", item
            assert item["lag_seconds"] is not None and item["lag_seconds"] >= 0.5, item


def test_projections_report_progress_and_lag(api: Api) -> None:
    api.sign_up("ana")
    items = api.ok("GET", "/v1/projections")["items"]
    names = {i["name"] for i in items}
    assert {"accounts", "home_timeline", "likes", "followers"} <= names
    # The sign-up is one event; after a read that waited for it, every projection has it.
    api.ok("GET", "/v1/accounts/ana")
    for item in api.ok("GET", "/v1/projections")["items"]:
        assert item["position"] >= 1 and item["lag_events"] == 0 and item["status"] == "live", item
        assert item["lag_seconds"] == 0 and item["version"] == 1
