"""A pool's documents → its instances: exact dedup, pairs for every dupe, masks.

Documents with the same content key always share a pool (the pool follows from the key), so
exact duplicates are removed here, inside one pool, without a shuffle of texts: of several
copies the first in input order (smallest locator) is kept. The pool is then sorted by key (its
order must not depend on the runner) and every document gives its pairs and masks for each of
the ``dupe_factor`` copies, each (document, dupe) on its own random stream. Packed layouts
(``BuildConfig.packed``) cut the pool into rows in ``corpusgen.packing`` instead of pairs.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Collection, Sequence

from corpusgen import stats
from corpusgen.config import BuildConfig
from corpusgen.documents import Removed, drop
from corpusgen.intermediate import PoolDocument
from corpusgen.masking import VocabTables, mask_documents
from corpusgen.packing import create_packed_instances
from corpusgen.pairing import TokenizedDocument, create_pairs, document_seed, seeded_rng
from corpusgen.partition import VALIDATION
from corpusgen.shards import Instances
from corpusgen.timing import StageTimer

DOCS_PER_MASK_BATCH = 512  # documents masked together; bounds the arrays of one call


def unique_documents(
    docs: Sequence[PoolDocument],
    split: str,
    cfg: BuildConfig,
    counts: Counter,
    removed: Removed | None = None,
    near_duplicates: Collection[str] = (),
) -> list[TokenizedDocument]:
    """The pool's documents without exact (and marked near-) duplicates, sorted by key."""
    out: list[TokenizedDocument] = []
    last_key, copy = None, 0
    for d in sorted(docs, key=lambda d: (d.doc.key, d.locator)):
        key = d.doc.key
        copy = copy + 1 if key == last_key else 0
        last_key = key
        if key in near_duplicates:
            drop(counts, removed, stats.NEAR_DUPLICATE_DOCUMENT, d.text)
            continue
        if copy and cfg.dedup:
            drop(counts, removed, stats.DUPLICATE_DOCUMENT, d.text)
            continue
        doc = d.doc
        if copy:  # dedup off: a copy gets a key of its own, so its masks differ
            doc = TokenizedDocument(
                hashlib.blake2b(f"{key}:{copy}".encode(), digest_size=16).hexdigest(),
                doc.ids,
                doc.bounds,
                word_starts=doc.word_starts,
            )
        out.append(doc)
    out.sort(key=lambda d: d.key)
    if out:
        counts["pools"] += 1
        counts["pool_documents"] += len(out)
    counts["documents_unique"] += len(out)
    counts["documents_kept"] += len(out)
    if split == VALIDATION:
        counts["documents_validation"] += len(out)
    counts["sentences_kept"] += sum(d.n_sentences for d in out)
    counts["tokens_kept"] += sum(d.n_tokens for d in out)
    return out


def create_instances(
    pool: Sequence[TokenizedDocument],
    cfg: BuildConfig,
    tables: VocabTables,
    counts: Counter,
    timer: StageTimer | None = None,
    dupes: Sequence[int] | None = None,
) -> Instances | None:
    """The instances of a pool (sorted by key) for ``dupes`` (default: every copy), copy after
    copy; None when it makes none. A copy's instances do not depend on the others."""
    timer = timer or StageTimer()
    dupes = range(cfg.dupe_factor) if dupes is None else dupes
    if cfg.packed:
        packed = create_packed_instances(pool, cfg, tables, counts, timer, dupes)
        return Instances.concat(packed) if packed else None
    parts = []
    for dupe in dupes:
        for lo in range(0, len(pool), DOCS_PER_MASK_BATCH):
            batch = []
            with timer.stage("pair"):
                for i in range(lo, min(lo + DOCS_PER_MASK_BATCH, len(pool))):
                    seed = document_seed(cfg.random_seed, pool[i].key, dupe)
                    pairs = create_pairs(i, pool, cfg, seeded_rng(seed), counts)
                    counts["short_target_instances"] += sum(p.short for p in pairs)
                    batch.append((pairs, seed))
            with timer.stage("mask"):
                parts.append(mask_documents(batch, tables, cfg, counts))
    parts = [p for p in parts if len(p)]
    return Instances.concat(parts) if parts else None
