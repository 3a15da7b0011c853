"""From a recorded model to a published package version: the gates (`gates`), the package
folder and its wheel (`package`, `wheelfile`), the model and promotion cards (`cards`), and
`promote()` tying them together (`promote`)."""
