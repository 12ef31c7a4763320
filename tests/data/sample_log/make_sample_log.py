"""How tests/data/sample_log/v1.jsonl was made (kept so the next version's samples can
be made the same way). Run once per new event version, APPEND its output as a new file
(`v2.jsonl`, ...) and never edit a committed sample: they are what old logs hold.

    python tests/data/sample_log/make_sample_log.py  # i.e. python -m tests.data.sample_log.make_sample_log > /tmp/new.jsonl
"""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from fastapi.testclient import TestClient

from api.app import create_app
from api.settings import Settings
from tests.support import Api


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        settings = Settings(data_dir=Path(folder), secret_key="sample", consistency_wait_seconds=5)
        with TestClient(create_app(settings)) as client:
            api = Api(client)
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
        from streams.log_reader import LogReader

        with LogReader.open(settings.event_store) as reader:
            for raw in reader.raw():
                sys.stdout.write(raw.body.decode() + "\n")


if __name__ == "__main__":
    main()


def write_expected_read_models() -> None:
    """Fold the committed samples with today's projectors and write read_models.json:
    run once when a sample file is added, after checking the models by hand."""
    import orjson

    from tests.test_schema_evolution import fold_samples

    models = fold_samples()
    (Path(__file__).parent / "read_models.json").write_bytes(orjson.dumps(models, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n")
