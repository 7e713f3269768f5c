"""Data: MovieLens files (:mod:`.downloads`), their loaders (:mod:`.movielens`), attribute fields
(:mod:`.features`), synthetic sets (:mod:`.synthetic`), the evaluation protocols (:mod:`.protocols`) and splits as JSON files (:mod:`.split_files`).
No torch model, no Ray."""
