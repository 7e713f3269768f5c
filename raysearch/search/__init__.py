"""Hyperparameter search: the search-space files (:mod:`.space`, no Ray), Ray Tune (:mod:`.tuning`),
Ray Train (:mod:`.distributed`) and where results live (:mod:`.storage`, no Ray). The only part of the
package, with ``raysearch compare``'s cluster path, that imports Ray."""
