"""twolane: two lanes for one machine — local work strictly serial, remote work bounded."""

__version__ = "0.1.0"
