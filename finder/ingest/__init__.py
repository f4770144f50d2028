"""Ingest: walk the roots (crawl) and turn files into pixels (decode)."""
