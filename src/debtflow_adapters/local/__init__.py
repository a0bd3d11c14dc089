"""Adapters on this machine's file system: a local drop directory and local object storage.

They make DebtFlow run embedded, with no SFTP server and no S3.
"""

from debtflow_adapters.local.file_sources import LocalFileSourceReader
from debtflow_adapters.local.object_storage import LocalObjectStorage
from debtflow_adapters.local.signed_links import SignedLinks, content_disposition

__all__ = ["LocalFileSourceReader", "LocalObjectStorage", "SignedLinks", "content_disposition"]
