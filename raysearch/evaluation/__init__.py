"""Ranking metrics (:mod:`.metrics`) and the one evaluation path every model is scored through
(:mod:`.scoring`): a scorer maps users and candidate items to scores."""
