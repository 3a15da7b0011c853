"""What a person uses to write a project: `nbops init` (`scaffold`, from `templates/init/`),
`nbops check` (`check`), `nbops report` (`report`), the git filter that keeps notebook outputs
out of git (`nbstripout`) and the Jupyter server extension (`server_extension`)."""
