"""Horizontally scalable Socket.IO chat server."""

__version__ = "0.1.0"
