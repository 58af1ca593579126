from flowbus import on
from flowbus.catalog import post_complete_case, post_complete_work_item

TARIFFS_CENTS = {"building-permit": 12_000}


@on(post_complete_work_item)
def log_work(sender, work_item, user, metadata, **kwargs):
    print(f"{user.username} completed {work_item.task_slug} of case {work_item.case_id}")


@on(post_complete_case)
def bill_case(sender, case, metadata, **kwargs):
    if case.workflow_slug not in TARIFFS_CENTS:  # retried, then dead-lettered
        raise LookupError(f"no tariff for workflow {case.workflow_slug}")
    print(f"billed case {case.id}: {TARIFFS_CENTS[case.workflow_slug]} cents")
