"""The graphs the model reads, computed once per split: the user-item training graph as a symmetric-normalised
sparse adjacency, and the attribute-neighbour graph that gives cold nodes their known look-alikes."""

from __future__ import annotations

import warnings
from typing import NamedTuple, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch_geometric.nn import LGConv
from torch_geometric.nn.conv.gcn_conv import gcn_norm
from torch_geometric.utils import to_torch_csr_tensor


def bipartite_adjacency(train: np.ndarray, num_users: int, num_items: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Normalised ``D^-1/2 A D^-1/2`` as a CSR tensor ``[N, N]`` and a bool ``[N]`` "has an edge" mask.

    train: int [n, 2] (user, item) pairs; items become nodes ``num_users + item``.
    """
    size = num_users + num_items
    users = torch.as_tensor(train[:, 0], dtype=torch.long)
    items = torch.as_tensor(train[:, 1], dtype=torch.long) + num_users
    edge_index = torch.stack([torch.cat([users, items]), torch.cat([items, users])])
    edge_index, weight = gcn_norm(edge_index, None, size, add_self_loops=False)
    known = torch.zeros(size, dtype=torch.bool)
    known[edge_index[0]] = True
    with warnings.catch_warnings():  # torch flags sparse CSR as beta on every construction
        warnings.simplefilter("ignore", UserWarning)
        adjacency = to_torch_csr_tensor(edge_index, weight, size=(size, size))
    return adjacency, known


def attribute_neighbours(contents: Sequence[torch.Tensor], known: torch.Tensor, counts: Sequence[int],
                         chunk: int = 1024) -> tuple[torch.Tensor, torch.Tensor]:
    """Each node's ``k`` most similar known nodes of its own side by content, as a row-normalised sparse CSR
    ``[N, N]`` matrix and its transpose: the mix of their graph views a node's attribute view takes, so a cold
    node borrows the preferences of the known entities most like it (an attribute graph, as in AGNN, Qian et al.
    2020; content-KNN's neighbours, but over learned views).

    contents: per side (users, then items), float ``[n_side, c_side]`` content vectors; known: bool ``[N]``;
    counts: per side, ``k`` (0 = no neighbours for that side). See :func:`nearest`; a node is never its own
    neighbour.
    """
    rows, columns, weights, start = [], [], [], 0
    for content, k in zip(contents, counts):
        side = slice(start, start + len(content))
        candidates = torch.nonzero(known[side]).squeeze(1)
        for first in range(0, len(content) if k else 0, chunk):
            queries = torch.arange(first, min(first + chunk, len(content)))
            row, column, weight = nearest(content[queries], content[candidates], k,
                                          candidates.unsqueeze(0) == queries.unsqueeze(1))
            rows.append(start + queries[row])
            columns.append(start + candidates[column])
            weights.append(weight)
        start += len(content)
    row, column = (torch.cat(parts).long() if parts else torch.zeros(0, dtype=torch.long) for parts in (rows, columns))
    weight = torch.cat(weights) if weights else torch.zeros(0)
    with warnings.catch_warnings():  # torch flags sparse CSR as beta on every construction
        warnings.simplefilter("ignore", UserWarning)
        return tuple(torch.sparse_coo_tensor(torch.stack(pair), weight, (start, start)).coalesce().to_sparse_csr()
                     for pair in ((row, column), (column, row)))


def nearest(queries: torch.Tensor, candidates: torch.Tensor, k: int,
            exclude: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Each query's ``k`` most similar candidates by cosine (ties at the k-th value kept, similarity 0 never,
    ``exclude``: bool ``[q, m]`` pairs left out), as (query row, candidate column, weight) triples whose weights are
    the similarities normalised to sum to 1 per query."""
    similarity = F.normalize(queries, dim=1) @ F.normalize(candidates, dim=1).T
    if exclude is not None:
        similarity = similarity.masked_fill(exclude, 0.0)
    kth = similarity.topk(min(k, similarity.shape[1]), dim=1).values[:, -1:]
    row, column = torch.nonzero((similarity >= kth) & (similarity > 0), as_tuple=True)
    weight = similarity[row, column]
    return row, column, weight / torch.zeros(len(queries)).index_add_(0, row, weight)[row]


class _SparseMatmul(torch.autograd.Function):
    """``A @ x`` for a sparse ``A`` whose transpose ``A^T`` is given (``A`` itself when symmetric): the gradient
    is ``A^T @ grad``, which skips the sparse transpose torch would build on every backward pass (about 5x faster
    on CPU). The product stays in ``A``'s precision under autocast (there are no bf16/fp16 sparse kernels on CPU)."""

    @staticmethod
    def forward(ctx, matrix: torch.Tensor, transposed: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        ctx.transposed = transposed
        with torch.autocast(x.device.type, enabled=False):
            return matrix @ x.to(matrix.dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[None, None, torch.Tensor]:
        return None, None, ctx.transposed @ grad


def sparse_matmul(matrix: torch.Tensor, transposed: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``matrix @ x`` (sparse ``[n, n]`` times dense ``[n, d]``), differentiable in ``x`` through ``transposed``."""
    return _SparseMatmul.apply(matrix, transposed, x)


class SymmetricLGConv(LGConv):
    """PyG's ``LGConv`` over a pre-normalised symmetric sparse adjacency (see ``bipartite_adjacency``)."""

    def __init__(self) -> None:
        super().__init__(normalize=False)

    def message_and_aggregate(self, adj_t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return sparse_matmul(adj_t, adj_t, x)


def segments(starts: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """The indices ``starts[i] .. starts[i] + lengths[i] - 1`` of every segment, concatenated (CSR row ranges)."""
    ends = torch.cumsum(lengths, 0)
    return torch.arange(int(ends[-1]) if len(ends) else 0, device=starts.device) + \
        torch.repeat_interleave(starts - (ends - lengths), lengths)


class SampledGraph(NamedTuple):
    """One training step's propagation around its seed nodes (see :func:`sample_neighbours`), the other nodes'
    layer inputs from a history of earlier ones (GNNAutoScale). A seed's layer output is its exact row of the
    adjacency times a reference (the history at its last full refresh), plus its sampled row times what changed
    since (control variates, VR-GCN, Chen et al. 2018): unbiased, and without sampling noise while nothing has
    changed, so a small fan-out costs little accuracy."""

    seeds: torch.Tensor  # [s] positions of the seeds among the context nodes (sorted global ids; increasing)
    matrix: torch.Tensor  # sparse CSR [s, c]: the seeds' sampled, weighted rows of the normalised adjacency
    transposed: torch.Tensor  # sparse CSR [c, s], its transpose (for the gradient)
    drift: tuple[torch.Tensor, ...]  # per layer 1..L: [c, d] the context's inputs minus their reference, no gradient
    reference: tuple[torch.Tensor, ...]  # per layer: [s, d] the seeds' reference inputs
    base: tuple[torch.Tensor, ...]  # per layer: [s, d] the seeds' exact outputs from the reference inputs


def sample_neighbours(adjacency: torch.Tensor, seeds: torch.Tensor, fanout: int,
                      generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The seeds' rows of a normalised CSR ``adjacency``, sampled: a node with at most ``fanout`` edges keeps them
    all (exact); a busier one gets ``fanout`` neighbours drawn uniformly with replacement, each weighted
    ``A[v, u] * degree(v) / fanout``, so that the sampled row times ``x`` is an unbiased estimate of ``(A x)[v]``.
    A node without edges (cold) gets an empty row and is nobody's neighbour.

    Returns the context ``nodes`` [c] (sorted global ids of the seeds and their neighbours), the seeds' positions
    in it [s], and the sampled rows as a sparse CSR ``[s, c]`` matrix with its ``[c, s]`` transpose.
    """
    rowptr, col, values = adjacency.crow_indices(), adjacency.col_indices(), adjacency.values()
    degree = rowptr[1:] - rowptr[:-1]
    seeds = torch.unique(seeds)
    busy = degree[seeds] > fanout
    quiet_rows, busy_rows = torch.nonzero(~busy).squeeze(1), torch.nonzero(busy).squeeze(1)
    quiet, busy = seeds[quiet_rows], seeds[busy_rows]
    drawn = (torch.rand(len(busy), fanout, generator=generator).to(rowptr.device)
             * degree[busy].unsqueeze(1)).long() + rowptr[busy].unsqueeze(1)
    slots = torch.cat([segments(rowptr[quiet], degree[quiet]), drawn.reshape(-1)])
    rows = torch.cat([torch.repeat_interleave(quiet_rows, degree[quiet]), busy_rows.repeat_interleave(fanout)])
    weight = values[slots] * torch.cat([torch.ones(int(degree[quiet].sum()), device=values.device),
                                        (degree[busy] / fanout).repeat_interleave(fanout).to(values.dtype)])
    neighbours = col[slots]
    nodes = torch.unique(torch.cat([seeds, neighbours]))
    columns, positions = torch.searchsorted(nodes, neighbours), torch.searchsorted(nodes, seeds)
    with warnings.catch_warnings():  # torch flags sparse CSR as beta on every construction
        warnings.simplefilter("ignore", UserWarning)
        matrix, transposed = (torch.sparse_coo_tensor(torch.stack(pair), weight, size).coalesce().to_sparse_csr()
                              for pair, size in (((rows, columns), (len(seeds), len(nodes))),
                                                 ((columns, rows), (len(nodes), len(seeds)))))
    return nodes, positions, matrix, transposed
