flowbus signals list
flowbus signals show org.flowbus.caluma.work_item.post_complete.v1
