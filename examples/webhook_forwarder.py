import uuid

from flowbus.consumer.webhooks import DeliveryEngine, WebhookForwarder

from review import complete_review

engine = DeliveryEngine.from_settings().start()  # store, SSRF policy, CA bundle, limits
forwarder = WebhookForwarder(engine).connect()  # a receiver on every signal defined so far
complete_review(uuid.uuid4())  # events sent or re-sent here are matched and delivered
forwarder.disconnect()
engine.stop()  # lets attempts in flight finish; pending ones wait in the database
