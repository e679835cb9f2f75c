"""Raw identifiers of pseudonymized accounts: the leak check's reference set and redaction.

The hashed variant must not contain, in any byte, a raw userid, screen name or display name of
an account below the threshold (RELEASE_SPEC section 4). The same set serves three purposes:

- a Spark view (``identifier_id, kind, pos, n_tokens, token``) that the GX expectation
  ``expect_no_raw_identifier_leak`` joins against (broadcast: a campaign has thousands of
  accounts, a release millions of posts);
- ``redact``: validation results of the hashed variant are passed through it before they are
  stored, rendered to Data Docs or written to summary.json, so a failing expectation can never
  copy a raw identifier into the report that is meant to prove there is none;
- ``count_hits``: a final scan of the rendered hashed Data Docs (fail closed).

Tokens: lower-cased runs of letters, digits and ``_`` (Spark ``regexp_extract_all`` of
``[\\p{L}\\p{N}_]+``, Python ``\\w``). Never log identifiers themselves, only counts and kinds.
"""

from __future__ import annotations

import html
import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

REDACTED = "[raw identifier redacted]"
IDENTIFIER_KINDS = {"userid": "userid", "user_screen_name": "screen_name", "user_display_name": "display_name"}
TOKEN_RE = r"[\p{L}\p{N}_]+"
"""A token (Java regex): a run of letters, digits and ``_``. Spark's ``regexp_extract_all``
compiles it once per task; ``split`` on the complement compiled it again for every row."""
_TAG_RE = re.compile(r"<[^>]*>")
_PY_SPLIT = re.compile(r"[^\w]+", re.UNICODE)


def tokens(text: str) -> list[str]:
    """Tokens of ``text`` as the Spark leak query sees them (lower-cased, separators dropped)."""
    return [t for t in _PY_SPLIT.split(text.lower()) if t]


def identifier_frame(unhashed_accounts: DataFrame, threshold: int) -> DataFrame:
    """Positioned tokens of every raw identifier of every account below ``threshold``.

    Columns: ``identifier_id`` (one per distinct sequence and kind), ``kind`` (userid,
    screen_name, display_name), ``pos``, ``n_tokens``, ``token``. Identifiers with no token (an
    emoji-only display name) cannot be matched as tokens and are dropped; so are sequences that
    are part of a name an account at or above the threshold publishes raw (shared
    vocabulary: see docs/decisions.md).
    """
    from pyspark.sql import functions as F

    def token_sequences(accounts: DataFrame) -> DataFrame:
        parts = [
            accounts.select(F.col(column).cast("string").alias("value"), F.lit(kind).alias("kind"))
            for column, kind in IDENTIFIER_KINDS.items()
        ]
        values = parts[0].unionByName(parts[1]).unionByName(parts[2]).where(F.col("value").isNotNull())
        toks = F.regexp_extract_all(F.lower(F.col("value")), F.lit(TOKEN_RE), 0)
        return values.select("kind", toks.alias("toks")).where(F.size("toks") > 0)

    below = unhashed_accounts.where(F.col("follower_count") < F.lit(threshold))
    # Words that accounts at or above the threshold publish in their raw names ("Reza Ahmadi"
    # x3, a screen name "Reza") are shared vocabulary: they identify no pseudonymized account and
    # are legitimately in the public variant. Every contiguous token run of a public name is
    # removed from the search set.
    public = token_sequences(unhashed_accounts.where(F.col("follower_count") >= F.lit(threshold)))
    public_runs = (
        public.select("toks", F.explode(F.sequence(F.lit(1), F.size("toks"))).alias("start"))
        .select("toks", "start", F.explode(F.sequence(F.lit(1), F.size("toks") - F.col("start") + 1)).alias("n"))
        .select(F.slice("toks", F.col("start"), F.col("n")).alias("toks"))
        .distinct()
    )
    return (
        token_sequences(below)
        .join(F.broadcast(public_runs), on="toks", how="left_anti")
        .dropDuplicates(["kind", "toks"])
        .withColumn("identifier_id", F.monotonically_increasing_id())
        .select("identifier_id", "kind", F.size("toks").alias("n_tokens"), F.posexplode("toks"))
        .withColumnRenamed("col", "token")
        .select("identifier_id", "kind", "pos", "n_tokens", "token")
    )


@dataclass
class IdentifierSet:
    """Driver-side copy of the identifier token sequences (for redaction and the HTML scan)."""

    sequences: set[tuple[str, ...]] = field(default_factory=set)
    by_first: dict[str, list[tuple[str, ...]]] = field(default_factory=lambda: defaultdict(list))

    @classmethod
    def from_frame(cls, frame: DataFrame) -> IdentifierSet:
        grouped: dict[int, list[tuple[int, str]]] = defaultdict(list)
        for row in frame.select("identifier_id", "pos", "token").collect():
            grouped[row["identifier_id"]].append((row["pos"], row["token"]))
        return cls.from_sequences(tuple(t for _, t in sorted(v)) for v in grouped.values())

    @classmethod
    def from_sequences(cls, sequences: Iterable[tuple[str, ...]]) -> IdentifierSet:
        result = cls()
        for seq in sequences:
            if seq and seq not in result.sequences:
                result.sequences.add(seq)
                result.by_first[seq[0]].append(seq)
        return result

    def __len__(self) -> int:
        return len(self.sequences)

    def count_hits(self, text: str) -> int:
        """How many identifier occurrences ``text`` contains.

        HTML tags are dropped and entities decoded first, so markup between the words of a
        display name (``<b>first</b> last``) cannot hide it from the Data Docs scan.
        """
        toks = tokens(html.unescape(_TAG_RE.sub(" ", text)))
        hits = 0
        for i, tok in enumerate(toks):
            for seq in self.by_first.get(tok, ()):
                if tuple(toks[i : i + len(seq)]) == seq:
                    hits += 1
        return hits

    def redact(self, value: Any) -> Any:
        """Copy of a JSON-like value with every string that holds an identifier replaced."""
        if isinstance(value, str):
            return REDACTED if self.count_hits(value) else value
        if isinstance(value, dict):
            return {k: self.redact(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self.redact(v) for v in value]
        return value
