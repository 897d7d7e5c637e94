"""Near-duplicate detection: MinHash signatures of a document's text and their estimated Jaccard similarity.

Two documents whose word 5-gram sets overlap by more than the threshold (the same text re-exported, a lightly
edited new version) are near duplicates. Scripts written without spaces (Chinese, Japanese, Thai) use character
5-grams instead.

Near duplicates are indexed once (the newest of a cluster stands for the others), so clustering must never hide a
document from a caller who may see it, nor let one member's copy stand for (and so displace, or by a later change
of its visibility hide) another member's document: only documents of the same scope, the same visibility and the
same owner, are merged (`scoped_links`).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping

import numpy as np

from indexer.access import ALLIANCE, MEMBER_ONLY, PUBLIC

SIGNATURE_SIZE = 128
_SHINGLE = 5
_MAX_SHINGLES = 200_000
_WORD_RE = re.compile(r"\w+", re.UNICODE)
_UNSPACED_RE = re.compile(r"[\u0e00-\u0e7f\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af]")
# Fixed odd multipliers and offsets: multiply-shift hashing, one permutation per signature slot.
_RNG = np.random.default_rng(20261129)
_MULTIPLIERS = _RNG.integers(1, 2**63, size=SIGNATURE_SIZE, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
_OFFSETS = _RNG.integers(0, 2**63, size=SIGNATURE_SIZE, dtype=np.uint64)

# Who may see a document and who may change it: its visibility and its owner (a member id; "" for none).
Scope = tuple[str, str]


def _shingles(text: str) -> set[str]:
    text = text.lower()
    if len(_UNSPACED_RE.findall(text[:5000])) > 0.3 * max(len(text[:5000].strip()), 1):
        chars = "".join(text.split())
        return {chars[i : i + _SHINGLE] for i in range(max(len(chars) - _SHINGLE + 1, 1))}
    words = _WORD_RE.findall(text)
    return {" ".join(words[i : i + _SHINGLE]) for i in range(max(len(words) - _SHINGLE + 1, 1))}


def minhash(text: str) -> np.ndarray:
    """A signature of SIGNATURE_SIZE uint32 values; equal slots estimate the Jaccard similarity of shingles."""
    shingles = sorted(_shingles(text))[:_MAX_SHINGLES]
    if not shingles or shingles == [""]:
        return np.full(SIGNATURE_SIZE, np.iinfo(np.uint32).max, dtype=np.uint32)
    hashes = np.array(
        [int.from_bytes(hashlib.blake2b(s.encode(), digest_size=8).digest(), "little") for s in shingles],
        dtype=np.uint64,
    )
    signature = np.empty(SIGNATURE_SIZE, dtype=np.uint32)
    for start in range(0, SIGNATURE_SIZE, 16):
        # uint64 arithmetic wraps modulo 2**64 by design; the high 32 bits are the permuted value.
        permuted = hashes[None, :] * _MULTIPLIERS[start : start + 16, None] + _OFFSETS[start : start + 16, None]
        signature[start : start + 16] = (permuted >> np.uint64(32)).min(axis=1).astype(np.uint32)
    return signature


def similarity(signature: np.ndarray, others: np.ndarray) -> np.ndarray:
    """Estimated Jaccard similarity of one signature to each row of `others` (shape (n, SIGNATURE_SIZE))."""
    if len(others) == 0:
        return np.zeros(0, dtype=np.float32)
    return (others == signature[None, :]).mean(axis=1).astype(np.float32)


def most_similar(
    signature: np.ndarray, candidates: list[tuple[str, bytes]], threshold: float, exclude: str
) -> str | None:
    """The id of the candidate most similar to `signature` at or above `threshold` (earliest on ties)."""
    ids = [doc_id for doc_id, _ in candidates if doc_id != exclude]
    if not ids:
        return None
    others = np.stack([np.frombuffer(blob, dtype=np.uint32) for doc_id, blob in candidates if doc_id != exclude])
    scores = similarity(signature, others)
    best = int(np.argmax(scores))
    return ids[best] if scores[best] >= threshold else None


def access_scope(visibility: str, owner_id: str | None) -> Scope:
    """A key equal for two documents exactly when the same callers may see both (the rule of Viewer.can_see) and
    the same member owns both. Owning is part of the key even where it does not change who sees (public,
    alliance): a copy shown for another member's document could displace it, and, made member-only after the
    build, hide it from everyone until the next. Documents without an owner (the operator's) share one."""
    if visibility not in (PUBLIC, ALLIANCE):
        visibility = MEMBER_ONLY
    return (visibility, owner_id or "")


def scoped_links(
    links: Mapping[str, str], scopes: Mapping[str, Scope], signatures: Mapping[str, bytes], threshold: float
) -> dict[str, str]:
    """The near-duplicate links to cluster by, among the documents of `scopes` (those being indexed).

    A cluster shows only its newest document, which is safe only when every caller who may see one copy may see
    that one, and only the owner of the others may change it: so a link joins two documents of the same scope. A
    stored link (made once, at extraction, to the most similar text whatever its scope) that crosses scopes,
    because the copies differ in access or owner or one's was changed since, is replaced by the document's most
    similar twin within its own scope (from `signatures`), if one reaches `threshold`. Links to documents not
    being indexed are dropped.
    """
    kept: dict[str, str] = {}
    by_scope: dict[Scope, list[tuple[str, bytes]]] | None = None  # made on the first crossing link
    for doc_id, other in links.items():
        scope = scopes.get(doc_id)
        if scope is None or other not in scopes:
            continue
        if scopes[other] == scope:
            kept[doc_id] = other
            continue
        signature = signatures.get(doc_id)
        if signature is None:
            continue
        if by_scope is None:
            by_scope = {}
            for candidate, blob in signatures.items():
                if candidate in scopes:
                    by_scope.setdefault(scopes[candidate], []).append((candidate, blob))
        twin = most_similar(np.frombuffer(signature, dtype=np.uint32), by_scope[scope], threshold, exclude=doc_id)
        if twin is not None:
            kept[doc_id] = twin
    return kept


def duplicate_clusters(links: dict[str, str], order: list[str]) -> dict[str, list[str]]:
    """Group documents linked as near duplicates; each group is keyed by its newest member (last in `order`),
    which is the one search shows, and lists the others (newest first)."""
    parent = {doc_id: doc_id for doc_id in order}

    def root(doc_id: str) -> str:
        while parent[doc_id] != doc_id:
            parent[doc_id] = parent[parent[doc_id]]
            doc_id = parent[doc_id]
        return doc_id

    for doc_id, other in links.items():
        if doc_id in parent and other in parent:
            parent[root(doc_id)] = root(other)
    groups: dict[str, list[str]] = {}
    for doc_id in order:
        groups.setdefault(root(doc_id), []).append(doc_id)
    return {members[-1]: members[-2::-1] for members in groups.values()}
