flowbus doctor --all    # without --all: the problems, and one line for what is ok; --json
