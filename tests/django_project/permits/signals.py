from flowbus import WorkflowSignal

PERMIT_SUBMITTED = WorkflowSignal(
    "org.flowbus.permits.permit.submitted.v1",
    {"permit_id": str, "name": str},
    key_path="permit_id",
)
