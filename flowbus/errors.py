"""Typed exceptions raised by flowbus. Every failure a user can meet has its own class."""

from __future__ import annotations


class FlowbusError(Exception):
    """Base class of every flowbus error."""


class ConfigurationError(FlowbusError):
    """Settings or a configuration file are invalid; the message names the entry."""
