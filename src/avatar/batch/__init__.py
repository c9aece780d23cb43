"""Many videos at once: ``avatar batch JOBS.jsonl`` on local processes or a Ray cluster.

- jobs: reading and checking a jobs file (one ``speak``/``dub`` job a JSON line)
- worker: what a worker runs for one job
- pool / raypool: one function over many tasks, surviving worker deaths (local / Ray)
- manifest: the JSONL record of every job, which makes runs resumable
- run: the driver
"""
