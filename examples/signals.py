from pydantic import BaseModel

from flowbus import WorkflowSignal, on


class Invoice(BaseModel):
    id: str
    case_id: str
    total_cents: int


INVOICE_PAID = WorkflowSignal(
    "org.flowbus.billing.invoice.paid.v1",  # <reverse-DNS prefix>.<subject>.<action>.v<major>
    {"invoice": Invoice, "paid_by": str},  # each keyword argument and its type
    key_path="invoice.case_id",  # the Kafka key once the event travels
)


@on(INVOICE_PAID)
def notify_accounting(sender, invoice, metadata, **kwargs):
    print(metadata.id, metadata.time, invoice.total_cents)


INVOICE_PAID.send_event(
    invoice=Invoice(id="inv-7", case_id="case-1", total_cents=0),
    paid_by="alice",
    sender="billing.views",
)
