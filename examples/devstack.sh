eval "$(.venv/bin/flowbus dev up)"   # starts both on 127.0.0.1, exports the two variables below
flowbus dev status                   # exit 0 only when both answer
flowbus dev logs kafka               # last log lines
flowbus dev stop                     # stops both, keeps their data and ports
flowbus dev down                     # stops exactly what `up` started and deletes its data
