export FLOWBUS_SCHEMA_AUTO_REGISTER=true    # development: schemas registered on first use
flowbus produce org.flowbus.caluma.work_item.post_complete.v1 --data @work_item.json \
    --topic caluma-events
