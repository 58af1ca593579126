flowbus dlq list --source caluma-events             # what was dead-lettered, and why
flowbus dlq show --source caluma-events 0:0 --data  # one record (its event decoded only with --data)
flowbus dlq replay --source caluma-events --event-type '*.post_complete.v1' --dry-run  # or --local
flowbus reset-offsets --group billing --topic caluma-events --to-time 2026-11-23T09:00:00Z --dry-run
