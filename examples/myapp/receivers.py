from flowbus import on
from flowbus.catalog import caluma


@on(caluma.post_complete_work_item)
def notify(sender, work_item, user, **kwargs):
    print(f"{user.username} ({user.group}) completed {work_item.task_slug} of {work_item.case_id}")
