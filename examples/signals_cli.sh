flowbus signals list
flowbus signals show org.flowbus.caluma.work_item.post_complete.v1
flowbus signals example org.flowbus.caluma.work_item.post_complete.v1   # a valid payload
