"""pyarrow's S3 filesystem against a real S3-compatible server: Swift 2.30 with s3api (``s3server.SwiftS3``).

``pyarrow.fs.S3FileSystem`` is the client the exchange store uses for published versions. These
tests run it against the ``s3_server`` fixture: bucket creation, a 20 MiB object written through
``open_output_stream`` (a multipart upload of 10 MiB parts) and read back byte for byte, listing,
overwrite, delete, Parquet through the filesystem, and a wrong secret key refused.

Two things pyarrow 26.0.1 (AWS SDK for C++ 1.11.900) does by default that Swift 2.30's s3api
refuses, each pinned by a test below so that a change on either side shows up here:

- **aws-chunked uploads.** By default ("when supported") the SDK adds a CRC64NVME checksum to
  every UploadPart as a trailer: ``Content-Encoding: aws-chunked``, ``Transfer-Encoding:
  chunked``, ``X-Amz-Content-Sha256: STREAMING-UNSIGNED-PAYLOAD-TRAILER``,
  ``X-Amz-Decoded-Content-Length`` and ``X-Amz-Trailer: x-amz-checksum-crc64nvme``. s3api answers
  501 NotImplemented ("Transfering payloads in multiple chunks using aws-chunked is not
  supported"). pyarrow uploads every file through a multipart upload, even a few bytes, so with
  the default nothing can be written. ``AWS_REQUEST_CHECKSUM_CALCULATION=WHEN_REQUIRED`` in the
  environment when the ``S3FileSystem`` is constructed (the SDK reads it then, per filesystem;
  ``SwiftS3.pyarrow_filesystem`` does this) turns that off: each part is then a plain body with
  its SHA-256 in ``X-Amz-Content-Sha256``, which s3api checks.
- **Bulk delete.** ``delete_dir_contents``/``delete_dir`` use DeleteObjects, for which s3api
  requires a ``Content-MD5`` header; the SDK sends ``X-Amz-Checksum-Crc64Nvme`` instead, with or
  without the variable, so bulk delete fails (400, "Missing required header for this request:
  Content-MD5"). Deleting object by object (``delete_file``) works.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Iterator

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

from tests.integration.s3server import CLIENT_ENV, SwiftS3

pytestmark = pytest.mark.integration

MIB = 1 << 20
#: pyarrow's multipart part size (10 MiB): 20 MiB and a bit is three parts.
BIG_SIZE = 20 * MIB + 12345


@pytest.fixture
def s3fs(s3_server: SwiftS3) -> pafs.S3FileSystem:
    """Path-style, http, SigV4 for us-east-1, built with AWS_REQUEST_CHECKSUM_CALCULATION=WHEN_REQUIRED."""
    return s3_server.pyarrow_filesystem(allow_bucket_creation=True)


@pytest.fixture
def bucket(s3fs: pafs.S3FileSystem) -> Iterator[str]:
    """A new, empty bucket; its objects are deleted one by one afterwards (bulk delete fails on Swift)."""
    name = f"govdata-{uuid.uuid4().hex[:12]}"
    s3fs.create_dir(name)
    yield name
    for info in s3fs.get_file_info(pafs.FileSelector(name, recursive=True)):
        if info.type == pafs.FileType.File:
            s3fs.delete_file(info.path)


def write(fs: pafs.S3FileSystem, path: str, data: bytes, chunk: int = MIB) -> None:
    with fs.open_output_stream(path) as out:
        for start in range(0, len(data), chunk):
            out.write(data[start : start + chunk])


def read(fs: pafs.S3FileSystem, path: str) -> bytes:
    with fs.open_input_stream(path) as stream:
        return bytes(stream.read())


def test_harness_serves_signed_s3_requests(s3_server: SwiftS3) -> None:
    assert s3_server.endpoint.startswith("http://127.0.0.1:")
    assert s3_server.access_key == "test:tester"
    status, _headers, body = s3_server.request("GET", "/")
    assert status == 200
    assert b"<ListAllMyBucketsResult" in body
    status, _headers, body = s3_server.request("GET", "/", secret_key="not-the-secret")
    assert status == 403
    assert b"SignatureDoesNotMatch" in body


def test_large_object_round_trip_through_multipart_upload(
    s3_server: SwiftS3, s3fs: pafs.S3FileSystem, bucket: str
) -> None:
    data = os.urandom(BIG_SIZE)
    path = f"{bucket}/versions/v1/data.bin"
    write(s3fs, path, data)

    back = read(s3fs, path)
    assert len(back) == len(data)
    assert hashlib.sha256(back).hexdigest() == hashlib.sha256(data).hexdigest()
    assert back == data

    # An S3 multipart object's ETag is "<md5 of the part md5s>-<number of parts>".
    status, headers, _body = s3_server.request("HEAD", f"/{path}")
    assert status == 200
    assert int(headers["content-length"]) == BIG_SIZE
    assert headers["etag"].strip('"').endswith("-3"), headers["etag"]

    listed = s3fs.get_file_info(pafs.FileSelector(bucket, recursive=True))
    files = {info.path: info.size for info in listed if info.type == pafs.FileType.File}
    assert files == {path: BIG_SIZE}
    assert s3fs.get_file_info(path).size == BIG_SIZE


def test_overwrite_and_delete(s3fs: pafs.S3FileSystem, bucket: str) -> None:
    path = f"{bucket}/manifest.json"
    write(s3fs, path, b'{"version": 1}')
    write(s3fs, path, b'{"version": 2, "rows": 42}')
    assert read(s3fs, path) == b'{"version": 2, "rows": 42}'
    assert s3fs.get_file_info(path).size == len(b'{"version": 2, "rows": 42}')

    s3fs.delete_file(path)
    assert s3fs.get_file_info(path).type == pafs.FileType.NotFound
    assert [
        i for i in s3fs.get_file_info(pafs.FileSelector(bucket, recursive=True)) if i.type == pafs.FileType.File
    ] == []
    with pytest.raises(FileNotFoundError):
        read(s3fs, path)


def test_parquet_round_trip(s3fs: pafs.S3FileSystem, bucket: str) -> None:
    table = pa.table(
        {
            "id": pa.array(range(50_000), pa.int64()),
            "district": pa.array([f"district-{i % 17}" for i in range(50_000)]),
            "amount": pa.array([i * 0.25 for i in range(50_000)], pa.float64()),
        }
    )
    path = f"{bucket}/versions/v2/part-0.parquet"
    pq.write_table(table, path, filesystem=s3fs)
    assert pq.read_table(path, filesystem=s3fs).equals(table)
    assert pq.read_table(path, filesystem=s3fs, columns=["district"]).num_rows == 50_000


def test_wrong_secret_key_is_refused(s3_server: SwiftS3, s3fs: pafs.S3FileSystem, bucket: str) -> None:
    path = f"{bucket}/kept.txt"
    write(s3fs, path, b"original")
    intruder = s3_server.pyarrow_filesystem(secret_key="not-the-secret")

    with pytest.raises(OSError, match="ACCESS_DENIED"):  # HEAD: a 403 without a body
        intruder.get_file_info(path)
    with pytest.raises(OSError, match="SIGNATURE_DOES_NOT_MATCH"):
        intruder.get_file_info(pafs.FileSelector(bucket))
    with pytest.raises(OSError, match="SIGNATURE_DOES_NOT_MATCH"):
        write(intruder, path, b"replaced")
    assert read(s3fs, path) == b"original"


def test_quirk_default_checksums_send_aws_chunked_which_swift_refuses(
    s3_server: SwiftS3, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without AWS_REQUEST_CHECKSUM_CALCULATION=WHEN_REQUIRED no upload works (see the module docstring).

    If this starts failing, pyarrow's AWS SDK or Swift changed: the setting may no longer be needed.
    """
    for name in CLIENT_ENV:
        monkeypatch.delenv(name, raising=False)
    default = pafs.S3FileSystem(**s3_server.pyarrow_options())
    with pytest.raises(OSError, match="aws-chunked is not supported"):
        write(default, f"{bucket}/tiny.txt", b"tiny")


def test_quirk_bulk_delete_needs_content_md5(s3fs: pafs.S3FileSystem, bucket: str) -> None:
    """DeleteObjects (pyarrow's delete_dir_contents) fails on Swift 2.30; delete_file works (see the module docstring).

    If this starts failing, bulk delete works now and the store may use it.
    """
    write(s3fs, f"{bucket}/old/a.txt", b"a")
    with pytest.raises(OSError, match="Content-MD5"):
        s3fs.delete_dir_contents(f"{bucket}/old")
    s3fs.delete_file(f"{bucket}/old/a.txt")
    assert s3fs.get_file_info(f"{bucket}/old/a.txt").type == pafs.FileType.NotFound
