"""The command line and batch files: ``fanfold run`` over JSONL/CSV (``_batch_files``, ``_jobs``),
YAML and Python pipelines (``_pipeline``, ``_pipeline_schema``), and the runs in a store (``_runs``)."""

# Where the command line journals runs unless told otherwise. Here, not in ``_jobs``, so that the
# commands' signatures (and `fanfold --help`) have it without importing the batch machinery.
DEFAULT_STORE = ".fanfold/runs.db"
