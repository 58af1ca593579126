flowbus consume --topic caluma-events --group notifier --receivers myapp.receivers
