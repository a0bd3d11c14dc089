"""Adapters on this machine's file system: a local drop directory and local object storage.

They make DebtFlow run embedded, with no SFTP server and no S3.
"""

from debtflow_adapters.local.file_sources import LocalFileSourceReader

__all__ = ["LocalFileSourceReader"]
