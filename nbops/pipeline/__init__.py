"""Notebooks as pipeline stages: one run of a notebook (`execute`) and what ends it early
(`supervise`), what runs inside the kernel and records metrics, plots and models (`record`),
stages built from notebooks and written into dvc.yaml (`stages`), and what ties a report to one
checkout (`portability`). `record` runs in every notebook: this package imports nothing."""
