export FLOWBUS_PRODUCER_CONFIG='{"org.flowbus.caluma.work_item.post_complete.v1":
    [{"topic": "caluma-events"}],
  "org.flowbus.caluma.case.post_complete.v1": [{"topic": "caluma-events", "key_path": "case.id"}]}'
flowbus schemas register    # the routes' subjects; once, before the first event (CI does it in production)
flowbus produce org.flowbus.caluma.case.post_complete.v1 --data @case.json
