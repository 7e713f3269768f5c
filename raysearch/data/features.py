"""Attribute fields as data: every field gives each entity a bag of token indices.

A categorical field has one token per entity, a multi-valued field (genres) several, and a hashed text
field (titles) one token per word. The model embeds every field the same way (a mean over the bag), so
adding a field is a data change only. Token 0 of every field means "unknown / empty".
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

UNKNOWN = "<unk>"
_WORD = re.compile(r"[a-z0-9]+")


@dataclass(frozen=True)
class Field:
    """One attribute field of users or items, stored as CSR bags over the entities."""

    name: str
    kind: str  # "categorical" | "multi" | "hashed"
    vocab: tuple[str, ...]  # token strings by index ("hashed": only UNKNOWN, words map to buckets)
    size: int  # embedding rows this field needs
    tokens: np.ndarray  # int64 [nnz]: token indices of all bags, concatenated
    offsets: np.ndarray  # int64 [num_entities + 1]: bag e is tokens[offsets[e]:offsets[e + 1]]

    def bag(self, entity: int) -> list[int]:
        return self.tokens[self.offsets[entity]:self.offsets[entity + 1]].tolist()

    def vocabulary(self) -> dict:
        """What a checkpoint stores to encode new entities later: kind, vocab and size."""
        return {"name": self.name, "kind": self.kind, "vocab": list(self.vocab), "size": self.size}


def categorical(name: str, values: Sequence[str]) -> Field:
    """One token per entity; empty strings become UNKNOWN."""
    return multi(name, [[v] if v else [] for v in values], kind="categorical")


def multi(name: str, values: Sequence[Sequence[str]], kind: str = "multi") -> Field:
    """A bag of labels per entity (e.g. genres); the vocabulary is sorted for stable indices."""
    vocab = (UNKNOWN, *sorted({v for bag in values for v in bag}))
    index = {v: i for i, v in enumerate(vocab)}
    return _from_bags(name, kind, vocab, len(vocab), [[index[v] for v in bag] for bag in values])


def hashed_text(name: str, texts: Sequence[str], buckets: int) -> Field:
    """Lower-cased words hashed (CRC32, stable across runs) into ``buckets - 1`` buckets."""
    bags = [[1 + zlib.crc32(w.encode()) % (buckets - 1) for w in _WORD.findall(t.lower())] for t in texts]
    return _from_bags(name, "hashed", (UNKNOWN,), buckets, bags)


def _from_bags(name: str, kind: str, vocab: tuple[str, ...], size: int, bags: list[list[int]]) -> Field:
    bags = [bag or [0] for bag in bags]
    offsets = np.zeros(len(bags) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(b) for b in bags])
    tokens = np.fromiter((t for b in bags for t in b), dtype=np.int64, count=int(offsets[-1]))
    return Field(name, kind, tuple(vocab), size, tokens, offsets)


def field_tensors(fields: Sequence[Field]) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(tokens, offsets) tensor pairs in the layout ``nn.EmbeddingBag`` takes (offsets without the end)."""
    return [(torch.tensor(f.tokens), torch.tensor(f.offsets[:-1])) for f in fields]


def content_matrix(fields: Sequence[Field]) -> torch.Tensor:
    """Float ``[entities, sum of field sizes - 1 each]``: every field's bag as a mean-normalised multi-hot
    (token 0, "unknown", left out), so each field weighs the same whatever its bag size."""
    blocks = []
    for field in fields:
        counts = np.diff(field.offsets)
        rows = np.repeat(np.arange(len(counts)), counts)
        block = np.zeros((len(counts), field.size), dtype=np.float32)
        np.add.at(block, (rows, field.tokens), 1.0)
        block = block[:, 1:]
        blocks.append(block / np.maximum(block.sum(1, keepdims=True), 1.0))
    return torch.from_numpy(np.concatenate(blocks, 1))
