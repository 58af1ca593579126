flowbus schemas generate    # new or changed event types -> new versions in schemas/
flowbus schemas check       # stale files or incompatible changes -> exit 1
flowbus schemas compat --reader ../schemas/org.flowbus.caluma.case.post_complete.v1/1.avsc \
    --writer ../schemas/org.flowbus.caluma.case.post_complete.v1/2.avsc
flowbus schemas register    # the routes' subjects (or --topic T for all), the registry's verdict
