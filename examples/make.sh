make demo    # the main job: events travelling through a real Kafka broker and schema registry
make test    # everything CI checks: ruff, mypy, unit and integration tests on a real broker
