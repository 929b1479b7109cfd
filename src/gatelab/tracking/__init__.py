"""Everything MLflow, split as MLflow splits itself: `run` logs inside one job's active run
(fluent), `writer` writes whole runs by explicit id (client); `records` defines a job's run
for both; `naming`, `links`, `experiment` and `store` serve them."""
