from django.db import transaction
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from permits.models import Permit
from permits.signals import PERMIT_SUBMITTED


@csrf_exempt
@require_POST
def submit(request: HttpRequest) -> JsonResponse:
    """Save a permit and send its event in one transaction; ``fail=1`` fails after both."""
    with transaction.atomic():
        permit = Permit.objects.create(name=request.POST["name"])
        PERMIT_SUBMITTED.send_event(
            permit_id=str(permit.pk), name=permit.name, sender="permits.views"
        )
        if request.POST.get("fail") == "1":
            raise RuntimeError("the view failed after sending its event")
    return JsonResponse({"id": permit.pk})
