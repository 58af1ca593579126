"""The workflow event catalog: the signals Caluma, a Workflow Service and Mistral emit.

Importing ``flowbus.catalog`` defines every catalog signal. The snapshot models the events
carry live in :mod:`flowbus.catalog.models`.
"""

from __future__ import annotations

from flowbus.catalog.caluma import *  # noqa: F403
from flowbus.catalog.caluma import __all__ as _caluma_all
from flowbus.catalog.mistral import *  # noqa: F403
from flowbus.catalog.mistral import __all__ as _mistral_all
from flowbus.catalog.models import *  # noqa: F403
from flowbus.catalog.models import __all__ as _models_all
from flowbus.catalog.workflow_service import *  # noqa: F403
from flowbus.catalog.workflow_service import __all__ as _workflow_service_all

__all__ = [*_caluma_all, *_mistral_all, *_models_all, *_workflow_service_all]
