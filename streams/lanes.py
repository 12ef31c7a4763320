"""Names shared by the Faust app and the API: a projection's checkpoint per lane."""
from __future__ import annotations


def lane_name(projection: str, lane: int) -> str:
    """The checkpoint name of one lane (partition) of a projection's topic."""
    return f"{projection}#{lane}"
