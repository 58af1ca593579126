from django.db import models


class Permit(models.Model):
    """A building permit application."""

    name = models.CharField(max_length=200)
