flowbus outbox relay  --database sqlite:///app.db --drain   # [--import myapp.signals] [--metrics-port 9401]
flowbus outbox status --database sqlite:///app.db           # pending, oldest age, rejected; --json
flowbus outbox rejected --database sqlite:///app.db         # rows the broker refused for good
