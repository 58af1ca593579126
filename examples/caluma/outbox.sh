python -m flowbus.producer.caluma outbox migrate
python -m flowbus.producer.caluma outbox relay      # --metrics-port 9108, --drain
python -m flowbus.producer.caluma outbox status     # the backlog
