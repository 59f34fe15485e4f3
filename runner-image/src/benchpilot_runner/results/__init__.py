"""Where results go and how they come back: Parquet parts on any fsspec URI, exactly once by ``case_id``.

store    the output filesystem: open it, check it is writable, write an object whole
rows     a result row: SCHEMA and :func:`make_row` beside it (typed, scrubbed once); parts in and out
resume   what the parts already hold: cases with a final outcome, attempts of the others, spend
lease    a writer's claim on shards of a run (``_writers/``), alive only while its process is
markers  ``_SUCCESS`` commit markers, within one time budget for final writes
sink     one shard's buffered rows, flushed as whole parts
bounded  blocking storage calls with a time budget (the client's own retries included)
procs    whether a lease's process still runs on this host (``/proc``)

Where each object lives is the contract's (:mod:`benchpilot_runner.contract.layout`).
"""
