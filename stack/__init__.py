"""Run photostream's real services (Kafka, Cassandra, MinIO) on loopback, without Docker.

`stack.services` is the Python API (`ensure_up`, `down`, `status`), `stack.cli` the
`photostream stack` command group, `stack.versions` the pinned versions.
"""
