"""Fetching the JVM services from Maven Central and building MinIO with Go.

Both write into a scratch folder and rename it into place only when complete, so an
interrupted fetch or build is redone next time instead of being half-used.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

from stack import versions
from stack.config import MavenArtifact, render_pom

STAMP = ".complete"


class FetchError(RuntimeError):
    """A download or build failed; the message says what to do."""

    def __init__(self, message: str, log: Path | None = None) -> None:
        super().__init__(message)
        self.log = log


def require_tool(name: str, hint: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise FetchError(f"`{name}` is not on PATH. {hint}")
    return path


def maven_stamp(pom: str) -> str:
    """The content of lib/.complete: which pom the jars were fetched for."""
    return hashlib.sha256(pom.encode()).hexdigest() + "\n"


def maven_lib_ready(home: Path, pom: str) -> bool:
    """True if home/lib holds a complete fetch of exactly this pom."""
    stamp = home / "lib" / STAMP
    return stamp.exists() and stamp.read_text() == maven_stamp(pom)


def fetch_maven(name: str, home: Path, artifacts: tuple[MavenArtifact, ...]) -> bool:
    """Copy the artifacts and their runtime dependencies into home/lib.

    Returns False if they were already there (nothing fetched).
    """
    pom = render_pom(name, artifacts)
    if maven_lib_ready(home, pom):
        return False
    mvn = require_tool("mvn", "Install Maven (Debian: `apt-get install maven`).")
    home.mkdir(parents=True, exist_ok=True)
    (home / "pom.xml").write_text(pom)
    partial = home / "lib.partial"
    shutil.rmtree(partial, ignore_errors=True)
    log = home / "fetch.log"
    with log.open("wb") as out:
        rc = subprocess.call(
            [
                mvn,
                "-B",
                "-q",
                "-Dstyle.color=never",  # plain text in fetch.log
                "-f",
                str(home / "pom.xml"),
                "dependency:copy-dependencies",
                f"-DoutputDirectory={partial}",
                # compile + runtime; test and provided jars are not needed to run.
                "-DincludeScope=runtime",
            ],
            cwd=home,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    if rc != 0 or not any(partial.glob("*.jar")):
        raise FetchError(
            f"Maven could not fetch {name} (exit {rc}). Check that Maven Central is "
            f"reachable and see {log}.",
            log=log,
        )
    (partial / STAMP).write_text(maven_stamp(pom))
    lib = home / "lib"
    shutil.rmtree(lib, ignore_errors=True)
    partial.replace(lib)
    return True


def _with_flag(goflags: str, flag: str) -> str:
    """GOFLAGS plus `flag` (no VCS stamping: the module zip has no .git)."""
    return goflags if flag in goflags.split() else f"{goflags} {flag}".strip()


def build_minio(binary: Path, build_log: Path) -> bool:
    """`go install` the pinned MinIO into binary. Returns False if it was already built."""
    if binary.exists() and os.access(binary, os.X_OK):
        return False
    go = require_tool("go", "Install Go 1.24 or newer (https://go.dev/dl or Debian's golang).")
    gobin = binary.parent.parent / "build" / binary.name
    shutil.rmtree(gobin, ignore_errors=True)
    gobin.mkdir(parents=True)
    env = {
        **os.environ,
        "CGO_ENABLED": "0",  # a static binary: no C toolchain needed, nothing to link
        "GOBIN": str(gobin),
        # Build with the Go that is here; never fetch another toolchain mid-build.
        "GOTOOLCHAIN": "local",
        "GOFLAGS": _with_flag(os.environ.get("GOFLAGS", ""), "-buildvcs=false"),
    }
    build_log.parent.mkdir(parents=True, exist_ok=True)
    with build_log.open("wb") as out:
        rc = subprocess.call(
            [go, "install", f"{versions.MINIO_MODULE}@{versions.MINIO_VERSION}"],
            cwd=gobin,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    built = gobin / "minio"
    if rc != 0 or not built.exists():
        raise FetchError(
            f"`go install {versions.MINIO_MODULE}@{versions.MINIO_VERSION}` failed "
            f"(exit {rc}). See {build_log}; a newer Go may be needed.",
            log=build_log,
        )
    binary.parent.mkdir(parents=True, exist_ok=True)
    built.replace(binary)
    shutil.rmtree(gobin, ignore_errors=True)
    return True
