"""Every version the local stack fetches, pinned in one place.

Bumping a version here makes the next ``stack up`` fetch or build into a new cache
folder (the folder name carries the version), so old and new never mix.
"""

from __future__ import annotations

# Kafka: the newest 4.1.x on Maven Central when this was pinned (4.1.3 did not exist yet).
KAFKA_VERSION = "4.1.2"
SCALA_BINARY_VERSION = "2.13"
# Kafka 4.x logs through SLF4J 1.7 and ships log4j2 as its backend; these are the
# binding and core that its own distribution puts in libs/.
LOG4J2_VERSION = "2.24.3"

# Cassandra: the newest 5.0.x patch when this was pinned; 5.0 is the first line that
# runs on JDK 17 (4.1 does not).
CASSANDRA_VERSION = "5.0.9"

# MinIO publishes no semver tags, only RELEASE.<date> tags, which the Go module proxy
# does not resolve; the module's pseudo-version is what `go install` can pin.
MINIO_MODULE = "github.com/minio/minio"
MINIO_VERSION = "v0.0.0-20260212201848-7aac2a2c5b7c"
