from openedx_events.learning.signals import COURSE_ENROLLMENT_CREATED

from flowbus.openedx import signal_from_openedx

ENROLLMENT_CREATED = signal_from_openedx(
    COURSE_ENROLLMENT_CREATED, key_path="enrollment.course.course_key"
)
print(ENROLLMENT_CREATED.event_type, ENROLLMENT_CREATED.minor_version)
