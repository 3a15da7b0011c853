"""The git filter's smudge writes exactly the `language_info` a real Python kernel reports, which
is what keeps JupyterLab from marking an opened notebook modified (real kernel)."""

from __future__ import annotations

from jupyter_client.manager import start_new_kernel

from nbops.authoring.nbstripout import language_info


def test_smudge_writes_what_the_kernel_reports():
    manager, client = start_new_kernel(kernel_name="python3")
    try:
        reply = client.kernel_info(reply=True, timeout=120)
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)
    assert reply["content"]["language_info"] == language_info()
