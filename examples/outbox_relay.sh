flowbus outbox relay  --database sqlite:///app.db --drain   # [--import myapp.signals] [--metrics-port 9401]
flowbus outbox status --database sqlite:///app.db           # pending, oldest age; --json
