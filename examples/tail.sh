flowbus tail caluma-events --from-beginning --max 2   # --json, --type GLOB; no --max: follows
