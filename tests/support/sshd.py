"""A real OpenSSH server on 127.0.0.1, so that the SFTP adapter crosses real SSH and SFTP.

``sshd`` starts one for the test session on a free port, with a fresh ed25519 host key.
It lets one system user in, ``debtflow-sftp`` (made with ``useradd`` when missing), by
password or by either of two keys (ed25519 in OpenSSH form, RSA in PEM form), chrooted
(``ChrootDirectory`` may not be under /tmp, hence /srv) into a directory whose ``/drop``
the user owns. Tests put and inspect files there straight on disk.

sshd must run as root to switch to the user. Without OpenSSH's server installed (or
without root), the tests that need it are skipped, and fail on CI.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import service_missing

SSHD = "/usr/sbin/sshd"
USER = "debtflow-sftp"
PASSWORD = "debtflow-sftp-test-password"
"""Fixed, not random: test sessions running side by side share the system user."""

SESSIONS_ROOT = Path("/srv/debtflow-sftp-tests")


@dataclass(frozen=True)
class SshServer:
    """The running server. SFTP paths start at :attr:`root`; ``/drop`` is the user's."""

    host: str
    port: int
    host_key: str
    """The server's public key, ``ssh-ed25519 AAAA…``, to pin."""
    other_host_key: str
    """Another ed25519 public key: pinning it must refuse the server."""
    username: str
    password: str
    ed25519_key: str
    rsa_key: str
    root: Path

    def local(self, sftp_path: str) -> Path:
        """Where a path the server serves lies on this machine's disk."""
        return self.root / sftp_path.lstrip("/")

    def put(self, sftp_path: str, content: bytes) -> Path:
        """Write a file (and its missing directories) as the SFTP user would own it."""
        path = self.local(sftp_path)
        user = pwd.getpwnam(self.username)
        for directory in reversed([path.parent, *path.parent.parents]):
            if directory.is_relative_to(self.local("/drop")) and not directory.exists():
                directory.mkdir()
                os.chown(directory, user.pw_uid, user.pw_gid)
        path.write_bytes(content)
        os.chown(path, user.pw_uid, user.pw_gid)
        return path


@pytest.fixture(scope="session")
def sshd() -> Iterator[SshServer]:
    if not os.path.exists(SSHD):
        service_missing(
            f"OpenSSH's server is not installed ({SSHD}; apt-get install openssh-server)"
        )
    if os.geteuid() != 0:
        service_missing("the SFTP tests start sshd, which must run as root to switch users")
    user = _system_user()
    SESSIONS_ROOT.mkdir(mode=0o755, exist_ok=True)
    session = Path(tempfile.mkdtemp(dir=SESSIONS_ROOT))
    session.chmod(0o755)
    process: subprocess.Popen[bytes] | None = None
    try:
        root = session / "root"
        (root / "drop").mkdir(parents=True)
        os.chown(root / "drop", user.pw_uid, user.pw_gid)
        host_key = _keygen(session / "host_key", "ed25519")
        other_host_key = _keygen(session / "other_host_key", "ed25519")
        ed25519_public = _keygen(session / "client_ed25519", "ed25519")
        rsa_public = _keygen(session / "client_rsa", "rsa", "-b", "2048", "-m", "PEM")
        authorized_keys = session / "authorized_keys"
        authorized_keys.write_text(f"{ed25519_public}\n{rsa_public}\n")
        authorized_keys.chmod(0o644)
        port = _free_port()
        config = session / "sshd_config"
        config.write_text(
            f"Port {port}\nListenAddress 127.0.0.1\nHostKey {session / 'host_key'}\n"
            f"PidFile {session / 'sshd.pid'}\nAuthorizedKeysFile {authorized_keys}\n"
            "PubkeyAuthentication yes\nPasswordAuthentication yes\n"
            "KbdInteractiveAuthentication no\nPermitRootLogin no\nStrictModes no\nUsePAM no\n"
            f"AllowUsers {USER}\nSubsystem sftp internal-sftp\nForceCommand internal-sftp\n"
            f"ChrootDirectory {root}\nAllowTcpForwarding no\nX11Forwarding no\n"
        )
        Path("/run/sshd").mkdir(parents=True, exist_ok=True)
        log = session / "sshd.log"
        with log.open("wb") as stderr:
            process = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)], stderr=stderr)
        _wait_for_banner(port, process, log)
        yield SshServer(
            host="127.0.0.1",
            port=port,
            host_key=host_key,
            other_host_key=other_host_key,
            username=USER,
            password=PASSWORD,
            ed25519_key=(session / "client_ed25519").read_text(),
            rsa_key=(session / "client_rsa").read_text(),
            root=root,
        )
    finally:
        if process is not None:
            process.terminate()
            process.wait(10)
        shutil.rmtree(session, ignore_errors=True)


def _system_user() -> pwd.struct_passwd:
    """The SFTP user, created when missing, with the test password set (sshd reads it from
    /etc/shadow, as ``UsePAM no`` leaves a user without one locked)."""
    try:
        pwd.getpwnam(USER)
    except KeyError:
        made = subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", USER],
            check=False,
            capture_output=True,
            text=True,
        )
        # Exit status 9: another test session made the user first.
        if made.returncode not in (0, 9):
            pytest.fail(f"useradd {USER} failed: {made.stderr}", pytrace=False)
    subprocess.run(["chpasswd"], input=f"{USER}:{PASSWORD}".encode(), check=True)
    return pwd.getpwnam(USER)


def _keygen(path: Path, key_type: str, *options: str) -> str:
    """Make a key pair without a passphrase; returns the public key as ``type base64``."""
    subprocess.run(
        ["ssh-keygen", "-q", "-t", key_type, *options, "-N", "", "-C", "", "-f", str(path)],
        check=True,
    )
    return " ".join(path.with_suffix(".pub").read_text().split()[:2])


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_for_banner(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"sshd exited at start:\n{log.read_text()}", pytrace=False)
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as connection:
                if connection.recv(4).startswith(b"SSH-"):
                    return
        except OSError:
            time.sleep(0.05)
    pytest.fail(f"sshd did not answer on port {port}:\n{log.read_text()}", pytrace=False)
