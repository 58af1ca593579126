"""Developer tooling: the local Kafka + registry stack (``flowbus dev``) and the demos
(``flowbus demo``).

This layer sits above the core and both sides: it may import anything, and nothing in the
package imports it (the CLI loads its commands by name; the tests use the stack).
"""
