"""The command line and batch files: ``fanfold run`` over JSONL/CSV (``_batch_files``, ``_jobs``),
YAML and Python pipelines (``_pipeline``, ``_pipeline_schema``), and the runs in a store (``_runs``)."""
