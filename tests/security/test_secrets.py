"""Secrets: encrypted at rest, given to the workload only, never shown back, masked in logs."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.fernet import Fernet

from dockyard.errors import InUse, InvalidSpec
from tests import factories as f
from tests.conftest import ServerProcess

VALUE = "hunter2-correct-horse"
DIGEST = hashlib.sha256(VALUE.encode()).hexdigest()
CHECK = (  # the job's own spec must not hold the value: it compares a digest
    "import hashlib, os, pathlib\n"
    f"assert hashlib.sha256(os.environ['PW'].encode()).hexdigest() == {DIGEST!r}, 'wrong'\n"
    "print('the password is', os.environ['PW'], 'and half of it', os.environ['PW'][:6])\n"
)
USES_IT = {"PW": {"secretRef": "db/password"}}


def everything_stored(home: Path) -> bytes:
    """Every byte Dockyard keeps in its home, except the workloads' own log files."""
    return b"".join(
        p.read_bytes()
        for p in home.rglob("*")
        if p.is_file() and not p.is_symlink() and p.name != "log" and "envs" not in p.parts
    )


def test_a_secret_reaches_the_workload_and_nothing_else(server: ServerProcess) -> None:
    c = server.client
    shown = c.set_secret("db", {"password": VALUE, "user": "svc"})
    assert shown["keys"] == ["password", "user"] and VALUE not in str(shown)
    c.apply([f.job("uses", f.python(CHECK), env=USES_IT)])
    job = c.wait("Job", "uses", timeout=60)
    log = b"".join(c.logs("Job", "uses")).decode()
    assert job["status"]["phase"] == "Succeeded", (job["status"], log)
    assert "the password is [secret] and half of it hunter" in log  # a shown value is masked
    answers = [
        c.get("Job", "uses"),
        c.list("Job"),
        c.events("Job", "uses"),
        c.workloads("Job", "uses"),
        c.secrets(),
        c.request("GET", "/api/v1/secrets/db"),
    ]
    assert VALUE not in str(answers) and "db/password" in str(c.get("Job", "uses"))
    stored = everything_stored(server.home)
    assert VALUE.encode() not in stored  # the database, run files, server log: none holds it
    (run,) = [p for p in (server.home / "runs").iterdir() if p.name.startswith("job-uses-")]
    assert not (run / "secrets.json").exists()  # read by the shim, then deleted


def test_applying_names_a_missing_secret_or_key(server: ServerProcess) -> None:
    c = server.client
    with pytest.raises(InvalidSpec) as missing:
        c.apply([f.job("early", f.python("pass"), env=USES_IT)])
    assert "spec.env.PW" in str(missing.value.details)
    assert "secret 'db' not found" in str(missing.value.details)
    assert "dockyard secrets set db password=@FILE" in str(missing.value.details)
    c.set_secret("db", {"user": "svc"})
    with pytest.raises(InvalidSpec) as no_key:
        c.apply([f.job("early", f.python("pass"), env=USES_IT)])
    assert "secret 'db' has no key 'password' (it has: user)" in str(no_key.value.details)
    with pytest.raises(InvalidSpec, match="secretRef"):
        c.apply([f.job("bad", f.python("pass"), env={"PW": {"secretRef": "no-key-given"}})])
    assert c.list("Job") == []


def test_a_secret_in_use_is_not_deleted(server: ServerProcess) -> None:
    c = server.client
    c.set_secret("db", {"password": VALUE})
    c.apply([f.job("holds", f.python("import time; time.sleep(60)"), env=USES_IT)])
    with pytest.raises(InUse, match="secret 'db' is used by job 'holds'"):
        c.delete_secret("db")
    c.delete("Job", "holds")
    c.delete_secret("db")
    assert c.secrets() == []


def test_a_secret_removed_before_start_fails_the_job_clearly(server_factory: Any) -> None:
    c = server_factory(DOCKYARD_NODE_CPU="1").start()
    c.set_secret("db", {"password": VALUE})
    c.apply([f.job("first", f.python("import time; time.sleep(60)"), resources={"cpu": 1})])
    c.wait("Job", "first", until={"Running"}, timeout=60)
    c.apply([f.job("queued", f.python("pass"), env=USES_IT, resources={"cpu": 1})])
    assert c.get("Job", "queued")["status"]["phase"] in ("Pending", "")  # no core is free
    c.delete_secret("db", force=True)
    c.cancel("first")
    job = c.wait("Job", "queued", timeout=60)
    assert (job["status"]["phase"], job["status"]["reason"]) == ("Failed", "SecretMissing")
    assert "secret 'db' (for PW) does not exist" in job["status"]["message"]
    assert "dockyard secrets set db password=@FILE" in job["status"]["message"]


def test_the_key_is_rotated_without_losing_a_secret(server_factory: Any, tmp_path: Path) -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    home = tmp_path / "rotating"
    first: ServerProcess = server_factory(home=home, DOCKYARD_SECRET_KEY=old)
    first.start().set_secret("db", {"password": VALUE})
    first.stop()
    both: ServerProcess = server_factory(home=home, DOCKYARD_SECRET_KEY=f"{new},{old}")
    assert both.start().reencrypt_secrets() == 1
    both.stop()
    only_new: ServerProcess = server_factory(home=home, DOCKYARD_SECRET_KEY=new)
    c = only_new.start()
    c.apply([f.job("after", f.python(CHECK), env=USES_IT)])
    job = c.wait("Job", "after", timeout=60)
    assert job["status"]["phase"] == "Succeeded", job["status"]
    c.set_secret("other", {"k": "v"})
    only_new.stop()
    lost: ServerProcess = server_factory(home=home, DOCKYARD_SECRET_KEY=old)
    c = lost.start()
    c.apply([f.job("wrong-key", f.python(CHECK), env=USES_IT)])
    job = c.wait("Job", "wrong-key", timeout=60)
    assert (job["status"]["phase"], job["status"]["reason"]) == ("Failed", "SecretMissing")
    assert "cannot be decrypted with the configured key" in job["status"]["message"]


def test_secret_values_are_bounded_and_never_echoed(server: ServerProcess) -> None:
    base = server.client.url.rstrip("/")
    with httpx.Client(base_url=base, headers=server.auth) as http:
        big = http.put("/api/v1/secrets/big", json={"data": {"k": "x" * (64 * 1024 + 1)}})
        assert big.status_code == 422 and "x" * 100 not in big.text
        bad_key = http.put("/api/v1/secrets/k", json={"data": {"a/b": VALUE}})
        assert bad_key.status_code == 422 and VALUE not in bad_key.text
        empty = http.put("/api/v1/secrets/k", json={"data": {}})
        assert empty.status_code == 422
