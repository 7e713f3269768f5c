"""The model as pure ``nn.Module``s: FusionGCN (:mod:`.fusion_gcn`), the training graph (:mod:`.graph`)
and the losses (:mod:`.losses`). Imports neither the data files, the trainers nor Ray."""
