flowbus webhooks serve --topic caluma-events --group webhooks
