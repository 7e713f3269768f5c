"""The contrastive cold-start recommender with adaptive feature fusion (pure ``nn.Module``s).

Node inputs are ``ID embedding + fused attributes``; a LightGCN-style stack of ``LGConv`` layers
propagates them over the user-item training graph and the layer outputs are averaged. A node with no
training edge (a cold user or item) has no usable ID and no neighbours, so its representation is its
fused attributes alone, or, with attribute neighbours, those plus the graph views of the known entities whose
attributes are most like its own. In training, ID dropout hides a random share of known nodes the same way
(DropoutNet-style), and the trainer's cross-view InfoNCE ties the attribute view to the graph view, so
the attribute path learns to stand in for missing history.
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import torch
from torch import nn

from raysearch.model.graph import SampledGraph, SymmetricLGConv, sparse_matmul
from raysearch.registry import FUSIONS, TOWERS

FieldBags = Sequence[tuple[torch.Tensor, torch.Tensor]]
Graph = torch.Tensor | SampledGraph  # the symmetric sparse adjacency, or a sampled step's graph


class AdaptiveFusion(nn.Module):
    """Attention over attribute fields: each entity gets softmax weights over its field embeddings.

    Args:
        field_sizes: embedding rows of each field (token 0 = unknown / empty).
        embedding_dim: width ``d`` of every field embedding and of the output.
        attention_dim: width of the attention's hidden layer.
        attention: False gives every field the same weight (the mean-pooling ablation); the attention's
            parameters are then frozen (created all the same, so the initialisation stream and the
            checkpoint layout do not depend on the mode), which keeps DDP from waiting for their gradients.
        tower: ``linear`` fuses by the weighted sum of the field embeddings; ``mlp`` adds a two-layer MLP over
            their concatenation (each field scaled by its weight) to that sum, so the fused vector can depend on
            combinations of fields (age and occupation together, say), not only on each field alone. The MLP's
            last layer starts at zero: training starts from the linear fusion.

    Shapes:
        input: one ``(tokens [nnz], offsets [N])`` bag pair per field (``nn.EmbeddingBag`` layout).
        output: fused ``[N, d]`` and field weights ``[N, F]`` (rows sum to 1).
    """

    def __init__(self, field_sizes: Sequence[int], embedding_dim: int, attention_dim: int = 32,
                 attention: bool = True, tower: str = "linear") -> None:
        super().__init__()
        if tower not in TOWERS:
            raise ValueError(f"tower must be one of {', '.join(TOWERS)}, got {tower!r}")
        self.attention = attention
        self.fields = nn.ModuleList(nn.EmbeddingBag(size, embedding_dim, mode="mean") for size in field_sizes)
        self.key = nn.Linear(embedding_dim, attention_dim)
        self.query = nn.Parameter(torch.empty(attention_dim))
        self.key.requires_grad_(attention)
        self.query.requires_grad_(attention)
        width = len(field_sizes) * embedding_dim
        self.mlp = nn.Sequential(nn.Linear(width, embedding_dim), nn.GELU(),
                                 nn.Linear(embedding_dim, embedding_dim)) if tower == "mlp" else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for bag in self.fields:
            nn.init.normal_(bag.weight, std=0.1)
        self.key.reset_parameters()
        nn.init.normal_(self.query, std=0.1)
        if self.mlp is not None:
            self.mlp[0].reset_parameters()
            nn.init.zeros_(self.mlp[2].weight)
            nn.init.zeros_(self.mlp[2].bias)

    def forward(self, bags: FieldBags) -> tuple[torch.Tensor, torch.Tensor]:
        embedded = torch.stack([field(tokens, offsets) for field, (tokens, offsets) in zip(self.fields, bags)], 1)
        scores = torch.tanh(self.key(embedded)) @ self.query if self.attention else embedded.new_zeros(embedded.shape[:2])
        weights = torch.softmax(scores, dim=1)
        weighted = weights.unsqueeze(-1) * embedded
        fused = weighted.sum(1)
        if self.mlp is not None:
            fused = fused + self.mlp(weighted.flatten(1))
        return fused, weights


class Representations(NamedTuple):
    """Everything one forward pass yields, for all ``N = num_users + num_items`` nodes (a sampled pass: for its
    seeds, users then items, and its fusion weights are those of the seeds)."""

    nodes: torch.Tensor  # [N, d] graph view: final user rows then item rows
    attributes: torch.Tensor  # [N, d] attribute view, what a node without ID gets: its fused fields (plus, with
    # attribute neighbours, the mix of their graph views)
    user_weights: torch.Tensor  # [num_users, F_user] fusion weights
    item_weights: torch.Tensor  # [num_items, F_item] fusion weights
    layers: tuple[torch.Tensor, ...] = ()  # inputs of layers 1..L ([N, d] each: x, then outputs 1..L-1), for a history


class FusionGCN(nn.Module):
    """ID + adaptive attribute fusion -> LightGCN propagation -> dot-product ranking head.

    Args:
        num_users, num_items: entity counts; nodes are users ``0..U-1`` then items ``U..U+I-1``.
        user_field_sizes, item_field_sizes: embedding rows per attribute field.
        embedding_dim: width ``d`` of all embeddings.
        num_layers: number of ``LGConv`` layers (0 = no graph).
        fusion: ``attention`` (adaptive field weights), ``mean`` (equal weights) or ``none`` (no
            attributes: IDs only, which makes the model LightGCN, or MF with ``num_layers=0``).
        id_dropout: in training, chance that a known node is treated as cold (attributes only) for one
            forward pass.
        user_tower, item_tower: how each side's fields are fused (see :class:`AdaptiveFusion`): ``linear`` or
            ``mlp``.
        sparse_ids: the ID embeddings give sparse gradients (for a lazy optimizer such as ``SparseAdam``), which
            pays off when a step looks up a few of their rows (a sampled step; a full pass reads them all).
    """

    def __init__(self, num_users: int, num_items: int, user_field_sizes: Sequence[int],
                 item_field_sizes: Sequence[int], embedding_dim: int = 64, num_layers: int = 3,
                 id_dropout: float = 0.2, fusion: str = "attention", user_tower: str = "linear",
                 item_tower: str = "linear", sparse_ids: bool = False) -> None:
        super().__init__()
        if fusion not in FUSIONS:
            raise ValueError(f"fusion must be one of {', '.join(FUSIONS)}, got {fusion!r}")
        self.num_users = num_users
        self.num_items = num_items
        self.id_dropout = id_dropout
        self.user_id = nn.Embedding(num_users, embedding_dim, sparse=sparse_ids)
        self.item_id = nn.Embedding(num_items, embedding_dim, sparse=sparse_ids)
        sides = [] if fusion == "none" else [(user_field_sizes, user_tower), (item_field_sizes, item_tower)]
        self.fusions = nn.ModuleList(AdaptiveFusion(sizes, embedding_dim, attention=fusion == "attention", tower=tower)
                                     for sizes, tower in sides)
        self.convs = nn.ModuleList(SymmetricLGConv() for _ in range(num_layers))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.normal_(self.user_id.weight, std=0.1)
        nn.init.normal_(self.item_id.weight, std=0.1)
        for fusion in self.fusions:
            fusion.reset_parameters()

    def forward(self, graph: Graph, known: torch.Tensor, user_bags: FieldBags, item_bags: FieldBags,
                nodes: torch.Tensor | None = None,
                neighbours: tuple[torch.Tensor, torch.Tensor] | None = None) -> Representations:
        """Representations of all ``N`` nodes, or of a sampled step's ``s`` seeds.

        graph: the normalised sparse ``[N, N]`` adjacency, or a :class:`~raysearch.model.graph.SampledGraph`
            (its seeds' sampled rows over a context of ``c`` nodes, and the history's layer inputs);
        known: bool ``[N]`` (``[s]``), True where a node has training edges; the bags: the entities' fields (of the
            seeds' users and items only, when sampled); nodes: the seeds' sorted global ids ``[s]`` (users first)
            when sampled, else None; neighbours: (full graph only) the row-normalised sparse ``[N, N]``
            attribute-neighbour mix and its transpose (:func:`~raysearch.model.graph.attribute_neighbours`): a
            node's attribute view then adds its neighbours' graph views to its fused fields.
        """
        user_attr, user_weights, item_attr, item_weights = self._fuse(user_bags, item_bags)
        attributes = torch.cat([user_attr, item_attr])
        keep = known
        if self.training and self.id_dropout > 0:
            keep = known & (torch.rand(known.shape, device=known.device) >= self.id_dropout)
        x = self._ids(nodes) * keep.unsqueeze(1) + attributes
        outputs = self._propagate(graph, x)
        total = x
        for output in outputs:  # summed in layer order, as the layers are computed
            total = total + output
        graph_view = total / (1 + len(self.convs) * known.unsqueeze(1))
        if neighbours is not None:
            attributes = attributes + sparse_matmul(*neighbours, graph_view)
        final = torch.where(keep.unsqueeze(1), graph_view, attributes)
        inputs = (x, *outputs[:-1]) if outputs else ()
        return Representations(final, attributes, user_weights, item_weights, inputs)

    def _propagate(self, graph: Graph, x: torch.Tensor) -> list[torch.Tensor]:
        """Each layer's output for the rows of ``x``. Sampled, a layer's input is the context's history with the
        seeds' rows fresh (GNNAutoScale), so a step computes nothing for the context beyond its seeds; the sampled
        rows only carry the change from the reference (see :class:`~raysearch.model.graph.SampledGraph`)."""
        if not isinstance(graph, SampledGraph):
            return [x := conv(x, graph) for conv in self.convs]
        outputs = []
        for drift, reference, base in zip(graph.drift, graph.reference, graph.base):
            x = base + sparse_matmul(graph.matrix, graph.transposed, drift.index_copy(0, graph.seeds, x - reference))
            outputs.append(x)
        return outputs

    def _ids(self, nodes: torch.Tensor | None) -> torch.Tensor:
        """ID embeddings ``[N, d]`` of all nodes, or ``[n, d]`` of the sorted global ids ``nodes``."""
        if nodes is None:
            return torch.cat([self.user_id.weight, self.item_id.weight])
        users = nodes < self.num_users
        return torch.cat([self.user_id(nodes[users]), self.item_id(nodes[~users] - self.num_users)])

    def _fuse(self, user_bags: FieldBags, item_bags: FieldBags) -> tuple[torch.Tensor, ...]:
        """Fused attributes and field weights of the bags' users and items (zeros and no fields without
        attributes)."""
        if not self.fusions:
            width = self.user_id.embedding_dim
            zeros = lambda n: (self.user_id.weight.new_zeros(n, width), self.user_id.weight.new_zeros(n, 0))  # noqa: E731
            return (*zeros(len(user_bags[0][1])), *zeros(len(item_bags[0][1])))
        return (*self.fusions[0](user_bags), *self.fusions[1](item_bags))

    def score(self, reps: Representations, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Ranking head: ``[len(users), len(items)]`` dot products of the graph view."""
        return reps.nodes[users] @ reps.nodes[self.num_users + items].T
