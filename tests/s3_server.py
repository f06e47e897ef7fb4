"""A real S3-compatible server for the tests: moto's, in its own process, on 127.0.0.1.

    with S3Server.start(log=tmp / "moto.log") as s3:     # conftest's session fixture `s3` does this
        uri = s3.upload(Path("shards/math"), "data", "math")   # → "s3://data/math", every file under it
        s3.client.list_objects_v2(Bucket="data")
        s3.requests("GET", "/data/math/index.json")            # how many such requests it served

A server, not moto's in-process mock: `ablate run` starts its jobs as processes of their own, which
reach it through S3_ENDPOINT_URL (read by streaming and Composer's S3ObjectStore) with any credentials.
Every request it serves is one line of its log (werkzeug's), which is how a test counts them.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HOST = "127.0.0.1"
REGION = "us-east-1"
START_SECONDS = 60  # moto imports every AWS service it mocks: a few seconds on a busy machine
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": REGION,
    # Nothing from this machine's own AWS set-up: no profile, no session token, no config files.
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
}
UNSET = ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3")
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # 127.0.0.1 itself, whatever proxy is set
_REQUEST = re.compile(r'"([A-Z]+) (\S+) HTTP/[\d.]+" (\d{3})')  # werkzeug: "GET /bucket/key?x HTTP/1.1" 200


@dataclass
class S3Server:
    endpoint: str  # http://127.0.0.1:PORT, also in S3_ENDPOINT_URL while the server runs
    log: Path  # what the server printed: one line per request served
    client: Any = field(repr=False)  # a boto3 S3 client for it

    @classmethod
    @contextmanager
    def start(cls, log: Path) -> Iterator[S3Server]:
        """Run `python -m moto.server` on a free port until the block ends, with the environment a client
        needs (credentials, region, S3_ENDPOINT_URL) set in os.environ, and restored afterwards."""
        import boto3

        port = _free_port()
        endpoint = f"http://{HOST}:{port}"
        with log.open("wb") as out:
            server = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", HOST, "-p", str(port)], stdout=out, stderr=subprocess.STDOUT
            )
        before = {key: os.environ.get(key) for key in [*CREDENTIALS, *UNSET, "S3_ENDPOINT_URL"]}
        try:
            _wait_until_it_answers(endpoint, server, log)
            for key in UNSET:
                os.environ.pop(key, None)
            os.environ.update({**CREDENTIALS, "S3_ENDPOINT_URL": endpoint})
            yield cls(endpoint, log, boto3.client("s3", endpoint_url=endpoint, region_name=REGION))
        finally:
            server.terminate()
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
            for key, value in before.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value

    def upload(self, local: Path, bucket: str, prefix: str) -> str:
        """Create `bucket` (if new) and put `local` at s3://bucket/prefix: a file as that object, a folder
        as one object per file under it, at its path inside the folder. Returns the URI."""
        if bucket not in {b["Name"] for b in self.client.list_buckets().get("Buckets", [])}:
            self.client.create_bucket(Bucket=bucket)
        prefix = prefix.strip("/")
        inside = [path for path in sorted(local.rglob("*")) if path.is_file()]
        files = (
            [(local, prefix)]
            if local.is_file()
            else [(p, f"{prefix}/{p.relative_to(local).as_posix()}") for p in inside]
        )
        if not files:
            raise FileNotFoundError(f"{local}: no file to upload")
        for path, key in files:
            self.client.upload_file(str(path), bucket, key)
        return f"s3://{bucket}/{prefix}"

    def requests(self, method: str, path: str) -> int:
        """How many `method` requests for exactly `path` (/bucket/key, query string aside) the server has
        served so far."""
        self._settled()
        served = [_REQUEST.search(line) for line in self.log.read_text(errors="replace").splitlines()]
        return sum(1 for m in served if m and m[1] == method and m[2].split("?")[0] == path)

    def _settled(self) -> None:
        """Wait until the log holds every request answered before this call: werkzeug logs a request just
        after answering it, so a marker request sent now is logged after all of those."""
        marker = f"/ablate-log-marker-{time.monotonic_ns()}"
        with suppress(urllib.error.HTTPError):  # no such bucket: an error answer is logged all the same
            _DIRECT.open(self.endpoint + marker, timeout=10).close()
        deadline = time.monotonic() + 10
        while marker not in self.log.read_text(errors="replace"):
            assert time.monotonic() < deadline, f"the S3 server never logged {marker}; see {self.log}"
            time.sleep(0.02)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def _wait_until_it_answers(endpoint: str, server: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + START_SECONDS
    while True:
        if server.poll() is not None:
            raise RuntimeError(f"the S3 server exited with code {server.returncode}: {log.read_text()[-2000:]}")
        try:
            _DIRECT.open(endpoint + "/moto-api/", timeout=2).close()
            return
        except urllib.error.HTTPError:  # it answers, with an error: it is up
            return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the S3 server did not answer at {endpoint} within {START_SECONDS} s") from None
            time.sleep(0.2)
