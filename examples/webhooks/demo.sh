flowbus webhooks demo    # one delivery to a local receiver, printed as it arrives
