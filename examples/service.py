import uuid

from flowbus.producer import EventProducer, start_forwarding

from review import complete_review

producer = EventProducer()  # idempotent, acks=all; flushes on SIGTERM/SIGINT/exit
start_forwarding(producer)  # routes from FLOWBUS_PRODUCER_CONFIG, validated now

complete_review(uuid.UUID("6f1c2b9e-3d4a-4b5c-8e7f-0a1b2c3d4e5f"))  # -> caluma-events
