"""In-process training, no Ray: the model inputs (:mod:`.inputs`), the one early-stopping loop every model
runs through (:mod:`.loop`), FusionGCN's epochs (:mod:`.fusion_gcn`), :func:`.fit.fit` for any registered
model, checkpoints (:mod:`.checkpoint`), and the run folder of ``raysearch train`` (:mod:`.run_folder`,
:mod:`.tensorboard`)."""
