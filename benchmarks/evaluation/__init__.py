"""An evaluation split over the job's ranks and kept on disk as it goes.

:mod:`.shards` cuts an evaluation into numbered shards (a likelihood batch of one pass,
a sampler call, a chunk of Inception features), gives each rank its share and writes
each finished shard under ``runs/<run id>/evaluation/``; :mod:`.ranks` is the ranks'
meeting point (a barrier that a signal can interrupt); :mod:`.signals` turns the
scheduler's warning and Ctrl-C / SIGTERM into a stop at the next shard boundary, so that
the requeued job continues where this one stopped.
"""
