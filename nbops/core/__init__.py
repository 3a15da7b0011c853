"""The project and its files, at the bottom of nbops: the project root and per-stage paths
(`project`), params.yaml and notebooks as data (`params`), dvc.yaml / dvc.lock, DVC's status and
git (`dvc`), the `NbopsError` tree (`exceptions`), atomic writes and hashes (`_io`), optional
dependencies (`extras`) and the start-up tweaks of nbops' own processes (`_startup`). Nothing
here imports the rest of nbops."""
