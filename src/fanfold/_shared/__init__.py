"""Governor state shared by every process that names it: limits and budgets on Redis.

``_lua`` holds the scripts that change the state atomically (by the Redis server's clock),
``_link`` the connection a process keeps (scripts, ordered background writes, release
notifications, lease renewal), ``_redis_limiter`` the :class:`~fanfold._limits.Limiter` and
``_redis_budget`` the :class:`~fanfold._usage.Ledger` built on them.
"""
