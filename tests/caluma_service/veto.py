"""A Caluma service's own receiver module: it vetoes a completion whose context asks for it.

Connected with ``raise_exception=True``: raising makes Caluma raise ``SignalHandlingError``
and the mutation roll back, after flowbus has already written that mutation's events into
the outbox. They must go with the rollback.
"""

from caluma.caluma_core.events import on
from caluma.caluma_workflow.events import post_complete_work_item


class Vetoed(Exception):
    pass


@on(post_complete_work_item, raise_exception=True)
def veto(sender, work_item, user, context=None, **kwargs):
    if context and context.get("veto"):
        raise Vetoed("the test service vetoes this completion")
