"""A job directory with a canary next to it: what a hostile upload must never read, write or leak.

Layout under tmp_path: outside/canary.bin (random bytes), outside/victim.txt, jobs/job/ (the job dir, where
the upload is spooled to upload.bin). `after_rejection()` checks the promises every threat row shares.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from core.errors import QuantLensError
from core.gate.ingest import SPOOL_NAME, UploadLimits, ValidatedUpload, spool_upload, validate_upload
from tests.security.fixtures import files_containing, tree_snapshot


@dataclass
class Sandbox:
    root: Path
    job_dir: Path
    canary: bytes
    before: dict

    def upload(self, data: bytes) -> Path:
        return spool_upload(data, self.job_dir)

    def validate(self, data: bytes, limits: UploadLimits | None = None) -> ValidatedUpload:
        return validate_upload(self.upload(data), self.job_dir, limits=limits or UploadLimits())

    def rejects(self, data: bytes, code: str, limits: UploadLimits | None = None) -> QuantLensError:
        """Validate, expect `code`, and check the shared promises of the threat list."""
        with pytest.raises(QuantLensError) as caught:
            self.validate(data, limits)
        assert caught.value.code == code, caught.value.one_line()
        self.after_rejection(caught.value)
        return caught.value

    def rejects_any(self, data: bytes, limits: UploadLimits | None = None) -> QuantLensError:
        with pytest.raises(QuantLensError) as caught:
            self.validate(data, limits)
        self.after_rejection(caught.value)
        return caught.value

    def after_rejection(self, error: QuantLensError) -> None:
        # one plain sentence, no traceback, no canary content
        assert "\n" not in error.message and "Traceback" not in error.message
        assert self.canary.hex()[:16] not in error.message
        # nothing extracted: the job dir holds at most the spooled upload
        leftovers = sorted(p.name for p in self.job_dir.iterdir())
        assert leftovers in ([], [SPOOL_NAME]), leftovers
        self.assert_outside_untouched()

    def assert_outside_untouched(self) -> None:
        now = tree_snapshot(self.root)
        outside_before = {k: v for k, v in self.before.items() if not k.startswith("jobs")}
        outside_now = {k: v for k, v in now.items() if not k.startswith("jobs")}
        assert outside_now == outside_before
        assert files_containing(self.job_dir, self.canary) == []


@pytest.fixture
def sandbox(tmp_path: Path) -> Sandbox:
    root = tmp_path / "root"
    (root / "outside").mkdir(parents=True)
    canary = b"CANARY-" + os.urandom(32)
    (root / "outside" / "canary.bin").write_bytes(canary)
    (root / "outside" / "victim.txt").write_text("do not touch")
    job_dir = root / "jobs" / "job"
    job_dir.mkdir(parents=True, mode=0o700)
    return Sandbox(root=root, job_dir=job_dir, canary=canary, before=tree_snapshot(root))
