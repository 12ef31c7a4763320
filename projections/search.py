"""Read model `search`: inverted indexes for accounts, hashtags and caption words.

Everything is matched on *folded* text (case folded, accents and other combining marks
removed: "Été" and "ete" are one word), on both sides.

- Accounts: every prefix (up to PREFIX_MAX characters) of the username, of each word of
  the display name and of the whole display name is a partition of
  `search_name_prefixes`, clustered by account id, holding the account's names. Only a
  registration or a name change writes them: a follow writes nothing here. A query
  reads up to ACCOUNT_CANDIDATES rows of its prefix (oldest accounts first), keeps those
  whose names start with the term, and ranks them at read time by their follower count
  (the `followers` read model's, the count every profile shows) then username; the
  exact username comes first whether or not it was among the candidates.
- Hashtags: prefixes of the folded tag -> the tags (`search_tag_prefixes`, by name), and
  post counts kept per (tag, shard): a post's tag writes are keyed by its shard, so a
  shard's count row has one writer and stays exact with no counter column; a tag's count
  is the sum of its shards' rows.
- Caption words: (word, month) -> post ids newest first, like the hashtag feeds, with a
  post -> words index so that an edit moves the post and a delete removes it.
"""
from __future__ import annotations

import re
import unicodedata
import zlib
from dataclasses import dataclass
from typing import Iterable

from domain.events import AccountRegistered, Event, PostCreated, PostDeleted, PostEdited, ProfileUpdated
from domain.rules import USERNAME_RE
from projections import queries
from projections import discovery_filter
from projections.paging import filtered_page
from projections.posts_by_tag import bucket_of
from projections.projector import Projector, on
from projections.store import Delete, ReadView, Row, Table, Upsert, Write

PREFIX_MAX = 12  # longer queries read the 12-character partition and filter it
NAME_WORDS_MAX = 6  # words of a display name that are indexed
WORD_MAX = 64  # longer "words" in captions are not indexed
TAG_SHARDS = 8
MAX_FOLLOWERS = 9_999_999_999
READ_BUDGET = 500  # index rows one page may read before it answers (short) with a cursor
# Accounts one account query ranks. A prefix shared by more accounts than this ranks the
# oldest ACCOUNT_CANDIDATES of them (and the exact username, always): the price of a
# follow costing no search writes (see docs/ARCHITECTURE.md, Discovery).
ACCOUNT_CANDIDATES = 1000

SEARCH_NAMES = Table("search_names", {"account_id": "int", "names": "json", "prefixes": "json"}, ("account_id",))
NAME_PREFIXES = Table("search_name_prefixes", {"prefix": "text", "account_id": "int", "names": "json"}, ("prefix",), "account_id")
TAG_PREFIXES = Table("search_tag_prefixes", {"prefix": "text", "tag": "text"}, ("prefix",), "tag")
TAG_COUNTS = Table("search_tag_counts", {"tag": "text", "shard": "int", "count": "int"}, ("tag",), "shard")
POST_TAGS = Table("search_post_tags", {"post_id": "int", "tag": "text"}, ("post_id",), "tag")
POST_WORDS = Table("search_post_words", {"post_id": "int", "word": "text"}, ("post_id",), "word")
WORD_POSTS = Table(
    "search_word_posts",
    {"word": "text", "bucket": "int", "post_id": "int", "author_id": "int"},
    ("word", "bucket"),
    "post_id",
    descending=True,
)
WORD_BUCKETS = Table("search_word_buckets", {"word": "text", "bucket": "int"}, ("word",), "bucket", descending=True)

_WORD_RE = re.compile(r"\w+", re.UNICODE)
# Letters with no decomposition that people type without their stroke or ligature.
_PLAIN_LETTERS = str.maketrans({"ø": "o", "ł": "l", "đ": "d", "ħ": "h", "ı": "i", "æ": "ae", "œ": "oe", "þ": "th", "ð": "d"})


# ----- folding -------------------------------------------------------------------------


def fold(text: str) -> str:
    """Case folded, without accents or other combining marks, NFC: what is indexed and
    what is looked up. Casefold first: it can itself produce combining marks (İ)."""
    decomposed = unicodedata.normalize("NFKD", text.casefold().translate(_PLAIN_LETTERS))
    return unicodedata.normalize("NFC", "".join(ch for ch in decomposed if not unicodedata.category(ch).startswith("M")))


def words_of(text: str) -> list[str]:
    """Distinct folded words (letters, digits, '_') in order of first appearance."""
    seen: dict[str, None] = {}
    for word in _WORD_RE.findall(fold(text)):
        if len(word) <= WORD_MAX:
            seen.setdefault(word, None)
    return list(seen)


def account_names(username: str, display_name: str) -> list[str]:
    """The folded names an account is found by: username, display-name words, whole name."""
    whole = " ".join(fold(display_name).split())
    names = [username, *words_of(display_name)[:NAME_WORDS_MAX], whole[:PREFIX_MAX * 4]]
    return list(dict.fromkeys(n for n in names if n))


def prefixes_of(names: Iterable[str]) -> list[str]:
    return sorted({name[:k] for name in names for k in range(1, min(len(name), PREFIX_MAX) + 1)})


def rank_key(followers: int, username: str) -> str:
    """Ascending text order = most followers first, then username."""
    return f"{MAX_FOLLOWERS - min(followers, MAX_FOLLOWERS):010d}:{username}"


def tag_shard(post_id: str | int) -> int:
    return zlib.crc32(str(post_id).encode()) % TAG_SHARDS


# ----- the projector -------------------------------------------------------------------


class Search(Projector):
    name = "search"
    tables = (SEARCH_NAMES, NAME_PREFIXES, TAG_PREFIXES, TAG_COUNTS, POST_TAGS, POST_WORDS, WORD_POSTS, WORD_BUCKETS)

    @on(AccountRegistered, key=lambda e: e.account_id)
    def registered(self, e: AccountRegistered, event: Event, view: ReadView) -> list[Write]:
        return _refile(view, int(e.account_id), account_names(e.username, e.display_name))

    @on(ProfileUpdated, key=lambda e: e.account_id)
    def profile_updated(self, e: ProfileUpdated, event: Event, view: ReadView) -> list[Write]:
        row = view.get(SEARCH_NAMES, {"account_id": int(e.account_id)})
        if row is None:
            return []  # same stream as the registration, so never before it
        username = row["names"][0]  # account_names puts the username first
        return _refile(view, int(e.account_id), account_names(username, e.display_name))

    @on(PostCreated, key=lambda e: f"posts-{tag_shard(e.post_id)}")
    def post_created(self, e: PostCreated, event: Event, view: ReadView) -> list[Write]:
        return _retext(view, int(e.post_id), int(e.author_id), words_of(e.caption), list(e.tags))

    @on(PostEdited, key=lambda e: f"posts-{tag_shard(e.post_id)}")
    def post_edited(self, e: PostEdited, event: Event, view: ReadView) -> list[Write]:
        return _retext(view, int(e.post_id), int(e.author_id), words_of(e.caption), list(e.tags))

    @on(PostDeleted, key=lambda e: f"posts-{tag_shard(e.post_id)}")
    def post_deleted(self, e: PostDeleted, event: Event, view: ReadView) -> list[Write]:
        return _retext(view, int(e.post_id), int(e.author_id), [], [])


def _refile(view: ReadView, account_id: int, names: list[str]) -> list[Write]:
    """Bring an account's prefix rows to its current names (only what changed)."""
    row = view.get(SEARCH_NAMES, {"account_id": account_id})
    if row is not None and row["names"] == names:
        return []
    old = set(row["prefixes"] or []) if row else set()
    new = prefixes_of(names)
    writes: list[Write] = [Delete(NAME_PREFIXES, {"prefix": p, "account_id": account_id}) for p in sorted(old - set(new))]
    writes += [Upsert(NAME_PREFIXES, {"prefix": p, "account_id": account_id, "names": names}) for p in new]
    writes.append(Upsert(SEARCH_NAMES, {"account_id": account_id, "names": names, "prefixes": new}))
    return writes


def _retext(view: ReadView, post_id: int, author_id: int, words: list[str], tags: list[str]) -> list[Write]:
    """Bring a post's word and tag index rows to the given words and tags."""
    writes: list[Write] = []
    bucket = bucket_of(post_id)
    old_words = {r["word"] for r in view.scan(POST_WORDS, {"post_id": post_id})}
    for word in sorted(old_words - set(words)):
        writes += [Delete(WORD_POSTS, {"word": word, "bucket": bucket, "post_id": post_id}), Delete(POST_WORDS, {"post_id": post_id, "word": word})]
    for word in words:
        if word not in old_words:
            writes += [
                Upsert(WORD_POSTS, {"word": word, "bucket": bucket, "post_id": post_id, "author_id": author_id}),
                Upsert(WORD_BUCKETS, {"word": word, "bucket": bucket}),
                Upsert(POST_WORDS, {"post_id": post_id, "word": word}),
            ]
    shard = tag_shard(post_id)
    old_tags = {r["tag"] for r in view.scan(POST_TAGS, {"post_id": post_id})}
    for tag, delta in [(t, -1) for t in sorted(old_tags - set(tags))] + [(t, +1) for t in tags if t not in old_tags]:
        found = view.get(TAG_COUNTS, {"tag": tag, "shard": shard})
        writes.append(Upsert(TAG_COUNTS, {"tag": tag, "shard": shard, "count": max((found["count"] if found else 0) + delta, 0)}))
        if delta < 0:
            writes.append(Delete(POST_TAGS, {"post_id": post_id, "tag": tag}))
        else:
            writes.append(Upsert(POST_TAGS, {"post_id": post_id, "tag": tag}))
            # Prefix rows are a set and never removed: a tag with no posts left is skipped
            # when read (its shards are written by other lanes, so no one writer may decide).
            writes += [Upsert(TAG_PREFIXES, {"prefix": p, "tag": tag}) for p in prefixes_of([fold(tag)])]
    return writes


# ----- queries -------------------------------------------------------------------------


@dataclass(frozen=True)
class TagHit:
    name: str
    post_count: int


def account_term(q: str) -> str:
    """What an account query looks for: folded, spaces collapsed, without a leading '@'."""
    return " ".join(fold(q.strip().removeprefix("@")).split())


def tag_term(q: str) -> str:
    return fold(q.strip().removeprefix("#"))


def search_accounts(view: ReadView, q: str, viewer: int | None, cursor: str | None, limit: int) -> tuple[list[queries.AccountView], str | None]:
    """The account named exactly `q` first (on the first page), then accounts with a
    username, display-name word or display name starting with it, most followed first,
    then by username. The cursor is the rank key (rank_key) of the last account given;
    "" means: the exact match was given, the ranked list starts next."""
    term = account_term(q)
    exact_id = queries.account_id_by_username(view, term) if USERNAME_RE.fullmatch(term) else None
    if exact_id is not None and exact_id in discovery_filter.hidden_from_discovery(view, viewer, [exact_id]):
        exact_id = None
    items: list[queries.AccountView] = []
    if cursor is None and exact_id is not None:
        exact = queries.account_by_id(view, exact_id)
        if exact is not None:
            items.append(exact)
            cursor = ""
            if limit == 1:
                return items, cursor
    rows = view.scan(NAME_PREFIXES, {"prefix": term[:PREFIX_MAX]}, limit=ACCOUNT_CANDIDATES)
    wanted = [r for r in rows if r["account_id"] != exact_id and any(n.startswith(term) for n in r["names"])]
    hidden = discovery_filter.hidden_from_discovery(view, viewer, [r["account_id"] for r in wanted])
    wanted = [r for r in wanted if r["account_id"] not in hidden]
    counts = queries.follower_counts(view, [r["account_id"] for r in wanted])
    ranked = sorted((rank_key(n, r["names"][0]), r["account_id"]) for r, n in zip(wanted, counts))
    if cursor:
        ranked = [(rank, i) for rank, i in ranked if rank > cursor]
    page = ranked[: limit - len(items)]
    found = dict(zip([i for _, i in page], queries.accounts_by_id(view, [i for _, i in page])))
    items += [a for _, i in page if (a := found.get(i)) is not None]
    more = len(ranked) > len(page)
    return items, (page[-1][0] if more else None)


def tag_post_count(view: ReadView, tag: str) -> int:
    return sum(int(r["count"]) for r in view.scan(TAG_COUNTS, {"tag": tag}))


def search_tags(view: ReadView, q: str, cursor: str | None, limit: int) -> tuple[list[TagHit], str | None]:
    """Hashtags whose folded name starts with the folded query, by name, with their
    exact post counts; tags no post carries any more are left out."""
    term = tag_term(q)

    def fetch(after: str | None, n: int) -> list[Row]:
        return view.scan(TAG_PREFIXES, {"prefix": term[:PREFIX_MAX]}, start_after=after, limit=n)

    def keep(rows: list[Row]) -> list[TagHit | None]:
        hits: list[TagHit | None] = []
        for r in rows:
            count = tag_post_count(view, r["tag"]) if fold(r["tag"]).startswith(term) else 0
            hits.append(TagHit(r["tag"], count) if count > 0 else None)
        return hits

    return filtered_page(fetch, keep, "tag", cursor, limit, READ_BUDGET)


def _word_rows(view: ReadView, word: str, after: int | None, limit: int) -> list[Row]:
    """Post ids containing the word, newest first, month partition by month partition."""
    rows: list[Row] = []
    for b in view.scan(WORD_BUCKETS, {"word": word}):
        bucket = b["bucket"]
        if after is not None and bucket > bucket_of(after):
            continue
        start = after if after is not None and bucket == bucket_of(after) else None
        rows += view.scan(WORD_POSTS, {"word": word, "bucket": bucket}, start_after=start, limit=limit - len(rows))
        if len(rows) >= limit:
            break
    return rows


def search_posts(view: ReadView, q: str, viewer: int | None, cursor: int | None, limit: int) -> tuple[list[queries.PostView], int | None]:
    """Posts whose caption has every word of the query, newest first. The longest word
    drives the scan (likely the rarest); the others are checked per post."""
    words = words_of(q)
    if not words:
        return [], None
    driver = max(words, key=len)
    others = [w for w in words if w != driver]

    def keep(rows: list[Row]) -> list[queries.PostView | None]:
        checks = view.get_many(POST_WORDS, [{"post_id": r["post_id"], "word": w} for r in rows for w in others])
        wanted = [r for n, r in enumerate(rows) if all(checks[n * len(others) : (n + 1) * len(others)])]
        hidden = discovery_filter.hidden_post_authors(view, viewer, {r["author_id"] for r in wanted})
        ids = [r["post_id"] for r in wanted if r["author_id"] not in hidden]
        found = {p.id: p for p in queries.posts_by_id(view, ids, viewer)}
        return [found.get(r["post_id"]) for r in rows]

    return filtered_page(lambda after, n: _word_rows(view, driver, after, n), keep, "post_id", cursor, limit, READ_BUDGET)
