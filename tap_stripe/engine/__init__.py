"""The engine: plans what a run reads, fetches it in worker threads, writes it in order and
moves the bookmarks (see docs/DESIGN.md)."""
