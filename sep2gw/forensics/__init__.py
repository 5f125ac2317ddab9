"""Dispute forensics over a site's log: state at any instant, each control's story, limits in force
and why, compliance of the measured power with the commanded limits (issue 9)."""

from sep2gw.forensics.model import Forensics, LimitPeriod, ResponseRow, Step, analyse

__all__ = ["Forensics", "LimitPeriod", "ResponseRow", "Step", "analyse"]
