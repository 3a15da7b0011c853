"""`nbops serve` and `nbops predict` (`serve`): a registry reference resolved, then the
standalone `nbops.runtime` (the code every package wheel carries) loads and serves it."""
