flowbus produce org.flowbus.caluma.case.post_complete.v1 --data @demolition-case.json
