from django.urls import path
from permits.views import submit

urlpatterns = [path("permits/", submit)]
