"""SFTP adapters: agencies' placement-file drops on their SFTP servers, through paramiko."""

from debtflow_adapters.sftp.file_sources import SftpFileSourceReader

__all__ = ["SftpFileSourceReader"]
