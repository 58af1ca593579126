flowbus webhooks check-url http://169.254.169.254/
