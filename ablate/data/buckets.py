"""A bucket folder's index.json, read by `plan` in one request, so that a remote subset is sized and a
wrong prefix or missing credentials is one line before any compute.

    from ablate.data.buckets import fetch_index
    index = fetch_index("subsets.web.location", "s3://team/mds/web")   # streaming's index, or AblateError

Only s3:// is read here, with boto3 (light: `plan` imports no torch, composer or streaming), at the
endpoint streaming and Composer use too (S3_ENDPOINT_URL, for an S3-compatible server). Other schemes
(gs://, oci://, …) are read by `run` through streaming's own downloaders: `plan` leaves them unsized.
"""

from __future__ import annotations

import json
import os
from typing import Any
from urllib.parse import urlparse

from ablate.errors import AblateError

INDEX = "index.json"
TIMEOUT_SECONDS = 30


def s3_client() -> Any:
    """A boto3 S3 client at S3_ENDPOINT_URL where set (else AWS's), with bounded retries and timeouts."""
    import boto3
    from botocore.config import Config

    config = Config(connect_timeout=TIMEOUT_SECONDS, read_timeout=TIMEOUT_SECONDS, retries={"max_attempts": 3})
    return boto3.client("s3", endpoint_url=os.environ.get("S3_ENDPOINT_URL") or None, config=config)


def fetch_index(field: str, location: str) -> dict | None:
    """streaming's index.json of the folder at an s3:// `location`; None for a scheme not read here.
    A bucket or key that is not there, a refusal, an unreachable endpoint or missing credentials is
    one line naming `field`."""
    url = urlparse(location)
    if url.scheme != "s3":
        return None
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

    key = f"{url.path.strip('/')}/{INDEX}".lstrip("/")
    where = f"s3://{url.netloc}/{key}"
    try:
        body = s3_client().get_object(Bucket=url.netloc, Key=key)["Body"].read()
    except NoCredentialsError:
        raise AblateError(f"{field}: no credentials to read {where}; set AWS_ACCESS_KEY_ID or a profile") from None
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        found = {
            "NoSuchBucket": f"no bucket {url.netloc}",
            "NoSuchKey": f"no {INDEX} at {where}",
            "404": f"no {INDEX} at {where}",
            "AccessDenied": f"access to {where} denied",
            "403": f"access to {where} denied",
        }.get(code, f"cannot read {where} ({code or exc})")
        raise AblateError(f"{field}: {found}; fix the location (an MDS folder's prefix) or its permissions") from None
    except BotoCoreError as exc:
        raise AblateError(f"{field}: cannot reach {where} ({exc}); check S3_ENDPOINT_URL and the network") from None
    try:
        index = json.loads(body)
    except ValueError:
        raise AblateError(f"{field}: {where} is not JSON; point the location at an MDS folder") from None
    if not isinstance(index, dict):
        raise AblateError(f"{field}: {where} is not an MDS index; point the location at an MDS folder")
    return index
