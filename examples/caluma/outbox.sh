python -m flowbus.producer.caluma outbox migrate
python -m flowbus.producer.caluma outbox status     # the backlog
