"""Support shared by the tests and the benchmarks (needs the ``test`` extra): small datasets
(:mod:`.datasets`), faults injected for real (:mod:`.faults`) and fuzz targets (:mod:`.fuzzing`)."""
