python -m flowbus.producer.caluma outbox relay      # --metrics-port 9108; --drain: until empty
