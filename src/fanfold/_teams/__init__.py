"""The teams wing: ``ff.team``, whose leader plans the split (``_plan``, ``_dataset``) and whose
plan the runtime runs in parallel (``_schedule``), or which delegates through a tool (``_delegate``).
Those helpers see the team, and an LLM leader, through the protocols of ``_crew``."""
