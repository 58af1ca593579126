flowbus consume --topic caluma-events --group billing --receivers billing.receivers \
    --metrics-port 9400
