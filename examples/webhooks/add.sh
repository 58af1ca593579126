flowbus webhooks add --event 'org.flowbus.caluma.work_item.*' \
    --filter 'work_item.task_slug=review-*' --url https://hooks.example.com/caluma
