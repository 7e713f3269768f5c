import zlib

import numpy as np
import torch

from raysearch.data import features


def test_categorical_fields_index_a_sorted_vocabulary_with_unknown_first():
    field = features.categorical("gender", ["M", "F", "", "M"])
    assert field.vocab == ("<unk>", "F", "M") and field.size == 3
    assert [field.bag(e) for e in range(4)] == [[2], [1], [0], [2]]  # empty -> unknown
    assert field.vocabulary() == {"name": "gender", "kind": "categorical", "vocab": ["<unk>", "F", "M"], "size": 3}


def test_multi_valued_fields_hold_a_bag_per_entity():
    field = features.multi("genres", [["Drama", "Comedy"], [], ["Drama"]])
    assert field.kind == "multi" and [field.bag(e) for e in range(3)] == [[2, 1], [0], [2]]
    assert field.offsets.tolist() == [0, 2, 3, 4]


def test_hashed_text_maps_words_stably_into_buckets_above_zero():
    field = features.hashed_text("title", ["Toy Story (1995)", ""], 16)
    expected = [1 + zlib.crc32(w.encode()) % 15 for w in ("toy", "story", "1995")]
    assert field.bag(0) == expected and field.bag(1) == [0] and field.size == 16


def test_field_tensors_are_embedding_bag_inputs():
    field = features.multi("genres", [["a", "b"], ["b"]])
    ((tokens, offsets),) = features.field_tensors([field])
    assert tokens.tolist() == [1, 2, 2] and offsets.tolist() == [0, 2]
    bag = torch.nn.EmbeddingBag(field.size, 1, mode="sum")
    torch.nn.init.ones_(bag.weight)
    assert bag(tokens, offsets).squeeze(1).tolist() == [2.0, 1.0]
    assert np.array_equal(field.tokens, tokens.numpy())
