"""Avro for flowbus: schemas derived from signal data, the codec, framings, the catalog.

Modules: ``schema`` (derivation), ``codec`` (fastavro encoding of signal data),
``framing`` (single-object and Confluent wire format), ``compat`` (Avro resolution
checker), ``catalog`` (the ``schemas/`` directory), ``registry`` (Confluent-API schema
registry), ``serializer`` (what the producer and consumer call per message).
"""
