"""``raysearch compare``: the runs to make (:mod:`.plan`), running them (:mod:`.runner`) and the report
(:mod:`.report`)."""
