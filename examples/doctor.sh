flowbus doctor    # --json
